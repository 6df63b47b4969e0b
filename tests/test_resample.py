"""Sources at any rate from 8 to 192 kHz are resampled to 48 kHz by libsoxr."""

from __future__ import annotations

import time

import numpy as np
import pytest

import sinkcast


def sine_snr_db(x: np.ndarray, freq: float, rate: float) -> float:
    """SNR of x against the best-fitting sine of `freq` (least squares on sin, cos and DC)."""
    t = np.arange(len(x)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    fit = basis @ coef
    noise = x - fit
    return float(10 * np.log10(np.sum(fit**2) / np.sum(noise**2)))


def resample_through_engine(rate: int, signal: np.ndarray) -> np.ndarray:
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=1)
        eng.add_source("s", sample_rate=rate, buffer_ms=10000)
        eng.connect("s", "out")
        eng.push("s", signal)
        eng.flush("s")
        queued = eng.stats()["sinks"]["out"]["routes"]["s"]["buffered_frames"]
        return eng.render("out", queued)[:, 0].astype(np.float64)


def test_1khz_sine_44100_to_48000_keeps_80_db_snr() -> None:
    rate = 44100
    t = np.arange(2 * rate) / rate
    out = resample_through_engine(rate, (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32))
    assert len(out) == 2 * 48000  # flushed: every frame of the input, and no more
    # Skip the filter's start-up and the flushed end (the input as if silence followed).
    steady = out[4800 : len(out) - 4800]
    snr = sine_snr_db(steady, 1000.0, 48000)
    assert snr >= 80.0, f"SNR {snr:.1f} dB"


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 32000, 88200, 96000, 192000])
def test_other_rates_keep_frequency_and_length(rate: int) -> None:
    seconds = 1.0
    freq = 1000.0 if rate > 8000 else 440.0
    t = np.arange(int(seconds * rate)) / rate
    out = resample_through_engine(rate, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32))
    # Flushed, the output has exactly the input's duration.
    assert len(out) == round(len(t) * 48000 / rate)
    spectrum = np.abs(np.fft.rfft(out[2400:-2400] * np.hanning(len(out) - 4800)))
    peak_hz = np.argmax(spectrum) * 48000 / (len(out) - 4800)
    assert peak_hz == pytest.approx(freq, abs=3.0)
    assert sine_snr_db(out[2400:-2400], freq, 48000) >= 70.0


def test_resampled_pushes_in_small_blocks_are_continuous() -> None:
    rate = 44100
    t = np.arange(rate) / rate
    x = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=1)
        eng.add_source("s", sample_rate=rate, buffer_ms=5000)
        eng.connect("s", "out")
        for i in range(0, len(x), 441):  # 10 ms blocks, as a live producer would push
            eng.push("s", x[i : i + 441])
        queued = eng.stats()["sinks"]["out"]["routes"]["s"]["buffered_frames"]
        out = eng.render("out", queued)[:, 0].astype(np.float64)
    assert sine_snr_db(out[4800:-4800], 1000.0, 48000) >= 80.0


def test_floats_near_their_limit_are_clipped_through_the_resampler_never_nan() -> None:
    # Finite, so push() takes them; libsoxr's float filter made NaN of them.
    loud = (3e38 * np.sin(2 * np.pi * 1000.0 * np.arange(44100) / 44100)).astype(np.float32)
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=1)
        eng.add_source("s", sample_rate=44100, jitter_ms=0)
        eng.connect("s", "out")
        eng.push("s", loud)
        out = eng.render("out", 24000)
    assert np.isfinite(out).all()
    assert np.abs(out).max() == 1.0


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 96000])
def test_resampled_audio_comes_out_within_20_ms_of_each_push(rate: int) -> None:
    # libsoxr's defaults held a 10 ms push at 8 kHz for ~150 ms and then
    # released 7360 frames at once: latency, and underruns at jitter_ms=20.
    block = rate // 100
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=1)
        eng.add_source("s", sample_rate=rate, buffer_ms=5000)
        eng.connect("s", "out")
        queued = []
        for _ in range(100):
            eng.push("s", np.full(block, 0.1, np.float32))
            queued.append(eng.stats()["sinks"]["out"]["routes"]["s"]["buffered_frames"])
    per_push = np.diff([0, *queued])
    assert per_push.max() <= 960, f"a push released {per_push.max()} frames at once"
    assert queued[1] > 0  # output by the second push
    assert queued[-1] >= 100 * 480 - 960  # at most 20 ms held back


@pytest.mark.parametrize("rate", [8000, 44100])
def test_flush_plays_out_the_resamplers_tail_and_the_next_clip_starts_afresh(rate: int) -> None:
    clip = np.full(rate // 2, 0.5, np.float32)
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=1)
        eng.add_source("s", sample_rate=rate)
        eng.connect("s", "out")
        for _ in range(2):
            eng.push("s", clip)
            held = 24000 - eng.stats()["sinks"]["out"]["routes"]["s"]["buffered_frames"]
            assert held > 0  # the filter's delay, until it is flushed
            eng.flush("s")
            assert eng.stats()["sinks"]["out"]["routes"]["s"]["buffered_frames"] == 24000
            out = eng.render("out", 24000)[:, 0]
            assert np.abs(out[600:-600] - 0.5).max() < 0.01  # the whole clip, at its level


def test_flush_plays_what_is_short_of_jitter_ms_in_real_time() -> None:
    with sinkcast.AudioManager() as eng:
        eng.add_sink("out", channels=1)
        eng.add_source("s", jitter_ms=100)
        eng.connect("s", "out")
        tap = eng.open_tap("out", seconds=5.0)
        eng.push("s", np.full((960, 1), 0.5, np.float32))  # 20 ms: a fifth of jitter_ms
        time.sleep(0.3)
        assert not (np.abs(tap.read()) > 0.25).any()  # waits for 100 ms of audio, however long
        eng.flush("s")
        heard = 0
        deadline = time.monotonic() + 5.0
        while heard < 960 and time.monotonic() < deadline:
            time.sleep(0.05)
            heard += int(np.count_nonzero(np.abs(tap.read()) > 0.25))
        assert heard == 960


def test_flush_of_a_generator_source_is_refused() -> None:
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_tone_source("t")
        with pytest.raises(ValueError, match="only sources made with add_source"):
            eng.flush("t")
        with pytest.raises(sinkcast.UnknownSourceError):
            eng.flush("nope")
