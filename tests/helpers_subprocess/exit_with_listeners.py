"""Child: leave the interpreter while listeners are connected and callbacks are in flight.

    python exit_with_listeners.py VARIANT

Sets up a real-time engine with a tone, two probes connected and receiving
audio, a signaling callback that sleeps (so deliveries are queued and one is
running when the interpreter exits), then opens more sessions and returns
from main() without calling shutdown(): the engine's atexit hook has to stop
everything. The variant adds one more hazard:

  0  nothing else
  1  a daemon thread keeps pushing PCM into a source when the interpreter exits
  2  the callback calls back into the engine (stats(), listeners()) while in flight
  3  a daemon thread keeps sending signaling messages when the interpreter exits
  4  the engine and the probes are dropped in a reference cycle (gc at exit)
  5  the engine is the process-wide default, AudioManager.get_instance()
  6  a daemon thread holds the only reference and drops it as the interpreter
     exits: the engine is being deallocated, its shutdown under way with the
     GIL released, when the engine's atexit hook runs

Prints "EXITING <monotonic>" right before main() returns; the parent times
the exit from there.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time

import numpy as np

import sinkcast
from common import Collector, connect_probe, probe_offer


class SlowCollector(Collector):
    """Sleeps in every delivery; optionally calls back into the engine."""

    def __init__(self, eng: sinkcast.AudioManager, reenter: bool) -> None:
        super().__init__(None, delay_s=0.03)
        self.eng = eng  # a reference cycle through the engine's native callback slot
        self.reenter = reenter

    def __call__(self, target: str, type: str, message: str) -> None:
        if self.reenter:
            try:
                self.eng.stats()
                self.eng.listeners()
            except sinkcast.EngineClosedError:
                pass  # shutting down: allowed, nothing else is
        super().__call__(target, type, message)


def main() -> int:
    variant = int(sys.argv[1])
    if variant == 5:
        eng = sinkcast.AudioManager.get_instance()  # real time, ICE on 127.0.0.1
    else:
        eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s", channels=2, frame_ms=20)
    eng.add_tone_source("t", frequency_hz=440.0, amplitude=0.3)
    eng.connect("t", "s")
    eng.add_source("mic", sample_rate=44100, channels=1)
    eng.connect("mic", "s", gain=0.5)

    fast = Collector(eng)
    probes = [connect_probe(eng, fast, f"s/p{i}") for i in range(2)]
    before = [p.packets for p in probes]
    time.sleep(0.3)
    if not all(p.packets > b for p, b in zip(probes, before)):
        print("probes are not receiving", file=sys.stderr)
        return 3

    slow = SlowCollector(eng, reenter=(variant == 2))
    eng.set_python_webrtc_signaling_callback(slow)
    offer = probe_offer()
    for i in range(6):  # each yields an answer and candidates: a queue of slow deliveries
        eng.handle_incoming_webrtc_signaling_message(f"s/q{i}", "offer", offer)
    with slow.cv:
        slow.cv.wait_for(lambda: len(slow.log) >= 1, 5.0)  # a delivery has run; more are queued

    if variant == 1:
        block = (0.1 * np.sin(np.arange(441) * 2 * np.pi * 1000 / 44100)).astype(np.float32)

        def pusher() -> None:
            while True:
                try:
                    eng.push("mic", block)
                except sinkcast.EngineClosedError:
                    return  # the atexit shutdown ran: the documented end of a pusher
                time.sleep(0.005)

        threading.Thread(target=pusher, daemon=True).start()
    elif variant == 3:

        def signaler() -> None:
            i = 0
            while True:
                try:
                    eng.handle_incoming_webrtc_signaling_message(f"s/d{i % 3}", "offer", offer)
                    eng.handle_incoming_webrtc_signaling_message(f"s/d{(i + 1) % 3}", "bye", "")
                except sinkcast.SignalingError:
                    pass
                except sinkcast.EngineClosedError:
                    return
                i += 1
                # Paced: every offer queues three 30 ms deliveries, and shutdown drains the queue.
                time.sleep(0.02)

        threading.Thread(target=signaler, daemon=True).start()
    elif variant == 4:
        holder: dict[str, object] = {"eng": eng, "probes": probes, "slow": slow}
        holder["self"] = holder  # only gc can free this
        del holder
    elif variant == 6:
        drop = threading.Event()
        box = [eng]

        def dropper() -> None:
            drop.wait()
            box.clear()  # the last reference: deallocation, and its shutdown, start here

        threading.Thread(target=dropper, daemon=True).start()

        def at_exit() -> None:  # registered after sinkcast's hook, so it runs first
            drop.set()
            time.sleep(0.1)  # the dropper's shutdown is under way when the hook runs

        atexit.register(at_exit)
        slow.eng = None  # the callback keeps no reference either
        del eng
        print(f"EXITING {time.monotonic():.6f}", flush=True)
        globals()["_keep"] = (probes, slow)
        return 0

    time.sleep(0.05)
    print(f"EXITING {time.monotonic():.6f}", flush=True)
    # Module-level references stay alive until finalization on purpose.
    globals()["_keep"] = (eng, probes, slow)
    return 0


if __name__ == "__main__":
    sys.exit(main())
