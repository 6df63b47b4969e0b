"""Inputs that are not native network receivers: raw PCM from a pipe, a FIFO, stdin or a file.

The RTP and Scream receivers live in the engine (``AudioManager.add_rtp_source``,
``AudioManager.add_scream_source``); a raw PCM stream needs no parsing, so it is
read here by one Python thread that pushes blocks into an ordinary push source::

    ffmpeg -re -i song.flac -f s16le -ac 2 -ar 48000 - | python app.py    # app.py:
    from sinkcast.inputs import add_pipe_source
    pipe = add_pipe_source(eng, "stdin", "-", sample_rate=48000, channels=2)

Pipes are read as their writer writes: one faster than real time (no ``-re``)
needs ``pace=True``, or the source's ring overflows and audio is dropped.
The thread stops at end of input, on ``stop()``, when the source is removed or
when the engine shuts down. A FIFO opened by its name is a live input: when its
writer closes it, the reader waits for the next one instead of ending.
"""

from __future__ import annotations

import atexit
import errno
import io
import os
import select
import stat
import sys
import threading
import time
import weakref
from typing import IO, Any

import numpy as np

from sinkcast._errors import UnknownSourceError
from sinkcast._sinkcast import AudioManager

# Readers still running. At exit they are stopped before the interpreter
# finalizes: a daemon thread frozen mid-loop would keep its engine alive
# forever (nanobind then reports the engine as leaked).
_running_readers: weakref.WeakSet[PipeInput] = weakref.WeakSet()


@atexit.register
def _stop_readers_at_exit() -> None:
    for reader in list(_running_readers):
        reader.stop(timeout=1.0)


#: Raw sample formats a pipe may carry (little-endian, interleaved).
PIPE_FORMATS: dict[str, tuple[np.dtype[Any], np.dtype[Any]]] = {
    "s16le": (np.dtype("<i2"), np.dtype(np.int16)),
    "s32le": (np.dtype("<i4"), np.dtype(np.int32)),
    "f32le": (np.dtype("<f4"), np.dtype(np.float32)),
}


def _check_reader_args(path: Any, sample_format: str, block_ms: Any) -> None:
    """The checks both add_pipe_source and PipeInput make before anything is created:
    a value the reader thread could not use would otherwise only show in its stats()."""
    if sample_format not in PIPE_FORMATS:
        raise ValueError(f"sample_format must be one of {', '.join(PIPE_FORMATS)}, got {sample_format!r}")
    if isinstance(block_ms, bool) or not isinstance(block_ms, int):
        raise TypeError(f"block_ms must be a whole number of milliseconds, got {type(block_ms).__name__} {block_ms!r}")
    if not 1 <= block_ms <= 1000:
        raise ValueError(f"block_ms must be 1 to 1000, got {block_ms}")
    if isinstance(path, io.TextIOBase):
        raise TypeError("path must be a binary file object, not a text stream (sys.stdin.buffer, "
                        "open(name, 'rb'), io.BytesIO)")
    if isinstance(path, bool) or not (
        isinstance(path, (str, int, os.PathLike)) or callable(getattr(path, "read", None))
    ):
        raise TypeError(f"path must be a file name, '-' (stdin), a file descriptor or a binary file object, "
                        f"got {type(path).__name__}")
    if isinstance(path, int) and path < 0:
        raise ValueError(f"path: a file descriptor is 0 or more, got {path}")
    if isinstance(path, str) and not path:
        raise ValueError("path must not be empty ('-' is stdin)")


