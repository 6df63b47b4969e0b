"""asyncio adapter for the engine's WebRTC signaling.

The engine calls its signaling callback on an engine thread. ``AsyncSignaling``
moves every message into an asyncio loop (``call_soon_threadsafe``) and offers
awaitable helpers, so a server never writes threading code::

    sig = AsyncSignaling(engine)                      # inside a running loop
    answer = await sig.open_listener("kitchen/l1", offer_sdp)
    await sig.send("kitchen/l1", "candidate", candidate_json)
    async for type, message in sig.messages("kitchen/l1"): ...
    await sig.close_listener("kitchen/l1")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from sinkcast._errors import EngineClosedError, SignalingError
from sinkcast._sinkcast import AudioManager

Message = tuple[str, str]  # (type, message)


def _is_end_of_candidates(message: str) -> bool:
    try:
        value = json.loads(message)
    except ValueError:
        return message.strip() in ("", "a=end-of-candidates")
    return value is None or (isinstance(value, dict) and not value.get("candidate"))


def merge_candidates(sdp: str, candidates: list[str], end_of_candidates: bool = True) -> str:
    """Returns `sdp` with the given candidate JSON messages added as a=candidate
    lines to the media section of their mid (for peers that do not trickle, e.g. WHEP)."""
    lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
    by_mid: dict[str, list[str]] = {}
    for raw in candidates:
        value = json.loads(raw)
        if not value or not value.get("candidate"):
            continue
        by_mid.setdefault(str(value.get("sdpMid", "0")), []).append("a=" + value["candidate"])
    out: list[str] = []
    section_mid: str | None = None
    section_lines: list[str] = []

    def flush() -> None:
        out.extend(section_lines)
        if section_mid is not None:
            existing = set(section_lines)
            out.extend(c for c in by_mid.get(section_mid, []) if c not in existing)
            if end_of_candidates and "a=end-of-candidates" not in existing:
                out.append("a=end-of-candidates")

    for line in lines:
        if line.startswith("m="):
            flush()
            section_lines = [line]
            section_mid = ""
            continue
        if line.startswith("a=mid:") and section_mid is not None:
            section_mid = line[len("a=mid:") :].strip()
        section_lines.append(line)
    flush()
    return "\r\n".join(out) + "\r\n"


# Put into a queue the adapter no longer fills (its session was closed,
# replaced or forgotten), so that whoever waits on it stops waiting.
_END: Message = ("", "")


async def _wait_out(call: asyncio.Future[None]) -> tuple[BaseException | None, bool]:
    """Waits for an engine call to end, also when the caller is cancelled meanwhile
    (the call cannot stop half way, and what to undo depends on its outcome).
    Returns the call's error (None: it succeeded) and whether the caller was
    cancelled meanwhile, to be re-raised once the adapter is consistent again."""
    cancelled = False
    while not call.done():
        try:
            await asyncio.wait({call})
        except asyncio.CancelledError:
            cancelled = True
    if call.cancelled():  # (its task, at the loop's teardown): the outcome is unknown, take it as refused
        return asyncio.CancelledError(), cancelled
    return call.exception(), cancelled


class AsyncSignaling:
    """Bridges an AudioManager's signaling into an asyncio event loop.

    It installs itself as the engine's signaling callback (one adapter per
    engine). Each session opened through it has its own queue of messages;
    messages for targets nobody awaits go to `on_message`, if given.
    """

    def __init__(
        self,
        engine: AudioManager,
        loop: asyncio.AbstractEventLoop | None = None,
        on_message: Callable[[str, str, str], Any] | None = None,
    ) -> None:
        self.engine = engine
        self.loop = loop or asyncio.get_running_loop()
        self.on_message = on_message
        self._queues: dict[str, asyncio.Queue[Message]] = {}
        # The queue of an open still waiting for the engine's verdict: it takes
        # the target's messages meanwhile, while readers keep the old queue.
        self._pending: dict[str, asyncio.Queue[Message]] = {}
        self._opening: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # on_message coroutines, kept until they finish
        engine.set_python_webrtc_signaling_callback(self._from_engine_thread)

    # -- delivery ---------------------------------------------------------------

    def _from_engine_thread(self, target: str, type: str, message: str) -> None:
        try:
            self.loop.call_soon_threadsafe(self._dispatch, target, type, message)
        except RuntimeError:
            pass  # the loop is closed: nobody is left to tell

    def _dispatch(self, target: str, type: str, message: str) -> None:
        queue = self._pending.get(target)
        if queue is None:
            queue = self._queues.get(target)
        if queue is not None:
            queue.put_nowait((type, message))
        else:
            self._elsewhere(target, type, message)

    def _elsewhere(self, target: str, type: str, message: str) -> None:
        """A message no session queue takes: to on_message, if given."""
        if self.on_message is None:
            return
        result = self.on_message(target, type, message)
        if asyncio.iscoroutine(result):
            task = self.loop.create_task(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _session_queue(self, target: str) -> asyncio.Queue[Message]:
        # Only an open makes a queue: a reader that made one for a session that
        # has ended would wait forever, and take messages meant for on_message.
        queue = self._queues.get(target)
        if queue is None:
            raise SignalingError(
                f"no session of '{target}' to read: none was opened through this adapter, "
                "or it was closed, replaced or forgotten, or a reader took its bye"
            )
        return queue

    def _detach(self, target: str, queue: asyncio.Queue[Message] | None = None) -> None:
        """Stops filling the target's queue (only `queue`, if given) and ends it for its readers."""
        current = self._queues.get(target)
        if current is not None and (queue is None or queue is current):
            del self._queues[target]
            current.put_nowait(_END)

    @staticmethod
    async def _take(queue: asyncio.Queue[Message]) -> Message | None:
        """The queue's next message; None once the queue has ended."""
        item = await queue.get()
        if item is _END:
            queue.put_nowait(_END)  # for every other reader too
            return None
        return item

    @classmethod
    async def _take_within(cls, queue: asyncio.Queue[Message], timeout: float | None) -> Message | None:
        """_take, giving up with TimeoutError after `timeout` seconds."""
        if timeout is None:
            return await cls._take(queue)
        if sys.version_info >= (3, 11):
            # Not wait_for: before 3.12 it can return the message and drop a
            # cancellation that lands in the same turn of the loop (CPython
            # gh-86296), so a cancelled reader or opener would carry on.
            async with asyncio.timeout(timeout):
                return await cls._take(queue)
        try:
            return await asyncio.wait_for(cls._take(queue), timeout)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before 3.11
            raise TimeoutError from None

    def _ended(self, target: str, queue: asyncio.Queue[Message]) -> None:
        # A reader took the session's bye: later messages on the target go to
        # on_message, and every other reader of the queue stops.
        if self._queues.get(target) is queue:
            del self._queues[target]
        queue.put_nowait(_END)

    # -- calls into the engine ------------------------------------------------------

    async def send(self, target: str, type: str, message: str = "") -> None:
        """handle_incoming_webrtc_signaling_message, off the event loop's thread.

        An offer or request_offer opens a session as open_listener() and
        request_offer() do, without waiting for its description: read its
        messages with next_message() or messages(). If the engine refuses it,
        nothing changes here either. A bye closes the session as
        close_listener() does."""
        if type in ("offer", "request_offer"):
            async with self._one_open_at_a_time(target):
                await self._start(target, type, message)
        elif type == "bye":
            # After any open of the target in progress: the bye then closes the
            # session that open made, where it could have reached the engine
            # first, closed nothing, and left that session running.
            async with self._one_open_at_a_time(target):
                error = await self._bye(target, message)
            if error is not None:
                raise error
        else:
            await asyncio.to_thread(self.engine.handle_incoming_webrtc_signaling_message, target, type, message)

    async def open_listener(
        self, target: str, offer: str, *, timeout: float = 10.0, gather: bool = True
    ) -> str:
        """Opens a session from a listener's offer and returns the engine's answer.

        With gather=True (for peers that do not trickle, like WHEP players) it
        waits for the engine's end of candidates and returns the answer with
        every candidate in it; otherwise the candidates follow as messages.
        If no answer comes (timeout, cancellation), the session is closed.
        The session's later messages wait in its queue until read (next_message(),
        messages()) or until forget() hands them to on_message."""
        return await self._open(target, "offer", offer, "answer", timeout, gather)

    async def request_offer(self, target: str, *, timeout: float = 10.0, gather: bool = True) -> str:
        """Opens a session where the engine offers; returns its offer. Answer with send(target, "answer", sdp)."""
        return await self._open(target, "request_offer", "", "offer", timeout, gather)

    async def _open(self, target: str, type: str, message: str, wanted: str, timeout: float, gather: bool) -> str:
        async with self._one_open_at_a_time(target):
            queue = await self._start(target, type, message)
            try:
                return await self._collect_description(target, queue, wanted, timeout, gather)
            except BaseException:
                await self._abandon(target, queue)
                raise

    async def _start(self, target: str, type: str, message: str) -> asyncio.Queue[Message]:
        """Asks the engine to open a session on the target (under its open lock);
        returns the new session's queue, which the target's messages now fill."""
        # One turn of the loop first: messages the engine already handed
        # over (call_soon_threadsafe) land in the earlier session's queue.
        await asyncio.sleep(0)
        new: asyncio.Queue[Message] = asyncio.Queue()
        self._pending[target] = new
        call = asyncio.ensure_future(
            asyncio.to_thread(self.engine.handle_incoming_webrtc_signaling_message, target, type, message)
        )
        try:
            await asyncio.shield(call)
        except BaseException:
            error, _ = await _wait_out(call)  # whatever interrupted us is re-raised below
            if error is not None:
                self._refused(target, new)  # nothing changed
                raise
            self._accepted(target, new)  # opened, but the caller was cancelled meanwhile
            await self._abandon(target, new)
            raise
        self._accepted(target, new)
        return new

    def _accepted(self, target: str, new: asyncio.Queue[Message]) -> None:
        # The engine replaced the target's session: its queue ends for its readers.
        del self._pending[target]
        old = self._queues.get(target)
        self._queues[target] = new
        if old is not None:
            old.put_nowait(_END)

    def _refused(self, target: str, new: asyncio.Queue[Message]) -> None:
        # What arrived meanwhile is the earlier session's (a refused call opens
        # nothing): it goes where it would have gone, in order.
        del self._pending[target]
        while not new.empty():
            item = new.get_nowait()
            if item is not _END:  # (put there by close())
                self._dispatch(target, *item)

    @contextlib.asynccontextmanager
    async def _one_open_at_a_time(self, target: str) -> AsyncIterator[None]:
        # The engine keeps the last of two opens on one target, and each opener
        # must read its own session's description. Messages name only their
        # target, so the next open (or bye) starts once the last open has its
        # description (and its candidates, with gather). The lock is dropped
        # with its last user (the WHEP server opens every POST under a new target).
        entry = self._opening.setdefault(target, (asyncio.Lock(), [0]))
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0 and self._opening.get(target) is entry:
                del self._opening[target]

    async def _abandon(self, target: str, queue: asyncio.Queue[Message]) -> None:
        """Closes a session the engine opened but whose opener gave up on it.

        Runs under the target's open lock, so the session there is still the
        one this open made (or one closed since: then the bye does nothing)."""
        await self._bye(target, "", queue)  # a refused bye (engine closed, sink removed): nothing to close

    async def _bye(
        self, target: str, message: str, queue: asyncio.Queue[Message] | None = None
    ) -> BaseException | None:
        """Says bye to the target's session (under its open lock) and ends its
        queue (only `queue`, if given). Returns the engine's error, if any."""
        # The bye first: once it has returned the engine delivers nothing more of
        # the session, and what it delivered before lands in the queue, which
        # goes with it (instead of reaching on_message). It is waited out even
        # when the caller is cancelled: a bye still running after the lock is
        # released could close the next open's session.
        call = asyncio.ensure_future(
            asyncio.to_thread(self.engine.handle_incoming_webrtc_signaling_message, target, "bye", message)
        )
        error, cancelled = await _wait_out(call)
        self._detach(target, queue)
        if cancelled:
            raise asyncio.CancelledError
        return error

    def _has_session(self, target: str) -> bool:
        try:
            return target in self.engine.listeners()
        except EngineClosedError:
            return False

    async def _collect_description(
        self, target: str, queue: asyncio.Queue[Message], wanted: str, timeout: float, gather: bool
    ) -> str:
        candidates: list[str] = []
        description: str | None = None
        ended = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no {wanted} for '{target}' within {timeout} s")
            try:
                item = await self._take_within(queue, remaining)
            except TimeoutError:
                raise TimeoutError(f"no {wanted} for '{target}' within {timeout} s") from None
            if item is None:
                raise SignalingError(f"session '{target}' was closed or replaced before its {wanted}")
            type, message = item
            if type == "bye":
                # A session sends its description before anything else, so a bye
                # before it is either this session's end or the last word of the
                # session it replaced, already on its way when the new one opened.
                # The engine knows which.
                if description is None and self._has_session(target):
                    continue
                self._ended(target, queue)
                raise SignalingError(f"session '{target}' closed before its {wanted}: {message}")
            if type == wanted:
                description = message
                if not gather:
                    return description
            elif type == "candidate" and description is not None:
                # (A session sends its description before its candidates: any
                # candidate before it is an earlier session's.)
                if _is_end_of_candidates(message):
                    ended = True
                else:
                    candidates.append(message)
            if description is not None and ended:
                return merge_candidates(description, candidates)

    async def next_message(self, target: str, timeout: float | None = None) -> Message:
        """The next (type, message) of the session open on `target` now.

        Each call reads the target's session of the moment: once the target
        has been opened again, the next call reads the new session. To read one
        session to its end and no further, iterate messages(target).

        Raises SignalingError if no session of the target is open here, or once
        the session is closed here, replaced or forgotten, or another reader
        took its bye; TimeoutError after `timeout` seconds without a message."""
        queue = self._session_queue(target)
        try:
            item = await self._take_within(queue, timeout)
        except TimeoutError:
            raise TimeoutError(f"no message for '{target}' within {timeout} s") from None
        if item is None:
            raise SignalingError(f"no more messages for '{target}': it was closed, replaced or forgotten")
        if item[0] == "bye":
            self._ended(target, queue)
        return item

    async def messages(self, target: str) -> AsyncIterator[Message]:
        """Every (type, message) of the session open on `target` now, until its
        bye (or until that session is closed here, replaced or forgotten).
        Raises SignalingError if no session of the target is open here."""
        queue = self._session_queue(target)
        while (item := await self._take(queue)) is not None:
            if item[0] == "bye":
                self._ended(target, queue)
            yield item
            if item[0] == "bye":
                return

    async def close_listener(self, target: str) -> None:
        """Closes the session (as if the listener said bye); its readers stop.
        An open of the same target in progress finishes first, and its session
        is the one closed."""
        await self.send(target, "bye", "")

    def forget(self, target: str) -> None:
        """Stops queueing messages for `target`: those not yet read, then every
        later one, go to on_message (dropped without one); its readers stop."""
        queue = self._queues.pop(target, None)
        if queue is None:
            return
        unread: list[Message] = []
        while not queue.empty():
            item = queue.get_nowait()
            if item is not _END:
                unread.append(item)
        queue.put_nowait(_END)
        for type, message in unread:
            self._elsewhere(target, type, message)

    def close(self) -> None:
        """Detaches from the engine: clears its signaling callback; every reader,
        and every open still waiting for its description, stops."""
        if not self.engine.closed:
            self.engine.set_python_webrtc_signaling_callback(None)
        for target in list(self._queues):
            self._detach(target)
        for queue in self._pending.values():
            queue.put_nowait(_END)  # the open fails once accepted, and closes its session


__all__ = ["AsyncSignaling", "merge_candidates"]
