"""The signaling contract of DESIGN.md: errors, callback lifetime, threads."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sinkcast
from sinkcast.aio import AsyncSignaling
from helpers_subprocess.common import thread_count, threads_named, wait_until
from webrtc_peer import Listener, aiortc_offer




OFFER = aiortc_offer()


@pytest.fixture
def eng() -> Iterator[sinkcast.AudioManager]:
    e = sinkcast.AudioManager(bind_address="127.0.0.1")
    e.add_sink("s", channels=2)
    e.add_tone_source("t")
    e.connect("t", "s")
    yield e
    e.shutdown()


def without_opus(sdp: str) -> str:
    lines = [l for l in sdp.split("\r\n") if "opus" not in l.lower()]
    return "\r\n".join(lines)


def audio_to_video(sdp: str) -> str:
    return sdp.replace("m=audio", "m=video")


BAD_MESSAGES = [
    ("s/a", "offer", "hello, I am not SDP", "SDP"),
    ("s/a", "offer", "v=0\r\n", "ICE credentials"),
    ("s/a", "offer", None, "Opus"),  # filled in: an offer without Opus
    ("s/a", "offer", "video", "audio"),  # filled in: a video-only offer
    ("s/a", "candidate", '{"candidate": "candidate:1 1 UDP 1 127.0.0.1 9 typ host", "sdpMid": "0"}', "a candidate before any offer"),
    ("s/a", "answer", "v=0\r\n", "no session"),
    ("s/a", "greeting", "", "unknown signaling type"),
    ("s/a", "offer", "x" * (64 * 1024 + 1), "limit"),
    ("", "offer", OFFER, "empty target"),
    ("s/", "offer", OFFER, "empty listener id"),
]


@pytest.mark.parametrize(("target", "type", "message", "reason"), BAD_MESSAGES)
def test_bad_messages_raise_signaling_error_and_change_nothing(
    eng: sinkcast.AudioManager, target: str, type: str, message: str | None, reason: str
) -> None:
    if message is None:
        message = without_opus(OFFER)
    elif message == "video":
        message = audio_to_video(OFFER)
    eng.handle_incoming_webrtc_signaling_message("s/keep", "offer", OFFER)
    before = (eng.listeners(), eng.stats()["live_peers"])
    with pytest.raises(sinkcast.SignalingError, match=reason):
        eng.handle_incoming_webrtc_signaling_message(target, type, message)
    assert (eng.listeners(), eng.stats()["live_peers"]) == before


def test_unknown_sink_raises_unknown_sink_error(eng: sinkcast.AudioManager) -> None:
    with pytest.raises(sinkcast.UnknownSinkError, match="nope"):
        eng.handle_incoming_webrtc_signaling_message("nope/l", "offer", OFFER)
    with pytest.raises(KeyError):
        eng.handle_incoming_webrtc_signaling_message("nope", "candidate", "candidate:1 1 UDP 1 127.0.0.1 9 typ host")
    assert eng.listeners() == []


def test_wrong_types_raise_type_error(eng: sinkcast.AudioManager) -> None:
    with pytest.raises(TypeError):
        eng.handle_incoming_webrtc_signaling_message("s", "offer", b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        eng.set_python_webrtc_signaling_callback(42)  # type: ignore[arg-type]


def test_a_second_offer_replaces_the_default_session(eng: sinkcast.AudioManager) -> None:
    eng.handle_incoming_webrtc_signaling_message("s", "offer", OFFER)
    eng.handle_incoming_webrtc_signaling_message("s", "offer", OFFER)
    assert eng.listeners() == ["s"]
    wait_until(lambda: eng.stats()["live_peers"] == 1)


def test_a_replaced_session_delivers_nothing_once_its_replacement_returns(eng: sinkcast.AudioManager) -> None:
    # A slow application: the engine's messages queue up behind its callback.
    # Whatever the first session still had queued (its offer, candidates, end of
    # candidates) when a second request_offer replaced it must not reach the
    # application afterwards, under the same target, passing for the new one's.
    started: list[tuple[float, str, str]] = []

    def slow(target: str, type: str, message: str) -> None:
        started.append((time.monotonic(), type, message))
        time.sleep(0.1)

    eng.set_python_webrtc_signaling_callback(slow)
    eng.handle_incoming_webrtc_signaling_message("s", "request_offer", "")
    wait_until(lambda: len(started) >= 1)  # the first session's offer is being delivered
    eng.handle_incoming_webrtc_signaling_message("s", "request_offer", "")
    replaced_at = time.monotonic()
    wait_until(lambda: any(ty == "candidate" and not json.loads(m)["candidate"] for _, ty, m in started[1:]))
    time.sleep(0.3)  # anything left would have come by now

    offers = [re.search(r"a=ice-ufrag:(\S+)", m).group(1) for _, ty, m in started if ty == "offer"]
    assert len(offers) == 2  # the first was on its way when it was replaced; it still arrives, first
    old, new = offers
    after = [(ty, m) for t, ty, m in started if t > replaced_at]
    assert [ty for ty, _ in after][0] == "offer" and old not in after[0][1]
    for ty, m in after:
        if ty == "candidate" and json.loads(m)["candidate"]:
            assert json.loads(m).get("usernameFragment") in (None, new)
    assert sum(1 for ty, m in after if ty == "candidate" and not json.loads(m)["candidate"]) == 1


def test_end_of_candidates_names_the_audio_section_when_video_comes_first(eng: sinkcast.AudioManager) -> None:
    async def video_then_audio_offer() -> str:
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")  # refused by the engine
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    offer = asyncio.run(video_then_audio_offer())
    audio_mid = re.search(r"m=audio[^\n]*\n(?:[^\n]*\n)*?a=mid:(\S+)", offer).group(1)
    got: list[tuple[str, str]] = []
    eng.set_python_webrtc_signaling_callback(lambda target, type, message: got.append((type, message)))
    eng.handle_incoming_webrtc_signaling_message("s/v", "offer", offer)
    wait_until(lambda: any(t == "candidate" and not json.loads(m)["candidate"] for t, m in got))
    for type, message in got:
        if type == "candidate":
            value = json.loads(message)
            assert (value["sdpMid"], value["sdpMLineIndex"]) == (audio_mid, 1), value


def test_out_of_file_descriptors_the_engine_says_so_and_no_refused_session_speaks_or_replaces() -> None:
    # In a child process: it lowers its own RLIMIT_NOFILE until opening a
    # listener fails (each listener's ICE needs a UDP socket). libdatachannel
    # may already have made the refused session's offer or answer on another
    # thread when the call fails; that must never reach the callback.
    helper = Path(__file__).resolve().parent / "helpers_subprocess" / "out_of_file_descriptors.py"
    child = subprocess.run([sys.executable, str(helper), "5"], cwd=helper.parent, capture_output=True,
                           text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout)
    assert len(result["errors"]) == 10
    for error in result["errors"]:
        assert error.startswith("LocalResourceError: ")
        assert "file descriptors" in error and "ulimit -n" in error and "ice_udp_mux=True" in error
    assert all(result["listed_as_opened"])  # the refused session is not listed
    assert result["leaked"] == []
    # A refused offer or request_offer on a target already in use leaves that
    # session alone: still listed, and no bye (the engine did not close it).
    assert len(result["kept"]) >= 5, result["kept"]
    assert all(result["kept_listed"]) and result["kept_byes"] == []
    assert result["after"] == ["s/after"]  # with the limit raised again, sessions open


def test_a_bad_offer_does_not_replace_a_good_session(eng: sinkcast.AudioManager) -> None:
    eng.handle_incoming_webrtc_signaling_message("s", "offer", OFFER)
    with pytest.raises(sinkcast.SignalingError):
        eng.handle_incoming_webrtc_signaling_message("s", "offer", without_opus(OFFER))
    assert eng.listeners() == ["s"]


def test_an_answer_that_picks_no_dtls_role_is_refused_and_the_session_still_takes_a_good_one(
    eng: sinkcast.AudioManager,
) -> None:
    # libdatachannel refuses actpass in an answer (RFC 5763) only once it has
    # half applied it, which used to leave a dead session behind: listed, never
    # reaped, no bye, and every later answer refused.
    got: list[tuple[str, str, str]] = []
    eng.set_python_webrtc_signaling_callback(lambda t, ty, m: got.append((t, ty, m)))
    eng.handle_incoming_webrtc_signaling_message("s/o", "request_offer", "")
    wait_until(lambda: any(ty == "offer" for _, ty, _ in got))
    offer = next(m for _, ty, m in got if ty == "offer")
    answer = offer.replace("a=sendonly", "a=recvonly")
    answer = re.sub(r"a=ice-ufrag:\S+", "a=ice-ufrag:abcd", answer)
    answer = re.sub(r"a=ice-pwd:\S+", "a=ice-pwd:abcdefghijklmnopqrstuvwx", answer)
    assert "a=setup:actpass" in answer
    with pytest.raises(sinkcast.SignalingError, match="a=setup:active or a=setup:passive"):
        eng.handle_incoming_webrtc_signaling_message("s/o", "answer", answer)
    assert eng.listeners() == ["s/o"]
    eng.handle_incoming_webrtc_signaling_message("s/o", "answer", answer.replace("a=setup:actpass", "a=setup:active"))
    time.sleep(0.2)
    assert eng.listeners() == ["s/o"]
    assert [ty for t, ty, _ in got if t == "s/o" and ty == "bye"] == []


def test_outgoing_messages_carry_the_target_they_were_opened_with(eng: sinkcast.AudioManager) -> None:
    got: list[tuple[str, str]] = []
    eng.set_python_webrtc_signaling_callback(lambda target, type, message: got.append((target, type)))
    for target in ("s", "s/a", "s/b"):
        eng.handle_incoming_webrtc_signaling_message(target, "offer", OFFER)
    wait_until(lambda: {t for t, ty in got if ty == "answer"} == {"s", "s/a", "s/b"})
    assert {t for t, _ in got} == {"s", "s/a", "s/b"}
    for target in ("s", "s/a", "s/b"):
        types = [ty for t, ty in got if t == target]
        assert types[0] == "answer"  # per target, in order: the answer before its candidates


def test_closing_the_adapter_lets_a_dropped_engine_go() -> None:
    # Closing the adapter clears the callback, and the engine then goes with its
    # last reference, without waiting for the cycle collector.
    before = threads_named("sinkcast")
    gc.disable()  # so only reference counting can free the engines
    try:

        async def use_and_close() -> None:
            eng = sinkcast.AudioManager(bind_address="127.0.0.1")
            eng.add_sink("s")
            eng.handle_incoming_webrtc_signaling_message("s/l", "request_offer", "")
            AsyncSignaling(eng).close()

        for _ in range(3):
            asyncio.run(use_and_close())
        wait_until(lambda: threads_named("sinkcast") <= before, timeout=10)
    finally:
        gc.enable()


class EngineOwner:
    """Holds an engine whose callback is one of its own methods: a cycle."""

    def __init__(self, heard: list[tuple[str, str]], lock: threading.Lock) -> None:
        self.heard = heard
        self.lock = lock
        self.waiting_for_lock = 0  # callbacks between their start and taking the lock (one thread: no race)
        self.engine = sinkcast.AudioManager(bind_address="127.0.0.1")
        self.engine.add_sink("s")
        self.engine.set_python_webrtc_signaling_callback(self.on_message)

    def on_message(self, target: str, type: str, message: str) -> None:
        self.waiting_for_lock += 1
        with self.lock:
            self.waiting_for_lock -= 1
            self.heard.append((target, type))  # attribute lookups: they fail on a half-cleared object


def instances_of(cls: type) -> int:
    """Objects of exactly this class alive now. Not a weakref: the collector
    clears those before it runs finalizers, also for objects that come back."""
    return sum(type(o) is cls for o in gc.get_objects())


def test_an_engine_in_a_cycle_with_its_callback_is_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine holds its callback in C++; the collector sees it through the
    # engine. The thread that runs the collection holds a lock the callback
    # takes (as logging's would be): the engine lets go of the callback before
    # it shuts down, so the shutdown waits for no Python code (it used to wait
    # for the bye's delivery, for ever).
    before = threads_named("sinkcast")
    lock = threading.Lock()
    heard: list[tuple[str, str]] = []
    problems: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", problems.append)
    collected = threading.Event()

    def collect_holding_the_lock() -> None:
        with lock:
            gc.collect()
        collected.set()

    class Owner(EngineOwner):
        pass

    owner = Owner(heard, lock)
    owner.engine.handle_incoming_webrtc_signaling_message("s/l", "request_offer", "")
    wait_until(lambda: ("s/l", "offer") in heard, timeout=10)
    del owner
    threading.Thread(target=collect_holding_the_lock, daemon=True).start()
    assert collected.wait(20), "the collection never ended: the shutdown waited for the callback"
    # Freed by that collection, or (a candidate's delivery was under way: the
    # test below) by a later one.
    wait_until(lambda: gc.collect() >= 0 and instances_of(Owner) == 0, timeout=10)
    assert ("s/l", "bye") not in heard, "a callback ran while its objects were being collected"
    wait_until(lambda: threads_named("sinkcast") <= before, timeout=10)
    assert problems == [], [(p.exc_type, p.exc_value) for p in problems]


class StallsTheCollection:
    """Garbage finalized before the engine it refers to (it was made first):
    its __del__ makes the engine send a message, and returns once the callback
    has started on it and waits for the lock the collecting thread holds."""

    def __init__(self, seen: list[bool]) -> None:
        self.seen = seen
        self.owner: EngineOwner | None = None

    def __del__(self) -> None:
        owner = self.owner
        assert owner is not None
        owner.engine.handle_incoming_webrtc_signaling_message("s/l2", "request_offer", "")
        give_up = time.monotonic() + 10
        while owner.waiting_for_lock == 0 and time.monotonic() < give_up:
            time.sleep(0.005)
        self.seen.append(owner.waiting_for_lock > 0)


def test_a_collected_engine_does_not_wait_for_a_callback_already_running(monkeypatch: pytest.MonkeyPatch) -> None:
    # As above, but a callback is already running when the engine's finalizer
    # comes: the collector ran other finalizers first, and one let the
    # dispatcher take the GIL and start a delivery, which now waits for the
    # lock the collecting thread holds. The shutdown used to wait for that
    # delivery, and both threads waited for ever (seen in CI, under ASan).
    # Now it lets the delivery finish on its own; the engine it kept alive is
    # collected by a later collection.
    before = threads_named("sinkcast")
    lock = threading.Lock()
    heard: list[tuple[str, str]] = []
    seen: list[bool] = []
    problems: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", problems.append)
    collected = threading.Event()

    class Owner(EngineOwner):
        pass

    stall = StallsTheCollection(seen)
    owner = Owner(heard, lock)
    stall.owner, owner.stall = owner, stall  # type: ignore[attr-defined]
    owner.engine.handle_incoming_webrtc_signaling_message("s/l", "request_offer", "")
    wait_until(lambda: ("s/l", "offer") in heard, timeout=10)
    heard_before: list[int] = []

    def collect_holding_the_lock() -> None:
        with lock:
            heard_before.append(len(heard))  # no callback can add to it meanwhile
            gc.collect()
        collected.set()

    del owner, stall
    threading.Thread(target=collect_holding_the_lock, daemon=True).start()
    finished = collected.wait(20)
    if not finished:
        lock.release()  # lets the stuck threads go, so the rest of the suite can run
    assert finished, "the collection never ended: the engine's shutdown waited for the callback in progress"
    assert seen == [True], "no callback was waiting for the lock when the engine was finalized"
    # The one in progress (the offer asked for in __del__, or a candidate
    # queued before it) finishes now that the lock is free ...
    wait_until(lambda: len(heard) > heard_before[0], timeout=10)
    # ... and the owner it kept alive goes at a later collection.
    wait_until(lambda: gc.collect() >= 0 and instances_of(Owner) == 0, timeout=10)
    wait_until(lambda: threads_named("sinkcast") <= before, timeout=10)
    assert len(heard) == heard_before[0] + 1, ("what was queued behind it ran", heard)
    assert ("s/l", "bye") not in heard, "a callback started while its objects were being collected"
    assert problems == [], [(p.exc_type, p.exc_value) for p in problems]


def test_a_subclass_dropped_by_its_last_reference_still_says_bye() -> None:
    # A Python subclass's deallocation runs the collector's finalizer too; a
    # drop by the last reference must still shut down the usual way.
    class Engine(sinkcast.AudioManager):
        pass

    heard: list[str] = []
    eng = Engine(bind_address="127.0.0.1")
    eng.add_sink("s")
    eng.set_python_webrtc_signaling_callback(lambda target, type, message: heard.append(type))
    eng.handle_incoming_webrtc_signaling_message("s/l", "request_offer", "")
    wait_until(lambda: "offer" in heard, timeout=10)
    del eng
    assert "bye" in heard


def test_a_collected_wrapper_leaves_the_default_engine_and_its_callback_alone() -> None:
    # get_instance()'s engine is C++'s: a Python wrapper of it collected in a
    # cycle with its callback must neither shut it down nor take its callback.
    heard: list[str] = []

    def install() -> None:
        eng = sinkcast.AudioManager.get_instance()
        eng.add_sink("gc-default")
        eng.set_python_webrtc_signaling_callback(lambda target, type, message: heard.append(type) or eng.closed)

    install()
    gc.collect()
    eng = sinkcast.AudioManager.get_instance()
    try:
        assert "gc-default" in eng.stats()["sinks"]
        eng.handle_incoming_webrtc_signaling_message("gc-default/l", "request_offer", "")
        wait_until(lambda: "offer" in heard, timeout=10)
    finally:
        eng.set_python_webrtc_signaling_callback(None)
        eng.remove_sink("gc-default")


def test_an_adapter_left_open_is_collected_with_its_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    before = threads_named("sinkcast")
    problems: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", problems.append)

    async def use_and_drop() -> None:
        eng = sinkcast.AudioManager(bind_address="127.0.0.1")
        eng.add_sink("s")
        adapter = AsyncSignaling(eng)
        offer = await adapter.request_offer("s/l", timeout=10)
        assert offer.startswith("v=0")

    for _ in range(3):
        asyncio.run(use_and_drop())
    gc.collect()
    wait_until(lambda: threads_named("sinkcast") <= before, timeout=10)
    assert problems == [], [(p.exc_type, p.exc_value) for p in problems]


def test_a_callback_that_raises_goes_to_unraisablehook(eng: sinkcast.AudioManager) -> None:
    seen: list[Any] = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda info: seen.append(info)
    try:
        def boom(target: str, type: str, message: str) -> None:
            raise RuntimeError("callback failed on purpose")

        eng.set_python_webrtc_signaling_callback(boom)
        eng.handle_incoming_webrtc_signaling_message("s/x", "offer", OFFER)
        wait_until(lambda: len(seen) >= 2)
    finally:
        # Cleared first: its later messages would raise into pytest's own hook.
        eng.set_python_webrtc_signaling_callback(None)
        sys.unraisablehook = old_hook
    assert isinstance(seen[0].exc_value, RuntimeError)
    assert "signaling callback" in str(seen[0].object)
    # The engine carries on: the session exists and new messages are still handled.
    assert eng.listeners() == ["s/x"]
    eng.handle_incoming_webrtc_signaling_message("s/y", "offer", OFFER)
    assert eng.listeners() == ["s/x", "s/y"]


def test_cleared_callback_never_runs_after_clear_returns(eng: sinkcast.AudioManager) -> None:
    calls = 0
    lock = threading.Lock()

    def slow(target: str, type: str, message: str) -> None:
        nonlocal calls
        time.sleep(0.01)  # widen the window in which a delivery is in flight
        with lock:
            calls += 1

    eng.set_python_webrtc_signaling_callback(slow)
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            eng.handle_incoming_webrtc_signaling_message(f"s/c{i % 4}", "offer", OFFER)
            i += 1

    th = threading.Thread(target=churn)
    th.start()
    wait_until(lambda: calls > 5)
    eng.set_python_webrtc_signaling_callback(None)
    with lock:
        at_clear = calls
    time.sleep(0.5)
    stop.set()
    th.join()
    assert calls == at_clear


def test_replaced_callback_never_runs_after_replace_returns(eng: sinkcast.AudioManager) -> None:
    first: list[str] = []
    second: list[str] = []
    eng.set_python_webrtc_signaling_callback(lambda t, ty, m: (time.sleep(0.005), first.append(ty)))
    for i in range(5):
        eng.handle_incoming_webrtc_signaling_message(f"s/r{i}", "offer", OFFER)
    eng.set_python_webrtc_signaling_callback(lambda t, ty, m: second.append(ty))
    n = len(first)
    for i in range(5, 8):
        eng.handle_incoming_webrtc_signaling_message(f"s/r{i}", "offer", OFFER)
    wait_until(lambda: second.count("answer") >= 3)
    assert len(first) == n


def test_messages_behind_a_slow_callback_are_kept_and_counted(eng: sinkcast.AudioManager) -> None:
    release = threading.Event()
    delivered: list[tuple[str, str]] = []

    def held(target: str, type: str, message: str) -> None:
        release.wait(30)
        delivered.append((target, type))

    assert eng.stats()["signaling_backlog"] == 0
    eng.set_python_webrtc_signaling_callback(held)
    for i in range(5):
        eng.handle_incoming_webrtc_signaling_message(f"s/b{i}", "offer", OFFER)
    # The first answer is in the callback; the other four (and the candidates) wait.
    wait_until(lambda: eng.stats()["signaling_backlog"] >= 4)
    assert delivered == []
    release.set()
    wait_until(lambda: eng.stats()["signaling_backlog"] == 0 and
               sorted(t for t, ty in delivered if ty == "answer") == [f"s/b{i}" for i in range(5)])


def test_callback_may_call_back_into_the_engine(eng: sinkcast.AudioManager) -> None:
    done = threading.Event()
    errors: list[BaseException] = []

    def reentrant(target: str, type: str, message: str) -> None:
        try:
            if type == "answer" and target == "s/first":
                # From inside the callback: open another session, and close this one.
                eng.handle_incoming_webrtc_signaling_message("s/second", "offer", OFFER)
                eng.handle_incoming_webrtc_signaling_message("s/first", "bye", "")
                eng.set_python_webrtc_signaling_callback(reentrant)  # replacing from inside: no self-wait
                stats = eng.stats()
                assert "s/second" in stats["sinks"]["s"]["listeners"]
            if type == "answer" and target == "s/second":
                done.set()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            done.set()

    eng.set_python_webrtc_signaling_callback(reentrant)
    eng.handle_incoming_webrtc_signaling_message("s/first", "offer", OFFER)
    assert done.wait(10), "deadlock: the re-entrant callback never finished"
    assert not errors
    assert eng.listeners() == ["s/second"]


def test_shutdown_from_inside_the_callback(eng: sinkcast.AudioManager) -> None:
    finished = threading.Event()

    def stop_engine(target: str, type: str, message: str) -> None:
        eng.shutdown()
        finished.set()

    eng.set_python_webrtc_signaling_callback(stop_engine)
    eng.handle_incoming_webrtc_signaling_message("s/z", "offer", OFFER)
    assert finished.wait(10)
    assert eng.closed


def test_shutdown_with_listeners_connected_sends_bye_and_stops_callbacks() -> None:
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s")
    got: list[tuple[str, str]] = []
    eng.set_python_webrtc_signaling_callback(lambda t, ty, m: got.append((t, ty)))
    for i in range(5):
        eng.handle_incoming_webrtc_signaling_message(f"s/{i}", "offer", OFFER)
    eng.shutdown()
    n = len(got)
    assert {t for t, ty in got if ty == "bye"} == {f"s/{i}" for i in range(5)}
    time.sleep(0.3)
    assert len(got) == n
    # Clearing the callback of a closed engine is allowed; setting one is not.
    eng.set_python_webrtc_signaling_callback(None)
    with pytest.raises(sinkcast.EngineClosedError):
        eng.set_python_webrtc_signaling_callback(lambda *a: None)
    with pytest.raises(sinkcast.EngineClosedError):
        eng.handle_incoming_webrtc_signaling_message("s", "offer", OFFER)


@pytest.mark.parametrize("second_call", ["shutdown", "clear the callback"])
def test_a_call_made_while_another_thread_shuts_down_returns_after_the_last_callback(second_call: str) -> None:
    # Thread A's shutdown() is delivering byes to a slow callback. Another
    # thread's shutdown(), or its clearing of the callback, must not return
    # while that callback can still run ("no callback after it returns").
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s")
    ended: list[float] = []
    inside_shutdown = []

    def slow(target: str, type: str, message: str) -> None:
        time.sleep(0.1)
        if type == "bye":
            # From inside a callback, shutdown() must return at once while another
            # thread shuts down (that shutdown is waiting for this very callback).
            t0 = time.monotonic()
            eng.shutdown()
            inside_shutdown.append(time.monotonic() - t0)
        ended.append(time.monotonic())

    eng.set_python_webrtc_signaling_callback(slow)
    for i in range(3):
        eng.handle_incoming_webrtc_signaling_message(f"s/{i}", "request_offer", "")
    first = threading.Thread(target=eng.shutdown)
    first.start()
    wait_until(lambda: eng.closed)
    if second_call == "shutdown":
        eng.shutdown()
    else:
        eng.set_python_webrtc_signaling_callback(None)
    returned = time.monotonic()
    first.join(30)
    assert not first.is_alive()
    assert len(ended) >= 3  # the three byes at least
    assert max(ended) <= returned
    assert inside_shutdown and max(inside_shutdown) < 5


def test_removed_listeners_free_their_peers_and_threads() -> None:
    with sinkcast.AudioManager(bind_address="127.0.0.1") as warm:
        warm.add_sink("s")
        warm.handle_incoming_webrtc_signaling_message("s", "offer", OFFER)  # start libdatachannel's pools
    time.sleep(0.5)
    baseline = thread_count()
    peers_before = sinkcast.AudioManager(realtime=False).stats()["live_peers"]
    with sinkcast.AudioManager(bind_address="127.0.0.1") as eng:
        eng.add_sink("s")
        for round in range(3):
            for i in range(5):
                eng.handle_incoming_webrtc_signaling_message(f"s/{i}", "offer", OFFER)
            for i in range(5):
                eng.handle_incoming_webrtc_signaling_message(f"s/{i}", "bye", "")
        wait_until(lambda: eng.stats()["live_peers"] == peers_before)
        assert eng.listeners() == []
    wait_until(lambda: thread_count() <= baseline, timeout=10)


def test_ice_configuration_is_used() -> None:
    with sinkcast.AudioManager(bind_address="127.0.0.1", port_range=(20100, 20110),
                               ice_servers=["stun:127.0.0.1:3478"]) as eng:
        eng.add_sink("s")
        got: list[str] = []
        eng.set_python_webrtc_signaling_callback(lambda t, ty, m: got.append(m) if ty == "candidate" else None)
        eng.handle_incoming_webrtc_signaling_message("s", "offer", OFFER)
        wait_until(lambda: any("127.0.0.1" in c for c in got))
        ports = [int(p) for c in got for p in re.findall(r"127\.0\.0\.1 (\d+) typ", c)]
        assert ports and all(20100 <= p <= 20110 for p in ports)


def test_a_taken_port_range_is_named_in_the_error() -> None:
    # Every port of the range is held by this test: ICE cannot open a socket.
    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held.bind(("127.0.0.1", 0))
    port = held.getsockname()[1]
    try:
        with sinkcast.AudioManager(bind_address="127.0.0.1", port_range=(port, port)) as eng:
            eng.add_sink("s")
            with pytest.raises(sinkcast.LocalResourceError, match=f"no UDP port of port_range {port}-{port} is free"):
                eng.handle_incoming_webrtc_signaling_message("s/a", "request_offer", "")
            with pytest.raises(sinkcast.LocalResourceError, match="could not answer the offer: .* is free"):
                eng.handle_incoming_webrtc_signaling_message("s/b", "offer", OFFER)
            assert eng.listeners() == []
            held.close()  # the port is free again: the same target opens
            eng.handle_incoming_webrtc_signaling_message("s/a", "request_offer", "")
            assert eng.listeners() == ["s/a"]
    finally:
        held.close()


@pytest.mark.parametrize("address", ["localhost", "not an address", "127.0.0.1:9", "10.0.0.300"])
def test_a_bind_address_that_is_not_an_ip_address_is_refused_at_once(address: str) -> None:
    # Refused by the constructor: no name is ever looked up, and a typo does
    # not wait for the first listener to show.
    with pytest.raises(ValueError, match=f"bind_address must be a numeric IPv4 or IPv6 address.*'{re.escape(address)}'"):
        sinkcast.AudioManager(bind_address=address)


def test_a_bind_address_of_another_host_is_named_in_the_error() -> None:
    # 192.0.2.1 is reserved for documentation (RFC 5737): no host has it, and
    # binding to it fails before any packet could be sent.
    with sinkcast.AudioManager(bind_address="192.0.2.1") as eng:
        eng.add_sink("s")
        with pytest.raises(sinkcast.LocalResourceError, match="bind_address 192.0.2.1 is not an address of this host"):
            eng.handle_incoming_webrtc_signaling_message("s", "request_offer", "")
        assert eng.listeners() == []


def test_ice_udp_mux_puts_every_listener_on_one_port() -> None:
    with sinkcast.AudioManager(bind_address="127.0.0.1", port_range=(20120, 20130), ice_udp_mux=True) as eng:
        eng.add_sink("s")
        got: dict[str, list[str]] = {}
        eng.set_python_webrtc_signaling_callback(
            lambda t, ty, m: got.setdefault(t, []).append(m) if ty == "candidate" else None)
        for i in range(3):
            eng.handle_incoming_webrtc_signaling_message(f"s/{i}", "offer", OFFER)
        wait_until(lambda: all(any("127.0.0.1" in c for c in got.get(f"s/{i}", [])) for i in range(3)))
        ports = {int(p) for cs in got.values() for c in cs for p in re.findall(r"127\.0\.0\.1 (\d+) typ", c)}
        assert len(ports) == 1 and 20120 <= ports.pop() <= 20130


def test_ice_udp_mux_engines_with_different_addresses_need_separate_port_ranges() -> None:
    with sinkcast.AudioManager(bind_address="127.0.0.1", port_range=(20160, 20170), ice_udp_mux=True):
        with pytest.raises(ValueError, match="ice_udp_mux.*port_range"):
            sinkcast.AudioManager(bind_address="0.0.0.0", port_range=(20165, 20175), ice_udp_mux=True)
        with pytest.raises(ValueError, match="ice_udp_mux"):
            sinkcast.AudioManager(bind_address="0.0.0.0", ice_udp_mux=True)  # no range: every port
        # Fine: the same address (one shared socket), a disjoint range, or no mux.
        for kwargs in ({"bind_address": "127.0.0.1"}, {"bind_address": "0.0.0.0", "port_range": (20180, 20190)}):
            sinkcast.AudioManager(ice_udp_mux=True, **kwargs).shutdown()
        sinkcast.AudioManager(bind_address="0.0.0.0", port_range=(20165, 20175)).shutdown()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("not a url at all", "white space"),
        ("stun.example.org:3478", "does not start with stun:"),
        ("stun:stun.example.org:abc", "port in URL: abc"),
        ("stun:host:99999", "port '99999'"),  # libdatachannel would wrap it to 34463
        ("stun:h:0", "port '0'"),
        ("stun::", "not a usable URL"),
        ("turn:u:p@", "not a usable URL"),
        ("turn:host", "without user:password@"),
        ("turn:u@host:3478", "without user:password@"),
    ],
)
def test_a_bad_ice_server_is_refused_by_the_constructor(url: str, why: str) -> None:
    """At construction, naming the URL: each of these used to pass it, and then
    failed every listener's offer with a plain ValueError (a 500 in the server)."""
    with pytest.raises(ValueError, match="ice_servers") as refused:
        sinkcast.AudioManager(ice_servers=[url])
    assert repr(url)[1:-1] in str(refused.value) and why in str(refused.value)


