"""Child: stream to a probe until SIGINT, handle KeyboardInterrupt, exit 0.

    python sigint_streaming.py MODE

Prints "STREAMING" once the probe receives audio; the parent then sends
SIGINT. The KeyboardInterrupt lands wherever the main thread is:

  sleep   in time.sleep() between checks of the probe's packet count
  busy    in a tight loop of engine calls (stats(), offers and byes, push())
  wait    in a blocking engine call that releases the GIL (PcmTap.read in a loop)

main() catches KeyboardInterrupt, checks the probe was still receiving,
shuts the engine down and returns 0. Prints "INTERRUPTED packets=<n>".
"""

from __future__ import annotations

import signal
import sys
import time

import numpy as np

import sinkcast
from common import Collector, connect_probe, probe_offer


def main() -> int:
    mode = sys.argv[1]
    # As in a terminal, whatever this child inherited: started from a
    # background job, SIGINT comes ignored and Python then installs no handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s", channels=2)
    eng.add_tone_source("t", frequency_hz=440.0)
    eng.connect("t", "s")
    eng.add_source("mic", sample_rate=48000, channels=2)
    eng.connect("mic", "s")
    sig = Collector(eng)
    probe = connect_probe(eng, sig, "s/listener")
    offer = probe_offer()
    tap = eng.open_tap("s", seconds=1.0)
    block = np.zeros((480, 2), np.float32)
    print("STREAMING", flush=True)
    try:
        i = 0
        while True:
            if mode == "sleep":
                time.sleep(0.05)
            elif mode == "busy":
                eng.stats()
                eng.push("mic", block)
                eng.handle_incoming_webrtc_signaling_message(f"s/b{i % 4}", "offer", offer)
                eng.handle_incoming_webrtc_signaling_message(f"s/b{(i + 2) % 4}", "bye", "")
            elif mode == "wait":
                tap.read()
                time.sleep(0.001)
            else:
                raise SystemExit(f"unknown mode {mode}")
            i += 1
    except KeyboardInterrupt:
        packets = probe.packets
        time.sleep(0.2)
        still = probe.packets > packets  # the engine kept streaming through the signal
        print(f"INTERRUPTED packets={probe.packets} still_streaming={still}", flush=True)
        probe.close()
        eng.shutdown()
        return 0 if still else 4


if __name__ == "__main__":
    sys.exit(main())
