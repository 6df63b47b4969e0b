"""A real WebRTC listener for the tests: aiortc, kept on loopback."""

from __future__ import annotations

import asyncio
import json

import aioice.ice
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

# aiortc skips loopback when it gathers; these tests must never leave 127.0.0.1.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


class Listener:
    """One aiortc peer receiving one audio track; with `data_channel`, it also
    offers a data channel of that label (`channel`, `channel_open`)."""

    def __init__(self, data_channel: str | None = None) -> None:
        self.pc = RTCPeerConnection()
        self.channel_open = asyncio.Event()
        self.channel = None
        if data_channel is not None:
            self.channel = self.pc.createDataChannel(data_channel)
            self.channel.on("open", self.channel_open.set)
        self.chunks: list[np.ndarray] = []
        self.channels = 0
        self.sample_rate = 0
        self.got_audio = asyncio.Event()
        self.markers: list[bool] = []  # each RTP packet's marker bit, in arrival order
        self._consumer: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def on_track(track) -> None:  # type: ignore[no-untyped-def]
            if track.kind == "audio":
                self._consumer = asyncio.ensure_future(self._consume(track))

    async def _consume(self, track) -> None:  # type: ignore[no-untyped-def]
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.sample_rate = frame.sample_rate
            self.channels = len(frame.layout.channels)
            samples = frame.to_ndarray().reshape(-1, self.channels).astype(np.float32) / 32768.0
            self.chunks.append(samples)
            self.got_audio.set()

    def _record_rtp_headers(self) -> None:
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.kind == "audio")
        handle = receiver._handle_rtp_packet

        async def recording(packet, arrival_time_ms):  # type: ignore[no-untyped-def]
            self.markers.append(bool(packet.marker))
            return await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = recording

    async def offer(self) -> str:
        self.pc.addTransceiver("audio", direction="recvonly")
        self._record_rtp_headers()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        self._record_rtp_headers()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def add_candidate(self, message: str) -> None:
        value = json.loads(message)
        if not value or not value.get("candidate"):
            return
        candidate = candidate_from_sdp(value["candidate"].split(":", 1)[1])
        candidate.sdpMid = value.get("sdpMid")
        candidate.sdpMLineIndex = value.get("sdpMLineIndex")
        await self.pc.addIceCandidate(candidate)

    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros((0, max(self.channels, 1)), np.float32)

    def seconds(self) -> float:
        return sum(len(c) for c in self.chunks) / self.sample_rate if self.sample_rate else 0.0

    async def wait_seconds(self, seconds: float, timeout: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.seconds() < seconds:
            if loop.time() > deadline:
                raise AssertionError(f"only {self.seconds():.2f} s of audio arrived within {timeout} s")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.pc.close()
        if self._consumer is not None:
            self._consumer.cancel()


def dominant_frequency(x: np.ndarray, rate: int) -> float:
    """Peak of the spectrum, refined by quadratic interpolation of the log magnitude."""
    x = x - np.mean(x)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) + 1e-12
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return float((k + offset) * rate / len(x))


def aiortc_offer() -> str:
    """A real recvonly audio offer from aiortc, made outside any running loop."""

    async def make() -> str:
        listener = Listener()
        sdp = await listener.offer()
        await listener.close()
        return sdp

    return asyncio.run(make())
