"""Child: the program ends while a daemon thread makes and drops engines.

Each engine has a callback that refers back to it (a bound method: a cycle)
and a listener session. argv[1] says how each one goes:
  shutdown  the thread calls engine.shutdown() itself
  collect   the thread leaves it to the cycle collector (gc.collect())
  allocate  the collector runs only when the thread's allocations trigger it
Setting the callback and shutting down both release the GIL; the thread asked
for it back as the program ended, was unwound by CPython, and the process
aborted ("terminate called without an active exception") in 20 of 20 runs of
each mode.
"""

from __future__ import annotations

import gc
import sys
import threading
import time

import sinkcast


class Owner:
    def __init__(self) -> None:
        self.engine = sinkcast.AudioManager(bind_address="127.0.0.1")
        self.engine.add_sink("s")
        self.engine.set_python_webrtc_signaling_callback(self.on_message)
        self.engine.handle_incoming_webrtc_signaling_message("s/l", "request_offer", "")

    def on_message(self, target: str, type: str, message: str) -> None:
        pass


def churn(mode: str, started: threading.Event) -> None:
    while True:
        try:
            owner = Owner()
        except sinkcast.EngineClosedError:
            continue  # the exit hook shut it down under us
        if mode == "shutdown":
            owner.engine.shutdown()
        del owner
        started.set()
        if mode == "collect":
            gc.collect()
        elif mode == "allocate":
            for _ in range(3):
                [{} for _ in range(300)]


def main() -> None:
    mode = sys.argv[1]
    started = threading.Event()
    threading.Thread(target=churn, args=(mode, started), daemon=True).start()
    started.wait(30)
    time.sleep(0.3)
    print(f"EXITING {time.monotonic()}", flush=True)


if __name__ == "__main__":
    main()
