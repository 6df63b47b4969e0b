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
import collections
import json
import math
import weakref
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


def _seconds(name: str, value: Any, *, zero_ok: bool = False, none_ok: bool = False) -> float | None:
    """`value` as a timeout in seconds: a finite number above 0 (or 0, or None, where allowed).
    NaN would otherwise wait forever, and a string fail later on arithmetic."""
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        allowed = " or None" if none_ok else ""
        raise TypeError(f"{name} must be a number of seconds{allowed}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        bound = "0 or more" if zero_ok else "above 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return float(value)


def _candidate(raw: Any, where: str) -> dict[str, Any] | None:
    """One candidate message (JSON of an RTCIceCandidate, or null), checked."""
    if not isinstance(raw, str):
        raise TypeError(f"{where} must be a candidate message (a JSON string), got {type(raw).__name__}")
    try:
        value = json.loads(raw)
    except ValueError:
        raise SignalingError(f"{where} is not JSON: {raw[:80]!r}") from None
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("candidate", ""), str):
        raise SignalingError(f"{where} is not a candidate message "
                             f'({{"candidate": "candidate:...", "sdpMid": "0"}}): {raw[:80]!r}')
    return value


def merge_candidates(sdp: str, candidates: list[str], end_of_candidates: bool = True) -> str:
    """Returns `sdp` with the given candidate JSON messages added as a=candidate
    lines to the media section of their mid (for peers that do not trickle, e.g. WHEP).
    A message that is not a candidate's JSON raises SignalingError (a ValueError)."""
    if not isinstance(sdp, str):
        raise TypeError(f"sdp must be a string, got {type(sdp).__name__}")
    if isinstance(candidates, str):  # a lone message would be taken character by character
        raise TypeError("candidates must be a list of candidate messages, got a single string")
    lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
    by_mid: dict[str, list[str]] = {}
    for i, raw in enumerate(candidates):
        value = _candidate(raw, f"candidates[{i}]")
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

# How long send() of an offer or request_offer keeps the target's turn while
# the engine's description is on its way (see send()).
_DESCRIPTION_WAIT_S = 10.0

# The adapter open on each engine, by id(engine): an engine has one signaling
# callback, and a second adapter would take it over silently (the first one's
# opens would then only time out). A closed or collected adapter frees its slot.
_adapters: dict[int, weakref.ref[AsyncSignaling]] = {}


