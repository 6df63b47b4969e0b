"""1000 listener connect/disconnect cycles: nothing may accumulate.

Every cycle opens a session with an offer, waits for the engine's answer and
says bye. Every 4th cycle is a real connection: a receive-only probe offers,
gets the full answer, must receive RTP packets, and then leaves. Every 50th
cycle uses the sink's default session (bare target) instead of a named one.

After a warm-up of 50 cycles (libdatachannel's thread pools, allocator
arenas), the thread count, the live peer count, the listener list and the
RSS are recorded; after the 1000 cycles they must come back: threads and
peers to the baseline, no listeners, RSS at most 10 MB higher.

A real connection that gets no RTP is repeated once under a new name; at most
two may fail in a run (see connect_real_listener's caller).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import pytest

import sinkcast
from helpers_subprocess.common import is_end_of_candidates, probe_offer, rss_kib, thread_count, wait_until
from sinkcast import _sinkcast as native
from sinkcast.aio import merge_candidates

CYCLES = 1000
WARMUP = 50
REAL_EVERY = 4
RSS_LIMIT_KIB = 10 * 1024


class CurrentTarget:
    """A signaling callback that keeps only the messages of the target being cycled.

    Late messages of earlier targets (candidates queued before their bye) are
    counted and dropped, so the test itself does not grow with the cycles."""

    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.target = ""
        self.messages: list[tuple[str, str]] = []
        self.late = 0
        self.total = 0

    def start(self, target: str) -> None:
        with self.cv:
            self.target = target
            self.messages = []

    def __call__(self, target: str, type: str, message: str) -> None:
        with self.cv:
            self.total += 1
            if target != self.target:
                self.late += 1
                return
            self.messages.append((type, message))
            self.cv.notify_all()

    def wait(self, predicate, timeout: float = 10.0) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
        with self.cv:
            if not self.cv.wait_for(lambda: predicate(self.messages), timeout):
                raise AssertionError(f"{self.target}: timed out; got {[t for t, _ in self.messages]}")
            return list(self.messages)


def has_answer(messages: list[tuple[str, str]]) -> bool:
    return any(t == "answer" for t, _ in messages)


def has_end_of_candidates(messages: list[tuple[str, str]]) -> bool:
    return any(t == "candidate" and is_end_of_candidates(m) for t, m in messages)


@pytest.fixture
def engine() -> Iterator[sinkcast.AudioManager]:
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s", channels=2, frame_ms=20)
    eng.add_tone_source("t", frequency_hz=440.0, amplitude=0.3)
    eng.connect("t", "s")
    try:
        yield eng
    finally:
        eng.shutdown()


def test_1000_listener_cycles_leave_nothing_behind(engine: sinkcast.AudioManager) -> None:
    sig = CurrentTarget()
    engine.set_python_webrtc_signaling_callback(sig)
    offers = [probe_offer() for _ in range(4)]
    peers_at_start = engine.stats()["live_peers"]
    real: dict = {"cycles": 0, "failed": []}

    def connect_real_listener(target: str) -> bool:
        """Connects a probe under `target`, waits for RTP, says bye. False if no RTP came."""
        probe = native._ReceiveProbe("127.0.0.1")
        try:
            engine.handle_incoming_webrtc_signaling_message(target, "offer", probe.create_offer(5.0))
            msgs = sig.wait(has_end_of_candidates)
            answer = next(m for t, m in msgs if t == "answer")
            probe.accept_answer(merge_candidates(answer, [m for t, m in msgs if t == "candidate"]))
            try:
                wait_until(lambda: probe.packets > 0, 10.0, interval=0.005)
            except AssertionError:
                listener = engine.stats()["sinks"]["s"]["listeners"].get(target)
                real["failed"].append(f"{target}: probe connected={probe.connected}, engine side {listener}")
                engine.handle_incoming_webrtc_signaling_message(target, "bye", "")
                return False
            real["cycles"] += 1
            engine.handle_incoming_webrtc_signaling_message(target, "bye", "")
            return True
        finally:
            probe.close()

    def cycle(i: int) -> None:
        target = "s" if i % 50 == 25 else f"s/c{i}"
        sig.start(target)
        if i % REAL_EVERY == 0:
            if not connect_real_listener(target):
                # Once in a few thousand connections the probe's DTLS handshake
                # fails ("Handshake failed: fatal I/O error"): a race inside
                # libdatachannel 0.24.6 on the DTLS server's side, described in
                # docs/reliability.md. The session is torn down like any other;
                # the cycle is repeated under a new name, so every real cycle
                # still ends with RTP received.
                target += "-again"
                sig.start(target)
                assert connect_real_listener(target), f"{target}: a second connection failed too"
        else:
            engine.handle_incoming_webrtc_signaling_message(target, "offer", offers[i % len(offers)])
            sig.wait(has_answer)
            engine.handle_incoming_webrtc_signaling_message(target, "bye", "")
        assert target not in engine.listeners()

    for i in range(WARMUP):
        cycle(i)
    wait_until(lambda: engine.stats()["live_peers"] == peers_at_start, 10.0)
    time.sleep(0.5)
    gc.collect()
    threads_base, rss_base = thread_count(), rss_kib()

    t0 = time.monotonic()
    for i in range(WARMUP, WARMUP + CYCLES):
        cycle(i)
    took = time.monotonic() - t0

    wait_until(lambda: engine.stats()["live_peers"] == peers_at_start, 10.0)
    time.sleep(0.5)
    gc.collect()
    try:
        wait_until(lambda: thread_count() <= threads_base, 10.0, interval=0.1)
    except AssertionError:
        pass  # reported by the assertion below, with the numbers
    threads_end, rss_end = thread_count(), rss_kib()
    stats = engine.stats()
    growth = rss_end - rss_base
    print(f"\n{CYCLES} cycles + {WARMUP} warm-up ({real['cycles']} real connections, each received RTP)"
          f" in {took:.1f} s; threads {threads_base} -> {threads_end}; live peers {peers_at_start} ->"
          f" {stats['live_peers']}; RSS {rss_base / 1024:.1f} -> {rss_end / 1024:.1f} MiB (+{growth / 1024:.2f});"
          f" {sig.total} callbacks, {sig.late} late; failed handshakes, repeated: {real['failed'] or 'none'}")

    assert real["cycles"] >= (WARMUP + CYCLES) // REAL_EVERY - WARMUP // REAL_EVERY
    # A failed handshake is rare (none in ~14 700 local connections, one in a CI
    # run of 263); more than two in one run is not noise.
    assert len(real["failed"]) <= 2, real["failed"]
    assert threads_end <= threads_base, f"threads {threads_base} -> {threads_end}"
    assert stats["live_peers"] == peers_at_start
    assert engine.listeners() == []
    assert stats["listeners"] == 0 and stats["sinks"]["s"]["listeners"] == {}
    assert growth <= RSS_LIMIT_KIB, f"RSS grew by {growth} KiB over {CYCLES} cycles"
    # The sink itself kept mixing throughout.
    assert stats["sinks"]["s"]["frames_encoded"] > 0
