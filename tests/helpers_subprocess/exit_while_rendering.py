"""Child: the program ends while a daemon thread is inside render() (GIL released).

The thread renders 10 s of audio per call on a manual clock, so the main
thread's exit finds it in the middle of one. It used to abort the process
("terminate called without an active exception"): CPython ended the thread
with pthread_exit() when it asked for the GIL back during finalization, and
the unwinding met a noexcept destructor. The thread stops at the engine's
EngineClosedError, as an application's would; the exit must be clean.
"""

from __future__ import annotations

import threading
import time

import sinkcast


def main() -> None:
    eng = sinkcast.AudioManager(realtime=False)
    eng.add_sink("k", channels=2)
    eng.add_tone_source("t", frequency_hz=440.0, amplitude=0.5)
    eng.connect("t", "k")
    tap = eng.open_tap("k", seconds=30.0)
    started = threading.Event()

    def render_forever() -> None:
        try:
            while True:
                started.set()
                eng.render("k", 480_000)
                tap.read()
        except sinkcast.EngineClosedError:
            pass  # the engine's exit hook shut it down

    threading.Thread(target=render_forever, daemon=True).start()
    started.wait()
    time.sleep(0.2)
    print(f"EXITING {time.monotonic()}", flush=True)


if __name__ == "__main__":
    main()