class _SessionQueue:
    """One session's messages, in order, for any number of readers.

    Not an asyncio.Queue: a reader waits for a message to be there and only
    then takes it, without awaiting in between. A reader cancelled (or timed
    out) at any point so takes nothing, and no cancellation is lost, which
    asyncio.Queue.get() under asyncio.wait_for() does not promise before
    Python 3.12 (CPython gh-86296)."""

    def __init__(self, description_type: str) -> None:
        self._items: collections.deque[Message] = collections.deque()
        self._arrived = asyncio.Event()  # set while a message waits
        self.description_type = description_type  # "answer" or "offer"
        # Set whenever a description, a bye or the end is put (send()'s wait
        # for the description, its only user, clears it).
        self.described = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Message) -> None:
        self._items.append(item)
        self._arrived.set()
        if item is _END or item[0] in (self.description_type, "bye"):
            self.described.set()

    def end(self) -> None:
        """No more messages: readers take what is queued, then stop."""
        self.put(_END)

    def has_description_or_end(self) -> bool:
        return any(item is _END or item[0] == self.description_type for item in self._items)

    def _before_description(self) -> list[Message]:
        head = []
        for item in self._items:
            if item is _END or item[0] == self.description_type:
                break
            head.append(item)
        return head

    def has_early_bye(self) -> bool:
        """Whether a bye is queued ahead of the description."""
        return any(item[0] == "bye" for item in self._before_description())

    def drop_early_byes(self) -> None:
        head = self._before_description()
        rest = list(self._items)[len(head):]
        self._items = collections.deque([item for item in head if item[0] != "bye"] + rest)

    def drain(self) -> list[Message]:
        """Takes every queued message (not the end marker)."""
        items = [item for item in self._items if item is not _END]
        self._items = collections.deque(item for item in self._items if item is _END)
        return items

    async def take(self, timeout: float | None = None) -> Message | None:
        """The next message; None once the queue has ended (for every reader).
        Raises TimeoutError after `timeout` seconds without one."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._items:
            self._arrived.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError
            arrival = asyncio.ensure_future(self._arrived.wait())
            try:
                await asyncio.wait({arrival}, timeout=remaining)
            finally:
                arrival.cancel()
        item = self._items[0]
        if item is _END:
            return None  # stays, for every other reader
        self._items.popleft()
        return item


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

    It installs itself as the engine's signaling callback: one adapter per
    engine, so a second one on an engine whose adapter is still open raises
    RuntimeError (close() the first). Each session opened through it has its
    own queue of messages; messages for targets nobody awaits go to
    `on_message`, if given.

    The engine and the adapter then refer to each other through C++, where
    Python's collector cannot see it: `close()` (or the engine's `shutdown()`)
    before dropping them, or the engine is never freed.
    """

    engine: AudioManager
    _closed: bool

    def __init__(
        self,
        engine: AudioManager,
        loop: asyncio.AbstractEventLoop | None = None,
        on_message: Callable[[str, str, str], Any] | None = None,
    ) -> None:
        if not all(callable(getattr(engine, name, None)) for name in (
                "set_python_webrtc_signaling_callback", "handle_incoming_webrtc_signaling_message")):
            raise TypeError(f"engine must be a sinkcast.AudioManager, got {type(engine).__name__}")
        if on_message is not None and not callable(on_message):
            raise TypeError(f"on_message must be callable or None, got {type(on_message).__name__}")
        holder = _adapters.get(id(engine))
        other = holder() if holder is not None else None
        # (The id of an engine that was freed may be another engine's now: only its own adapter counts.)
        if other is not None and other.engine is engine and not other._closed and not getattr(engine, "closed", False):
            raise RuntimeError("this engine already has an open AsyncSignaling (an engine has one signaling "
                               "callback): close() that one first, or share it")
        self.engine = engine
        self.loop = loop or asyncio.get_running_loop()
        self.on_message = on_message
        self._queues: dict[str, _SessionQueue] = {}
        # The queue of an open still waiting for the engine's verdict: it takes
        # the target's messages meanwhile, while readers keep the old queue.
        self._pending: dict[str, _SessionQueue] = {}
        self._opening: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # on_message coroutines, kept until they finish
        self._closed = False
        engine.set_python_webrtc_signaling_callback(self._from_engine_thread)
        key = id(engine)
        self._slot = weakref.ref(self, lambda ref: _adapters.pop(key) if _adapters.get(key) is ref else None)
        _adapters[key] = self._slot

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
            queue.put((type, message))
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

    def _session_queue(self, target: str) -> _SessionQueue:
        # Only an open makes a queue: a reader that made one for a session that
        # has ended would wait forever, and take messages meant for on_message.
        queue = self._queues.get(target)
        if queue is None:
            raise SignalingError(
                f"no session of '{target}' to read: none was opened through this adapter, "
                "or it was closed, replaced or forgotten, or a reader took its bye"
            )
        return queue

    def _detach(self, target: str, queue: _SessionQueue | None = None) -> None:
        """Stops filling the target's queue (only `queue`, if given) and ends it for its readers."""
        current = self._queues.get(target)
        if current is not None and (queue is None or queue is current):
            del self._queues[target]
            current.end()

    def _ended(self, target: str, queue: _SessionQueue) -> None:
        # A reader took the session's bye: later messages on the target go to
        # on_message, and every other reader of the queue stops.
        if self._queues.get(target) is queue:
            del self._queues[target]
        queue.end()

    # -- calls into the engine ------------------------------------------------------

    async def send(self, target: str, type: str, message: str = "") -> None:
        """handle_incoming_webrtc_signaling_message, off the event loop's thread.

        An offer or request_offer opens a session as open_listener() and
        request_offer() do, and returns once the session's description (answer
        or offer) is in its queue, unread: read it and what follows with
        next_message() or messages(). If the engine refuses it, nothing changes
        here either. A bye closes the session as close_listener() does."""
        self._check_open()
        if type in ("offer", "request_offer"):
            async with self._one_open_at_a_time(target):
                queue = await self._start(target, type, message)
                # The engine makes the description on its own threads after the
                # call has returned. Until it is in, the next open of the target
                # could take it for its own, so the turn is kept till then.
                try:
                    await self._wait_for_description(target, queue, _DESCRIPTION_WAIT_S)
                except BaseException:
                    await self._abandon(target, queue)
                    raise
                if self._closed:
                    await self._abandon(target, queue)
                    self._check_open()
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

    async def _wait_for_description(self, target: str, queue: _SessionQueue, timeout: float) -> None:
        """Waits, at most `timeout` seconds, until the new session's description
        is queued or the session is over, without taking anything: then the
        first bye in the queue, if any, is the session's own end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            queue.described.clear()
            if queue.has_early_bye():
                # A session sends its description before anything else, so a
                # bye before it is either this session's end or the last word of
                # the session it replaced, already on its way when the new one
                # opened. The engine knows which.
                if not self._has_session(target):
                    return
                queue.drop_early_byes()
            if queue.has_description_or_end():
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            news = asyncio.ensure_future(queue.described.wait())
            try:
                await asyncio.wait({news}, timeout=remaining)
            finally:
                news.cancel()

    async def open_listener(
        self, target: str, offer: str, *, timeout: float = 10.0, gather: bool = True, gather_timeout: float = 2.0
    ) -> str:
        """Opens a session from a listener's offer and returns the engine's answer.

        With gather=True (for peers that do not trickle, like WHEP players) it
        waits for the engine's end of candidates and returns the answer with
        every candidate in it; otherwise the candidates follow as messages.
        The wait for candidates ends `gather_timeout` seconds after the answer
        came: then the answer carries the candidates gathered so far, without
        a=end-of-candidates (a STUN server that never replies holds the end of
        candidates back for some 20 s), and the later ones follow as messages.
        If no answer comes within `timeout` (or on cancellation), the session is closed.
        The session's later messages wait in its queue until read (next_message(),
        messages()) or until forget() hands them to on_message."""
        return await self._open(target, "offer", offer, "answer", timeout, gather, gather_timeout)

    async def request_offer(
        self, target: str, *, timeout: float = 10.0, gather: bool = True, gather_timeout: float = 2.0
    ) -> str:
        """Opens a session where the engine offers; returns its offer (with its
        candidates as open_listener() gathers them). Answer with send(target, "answer", sdp)."""
        return await self._open(target, "request_offer", "", "offer", timeout, gather, gather_timeout)

    async def _open(
        self, target: str, type: str, message: str, wanted: str, timeout: Any, gather: bool, gather_timeout: Any
    ) -> str:
        # (0 is allowed: an open that gives up at once still closes what it opened.)
        timeout_s = _seconds("timeout", timeout, zero_ok=True)
        gather_s = _seconds("gather_timeout", gather_timeout, zero_ok=True)
        assert timeout_s is not None and gather_s is not None
        self._check_open()
        async with self._one_open_at_a_time(target):
            queue = await self._start(target, type, message)
            try:
                return await self._collect_description(target, queue, wanted, timeout_s, gather, gather_s)
            except BaseException:
                await self._abandon(target, queue)
                raise

    async def _start(self, target: str, type: str, message: str) -> _SessionQueue:
        """Asks the engine to open a session on the target (under its open lock);
        returns the new session's queue, which the target's messages now fill."""
        # One turn of the loop first: messages the engine already handed
        # over (call_soon_threadsafe) land in the earlier session's queue.
        await asyncio.sleep(0)
        self._check_open()  # (closed while this open waited for its turn)
        new = _SessionQueue("offer" if type == "request_offer" else "answer")
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

    def _accepted(self, target: str, new: _SessionQueue) -> None:
        # The engine replaced the target's session: its queue ends for its readers.
        del self._pending[target]
        old = self._queues.get(target)
        self._queues[target] = new
        if old is not None:
            old.end()

    def _refused(self, target: str, new: _SessionQueue) -> None:
        # What arrived meanwhile is the earlier session's (a refused call opens
        # nothing): it goes where it would have gone, in order.
        del self._pending[target]
        for item in new.drain():
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

    async def _abandon(self, target: str, queue: _SessionQueue) -> None:
        """Closes a session the engine opened but whose opener gave up on it.

        Runs under the target's open lock, so the session there is still the
        one this open made (or one closed since: then the bye does nothing)."""
        await self._bye(target, "", queue)  # a refused bye (engine closed, sink removed): nothing to close

    async def _bye(
        self, target: str, message: str, queue: _SessionQueue | None = None
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
        self, target: str, queue: _SessionQueue, wanted: str, timeout: float, gather: bool, gather_timeout: float
    ) -> str:
        candidates: list[str] = []
        description: str | None = None
        ended = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        gather_deadline = math.inf  # set once the description is in
        await self._wait_for_description(target, queue, timeout)
        while True:
            remaining = deadline - loop.time()
            if description is not None:
                # Gathering: the description is in hand, so waiting ends at the
                # gather deadline (or the overall one) with what has come so far,
                # queued candidates included (take() hands out what is queued
                # even past its deadline, and only then times out).
                remaining = min(remaining, gather_deadline - loop.time())
            elif remaining <= 0:
                raise TimeoutError(f"no {wanted} for '{target}' within {timeout} s")
            try:
                item = await queue.take(remaining)
            except TimeoutError:
                if description is not None:
                    return merge_candidates(description, candidates, end_of_candidates=False)
                raise TimeoutError(f"no {wanted} for '{target}' within {timeout} s") from None
            if item is None:
                raise SignalingError(f"session '{target}' was closed or replaced before its {wanted}")
            type, message = item
            if type == "bye":  # (the replaced session's last bye was dropped while waiting)
                self._ended(target, queue)
                raise SignalingError(f"session '{target}' closed before its {wanted}: {message}")
            if type == wanted:
                description = message
                if not gather:
                    return description
                gather_deadline = loop.time() + gather_timeout
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
        took its bye; TimeoutError after `timeout` seconds without a message
        (None: no limit; 0: only a message already there)."""
        timeout = _seconds("timeout", timeout, zero_ok=True, none_ok=True)
        queue = self._session_queue(target)
        try:
            item = await queue.take(timeout)
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
        while (item := await queue.take()) is not None:
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
        unread = queue.drain()
        queue.end()
        # Here and now: any later message of the target is still on its way
        # through the loop, so these stay ahead of it. An on_message that
        # raises is reported as the loop reports its callbacks' errors.
        for type, message in unread:
            try:
                self._elsewhere(target, type, message)
            except Exception as error:
                self.loop.call_exception_handler(
                    {"message": f"on_message raised for {target} {type}", "exception": error}
                )

    def close(self) -> None:
        """Detaches from the engine: clears its signaling callback; every reader,
        and every open still in progress, stops. Later calls raise SignalingError."""
        self._closed = True
        if _adapters.get(id(self.engine)) is self._slot:
            del _adapters[id(self.engine)]  # the engine may take another adapter now
        # (An engine shut down, maybe by another thread just now, has no callback left.)
        with contextlib.suppress(EngineClosedError):
            self.engine.set_python_webrtc_signaling_callback(None)
        for target in list(self._queues):
            self._detach(target)
        for queue in self._pending.values():
            queue.end()  # the open fails once accepted, and closes its session

    def _check_open(self) -> None:
        if self._closed:
            raise SignalingError("this AsyncSignaling was closed; make a new one to go on")


__all__ = ["AsyncSignaling", "merge_candidates"]
