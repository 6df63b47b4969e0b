"""Streaming to real WebRTC listeners (aiortc) on loopback, through the seed's two signaling methods."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

import sinkcast
from sinkcast.aio import AsyncSignaling
from helpers_subprocess.common import free_port, threads_named
from webrtc_peer import Listener, dominant_frequency

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def engine() -> AsyncIterator[sinkcast.AudioManager]:
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("a440", channels=2)
    eng.add_tone_source("tone440", frequency_hz=440.0, amplitude=0.4)
    eng.connect("tone440", "a440")
    try:
        yield eng
    finally:
        await asyncio.to_thread(eng.shutdown)


async def connect_listener(sig: AsyncSignaling, target: str, data_channel: str | None = None) -> Listener:
    listener = Listener(data_channel)
    answer = await sig.open_listener(target, await listener.offer())
    await listener.accept_answer(answer)
    return listener


async def run_python(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh interpreter (this one's environment unless `env`), its output captured; 60 s at most."""
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script, *args], capture_output=True,
                                   text=True, env=env, timeout=60)


async def next_bye(sig: AsyncSignaling, target: str, timeout: float) -> str:
    """Skips `target`'s other messages until its bye; returns the bye's reason."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        type, message = await sig.next_message(target, timeout=max(0.0, deadline - loop.time()))
        if type == "bye":
            return message


async def test_listener_offers_and_hears_the_tone(engine: sinkcast.AudioManager) -> None:
    sig = AsyncSignaling(engine)
    listener = await connect_listener(sig, "a440/l1")
    try:
        await listener.wait_seconds(2.5)
        assert listener.sample_rate == 48000 and listener.channels == 2
        audio = listener.audio()[-96000:, 0]
        assert dominant_frequency(audio, 48000) == pytest.approx(440.0, abs=1.0)
        stats = engine.stats()["sinks"]["a440"]["listeners"]["a440/l1"]
        assert stats["state"] == "connected" and stats["track_open"]
        assert stats["packets_sent"] > 50 and stats["bytes_sent"] > 0
        # The marker bit starts a talkspurt (RFC 3551 4.1): at most the first packet has it.
        assert len(listener.markers) > 100 and sum(listener.markers) <= 1
    finally:
        await listener.close()
        sig.close()


async def test_engine_offers_and_listener_answers(engine: sinkcast.AudioManager) -> None:
    sig = AsyncSignaling(engine)
    listener = Listener()
    try:
        offer = await sig.request_offer("a440")
        assert "opus/48000/2" in offer.lower()
        assert re.search(r"^a=rtcp-fb:111 nack\r?$", offer, re.M)  # the NACK responder, announced
        answer = await listener.answer(offer)
        await sig.send("a440", "answer", answer)
        await listener.wait_seconds(2.0)
        assert dominant_frequency(listener.audio()[-48000:, 0], 48000) == pytest.approx(440.0, abs=1.0)
    finally:
        await listener.close()
        sig.close()


async def test_nack_is_answered_only_when_the_offer_asks_for_it(engine: sinkcast.AudioManager) -> None:
    sig = AsyncSignaling(engine)
    listener = Listener()
    try:
        plain = await listener.offer()
        pt = re.search(r"^a=rtpmap:(\d+) opus/48000", plain, re.M | re.I).group(1)  # type: ignore[union-attr]
        asking = re.sub(rf"^(a=rtpmap:{pt} .*)$", rf"\1\na=rtcp-fb:{pt} nack\r", plain, count=1, flags=re.M)
        assert asking != plain
        answer = await sig.open_listener("a440/asks", asking)
        assert re.search(rf"^a=rtcp-fb:{pt} nack\r?$", answer, re.M)
        answer = await sig.open_listener("a440/plain", plain)
        assert "a=rtcp-fb" not in answer
    finally:
        await listener.close()
        sig.close()


def without_candidates(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """The SDP with its candidate lines taken out, and those as a trickling peer
    sends them: each naming its own section."""
    lines, candidates, index, mid = [], [], -1, ""
    sections = re.findall(r"^m=.*?(?=^m=|\Z)", sdp, re.M | re.S)
    mids = [re.search(r"^a=mid:(\S+)", section, re.M).group(1) for section in sections]  # type: ignore[union-attr]
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            index += 1
            mid = mids[index]
        if line.startswith("a=candidate:"):
            candidates.append({"candidate": line[2:], "sdpMid": mid, "sdpMLineIndex": index})
        elif not line.startswith("a=end-of-candidates"):
            lines.append(line)
    return "\r\n".join(lines), candidates


@pytest.mark.parametrize("candidates", ["in the offer", "trickled, video's first"])
async def test_an_offer_with_video_first_on_its_own_transport_is_heard(
    engine: sinkcast.AudioManager, candidates: str
) -> None:
    # aiortc gives each m-section its own transport (port). The engine rejects
    # the video and must connect over the audio section's transport: it used to
    # take every section's candidates, connect over the video's, and report a
    # healthy stream that never arrived.
    sig = AsyncSignaling(engine)
    listener = Listener()
    listener.pc.addTransceiver("video", direction="recvonly")
    try:
        offer = await listener.offer()
        ports = re.findall(r"^m=(audio|video) (\d+)", offer, re.M)
        assert [kind for kind, _ in ports] == ["video", "audio"] and ports[0][1] != ports[1][1]
        trickled: list[dict[str, Any]] = []
        if candidates != "in the offer":
            offer, trickled = without_candidates(offer)
            assert [c["sdpMid"] for c in trickled] == ["0", "1"]
        answer = await sig.open_listener("a440/video-first", offer)
        for candidate in trickled:
            await sig.send("a440/video-first", "candidate", json.dumps(candidate))
        await listener.accept_answer(answer)
        await listener.wait_seconds(1.5)
        assert dominant_frequency(listener.audio()[-48000:, 0], 48000) == pytest.approx(440.0, abs=1.0)
    finally:
        await listener.close()
        sig.close()


async def test_trickled_candidates_are_json_like_a_browser_sends(engine: sinkcast.AudioManager) -> None:
    sig = AsyncSignaling(engine)
    listener = Listener()
    try:
        await sig.send("a440/t", "offer", await listener.offer())
        seen: list[tuple[str, str]] = []
        while not any(t == "candidate" and not json.loads(m)["candidate"] for t, m in seen):
            seen.append(await sig.next_message("a440/t", timeout=10))
        types = [t for t, _ in seen]
        assert types[0] == "answer"
        candidates = [json.loads(m) for t, m in seen if t == "candidate"]
        assert candidates[0]["candidate"].startswith("candidate:")
        assert "127.0.0.1" in candidates[0]["candidate"]
        assert candidates[0]["sdpMid"] == "0" and candidates[0]["sdpMLineIndex"] == 0
        # Trickle-only path: answer without candidates, then each candidate message.
        await listener.accept_answer(seen[0][1])
        for c in candidates:
            await listener.add_candidate(json.dumps(c))
        await listener.wait_seconds(1.0)
    finally:
        await listener.close()
        sig.close()


async def test_two_sinks_each_listener_hears_only_its_own(engine: sinkcast.AudioManager) -> None:
    engine.add_sink("a1000", channels=1)
    engine.add_tone_source("tone1000", frequency_hz=1000.0, amplitude=0.4)
    engine.connect("tone1000", "a1000")
    sig = AsyncSignaling(engine)
    l440 = await connect_listener(sig, "a440/x")
    l1000 = await connect_listener(sig, "a1000/x")
    try:
        await asyncio.gather(l440.wait_seconds(2.0), l1000.wait_seconds(2.0))
        assert dominant_frequency(l440.audio()[-48000:, 0], 48000) == pytest.approx(440.0, abs=1.0)
        assert dominant_frequency(l1000.audio()[-48000:, 0], 48000) == pytest.approx(1000.0, abs=1.0)
        # And the other tone is absent, not merely quieter.
        spec = np.abs(np.fft.rfft(l440.audio()[-48000:, 0]))
        assert spec[1000] < spec[440] / 100
    finally:
        await asyncio.gather(l440.close(), l1000.close())
        sig.close()


async def test_ten_listeners_all_receive_and_one_leaving_disturbs_none(engine: sinkcast.AudioManager) -> None:
    sig = AsyncSignaling(engine)
    listeners = [await connect_listener(sig, f"a440/n{i}") for i in range(10)]
    try:
        await asyncio.gather(*(l.wait_seconds(1.0) for l in listeners))
        assert len(engine.stats()["sinks"]["a440"]["listeners"]) == 10
        await sig.close_listener("a440/n0")
        await listeners[0].close()
        # Everyone else keeps streaming: each gains another second of audio
        # (decoding in Python may lag on a loaded machine, hence a deadline, not a sleep).
        before = [l.seconds() for l in listeners[1:]]
        await asyncio.gather(*(l.wait_seconds(b + 1.0) for l, b in zip(listeners[1:], before)))
        assert "a440/n0" not in engine.stats()["sinks"]["a440"]["listeners"]
        assert engine.stats()["sinks"]["a440"]["frames_encoded"] > 0
    finally:
        await asyncio.gather(*(l.close() for l in listeners[1:]))
        sig.close()


async def test_listeners_sharing_one_udp_port_each_hear_the_tone() -> None:
    # A one-port range: the README's way to know the muxed port in advance
    # (libjuice picks it at random within a larger range). A port free now,
    # not a fixed one: another run of this suite on the machine may hold that.
    port = free_port(socket.SOCK_DGRAM)
    eng = sinkcast.AudioManager(bind_address="127.0.0.1", port_range=(port, port), ice_udp_mux=True)
    eng.add_sink("a440", channels=2)
    eng.add_tone_source("tone440", frequency_hz=440.0, amplitude=0.4)
    eng.connect("tone440", "a440")
    sig = AsyncSignaling(eng)
    listeners = [await connect_listener(sig, f"a440/m{i}") for i in range(3)]
    try:
        await asyncio.gather(*(l.wait_seconds(1.5) for l in listeners))
        for listener in listeners:
            assert dominant_frequency(listener.audio()[-48000:, 0], 48000) == pytest.approx(440.0, abs=1.0)
    finally:
        await asyncio.gather(*(l.close() for l in listeners))
        sig.close()
        await asyncio.to_thread(eng.shutdown)


async def test_removing_a_sink_sends_bye_to_its_listeners(engine: sinkcast.AudioManager) -> None:
    sig = AsyncSignaling(engine)
    listeners = [await connect_listener(sig, t) for t in ("a440", "a440/b")]
    try:
        await asyncio.gather(*(l.wait_seconds(0.5) for l in listeners))
        await asyncio.to_thread(engine.remove_sink, "a440")
        for target in ("a440", "a440/b"):
            await next_bye(sig, target, timeout=5)
        assert engine.listeners() == []
        assert engine.stats()["live_peers"] == 0
    finally:
        await asyncio.gather(*(l.close() for l in listeners))
        sig.close()


async def test_listener_that_disappears_is_reaped_with_a_bye(engine: sinkcast.AudioManager) -> None:
    sig = AsyncSignaling(engine)
    listener = await connect_listener(sig, "a440/gone")
    await listener.wait_seconds(0.5)
    await listener.close()  # no bye: the peer just vanishes
    message = await next_bye(sig, "a440/gone", timeout=40)
    assert message in ("closed", "failed", "disconnected")
    assert engine.listeners() == []
    sig.close()


async def test_a_session_that_never_connects_is_closed_after_connect_timeout() -> None:
    """Before ICE connects nothing notices a listener that is gone: an offer of
    the engine never answered, or a peer that trickles and left before sending
    a candidate. connect_timeout closes such a session with a bye; a connected
    listener is left alone."""
    eng = sinkcast.AudioManager(bind_address="127.0.0.1", connect_timeout=1.0)
    eng.add_sink("s")
    eng.add_tone_source("t", frequency_hz=440.0)
    eng.connect("t", "s")
    sig = AsyncSignaling(eng)
    good = await connect_listener(sig, "s/good")
    gone = Listener()
    try:
        loop = asyncio.get_running_loop()
        opened = loop.time()
        await sig.request_offer("s/unanswered")
        offer, _ = without_candidates(await gone.offer())
        await sig.open_listener("s/vanished", offer, gather=False)
        await gone.close()
        for target in ("s/unanswered", "s/vanished"):
            assert await next_bye(sig, target, timeout=15) == "connect timeout"
        assert loop.time() - opened >= 0.9
        assert eng.listeners() == ["s/good"]
        await wait_for(lambda: eng.stats()["live_peers"] == 1)
        before = good.seconds()
        await good.wait_seconds(before + 1.0)  # still streaming, well past its own timeout
        assert eng.stats()["sinks"]["s"]["listeners"]["s/good"]["state"] == "connected"
    finally:
        await asyncio.gather(good.close(), gone.close())
        sig.close()
        await asyncio.to_thread(eng.shutdown)


async def test_connect_timeout_counts_from_the_session_that_replaced_a_target() -> None:
    eng = sinkcast.AudioManager(bind_address="127.0.0.1", connect_timeout=1.0)
    eng.add_sink("s")
    sig = AsyncSignaling(eng)
    try:
        loop = asyncio.get_running_loop()
        await sig.request_offer("s/x")
        await asyncio.sleep(0.6)
        reopened = loop.time()
        await sig.request_offer("s/x")  # the first session's timer must not close this one
        assert await next_bye(sig, "s/x", timeout=15) == "connect timeout"
        assert loop.time() - reopened >= 0.9
        assert eng.listeners() == []
    finally:
        sig.close()
        await asyncio.to_thread(eng.shutdown)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf"), 1e9])
async def test_connect_timeout_must_be_positive_seconds_or_none(value: float) -> None:
    with pytest.raises(ValueError, match="connect_timeout must be None"):
        sinkcast.AudioManager(bind_address="127.0.0.1", connect_timeout=value)
    sinkcast.AudioManager(bind_address="127.0.0.1", connect_timeout=None).shutdown()


LOG_SCRIPT = """
import time, sinkcast
from sinkcast import _sinkcast as native
e = sinkcast.AudioManager(bind_address="127.0.0.1")
e.add_sink("s")
e.set_python_webrtc_signaling_callback(lambda *a: None)
p = native._ReceiveProbe("127.0.0.1")
e.handle_incoming_webrtc_signaling_message("s/l", "offer", p.create_offer(5.0))
# An IPv6 candidate, as browsers offer, unreachable from an IPv4 bind address.
e.handle_incoming_webrtc_signaling_message(
    "s/l", "candidate", '{"candidate": "candidate:1 1 udp 2122260223 ::1 9 typ host", "sdpMid": "0"}')
