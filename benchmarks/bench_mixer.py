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
from collections.abc import Callable

import numpy as np

import sinkcast
from sinkcast import _sinkcast

FRAMES = 480
COUNTS = [1, 2, 4, 8, 16, 32, 64]


ROUNDS = 15  # best of this many rounds of NUMBER calls
NUMBER = 200


def best_of_interleaved(cases: list[tuple[Callable[[], None], Callable[[], object]]]) -> list[float]:
    """Best-of-ROUNDS mean ns per call of each (prepare, call) case, timing each
    call alone; `prepare()` runs untimed before it. The cases take turns round
    by round, so a slow phase of this shared machine hits them all alike
    instead of whichever was being measured then; the best round of each is
    the one least disturbed. The engine and numpy are timed this same way."""
    best = [float("inf")] * len(cases)
    for _ in range(ROUNDS):
        for i, (prepare, call) in enumerate(cases):
            total = 0
            for _ in range(NUMBER):
                prepare()
                t0 = time.perf_counter_ns()
                call()
                total += time.perf_counter_ns() - t0
            best[i] = min(best[i], total / NUMBER)
    return best


def blocks_for(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.uniform(-0.5, 0.5, (FRAMES, 2)).astype(np.float32) for _ in range(n)]


def python_side_ns(n: int) -> tuple[float, float, float]:
    """(render, render into a reused array, numpy) ns per period, for n sources."""
    blocks = blocks_for(n)
    gains = [np.float32(0.5)] * n
    volume = np.float32(1.0)

    def numpy_mix() -> object:
        acc = gains[0] * blocks[0]
        for g, x in zip(gains[1:], blocks[1:]):
            acc += g * x
        return np.clip(volume * acc, -1.0, 1.0)

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
        render, render_out, numpy_ns = best_of_interleaved([
            (refill, lambda: eng.render("out", FRAMES)),
            (refill, lambda: eng.render("out", FRAMES, out=buf)),
            (lambda: None, numpy_mix),
        ])
        underruns = sum(s["underruns"] for s in eng.stats()["sources"].values())
        assert underruns == 0, "benchmark bug: the mixer ran dry"
    return render, render_out, numpy_ns


def warm_up() -> None:
    """One untimed pass of every kind of measurement. The first figures of a fresh
    process came out ~1.5x slow (cold caches, a CPU still clocking up): the
    1-source C++ mix read 185 ns first and 122 ns on every later call."""
    deadline = time.perf_counter() + 0.3
    while time.perf_counter() < deadline:
        _sinkcast._benchmark_mixer(1, 2, NUMBER, 1)
    python_side_ns(1)


def main() -> None:
    print(f"mixer benchmark: {FRAMES}-frame (10 ms) periods, stereo float32 sources, best of {ROUNDS} rounds")
    warm_up()
    print(f"{'sources':>7} {'cpp ns':>8} {'memcpy ns':>9} {'cpp/memcpy':>10} {'render ns':>9} {'out= ns':>8} "
          f"{'numpy ns':>9} {'numpy/render':>12} {'numpy/out=':>10}")
    for n in COUNTS:
        cpp = _sinkcast._benchmark_mixer(n, 2, NUMBER, ROUNDS)  # mix and memcpy alternate period by period
        r, ro, npy = python_side_ns(n)
        print(
            f"{n:7d} {cpp['mixer_ns_per_period']:8.0f} {cpp['memcpy_ns_per_period']:9.0f} "
            f"{cpp['mixer_ns_per_period'] / cpp['memcpy_ns_per_period']:10.2f} {r:9.0f} {ro:8.0f} {npy:9.0f} "
            f"{npy / r:12.1f} {npy / ro:10.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
