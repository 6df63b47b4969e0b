"""Underruns are silence and counted; a full ring drops the oldest audio and counts it."""

from __future__ import annotations

import numpy as np

import sinkcast


def test_underrun_is_silence_and_counted(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("out", channels=2)
    manual.add_source("s", channels=2)
    manual.add_tone_source("t", frequency_hz=1000.0, amplitude=0.5)
    manual.connect("s", "out")
    manual.connect("t", "out")
    first = manual.render("out", 480)
    stats = manual.stats()
    assert stats["sources"]["s"]["underruns"] == 1
    assert stats["sinks"]["out"]["routes"]["s"]["underruns"] == 1
    assert stats["sources"]["t"]["underruns"] == 0  # other sources keep playing
    assert np.abs(first).max() > 0.4

    manual.push("s", np.full((100, 2), 0.25, dtype=np.float32))
    out = manual.render("out", 480)
    assert manual.stats()["sources"]["s"]["underruns"] == 2  # 100 of 480 frames: still an underrun
    tone = manual.render("out", 0)  # a zero-frame render changes nothing
    assert tone.shape == (0, 2)
    assert manual.stats()["sources"]["s"]["underruns"] == 2
    # The partial block played its 100 frames, then silence from this source.
    with sinkcast.AudioManager(realtime=False) as ref:
        ref.add_sink("out", channels=2)
        ref.add_tone_source("t", frequency_hz=1000.0, amplitude=0.5)
        ref.connect("t", "out")
        ref.render("out", 480)
        tone_only = ref.render("out", 480)
    np.testing.assert_allclose(out[:100] - tone_only[:100], 0.25, atol=1e-6)
    np.testing.assert_allclose(out[100:], tone_only[100:], atol=1e-7)


def test_underruns_count_periods_however_the_output_is_rendered() -> None:
    """100 ms of an empty source are 10 underruns, whatever the render() block
    size (they counted mix calls: 4800 for blocks of one frame). A source on
    two sinks adds up its routes."""
    for block in (4800, 480, 240, 48, 1):
        with sinkcast.AudioManager(realtime=False) as eng:
            eng.add_source("s")
            for sink in ("a", "b"):
                eng.add_sink(sink, channels=1)
                eng.connect("s", sink)
            for _ in range(4800 // block):
                eng.render("a", block)
            eng.render("b", 4800)
            stats = eng.stats()
            assert stats["sinks"]["a"]["periods"] == 10
            assert stats["sinks"]["a"]["routes"]["s"]["underruns"] == 10, block
            assert stats["sinks"]["b"]["routes"]["s"]["underruns"] == 10
            assert stats["sources"]["s"]["underruns"] == 20


def test_full_ring_drops_oldest_and_counts(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("out", channels=1)
    manual.add_source("s", buffer_ms=20, jitter_ms=0)  # 960 frames
    manual.connect("s", "out")
    x = (np.arange(3000, dtype=np.float32) / 3000.0).reshape(-1, 1)
    manual.push("s", x[:1000])
    manual.push("s", x[1000:])
    s = manual.stats()
    assert s["sources"]["s"]["dropped_frames"] == 3000 - 960
    assert s["sources"]["s"]["overruns"] >= 1
    assert s["sinks"]["out"]["routes"]["s"]["dropped_frames"] == 3000 - 960
    # What is left is the newest 960 frames, in order.
    np.testing.assert_allclose(manual.render("out", 960)[:, 0], x[-960:, 0], atol=1e-7)


def test_push_never_blocks_without_a_reader(manual: sinkcast.AudioManager) -> None:
    manual.add_source("s")
    for _ in range(100):
        manual.push("s", np.zeros(48000, dtype=np.int16))
    s = manual.stats()["sources"]["s"]
    assert s["frames_in"] == 100 * 48000
    assert s["dropped_frames"] == 0  # nobody was listening, so nobody lost anything


def test_frames_in_counts_source_rate_frames(manual: sinkcast.AudioManager) -> None:
    manual.add_source("s", sample_rate=44100, channels=2)
    manual.push("s", np.zeros((441, 2), dtype=np.int16))
    assert manual.stats()["sources"]["s"]["frames_in"] == 441


def test_periods_count_whole_10ms_periods_however_render_is_called(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("out", channels=1)
    for _ in range(480 * 10):
        manual.render("out", 1)
    assert manual.stats()["sinks"]["out"]["periods"] == 10
    manual.render("out", 240)
    assert manual.stats()["sinks"]["out"]["periods"] == 10  # half a period so far
    manual.render("out", 240)
    assert manual.stats()["sinks"]["out"]["periods"] == 11


def test_a_source_counts_each_frame_lost_once_however_many_routes_lost_it(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("a", channels=1)
    manual.add_sink("b", channels=1)
    manual.add_source("s", buffer_ms=20, jitter_ms=0)  # 960 frames
    manual.connect("s", "a")
    manual.connect("s", "b")
    manual.push("s", np.zeros((500, 1), np.float32))
    manual.render("a", 500)  # route a is 500 frames ahead of route b
    manual.push("s", np.zeros((2500, 1), np.float32))
    s = manual.stats()
    # 3000 written, 960 kept: a lost frames 500-2039, b lost 0-2039.
    assert s["sinks"]["a"]["routes"]["s"]["dropped_frames"] == 1540
    assert s["sinks"]["b"]["routes"]["s"]["dropped_frames"] == 2040
    assert s["sources"]["s"]["dropped_frames"] == 2040  # not 3580: frames, not frames times routes
    assert s["sources"]["s"]["overruns"] == 1


def test_a_sink_shows_the_encoder_settings_in_use(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("stereo")
    manual.add_sink("mono", channels=1)
    manual.add_sink("set", bitrate=32000, complexity=3, low_delay=True)
    sinks = manual.stats()["sinks"]
    assert [(sinks[s]["bitrate"], sinks[s]["complexity"], sinks[s]["low_delay"]) for s in ("stereo", "mono", "set")] == [
        (128000, 9, False), (64000, 9, False), (32000, 3, True)]