def test_good_ice_servers_are_accepted() -> None:
    urls = ["stun:127.0.0.1:3478", "STUN:localhost", "stun:h:65535", "turn:u:p@127.0.0.1:3478?transport=tcp",
            "turns:user:pa%40ss@example.org"]
    sinkcast.AudioManager(ice_servers=urls).shutdown()


@pytest.mark.parametrize(
    "message",
    [
        '{"candidate": "candidate:1 1 UDP 2122317823 example.com 50000 typ host", "sdpMid": "0"}',
        "candidate:1 1 UDP 2122317823 evil.example 50000 typ host",
        # The same name in every spelling the parser accepts: the check reads
        # libdatachannel's parse, not the text.
        " candidate:1 1 UDP 2122317823 evil.example 50000 typ host",
        "a=candidate:1 1 UDP 2122317823 evil.example 50000 typ host",
        '{"candidate": " candidate:1 1 UDP 2122317823 evil.example 50000 typ host", "sdpMid": "0"}',
        '{"candidate": "\\u0063andidate:1 1 UDP 2122317823 evil.example 50000 typ host", "sdpMid": "0"}',
        "candidate:1 1 UDP 2122317823  evil.example  50000 typ host",
        # A port that is a service name is looked up too (in the services database).
        "candidate:1 1 UDP 2122317823 127.0.0.1 http typ host",
    ],
)
def test_candidates_with_host_names_are_refused(eng: sinkcast.AudioManager, message: str) -> None:
    # A peer must not make the engine resolve names through DNS; mDNS .local names are allowed.
    eng.handle_incoming_webrtc_signaling_message("s/h", "offer", OFFER)
    with pytest.raises(sinkcast.SignalingError, match="is not an IP address|is not a port number"):
        eng.handle_incoming_webrtc_signaling_message("s/h", "candidate", message)
    eng.handle_incoming_webrtc_signaling_message(
        "s/h", "candidate", "candidate:1 1 UDP 2122317823 127.0.0.1 50000 typ host")
    for spelling in ("a=candidate:x 1 udp 1 evil.example 9 typ host", "a=candidate: x 1 udp 1 evil.example 9 typ host"):
        mangled = OFFER.replace("a=candidate:", spelling + "\r\na=candidate:", 1)
        with pytest.raises(sinkcast.SignalingError, match="evil.example"):
            eng.handle_incoming_webrtc_signaling_message("s/h2", "offer", mangled)
    assert "s/h2" not in eng.listeners()


