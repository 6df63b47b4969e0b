"""CPU cost of network inputs: the engine process's CPU per RTP L16 stream.

    python benchmarks/bench_inputs.py [--streams 10 50] [--seconds 10]

For each stream count, a sender process sends pre-built RTP L16 packets (48 kHz
stereo, 20 ms per packet, 50 packets/s per stream) at real-time pace to that
many inputs on 127.0.0.1, and the receiving process's CPU time (all threads,
CLOCK_PROCESS_CPUTIME_ID) is measured over a window. Receivers, each in its own
process:

  sinkcast  an engine with one stereo sink (20 ms Opus frames) and N RTP sources
            connected to it: receive, jitter buffer, decode, mix, encode
  idle      the same engine and sink with no inputs (subtracted from sinkcast)
  asyncio   the baseline: N plain asyncio UDP endpoints that only count packets

Printed per stream: CPU % of one core, and the ratio to the asyncio baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import struct
import subprocess
import sys
import time

PACKET_FRAMES = 960  # 20 ms at 48 kHz
CHANNELS = 2


def _sender(ports: list[int], seconds: float) -> None:
    payload_cycle = []
    for k in range(50):  # one second of a 1 kHz tone, 50 payloads
        samples = []
        for i in range(PACKET_FRAMES):
            v = int(8000 * math.sin(2 * math.pi * 1000 * (k * PACKET_FRAMES + i) / 48000))
            samples += [v, v]
        payload_cycle.append(struct.pack(f">{len(samples)}h", *samples))
    packets = [bytearray(12 + len(payload_cycle[0])) for _ in ports]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        body = payload_cycle[n % 50]
        for j, port in enumerate(ports):
            p = packets[j]
            struct.pack_into("!BBHII", p, 0, 0x80, 96, n & 0xFFFF, (n * PACKET_FRAMES) & 0xFFFFFFFF, 0x1000 + j)
            p[12:] = body
            s.sendto(p, ("127.0.0.1", port))
        n += 1
        delay = t0 + n * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _measure(warmup: float, seconds: float) -> tuple[float, float]:
    time.sleep(warmup)
    c0, w0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    return time.process_time() - c0, time.monotonic() - w0


def _receiver_sinkcast(streams: int, warmup: float, seconds: float) -> dict[str, float]:
    import sinkcast

    eng = sinkcast.AudioManager(realtime=True)
    eng.add_sink("out", channels=2, frame_ms=20)
    ports = []
    for i in range(streams):
        sid = f"rtp{i}"
        ports.append(eng.add_rtp_source(sid, port=0, encoding="L16", sample_rate=48000, channels=2,
                                        payload_type=96))
        eng.connect(sid, "out", gain=1.0 / max(1, streams))
    print(json.dumps({"ports": ports}), flush=True)

    def received() -> int:
        return sum(v["packets"] for v in eng.stats()["inputs"].values())

    time.sleep(warmup)
    p0 = received()
    cpu, wall = _measure(0.0, seconds)
    p1 = received()
    inputs = eng.stats()["inputs"]
    result = {"cpu": cpu, "wall": wall, "packets": p1 - p0,
              "lost": sum(v["lost"] for v in inputs.values()),
              "underruns": sum(r["underruns"] for r in eng.stats()["sinks"]["out"]["routes"].values())}
    eng.shutdown()
    return result


def _receiver_asyncio(streams: int, warmup: float, seconds: float) -> dict[str, float]:
    count = [0]

    class Counter(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            count[0] += 1

    async def main() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        transports = []
        for _ in range(streams):
            t, _p = await loop.create_datagram_endpoint(Counter, local_addr=("127.0.0.1", 0))
            t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            transports.append(t)
        print(json.dumps({"ports": [t.get_extra_info("sockname")[1] for t in transports]}), flush=True)
        await asyncio.sleep(warmup)
        c0, w0, p0 = time.process_time(), time.monotonic(), count[0]
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - c0, time.monotonic() - w0
        for t in transports:
            t.close()
        return {"cpu": cpu, "wall": wall, "packets": count[0] - p0, "lost": 0, "underruns": 0}

    return asyncio.run(main())


def _run(kind: str, streams: int, seconds: float, warmup: float = 1.5) -> dict[str, float]:
    env = dict(os.environ)
    recv = subprocess.Popen([sys.executable, __file__, "--receiver", kind, "--n", str(streams), "--seconds",
                             str(seconds), "--warmup", str(warmup)], stdout=subprocess.PIPE, text=True, env=env)
    assert recv.stdout is not None
    ports = json.loads(recv.stdout.readline())["ports"]
    sender = None
    if ports:
        sender = subprocess.Popen([sys.executable, __file__, "--sender", json.dumps(ports), "--seconds",
                                   str(seconds + warmup + 1.0)])
    result = json.loads(recv.stdout.readline())
    recv.wait(30)
    if sender:
        sender.wait(30)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--receiver", choices=["sinkcast", "asyncio"], help=argparse.SUPPRESS)
    ap.add_argument("--sender", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=float, default=1.5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.sender:
        _sender(json.loads(a.sender), a.seconds)
        return
    if a.receiver:
        fn = _receiver_sinkcast if a.receiver == "sinkcast" else _receiver_asyncio
        print(json.dumps(fn(a.n, a.warmup, a.seconds)), flush=True)
        return

    print(f"RTP L16 48 kHz stereo, 20 ms packets (50/s per stream), {a.seconds:.0f} s windows, "
          f"{os.cpu_count()} CPUs")
    idle = _run("sinkcast", 0, a.seconds)
    idle_pct = 100 * idle["cpu"] / idle["wall"]
    print(f"engine with one sink, no inputs: {idle_pct:.2f} % of a core (subtracted below)")
    print(f"{'streams':>7} {'engine %':>9} {'per stream %':>13} {'asyncio %':>10} {'asyncio/stream %':>17} "
          f"{'ratio':>6} {'received':>9} {'lost':>5}")
    print("  (% = CPU time / wall time of the receiving process; ratio = engine per stream / asyncio per stream;")
    print("   received = packets counted in the window / packets sent in it)")
    for n in a.streams:
        eng = _run("sinkcast", n, a.seconds)
        base = _run("asyncio", n, a.seconds)
        eng_pct = 100 * eng["cpu"] / eng["wall"]
        per = (eng_pct - idle_pct) / n
        base_pct = 100 * base["cpu"] / base["wall"]
        base_per = base_pct / n
        expected = n * 50 * eng["wall"]
        print(f"{n:>7} {eng_pct:>9.2f} {per:>13.3f} {base_pct:>10.2f} {base_per:>17.3f} "
              f"{per / base_per if base_per > 0 else float('nan'):>6.2f} "
              f"{eng['packets'] / (expected + 1e-9) * 100:>8.0f}% {int(eng['lost']):>5}")


if __name__ == "__main__":
    main()
