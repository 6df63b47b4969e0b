"""Child: the signaling callback is still running Python code when the program ends.

The callback shuts its own engine down (allowed; it runs on the dispatcher
thread, which that shutdown cannot join) and goes on working, while the main
thread ends the program. CPython ends the dispatcher thread when it asks for
the GIL back during finalization. Unwinding it released a GIL it did not hold:
"Fatal Python error: PyGILState_Release" in every run. argv[1]: how long the
main thread waits after the shutdown, in 10 ms steps.
"""

from __future__ import annotations

import sys
import threading
import time

import sinkcast

shut_down = threading.Event()


def on_message(target: str, type: str, message: str) -> None:
    if type != "offer":
        return
    engine.shutdown()
    shut_down.set()
    busy_until = time.monotonic() + 0.3
    while time.monotonic() < busy_until:  # cleanup, logging: any Python code
        sum(range(1000))


engine = sinkcast.AudioManager(bind_address="127.0.0.1")
engine.add_sink("s")
engine.set_python_webrtc_signaling_callback(on_message)
engine.handle_incoming_webrtc_signaling_message("s/listener", "request_offer", "")
shut_down.wait(30)
time.sleep(0.01 * int(sys.argv[1]))
print(f"EXITING {time.monotonic()}", flush=True)
