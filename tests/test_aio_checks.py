"""The asyncio adapter: what it refuses at the call, one adapter per engine, and bounded ICE gathering."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import sinkcast
from sinkcast.aio import AsyncSignaling, _SessionQueue, merge_candidates
from webrtc_peer import Listener

@pytest.fixture
def engine() -> Iterator[sinkcast.AudioManager]:
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s", channels=1)
    try:
        yield eng
    finally:
        eng.shutdown()


@pytest.fixture
def stun_black_hole() -> Iterator[int]:
    """The port of a STUN server that never answers (a UDP socket nobody reads)."""
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(("127.0.0.1", 0))
    try:
        yield hole.getsockname()[1]
    finally:
        hole.close()


# ---------------------------------------------------------------- timeouts and arguments


@pytest.mark.parametrize(
    ("timeout", "error", "message"),
    [
        (float("nan"), ValueError, "timeout must be a finite number of seconds 0 or more, got nan"),
        (float("inf"), ValueError, "timeout must be a finite number of seconds 0 or more, got inf"),
        (-1, ValueError, "timeout must be a finite number of seconds 0 or more, got -1"),
        ("5", TypeError, "timeout must be a number of seconds or None, got str '5'"),
        (True, TypeError, "timeout must be a number of seconds or None, got bool True"),
    ],
)
@pytest.mark.asyncio
async def test_next_message_refuses_a_timeout_that_is_not_seconds(
    engine: sinkcast.AudioManager, timeout: Any, error: type, message: str
) -> None:
    # NaN waited forever.
    sig = AsyncSignaling(engine)
    try:
        await sig.request_offer("s/a")
        with pytest.raises(error, match=message):
            await asyncio.wait_for(sig.next_message("s/a", timeout=timeout), 5)
        with pytest.raises(TimeoutError):  # 0: only a message already there
            await sig.next_message("s/a", timeout=0)
    finally:
        sig.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"timeout": "5"}, TypeError, "timeout must be a number of seconds, got str '5'"),
        ({"timeout": float("nan")}, ValueError, "timeout must be a finite number of seconds 0 or more, got nan"),
        ({"timeout": -1}, ValueError, "timeout must be a finite number of seconds 0 or more, got -1"),
        ({"gather_timeout": -2.0}, ValueError, "gather_timeout must be a finite number of seconds 0 or more"),
        ({"gather_timeout": float("inf")}, ValueError, "gather_timeout must be a finite number of seconds 0 or more"),
        ({"gather_timeout": None}, TypeError, "gather_timeout must be a number of seconds, got NoneType"),
    ],
)
@pytest.mark.asyncio
async def test_opens_refuse_a_timeout_that_is_not_seconds(
    engine: sinkcast.AudioManager, kwargs: dict[str, Any], error: type, message: str
) -> None:
    # timeout="5" failed with an unrelated TypeError from inside the adapter.
    sig = AsyncSignaling(engine)
    try:
        with pytest.raises(error, match=message):
            await sig.request_offer("s/b", **kwargs)
        with pytest.raises(error, match=message):
            await sig.open_listener("s/c", "v=0", **kwargs)
        assert engine.listeners() == []  # refused before anything was opened
    finally:
        sig.close()


@pytest.mark.asyncio
async def test_an_adapter_needs_an_engine(engine: sinkcast.AudioManager) -> None:
    # AsyncSignaling(None) failed with an AttributeError.
    with pytest.raises(TypeError, match="engine must be a sinkcast.AudioManager, got NoneType"):
        AsyncSignaling(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_message must be callable or None, got str"):
        AsyncSignaling(engine, on_message="print")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("candidates", "error", "message"),
    [
        (["{not json"], sinkcast.SignalingError, r"candidates\[0\] is not JSON"),
        (['"candidate:1 1 udp 1 127.0.0.1 9 typ host"'], sinkcast.SignalingError,
         r"candidates\[0\] is not a candidate message"),
        (['{"candidate": 5}'], sinkcast.SignalingError, r"candidates\[0\] is not a candidate message"),
        ([None], TypeError, r"candidates\[0\] must be a candidate message \(a JSON string\), got NoneType"),
        ('{"candidate": ""}', TypeError, "candidates must be a list of candidate messages"),
    ],
)
def test_merge_candidates_names_the_message_it_cannot_take(candidates: Any, error: type, message: str) -> None:
    # Bare JSONDecodeError and AttributeError before.
    with pytest.raises(error, match=message):
        merge_candidates("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n", candidates)


def test_merge_candidates_still_takes_candidates_and_their_end() -> None:
    sdp = merge_candidates("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n", [
        json.dumps({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}),
        "null", json.dumps({"candidate": "", "sdpMid": "0"}),
    ])
    assert sdp.endswith("a=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n")


# ---------------------------------------------------------------- one adapter per engine


@pytest.mark.asyncio
async def test_a_second_adapter_on_an_engine_is_refused_until_the_first_is_closed(
    engine: sinkcast.AudioManager,
) -> None:
    # The second one took the engine's callback over silently: the first then only timed out.
    first = AsyncSignaling(engine)
    with pytest.raises(RuntimeError, match="this engine already has an open AsyncSignaling"):
        AsyncSignaling(engine)
    assert (await first.request_offer("s/a", timeout=5)).startswith("v=0")  # still the engine's adapter
    first.close()
    second = AsyncSignaling(engine)
    try:
        assert (await second.request_offer("s/b", timeout=5)).startswith("v=0")
    finally:
        second.close()
    # One adapter per engine, not per process.
    other = sinkcast.AudioManager(realtime=False)
    try:
        AsyncSignaling(other).close()
    finally:
        other.shutdown()


@pytest.mark.asyncio
async def test_a_collected_adapter_frees_its_engines_slot(engine: sinkcast.AudioManager) -> None:
    adapter = AsyncSignaling(engine)
    engine.set_python_webrtc_signaling_callback(None)  # the engine no longer holds it
    del adapter
    gc.collect()
    AsyncSignaling(engine).close()


@pytest.mark.asyncio
async def test_an_adapter_of_a_shut_down_engine_does_not_hold_its_slot() -> None:
    eng = sinkcast.AudioManager(realtime=False)
    AsyncSignaling(eng)
    eng.shutdown()
    with pytest.raises(sinkcast.EngineClosedError):  # the engine's own refusal, not "already has an adapter"
        AsyncSignaling(eng)


# ---------------------------------------------------------------- ICE gathering


@pytest.mark.asyncio
async def test_open_listener_answers_after_gather_timeout_when_candidates_do_not_end(stun_black_hole: int) -> None:
    # With a STUN server that never answers, the engine ends its candidates
    # only after some 20 s: gather=True waited for that end, past any timeout.
    eng = sinkcast.AudioManager(bind_address="127.0.0.1", ice_servers=[f"stun:127.0.0.1:{stun_black_hole}"])
    eng.add_sink("s", channels=1)
    sig = AsyncSignaling(eng)
    listener = Listener()
    try:
        answer = await sig.open_listener("s/l1", await listener.offer(), timeout=8.0)  # default gather_timeout
        assert "a=candidate:" in answer and "127.0.0.1" in answer
        assert "a=end-of-candidates" not in answer  # more may come: it does not say there are none
    finally:
        await listener.close()
        sig.close()
        eng.shutdown()


@pytest.mark.asyncio
async def test_open_listener_still_waits_for_the_end_of_candidates_that_comes(engine: sinkcast.AudioManager) -> None:
    sig = AsyncSignaling(engine)
    listener = Listener()
    try:
        answer = await sig.open_listener("s/l1", await listener.offer(), timeout=8.0, gather_timeout=5.0)
        assert "a=candidate:" in answer and answer.rstrip().endswith("a=end-of-candidates")
    finally:
        await listener.close()
        sig.close()


@pytest.mark.asyncio
async def test_a_zero_gather_timeout_still_takes_the_candidates_already_queued(engine: sinkcast.AudioManager) -> None:
    # It returned the answer bare while its candidates and their end already
    # waited in the queue: an answer a WHEP player could not use. The queue is
    # filled first, so that nothing depends on when the engine's messages come.
    sig = AsyncSignaling(engine)
    try:
        queue = _SessionQueue("answer")
        queue.put(("answer", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"))
        host = '{"candidate": "candidate:1 1 UDP 2122317823 127.0.0.1 50000 typ host", "sdpMid": "0"}'
        queue.put(("candidate", host))
        queue.put(("candidate", '{"candidate": "", "sdpMid": "0"}'))
        answer = await sig._collect_description("s/l1", queue, "answer", 1.0, True, 0.0)
        assert "a=candidate:1 1 UDP 2122317823 127.0.0.1 50000 typ host" in answer
        assert answer.rstrip().endswith("a=end-of-candidates")
        # With nothing queued after the answer, it returns at once, without the end.
        queue.put(("answer", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"))
        bare = await sig._collect_description("s/l1", queue, "answer", 1.0, True, 0.0)
        assert "a=candidate" not in bare and "end-of-candidates" not in bare
    finally:
        sig.close()
