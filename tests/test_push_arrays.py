"""push() with any array a caller may hand it: every dtype and byte order,
0 to 3 dimensions, strided and read-only views, numpy scalars, objects that
only speak DLPack, memoryviews. Each is either taken, and then the sink plays exactly its
samples, or refused with a TypeError or ValueError that changes nothing. It
must never crash: a 0-D array once did.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sinkcast
from dlpack_only import DLPackOnly

CHANNELS = 2
TAKEN = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2.0**31, np.dtype(np.float32): 1.0}

DTYPES = [np.dtype(t) for t in ("<i2", ">i2", "<i4", ">i4", "<f4", ">f4", "i1", "<i8", "<u2", "<f2", "<f8", "<c8", "?")]


@st.composite
def pushed_arrays(draw: st.DrawFn) -> tuple[object, np.ndarray]:
    """(what push() gets, the same samples as a plain numpy array)."""
    if draw(st.booleans()):  # half the cases are arrays push() should take, before the views below
        dtype = draw(st.sampled_from(list(TAKEN)))
        frames = draw(st.integers(0, 12))
        shape = draw(st.sampled_from([(frames, CHANNELS), (frames * CHANNELS,)]))
    else:
        dtype = draw(st.sampled_from(DTYPES))
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    if dtype.kind == "f":
        elements = st.floats(-1.0, 1.0, width=16 if dtype.itemsize == 2 else 32)
    else:
        elements = None  # the dtype's whole range
    array = draw(hnp.arrays(dtype, shape, elements=elements))
    view = array
    if view.ndim >= 1 and draw(st.booleans()):
        view = view[:: draw(st.integers(1, 3))]  # strided frames
    if view.ndim >= 2 and draw(st.booleans()):
        view = view.T  # transposed: not C-contiguous
    if draw(st.booleans()):
        view = view.view()
        view.flags.writeable = False
    wrap = draw(st.sampled_from(["numpy", "dlpack", "scalar", "memoryview"]))
    if wrap == "scalar" and view.ndim == 0:
        return view[()], view
    if wrap == "dlpack" and view.dtype.isnative and view.dtype.kind != "c":
        return DLPackOnly(view), view
    if wrap == "memoryview":  # the buffer protocol, strides and all
        return memoryview(view), view
    return view, view


def is_taken(samples: np.ndarray) -> bool:
    if samples.dtype not in TAKEN or not samples.dtype.isnative:
        return False
    if samples.ndim == 1:
        return samples.shape[0] % CHANNELS == 0
    return samples.ndim == 2 and samples.shape[1] == CHANNELS


@settings(max_examples=300, deadline=None)
@given(pushed_arrays())
def test_push_takes_or_refuses_any_array_and_never_crashes(case: tuple[Any, np.ndarray]) -> None:
    pushed, samples = case
    with sinkcast.AudioManager(realtime=False) as eng:
        eng.add_sink("out", channels=CHANNELS)
        eng.add_source("s", channels=CHANNELS, jitter_ms=0)
        eng.connect("s", "out")
        if not is_taken(samples):
            with pytest.raises((TypeError, ValueError)):
                eng.push("s", pushed)
            assert eng.stats()["sources"]["s"]["frames_in"] == 0
            return
        eng.push("s", pushed)
        frames = samples.reshape(-1, CHANNELS)
        assert eng.stats()["sources"]["s"]["frames_in"] == len(frames)
        expected = np.clip(frames.astype(np.float64) / TAKEN[samples.dtype], -1.0, 1.0)
        np.testing.assert_allclose(eng.render("out", len(frames)), expected, atol=1e-7, rtol=0)
