"""Network inputs: RTP (L16, L24, Opus) with its jitter buffer, Scream, raw PCM pipes.

Real senders on loopback: Debian's ffmpeg sends RTP of a sine; a small UDP
proxy (tests/udp_proxy.py) injects loss, reordering and duplicates; raw
sockets send malformed datagrams and hand-made RTP/Scream packets. The mixed
output is measured through the sink's PCM tap.
"""

from __future__ import annotations

import errno
import gc
import io
import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sinkcast
from sinkcast.config import ConfigError, build_engine, parse_config
from sinkcast.inputs import PipeInput, add_pipe_source

sys.path.insert(0, str(Path(__file__).parent))
from udp_proxy import UdpProxy  # noqa: E402

RATE = 48000
# The jitter buffer target of the tests: generous, because these machines are shared
# (a sender or the receive thread may be descheduled for tens of ms under load).
JITTER_MS = 120


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    """Debian's ffmpeg; installed with apt-get when missing (a failure says why; never a skip)."""
    path = shutil.which("ffmpeg")
    if path:
        return path
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "ffmpeg"], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env)
        r = subprocess.run(["apt-get", "install", "-y", "ffmpeg"], capture_output=True, text=True, env=env)
    path = shutil.which("ffmpeg")
    if not path:
        pytest.fail(f"ffmpeg is needed and could not be installed with apt-get: {r.stderr[-800:]}")
    return path


