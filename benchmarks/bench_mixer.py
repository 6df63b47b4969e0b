"""Mixer cost per 10 ms period, for 1-64 stereo sources.

Four figures per row, all measured in this run:
  cpp     the C++ SinkAudioMixer alone (no Python), ns per period
  memcpy  memcpy of the same source bytes, in C++, ns per period
  render  AudioManager.render() from Python (lookups, GIL release, a new ndarray), ns per period
  out=    AudioManager.render(..., out=buffer): the same into a reused array
  numpy   numpy doing the same mix: clip(volume * sum(gain * x), -1, 1), ns per period
and the ratios the goals are stated in: cpp/memcpy (goal <= 2) and numpy/render
(goal >= 10 at 8 sources), for both render forms.

Run: ./run python benchmarks/bench_mixer.py
"""

from __future__ import annotations

import time

import numpy as np

import sinkcast
from sinkcast import _sinkcast

FRAMES = 480
COUNTS = [1, 2, 4, 8, 16, 32, 64]


def timed_calls(prepare, call, repeats: int = 7, number: int = 200) -> float:
    """Best-of-`repeats` mean ns of `call()`, timing each call alone; `prepare()` runs untimed before it.
    Both the engine and numpy are timed this same way."""
    best = float("inf")
    for _ in range(repeats):
        total = 0
        for _ in range(number):
            prepare()
            t0 = time.perf_counter_ns()
            call()
            total += time.perf_counter_ns() - t0
        best = min(best, total / number)
    return best


def blocks_for(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.uniform(-0.5, 0.5, (FRAMES, 2)).astype(np.float32) for _ in range(n)]


def render_ns(n: int, into_buffer: bool = False) -> float:
    blocks = blocks_for(n)
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=2)
        for i in range(n):
            eng.add_source(f"s{i}", channels=2)
            eng.connect(f"s{i}", "out", gain=0.5)
        ids = [f"s{i}" for i in range(n)]

        def refill() -> None:  # one period per source, so every render mixes real audio
            for sid, block in zip(ids, blocks):
                eng.push(sid, block)

        buf = np.empty((FRAMES, 2), np.float32)
        if into_buffer:
            ns = timed_calls(refill, lambda: eng.render("out", FRAMES, out=buf))
        else:
            ns = timed_calls(refill, lambda: eng.render("out", FRAMES))
        underruns = sum(s["underruns"] for s in eng.stats()["sources"].values())
        assert underruns == 0, "benchmark bug: the mixer ran dry"
        return ns


def numpy_ns(n: int) -> float:
    blocks = blocks_for(n)
    gains = [np.float32(0.5)] * n
    volume = np.float32(1.0)

    def mix() -> np.ndarray:
        acc = gains[0] * blocks[0]
        for g, x in zip(gains[1:], blocks[1:]):
            acc += g * x
        return np.clip(volume * acc, -1.0, 1.0)

    return timed_calls(lambda: None, mix)


def warm_up() -> None:
    """One untimed pass of every kind of measurement. The first figures of a fresh
    process came out ~1.5x slow (cold caches, a CPU still clocking up): the
    1-source C++ mix read 185 ns first and 122 ns on every later call."""
    deadline = time.perf_counter() + 0.3
    while time.perf_counter() < deadline:
        _sinkcast._benchmark_mixer(1, 2, 200, 1)
    render_ns(1)
    numpy_ns(1)


def main() -> None:
    print(f"mixer benchmark: {FRAMES}-frame (10 ms) periods, stereo float32 sources, best of 7 runs")
    warm_up()
    print(f"{'sources':>7} {'cpp ns':>8} {'memcpy ns':>9} {'cpp/memcpy':>10} {'render ns':>9} {'out= ns':>8} "
          f"{'numpy ns':>9} {'numpy/render':>12} {'numpy/out=':>10}")
    for n in COUNTS:
        cpp = _sinkcast._benchmark_mixer(n, 2, 200, 7)
        r = render_ns(n)
        ro = render_ns(n, into_buffer=True)
        npy = numpy_ns(n)
        print(
            f"{n:7d} {cpp['mixer_ns_per_period']:8.0f} {cpp['memcpy_ns_per_period']:9.0f} "
            f"{cpp['mixer_ns_per_period'] / cpp['memcpy_ns_per_period']:10.2f} {r:9.0f} {ro:8.0f} {npy:9.0f} "
            f"{npy / r:12.1f} {npy / ro:10.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
