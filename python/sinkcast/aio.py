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
        elif self.on_message is not None:
            result = self.on_message(target, type, message)
            if asyncio.iscoroutine(result):
                task = self.loop.create_task(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _queue(self, target: str) -> asyncio.Queue[Message]:
        queue = self._queues.get(target)
        if queue is None:
            queue = self._queues[target] = asyncio.Queue()
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

    def _ended(self, target: str, queue: asyncio.Queue[Message]) -> None:
        # A reader took the session's bye: later messages on the target go to
        # on_message, and every other reader of the queue stops.
        if self._queues.get(target) is queue:
            del self._queues[target]
        queue.put_nowait(_END)

    # -- calls into the engine ------------------------------------------------------

    async def send(self, target: str, type: str, message: str = "") -> None:
        """handle_incoming_webrtc_signaling_message, off the event loop's thread.

        An offer or request_offer starts queueing the target's messages (read
        them with next_message() or messages()) before the engine can answer;
        if the engine refuses it, a queue it created goes again."""
        created = type in ("offer", "request_offer") and target not in self._queues
        if created:
            self._queue(target)
        try:
            await asyncio.to_thread(self.engine.handle_incoming_webrtc_signaling_message, target, type, message)
        except BaseException:
            queue = self._queues.get(target)
            if created and queue is not None and queue.empty():
                self._detach(target, queue)
            raise

    async def open_listener(
        self, target: str, offer: str, *, timeout: float = 10.0, gather: bool = True
    ) -> str:
        """Opens a session from a listener's offer and returns the engine's answer.

        With gather=True (for peers that do not trickle, like WHEP players) it
        waits for the engine's end of candidates and returns the answer with
        every candidate in it; otherwise the candidates follow as messages.
        If no answer comes (timeout, cancellation), the session is closed."""
        return await self._open(target, "offer", offer, "answer", timeout, gather)

    async def request_offer(self, target: str, *, timeout: float = 10.0, gather: bool = True) -> str:
        """Opens a session where the engine offers; returns its offer. Answer with send(target, "answer", sdp)."""
        return await self._open(target, "request_offer", "", "offer", timeout, gather)

    async def _open(self, target: str, type: str, message: str, wanted: str, timeout: float, gather: bool) -> str:
        async with self._one_open_at_a_time(target):
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
            try:
                return await self._collect_description(target, new, wanted, timeout, gather)
            except BaseException:
                await self._abandon(target, new)
                raise

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
            self._dispatch(target, *new.get_nowait())

    @contextlib.asynccontextmanager
    async def _one_open_at_a_time(self, target: str) -> AsyncIterator[None]:
        # The engine keeps the last of two opens on one target, and each opener
        # must read its own session's description. Messages name only their
        # target, so the next open starts once the last one has its description
        # (and its candidates, with gather). The lock is dropped with its last
        # user (the WHEP server opens every POST under a new target).
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
        # The bye first: once it has returned the engine delivers nothing more of
        # the session, and what it delivered before lands in the queue, which
        # goes with it (instead of reaching on_message).
        call = asyncio.ensure_future(
            asyncio.to_thread(self.engine.handle_incoming_webrtc_signaling_message, target, "bye", "")
        )
        _, cancelled = await _wait_out(call)  # a refused bye (engine closed, sink removed): nothing to close
        self._detach(target, queue)
        if cancelled:
            raise asyncio.CancelledError

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
                item = await asyncio.wait_for(self._take(queue), remaining)
            except asyncio.TimeoutError:
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
        """The next (type, message) the engine sent to `target`.

        Raises SignalingError once the session was closed here, replaced or
        forgotten, or once another reader took its bye."""
        queue = self._queue(target)
        item = await asyncio.wait_for(self._take(queue), timeout)
        if item is None:
            raise SignalingError(f"no more messages for '{target}': it was closed, replaced or forgotten")
        if item[0] == "bye":
            self._ended(target, queue)
        return item

    async def messages(self, target: str) -> AsyncIterator[Message]:
        """Every (type, message) the engine sends to `target`, until its bye (or
        until the session is closed here, replaced or forgotten)."""
        queue = self._queue(target)
        while (item := await self._take(queue)) is not None:
            if item[0] == "bye":
                self._ended(target, queue)
            yield item
            if item[0] == "bye":
                return

    async def close_listener(self, target: str) -> None:
        """Closes the session (as if the listener said bye); its readers stop."""
        try:
            await self.send(target, "bye", "")
        finally:
            self._detach(target)

    def forget(self, target: str) -> None:
        """Stops queueing messages for `target` (they go to on_message again); its readers stop."""
        self._detach(target)

    def close(self) -> None:
        """Detaches from the engine: clears its signaling callback; every reader stops."""
        if not self.engine.closed:
            self.engine.set_python_webrtc_signaling_callback(None)
        for target in list(self._queues):
            self._detach(target)


__all__ = ["AsyncSignaling", "merge_candidates"]
