"""Sources at any rate from 8 to 192 kHz are resampled to 48 kHz by libsoxr."""

from __future__ import annotations

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
        queued = eng.stats()["sinks"]["out"]["routes"]["s"]["buffered_frames"]
        return eng.render("out", queued)[:, 0].astype(np.float64)


def test_1khz_sine_44100_to_48000_keeps_80_db_snr() -> None:
    rate = 44100
    t = np.arange(2 * rate) / rate
    out = resample_through_engine(rate, (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32))
    assert len(out) == pytest.approx(2 * 48000, abs=2000)
    # Skip the filter's start-up and the unflushed tail.
    steady = out[4800 : len(out) - 4800]
    snr = sine_snr_db(steady, 1000.0, 48000)
    assert snr >= 80.0, f"SNR {snr:.1f} dB"


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 32000, 88200, 96000, 192000])
def test_other_rates_keep_frequency_and_length(rate: int) -> None:
    seconds = 1.0
    freq = 1000.0 if rate > 8000 else 440.0
    t = np.arange(int(seconds * rate)) / rate
    out = resample_through_engine(rate, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32))
    # Output length tracks the rate ratio, minus what the filter still holds
    # (its delay, longest at 8 kHz: under 0.15 s).
    assert 48000 * (seconds - 0.15) <= len(out) <= 48000 * seconds * 1.001
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


def test_the_loudest_float_push_takes_is_clipped_through_the_resampler_never_nan() -> None:
    # A 1 kHz sine at the largest magnitude push() accepts.
    loud = (1e6 * np.sin(2 * np.pi * 1000.0 * np.arange(44100) / 44100)).astype(np.float32)
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=1)
        eng.add_source("s", sample_rate=44100, jitter_ms=0)
        eng.connect("s", "out")
        eng.push("s", loud)
        out = eng.render("out", 24000)
    assert np.isfinite(out).all()
    assert np.abs(out).max() == 1.0
