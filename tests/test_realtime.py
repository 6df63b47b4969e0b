"""The real-time clock: one thread per sink on absolute deadlines, and the PCM tap."""

from __future__ import annotations

import gc
import os
import threading
import time

import numpy as np
import pytest

import sinkcast
from helpers_subprocess.common import rss_kib, threads_named


def test_ten_seconds_of_tone_is_ten_seconds_of_frames(realtime: sinkcast.AudioManager) -> None:
    realtime.add_sink("out", channels=2)
    realtime.add_tone_source("t", frequency_hz=440.0, amplitude=0.5)
    realtime.connect("t", "out")
    tap = realtime.open_tap("out", seconds=15.0)
    time.sleep(0.2)  # let the clock start
    tap.read()
    start_frames = realtime.stats()["sinks"]["out"]["frames_mixed"]
    t0 = time.monotonic()
    time.sleep(10.0)
    elapsed = time.monotonic() - t0
    frames = realtime.stats()["sinks"]["out"]["frames_mixed"] - start_frames
    audio = tap.read()
    assert frames / 48000 == pytest.approx(elapsed, rel=0.01)
    assert audio.shape[0] / 48000 == pytest.approx(elapsed, rel=0.01)
    # What came out of the tap is the tone, unbroken.
    spectrum = np.abs(np.fft.rfft(audio[:, 0] * np.hanning(len(audio))))
    assert np.argmax(spectrum) * 48000 / len(audio) == pytest.approx(440.0, abs=0.5)


def test_pushed_source_plays_in_real_time(realtime: sinkcast.AudioManager) -> None:
    realtime.add_sink("out", channels=1)
    realtime.add_source("mic", sample_rate=16000, jitter_ms=40)
    realtime.connect("mic", "out")
    tap = realtime.open_tap("out", seconds=5.0)
    t = np.arange(16000) / 16000
    x = (0.5 * np.sin(2 * np.pi * 500.0 * t)).astype(np.float32)
    stop = threading.Event()

    def producer() -> None:
        i = 0
        next_t = time.monotonic()
        while not stop.is_set() and i < len(x):
            realtime.push("mic", x[i : i + 160])
            i += 160
            next_t += 0.01
            time.sleep(max(0.0, next_t - time.monotonic()))

    th = threading.Thread(target=producer)
    th.start()
    th.join(timeout=5)
    stop.set()
    time.sleep(0.2)
    out = tap.read()[:, 0]
    loud = out[np.abs(out) > 0.01]
    assert len(loud) > 0.8 * 48000
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) * 48000 / len(out) == pytest.approx(500.0, abs=2.0)


def test_tap_counts_what_it_drops(realtime: sinkcast.AudioManager) -> None:
    realtime.add_sink("out", channels=1)
    tap = realtime.open_tap("out", seconds=0.05)
    time.sleep(0.3)
    assert tap.dropped_frames > 0
    assert tap.read().shape[0] <= 2400
    tap.close()
    assert tap.closed
    time.sleep(0.05)
    sink = realtime.stats()["sinks"]["out"]
    assert sink["taps"] == 0
    # What the clock thread caught instead of ending the process: nothing here.
    assert sink["clock_errors"] == 0 and sink["clock_last_error"] == ""


def test_a_tap_dropped_without_close_is_detached() -> None:
    # Python owns the tap: once it is garbage, the sink stops writing into it
    # and its ring is freed (20 forgotten 60 s taps used to hold 460 MB).
    m = sinkcast.AudioManager(realtime=False)
    m.add_sink("out", channels=2)
    kept = m.open_tap("out", seconds=1.0)
    for _ in range(20):
        tap = m.open_tap("out", seconds=60.0)
        del tap
    gc.collect()
    m.render("out", 480)
    assert m.stats()["sinks"]["out"]["taps"] == 1
    assert kept.read().shape == (480, 2)
    m.shutdown()


def test_taps_opened_and_closed_between_renders_are_forgotten_at_once() -> None:
    # On a manual clock the sink forgot closed taps only in render(): a program
    # that opened and closed taps without rendering grew by ~240 bytes a tap
    # (24 MB per 100 000). Opening a tap now also forgets the closed ones.
    m = sinkcast.AudioManager(realtime=False)
    m.add_sink("out", channels=2)
    try:
        for _ in range(20_000):  # warm-up: allocator pools, nanobind's type caches
            m.open_tap("out", seconds=0.01).close()
        before = rss_kib()
        for _ in range(100_000):
            m.open_tap("out", seconds=0.01).close()
        grown_kib = rss_kib() - before
        assert grown_kib < 8_000, f"RSS grew by {grown_kib} KiB over 100 000 closed taps"
    finally:
        m.shutdown()


@pytest.mark.parametrize("end", ["remove_sink", "shutdown"])
def test_a_tap_is_closed_when_its_sink_ends_and_keeps_what_is_unread(end: str) -> None:
    # A reader polling `available` must learn that nothing more will come.
    m = sinkcast.AudioManager(realtime=False)
    m.add_sink("out", channels=1)
    tap = m.open_tap("out", seconds=1.0)
    m.render("out", 480)
    assert not tap.closed
    if end == "remove_sink":
        m.remove_sink("out")
    else:
        m.shutdown()
    assert tap.closed
    assert tap.read().shape == (480, 1)
    m.shutdown()


def test_render_is_refused_in_real_time(realtime: sinkcast.AudioManager) -> None:
    realtime.add_sink("out")
    with pytest.raises(sinkcast.ClockModeError, match="manual-clock"):
        realtime.render("out", 480)


linux_only = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads /proc/self/task")


def test_remove_sink_stops_its_clock(realtime: sinkcast.AudioManager) -> None:
    before = threading.active_count()
    clocks = threads_named("sinkcast clock") if os.path.isdir("/proc/self/task") else None
    realtime.add_sink("out")
    realtime.add_sink("other")
    if clocks is not None:
        assert threads_named("sinkcast clock") == clocks + 2  # one clock thread per sink
    realtime.remove_sink("out")
    assert realtime.sinks() == ["other"]
    assert threading.active_count() == before
    if clocks is not None:
        assert threads_named("sinkcast clock") == clocks + 1  # joined by remove_sink


@linux_only
def test_shutdown_joins_the_engine_threads() -> None:
    clocks, dispatchers = threads_named("sinkcast clock"), threads_named("sinkcast signal")
    tasks = threads_named("sinkcast tasks")
    eng = sinkcast.AudioManager()
    eng.add_sink("a")
    eng.add_sink("b")
    assert threads_named("sinkcast clock") == clocks + 2
    assert threads_named("sinkcast signal") == dispatchers + 1
    assert threads_named("sinkcast tasks") == tasks + 1
    eng.shutdown()
    assert threads_named("sinkcast clock") == clocks
    assert threads_named("sinkcast signal") == dispatchers
    assert threads_named("sinkcast tasks") == tasks


def test_shutdown_is_idempotent_and_closes_everything() -> None:
    eng = sinkcast.AudioManager()
    eng.add_sink("out")
    eng.add_tone_source("t")
    eng.connect("t", "out")
    eng.shutdown()
    eng.shutdown()
    assert eng.closed
    with pytest.raises(sinkcast.EngineClosedError):
        eng.stats()


def test_context_manager_shuts_down() -> None:
    with sinkcast.AudioManager() as eng:
        eng.add_sink("out")
    assert eng.closed


def test_get_instance_is_shared() -> None:
    a = sinkcast.AudioManager.get_instance()
    b = sinkcast.AudioManager.get_instance()
    assert a is b
    assert a.realtime
