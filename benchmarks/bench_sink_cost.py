"""What one sink costs before its listeners: the Opus encode and the clock's wake-up.

A sink encodes each 20 ms frame once, whatever the number of listeners, on
a thread that sleeps until the next frame is due. At one listener that is
most of sinkcast's CPU (bench_fanout.py), and it bounds how far below
aiortc's cost sinkcast can be there. This measures it apart:

- sinkcast's encoder (libopus through cpp/codec/opus_encoder.cpp), timed in
  C++ with the thread's CPU clock, and PyAV's libopus (what aiortc encodes
  with) at the same bitrate and complexity, timed from Python around
  CodecContext.encode(). Both back to back and one frame per 20 ms, the way a
  sink runs: a thread that slept starts each frame with colder caches.
- The CPU of each wake-up itself, in sinkcast's loop, beside a Python thread
  doing nothing but time.sleep(0.02).

Run: ./run python benchmarks/bench_sink_cost.py
"""

from __future__ import annotations

import statistics
import time
from fractions import Fraction

import av
import numpy as np

from sinkcast import _sinkcast as native

BITRATE = 128_000
COMPLEXITY = 10
FRAME = 960  # 20 ms at 48 kHz
HOT_FRAMES = 500
PACED_FRAMES = 150  # 3 s of frames, 20 ms apart
ROUNDS = 3


def tone_frames(count: int) -> list[av.AudioFrame]:
    """The same 440 Hz stereo tone sinkcast's helper encodes, as PyAV frames."""
    t = np.arange(count * FRAME) / 48000
    mono = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    frames = []
    for i in range(count):
        chunk = mono[i * FRAME:(i + 1) * FRAME]
        packed = np.repeat(chunk, 2).reshape(1, -1)  # L R L R ...
        frame = av.AudioFrame.from_ndarray(packed, format="flt", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = i * FRAME
        frame.time_base = Fraction(1, 48000)
        frames.append(frame)
    return frames


def pyav_encoder() -> av.AudioCodecContext:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48000
    codec.layout = "stereo"
    codec.format = "flt"
    codec.bit_rate = BITRATE
    codec.options = {"compression_level": str(COMPLEXITY)}
    return codec


def pyav_encode(frames: list[av.AudioFrame], gap_s: float) -> tuple[float, float]:
    """Mean thread CPU per encode() call in us, and mean bytes per frame."""
    codec = pyav_encoder()
    cpu = size = 0
    due = time.monotonic()
    for frame in frames:
        t0 = time.thread_time_ns()
        packets = codec.encode(frame)
        cpu += time.thread_time_ns() - t0
        size += sum(p.size for p in packets)
        if gap_s:
            due += gap_s
            time.sleep(max(0.0, due - time.monotonic()))
    return cpu / len(frames) / 1000, size / len(frames)


def python_wake_us(wakes: int) -> float:
    """Thread CPU per wake of a Python loop that only sleeps until the next 20 ms."""
    due = time.monotonic()
    t0 = time.thread_time_ns()
    for _ in range(wakes):
        due += 0.02
        time.sleep(max(0.0, due - time.monotonic()))
    return (time.thread_time_ns() - t0) / wakes / 1000


def main() -> None:
    hot_frames, paced_frames = tone_frames(HOT_FRAMES), tone_frames(PACED_FRAMES)
    native._benchmark_opus_encode(50, BITRATE, COMPLEXITY)  # warm-up
    pyav_encode(hot_frames[:50], 0)
    hot_sc, hot_av, paced_sc, paced_av, wake_sc, wake_py = [], [], [], [], [], []
    bytes_sc, bytes_av = 0.0, 0.0
    for _ in range(ROUNDS):  # the two take turns, so a slow phase of the machine hits both
        hot = native._benchmark_opus_encode(HOT_FRAMES, BITRATE, COMPLEXITY)
        hot_sc.append(hot["encode_ns_per_frame"] / 1000)
        bytes_sc = hot["bytes_per_frame"]
        us, bytes_av = pyav_encode(hot_frames, 0)
        hot_av.append(us)
        paced = native._benchmark_opus_encode(PACED_FRAMES, BITRATE, COMPLEXITY, gap_ms=20)
        paced_sc.append(paced["encode_ns_per_frame"] / 1000)
        wake_sc.append(paced["wake_ns_per_frame"] / 1000)
        paced_av.append(pyav_encode(paced_frames, 0.02)[0])
        wake_py.append(python_wake_us(PACED_FRAMES))

    best_hot_sc, best_hot_av = min(hot_sc), min(hot_av)
    med_paced_sc, med_paced_av = statistics.median(paced_sc), statistics.median(paced_av)
    print(f"sink cost benchmark: 20 ms stereo frames of a 440 Hz tone, {BITRATE // 1000} kbit/s, complexity "
          f"{COMPLEXITY}; back to back: best of {ROUNDS} runs of {HOT_FRAMES} frames; one frame per 20 ms: "
          f"median of {ROUNDS} runs of {PACED_FRAMES}")
    print(f"{'encoder':28} {'back to back':>14} {'one per 20 ms':>14} {'ms/s at 50/s':>13} {'bytes/frame':>12}")
    print(f"{'sinkcast (its libopus)':28} {best_hot_sc:11.1f} us {med_paced_sc:11.1f} us {med_paced_sc * 0.05:13.2f}"
          f" {bytes_sc:12.0f}")
    print(f"{'PyAV libopus (baseline)':28} {best_hot_av:11.1f} us {med_paced_av:11.1f} us {med_paced_av * 0.05:13.2f}"
          f" {bytes_av:12.0f}")
    print(f"{'PyAV / sinkcast':28} {best_hot_av / best_hot_sc:14.2f} {med_paced_av / med_paced_sc:14.2f}")
    ws, wp = statistics.median(wake_sc), statistics.median(wake_py)
    print(f"one wake-up every 20 ms, CPU per wake: sinkcast's loop {ws:.1f} us ({ws * 0.05:.2f} ms/s), "
          f"a Python thread that only sleeps {wp:.1f} us ({wp * 0.05:.2f} ms/s)")
    print("(us = thread CPU microseconds per 20 ms frame; ms/s = CPU ms per second of audio at 50 frames/s;\n"
          " PyAV's figure includes its Python call, a few us; the wake-up is the loop's CPU outside the encode;\n"
          " bytes/frame: FFmpeg's libopus wrapper spends ~20 % more than the bitrate asked at 64-256 kbit/s)")


if __name__ == "__main__":
    main()