def test_a_session_takes_a_bounded_number_of_remote_candidates(eng: sinkcast.AudioManager) -> None:
    # Each mDNS name costs libdatachannel a lookup thread: a peer may not send
    # an unbounded number. An answer's candidates count as well.
    eng.handle_incoming_webrtc_signaling_message("s/c", "offer", OFFER)
    admitted = 0
    with pytest.raises(sinkcast.SignalingError, match="too many remote candidates"):
        for port in range(40000, 40200):
            eng.handle_incoming_webrtc_signaling_message(
                "s/c", "candidate", f"candidate:1 1 UDP 2122317823 127.0.0.1 {port} typ host")
            admitted += 1
    assert 8 <= admitted <= 200 - 1
    assert eng.listeners() == ["s/c"]  # refused candidates change nothing else
    many = "".join(f"a=candidate:{i} 1 udp 1 127.0.0.1 {30000 + i} typ host\r\n" for i in range(admitted + 1))
    with pytest.raises(sinkcast.SignalingError, match="too many remote candidates"):
        eng.handle_incoming_webrtc_signaling_message("s/d", "offer", OFFER.replace("a=candidate:", many + "a=candidate:", 1))


def test_a_callback_may_drop_the_last_reference_to_the_engine() -> None:
    # The engine is then destroyed on its own dispatcher thread, inside the
    # callback; the dispatcher must finish without touching freed memory
    # (the sanitizer build of this test is what catches it).
    holder: dict[str, Any] = {}
    released = threading.Event()  # the main thread holds no reference any more
    done = threading.Event()

    def cb(target: str, type: str, message: str) -> None:
        # The answer may be delivered before handle_incoming... has returned to
        # the main thread; wait (GIL released) until it has, so that the
        # reference popped here really is the last one.
        if not released.wait(10):
            return
        e = holder.pop("eng", None)
        if e is not None:
            del e  # the last reference: the engine (still open) is destroyed right here
            done.set()

    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s")
    eng.set_python_webrtc_signaling_callback(cb)
    holder["eng"] = eng
    del eng
    # The bound method's temporary reference is gone once this call returns.
    holder["eng"].handle_incoming_webrtc_signaling_message("s/x", "offer", OFFER)
    released.set()
    assert done.wait(10)
    time.sleep(0.5)  # the dispatcher thread winds down on its own
    with sinkcast.AudioManager(realtime=False) as other:  # the process is fine
        other.add_sink("t")
        assert other.render("t", 10).shape == (10, 2)