time.sleep(1.5)
p.close()
e.shutdown()
"""


@pytest.mark.parametrize("level", [None, "warning", "Warning", "bogus"])
async def test_libdatachannel_warnings_show_only_when_asked_for(level: str | None) -> None:
    # libjuice warned on stderr at every send to an unreachable candidate of an
    # ordinary connection; the default level is now error.
    env = {k: v for k, v in os.environ.items() if k != "SINKCAST_LIBDATACHANNEL_LOG"}
    if level:
        env["SINKCAST_LIBDATACHANNEL_LOG"] = level
    proc = await run_python(LOG_SCRIPT, env=env)
    assert proc.returncode == 0, proc.stderr
    assert ("[libdatachannel warning]" in proc.stderr) == (level in ("warning", "Warning")), proc.stderr
    # A level that is not one is said, not silently taken for the default.
    assert ("SINKCAST_LIBDATACHANNEL_LOG=bogus is not a level" in proc.stderr) == (level == "bogus"), proc.stderr


async def test_a_failed_dtls_handshake_is_reaped_with_a_bye_and_disturbs_no_one(
        engine: sinkcast.AudioManager) -> None:
    """After request_offer the engine is the DTLS server. A handshake that fails
    there (here: the answer names a certificate the listener does not hold; in
    the field, libdatachannel 0.24.6's MTU race, docs/reliability.md) must remove
    the listener with a bye at once, not after ICE consent gives up."""
    sig = AsyncSignaling(engine)
    good = await connect_listener(sig, "a440/good")
    liar = Listener()
    try:
        await good.wait_seconds(0.5)
        answer = await liar.answer(await sig.request_offer("a440/liar"))
        # aiortc names its certificate by sha-256, -384 and -512; forge them all.
        forged = ":".join(["5A"] * 32)
        answer, n = re.subn(r"a=fingerprint:[^\r\n]+", "a=fingerprint:sha-256 " + forged, answer)
        assert n >= 1
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        await sig.send("a440/liar", "answer", answer)
        message = await next_bye(sig, "a440/liar", timeout=15)
        assert loop.time() - sent_at < 15, "the engine waited for a consent timeout"
        assert message == "failed"
        assert "a440/liar" not in engine.listeners()
        await wait_for(lambda: engine.stats()["live_peers"] == 1)
        before = good.seconds()
        await good.wait_seconds(before + 1.0)
    finally:
        await asyncio.gather(good.close(), liar.close())
        sig.close()


async def test_rtt_is_reported_from_rtcp(engine: sinkcast.AudioManager) -> None:
    sig = AsyncSignaling(engine)
    listener = await connect_listener(sig, "a440/rtt")
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        rtt = None
        while rtt is None and loop.time() < deadline:
            await asyncio.sleep(0.5)
            rtt = engine.stats()["sinks"]["a440"]["listeners"]["a440/rtt"]["rtt_ms"]
        assert rtt is not None, "no RTT from the listener's RTCP receiver reports within 15 s"
        assert 0 <= rtt < 500  # loopback; includes aiortc's event-loop delay
    finally:
        await listener.close()
        sig.close()


AUDIO_ONLY_THREADS_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import sinkcast
from helpers_subprocess.common import Collector, connect_probe, threads_named
e = sinkcast.AudioManager(bind_address="127.0.0.1")
e.add_sink("s")
e.add_tone_source("t")
e.connect("t", "s")
probe = connect_probe(e, Collector(e), "s/l")
print(threads_named("SCTP timer"), threads_named("sinkcast sctp"), probe.packets > 0)
probe.close()
e.shutdown()
"""


async def test_audio_only_peers_leave_sctp_timers_off() -> None:
    # usrsctp's own timer thread woke every 10 ms in every process with a peer
    # (2.4-2.6 ms/s of CPU), for data channels that audio listeners never open. A fresh interpreter, so no earlier test's data
    # channel has started sinkcast's own timer thread.
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    proc = await run_python(AUDIO_ONLY_THREADS_SCRIPT, tests_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "0", "True"], proc.stdout + proc.stderr


async def test_a_listener_that_opens_a_data_channel_gets_sctp_timers(engine: sinkcast.AudioManager) -> None:
    # A browser may offer a data channel beside the audio. Its SCTP association
    # needs timers (delayed SACKs, retransmissions), which run on "sinkcast sctp"
    # only once such a peer exists.
    sig = AsyncSignaling(engine)
    listener = await connect_listener(sig, "a440/dc", data_channel="chat")
    channel = listener.channel
    assert channel is not None
    try:
        await asyncio.wait_for(listener.channel_open.wait(), 15)
        await listener.wait_seconds(1.0)
        assert threads_named("sinkcast sctp") == 1
        assert threads_named("SCTP timer") == 0
        sctp = listener.pc.sctp
        assert sctp is not None
        for i in range(3):
            channel.send(f"message {i}")
            # aiortc queues the chunk on its next loop turn; it stays there until acknowledged (~20 ms).
            await wait_for(lambda: bool(sctp._sent_queue), 5, interval=0.001,
                           what="the message never showed in aiortc's queue")
            chunks = list(sctp._sent_queue)
            await wait_for(lambda: not sctp._sent_queue, 10, what="message never acknowledged")
            # One message, nothing sent back: only sinkcast's side's delayed-SACK
            # timer acknowledges it. Without timers, aiortc has to retransmit it
            # (after its 1 s minimum RTO) to draw a SACK.
            assert [c._sent_count for c in chunks] == [1] * len(chunks), "acknowledged only after a retransmission"
        assert dominant_frequency(listener.audio()[-24000:, 0], 48000) == pytest.approx(440.0, abs=1.0)
        # Once no data channel is left, the timers stop again (a few seconds
        # later, while the closed association is freed).
        await sig.close_listener("a440/dc")
        await listener.close()
        await wait_for(lambda: threads_named("sinkcast sctp") == 0, 30, what="SCTP's timer thread never ended")
    finally:
        await listener.close()
        sig.close()


DATA_CHANNEL_FLOOD_SCRIPT = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
import sinkcast
from sinkcast.aio import AsyncSignaling
from webrtc_peer import Listener

async def main():
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s", channels=2)
    eng.add_tone_source("t")
    eng.connect("t", "s")
    sig = AsyncSignaling(eng)
    listener = Listener(data_channel="status")
    await listener.accept_answer(await sig.open_listener("s/l", await listener.offer()))
    await asyncio.wait_for(listener.channel_open.wait(), 15)
    for i in range(1500):
        listener.channel.send(f"status {i}")
    while listener.channel.bufferedAmount or listener.pc.sctp._sent_queue or listener.pc.sctp._outbound_queue:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(eng.handle_incoming_webrtc_signaling_message, "s/l", "bye", "")
    await listener.close()
    sig.close()
    await asyncio.to_thread(eng.shutdown)
    print("done")

asyncio.run(main())
"""


async def test_a_listener_sending_on_a_data_channel_nobody_reads_blocks_nothing() -> None:
    # libdatachannel queues at most 1024 unread messages per channel, then
    # blocks one of its worker threads on the next for good: the bye and
    # shutdown() then hung. The engine now reads and drops them.
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    try:
        proc = await run_python(DATA_CHANNEL_FLOOD_SCRIPT, tests_dir)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"hung after a data channel flood: {e.stdout!r} {e.stderr!r}") from None
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["done"], proc.stdout + proc.stderr


async def test_shutdown_with_streaming_listeners() -> None:
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s", channels=2)
    eng.add_tone_source("t")
    eng.connect("t", "s")
    sig = AsyncSignaling(eng)
    listeners = [await connect_listener(sig, f"s/{i}") for i in range(3)]
    try:
        await asyncio.gather(*(l.wait_seconds(0.5) for l in listeners))
        got: list[tuple[str, str]] = []
        # Collect on the engine thread directly: after shutdown() returns nothing may arrive.
        eng.set_python_webrtc_signaling_callback(lambda t, ty, m: got.append((t, ty)))
        await asyncio.to_thread(eng.shutdown)
        n = len(got)
        assert {t for t, ty in got if ty == "bye"} == {"s/0", "s/1", "s/2"}
        await asyncio.sleep(0.5)
        assert len(got) == n
        assert eng.closed
    finally:
        await asyncio.gather(*(l.close() for l in listeners))


class GatedCallback:
    """A signaling callback that records what it is given, and holds the engine's
    dispatcher inside the call for chosen targets until released: a slow
    application, with the engine's later messages piling up behind it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.got: list[tuple[str, str]] = []
        self.gates: dict[str, threading.Event] = {}
        self.gate_types: dict[str, str | None] = {}
        self.answers: dict[str, asyncio.Queue[str]] = {}

    def hold(self, target: str, type: str | None = None) -> threading.Event:
        """Holds the dispatcher in the delivery of `target`'s messages (only those of `type`, if given)."""
        gate = threading.Event()
        self.gates[target] = gate
        self.gate_types[target] = type
        return gate

    def answer_queue(self, target: str) -> asyncio.Queue[str]:
        return self.answers.setdefault(target, asyncio.Queue())

    def __call__(self, target: str, type: str, message: str) -> None:
        self.got.append((target, type))
        if type == "answer" and target in self.answers:
            self.loop.call_soon_threadsafe(self.answers[target].put_nowait, message)
        gate = self.gates.get(target)
        if gate is not None and self.gate_types[target] in (None, type):
            assert gate.wait(30), f"test never released {target}"

    def byes(self, target: str) -> int:
        return sum(1 for t, ty in self.got if t == target and ty == "bye")


async def open_by_offer(engine: sinkcast.AudioManager, cb: GatedCallback, target: str) -> Listener:
    answers = cb.answer_queue(target)  # before the offer: the answer may come before the call returns
    listener = await offer_again(engine, target)
    await listener.accept_answer(await asyncio.wait_for(answers.get(), 10))
    return listener


async def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05, what: str = "timed out") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, what
        await asyncio.sleep(interval)


