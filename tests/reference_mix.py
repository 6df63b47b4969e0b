"""An independent numpy model of the mix, written from DESIGN.md (not from the C++)."""

from __future__ import annotations

import numpy as np

K = 1.0 / np.sqrt(2.0)

# Stereo downmix rows (left, right) per source layout; see README "Channel mapping".
_STEREO: dict[int, tuple[list[float], list[float]]] = {
    1: ([1], [1]),
    2: ([1, 0], [0, 1]),
    3: ([1, 0, K], [0, 1, K]),
    4: ([1, 0, K, 0], [0, 1, 0, K]),
    5: ([1, 0, K, K, 0], [0, 1, K, 0, K]),
    6: ([1, 0, K, 0, K, 0], [0, 1, K, 0, 0, K]),
    7: ([1, 0, K, 0, K, K, 0], [0, 1, K, 0, K, 0, K]),
    8: ([1, 0, K, 0, K, 0, K, 0], [0, 1, K, 0, 0, K, 0, K]),
}


def channel_matrix(source_channels: int, sink_channels: int) -> np.ndarray:
    left, right = (np.array(r, dtype=np.float64) for r in _STEREO[source_channels])
    if sink_channels == 2:
        return np.stack([left, right])
    if source_channels == 1:
        return np.array([[1.0]])
    return ((left + right) / 2.0)[None, :]


def mix(sources: list[tuple[np.ndarray, float]], sink_channels: int, volume: float) -> np.ndarray:
    """clip(volume * sum(gain_i * M_i x_i), -1, 1) in float64, for float sources shaped (frames, ch)."""
    frames = sources[0][0].shape[0] if sources else 0
    acc = np.zeros((frames, sink_channels), dtype=np.float64)
    for samples, gain in sources:
        m = channel_matrix(samples.shape[1], sink_channels)
        acc += gain * (samples.astype(np.float64) @ m.T)
    return np.clip(volume * acc, -1.0, 1.0)
