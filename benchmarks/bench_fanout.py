"""WebRTC fan-out: server CPU per listener, sinkcast vs aiortc; offer->answer time; push->wire latency.

The listeners live in another process: cheap receive-only libdatachannel
probes (sinkcast._sinkcast._ReceiveProbe, a test utility) that count RTP
packets and do not decode. Both servers stream one stereo 440 Hz source in
20 ms Opus frames over loopback:

  sinkcast  one AudioManager sink; Opus encoded once per frame for everyone
  aiortc    one RTCPeerConnection per listener, fed from one track through MediaRelay:
            decoded frames that each listener's sender encodes (the usual setup, the
            table's baseline), and, in a second table, one stream encoded once

Server CPU is the server process's CPU time (all threads) over steady windows,
per listener-second. Each figure is measured in WINDOWS windows in a row; the
table gives their median, and the best window beside it: on a shared machine a
neighbour only ever adds CPU time (cache and memory contention), so the best
window is the closest to the undisturbed cost. Both servers are read the same way.
push->wire latency is read on the wire (the kernel's time stamp on the loopback
interface, loopback_capture.py, which needs root) and at the listener.
Run: ./run python benchmarks/bench_fanout.py [--counts 1,10,50,100,200] [--latency-only]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import multiprocessing as mp
import os
import re
import statistics
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

import sinkcast
from loopback_capture import LoopbackCapture, rtp_sizes
from sinkcast.aio import merge_candidates

WINDOW_S = 3.0
WINDOWS = 4
# Streaming before the window, so it measures the steady state: sinkcast's
# per-listener retransmission history (64 packets) has filled by then, and
# aiortc has settled its encoders and congestion control.
SETTLE_S = 3.0
# aiortc encodes through PyAV's libopus wrapper, whose default compression level
# is 10; sinkcast's default is libopus's own, 9. Compare like with like.
COMPLEXITY = 10
# Every offer->answer time of sinkcast's runs, in order (ms). The first of the
# process also pays for libdatachannel's one-time start-up, so it is shown apart.
OFFER_TO_ANSWER_MS: list[float] = []


# ---------------------------------------------------------------------------- listeners


def probe_process(conn: Connection) -> None:
    from sinkcast import _sinkcast as native

    probes: list[Any] = []
    while True:
        cmd, arg = conn.recv()
        if cmd == "offers":
            probes = [native._ReceiveProbe("127.0.0.1") for _ in range(arg)]
            conn.send([p.create_offer(5.0) for p in probes])
        elif cmd == "answers":
            for p, answer in zip(probes, arg):
                p.accept_answer(answer)
            conn.send(True)
        elif cmd == "replace":  # new probes in these places; their offers
            for i in arg:
                probes[i].close()
                probes[i] = native._ReceiveProbe("127.0.0.1")
            conn.send([probes[i].create_offer(5.0) for i in arg])
        elif cmd == "answer_some":
            for i, answer in arg.items():
                probes[i].accept_answer(answer)
            conn.send(True)
        elif cmd == "counts":
            conn.send([p.packets for p in probes])
        elif cmd == "take":  # arrival times and sizes of one probe's packets since the last take
            conn.send(probes[arg or 0].take_packets())
        elif cmd == "close":
            for p in probes:
                p.close()
            probes = []
            conn.send(True)
        elif cmd == "exit":
            conn.send(True)
            return


class Probes:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=probe_process, args=(child,), daemon=True)
        self.proc.start()

    def call(self, cmd: str, arg: Any = None) -> Any:
        self.conn.send((cmd, arg))
        return self.conn.recv()

    def stalled(self, n: int, timeout: float = 60.0) -> list[int]:
        """Waits until all n listeners receive; the places of those that still don't after timeout."""
        deadline = time.monotonic() + timeout
        first = self.call("counts")
        while True:
            time.sleep(0.5)
            now = self.call("counts")
            if len(now) == n and all(b > a for a, b in zip(first, now)):
                return []
            if time.monotonic() > deadline:
                return [i for i, (a, b) in enumerate(zip(first, now)) if b <= a]

    def wait_all_receiving(self, n: int, timeout: float = 60.0) -> None:
        stalled = self.stalled(n, timeout)
        if stalled:
            raise RuntimeError(f"{len(stalled)} of {n} listeners are not receiving")

    def close(self) -> None:
        self.call("exit")
        self.proc.join(5)