class PipeInput:
    """Reads raw interleaved PCM from a file descriptor in blocks and pushes it to a source.

    ``pace`` (default: for regular files, and file objects with no descriptor
    such as ``io.BytesIO``) reads at real-time speed, so a file
    plays rather than flooding the source's buffer; pipes and FIFOs are paced by
    their writer (one faster than real time needs ``pace=True``, or audio is dropped).

    A FIFO given by its name never ends: when its writer closes it, the reader
    plays out what it had (as at the end of a file), counts ``writers_ended``
    and waits for the next writer (a player that reopens the FIFO per track).
    stdin, descriptors, file objects and regular files end at end of input.
    """

    def __init__(
        self,
        engine: AudioManager,
        source_id: str,
        path: str | int | IO[bytes],
        *,
        sample_rate: int,
        channels: int,
        sample_format: str = "s16le",
        block_ms: int = 10,
        pace: bool | None = None,
        start: bool = True,
    ) -> None:
        _check_reader_args(path, sample_format, block_ms)
        self.engine = engine
        self.source_id = source_id
        self.sample_rate = sample_rate
        self.channels = channels
        self.sample_format = sample_format
        self._wire, self._native = PIPE_FORMATS[sample_format]
        self._frame_bytes = self._wire.itemsize * channels
        self._block_bytes = max(1, sample_rate * block_ms // 1000) * self._frame_bytes
        # The source this reader feeds; one added later under the same id is another.
        self._source_serial = engine.source_serial(source_id)
        self._owns_fd = False
        # Read through the object itself (BytesIO, or a pipe object whose buffer
        # may hold read-ahead the descriptor underneath has already given away), else None.
        self._file: IO[bytes] | None = None
        self._fd = -1
        self._path: str | None = None  # a file opened by name (a FIFO is reopened when its writer leaves)
        if path == "-":
            self._fd = sys.stdin.buffer.fileno()
        elif isinstance(path, int):
            self._fd = path
        elif isinstance(path, (str, os.PathLike)):
            # Non-blocking open: a FIFO without a writer yet must not hang us (or stop()).
            # Absolute: a live FIFO is opened again for each writer, maybe after a chdir().
            self._path = os.path.abspath(os.fspath(path))
            self._fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
            self._owns_fd = True
            if stat.S_ISDIR(os.fstat(self._fd).st_mode):
                self._close()
                raise IsADirectoryError(errno.EISDIR, "a pipe source reads a file, a FIFO or a pipe, not a directory",
                                        os.fspath(path))
        else:
            fd = _descriptor(path)
            if fd is not None and getattr(path, "seekable", lambda: False)():
                # A buffered file may have read ahead of the caller: go on from where
                # the caller stands (f.read(44) of a WAV header leaves the descriptor at 4096).
                os.lseek(fd, path.tell(), os.SEEK_SET)
            else:
                # Its descriptor (if any) is still polled, so stop() and a removed
                # source are noticed on an idle pipe; the reads go through the object.
                self._file = path
            self._fd = fd if fd is not None else -1
        mode = os.fstat(self._fd).st_mode if self._fd >= 0 else None
        self._is_fifo = mode is not None and stat.S_ISFIFO(mode)
        # Only a FIFO we opened by name outlives its writer: stdin or a pipe
        # handed over as a descriptor ends with its writer, as a shell pipeline does.
        self._live_fifo = self._is_fifo and self._path is not None
        # A FIFO handed over by descriptor reads empty until its first writer
        # opens it. An anonymous pipe (a shell pipeline's stdin, os.pipe()) has
        # its writer from the start: read empty, it has ended, even with no data.
        self._waits_for_first_writer = self._is_fifo and not self._live_fifo and not _is_anonymous_pipe(self._fd)
        if pace is None:  # files play at their pace; pipes come at their writer's
            pace = stat.S_ISREG(mode) if mode is not None else True  # no descriptor: BytesIO and the like
        self.pace = pace
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stats: dict[str, Any] = {
            "frames": 0, "bytes": 0, "blocks": 0, "dropped_bytes": 0, "nonfinite_samples": 0,
            "eof": False, "error": None, "writers_ended": 0,
        }
        self._thread = threading.Thread(target=self._run, name=f"sinkcast-pipe-{source_id}", daemon=True)
        if start:
            self.start()

    # -- public -------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """frames and bytes pushed, blocks, nonfinite_samples (f32le NaN or infinite
        samples, pushed as silence), eof (input ended; never for a FIFO opened by
        name), error (why the reader stopped, or None), writers_ended (writers
        of such a FIFO that came and went), dropped_bytes (partial frames left
        at an end of input, and audio read after the source was removed)."""
        with self._lock:
            return dict(self._stats)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        """Starts reading, for a reader made with ``start=False`` (its source
        connected first, so not a block is missed). Once."""
        if self._stop.is_set():
            raise RuntimeError("this pipe reader was stopped before it started")
        _running_readers.add(self)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stops reading (idempotent); the source stays until removed."""
        self._stop.set()
        if self._thread.ident is None:  # never started: nothing reads, the descriptor is ours to close
            self._close()
        elif self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for end of input; True when the reader has finished (or was
        stopped before it started). A reader not started yet returns False at once."""
        if self._thread.ident is None:
            return self._stop.is_set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __del__(self) -> None:
        # A reader made with start=False and dropped unstarted: nothing else
        # would close the file it opened.
        try:
            if self._thread.ident is None:
                self._close()
        except Exception:  # a half-made reader, or the interpreter shutting down
            pass

    # -- reader thread ------------------------------------------------------

    def _source_is_gone(self) -> bool:
        """The source was removed (and maybe another added under its id): say so, and stop."""
        gone: bool
        try:
            gone = self.engine.source_serial(self.source_id) != self._source_serial
        except UnknownSourceError:
            gone = True
        if gone:
            self._say_source_gone()
        return gone

    def _say_source_gone(self) -> None:
        with self._lock:
            self._stats["error"] = f"the source '{self.source_id}' was removed"

    def _run(self) -> None:
        pending = b""
        seen_data = False
        start = time.monotonic()
        pushed_frames = 0
        if self._file is not None:
            # read1(): what the object has buffered, else one read of the
            # descriptor (which poll() found readable), so it does not wait.
            read = getattr(self._file, "read1", None) or self._file.read
        else:

            def read(n: int) -> bytes:
                return os.read(self._fd, n)  # (a live FIFO's descriptor changes with each writer)

        if self._fd >= 0:
            # poll(), not select(): a server holding many sockets hands out
            # descriptors above select()'s limit of 1023. The descriptor keeps its
            # blocking mode (it may be the caller's, or the terminal's): a read
            # after poll() says it is readable does not wait.
            poller = select.poll()
            poller.register(self._fd, select.POLLIN | select.POLLHUP | select.POLLERR)

            def readable(timeout_s: float) -> bool:
                return bool(poller.poll(int(timeout_s * 1000)))
        else:

            def readable(timeout_s: float) -> bool:
                return True  # BytesIO and the like: reads never wait

        # push() and flush() name the source this reader started with: the engine
        # refuses them if the id now names another (removed, then added again),
        # which a source_serial() check before them could miss.
        def push(data: bytes) -> bool:
            """False when the source is gone."""
            nonlocal pushed_frames
            samples = np.frombuffer(data, dtype=self._wire).astype(self._native, copy=False)
            nonfinite = 0
            if samples.dtype.kind == "f":
                # push() refuses NaN and infinities; one bad sample must not end
                # a stream, so it plays as silence and is counted.
                finite = np.isfinite(samples)
                if not finite.all():
                    nonfinite = int(finite.size - np.count_nonzero(finite))
                    samples = np.where(finite, samples, np.float32(0))
            try:
                self.engine.push(self.source_id, samples.reshape(-1, self.channels), source_serial=self._source_serial)
            except UnknownSourceError:
                self._say_source_gone()
                return False
            frames = len(data) // self._frame_bytes
            pushed_frames += frames
            with self._lock:
                self._stats["nonfinite_samples"] += nonfinite
                self._stats["frames"] += frames
                self._stats["bytes"] += len(data)
                self._stats["blocks"] += 1
            return True

        def flush() -> bool:
            """False when the source is gone."""
            try:
                self.engine.flush(self.source_id, source_serial=self._source_serial)
            except UnknownSourceError:
                self._say_source_gone()
                return False
            return True

        try:
            while not self._stop.is_set() and not self.engine.closed:
                if not readable(0.1):
                    # An idle reader looks for its source each 0.1 s, or it would
                    # hold its descriptor for good.
                    if self._source_is_gone():
                        break
                    continue
                try:
                    chunk = read(self._block_bytes)
                except BlockingIOError:
                    continue
                if not chunk:
                    if self._waits_for_first_writer and not seen_data:
                        # No writer has opened the FIFO yet. poll() says a FIFO
                        # without writers is readable, so look for the source here.
                        if self._source_is_gone():
                            break
                        time.sleep(0.05)
                        continue
                    # The end (of the input, or of a live FIFO's writer): the whole
                    # frames still pending are audio too, and flush() plays out the
                    # resampler's tail and whatever is still short of the source's jitter_ms.
                    usable = len(pending) - len(pending) % self._frame_bytes
                    if usable:
                        if not push(pending[:usable]):
                            break
                        pending = pending[usable:]
                    if seen_data and not flush():
                        break
                    if not self._live_fifo:
                        break
                    # A partial frame is not carried over: the next writer starts on a frame.
                    with self._lock:
                        self._stats["dropped_bytes"] += len(pending)
                        self._stats["writers_ended"] += 1
                    pending, seen_data = b"", False
                    start, pushed_frames = time.monotonic(), 0  # pace=True paces each writer from its start
                    self._reopen_fifo(poller)
                    continue
                seen_data = True
                pending += chunk
                usable = len(pending) - len(pending) % self._frame_bytes
                if usable < self._block_bytes and not self.pace:
                    # Push whole blocks when the writer is fast, whatever is there when it is slow.
                    if readable(0):
                        continue
                if usable == 0:
                    continue
                if not push(pending[:usable]):  # removed, perhaps added again: this audio is not the new source's
                    break
                pending = pending[usable:]
                if self.pace:
                    # Stay at most ~block ahead of real time.
                    ahead = pushed_frames / self.sample_rate - (time.monotonic() - start)
                    if ahead > 0.05:
                        self._stop.wait(ahead - 0.05)
            with self._lock:
                self._stats["eof"] = (
                    not self._stop.is_set() and not self.engine.closed and self._stats["error"] is None
                )
                self._stats["dropped_bytes"] += len(pending)
        except Exception as e:  # the source was removed, the engine closed, the fd failed
            with self._lock:
                self._stats["error"] = f"{type(e).__name__}: {e}"
        finally:
            self._close()

    def _reopen_fifo(self, poller: select.poll) -> None:
        """Waits for a live FIFO's next writer on a new descriptor.

        Once its writer has gone, the old descriptor reports a hang-up (and end
        of input) for good, and a FIFO with no reader refuses a non-blocking
        writer: the new descriptor is opened before the old one is closed, so the
        FIFO always has a reader, and whatever a next writer has already written stays in it."""
        assert self._path is not None
        fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            raise RuntimeError(f"{self._path} is no longer a FIFO")
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        poller.unregister(self._fd)
        os.close(self._fd)
        self._fd = fd

    def _close(self) -> None:
        if self._owns_fd:
            self._owns_fd = False
            try:
                os.close(self._fd)
            except OSError:
                pass


def _is_anonymous_pipe(fd: int) -> bool:
    """A pipe made by pipe(2), not a FIFO in the file system (Linux names it pipe:[inode])."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
    except OSError:  # no /proc: take it for a FIFO, which waits for its first writer
        return False


