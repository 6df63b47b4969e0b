"""Bad input gets an exception that names the problem, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import sinkcast
from dlpack_only import DLPackOnly


@pytest.fixture
def eng() -> Any:
    e = sinkcast.AudioManager(realtime=False)
    e.add_sink("out", channels=2)
    e.add_source("mic", sample_rate=44100, channels=2)
    e.add_tone_source("tone")
    e.connect("mic", "out")
    yield e
    e.shutdown()


def snapshot(e: sinkcast.AudioManager) -> Any:
    s = e.stats()
    return s, e.sinks(), e.sources()


def stale_serial(e: sinkcast.AudioManager) -> int:
    """The serial of a source that was under the id 'x' and is gone."""
    e.add_source("x", channels=1)
    serial = e.source_serial("x")
    e.remove_source("x")
    return serial


async def _async_callback(target: str, type: str, message: str) -> None:
    """An async def the engine could only turn into coroutines nobody awaits."""


CASES: list[tuple[str, Callable[[Any], object], type[BaseException], str]] = [
    ("unknown sink", lambda e: e.connect("mic", "nope"), sinkcast.UnknownSinkError, "unknown sink 'nope'"),
    ("unknown sink render", lambda e: e.render("nope", 10), sinkcast.UnknownSinkError, "nope"),
    ("unknown sink remove", lambda e: e.remove_sink("nope"), sinkcast.UnknownSinkError, "nope"),
    ("unknown sink volume", lambda e: e.set_volume("nope", 1.0), sinkcast.UnknownSinkError, "nope"),
    ("unknown sink tap", lambda e: e.open_tap("nope"), sinkcast.UnknownSinkError, "nope"),
    ("unknown source", lambda e: e.connect("nope", "out"), sinkcast.UnknownSourceError, "unknown source 'nope'"),
    ("unknown source push", lambda e: e.push("nope", np.zeros(4, np.float32)), sinkcast.UnknownSourceError, "nope"),
    ("unknown source remove", lambda e: e.remove_source("nope"), sinkcast.UnknownSourceError, "nope"),
    ("duplicate sink", lambda e: e.add_sink("out"), sinkcast.DuplicateIdError, "sink named 'out' already exists"),
    ("duplicate source", lambda e: e.add_source("mic"), sinkcast.DuplicateIdError, "source named 'mic'"),
    ("duplicate tone", lambda e: e.add_tone_source("mic"), sinkcast.DuplicateIdError, "source named 'mic'"),
    ("route twice", lambda e: e.connect("mic", "out"), sinkcast.RouteError, "already connected"),
    ("disconnect missing", lambda e: e.disconnect("tone", "out"), sinkcast.RouteError, "not connected"),
    ("gain of missing route", lambda e: e.set_gain("tone", "out", 0.5), sinkcast.RouteError, "not connected"),
    ("float64", lambda e: e.push("mic", np.zeros((4, 2))), TypeError, "got float64"),
    ("uint8", lambda e: e.push("mic", np.zeros((4, 2), np.uint8)), TypeError, "int16, int32 or float32"),
    ("not an array", lambda e: e.push("mic", [0.0, 0.0]), TypeError, "numpy array"),
    # Named by their element type, and raw bytes told how to become samples (they said "got DLPackOnly", "got bytes").
    ("DLPack float64", lambda e: e.push("mic", DLPackOnly(np.zeros((4, 2)))), TypeError, "got float64;"),
    ("raw bytes", lambda e: e.push("mic", bytes(16)), TypeError, "got raw bytes; read them with numpy.frombuffer"),
    ("wrong channels", lambda e: e.push("mic", np.zeros((4, 3), np.int16)), ValueError, "has 2 channel(s), the pushed audio has 3"),
    ("3-D", lambda e: e.push("mic", np.zeros((4, 2, 1), np.int16)), ValueError, "3 dimensions"),
    # 0-D arrays and numpy scalars crashed the interpreter once (a shape read past ndim).
    ("0-D", lambda e: e.push("mic", np.array(0.5, np.float32)), ValueError, "0 dimensions"),
    ("numpy scalar", lambda e: e.push("mic", np.float32(0.5)), ValueError, "0 dimensions"),
    ("strided 3-D", lambda e: e.push("mic", np.zeros((4, 2, 2), np.int16)[:, :, :1]), ValueError, "3 dimensions"),
    ("big-endian", lambda e: e.push("mic", np.zeros((4, 2), ">f4")), TypeError, "byte order, got float32 swapped"),
    ("1-D not interleavable", lambda e: e.push("mic", np.zeros(5, np.int16)), ValueError, "not a multiple of 2"),
    ("NaN", lambda e: e.push("mic", np.array([[0.0, np.nan]], np.float32)), ValueError, "NaN or infinite"),
    ("Inf", lambda e: e.push("mic", np.array([[np.inf, 0.0]], np.float32)), ValueError, "NaN or infinite"),
    ("push to tone", lambda e: e.push("tone", np.zeros(4, np.float32)), ValueError, "only sources made with add_source"),
    ("rate low", lambda e: e.add_source("x", sample_rate=7999), ValueError, "sample_rate must be 8000 to 192000"),
    ("rate high", lambda e: e.add_source("x", sample_rate=192001), ValueError, "sample_rate"),
    ("source channels 0", lambda e: e.add_source("x", channels=0), ValueError, "source channels must be 1 to 8"),
    ("source channels 9", lambda e: e.add_source("x", channels=9), ValueError, "source channels must be 1 to 8"),
    ("sink channels 3", lambda e: e.add_sink("x", channels=3), ValueError, "sink channels must be 1 or 2"),
    ("frame_ms", lambda e: e.add_sink("x", frame_ms=15), ValueError, "frame_ms must be 10 or 20"),
    ("volume NaN", lambda e: e.add_sink("x", volume=float("nan")), ValueError, "volume"),
    ("volume negative", lambda e: e.set_volume("out", -1.0), ValueError, "volume"),
    ("gain too big", lambda e: e.connect("tone", "out", gain=11.0), ValueError, "gain"),
    ("gain inf", lambda e: e.set_gain("mic", "out", float("inf")), ValueError, "gain"),
    ("bitrate", lambda e: e.add_sink("x", bitrate=100), ValueError, "bitrate"),
    ("bitrate 0", lambda e: e.add_sink("x", bitrate=0), ValueError, "bitrate must be 6000 to 510000 bit/s, got 0"),
    ("complexity", lambda e: e.add_sink("x", complexity=11), ValueError, "complexity"),
    ("slash in sink id", lambda e: e.add_sink("a/b"), ValueError, "must not contain '/'"),
    ("empty source id", lambda e: e.add_source(""), ValueError, "must not be empty"),
    ("long id", lambda e: e.add_sink("x" * 200), ValueError, "longer than 128"),
    ("tone frequency", lambda e: e.add_tone_source("x", frequency_hz=30000.0), ValueError, "frequency_hz"),
    ("tone amplitude", lambda e: e.add_tone_source("x", amplitude=2.0), ValueError, "amplitude"),
    ("noise amplitude", lambda e: e.add_noise_source("x", amplitude=-0.1), ValueError, "amplitude"),
    ("buffer_ms", lambda e: e.add_source("x", buffer_ms=5), ValueError, "buffer_ms"),
    ("jitter_ms", lambda e: e.add_source("x", buffer_ms=100, jitter_ms=100), ValueError, "jitter_ms"),
    ("render negative", lambda e: e.render("out", -1), ValueError, "frames"),
    ("tap seconds", lambda e: e.open_tap("out", seconds=0.0), ValueError, "seconds"),
    # An int beyond the C type used to be nanobind's TypeError listing the signature, naming no argument.
    ("huge bitrate", lambda e: e.add_sink("x", bitrate=10**10), ValueError, "bitrate is out of range, got 10000000000"),
    ("huge frame_ms", lambda e: e.add_sink("x", frame_ms=10**12), ValueError, "frame_ms is out of range"),
    ("huge rate", lambda e: e.add_source("x", sample_rate=10**10), ValueError, "sample_rate is out of range"),
    ("huge port", lambda e: e.add_rtp_source("x", port=-10**10), ValueError, "port is out of range"),
    ("scream channels", lambda e: e.add_scream_source("x", channels=2**40), ValueError, "channels is out of range"),
    ("negative seed", lambda e: e.add_noise_source("x", seed=-1), ValueError, "seed must be 0 to 2**64-1, got -1"),
    ("seed of 2**64", lambda e: e.add_noise_source("x", seed=2**64), ValueError, "seed must be 0 to 2**64-1"),
    ("typed memoryview", lambda e: e.push("mic", memoryview(np.zeros(4))), TypeError, "got float64; convert"),
    # Ids swapped, or a sink where a source belongs: the message says what the id is.
    ("push to a sink", lambda e: e.push("out", np.zeros(4, np.float32)), sinkcast.UnknownSourceError,
     "unknown source 'out' ('out' is a sink)"),
    # A feeder names the source it started with; one added later under the same id is another.
    ("push, another source's serial", lambda e: e.push("mic", np.ones(4, np.float32), source_serial=stale_serial(e)),
     sinkcast.UnknownSourceError, ": removed, or never was; 'mic' is now the source of serial"),
    ("flush, another source's serial", lambda e: e.flush("mic", source_serial=stale_serial(e)),
     sinkcast.UnknownSourceError, "unknown source 'mic' (of serial"),
    ("source_serial 0", lambda e: e.push("mic", np.ones(4, np.float32), source_serial=0), ValueError,
     "source_serial is a value from source_serial() (1 to 2**64-1), got 0"),
    ("source_serial 2**64", lambda e: e.flush("mic", source_serial=2**64), ValueError, "got 18446744073709551616"),
    ("swapped route", lambda e: e.connect("out", "mic"), sinkcast.UnknownSourceError, "'out' is a sink"),
    ("render a source", lambda e: e.render("mic", 10), sinkcast.UnknownSinkError, "'mic' is a source"),
    # The value as given: six decimals read "got 1.000000" for a value refused for being above 1.
    ("amplitude just above 1", lambda e: e.add_tone_source("x", amplitude=1.0000001), ValueError, "got 1.0000001"),
    ("tiny negative amplitude", lambda e: e.add_noise_source("x", amplitude=-1e-9), ValueError, "got -1e-09"),
    ("tap just too short", lambda e: e.open_tap("out", seconds=0.0099999), ValueError, "got 0.0099999"),
    ("gain just above 10", lambda e: e.set_gain("mic", "out", 10.0000004), ValueError, "got 10.0000004"),
    # The limit is in bytes: 40 characters of 4 bytes each are too long, and the message says why.
    ("long id in UTF-8", lambda e: e.add_sink("\U0001F3B5" * 40), ValueError, "longer than 128 bytes (160 in UTF-8)"),
    # -1 was taken as "the default" (the engine's internal marker for None).
    ("payload_type -1", lambda e: e.add_rtp_source("x", payload_type=-1), ValueError, "payload_type must be 10, 11"),
    ("async callback", lambda e: e.set_python_webrtc_signaling_callback(_async_callback), TypeError,
     "use sinkcast.aio.AsyncSignaling"),
]


@pytest.mark.parametrize(("name", "call", "error", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_and_changes_nothing(
    eng: Any, name: str, call: Callable[[Any], object], error: type[BaseException], message: str
) -> None:
    before = snapshot(eng)
    with pytest.raises(error) as info:
        call(eng)
    assert message in str(info.value)
    assert snapshot(eng) == before


def test_error_hierarchy() -> None:
    assert issubclass(sinkcast.UnknownSinkError, KeyError)
    assert issubclass(sinkcast.UnknownSourceError, KeyError)
    assert issubclass(sinkcast.SignalingError, ValueError)
    assert issubclass(sinkcast.LocalResourceError, sinkcast.SignalingError)
    assert issubclass(sinkcast.DuplicateIdError, ValueError)
    assert issubclass(sinkcast.EngineClosedError, RuntimeError)
    for cls in (sinkcast.UnknownSinkError, sinkcast.SignalingError, sinkcast.RouteError):
        assert issubclass(cls, sinkcast.SinkcastError)


def test_unknown_sink_message_is_readable(eng: Any) -> None:
    with pytest.raises(KeyError) as info:
        eng.render("missing", 1)
    assert str(info.value) == "unknown sink 'missing'"


def test_port_range_is_checked() -> None:
    with pytest.raises(ValueError, match="port_range"):
        sinkcast.AudioManager(port_range=(5000, 4000))


AFTER_SHUTDOWN: list[Callable[[Any], object]] = [
    lambda e: e.add_sink("y"),
    lambda e: e.remove_sink("out"),
    lambda e: e.add_source("y"),
    lambda e: e.add_tone_source("y"),
    lambda e: e.add_noise_source("y"),
    lambda e: e.remove_source("mic"),
    lambda e: e.connect("tone", "out"),
    lambda e: e.disconnect("mic", "out"),
    lambda e: e.set_gain("mic", "out", 1.0),
    lambda e: e.set_volume("out", 1.0),
    lambda e: e.push("mic", np.zeros((4, 2), np.int16)),
    lambda e: e.render("out", 10),
    lambda e: e.open_tap("out"),
    lambda e: e.stats(),
    lambda e: e.sinks(),
    lambda e: e.sources(),
]


@pytest.mark.parametrize("call", AFTER_SHUTDOWN)
def test_every_call_after_shutdown_raises(eng: Any, call: Callable[[Any], object]) -> None:
    eng.shutdown()
    with pytest.raises(sinkcast.EngineClosedError, match="shut down"):
        call(eng)
    eng.shutdown()  # still idempotent


def test_a_closed_receive_probe_refuses_its_calls() -> None:
    # The test utility's probe crashed the interpreter on a null connection.
    from sinkcast import _sinkcast as native

    probe = native._ReceiveProbe("127.0.0.1")
    probe.close()
    with pytest.raises(RuntimeError, match="the probe is closed"):
        probe.create_offer(1.0)
    with pytest.raises(RuntimeError, match="the probe is closed"):
        probe.accept_answer("v=0\r\n")