# ---------------------------------------------------------------------------- windows


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds of this process's threads so far, summed by thread name (Linux; empty elsewhere)."""
    out: dict[str, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                on_cpu_ns = int(f.read().split()[0])  # nanoseconds, where stat counts 10 ms ticks
        except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
            continue
        out[name] = out.get(name, 0.0) + on_cpu_ns / 1e9
    return out


# Threads that libdatachannel and sinkcast leave running in this process
# after an engine's shutdown (libdatachannel keeps its pools until the
# process exits). aiortc's windows, measured in the same
# process after sinkcast's, leave their CPU out.
SINKCAST_THREADS = ("RTC worker", "SCTP ", "juice", "sinkcast")


def sample_windows(probes: Probes, n: int, leave_out: tuple[str, ...] = ()) -> list[dict[str, float]]:
    """WINDOWS back-to-back windows of this process's CPU time and the packets each listener received,
    less the CPU of the threads whose names start with one of `leave_out`."""
    windows = []
    before = probes.call("counts")
    for _ in range(WINDOWS):
        t0 = thread_cpu_s()
        c0, w0 = time.process_time(), time.monotonic()
        time.sleep(WINDOW_S)
        cpu, wall = time.process_time() - c0, time.monotonic() - w0
        t1 = thread_cpu_s()
        after = probes.call("counts")
        pkts = statistics.mean(b - a for a, b in zip(before, after)) / wall
        by_name = {k: 1000 * (v - t0.get(k, 0.0)) / wall for k, v in t1.items()}
        left_out = sum(v for k, v in by_name.items() if k.startswith(leave_out)) if leave_out else 0.0
        cpu -= left_out * wall / 1000
        windows.append({
            "cpu_ms_per_s": 1000 * cpu / wall,
            "left_out_ms_per_s": left_out,
            "packets_per_listener_s": pkts,
            # CPU per packet delivered: fair even when a server cannot keep up and delivers less.
            "us_per_packet": 1e6 * cpu / wall / (n * pkts) if pkts > 0 else float("inf"),
            # sinkcast's threads: the sink's clock (mix, encode, send to every listener) and
            # libjuice's ICE thread ("juice poll", or "juice mux" with ice_udp_mux=True).
            "clock_ms_per_s": by_name.get("sinkcast clock", 0.0),
            "ice_ms_per_s": sum(v for k, v in by_name.items() if k.startswith("juice")),
            # SCTP's timers. sinkcast runs them only while a data channel exists ("sinkcast sctp"), so
            # with these audio-only probes this is 0; "SCTP timer" is usrsctp's own thread, which a system
            # libdatachannel starts in every process with a peer.
            "sctp_ms_per_s": by_name.get("SCTP timer", 0.0) + by_name.get("sinkcast sctp", 0.0),
        })
        before = after
    return windows


def summarize(windows: list[dict[str, float]]) -> dict[str, float]:
    """The median window's figures, and the best window's CPU per packet and per listener-second."""
    out = {k: statistics.median(w[k] for w in windows) for k in windows[0]}
    best = min(windows, key=lambda w: w["us_per_packet"])
    out["best_us_per_packet"] = best["us_per_packet"]
    out["best_cpu_ms_per_s"] = best["cpu_ms_per_s"]
    return out


# ---------------------------------------------------------------------------- sinkcast


class SyncSignaling:
    """Collects each target's answer and candidates until the engine's end of candidates."""

    def __init__(self, eng: sinkcast.AudioManager) -> None:
        self.cv = threading.Condition()
        self.messages: dict[str, list[tuple[str, str]]] = {}
        self.answer_at: dict[str, int] = {}
        eng.set_python_webrtc_signaling_callback(self.on_message)

    def on_message(self, target: str, type: str, message: str) -> None:
        with self.cv:
            if type == "answer":
                self.answer_at[target] = time.perf_counter_ns()
            self.messages.setdefault(target, []).append((type, message))
            self.cv.notify_all()

    def forget(self, target: str) -> None:
        with self.cv:
            self.messages.pop(target, None)

    def full_answer(self, target: str, timeout: float = 10.0) -> str:
        def ready() -> bool:
            return any(t == "candidate" and not json.loads(m)["candidate"] for t, m in self.messages.get(target, []))

        with self.cv:
            if not self.cv.wait_for(ready, timeout):
                raise TimeoutError(target)
            msgs = self.messages[target]
        answer = next(m for t, m in msgs if t == "answer")
        return merge_candidates(answer, [m for t, m in msgs if t == "candidate"])


def connect_stalled_again(probes: Probes, eng: sinkcast.AudioManager, sig: SyncSignaling, n: int) -> None:
    """Connects again, under the same target, each listener that receives nothing.

    Once in a few thousand connections the probe's DTLS handshake fails
    ("Handshake failed: fatal I/O error", then a handshake timeout on the
    engine's side): a race inside libdatachannel 0.24.6 on the DTLS server's
    side, likelier while hundreds connect at once (docs/reliability.md). A
    browser would connect again; so does the benchmark, twice at most, rather
    than throw away the whole run."""
    for _ in range(2):
        stalled = probes.stalled(n)
        if not stalled:
            return
        print(f"  ({len(stalled)} of {n} listeners received nothing; connecting them again)", flush=True)
        answers = {}
        for i, offer in zip(stalled, probes.call("replace", stalled)):
            sig.forget(f"s/{i}")
            eng.handle_incoming_webrtc_signaling_message(f"s/{i}", "offer", offer)
            answers[i] = sig.full_answer(f"s/{i}")
        probes.call("answer_some", answers)
    probes.wait_all_receiving(n)


def measure_sinkcast(probes: Probes, n: int, udp_mux: bool = False) -> dict[str, float]:
    eng = sinkcast.AudioManager(bind_address="127.0.0.1", ice_udp_mux=udp_mux)
    eng.add_sink("s", channels=2, frame_ms=20, complexity=COMPLEXITY)
    eng.add_tone_source("t", frequency_hz=440.0, amplitude=0.3)
    eng.connect("t", "s")
    sig = SyncSignaling(eng)
    try:
        offers = probes.call("offers", n)
        answers, offer_to_answer = [], []
        for i, offer in enumerate(offers):
            t0 = time.perf_counter_ns()
            eng.handle_incoming_webrtc_signaling_message(f"s/{i}", "offer", offer)
            answers.append(sig.full_answer(f"s/{i}"))
            offer_to_answer.append((sig.answer_at[f"s/{i}"] - t0) / 1e6)
        OFFER_TO_ANSWER_MS.extend(offer_to_answer)
        probes.call("answers", answers)
        connect_stalled_again(probes, eng, sig, n)
        time.sleep(SETTLE_S)
        return summarize(sample_windows(probes, n))
    finally:
        probes.call("close")
        eng.shutdown()


def idle_sinkcast_cpu() -> float:
    with sinkcast.AudioManager(bind_address="127.0.0.1") as eng:
        eng.add_sink("s", channels=2, frame_ms=20, complexity=COMPLEXITY)
        eng.add_tone_source("t", frequency_hz=440.0, amplitude=0.3)
        eng.connect("t", "s")
        time.sleep(0.5)
        c0, w0 = time.process_time(), time.monotonic()
        time.sleep(WINDOW_S)
        return 1000 * (time.process_time() - c0) / (time.monotonic() - w0)


def sink_floor_ms_per_s(frames: int = 150) -> dict[str, float]:
    """What one sink costs whatever its listeners: one Opus encode and one clock wake-up per 20 ms frame,
    measured apart (as in bench_sink_cost.py), in CPU ms per second. Median of three runs."""
    runs = [sinkcast._sinkcast._benchmark_opus_encode(frames, 128_000, COMPLEXITY, gap_ms=20) for _ in range(3)]
    return {
        "encode": statistics.median(r["encode_ns_per_frame"] for r in runs) * 50 / 1e6,
        "wake": statistics.median(r["wake_ns_per_frame"] for r in runs) * 50 / 1e6,
    }


def candidate_port(sdp: str) -> int:
    """The UDP port of an SDP's host candidate on 127.0.0.1 (the probes gather just that one)."""
    match = re.search(r"a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1 (\d+) typ host", sdp, re.IGNORECASE)
    if match is None:
        raise RuntimeError("no 127.0.0.1 host candidate in the probe's offer")
    return int(match.group(1))


def measure_latency(probes: Probes, listeners: int = 1, bursts: int = 100) -> dict[str, Any]:
    """push() of a loud burst after silence -> its first packet to the last of `listeners` listeners
    (the sink sends to them in turn, in the order they joined), in ms, read two ways:
      wire      the kernel's time stamp as the packet comes off the loopback interface (loopback_capture;
                None without CAP_NET_RAW);
      listener  its arrival at the probe's callback, after the probe process's own receive work (it
                decrypts the frame's packets to the other listeners too, one after another).
    And how many bursts never showed up within 0.5 s (counted, never left out quietly)."""
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s", channels=1, frame_ms=20)
    eng.add_source("mic", sample_rate=48000, channels=1, jitter_ms=0)
    eng.connect("mic", "s")
    sig = SyncSignaling(eng)
    rng = np.random.default_rng(3)
    burst = (rng.uniform(-0.8, 0.8, 960)).astype(np.float32)
    capture = None
    try:
        offers = probes.call("offers", listeners)
        answers = []
        for i, offer in enumerate(offers):
            eng.handle_incoming_webrtc_signaling_message(f"s/lat{i}", "offer", offer)
            answers.append(sig.full_answer(f"s/lat{i}"))
        probes.call("answers", answers)
        probes.wait_all_receiving(listeners)
        last = listeners - 1
        capture = LoopbackCapture.open(candidate_port(offers[last]))
        time.sleep(0.3)
        silent = [size for _, size in probes.call("take", last)]
        threshold = max(silent) * 3 if silent else 100
        wire_silent = [size for _, size in rtp_sizes(capture.take())] if capture else []
        wire_threshold = max(wire_silent) * 2 if wire_silent else 100
        latencies: list[float] = []
        wire: list[float] = []
        missed = 0
        while len(latencies) + missed < bursts:
            # Opus keeps spending bits for a while after loud audio: wait until the
            # stream is back to silence-sized packets, at a random phase against the clock.
            time.sleep(0.3 + rng.uniform(0, 0.02))
            tail = probes.call("take", last)
            if not tail or tail[-1][1] > threshold:
                continue
            if capture:
                capture.take()
            t0_wall = time.time_ns()  # the capture's clock
            t0 = time.monotonic_ns()  # the probe's
            eng.push("mic", burst)
            loud: list[int] = []
            for _ in range(5):  # up to 0.5 s
                time.sleep(0.1)
                loud += [a for a, size in probes.call("take", last) if a > t0 and size > threshold]
                if loud:
                    break
            if loud:
                latencies.append((min(loud) - t0) / 1e6)
                if capture:
                    on_wire = [t for t, size in rtp_sizes(capture.take()) if t > t0_wall and size > wire_threshold]
                    wire.append((min(on_wire) - t0_wall) / 1e6 if on_wire else float("inf"))
            else:
                missed += 1
        return {"listener": latencies, "wire": wire if capture else None, "missed": missed}
    finally:
        if capture:
            capture.close()
        probes.call("close")
        eng.shutdown()


# ---------------------------------------------------------------------------- aiortc


def measure_aiortc(probes: Probes, n: int, encode_once: bool = False) -> dict[str, float]:
    """aiortc serving n listeners from one source through MediaRelay. As aiortc is
    usually set up, the relay hands out decoded frames and each listener's
    RTCRtpSender encodes them: one encode per listener. With encode_once the
    source is encoded once (PyAV's libopus at aiortc's own settings) and the
    relay hands out the packets, which each sender only packetizes: an aiortc
    server that encodes once, as sinkcast does."""
    import aioice.ice
    import av
    from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

    class SineTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.pts = 0
            self.start: float | None = None
            t = np.arange(960) / 48000
            self.phase = 0

        async def recv(self) -> av.AudioFrame:
            if self.start is None:
                self.start = time.monotonic()
            wait = self.start + self.pts / 48000 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            t = (self.pts + np.arange(960)) / 48000
            mono = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2)[None, :], format="s16", layout="stereo")
            frame.sample_rate = 48000
            frame.pts = self.pts
            frame.time_base = fractions.Fraction(1, 48000)
            self.pts += 960
            return frame

    class EncodedOnceTrack(MediaStreamTrack):
        """The sine, encoded once for every listener."""

        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.frames = SineTrack()
            # aiortc's OpusEncoder settings (aiortc/codecs/opus.py): 96 kbit/s, voip, FFmpeg's default complexity.
            self.codec = av.CodecContext.create("libopus", "w")
            self.codec.bit_rate = 96000
            self.codec.format = "s16"
            self.codec.layout = "stereo"
            self.codec.sample_rate = 48000
            self.codec.time_base = fractions.Fraction(1, 48000)
            self.codec.options = {"application": "voip"}

        async def recv(self) -> av.Packet:
            while True:
                frame = await self.frames.recv()
                packets = self.codec.encode(frame)
                if packets:  # the encoder may hold the first frame back
                    packet = packets[0]
                    packet.pts = frame.pts
                    packet.time_base = fractions.Fraction(1, 48000)
                    return packet

    async def run() -> dict[str, float]:
        relay = MediaRelay()
        source = EncodedOnceTrack() if encode_once else SineTrack()
        pcs = []
        offers = await asyncio.to_thread(probes.call, "offers", n)
        answers = []
        for offer in offers:
            pc = RTCPeerConnection()
            pcs.append(pc)
            pc.addTrack(relay.subscribe(source))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            answers.append(pc.localDescription.sdp)
        await asyncio.to_thread(probes.call, "answers", answers)
        await asyncio.to_thread(probes.wait_all_receiving, n)
        await asyncio.sleep(SETTLE_S)
        # The sampler sleeps in a worker thread while the loop keeps serving.
        windows = await asyncio.to_thread(sample_windows, probes, n, SINKCAST_THREADS)
        for pc in pcs:
            await pc.close()
        await asyncio.to_thread(probes.call, "close")
        return summarize(windows)

    return asyncio.run(run())


