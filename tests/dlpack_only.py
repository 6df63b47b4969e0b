"""An array that speaks only DLPack, for the tests of render(out=) and push()."""

from __future__ import annotations

import numpy as np


class DLPackOnly:
    """Wraps a numpy array and offers nothing but __dlpack__, as a CPU torch
    tensor does: no buffer protocol, not a numpy array."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __dlpack__(self, *args: object, **kwargs: object) -> object:
        return self.array.__dlpack__(*args, **kwargs)  # type: ignore[arg-type]

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.array.__dlpack_device__()
