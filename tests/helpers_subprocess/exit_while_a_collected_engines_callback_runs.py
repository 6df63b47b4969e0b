"""Child: the program ends while the callback of an engine the cycle collector
shut down is still running.

That shutdown does not wait for a callback already running (the collecting
thread may hold a lock it needs): the dispatcher thread is let go and finishes
it alone, holding the engine alive. The exit hook waits for it (10 s at most),
so nanobind's leak report never sees the engine. argv[1]: "finishes" (the
callback takes 0.3 s, then prints CALLBACK DONE) or "never" (it waits for a
lock the main thread holds for good: the exit goes on after the wait, quietly).
"""

from __future__ import annotations

import gc
import sys
import threading
import time

import sinkcast

MODE = sys.argv[1]
lock = threading.Lock()
started = threading.Event()


class Owner:
    """An engine whose callback is one of its own methods: a cycle."""

    def __init__(self) -> None:
        self.engine = sinkcast.AudioManager(bind_address="127.0.0.1")
        self.engine.add_sink("s")
        self.engine.set_python_webrtc_signaling_callback(self.on_message)

    def on_message(self, target: str, type: str, message: str) -> None:
        started.set()
        with lock:
            pass
        if MODE == "finishes":
            time.sleep(0.3)
            print("CALLBACK DONE", flush=True)


class Stall:
    """Finalized before the engine (made first): starts a delivery, which then waits for the lock."""

    owner: Owner

    def __del__(self) -> None:
        self.owner.engine.handle_incoming_webrtc_signaling_message("s/l", "request_offer", "")
        started.wait(10)


stall = Stall()
owner = Owner()
stall.owner, owner.stall = owner, stall  # type: ignore[attr-defined]
del stall, owner
lock.acquire()
gc.collect()
print("COLLECTED" if started.is_set() else "NO CALLBACK STARTED", flush=True)
if MODE == "finishes":
    lock.release()
print(f"EXITING {time.monotonic()}", flush=True)