# ---------------------------------------------------------------------------- main


def print_latency(probes: Probes, counts: list[int]) -> None:
    for listeners in counts:
        result = measure_latency(probes, listeners)
        missed = result["missed"]
        where = "the listener" if listeners == 1 else f"the last of {listeners} listeners"
        print(f"push->wire latency: push() to the first loud RTP packet to {where}, jitter_ms=0, 20 ms frames, "
              f"{len(result['listener']) + missed} bursts, {missed} not seen within 0.5 s (goal p99 <= 22 ms):")
        for label, lat in (("on the wire (kernel stamp on lo)", result["wire"]),
                           ("at the listener (after its receive work)", result["listener"])):
            if lat is None:
                print(f"  {label}: not measured (a packet socket needs CAP_NET_RAW)")
            elif lat:
                # A missed burst counts as infinitely late: it can only raise the percentiles.
                q = np.percentile(lat + [float("inf")] * missed, [50, 99])
                print(f"  {label}: p50 {q[0]:.1f} ms, p99 {q[1]:.1f} ms, max {max(lat):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,10,50,100,200")
    parser.add_argument("--aiortc-max", type=int, default=100, help="largest listener count to try with aiortc")
    parser.add_argument("--latency-only", action="store_true",
                        help="only push->wire latency, at 1 listener and at the largest count (100 at most)")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    probes = Probes()
    if args.latency_only:
        try:
            print_latency(probes, sorted({1, min(100, max(counts)), max(counts)}))
        finally:
            probes.close()
        return
    try:
        idle = idle_sinkcast_cpu()
        floor = sink_floor_ms_per_s()
        print(f"fan-out benchmark: 20 ms Opus frames, stereo, {WINDOWS} windows of {WINDOW_S:.0f} s per figure, "
              "listeners in another process")
        print(f"sinkcast with no listener (mixing + clock only): {idle:.2f} ms CPU per second")
        print(f"{'listeners':>9} | {'sinkcast ms/s':>13} {'/listener':>9} {'best':>6} {'marginal':>8} {'pkts/s':>6} "
              f"{'us/pkt':>6} | {'aiortc ms/s':>11} {'/listener':>9} {'marginal':>8} {'pkts/s':>6} {'us/pkt':>6} | "
              f"{'ratio':>5} {'best':>5}")
        first: dict[str, float] = {}
        threads_by_count: list[tuple[int, dict[str, float]]] = []
        aiortc_by_count: dict[int, float] = {}
        once_by_count: dict[int, dict[str, float]] = {}
        left_out: list[float] = []
        for i, n in enumerate(counts):
            # The servers take turns going first, so neither always runs on a machine
            # the other has just warmed (or loaded).
            with_aiortc = n <= args.aiortc_max
            a = None
            if with_aiortc and i % 2 == 1:
                a, once_by_count[n] = measure_aiortc(probes, n), measure_aiortc(probes, n, encode_once=True)
            s = measure_sinkcast(probes, n)
            if with_aiortc and i % 2 == 0:
                a, once_by_count[n] = measure_aiortc(probes, n), measure_aiortc(probes, n, encode_once=True)
            threads_by_count.append((n, s))
            # marginal: the cost of each listener beyond the first (the first also pays for mixing and encoding)
            first.setdefault("s", s["cpu_ms_per_s"])
            sm = (s["cpu_ms_per_s"] - first["s"]) / (n - 1) if n > 1 else float("nan")
            row = (f"{n:9d} | {s['cpu_ms_per_s']:13.1f} {s['cpu_ms_per_s'] / n:9.3f} "
                   f"{s['best_cpu_ms_per_s'] / n:6.3f} {sm:8.3f} "
                   f"{s['packets_per_listener_s']:6.1f} {s['us_per_packet']:6.1f} | ")
            if a:
                aiortc_by_count[n] = a["cpu_ms_per_s"]
                left_out.append(a["left_out_ms_per_s"])
                first.setdefault("a", a["cpu_ms_per_s"])
                am = (a["cpu_ms_per_s"] - first["a"]) / (n - 1) if n > 1 else float("nan")
                row += (f"{a['cpu_ms_per_s']:11.1f} {a['cpu_ms_per_s'] / n:9.3f} {am:8.3f} "
                        f"{a['packets_per_listener_s']:6.1f} {a['us_per_packet']:6.1f} | "
                        f"{a['us_per_packet'] / s['us_per_packet']:5.1f} "
                        f"{a['best_us_per_packet'] / s['best_us_per_packet']:5.1f}")
                if a["packets_per_listener_s"] < 47:
                    row += "  (aiortc saturated: fewer than 50 packets/s reached each listener)"
            else:
                row += f"{'-':>11} {'-':>9} {'-':>8} {'-':>6} {'-':>6} | {'-':>5} {'-':>5}"
            print(row, flush=True)
        if once_by_count:
            # The table's aiortc encodes once per listener, as it does when a MediaRelay hands out decoded
            # frames; much of the ratio is that encode. This one encodes once in all.
            print("aiortc relaying one stream encoded once (MediaRelay of av.Packets, which each sender only")
            print("packetizes), against sinkcast's figures above:")
            print(f"{'listeners':>9} | {'aiortc ms/s':>11} {'/listener':>9} {'pkts/s':>6} {'us/pkt':>6} | "
                  f"{'ratio':>5} {'best':>5}")
            for n, s in threads_by_count:
                if n in once_by_count:
                    o = once_by_count[n]
                    row = (f"{n:9d} | {o['cpu_ms_per_s']:11.1f} {o['cpu_ms_per_s'] / n:9.3f} "
                           f"{o['packets_per_listener_s']:6.1f} {o['us_per_packet']:6.1f} | "
                           f"{o['us_per_packet'] / s['us_per_packet']:5.1f} "
                           f"{o['best_us_per_packet'] / s['best_us_per_packet']:5.1f}")
                    if o["packets_per_listener_s"] < 47:
                        row += "  (aiortc saturated)"
                    print(row, flush=True)
        print("sinkcast's threads, median window (ms of CPU per second): the sink's clock thread, which mixes,")
        print("encodes and sends to every listener in turn, and libjuice's ICE thread, which polls every")
        print("listener's socket each time it wakes; and SCTP's timers, which sinkcast runs only while a data")
        print("channel exists (none here; usrsctp's own thread, every 10 ms, with a system libdatachannel):")
        for n, s in threads_by_count:
            print(f"  {n:4d} listeners: clock {s['clock_ms_per_s']:6.1f}, ICE {s['ice_ms_per_s']:6.1f}, "
                  f"SCTP timer {s['sctp_ms_per_s']:5.1f}")
        # How far below aiortc sinkcast could go at all: the costs no listener changes, encode, wake-up and
        # SCTP's timers (if any), are a floor; a server that sent for nothing would still pay them.
        print(f"sinkcast's floor, whatever the listeners: one encode per frame {floor['encode']:.2f} ms/s and one "
              f"wake-up {floor['wake']:.2f} ms/s (measured apart, {COMPLEXITY=}), plus SCTP's timers (above)")
        for n, s in threads_by_count:
            if n in aiortc_by_count:
                least = floor["encode"] + floor["wake"] + s["sctp_ms_per_s"]
                print(f"  {n:4d} listeners: 20x less than aiortc means at most {aiortc_by_count[n] / 20:6.2f} ms/s; "
                      f"the floor is {least:5.2f}, so no sinkcast could beat {aiortc_by_count[n] / least:5.1f}x "
                      "even if its sends cost nothing")
        if left_out:
            print(f"aiortc's figures leave out {min(left_out):.1f}-{max(left_out):.1f} ms/s of CPU spent by the threads "
                  "libdatachannel keeps in this process after sinkcast's runs (its pools)")
        print("(each figure is the median over the windows, column by column;")
        print(" ms/s = CPU ms per wall second of the server process = CPU ms per second of streaming;")
        print(" /listener = that / listeners; best = the same in the window with the least CPU per packet;")
        print(" marginal = (ms/s - ms/s at 1 listener) / (listeners - 1);")
        print(" us/pkt = server CPU microseconds per RTP packet delivered to a listener;")
        print(" ratio = aiortc us/pkt / sinkcast us/pkt, i.e. how many times more CPU aiortc spends per listener,")
        print("   from the median windows, and from each server's best window;")
        print(" pkts/s = RTP packets each listener received per second, 50 expected)")
        n = max(counts)
        plain, mux = measure_sinkcast(probes, n), measure_sinkcast(probes, n, udp_mux=True)
        print(f"sinkcast at {n} listeners, measured again back to back (median / best window): "
              f"{plain['cpu_ms_per_s'] / n:.3f} / {plain['best_cpu_ms_per_s'] / n:.3f} ms/s per listener with a "
              f"UDP port each, {mux['cpu_ms_per_s'] / n:.3f} / {mux['best_cpu_ms_per_s'] / n:.3f} with "
              f"ice_udp_mux=True (one port); libjuice's ICE thread {plain['ice_ms_per_s']:.1f} and "
              f"{mux['ice_ms_per_s']:.1f} ms/s")
        first_offer, later = OFFER_TO_ANSWER_MS[0], OFFER_TO_ANSWER_MS[1:]
        print(f"offer->answer (handle_incoming_webrtc_signaling_message to the answer callback): "
              f"median {statistics.median(later):.2f} ms, p90 {statistics.quantiles(later, n=10)[-1]:.2f}, "
              f"max {max(later):.2f} over {len(later)} offers; the process's first offer {first_offer:.2f} ms "
              "(it also starts libdatachannel: TLS libraries, thread pool)")
        print_latency(probes, sorted({1, min(100, n), n}))
    finally:
        probes.close()


if __name__ == "__main__":
    main()