async def strand_a_vanished_listener(engine: sinkcast.AudioManager, cb: GatedCallback, target: str,
                                     busy: str) -> threading.Event:
    """Connects a listener on `target`, holds the dispatcher inside the delivery
    of `busy`'s offer, then lets the listener vanish. The engine removes it at
    once, but its bye waits behind the held delivery. Returns the gate that
    releases it."""
    engine.set_python_webrtc_signaling_callback(cb)
    old = await open_by_offer(engine, cb, target)
    await old.wait_seconds(0.3)
    gate = cb.hold(busy)
    await asyncio.to_thread(engine.handle_incoming_webrtc_signaling_message, busy, "request_offer", "")
    await wait_for(lambda: (busy, "offer") in cb.got)  # the dispatcher is now held
    live = engine.stats()["live_peers"]
    await old.close()
    # Removed although the application's callback is still busy: a slow or
    # blocked callback used to keep every dead listener listed, with its socket.
    await wait_for(lambda: target not in engine.listeners() and engine.stats()["live_peers"] == live - 1)
    assert cb.byes(target) == 0  # its bye is queued behind the held delivery
    return gate


async def offer_again(engine: sinkcast.AudioManager, target: str) -> Listener:
    """A new listener offers on `target` (a page reload); its answer comes through the callback."""
    listener = Listener()
    offer = await listener.offer()
    await asyncio.to_thread(engine.handle_incoming_webrtc_signaling_message, target, "offer", offer)
    return listener