def ffmpeg_rtp(ffmpeg: str, port: int, *, codec: str = "pcm_s16be", rate: int = 48000, channels: int = 2,
               seconds: float = 3.0, freq: float = 1000.0, payload_type: int | None = 97,
               extra: list[str] | None = None, source: str | None = None) -> subprocess.Popen[str]:
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
           "-i", source or f"sine=frequency={freq}:sample_rate={rate}", "-t", str(seconds), "-ac", str(channels),
           "-ar", str(rate), "-c:a", codec, *(extra or [])]
    if payload_type is not None:
        cmd += ["-payload_type", str(payload_type)]
    # localrtcpport=0: ffmpeg otherwise binds its RTCP socket to its own RTP port + 1, and when
    # that port is taken three times running (many sockets are open in this suite) it gives up
    # and crashes (Debian's 5.1 exited with SIGSEGV after "bind failed: Address already in use").
    # With the option both local sockets take any free port.
    cmd += ["-f", "rtp", f"rtp://127.0.0.1:{port}?localrtcpport=0"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"ffmpeg failed: {err}"


def analyse(audio: np.ndarray, edge_s: float = 0.1, threshold: float = 1e-3) -> dict[str, Any]:
    """The sounding part of a tap recording, trimmed by edge_s at both ends
    (the jitter buffer filling, the sender stopping): its length, dominant
    frequency and longest run of silence."""
    x = audio[:, 0].astype(np.float64)
    loud = np.nonzero(np.abs(x) > threshold)[0]
    assert len(loud) > 0, "no audio came out of the sink"
    edge = int(edge_s * RATE)
    mid = x[loud[0] + edge: loud[-1] - edge]
    assert len(mid) > RATE // 2, f"only {len(x[loud[0]:loud[-1]]) / RATE:.3f} s of audio"
    spectrum = np.abs(np.fft.rfft(mid * np.hanning(len(mid)), n=8 * len(mid)))
    freq = np.argmax(spectrum) * RATE / (8 * len(mid))
    quiet = np.abs(mid) < 1e-4
    longest = run = where = 0
    for i, q in enumerate(quiet):
        run = run + 1 if q else 0
        if run > longest:
            longest, where = run, i - run + 1
    return {"seconds": (loud[-1] - loud[0]) / RATE, "freq": freq, "longest_silence_ms": longest * 1000 / RATE,
            "silence_at_s": (where + edge) / RATE, "silent_fraction": float(quiet.mean())}


def rtp_packet(seq: int, ts: int, ssrc: int, payload: bytes, pt: int = 96, *, marker: bool = False,
               csrc: int = 0, extension: bytes | None = None, padding: int = 0, version: int = 2) -> bytes:
    b0 = (version << 6) | (0x20 if padding else 0) | (0x10 if extension is not None else 0) | csrc
    head = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    head += b"\0\0\0\1" * csrc
    if extension is not None:
        head += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    tail = (b"\0" * (padding - 1) + bytes([padding])) if padding else b""
    return head + payload + tail


def sine_int(freq: float, rate: int, frames: int, start: int, channels: int, bits: int,
             amp: float = 0.25) -> np.ndarray:
    t = (np.arange(frames) + start) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    scale = 2 ** (bits - 1) - 1
    return np.repeat(np.round(x * scale).astype(np.int64)[:, None], channels, axis=1)


def l16_payload(samples: np.ndarray) -> bytes:
    return samples.astype(">i2").tobytes()


def l24_payload(samples: np.ndarray) -> bytes:
    v = samples.astype(np.int64).reshape(-1) & 0xFFFFFF
    out = np.empty((len(v), 3), np.uint8)
    out[:, 0], out[:, 1], out[:, 2] = (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF
    return out.tobytes()


def paced(packets: list[tuple[bytes, float]], port: int, sock: socket.socket | None = None) -> None:
    """Sends (datagram, due_seconds) pairs at their due times."""
    own = sock is None
    s = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0 = time.monotonic()
    for data, due in packets:
        delay = t0 + due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        s.sendto(data, ("127.0.0.1", port))
    if own:
        s.close()


def engine_with_sink(channels: int = 2) -> sinkcast.AudioManager:
    eng = sinkcast.AudioManager(realtime=True, bind_address="127.0.0.1")
    eng.add_sink("out", channels=channels)
    return eng


@pytest.fixture
def eng() -> Any:
    e = engine_with_sink()
    try:
        yield e
    finally:
        e.shutdown()


# ---------------------------------------------------------------- RTP from ffmpeg


@pytest.mark.parametrize("codec,encoding", [("pcm_s16be", "L16"), ("pcm_s24be", "L24"), ("libopus", "opus")])
def test_ffmpeg_rtp_sine_plays_without_gaps(eng: sinkcast.AudioManager, ffmpeg: str, codec: str,
                                            encoding: str) -> None:
    port = eng.add_rtp_source("net", port=0, encoding=encoding, payload_type=97, channels=2, jitter_ms=JITTER_MS)
    assert 1024 <= port <= 65535
    eng.connect("net", "out")
    tap = eng.open_tap("out", seconds=10.0)
    finish(ffmpeg_rtp(ffmpeg, port, codec=codec, seconds=3.0))
    time.sleep(0.3)
    a = analyse(tap.read())
    st = eng.stats()["inputs"]["net"]
    assert a["freq"] == pytest.approx(1000.0, abs=2.0)
    assert a["longest_silence_ms"] < 3.0, a
    assert a["seconds"] == pytest.approx(3.0, abs=0.15)
    assert st["packets"] > 100 and st["bytes"] > 0
    assert st["lost"] == st["late"] == st["malformed"] == st["duplicates"] == st["errors"] == 0, st
    assert st["last_error"] == ""
    assert st["encoding"] == encoding and st["port"] == port
    assert 0.0 <= st["jitter_ms"] < 40.0
    assert eng.stats()["sources"]["net"]["network"] == st
    assert eng.stats()["sources"]["net"]["kind"] == "rtp"


def test_ffmpeg_static_payload_type_10_at_44100(eng: sinkcast.AudioManager, ffmpeg: str) -> None:
    # ffmpeg picks the static type 10 itself for L16 44.1 kHz stereo; the source defaults to it too.
    port = eng.add_rtp_source("net", port=0, encoding="L16", sample_rate=44100, channels=2, jitter_ms=JITTER_MS)
    eng.connect("net", "out")
    tap = eng.open_tap("out", seconds=10.0)
    finish(ffmpeg_rtp(ffmpeg, port, rate=44100, seconds=2.5, freq=1500.0, payload_type=None))
    time.sleep(0.3)
    a = analyse(tap.read())
    st = eng.stats()["inputs"]["net"]
    assert st["malformed"] == 0 and st["packets"] > 50, st
    assert a["freq"] == pytest.approx(1500.0, abs=2.0)
    assert a["longest_silence_ms"] < 3.0


# ---------------------------------------------------------------- loss, reordering, duplicates


# ffmpeg's libopus at 24 kbit/s for speech (SILK) with in-band FEC; at its default
# 96 kbit/s stereo it sends CELT-only packets, which never carry FEC. SILK adds
# FEC data only to frames it finds active: to ~70 % of the frames of a 1 kHz tone
# whose loudness swings 7 times a second, to none of a steady tone's after 0.5 s.
OPUS_WITH_FEC = ["-b:a", "24k", "-application", "voip", "-fec:a", "1", "-packet_loss", "10"]
SWINGING_TONE = "aevalsrc=0.3*sin(2*PI*1000*t)*(0.55+0.45*sin(2*PI*7*t)):s=48000"


@pytest.mark.parametrize("encoding,codec,extra", [
    ("L16", "pcm_s16be", None), ("opus", "libopus", OPUS_WITH_FEC), ("opus", "libopus", ["-packet_loss", "10"]),
], ids=["L16", "opus-fec", "opus-celt"])
def test_loss_reordering_and_duplicates_through_a_proxy(eng: sinkcast.AudioManager, ffmpeg: str, encoding: str,
                                                        codec: str, extra: list[str] | None) -> None:
    port = eng.add_rtp_source("net", port=0, encoding=encoding, payload_type=97, jitter_ms=JITTER_MS,
                              fec=encoding == "opus")
    eng.connect("net", "out")
    tap = eng.open_tap("out", seconds=10.0)
    with UdpProxy(port, drop_every=29, reorder_every=11, duplicate_every=17) as proxy:
        finish(ffmpeg_rtp(ffmpeg, proxy.port, codec=codec, seconds=3.0, extra=extra,
                          source=SWINGING_TONE if extra is OPUS_WITH_FEC else None))
        time.sleep(0.3)
    a = analyse(tap.read())
    st = eng.stats()["inputs"]["net"]
    done = {"dropped": proxy.dropped, "reordered": proxy.reordered, "duplicated": proxy.duplicated}
    assert proxy.dropped > 3 and proxy.reordered > 5 and proxy.duplicated > 3, done
    assert st["lost"] == proxy.dropped, (st, done)
    assert st["reordered"] == proxy.reordered, (st, done)
    assert st["duplicates"] == proxy.duplicated, (st, done)
    assert st["late"] == 0 and st["malformed"] == 0, (st, done)
    # The audio kept flowing at its pace: the right length, the right tone.
    assert a["seconds"] == pytest.approx(3.0, abs=0.15), a
    assert a["freq"] == pytest.approx(1000.0, abs=2.0), a
    if encoding == "opus":
        # Only packets that carry FEC data count as rebuilt from it; the others get PLC.
        assert st["concealed_frames"] > 0, st
        assert (st["fec_recovered"] > 0) == (extra is OPUS_WITH_FEC), st
        assert st["fec_recovered"] <= st["lost"], st
        assert a["longest_silence_ms"] < 3.0, (a, st)  # PLC/FEC: no holes
    else:
        # Silence stands in for each lost packet (ffmpeg sends up to 7.6 ms per L16 packet), nothing longer.
        assert a["longest_silence_ms"] < 10.0, a
        assert st["concealed_frames"] == sum((n - 12) // 4 for n in proxy.dropped_sizes)


def test_late_packets_are_counted_and_dropped(eng: sinkcast.AudioManager) -> None:
    port = eng.add_rtp_source("net", port=0, channels=1, jitter_ms=20)
    eng.connect("net", "out")
    packets = []
    for i in range(100):
        payload = l16_payload(sine_int(1000, RATE, 480, i * 480, 1, 16))
        packets.append((rtp_packet(1000 + i, i * 480, 7, payload), i * 0.01))
    # Packet 50 goes missing, then turns up 150 ms later: past its turn.
    late = packets.pop(50)
    packets.insert(64, (late[0], packets[63][1]))
    paced(packets, port)
    time.sleep(0.2)
    st = eng.stats()["inputs"]["net"]
    assert st["lost"] == 1 and st["late"] == 1, st
    assert st["packets"] == 100


# ---------------------------------------------------------------- malformed datagrams


def test_malformed_packets_are_counted_and_the_stream_is_undisturbed(eng: sinkcast.AudioManager,
                                                                     ffmpeg: str) -> None:
    port = eng.add_rtp_source("net", port=0, payload_type=97, jitter_ms=JITTER_MS)
    eng.connect("net", "out")
    tap = eng.open_tap("out", seconds=10.0)
    proc = ffmpeg_rtp(ffmpeg, port, seconds=3.0)
    good = rtp_packet(1, 0, 0x1234, b"\0\1" * 200, pt=97)
    bad = [
        b"\x80",                                           # truncated: 1 byte
        good[:11],                                         # truncated header
        rtp_packet(5, 0, 1, b"\0" * 400, pt=97, version=1),  # wrong version
        rtp_packet(5, 0, 1, b"\0" * 400, pt=97, version=0),
        rtp_packet(5, 0, 1, b"\0" * 60000, pt=97),          # huge
        rtp_packet(5, 0, 1, b"\0" * 400, pt=0),             # wrong payload type
        rtp_packet(5, 0, 1, b"\0" * 400, pt=96),
        rtp_packet(5, 0, 1, b"\0" * 3, pt=97),              # not whole L16 frames
        rtp_packet(5, 0, 1, b"", pt=97),                    # empty payload
        bytes([0x8F]) + rtp_packet(5, 0, 1, b"\0" * 8, pt=97)[1:],  # 15 CSRCs announced, not there
        bytes([0x90]) + rtp_packet(5, 0, 1, b"", pt=97)[1:] + b"\0\0",  # extension bit set, no room for it
        bytes([0xA0]) + rtp_packet(5, 0, 1, b"\0" * 8, pt=97)[1:-1] + b"\xff",  # padding longer than packet
        os.urandom(3),
    ]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    time.sleep(1.0)
    for _ in range(3):
        for b in bad:
            s.sendto(b, ("127.0.0.1", port))
        time.sleep(0.2)
    s.close()
    finish(proc)
    time.sleep(0.3)
    a = analyse(tap.read())
    st = eng.stats()["inputs"]["net"]
    assert st["malformed"] == 3 * len(bad), st
    assert st["lost"] == 0 and st["late"] == 0 and st["ssrc_changes"] == 0 and st["resyncs"] == 0, st
    assert a["freq"] == pytest.approx(1000.0, abs=2.0)
    assert a["longest_silence_ms"] < 3.0


def test_random_datagrams_never_disturb_the_stream(eng: sinkcast.AudioManager) -> None:
    import random

    port = eng.add_rtp_source("net", port=0, channels=1, payload_type=97, jitter_ms=JITTER_MS)
    eng.connect("net", "out")
    tap = eng.open_tap("out", seconds=10.0)
    clean = [(rtp_packet(500 + i, 7 + i * 480, 0x77, l16_payload(sine_int(1000, RATE, 480, i * 480, 1, 16)), pt=97),
              i * 0.01) for i in range(250)]
    rng = random.Random(20261125)
    garbage = []
    for k in range(3000):
        kind = rng.randrange(4)
        if kind == 0:
            data = rng.randbytes(rng.randrange(0, 1500))
        else:
            b0 = 0x80 | rng.randrange(64) if kind != 3 else rng.randrange(256)
            pt = 97 if rng.random() < 0.5 else rng.randrange(128)
            head = bytes([b0, (rng.randrange(2) << 7) | pt]) + rng.randbytes(10)
            data = head + rng.randbytes(rng.randrange(0, 2000))
            if kind == 2:
                data = data[: rng.randrange(0, len(data) + 1)]
        garbage.append((data, 0.2 + k * 0.0005))  # 1.5 s of garbage inside the 2.5 s stream
    paced(sorted(clean + garbage, key=lambda p: p[1]), port)
    time.sleep(0.3)
    a = analyse(tap.read())
    st = eng.stats()["inputs"]["net"]
    accounted = st["packets"] + st["malformed"] + st["foreign"]
    assert len(clean) + len(garbage) - 2 <= accounted <= len(clean) + len(garbage), st  # <= 2 held candidates
    assert st["packets"] == len(clean), st
    assert st["lost"] == st["late"] == st["ssrc_changes"] == st["resyncs"] == 0, st
    assert a["freq"] == pytest.approx(1000.0, abs=2.0)
    assert a["longest_silence_ms"] < 3.0, a
    # Scream has no checksum or identity: whatever parses is played, the rest is counted.
    sport = eng.add_scream_source("pc", port=0)
    paced(garbage, sport)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        sc = eng.stats()["inputs"]["pc"]
        if sc["packets"] + sc["malformed"] == len(garbage):
            break
        time.sleep(0.05)
    assert sc["packets"] + sc["malformed"] == len(garbage), sc


# ---------------------------------------------------------------- wrap-around, SSRC change, header fields


def test_sequence_and_timestamp_wrap_then_ssrc_change_l24(eng: sinkcast.AudioManager) -> None:
    port = eng.add_rtp_source("net", port=0, encoding="L24", sample_rate=32000, channels=2, jitter_ms=JITTER_MS)
    eng.connect("net", "out")
    tap = eng.open_tap("out", seconds=10.0)
    frames = 640  # 20 ms at 32 kHz
    packets = []
    seq0, ts0 = 65500, 2**32 - 20 * frames
    for i in range(100):  # sequence wraps after 36 packets, timestamp after 20
        payload = l24_payload(sine_int(750, 32000, frames, i * frames, 2, 24))
        packets.append((rtp_packet(seq0 + i, ts0 + i * frames, 0xAAAA, payload, pt=96,
                                   csrc=2 if i % 3 == 0 else 0, extension=b"\1\2\3\4" if i % 4 == 0 else None,
                                   padding=4 if i % 5 == 0 else 0, marker=i == 0), i * 0.02))
    for j in range(100):  # a new sender: other SSRC, sequence and timestamp
        i = 100 + j
        payload = l24_payload(sine_int(750, 32000, frames, i * frames, 2, 24))
        packets.append((rtp_packet(123 + j, 999 + j * frames, 0xBBBB, payload, pt=96), i * 0.02))
    paced(packets, port)
    time.sleep(0.3)
    a = analyse(tap.read())
    st = eng.stats()["inputs"]["net"]
    assert st["packets"] == 200 and st["malformed"] == 0, st
    assert st["lost"] == 0 and st["late"] == 0 and st["resyncs"] == 0, st
    assert st["ssrc_changes"] == 1
    assert st["wire_sample_rate"] == 32000
    assert a["freq"] == pytest.approx(750.0, abs=2.0)
    assert a["seconds"] == pytest.approx(4.0, abs=0.15)


def test_timestamp_jump_is_silence_and_duplicates_are_dropped(eng: sinkcast.AudioManager) -> None:
    # Contiguous sequence numbers, but the timestamps skip 100 ms (a sender that leaves
    # out silence): 100 ms of silence is played, nothing is counted lost.
    port = eng.add_rtp_source("net", port=0, channels=1, jitter_ms=JITTER_MS)
    eng.connect("net", "out")
    packets = []
    for i in range(60):
        ts = i * 480 + (4800 if i >= 30 else 0)
        payload = l16_payload(sine_int(1000, RATE, 480, i * 480, 1, 16))
        packets.append((rtp_packet(40000 + i, ts, 9, payload), i * 0.01))
        if i % 10 == 5:
            packets.append((packets[-1][0], i * 0.01 + 0.001))  # sent twice
    paced(packets, port)
    time.sleep(0.3)
    st = eng.stats()["inputs"]["net"]
    assert st["lost"] == 0 and st["late"] == 0 and st["duplicates"] == 6, st
    assert st["concealed_frames"] == 4800
    assert st["packets"] == 66


def manual_rtp_engine(**options: Any) -> tuple[sinkcast.AudioManager, int]:
    e = sinkcast.AudioManager(realtime=False)
    e.add_sink("out", channels=1)
    port = e.add_rtp_source("net", port=0, channels=1, buffer_ms=20000, **options)
    e.connect("net", "out")
    return e, port


def wait_for_packets(e: sinkcast.AudioManager, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 5.0
    while True:
        st: dict[str, Any] = e.stats()["inputs"]["net"]
        if st["packets"] + st["late"] >= count or time.monotonic() > deadline:
            time.sleep(0.05)  # and the gap timer, if any
            return dict(e.stats()["inputs"]["net"])
        time.sleep(0.01)


@pytest.mark.parametrize("swapped", [False, True], ids=["in order", "first two swapped"])
def test_a_sender_that_restarts_its_sequence_is_heard_from_its_first_packet(swapped: bool) -> None:
    # Same SSRC (fixed in a sender's config), sequence numbers from 0 again: the
    # first packet is more than 100 behind the stream, the second confirms it
    # (in either order). The input used to drop up to 3000 packets (a minute) as "late".
    e, port = manual_rtp_engine()
    try:
        first = [(rtp_packet(1000 + i, i * 960, 0xABC, l16_payload(sine_int(1000, RATE, 960, i * 960, 1, 16))), 0.0)
                 for i in range(100)]
        paced(first, port)
        wait_for_packets(e, 100)
        e.render("out", 100 * 960)
        again = [(rtp_packet(i, 5_000_000 + i * 960, 0xABC, l16_payload(sine_int(440, RATE, 960, i * 960, 1, 16))),
                  0.0) for i in range(50)]
        if swapped:
            again[0], again[1] = again[1], again[0]
        paced(again, port)
        st = wait_for_packets(e, 150)
        out = e.render("out", 50 * 960)[:, 0]
        assert (st["late"], st["lost"], st["resyncs"], st["ssrc_changes"]) == (0, 0, 1, 0), st
        assert np.mean(np.abs(out) > 1e-3) > 0.95
        spectrum = np.abs(np.fft.rfft(out))
        assert np.argmax(spectrum) * RATE / len(out) == pytest.approx(440, abs=2)
    finally:
        e.shutdown()


def test_one_stray_old_packet_is_dropped_as_late_not_played() -> None:
    # A delayed or replayed packet 4000 behind used to restart the stream at
    # once: its stale audio played, a packet waiting in the reorder queue was
    # lost, and the next live packet restarted it again.
    e, port = manual_rtp_engine()
    try:
        def tone(i: int) -> bytes:
            return rtp_packet(10000 + i, i * 960, 7, l16_payload(sine_int(1000, RATE, 960, i * 960, 1, 16)))

        dc = np.full((960, 1), 16384, np.int64)  # 0.5: easy to find in the output
        packets = [tone(i) for i in range(50)] + [tone(51), rtp_packet(10000 + 50 - 4000, 0, 7, l16_payload(dc)),
                                                 tone(50)] + [tone(i) for i in range(52, 100)]
        paced([(p, 0.0) for p in packets], port)
        st = wait_for_packets(e, 101)
        out = e.render("out", 100 * 960)[:, 0].astype(np.float64)
        assert (st["late"], st["lost"], st["resyncs"], st["reordered"]) == (1, 0, 0, 1), st
        block_means = out[: len(out) // 48 * 48].reshape(-1, 48).mean(axis=1)  # a 1 kHz tone averages to 0
        assert np.abs(block_means).max() < 0.05

        # A lone far-off packet at the very end: nothing follows it, and it is
        # counted late once it has waited a quarter of a second, not held forever.
        paced([(rtp_packet(10000 + 100 - 4000, 0, 7, l16_payload(dc)), 0.0)], port)
        time.sleep(0.6)
        st = e.stats()["inputs"]["net"]
        assert (st["late"], st["packets"], st["resyncs"]) == (2, 102, 0), st
    finally:
        e.shutdown()


@pytest.mark.parametrize("late_first", [False, True], ids=["all lost", "the first one late"])
def test_an_outage_does_not_add_its_length_to_the_latency(eng: sinkcast.AudioManager, late_first: bool) -> None:
    # The clock plays a 1 s outage as underrun while it lasts. The input used to
    # fill the whole second in when the stream came back, and the route then
    # carried ~buffer_ms of queue, and latency, for good. With the first packet
    # of the outage arriving 150 ms late, the route is waiting for jitter_ms
    # again when the gap is found, with a few frames queued: dry all the same.
    port = eng.add_rtp_source("net", port=0, jitter_ms=60, buffer_ms=1000)
    eng.connect("net", "out")
    packets = []
    for i in range(150):  # 3 s of 20 ms packets; seconds 1-2 lost in the network
        if not 50 <= i < 100 or (late_first and i == 50):
            due = i * 0.02 + (0.15 if i == 50 else 0.0)
            packets.append((rtp_packet(i, i * 960, 3, l16_payload(sine_int(1000, RATE, 960, i * 960, 2, 16))), due))
    packets.sort(key=lambda p: p[1])
    sender = threading.Thread(target=paced, args=(packets, port))
    sender.start()
    time.sleep(2.5)  # half a second after the stream came back
    queued = []
    for _ in range(10):
        queued.append(eng.stats()["sinks"]["out"]["routes"]["net"]["buffered_frames"] / RATE * 1000)
        time.sleep(0.04)
    sender.join()
    st = eng.stats()["inputs"]["net"]
    assert st["lost"] == (49 if late_first else 50), st
    assert st["skipped_frames"] > 0.8 * RATE and st["concealed_frames"] <= 0.06 * RATE, st
    assert eng.stats()["sources"]["net"]["overruns"] == 0
    assert sorted(queued)[5] < 250, queued  # ~60 ms and a packet or two; it used to be ~1000


def test_manual_clock_renders_what_arrived() -> None:
    e = sinkcast.AudioManager(realtime=False)
    try:
        e.add_sink("out", channels=1)
        port = e.add_rtp_source("net", port=0, channels=1, sample_rate=16000)
        e.connect("net", "out")
        packets = [(rtp_packet(i, i * 160, 5, l16_payload(sine_int(500, 16000, 160, i * 160, 1, 16))), 0.0)
                   for i in range(20)]
        paced(packets, port)
        deadline = time.monotonic() + 2.0
        while e.stats()["inputs"]["net"]["packets"] < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        out = e.render("out", 9000)[:, 0]
        assert np.abs(out[:8000]).max() > 0.2  # ~200 ms arrived (less the resampler's delay)
        assert e.stats()["sources"]["net"]["sample_rate"] == 16000
    finally:
        e.shutdown()


def test_remove_source_stops_the_receiver_and_frees_the_port(eng: sinkcast.AudioManager) -> None:
    port = eng.add_rtp_source("net", port=0)
    with pytest.raises(OSError):
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(("127.0.0.1", port))
    t0 = time.monotonic()
    eng.remove_source("net")
    assert time.monotonic() - t0 < 0.5
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))  # free again
    s.close()
    assert "inputs" in eng.stats() and eng.stats()["inputs"] == {}
    # The same port again, chosen explicitly.
    assert eng.add_rtp_source("net2", port=port) == port
    with pytest.raises(sinkcast.NetworkInputError, match="cannot bind UDP 127.0.0.1:.*in use") as info:
        eng.add_scream_source("clash", port=port)
    assert isinstance(info.value, OSError) and isinstance(info.value, sinkcast.SinkcastError)
    assert "clash" not in eng.sources()
    # An IPv6 group would bind and never hear a packet: refused, saying so.
    with pytest.raises(ValueError, match="IPv6 multicast groups are not supported"):
        eng.add_scream_source("v6group", port=0, bind_address="ff15::7777")


def test_bad_rtp_arguments_are_refused(eng: sinkcast.AudioManager) -> None:
    with pytest.raises(ValueError, match="encoding"):
        eng.add_rtp_source("a", port=0, encoding="mp3")
    with pytest.raises(ValueError, match="payload type 10"):
        eng.add_rtp_source("a", port=0, payload_type=10, sample_rate=48000)
    with pytest.raises(ValueError, match="payload_type"):
        eng.add_rtp_source("a", port=0, payload_type=50)
    with pytest.raises(ValueError, match="48000"):
        eng.add_rtp_source("a", port=0, encoding="opus", sample_rate=44100)
    with pytest.raises(ValueError, match="bind_address"):
        eng.add_rtp_source("a", port=0, bind_address="localhost")
    with pytest.raises(ValueError, match="port"):
        eng.add_rtp_source("a", port=70000)
    with pytest.raises(ValueError, match="jitter_ms"):
        eng.add_rtp_source("a", port=0, jitter_ms=600, buffer_ms=500)
    eng.add_tone_source("t")
    with pytest.raises(sinkcast.DuplicateIdError):
        eng.add_rtp_source("t", port=0)
    assert sorted(eng.sources()) == ["t"]


def test_shutdown_joins_receivers_promptly() -> None:
    e = engine_with_sink()
    for i in range(8):
        e.add_rtp_source(f"r{i}", port=0)
        e.add_scream_source(f"s{i}", port=0)
    t0 = time.monotonic()
    e.shutdown()
    assert time.monotonic() - t0 < 1.0


# ---------------------------------------------------------------- Scream


def scream_packets(rate_byte: int, rate: int, bits: int, channels: int, seconds: float, start_s: float,
                   freq: float) -> list[tuple[bytes, float]]:
    frame_bytes = bits // 8 * channels
    frames = 1152 // frame_bytes
    mask = {1: 0x4, 2: 0x3, 6: 0x3F}.get(channels, 0)
    header = bytes([rate_byte, bits, channels, mask & 0xFF, mask >> 8])
    out = []
    n = int(seconds * rate / frames)
    for i in range(n):
        x = sine_int(freq, rate, frames, i * frames, channels, bits)
        if bits == 16:
            pcm = x.astype("<i2").tobytes()
        elif bits == 32:
            pcm = x.astype("<i4").tobytes()
        else:
            v = x.reshape(-1) & 0xFFFFFF
            b = np.empty((len(v), 3), np.uint8)
            b[:, 0], b[:, 1], b[:, 2] = v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF
            pcm = b.tobytes()
        out.append((header + pcm, start_s + i * frames / rate))
    return out


def test_scream_multicast_group_joined_on_the_interface_asked(eng: sinkcast.AudioManager) -> None:
    # Scream is usually multicast. The group used to be joined only on the
    # interface the routing table picks (eth0 here), so a sender on another
    # (here: loopback, where this test's packets stay) was never heard.
    group = "239.255.77.78"
    port = eng.add_scream_source("pc", port=0, bind_address=group, multicast_interface="127.0.0.1", channels=2,
                                 jitter_ms=JITTER_MS)
    eng.connect("pc", "out")
    tap = eng.open_tap("out", seconds=5.0)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    packets = scream_packets(0x01, 48000, 16, 2, 1.0, 0.0, 1000.0)
    t0 = time.monotonic()
    for data, due in packets:
        time.sleep(max(0.0, t0 + due - time.monotonic()))
        sender.sendto(data, (group, port))
    sender.close()
    time.sleep(0.3)
    st = eng.stats()["inputs"]["pc"]
    assert st["packets"] == len(packets) and st["malformed"] == 0, st
    assert analyse(tap.read())["freq"] == pytest.approx(1000.0, abs=2.0)
    with pytest.raises(ValueError, match="multicast_interface is for a multicast bind_address"):
        eng.add_scream_source("uni", port=0, multicast_interface="127.0.0.1")
    with pytest.raises(ValueError, match="multicast_interface must be the IPv4 address of an interface"):
        eng.add_rtp_source("named", port=0, bind_address=group, multicast_interface="lo")


def test_scream_stream_and_format_change(eng: sinkcast.AudioManager) -> None:
    port = eng.add_scream_source("pc", port=0, channels=2, jitter_ms=JITTER_MS)
    eng.connect("pc", "out")
    tap = eng.open_tap("out", seconds=10.0)
    # 44.1 kHz 16-bit stereo (Scream's classic format: byte0 = 0x81), then 48 kHz 24-bit 6 channels.
    first = scream_packets(0x81, 44100, 16, 2, 1.5, 0.0, 1000.0)
    second = scream_packets(0x01, 48000, 24, 6, 1.5, first[-1][1] + 1152 / 4 / 44100, 1000.0)
    bad = [(bytes([0x00, 16, 2, 3, 0]) + b"\0" * 1152, 0.5),   # multiplier 0
           (bytes([0x01, 20, 2, 3, 0]) + b"\0" * 1152, 0.6),   # 20-bit
           (bytes([0x01, 16, 0, 3, 0]) + b"\0" * 1152, 0.7),   # no channels
           (bytes([0x01, 16, 2, 3, 0]) + b"\0" * 1151, 0.8),   # partial frame
           (b"\x01\x10", 0.9)]                                 # truncated header
    paced(sorted(first + second + bad, key=lambda p: p[1]), port)
    time.sleep(0.3)
    a = analyse(tap.read())
    st = eng.stats()["inputs"]["pc"]
    assert st["protocol"] == "scream" and st["port"] == port
    assert st["packets"] == len(first) + len(second)
    assert st["malformed"] == len(bad)
    assert st["format_changes"] == 1
    assert st["wire_sample_rate"] == 48000 and st["wire_channels"] == 6
    assert a["freq"] == pytest.approx(1000.0, abs=2.0)
    assert a["seconds"] == pytest.approx(3.0, abs=0.15)
    assert a["longest_silence_ms"] < 3.0


# ---------------------------------------------------------------- pipes


def test_pipe_from_a_fifo_written_by_ffmpeg(eng: sinkcast.AudioManager, ffmpeg: str, tmp_path: Path) -> None:
    fifo = tmp_path / "line.fifo"
    os.mkfifo(fifo)
    pipe = add_pipe_source(eng, "line", str(fifo), sample_rate=44100, channels=2, jitter_ms=JITTER_MS)
    eng.connect("line", "out")
    tap = eng.open_tap("out", seconds=10.0)
    proc = subprocess.Popen([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                             "sine=frequency=800:sample_rate=44100", "-t", "2.5", "-ac", "2", "-f", "s16le", "-y",
                             str(fifo)], stderr=subprocess.PIPE, text=True)
    finish(proc)
    # A FIFO opened by name outlives its writer: the reader plays out what it
    # had and waits for the next writer, instead of ending.
    assert wait_for_pipe(pipe, lambda st: st["writers_ended"] == 1)
    time.sleep(0.2)
    a = analyse(tap.read())
    st = pipe.stats()
    assert not st["eof"] and st["error"] is None and pipe.running
    assert st["frames"] == pytest.approx(2.5 * 44100, rel=0.01)
    assert a["freq"] == pytest.approx(800.0, abs=2.0)
    assert a["seconds"] == pytest.approx(2.5, abs=0.15)


def wait_for_pipe(pipe: PipeInput, condition: Any, timeout: float = 10.0) -> bool:
    """Polls the reader's stats until `condition(stats)` holds; False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition(pipe.stats()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_fifo_waits_for_its_next_writer(manual: sinkcast.AudioManager, tmp_path: Path) -> None:
    # It used to end with its first writer: a second one (a player that reopens
    # the FIFO for its next track) could not even open it, and nothing said so.
    fifo = tmp_path / "line.fifo"
    os.mkfifo(fifo)
    pipe = add_pipe_source(manual, "line", str(fifo), sample_rate=48000, channels=1, buffer_ms=1000)
    try:
        fd = os.open(fifo, os.O_WRONLY)
        os.write(fd, bytes(2 * 4800) + b"\x01")  # 100 ms, then half a frame
        os.close(fd)
        assert wait_for_pipe(pipe, lambda st: st["writers_ended"] == 1), pipe.stats()
        st = pipe.stats()
        assert st["frames"] == 4800 and st["dropped_bytes"] == 1  # the next writer starts on a frame
        assert not st["eof"] and st["error"] is None and pipe.running
        # A non-blocking writer is refused (ENXIO) by a FIFO without a reader.
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, bytes(2 * 480))
        os.close(fd)
        assert wait_for_pipe(pipe, lambda st: st["writers_ended"] == 2), pipe.stats()
        assert pipe.stats()["frames"] == 5280
    finally:
        pipe.stop()
    assert pipe.wait(2.0) and not pipe.stats()["eof"]  # a stopped reader has not reached an end


def test_a_fifo_named_relative_to_the_directory_is_found_again_after_a_chdir(
    manual: sinkcast.AudioManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A live FIFO is opened again for each writer: by a relative name, that
    # failed (FileNotFoundError) once the process had changed directory.
    os.mkfifo(tmp_path / "line.fifo")
    monkeypatch.chdir(tmp_path)
    pipe = add_pipe_source(manual, "line", "line.fifo", sample_rate=48000, channels=1)
    try:
        monkeypatch.chdir("/")
        for writers in (1, 2):
            # Non-blocking: with no reader left, the open fails (ENXIO) instead of waiting for good.
            deadline = time.monotonic() + 5.0
            while True:
                try:
                    fd = os.open(tmp_path / "line.fifo", os.O_WRONLY | os.O_NONBLOCK)
                    break
                except OSError as e:
                    assert e.errno == errno.ENXIO and time.monotonic() < deadline, f"no reader: {pipe.stats()}"
                    time.sleep(0.01)
            os.write(fd, bytes(2 * 480))
            os.close(fd)
            assert wait_for_pipe(pipe, lambda st: st["writers_ended"] == writers), pipe.stats()
        assert pipe.stats()["error"] is None and pipe.stats()["frames"] == 960
    finally:
        pipe.stop()


def test_pipe_from_a_file_is_paced_and_stdin_works(eng: sinkcast.AudioManager, tmp_path: Path) -> None:
    raw = tmp_path / "tone.f32"
    t = np.arange(RATE * 2) / RATE
    (0.3 * np.sin(2 * np.pi * 600 * t)).astype("<f4").tofile(raw)
    pipe = add_pipe_source(eng, "file", str(raw), sample_rate=RATE, channels=1, sample_format="f32le")
    eng.connect("file", "out")
    tap = eng.open_tap("out", seconds=10.0)
    t0 = time.monotonic()
    assert pipe.wait(5.0)
    assert time.monotonic() - t0 > 1.8  # real time, not all at once
    time.sleep(0.2)
    a = analyse(tap.read())
    assert a["freq"] == pytest.approx(600.0, abs=2.0)
    assert eng.stats()["sources"]["file"]["overruns"] == 0
    # stdin of a child process: `python -c ... < file` style, through the same reader.
    code = (
        "import sys, time, sinkcast\n"
        "from sinkcast.inputs import add_pipe_source\n"
        "e = sinkcast.AudioManager(realtime=False)\n"
        "e.add_sink('o', channels=1)\n"
        "p = add_pipe_source(e, 'in', '-', sample_rate=48000, channels=1, sample_format='f32le')\n"
        "e.connect('in', 'o')\n"
        "assert p.wait(10)\n"
        "print(p.stats()['frames'])\n"
        "e.shutdown()\n"
    )
    with open(raw, "rb") as f:
        r = subprocess.run([sys.executable, "-c", code], stdin=f, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip()) == RATE * 2


def test_pipe_reader_takes_a_descriptor_above_1023() -> None:
    # A server with many listeners holds many sockets (`sinkcast serve` raises
    # its descriptor limit for that); select() refuses descriptors past 1023.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1100:
        pytest.fail(f"this machine's hard RLIMIT_NOFILE is {hard}; the test needs 1100")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    r, w = os.pipe()
    e = engine_with_sink()
    try:
        assert r > 1023
        pipe = add_pipe_source(e, "high", r, sample_rate=RATE, channels=1)
        os.write(w, b"\0" * 9600)
        os.close(w)
        assert pipe.wait(5.0)
        assert pipe.stats()["error"] is None and pipe.stats()["frames"] == 4800
    finally:
        e.shutdown()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_pipe_reader_still_running_at_exit_leaves_cleanly() -> None:
    # Its daemon thread, frozen mid-loop at finalization, used to keep the
    # engine alive: nanobind printed "leaked 1 instances" at every exit.
    code = (
        "import os, sinkcast\n"
        "from sinkcast.inputs import add_pipe_source\n"
        "r, w = os.pipe()\n"
        "e = sinkcast.AudioManager(realtime=False)\n"
        "e.add_sink('o')\n"
        "p = add_pipe_source(e, 'in', r, sample_rate=48000, channels=2)\n"
        "os.write(w, bytes(19200))\n"
        "assert p.running\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "leaked" not in r.stderr, r.stderr


def test_pipe_reader_stops_with_its_engine(tmp_path: Path) -> None:
    e = engine_with_sink()
    fifo = tmp_path / "idle.fifo"
    os.mkfifo(fifo)
    pipe = add_pipe_source(e, "idle", str(fifo))
    assert pipe.running
    e.shutdown()
    assert pipe.wait(2.0)


def test_pipe_reader_stops_when_its_source_is_removed() -> None:
    # The reader noticed a removal only when its next push failed: on an idle
    # pipe it ran on, holding the descriptor, and once a source was added again
    # under the same id it fed that one.
    e = engine_with_sink()
    r, w = os.pipe()
    try:
        pipe = add_pipe_source(e, "line", r, sample_rate=48000, channels=2)
        assert pipe.running
        e.remove_source("line")
        assert pipe.wait(2.0)
        assert pipe.stats()["error"] == "the source 'line' was removed" and not pipe.stats()["eof"]
        e.add_source("line", channels=2)
        os.write(w, bytes(4 * 4800))  # 100 ms of s16le stereo, which nobody reads now
        time.sleep(0.3)
        assert e.stats()["sources"]["line"]["frames_in"] == 0
    finally:
        os.close(w)
        e.shutdown()


def test_pipe_reader_stops_when_its_source_is_replaced_while_data_flows() -> None:
    # Removed and at once added again under the same id: a reader whose pushes
    # kept succeeding fed the old pipe into the new, unrelated source for good.
    e = sinkcast.AudioManager(realtime=False)
    r, w = os.pipe()
    stop = threading.Event()

    def writer() -> None:
        block = np.full(480, 16384, "<i2").tobytes()  # 10 ms of DC 0.5
        while not stop.is_set():
            try:
                os.write(w, block)
            except BlockingIOError:
                pass
            time.sleep(0.01)

    os.set_blocking(w, False)
    feeder = threading.Thread(target=writer)
    feeder.start()
    try:
        pipe = add_pipe_source(e, "line", r, sample_rate=48000, channels=1)
        serial = e.source_serial("line")
        deadline = time.monotonic() + 5
        while pipe.stats()["frames"] < 4800 and time.monotonic() < deadline:
            time.sleep(0.01)
        e.remove_source("line")
        e.add_source("line", channels=1)
        assert e.source_serial("line") != serial
        assert pipe.wait(2.0)
        assert pipe.stats()["error"] == "the source 'line' was removed"
        time.sleep(0.2)
        assert e.stats()["sources"]["line"]["frames_in"] == 0
    finally:
        stop.set()
        feeder.join()
        os.close(w)
        os.close(r)
        e.shutdown()


class ReplacesTheSourceBeforeEachCall:
    """An engine whose source is removed and added again under its id just as a
    push or flush (those named in `on`) reaches it: after any check the reader could make first."""

    def __init__(self, engine: sinkcast.AudioManager, on: str) -> None:
        self._engine = engine
        self._on = on

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def _replace(self, source_id: str) -> None:
        self._engine.remove_source(source_id)
        self._engine.add_source(source_id, channels=1)

    def push(self, source_id: str, samples: Any, **kwargs: Any) -> None:
        if "push" in self._on:
            self._replace(source_id)
        self._engine.push(source_id, samples, **kwargs)

    def flush(self, source_id: str, **kwargs: Any) -> None:
        if "flush" in self._on:
            self._replace(source_id)
        self._engine.flush(source_id, **kwargs)


@pytest.mark.parametrize(("frames", "on"), [(480, "push"), (100, "push"), (480, "flush")],
                         ids=["a block", "less than a block, pushed at the end", "the flush at the end"])
def test_pipe_reader_never_pushes_into_a_source_that_replaced_its_own(frames: int, on: str) -> None:
    # The deterministic form of the test above, which failed now and then
    # (one block, 480 frames, in the new source): the reader checked
    # source_serial() and then pushed, and a source replaced between the two got
    # the block. The engine now checks the serial with the push itself.
    e = sinkcast.AudioManager(realtime=False)
    try:
        e.add_source("line", channels=1)
        r = pipe_holding(np.full(frames, 16384, "<i2").tobytes())
        try:
            pipe = PipeInput(ReplacesTheSourceBeforeEachCall(e, on), "line", r,  # type: ignore[arg-type]
                             sample_rate=48000, channels=1)
            assert pipe.wait(5.0)
        finally:
            os.close(r)
        st = pipe.stats()
        assert (st["error"], st["eof"]) == ("the source 'line' was removed", False), st
        if on == "push":  # refused: read, and dropped
            assert (st["frames"], st["blocks"], st["dropped_bytes"]) == (0, 0, frames * 2), st
        else:  # the block went into the first source, before it was replaced
            assert (st["frames"], st["blocks"], st["dropped_bytes"]) == (frames, 1, 0), st
        assert e.stats()["sources"]["line"]["frames_in"] == 0
    finally:
        e.shutdown()


def test_pipe_reader_ends_on_an_empty_pipe_and_notices_a_removed_source_on_a_fifo_with_no_writer(
        tmp_path: Path) -> None:
    # An anonymous pipe whose writer closed with nothing written has ended. A
    # FIFO handed over by descriptor may still get its first writer: its reader
    # waits, yet stops when its source is removed (it used to spin for good).
    e = sinkcast.AudioManager(realtime=False)
    r = pipe_holding(b"")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fifo_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        empty = add_pipe_source(e, "empty", r, sample_rate=48000, channels=1)
        assert empty.wait(5.0)
        assert (empty.stats()["eof"], empty.stats()["error"]) == (True, None)
        waiting = add_pipe_source(e, "waiting", fifo_fd, sample_rate=48000, channels=1)
        assert not waiting.wait(0.3)
        e.remove_source("waiting")
        assert waiting.wait(5.0)
        assert waiting.stats()["error"] == "the source 'waiting' was removed"
    finally:
        os.close(r)
        os.close(fifo_fd)
        e.shutdown()


def pipe_holding(data: bytes) -> int:
    """The read end of a pipe that holds `data` and whose writer has closed."""
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def test_pipe_reader_pushes_the_last_block_and_leaves_the_descriptor_as_it_was(manual: sinkcast.AudioManager) -> None:
    # 1000 frames are 100 blocks of 10 ms... but for the last 40 frames, which
    # the reader used to drop at the end. It also left a caller's descriptor
    # non-blocking, which broke the caller's (or the shell's) own reads.
    r = pipe_holding(np.arange(1000, dtype="<i2").tobytes())
    try:
        pipe = add_pipe_source(manual, "line", r, sample_rate=48000, channels=1, buffer_ms=1000)
        assert pipe.wait(5.0)
        st = pipe.stats()
        assert (st["frames"], st["dropped_bytes"], st["eof"]) == (1000, 0, True), st
        assert os.get_blocking(r)
    finally:
        os.close(r)


def test_a_resampled_pipe_plays_to_its_last_frame_from_a_reader_started_after_connect(
    manual: sinkcast.AudioManager,
) -> None:
    # At the end of input the reader flushes its source: libsoxr's last
    # milliseconds used to stay inside it until more audio came. Started only
    # once connected (start=False), the route gets the pipe's first block too.
    r = pipe_holding(np.full(44100 // 2, 16384, dtype="<i2").tobytes())  # 0.5 s at 0.5
    try:
        manual.add_sink("out", channels=1)
        pipe = add_pipe_source(manual, "line", r, sample_rate=44100, channels=1, buffer_ms=1000, start=False)
        manual.connect("line", "out")
        pipe.start()
        assert pipe.wait(5.0) and pipe.stats()["eof"]
        assert manual.stats()["sinks"]["out"]["routes"]["line"]["buffered_frames"] == 24000
        out = manual.render("out", 24000)[:, 0]
        assert np.abs(out[600:-600] - 0.5).max() < 0.01
    finally:
        os.close(r)


def test_an_f32le_pipe_plays_nan_and_infinities_as_silence_and_goes_on(manual: sinkcast.AudioManager) -> None:
    # push() refuses non-finite audio; the reader used to stop at the first NaN.
    samples = np.full(4800, 0.5, dtype="<f4")
    samples[[100, 2000, 4000]] = [np.nan, np.inf, -np.inf]
    r = pipe_holding(samples.tobytes())
    try:
        manual.add_sink("out", channels=1)
        pipe = add_pipe_source(manual, "line", r, sample_rate=48000, channels=1, sample_format="f32le",
                               buffer_ms=1000, start=False)
        manual.connect("line", "out")
        pipe.start()
        assert pipe.wait(5.0)
        st = pipe.stats()
        assert (st["eof"], st["error"], st["frames"], st["nonfinite_samples"]) == (True, None, 4800, 3), st
        out = manual.render("out", 4800)[:, 0]
        expected = np.full(4800, 0.5, dtype=np.float32)
        expected[[100, 2000, 4000]] = 0.0
        np.testing.assert_array_equal(out, expected)
    finally:
        os.close(r)


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        (3.5, TypeError, "path must be a file name, '-' \\(stdin\\), a file descriptor or a binary file object, "
                         "got float"),
        (True, TypeError, "got bool"),
        (io.StringIO("text"), TypeError, "not a text stream"),
        ("DIRECTORY", IsADirectoryError, "not a directory"),
        (-1, ValueError, "path: a file descriptor is 0 or more, got -1"),  # the reader died with EBADF
    ],
)
def test_add_pipe_source_refuses_what_it_cannot_read(tmp_path: Path, path: Any, error: type, message: str) -> None:
    # These used to be accepted: the reader then died with a traceback on
    # stderr (a float) or stopped with a puzzling error in stats().
    e = sinkcast.AudioManager(realtime=False)
    try:
        with pytest.raises(error, match=message):
            add_pipe_source(e, "p", str(tmp_path) if path == "DIRECTORY" else path)
        assert e.sources() == []  # nothing half made
    finally:
        e.shutdown()


@pytest.mark.parametrize(
    ("block_ms", "error", "message"),
    [
        (1.5, TypeError, "block_ms must be a whole number of milliseconds, got float 1.5"),
        ("10", TypeError, "block_ms must be a whole number of milliseconds, got str '10'"),
        (True, TypeError, "block_ms must be a whole number of milliseconds, got bool"),
        (0, ValueError, "block_ms must be 1 to 1000, got 0"),
    ],
)
def test_add_pipe_source_refuses_a_block_size_it_cannot_use(block_ms: Any, error: type, message: str) -> None:
    # 1.5 was accepted and the reader thread died at once (only stats() said so);
    # "10" failed on a bare comparison.
    e = sinkcast.AudioManager(realtime=False)
    try:
        with pytest.raises(error, match=message):
            add_pipe_source(e, "p", io.BytesIO(bytes(960)), block_ms=block_ms)
        assert e.sources() == []
    finally:
        e.shutdown()


def test_a_pipe_reader_stopped_before_it_started_closes_the_file_it_opened(tmp_path: Path) -> None:
    path = tmp_path / "audio.raw"
    path.write_bytes(bytes(960))
    e = sinkcast.AudioManager(realtime=False)
    try:
        pipe = add_pipe_source(e, "f", str(path), start=False)
        assert pipe.wait(1.0) is False and not pipe.running  # not started: nothing to wait for
        fd = pipe._fd
        os.fstat(fd)  # open
        pipe.stop()
        assert pipe.wait() is True
        with pytest.raises(OSError):
            os.fstat(fd)
        with pytest.raises(RuntimeError, match="stopped before it started"):
            pipe.start()
        # Dropped without stop(), an unstarted reader closes its file too.
        dropped = add_pipe_source(e, "g", str(path), start=False)
        fd = dropped._fd
        del dropped
        gc.collect()
        with pytest.raises(OSError):
            os.fstat(fd)
    finally:
        e.shutdown()


def test_pipe_reader_takes_file_objects_where_their_reader_stands(tmp_path: Path) -> None:
    # A buffered file read past a 44-byte header: its descriptor stood at 4096.
    # A BytesIO has no descriptor at all, and was refused.
    samples = (np.arange(4800) % 1000).astype("<i2")
    path = tmp_path / "tone.wav"
    path.write_bytes(b"H" * 44 + samples.tobytes())
    for name in ("buffered file", "BytesIO"):
        e = sinkcast.AudioManager(realtime=False)
        try:
            e.add_sink("out", channels=1)
            f: Any = open(path, "rb") if name == "buffered file" else io.BytesIO(path.read_bytes())
            with f:
                assert f.read(44) == b"H" * 44
                e.add_source("line", channels=1, buffer_ms=1000)
                e.connect("line", "out")  # before the reader starts: a route hears what comes after it
                pipe = PipeInput(e, "line", f, sample_rate=48000, channels=1, pace=False)
                assert pipe.wait(5.0), name
            st = pipe.stats()
            assert (st["frames"], st["eof"], st["error"]) == (4800, True, None), (name, st)
            out = e.render("out", 4800)[:, 0]
            assert np.allclose(out * 32768, samples, atol=0.5), name
        finally:
            e.shutdown()


def test_pipe_reader_reads_a_pipe_object_through_its_buffer_and_stops_when_idle() -> None:
    # A buffered pipe object (sys.stdin.buffer, a subprocess's stdout) that has
    # read ahead: the descriptor alone would lose those bytes. Its descriptor is
    # still polled, so stop() works while the writer is idle (a blocking read on
    # the object used to keep the thread, and abort the interpreter at exit).
    samples = (np.arange(4800) % 1000).astype("<i2")
    e = sinkcast.AudioManager(realtime=False)
    try:
        e.add_sink("out", channels=1)
        e.add_source("line", channels=1, buffer_ms=1000)
        e.connect("line", "out")
        r, w = os.pipe()
        os.write(w, b"H" * 44 + samples.tobytes())
        with os.fdopen(r, "rb") as f:
            assert f.read(44) == b"H" * 44  # and the rest now sits in f's buffer
            pipe = PipeInput(e, "line", f, sample_rate=48000, channels=1)
            os.close(w)
            assert pipe.wait(5.0)
        st = pipe.stats()
        assert (st["frames"], st["eof"], st["error"]) == (4800, True, None), st
        assert np.allclose(e.render("out", 4800)[:, 0] * 32768, samples, atol=0.5)

        r, w = os.pipe()
        with os.fdopen(r, "rb") as f:
            idle = PipeInput(e, "line", f, sample_rate=48000, channels=1)
            t0 = time.monotonic()
            idle.stop(timeout=2.0)
            assert not idle.running and time.monotonic() - t0 < 1.0
        os.close(w)
    finally:
        e.shutdown()


# ---------------------------------------------------------------- configuration


def test_toml_config_builds_network_inputs(tmp_path: Path) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    data = {
        "sinks": {"out": {"channels": 2}},
        "sources": {
            "studio": {"type": "rtp", "port": 0, "encoding": "opus", "payload_type": 111, "jitter_ms": 30,
                       "fec": True},
            "pc": {"type": "scream", "port": 0, "channels": 2},
            "line": {"type": "pipe", "path": str(fifo), "sample_rate": 44100, "format": "s16le"},
        },
        "routes": [{"source": "studio", "sink": "out"}, {"source": "pc", "sink": "out"},
                   {"source": "line", "sink": "out"}],
    }
    eng = build_engine(parse_config(data, "test.toml"))
    try:
        inputs = eng.stats()["inputs"]
        assert set(inputs) == {"studio", "pc"}
        assert inputs["studio"]["encoding"] == "opus" and inputs["studio"]["jitter_target_ms"] == 30
        assert inputs["pc"]["protocol"] == "scream"
        assert eng.stats()["sources"]["line"]["sample_rate"] == 44100
    finally:
        eng.shutdown()


@pytest.mark.parametrize("source,message", [
    ({"type": "rtp", "encoding": "mp3"}, "sources.x.encoding: must be one of"),
    ({"type": "rtp", "port": 70000}, "sources.x.port: must be 0"),
    ({"type": "rtp", "payload_type": 3}, "sources.x.payload_type"),
    ({"type": "rtp", "port": "5004"}, "sources.x.port: must be an integer"),
    ({"type": "rtp", "bogus": 1}, "sources.x.bogus: unknown key"),
    ({"type": "scream", "channels": 9}, "sources.x.channels: must be 1 to 8"),
    ({"type": "pipe"}, "sources.x.path: missing"),
    ({"type": "pipe", "path": "/x", "format": "s24le"}, "sources.x.format: must be one of"),
    ({"type": "rtp", "encoding": "opus", "sample_rate": 44100}, "sources.x: opus over RTP"),
    ({"type": "rtp", "bind_address": "nowhere"}, "sources.x: bind_address"),
])
def test_toml_config_errors_name_the_key(source: dict[str, Any], message: str) -> None:
    data = {"sinks": {"out": {}}, "sources": {"x": source}}
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_engine(parse_config(data, "bad.toml"))
