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


class AsyncSignaling:
    """Bridges an AudioManager's signaling into an asyncio event loop.

    It installs itself as the engine's signaling callback (one adapter per
    engine). Messages for targets nobody awaits go to `on_message`, if given.
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
        engine.set_python_webrtc_signaling_callback(self._from_engine_thread)

    # -- delivery ---------------------------------------------------------------

    def _from_engine_thread(self, target: str, type: str, message: str) -> None:
        try:
            self.loop.call_soon_threadsafe(self._dispatch, target, type, message)
        except RuntimeError:
            pass  # the loop is closed: nobody is left to tell

    def _dispatch(self, target: str, type: str, message: str) -> None:
        queue = self._queues.get(target)
        if queue is not None:
            queue.put_nowait((type, message))
        elif self.on_message is not None:
            result = self.on_message(target, type, message)
            if asyncio.iscoroutine(result):
                self.loop.create_task(result)

    async def _unread(self, target: str) -> list[Message]:
        # The messages an earlier session on this target left unread. One turn
        # of the loop first: messages the engine already handed over are
        # scheduled into it (call_soon_threadsafe) and land here. The engine
        # delivers nothing of the old session once the new one is opened, and
        # what it did deliver comes before the new session's first message.
        await asyncio.sleep(0)
        return self._refill(target, lambda item: True)

    def _drop(self, target: str, stale: list[Message]) -> None:
        # Removes exactly those messages (by identity: a reader may have taken
        # some meanwhile, and equal messages of the new session must stay).
        if stale:
            gone = {id(m) for m in stale}
            self._refill(target, lambda item: id(item) not in gone)

    def _refill(self, target: str, keep: Callable[[Message], bool]) -> list[Message]:
        """Empties the target's queue and puts back, in order, the messages `keep` accepts
        (nothing else runs in between); returns them."""
        queue = self._queue(target)
        kept = [item for item in (queue.get_nowait() for _ in range(queue.qsize())) if keep(item)]
        for item in kept:
            queue.put_nowait(item)
        return kept

    def _queue(self, target: str) -> asyncio.Queue[Message]:
        queue = self._queues.get(target)
        if queue is None:
            queue = self._queues[target] = asyncio.Queue()
        return queue

    # -- calls into the engine ------------------------------------------------------

    async def send(self, target: str, type: str, message: str = "") -> None:
        """handle_incoming_webrtc_signaling_message, off the event loop's thread.

        An offer or request_offer starts queueing the target's messages (read
        them with next_message() or messages()) before the engine can answer."""
        if type in ("offer", "request_offer"):
            self._queue(target)
        await asyncio.to_thread(self.engine.handle_incoming_webrtc_signaling_message, target, type, message)

    async def open_listener(
        self, target: str, offer: str, *, timeout: float = 10.0, gather: bool = True
    ) -> str:
        """Opens a session from a listener's offer and returns the engine's answer.

        With gather=True (for peers that do not trickle, like WHEP players) it
        waits for the engine's end of candidates and returns the answer with
        every candidate in it; otherwise the candidates follow as messages."""
        return await self._open(target, "offer", offer, "answer", timeout, gather)

    async def request_offer(self, target: str, *, timeout: float = 10.0, gather: bool = True) -> str:
        """Opens a session where the engine offers; returns its offer. Answer with send(target, "answer", sdp)."""
        return await self._open(target, "request_offer", "", "offer", timeout, gather)

    async def _open(self, target: str, type: str, message: str, wanted: str, timeout: float, gather: bool) -> str:
        created = target not in self._queues
        # Messages left from an earlier session must not pass for the new
        # one's; but they are dropped only once the engine has accepted the
        # new session. A refused offer changes nothing, so whoever reads the
        # earlier session's messages still gets every one of them.
        stale = await self._unread(target)
        try:
            await self.send(target, type, message)
            self._drop(target, stale)
            return await self._collect_description(target, wanted, timeout, gather)
        except BaseException:
            self._forget_after_failed_open(target, created)
            raise

    def _has_session(self, target: str) -> bool:
        try:
            return target in self.engine.listeners()
        except EngineClosedError:
            return False

    def _forget_after_failed_open(self, target: str, created: bool) -> None:
        # A failed open leaves no queue behind (the WHEP server opens every POST
        # under a new target), but only its own, and only if no session lives
        # there: a refused offer changes nothing, so an earlier session on the
        # target, and whoever reads its messages, carry on.
        if created and not self._has_session(target):
            self._queues.pop(target, None)

    async def _collect_description(self, target: str, wanted: str, timeout: float, gather: bool) -> str:
        queue = self._queue(target)
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
                type, message = await asyncio.wait_for(queue.get(), remaining)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no {wanted} for '{target}' within {timeout} s") from None
            if type == "bye":
                # A session sends its description before anything else, so a bye
                # before it is either this session's end or the last word of the
                # session it replaced, already on its way when the new one opened.
                # The engine knows which.
                if description is None and self._has_session(target):
                    continue
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
        """The next (type, message) the engine sent to `target`."""
        return await asyncio.wait_for(self._queue(target).get(), timeout)

    async def messages(self, target: str) -> AsyncIterator[Message]:
        """Every (type, message) the engine sends to `target`, until its bye."""
        queue = self._queue(target)
        while True:
            item = await queue.get()
            yield item
            if item[0] == "bye":
                return

    async def close_listener(self, target: str) -> None:
        """Closes the session (as if the listener said bye) and forgets its queue."""
        try:
            await self.send(target, "bye", "")
        finally:
            self._queues.pop(target, None)

    def forget(self, target: str) -> None:
        """Stops queueing messages for `target` (they go to on_message again)."""
        self._queues.pop(target, None)

    def close(self) -> None:
        """Detaches from the engine: clears its signaling callback."""
        if not self.engine.closed:
            self.engine.set_python_webrtc_signaling_callback(None)
        self._queues.clear()


__all__ = ["AsyncSignaling", "merge_candidates"]
