"""The mix is exactly clip(volume * sum(gain_i * map_i(src_i)), -1, 1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sinkcast
from dlpack_only import DLPackOnly
from reference_mix import channel_matrix, mix


@st.composite
def mixes(draw: st.DrawFn) -> tuple[int, float, int, list[Source]]:
    sink_channels = draw(st.sampled_from([1, 2]))
    volume = draw(st.floats(0.0, 4.0))
    frames = draw(st.integers(0, 3000))
    n = draw(st.integers(0, 20))  # past 8: the mixer sums in several groups
    sources = [
        Source(
            channels=draw(st.integers(1, 8)),
            gain=draw(st.floats(0.0, 4.0)),
            seed=draw(st.integers(0, 2**31 - 1)),
            # float32 input may go past full scale; the mix clips only at the end
            amplitude=draw(st.sampled_from([1.0, 3.0])),
            # fewer frames than rendered: the rest is an underrun, i.e. silence
            pushed=draw(st.integers(0, frames)) if draw(st.booleans()) else frames,
        )
        for _ in range(n)
    ]
    return sink_channels, volume, frames, sources


@dataclass
class Source:
    channels: int
    gain: float
    seed: int
    amplitude: float
    pushed: int


@settings(max_examples=200, deadline=None)
@given(mixes())
def test_mix_matches_numpy_reference(case: tuple[int, float, int, list[Source]]) -> None:
    sink_channels, volume, frames, sources = case
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=sink_channels, volume=volume)
        reference = []
        for i, src in enumerate(sources):
            rng = np.random.default_rng(src.seed)
            samples = rng.uniform(-src.amplitude, src.amplitude, (frames, src.channels)).astype(np.float32)
            samples[src.pushed:] = 0.0
            eng.add_source(f"s{i}", channels=src.channels)
            eng.connect(f"s{i}", "out", gain=src.gain)
            eng.push(f"s{i}", samples[: src.pushed])
            reference.append((samples, src.gain))
        got = eng.render("out", frames)
    assert got.dtype == np.float32 and got.shape == (frames, sink_channels)
    expected = mix(reference, sink_channels, volume) if reference else np.zeros((frames, sink_channels))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([1, 2]), st.integers(21, 40)), min_size=1, max_size=11),
    st.lists(st.integers(1, 480), min_size=1, max_size=12),
    st.integers(0, 2**31 - 1),
)
def test_many_sources_through_wrapping_rings_match_reference(
    layouts: list[tuple[int, int]], periods: list[int], seed: int
) -> None:
    """Stereo sources are read several per pass, straight from their rings; mono ones
    through the channel map. Rings of different sizes wrap at different frames, so
    the passes are cut at every wrap; each period is pushed in uneven pieces."""
    rng = np.random.default_rng(seed)
    total = sum(periods)
    streams = [rng.uniform(-1, 1, (total, ch)).astype(np.float32) for ch, _ in layouts]
    gains = rng.uniform(0, 2, len(layouts))
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=2, volume=0.8)
        for i, (ch, buffer_ms) in enumerate(layouts):
            eng.add_source(f"s{i}", channels=ch, buffer_ms=buffer_ms)
            eng.connect(f"s{i}", "out", gain=float(gains[i]))
        rendered, start = [], 0
        for n in periods:
            for i, stream in enumerate(streams):
                cut = int(rng.integers(0, n + 1))
                eng.push(f"s{i}", stream[start : start + cut])
                eng.push(f"s{i}", stream[start + cut : start + n])
            rendered.append(eng.render("out", n))
            start += n
        stats = eng.stats()
    assert all(s["underruns"] == 0 and s["dropped_frames"] == 0 for s in stats["sources"].values())
    expected = mix(list(zip(streams, gains)), 2, 0.8)
    np.testing.assert_allclose(np.concatenate(rendered), expected, rtol=0, atol=1e-6)


def render_pushed(sources: list[tuple[np.ndarray, float]], frames: int) -> np.ndarray:
    """The first `frames` of a stereo sink fed by one pushed stereo source per
    (block, gain), each block pushed whole into a ring twice its length."""
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=2)
        for i, (block, gain) in enumerate(sources):
            eng.add_source(f"s{i}", channels=2, buffer_ms=max(100, 2 * -(-len(block) // 48)))
            eng.connect(f"s{i}", "out", gain=gain)
            eng.push(f"s{i}", block)
        return eng.render("out", frames)


def test_nearly_cancelling_sources_within_full_scale_stay_exact() -> None:
    # Sources within [-1, 1] with moderate gains are summed in float; the worst
    # case of that is cancellation, where a small sum carries the rounding of
    # large terms. Four sources whose weighted sum nearly cancels, at the largest
    # gains that path takes (mix_kernels.cpp), must still meet the contract.
    rng = np.random.default_rng(5)
    frames, gains = 48_000, [0.8, 0.8, 0.8, 0.79]
    a, b = rng.uniform(-0.98, 0.98, (2, frames, 2))
    small = rng.uniform(-1e-3, 1e-3, (2, frames, 2))
    blocks = [np.clip(v, -1, 1).astype(np.float32) for v in (a, b, -a + small[0], -b * 0.8 / 0.79 + small[1])]
    got = render_pushed(list(zip(blocks, gains)), frames)
    expected = mix(list(zip(blocks, gains)), 2, 1.0)
    assert np.abs(expected).max() < 0.01  # the sources really do cancel
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_many_nearly_cancelling_sources_stay_exact() -> None:
    # Past eight sources the mixer sums in groups of eight, each in float pairs
    # while the rounding budget allows it (mix_kernels.h). Twenty-four sources
    # at a gain just under the limit for all three groups to take float pairs
    # (~0.19 at these peaks), where the last twelve cancel the first twelve
    # across the groups. (test_mix_kernels.cpp checks which path is taken.)
    rng = np.random.default_rng(6)
    frames, gain = 48_000, 0.185
    loud = rng.uniform(-0.98, 0.98, (12, frames, 2))
    small = rng.uniform(-1e-4, 1e-4, (12, frames, 2))
    blocks = [v.astype(np.float32) for v in (*loud, *(-loud + small))]
    got = render_pushed([(b, gain) for b in blocks], frames)
    expected = mix([(b, gain) for b in blocks], 2, 1.0)
    assert np.abs(expected).max() < 0.01  # the sources really do cancel
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_float_pairs_spend_one_rounding_budget_for_the_whole_mix() -> None:
    # Eighty sources at gain 0.5 built so that every pair of them summed in
    # float (mix_kernels.h: sources 2p and 2p+1 of each group of eight) rounds
    # by the same -2^-25: a + b on the 2^-24 grid lands on a tie that rounds
    # half to even the same way in every pair. Each group of eight fits the
    # budget on its own, so a mixer that gave every group the whole budget
    # would sum all forty pairs in float and miss the contract; spending one
    # budget across the groups keeps the rest in double.
    rng = np.random.default_rng(7)
    frames, pairs = 4800, 20
    ia = rng.integers(2**23, 3 * 2**22, (pairs, frames, 2))
    ib = rng.integers(2**23, int(0.98 * 2**24), (pairs, frames, 2))
    ib += (1 - (ia + ib)) % 4  # a + b = k * 2^-24, k = 1 mod 4: rounds down
    a, b = (ia / 2**24).astype(np.float32), (ib / 2**24).astype(np.float32)
    b_up = ((ib + 2) / 2**24).astype(np.float32)  # k = 3 mod 4: rounds up, away from zero once negated
    blocks = [x for p in range(pairs) for x in (a[p], b[p])] + [x for p in range(pairs) for x in (-a[p], -b_up[p])]
    gain = 0.5
    expected = mix([(block, gain) for block in blocks], 2, 1.0)
    half = np.float32(gain)
    every_pair_in_float = sum(
        (half * blocks[i] + half * blocks[i + 1]).astype(np.float64) for i in range(0, len(blocks), 2)
    )
    assert np.abs(every_pair_in_float - expected).min() > 1e-6  # the inputs are that adversarial
    got = render_pushed([(block, gain) for block in blocks], frames)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_gains_below_float_range_are_summed_exactly() -> None:
    # A gain of ~1e-45 is allowed, but as a float it keeps a bit or two: times
    # samples at float32's largest value, summing in float would err by ~1e-7
    # per source (a review found 1.9e-6 with 16 sources in float pairs).
    gain = 0.75 * 2.0**-149
    loud = np.full((480, 2), np.finfo(np.float32).max, np.float32)
    got = render_pushed([(loud, gain)] * 16, 480)
    expected = mix([(loud, gain)] * 16, 2, 1.0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_audio_beyond_full_scale_is_summed_exactly() -> None:
    # float32 pushes may exceed full scale. Summed in float, 1000.x * 0.1 would
    # be off by more than 1e-6 after cancelling: the mixer must see the loud
    # frames' peak in the ring and sum them in double, also when they are
    # rendered in pieces that straddle the ring's blocks.
    rng = np.random.default_rng(6)
    quiet = [rng.uniform(-0.5, 0.5, (480, 2)).astype(np.float32) for _ in range(2)]
    loud = (1000.0 + rng.uniform(-1, 1, (480, 2))).astype(np.float32)
    streams = [
        np.concatenate([quiet[0], loud, quiet[0]]),
        np.concatenate([quiet[1], np.full((480, 2), -1000.0, np.float32), quiet[1]]),
    ]
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=2)
        for i, stream in enumerate(streams):
            eng.add_source(f"s{i}", channels=2, buffer_ms=100)
            eng.connect(f"s{i}", "out", gain=0.1)
        got = []
        for part in range(3):  # one push per part, rendered in pieces that straddle the edges
            for i, stream in enumerate(streams):
                eng.push(f"s{i}", stream[480 * part : 480 * (part + 1)])
            got += [eng.render("out", n) for n in (100, 380)] if part < 2 else [eng.render("out", 480)]
    expected = mix([(s, 0.1) for s in streams], 2, 1.0)
    assert np.abs(expected[480:960]).max() > 0.05
    np.testing.assert_allclose(np.concatenate(got), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
def test_cancelling_integer_sources_at_high_gain_stay_exact(dtype: type) -> None:
    # Integer pushes report their peak too. Eight sources at gain 9.9 that
    # cancel in pairs across the halves of the sum: summed in float, the error
    # would reach ~2e-6, so these must be summed in double.
    rng = np.random.default_rng(8)
    scale = 2**15 if dtype == np.int16 else 2**31
    halves = [rng.integers(-scale * 45 // 100, scale * 45 // 100, (48_000, 2)) for _ in range(4)]
    ints = halves + [-x + rng.integers(-scale // 500, scale // 500, (48_000, 2)) for x in halves]
    blocks = [x.astype(dtype) for x in ints]
    got = render_pushed([(b, 9.9) for b in blocks], 48_000)
    # The reference starts from the samples as the engine holds them: int32
    # becomes float32 on the way in (README, Samples), which alone costs up to
    # 9e-7 here at gain 9.9 x 8, and is not the mixer's error.
    expected = mix([((x / scale).astype(np.float32), 9.9) for x in blocks], 2, 1.0)
    assert np.abs(expected).max() < 0.2  # they cancel: no clipping hides an error
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_loud_audio_left_from_the_last_lap_of_a_ring_is_summed_exactly() -> None:
    # The ring keeps a peak per block of slots for the frames still readable in
    # it, including those of its previous lap. Here quiet pushes overwrite the
    # start of a ring full of loud, cancelling audio; the frames read next are
    # the loud ones that share a block with the quiet pushes, and must not be
    # summed as if they were quiet.
    rng = np.random.default_rng(7)
    capacity = 4800  # buffer_ms=100
    loud = [(1000.0 + rng.uniform(-1, 1, (capacity, 2))).astype(np.float32), np.full((capacity, 2), -1000.0, np.float32)]
    quiet = [rng.uniform(-0.5, 0.5, (150, 2)).astype(np.float32) for _ in range(2)]
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=2)
        for i in range(2):
            eng.add_source(f"s{i}", channels=2, buffer_ms=100)
            eng.connect(f"s{i}", "out", gain=0.1)
            eng.push(f"s{i}", loud[i])
            # The ring is full: the oldest 150 loud frames go. Two pushes, so the
            # second writes into the middle of a block that still holds loud frames.
            eng.push(f"s{i}", quiet[i][:100])
            eng.push(f"s{i}", quiet[i][100:])
        got = np.concatenate([eng.render("out", 106), eng.render("out", capacity - 106)])
        assert all(s["dropped_frames"] == 150 for s in eng.stats()["sources"].values())
    streams = [np.concatenate([loud[i][150:], quiet[i]]) for i in range(2)]
    expected = mix([(s, 0.1) for s in streams], 2, 1.0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 1500), min_size=1, max_size=8), st.integers(0, 2**31 - 1))
def test_render_in_pieces_equals_render_at_once(pieces: list[int], seed: int) -> None:
    total = sum(pieces)
    samples = np.random.default_rng(seed).uniform(-1, 1, (total, 2)).astype(np.float32)
    outputs = []
    for split in (pieces, [total]):
        with sinkcast.AudioManager(realtime=False) as eng:
            eng.add_sink("out", channels=2)
            eng.add_source("s", channels=2, buffer_ms=1000)
            eng.add_tone_source("t", frequency_hz=997.0, amplitude=0.3)
            eng.connect("s", "out", gain=0.5)
            eng.connect("t", "out", gain=0.7)
            eng.push("s", samples)
            outputs.append(np.concatenate([eng.render("out", n) for n in split]))
    np.testing.assert_array_equal(outputs[0], outputs[1])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 1500), min_size=1, max_size=8), st.integers(0, 2**31 - 1))
def test_pushed_sources_rendered_in_pieces_agree_within_the_contract(pieces: list[int], seed: int) -> None:
    # Quiet then full-scale audio at gain 2.5: depending on which ring blocks a
    # piece touches, its frames are summed in float or in double, so pieces may
    # differ from one render in the last bits, but never beyond the mix's 1e-6.
    total = sum(pieces)
    rng = np.random.default_rng(seed)
    streams = [rng.uniform(-1, 1, (total, 2)).astype(np.float32) for _ in range(2)]
    for s in streams:
        s[: total // 2] *= 0.3
    outputs = []
    for split in (pieces, [total]):
        with sinkcast.AudioManager(realtime=False) as eng:
            eng.add_sink("out", channels=2)
            for i, s in enumerate(streams):
                eng.add_source(f"s{i}", channels=2, buffer_ms=1000)
                eng.connect(f"s{i}", "out", gain=2.5)
                eng.push(f"s{i}", s[: total // 2])
                eng.push(f"s{i}", s[total // 2 :])
            outputs.append(np.concatenate([eng.render("out", n) for n in split]))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(outputs[1], mix([(s, 2.5) for s in streams], 2, 1.0), rtol=0, atol=1e-6)


def test_render_is_deterministic() -> None:
    results = []
    for _ in range(2):
        with sinkcast.AudioManager(realtime=False) as eng:
            eng.add_sink("out", channels=2)
            eng.add_tone_source("t", frequency_hz=440.0, amplitude=0.5)
            eng.add_noise_source("n", amplitude=0.2, seed=7)
            eng.connect("t", "out")
            eng.connect("n", "out", gain=0.5)
            results.append(eng.render("out", 4800))
    np.testing.assert_array_equal(results[0], results[1])
    assert np.abs(results[0]).max() > 0.3


def test_noise_seeds_take_the_whole_64_bit_range() -> None:
    # Seeds are uint64 in the engine; a binding once took them as int64 and
    # refused every seed from 2**63 up.
    outs = []
    for seed in (2**63, 2**64 - 1, 2**64 - 1):
        with sinkcast.AudioManager(realtime=False) as eng:
            eng.add_sink("out", channels=1)
            eng.add_noise_source("n", amplitude=0.2, seed=seed)
            eng.connect("n", "out")
            outs.append(eng.render("out", 480))
    np.testing.assert_array_equal(outs[1], outs[2])
    assert not np.array_equal(outs[0], outs[1])


def test_clipping_is_exact_and_counted(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("out", channels=1, volume=2.0)
    manual.add_source("s")
    manual.connect("s", "out")
    x = np.array([0.25, 0.5, 0.75, -0.75, 1.0], dtype=np.float32)
    manual.push("s", x)
    np.testing.assert_array_equal(manual.render("out", 5)[:, 0], np.array([0.5, 1.0, 1.0, -1.0, 1.0], np.float32))
    assert manual.stats()["sinks"]["out"]["clipped_samples"] == 3


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [(np.int16, 32768.0), (np.int32, 2.0**31), (np.float32, 1.0)],
)
def test_sample_formats_scale_as_documented(manual: sinkcast.AudioManager, dtype: type, scale: float) -> None:
    manual.add_sink("out", channels=1)
    manual.add_source("s")
    manual.connect("s", "out")
    if dtype is np.float32:
        raw = np.array([0.5, -0.25, 0.0, -1.0], dtype=np.float32)
    else:
        info = np.iinfo(dtype)
        raw = np.array([info.max, info.min, 1, -12345], dtype=dtype)
    manual.push("s", raw)
    got = manual.render("out", 4)[:, 0]
    np.testing.assert_allclose(got, raw.astype(np.float64) / scale, rtol=0, atol=1e-7)


def test_one_d_push_is_interleaved(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("out", channels=2)
    manual.add_source("s", channels=2)
    manual.connect("s", "out")
    manual.push("s", np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32))
    np.testing.assert_allclose(manual.render("out", 2), [[0.1, 0.2], [0.3, 0.4]], atol=1e-7)


def test_strided_input_is_accepted(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("out", channels=2)
    manual.add_source("s", channels=2)
    manual.connect("s", "out")
    base = np.arange(40, dtype=np.float32).reshape(20, 2) / 100
    manual.push("s", base[::2])  # every other frame: a strided view
    np.testing.assert_allclose(manual.render("out", 10), base[::2], atol=1e-7)


@pytest.mark.parametrize("source_channels", range(1, 9))
@pytest.mark.parametrize("sink_channels", [1, 2])
def test_each_channel_map(manual: sinkcast.AudioManager, source_channels: int, sink_channels: int) -> None:
    # One impulse per source channel, at frame index == channel: each output frame
    # is then one column of the mapping matrix.
    manual.add_sink("out", channels=sink_channels)
    manual.add_source("s", channels=source_channels)
    manual.connect("s", "out")
    manual.push("s", np.eye(source_channels, dtype=np.float32) * 0.5)
    got = manual.render("out", source_channels)
    expected = 0.5 * channel_matrix(source_channels, sink_channels).T
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_stereo_to_mono_is_the_average(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("out", channels=1)
    manual.add_source("s", channels=2)
    manual.connect("s", "out")
    manual.push("s", np.array([[0.2, 0.6]], dtype=np.float32))
    assert manual.render("out", 1)[0, 0] == pytest.approx(0.4, abs=1e-7)


def test_gain_and_volume_changes_apply(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("out", channels=1)
    manual.add_source("s")
    manual.connect("s", "out", gain=1.0)
    manual.push("s", np.full(2, 0.5, dtype=np.float32))
    manual.set_gain("s", "out", 0.5)
    manual.set_volume("out", 0.5)
    assert manual.render("out", 1)[0, 0] == pytest.approx(0.125)
    manual.disconnect("s", "out")
    assert manual.render("out", 1)[0, 0] == 0.0


def test_one_source_feeds_two_sinks_independently(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("a", channels=1)
    manual.add_sink("b", channels=1)
    manual.add_source("s")
    manual.connect("s", "a")
    manual.connect("s", "b", gain=0.5)
    x = np.linspace(-0.5, 0.5, 100, dtype=np.float32)
    manual.push("s", x)
    np.testing.assert_allclose(manual.render("a", 100)[:, 0], x, atol=1e-7)
    np.testing.assert_allclose(manual.render("b", 100)[:, 0], 0.5 * x, atol=1e-7)


def test_render_returns_a_new_array_every_call(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("out", channels=2)
    manual.add_tone_source("t", frequency_hz=440.0, amplitude=0.5)
    manual.connect("t", "out")
    first = manual.render("out", 480)
    kept = first.copy()
    second = manual.render("out", 480)
    assert type(first) is np.ndarray and first.dtype == np.float32 and first.shape == (480, 2)
    assert first.flags.c_contiguous and first.flags.writeable and first.flags.owndata
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, kept)  # the second period did not land in the first array
    assert not np.array_equal(first, second)
    first[:] = 0  # the caller's to change
    del second
    assert manual.render("out", 0).shape == (0, 2)


def test_render_into_a_buffer(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("out", channels=2)
    manual.add_tone_source("t", frequency_hz=440.0, amplitude=0.5)
    manual.connect("t", "out")
    buf = np.empty((480, 2), np.float32)
    assert manual.render("out", 480, out=buf) is buf
    with sinkcast.AudioManager(realtime=False) as ref:
        ref.add_sink("out", channels=2)
        ref.add_tone_source("t", frequency_hz=440.0, amplitude=0.5)
        ref.connect("t", "out")
        np.testing.assert_array_equal(buf, ref.render("out", 480))
    with pytest.raises(ValueError, match=r"needs shape \(480, 2\)"):
        manual.render("out", 480, out=np.empty((480, 1), np.float32))
    read_only = np.empty((480, 2), np.float32)
    read_only.flags.writeable = False
    wrong = [
        np.empty((480, 2), np.float64),
        np.empty((960, 2), np.float32)[::2],  # strided
        np.asfortranarray(np.empty((480, 2), np.float32)),
        np.empty((480, 2), ">f4"),  # float32, but big-endian
        read_only,
        [[0.0, 0.0]] * 480,
    ]
    before = buf.copy()
    for target in wrong:
        with pytest.raises(TypeError, match="writable C-contiguous float32"):
            manual.render("out", 480, out=target)
    # A refused call mixes nothing: the next period is the one after buf's.
    manual.render("out", 480, out=buf)
    with sinkcast.AudioManager(realtime=False) as ref:
        ref.add_sink("out", channels=2)
        ref.add_tone_source("t", frequency_hz=440.0, amplitude=0.5)
        ref.connect("t", "out")
        ref.render("out", 480)
        np.testing.assert_array_equal(buf, ref.render("out", 480))
    assert not np.array_equal(buf, before)


def test_render_into_an_object_without_the_buffer_protocol(manual: sinkcast.AudioManager) -> None:
    manual.add_sink("out", channels=2)
    manual.add_tone_source("t", frequency_hz=440.0, amplitude=0.5)
    manual.connect("t", "out")
    target = DLPackOnly(np.zeros((480, 2), np.float32))
    with pytest.raises(TypeError):
        memoryview(target)  # type: ignore[arg-type]
    assert manual.render("out", 480, out=target) is target
    with sinkcast.AudioManager(realtime=False) as ref:
        ref.add_sink("out", channels=2)
        ref.add_tone_source("t", frequency_hz=440.0, amplitude=0.5)
        ref.connect("t", "out")
        np.testing.assert_array_equal(target.array, ref.render("out", 480))
    with pytest.raises(ValueError, match=r"needs shape \(480, 2\)"):
        manual.render("out", 480, out=DLPackOnly(np.zeros((480, 1), np.float32)))


def test_push_takes_any_array_that_speaks_dlpack(manual: sinkcast.AudioManager) -> None:
    # numpy arrays are read through numpy's C API, anything else through DLPack
    # (a CPU torch tensor, say): both must land the same samples.
    manual.add_sink("out", channels=2)
    manual.add_source("s", channels=2)
    manual.connect("s", "out")
    base = np.arange(80, dtype=np.float32).reshape(40, 2) / 100
    read_only = base[:4].copy()
    read_only.flags.writeable = False
    ints = (base[24:28] * 32768).astype(np.int16)
    pushes = [
        DLPackOnly(base[:8]),
        DLPackOnly(base[8:16].reshape(-1)),  # 1-D: interleaved frames
        DLPackOnly(base[16:32][::2]),  # strided: copied into C order first
        DLPackOnly(ints),
        read_only,
    ]
    for samples in pushes:
        manual.push("s", samples)
    expected = np.concatenate([base[:8], base[8:16], base[16:32][::2], ints / 32768, base[:4]])
    np.testing.assert_allclose(manual.render("out", len(expected)), expected, atol=1e-7)


@pytest.mark.parametrize("frequency", [0.5, 440.0, 997.0, 19999.0])
def test_tone_is_a_sine_to_float_precision(frequency: float) -> None:
    # The tone runs a rotating phasor, re-anchored to the exact phase: over 10 s,
    # rendered in uneven pieces, it must still be the sine itself.
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=1)
        eng.add_tone_source("t", frequency_hz=frequency, amplitude=0.5)
        eng.connect("t", "out")
        pieces = [eng.render("out", n) for n in [1, 255, 256, 257, 479] * 200]
    got = np.concatenate(pieces)[:, 0]
    phase = (np.arange(len(got)) * (frequency / 48000.0)) % 1.0
    np.testing.assert_allclose(got, 0.5 * np.sin(2 * np.pi * phase), rtol=0, atol=1e-6)
