"""sinkcast: mix live audio into named sinks and stream them to browsers over WebRTC.

The engine is native (C++); this package is its Python face::

    import numpy as np, sinkcast
    with sinkcast.AudioManager() as eng:
        eng.add_sink("kitchen", channels=2)
        eng.add_tone_source("a440", frequency_hz=440.0)
        eng.connect("a440", "kitchen")

See README.md for the whole API.
"""

from __future__ import annotations

from sinkcast._errors import (
    ClockModeError,
    DuplicateIdError,
    EngineClosedError,
    LocalResourceError,
    NetworkInputError,
    RouteError,
    SignalingError,
    SinkcastError,
    UnknownSinkError,
    UnknownSourceError,
)
from sinkcast._sinkcast import AudioManager, PcmTap

__version__ = "0.1.0"

__all__ = [
    "AudioManager",
    "PcmTap",
    "SinkcastError",
    "UnknownSinkError",
    "UnknownSourceError",
    "DuplicateIdError",
    "RouteError",
    "SignalingError",
    "LocalResourceError",
    "NetworkInputError",
    "ClockModeError",
    "EngineClosedError",
]