async def test_a_reused_target_never_gets_the_bye_of_the_session_it_replaced(
    engine: sinkcast.AudioManager,
) -> None:
    # A listener vanishes while the application is slow: the engine removes it
    # at once, but its bye waits behind the busy callback. Before the
    # application has it, the same target offers again (a page reload on a
    # fixed target). That bye is about a session the application replaced:
    # delivered now, it would read as the end of the new one.
    cb = GatedCallback(asyncio.get_running_loop())
    busy = await strand_a_vanished_listener(engine, cb, "a440/x", busy="a440/busy")
    new = await offer_again(engine, "a440/x")
    busy.set()
    try:
        await new.accept_answer(await asyncio.wait_for(cb.answer_queue("a440/x").get(), 10))
        await new.wait_seconds(1.0)
        assert cb.byes("a440/x") == 0
        assert engine.listeners().count("a440/x") == 1
        assert engine.stats()["sinks"]["a440"]["listeners"]["a440/x"]["state"] == "connected"
    finally:
        await new.close()


async def test_failed_opens_leave_nothing_queued() -> None:
    # The WHEP server opens each POST under a new random target: a queue left
    # behind by every rejected offer would grow without bound.
    eng = sinkcast.AudioManager(realtime=False)
    eng.add_sink("s")
    sig = AsyncSignaling(eng)
    try:
        for i in range(20):
            with pytest.raises(sinkcast.SignalingError):
                await sig.open_listener(f"s/{i}", "v=0 not an offer")
            with pytest.raises(sinkcast.UnknownSinkError):
                await sig.request_offer(f"nosuchsink/{i}")
        assert sig._queues == {}  # the per-target queues the adapter keeps
        assert eng.listeners() == []
    finally:
        sig.close()
        eng.shutdown()