def _descriptor(f: Any) -> int | None:
    """The descriptor under a file object, or None (io.BytesIO has none)."""
    try:
        return int(f.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def add_pipe_source(
    engine: AudioManager,
    source_id: str,
    path: str | int | IO[bytes] = "-",
    *,
    sample_rate: int = 48000,
    channels: int = 2,
    sample_format: str = "s16le",
    block_ms: int = 10,
    pace: bool | None = None,
    jitter_ms: int = 60,
    buffer_ms: int = 500,
    start: bool = True,
) -> PipeInput:
    """Adds a push source ``source_id`` and a thread feeding it raw PCM from ``path``
    ("-" for stdin, a FIFO, a file, a file descriptor or a binary file object).
    ``sample_format`` is s16le, s32le or f32le, interleaved. Returns the reader.
    A route plays only what is pushed after it is made: with ``start=False``,
    connect the source first, then call the reader's ``start()``."""
    _check_reader_args(path, sample_format, block_ms)  # before the source is made
    engine.add_source(source_id, sample_rate=sample_rate, channels=channels, buffer_ms=buffer_ms, jitter_ms=jitter_ms)
    try:
        return PipeInput(engine, source_id, path, sample_rate=sample_rate, channels=channels,
                         sample_format=sample_format, block_ms=block_ms, pace=pace, start=start)
    except BaseException:
        engine.remove_source(source_id)
        raise