async def test_render_from_two_threads_keeps_the_mix_in_order() -> None:
    # On a manual clock, render() releases the GIL, so two threads may render the
    # same sink. Each call mixes a block and then hands it on (taps, encoder);
    # were the two steps not one, a block mixed first could be handed on second.
    # A tone read back from a tap must then have no jump anywhere.
    eng = sinkcast.AudioManager(realtime=False, bind_address="127.0.0.1")
    eng.add_sink("s", channels=1)
    eng.add_tone_source("t", frequency_hz=440.0, amplitude=0.5)
    eng.connect("t", "s")
    sig = AsyncSignaling(eng)
    listener = await connect_listener(sig, "s/l")  # the encoder runs too
    try:
        await wait_for(lambda: eng.stats()["sinks"]["s"]["listeners"]["s/l"]["track_open"])
        tap = eng.open_tap("s", seconds=30.0)
        blocks_each = 1500

        def pump() -> None:
            for _ in range(blocks_each):
                eng.render("s", 480)

        await asyncio.gather(asyncio.to_thread(pump), asyncio.to_thread(pump))
        audio = tap.read()[:, 0]
        assert len(audio) == 2 * blocks_each * 480
        step = 2 * np.pi * 440.0 / 48000 * 0.5  # the largest change between two samples of the tone
        assert np.max(np.abs(np.diff(audio))) < step * 1.05
        await wait_for(lambda: listener.got_audio.is_set())
    finally:
        await listener.close()
        sig.close()
        eng.shutdown()


async def test_a_removed_listener_is_freed_by_the_call_that_removes_it() -> None:
    # The mixer sends from a snapshot of the listener list. If that snapshot held
    # the last reference to a removed listener, its peer connection would be torn
    # down on the mixer thread, stalling the sink for everyone. The removal waits
    # for the fan-out in progress instead, so the listener is gone (and freed, on
    # the caller's thread) when the call returns. A manual clock rendering
    # without pause keeps a fan-out in progress nearly all the time.
    eng = sinkcast.AudioManager(realtime=False, bind_address="127.0.0.1")
    eng.add_sink("s", channels=2)
    eng.add_tone_source("t")
    eng.connect("t", "s")
    sig = AsyncSignaling(eng)
    listener = await connect_listener(sig, "s/l")
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            eng.render("s", 960)

    try:
        await wait_for(lambda: eng.stats()["sinks"]["s"]["listeners"]["s/l"]["track_open"])
        pumping = asyncio.ensure_future(asyncio.to_thread(pump))
        await asyncio.sleep(0.2)
        for _ in range(8):
            peers = eng.stats()["live_peers"]
            eng.handle_incoming_webrtc_signaling_message("s/l", "bye", "")
            assert eng.stats()["live_peers"] == peers - 1
            await listener.close()
            listener = await connect_listener(sig, "s/l")
            await wait_for(lambda: eng.stats()["sinks"]["s"]["listeners"]["s/l"]["track_open"])
        stop.set()
        await pumping
    finally:
        stop.set()
        await listener.close()
        sig.close()
        eng.shutdown()


async def test_a_refused_offer_leaves_the_targets_session_and_its_reader_alone() -> None:
    # A refused offer changes nothing in the engine; the adapter must not stop
    # queueing the messages of the session already on that target, nor drop
    # the ones already queued and not yet read.
    eng = sinkcast.AudioManager(realtime=False, bind_address="127.0.0.1")
    eng.add_sink("s")
    elsewhere: list[tuple[str, str]] = []
    sig = AsyncSignaling(eng, on_message=lambda target, type, message: elsewhere.append((target, type)))
    try:
        await sig.request_offer("s", gather=False)  # its candidates follow as messages
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(sig._queues["s"]) < 2:  # a host candidate and the end of candidates, unread
            assert loop.time() < deadline, "the engine's candidates never came"
            await asyncio.sleep(0.01)
        with pytest.raises(sinkcast.SignalingError):
            await sig.open_listener("s", "v=0 not an offer")
        assert eng.listeners() == ["s"]
        await asyncio.to_thread(eng.remove_sink, "s")  # the session's bye
        received = []
        async for type, message in sig.messages("s"):
            received.append((type, message))
        candidates = [json.loads(m)["candidate"] for t, m in received if t == "candidate"]
        assert candidates and candidates[-1] == "" and "127.0.0.1" in candidates[0]
        assert received[-1] == ("bye", "sink removed")
        assert ("s", "bye") not in elsewhere
    finally:
        sig.close()
        eng.shutdown()


class ScriptedEngine:
    """Stands in for an AudioManager: answers an offer with a scripted stream of
    messages, delivered from another thread as the engine's dispatcher would."""

    def __init__(self, script: list[tuple[str, str]], live: list[str]) -> None:
        self.script = script
        self.live = live
        self.callback: Any = None

    def set_python_webrtc_signaling_callback(self, callback: Any) -> None:
        self.callback = callback

    def handle_incoming_webrtc_signaling_message(self, target: str, type: str, message: str) -> None:
        for t, m in self.script:
            self.callback(target, t, m)

    def listeners(self) -> list[str]:
        return self.live


END_OF_CANDIDATES = json.dumps({"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0})


async def test_open_listener_ignores_the_replaced_sessions_last_bye() -> None:
    # The bye of the session an offer replaced can still be on its way (the
    # engine had handed it over just before). It comes before the new session's
    # answer; with a session alive on the target, it is not the new one's end.
    answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
    script = [("bye", "failed"), ("answer", answer), ("candidate", END_OF_CANDIDATES)]
    sig = AsyncSignaling(ScriptedEngine(script, live=["s/x"]))  # type: ignore[arg-type]
    assert (await sig.open_listener("s/x", "offer", timeout=5)).startswith("v=0")
    # With no session left on the target, the same bye is the new session's end.
    sig = AsyncSignaling(ScriptedEngine(script, live=[]))  # type: ignore[arg-type]
    with pytest.raises(sinkcast.SignalingError, match="closed before its answer: failed"):
        await sig.open_listener("s/x", "offer", timeout=5)


async def test_an_accepted_offer_drops_the_replaced_sessions_unread_messages() -> None:
    # The earlier session's answer, still unread when the target offers again,
    # must not pass for the new session's; the new session's own messages stay.
    old = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:old\r\n"
    new = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:new\r\n"
    engine = ScriptedEngine([("answer", old), ("candidate", END_OF_CANDIDATES)], live=["s/x"])
    sig = AsyncSignaling(engine)  # type: ignore[arg-type]
    await sig.send("s/x", "offer", "offer 1")  # nobody reads its answer
    await asyncio.sleep(0)
    engine.script = [("answer", new), ("candidate", END_OF_CANDIDATES), ("bye", "done")]
    assert "a=mid:new" in await sig.open_listener("s/x", "offer 2", timeout=5)
    assert await sig.next_message("s/x", timeout=5) == ("bye", "done")


async def test_a_reader_of_a_replaced_session_stops_and_takes_nothing_of_the_new_one(engine: Any) -> None:
    # `async for ... in sig.messages(t)` of a session still runs when the
    # listener reconnects on the same target: that reader used to take the new
    # session's offer, and the new request_offer timed out.
    sig = AsyncSignaling(engine)
    await sig.request_offer("a440/l2")
    seen: list[str] = []

    async def reader() -> None:
        async for type, _ in sig.messages("a440/l2"):
            seen.append(type)

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.2)
    offer = await sig.request_offer("a440/l2", timeout=5)
    assert offer.startswith("v=0")
    await asyncio.wait_for(task, 5)  # the replaced session's reader has stopped
    assert seen == []
    assert engine.listeners() == ["a440/l2"]
    sig.close()


async def test_two_opens_on_one_target_each_get_their_own_answer(engine: Any) -> None:
    sig = AsyncSignaling(engine)
    a, b = Listener(), Listener()
    try:
        offers = [await a.offer(), await b.offer()]
        answers = await asyncio.gather(*(sig.open_listener("a440", o, timeout=10) for o in offers))
        for offer, answer in zip(offers, answers):
            mid = re.search(r"a=mid:(\S+)", offer)
            assert mid and f"a=mid:{mid.group(1)}" in answer
            assert re.search(r"a=fingerprint:\S+ (\S+)", answer)
        # Each answer is the one made for its own offer: their ICE credentials differ.
        assert answers[0] != answers[1]
        assert engine.listeners() == ["a440"]
    finally:
        await a.close()
        await b.close()
        sig.close()


async def test_close_listener_and_forget_stop_the_sessions_readers(engine: Any) -> None:
    sig = AsyncSignaling(engine)
    for target, end in (("a440/a", "close"), ("a440/b", "forget")):
        await sig.request_offer(target)
        task = asyncio.create_task(sig.next_message(target))
        await asyncio.sleep(0.1)
        if end == "close":
            await sig.close_listener(target)
        else:
            sig.forget(target)
        with pytest.raises(sinkcast.SignalingError, match="closed, replaced or forgotten"):
            await asyncio.wait_for(task, 5)
    assert sig._queues == {}
    sig.close()


class SlowEngine:
    """The real engine, with 0.3 s added before each call for which
    slow_if(type, message) holds (an engine busy on its locks); every call by default."""

    def __init__(self, engine: sinkcast.AudioManager,
                 slow_if: Callable[[str, str], bool] = lambda type, message: True) -> None:
        self._engine = engine
        self._slow_if = slow_if

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def handle_incoming_webrtc_signaling_message(self, target: str, type: str, message: str) -> None:
        if self._slow_if(type, message):
            time.sleep(0.3)
        self._engine.handle_incoming_webrtc_signaling_message(target, type, message)


@pytest.mark.parametrize("how", ["cancelled during the engine call", "timed out waiting for candidates"])
async def test_an_open_that_is_given_up_leaves_no_session(engine: Any, how: str) -> None:
    # The engine call runs in a thread and cannot be stopped half way: a
    # session it opens after the caller gave up used to stay, owned by nobody
    # (one from request_offer until the application said bye).
    late: list[tuple[str, str]] = []
    sig = AsyncSignaling(engine, on_message=lambda t, ty, m: late.append((t, ty)))
    listener = Listener()
    try:
        offer = await listener.offer()
        if how.startswith("cancelled"):
            sig.engine = SlowEngine(engine)  # type: ignore[assignment]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sig.open_listener("a440/a", offer), 0.1)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sig.request_offer("a440/b"), 0.1)
        else:
            with pytest.raises(TimeoutError):
                await sig.open_listener("a440/a", offer, timeout=0)
            with pytest.raises(TimeoutError):
                await sig.request_offer("a440/b", timeout=0)
        await asyncio.sleep(1.0)
        assert engine.listeners() == []
        assert sig._queues == {}
        assert late == []  # none of their messages went astray
    finally:
        await listener.close()
        sig.close()


async def test_the_adapter_keeps_no_queue_for_a_session_whose_bye_was_read(engine: Any) -> None:
    sig = AsyncSignaling(engine)
    for i in range(5):
        await sig.request_offer(f"a440/{i}")
    engine.remove_sink("a440")  # every listener gets a bye
    for i in range(5):
        assert [ty async for ty, _ in sig.messages(f"a440/{i}")][-1] == "bye"
    assert sig._queues == {}
    sig.close()


async def test_a_timed_out_open_says_timeout_even_when_its_bye_is_refused() -> None:
    # Closing the given-up session is a courtesy: a sink removed meanwhile
    # makes its bye fail, and that must not replace the caller's TimeoutError.
    class SinkGoneOnBye(ScriptedEngine):
        def handle_incoming_webrtc_signaling_message(self, target: str, type: str, message: str) -> None:
            if type == "bye":
                raise sinkcast.UnknownSinkError(f"unknown sink '{target.split('/')[0]}'")

    sig = AsyncSignaling(SinkGoneOnBye([], live=[]))  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        await sig.open_listener("s/x", "offer", timeout=0)
    assert sig._queues == {}


async def test_next_message_during_an_open_keeps_reading_the_old_session(engine: Any) -> None:
    # A reader that calls next_message() while the target is being opened anew
    # must read its own session: it used to wait on the new session's queue,
    # which a refused open then dropped, so it never saw its session's bye.
    sig = AsyncSignaling(engine)
    await sig.request_offer("a440/r")
    await asyncio.sleep(0.2)
    while len(sig._queues["a440/r"]) > 0:  # its candidates: read, so the next read waits
        await sig.next_message("a440/r")
    sig.engine = SlowEngine(engine)  # type: ignore[assignment]
    opening = asyncio.create_task(sig.open_listener("a440/r", "this is not an offer"))
    await asyncio.sleep(0.1)  # the open is at the engine
    reader = asyncio.create_task(sig.next_message("a440/r"))
    with pytest.raises(sinkcast.SignalingError):
        await opening  # refused: nothing changes
    assert engine.listeners() == ["a440/r"]
    engine.remove_sink("a440")  # the old session's bye
    assert (await asyncio.wait_for(reader, 5))[0] == "bye"
    sig.close()


async def test_every_reader_stops_once_one_of_them_took_the_bye(engine: Any) -> None:
    sig = AsyncSignaling(engine)
    await sig.request_offer("a440/b")
    seen: list[str] = []

    async def by_iteration() -> None:
        async for type, _ in sig.messages("a440/b"):
            seen.append(type)

    async def one_by_one() -> None:
        try:
            while True:
                seen.append((await sig.next_message("a440/b"))[0])
        except sinkcast.SignalingError:
            seen.append("stopped")

    readers = [asyncio.create_task(by_iteration()), asyncio.create_task(one_by_one())]
    await asyncio.sleep(0.1)
    engine.remove_sink("a440")  # the session's bye
    await asyncio.wait_for(asyncio.gather(*readers), 5)
    assert sorted(seen) == ["bye", "stopped"]
    assert sig._queues == {}
    sig.close()


async def test_a_close_made_while_an_open_waits_for_the_engine_closes_that_opens_session(engine: Any) -> None:
    # close_listener() while an open of the same target waits for the engine.
    # Its bye used to reach the engine first and close nothing, and the open
    # then returned an answer for a session that stayed open, or (when the bye
    # came second) one the engine had already closed while the adapter kept
    # queueing for it. Now the close comes after the open, and closes its session.
    sig = AsyncSignaling(engine)
    sig.engine = SlowEngine(engine, slow_if=lambda type, _: type == "offer")  # type: ignore[assignment]
    listener = Listener()
    try:
        opening = asyncio.create_task(sig.open_listener("a440/c", await listener.offer(), timeout=5))
        await asyncio.sleep(0.05)
        await sig.close_listener("a440/c")
        assert opening.done() and opening.result().startswith("v=0")
        assert engine.listeners() == []
        assert sig._queues == {}
    finally:
        await listener.close()
        sig.close()


async def test_a_reader_of_a_target_with_no_session_here_is_told_at_once(engine: Any) -> None:
    # Readers used to make a queue for any target. After the session's end
    # (forget, close_listener, or never opened) a reader then waited forever on
    # a queue nothing would fill, and that queue took the target's later
    # messages away from on_message.
    elsewhere: list[tuple[str, str]] = []
    sig = AsyncSignaling(engine, on_message=lambda t, ty, m: elsewhere.append((t, ty)))
    await sig.request_offer("a440/f")
    sig.forget("a440/f")
    await sig.request_offer("a440/c")
    await sig.close_listener("a440/c")
    for target in ("a440/f", "a440/c", "a440/never"):
        with pytest.raises(sinkcast.SignalingError, match="no session of"):
            await sig.next_message(target, timeout=5)
        with pytest.raises(sinkcast.SignalingError, match="no session of"):
            async for _ in sig.messages(target):
                pass
    assert sig._queues == {}
    await asyncio.to_thread(engine.remove_sink, "a440")  # the forgotten session's bye
    await wait_for(lambda: ("a440/f", "bye") in elsewhere)
    sig.close()


async def test_a_refused_offer_sent_during_an_open_leaves_that_opens_session_alone(engine: Any) -> None:
    # send(target, "offer") undid its queue on refusal by looking the target up
    # again: when an open of the target had been accepted meanwhile, it ended
    # that live session's queue, whose reader stopped and whose bye went astray.
    elsewhere: list[tuple[str, str]] = []
    sig = AsyncSignaling(engine, on_message=lambda t, ty, m: elsewhere.append((t, ty)))
    sig.engine = SlowEngine(engine, slow_if=lambda _, message: message == "not an offer")  # type: ignore[assignment]
    bad = asyncio.create_task(sig.send("a440/x", "offer", "not an offer"))
    await asyncio.sleep(0.05)
    await sig.request_offer("a440/x")
    with pytest.raises(sinkcast.SignalingError):
        await bad
    assert engine.listeners() == ["a440/x"]
    await asyncio.to_thread(engine.remove_sink, "a440")
    assert await next_bye(sig, "a440/x", 5) == "sink removed"
    assert elsewhere == []
    sig.close()


async def test_a_reader_cancelled_as_its_message_arrives_is_cancelled_and_loses_nothing() -> None:
    # next_message(timeout=...) used asyncio.wait_for, which before Python 3.12
    # can return the inner result and drop a cancellation that lands in the same
    # turn of the loop (CPython gh-86296): the cancelled reader carried on. A
    # cancel() that returns True must end the reader, and leave the message queued.
    engine = ScriptedEngine([("answer", "v=0\r\n")], live=["s/x"])
    sig = AsyncSignaling(engine)  # type: ignore[arg-type]
    await sig.send("s/x", "offer", "an offer")
    assert (await sig.next_message("s/x"))[0] == "answer"
    for turns in range(8):  # the cancel lands 0..7 turns of the loop after the message
        reader = asyncio.create_task(sig.next_message("s/x", timeout=30))
        await asyncio.sleep(0)  # the reader waits
        sig._dispatch("s/x", "candidate", str(turns))  # what the engine's call_soon_threadsafe runs
        for _ in range(turns):
            await asyncio.sleep(0)
        if reader.cancel():
            with pytest.raises(asyncio.CancelledError):
                await reader
            assert await sig.next_message("s/x", timeout=1) == ("candidate", str(turns))
        else:
            assert reader.result() == ("candidate", str(turns))


async def test_forget_hands_the_sessions_unread_messages_to_on_message() -> None:
    # The WHEP server forgets each session once it has its answer. A bye that
    # came right behind the candidates was still in the session's queue, and
    # forget() dropped it: the server never learnt that the session had ended.
    answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
    script = [("answer", answer), ("candidate", END_OF_CANDIDATES), ("bye", "failed")]
    elsewhere: list[tuple[str, str, str]] = []
    engine = ScriptedEngine(script, live=["s/x"])
    sig = AsyncSignaling(engine, on_message=lambda *m: elsewhere.append(m))  # type: ignore[arg-type]
    assert (await sig.open_listener("s/x", "offer", timeout=5)).startswith("v=0")
    assert elsewhere == []
    sig._from_engine_thread("s/x", "candidate", "later")  # on its way through the loop, behind the bye
    sig.forget("s/x")
    await asyncio.sleep(0)
    assert elsewhere == [("s/x", "bye", "failed"), ("s/x", "candidate", "later")]
    assert sig._queues == {}


class LateScriptedEngine(ScriptedEngine):
    """A ScriptedEngine whose messages come 0.2 s after the call has returned,
    as the real engine's description does (libdatachannel makes it on its own
    threads). Each call plays the next script of `scripts`."""

    def __init__(self, scripts: list[list[tuple[str, str]]], live: list[str]) -> None:
        super().__init__([], live)
        self.scripts = scripts

    def handle_incoming_webrtc_signaling_message(self, target: str, type: str, message: str) -> None:
        script = self.scripts.pop(0) if type != "bye" else []

        def later() -> None:
            time.sleep(0.2)
            for t, m in script:
                self.callback(target, t, m)

        threading.Thread(target=later).start()


async def test_an_open_after_a_sent_offer_returns_its_own_answer() -> None:
    # send(target, "offer") let the target's next open start as soon as the
    # engine call returned. The first session's answer, made a little later,
    # then landed in the next open's queue, which returned it as its own.
    def answer(mid: str) -> str:
        return f"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{mid}\r\n"

    engine = LateScriptedEngine([[("answer", answer("first")), ("candidate", END_OF_CANDIDATES)],
                                 [("answer", answer("second")), ("candidate", END_OF_CANDIDATES)]], live=["s/x"])
    sig = AsyncSignaling(engine)  # type: ignore[arg-type]
    await sig.send("s/x", "offer", "offer 1")
    assert "a=mid:second" in await sig.open_listener("s/x", "offer 2", timeout=5)


async def test_close_stops_every_open_in_progress_and_refuses_later_calls(engine: Any) -> None:
    # close() ended only the open holding the target's turn: one waiting for it
    # then opened a session with the callback cleared, and waited out its whole
    # timeout; later opens did the same.
    sig = AsyncSignaling(engine)
    sig.engine = SlowEngine(engine)  # type: ignore[assignment]
    opens = [asyncio.create_task(sig.request_offer("a440/x", timeout=30)) for _ in range(2)]
    raw_open = asyncio.create_task(sig.send("a440/z", "request_offer"))  # at the engine too
    await asyncio.sleep(0.05)  # the first at the engine, the second waiting for its turn
    sig.close()
    for task in opens:
        with pytest.raises(sinkcast.SignalingError):
            await asyncio.wait_for(task, 5)
    with pytest.raises(sinkcast.SignalingError, match="closed"):
        await sig.request_offer("a440/y")
    with pytest.raises(sinkcast.SignalingError, match="closed"):
        await raw_open
    with pytest.raises(sinkcast.SignalingError, match="closed"):
        await sig.send("a440/y", "request_offer")
    await wait_for(lambda: engine.listeners() == [])  # the opened session was closed


async def test_forget_is_not_stopped_by_an_on_message_that_raises() -> None:
    # forget() called on_message itself, in a loop: one message that made it
    # raise came out of forget(), and the messages after it were lost. They go
    # through the loop now, as the engine's messages do (the loop logs the error).
    answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
    script = [("answer", answer), ("candidate", END_OF_CANDIDATES), ("candidate", "{}"), ("bye", "failed")]
    seen: list[str] = []

    def on_message(target: str, type: str, message: str) -> None:
        seen.append(type)
        if type == "candidate":
            raise RuntimeError("a handler's bug")

    loop = asyncio.get_running_loop()
    errors: list[Any] = []
    loop.set_exception_handler(lambda _, context: errors.append(context.get("exception")))
    try:
        sig = AsyncSignaling(ScriptedEngine(script, live=["s/x"]), on_message=on_message)  # type: ignore[arg-type]
        await sig.open_listener("s/x", "offer", timeout=5)
        sig.forget("s/x")
        await asyncio.sleep(0)
        assert seen == ["candidate", "bye"]
        assert [str(e) for e in errors] == ["a handler's bug"]
    finally:
        loop.set_exception_handler(None)


async def test_a_sent_offer_waits_past_the_last_bye_of_the_session_it_replaced() -> None:
    # The bye of the session being replaced (its peer had failed) can reach the
    # loop just after the new session opened. send() took it for the new
    # session's end, returned before its description, and the first read then
    # returned that bye and stopped the new session's queue.
    offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:new\r\n"
    engine = LateScriptedEngine([[("bye", "failed"), ("offer", offer), ("candidate", END_OF_CANDIDATES)]],
                                live=["s/x"])
    sig = AsyncSignaling(engine)  # type: ignore[arg-type]
    await sig.send("s/x", "request_offer")
    assert await sig.next_message("s/x", timeout=5) == ("offer", offer)
    assert "s/x" in sig._queues


async def test_close_after_the_engine_shut_down_meanwhile_still_detaches() -> None:
    # close() checked engine.closed and then cleared the callback: a shutdown on
    # another thread in between made it raise EngineClosedError halfway, before
    # its readers and opens were stopped.
    class ShutDownJustNow(ScriptedEngine):
        closed = False  # as read just before the shutdown

        def set_python_webrtc_signaling_callback(self, callback: Any) -> None:
            if callback is None:
                raise sinkcast.EngineClosedError("the engine was shut down")
            super().set_python_webrtc_signaling_callback(callback)

    sig = AsyncSignaling(ShutDownJustNow([("answer", "v=0\r\n")], live=["s/x"]))  # type: ignore[arg-type]
    await sig.send("s/x", "offer", "an offer")
    assert (await sig.next_message("s/x"))[0] == "answer"
    reader = asyncio.create_task(sig.next_message("s/x"))
    await asyncio.sleep(0)
    sig.close()
    with pytest.raises(sinkcast.SignalingError, match="closed, replaced or forgotten"):
        await asyncio.wait_for(reader, 5)
    assert sig._queues == {}
