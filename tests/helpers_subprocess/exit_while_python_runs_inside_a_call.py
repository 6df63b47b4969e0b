"""Child: the program ends while a daemon thread runs Python code from inside
one of sinkcast's calls.

set_python_webrtc_signaling_callback() asks inspect (Python code) whether the
callback is an async function. CPython before 3.14 ends a daemon thread that
waits for the GIL while the interpreter finalizes by unwinding it with
pthread_exit(), and that unwinding came out through the binding. nanobind
handed it to the exception translators as a null exception, and the process
died of SIGSEGV in about one exit in seven. argv[1]: seconds to run before the
program ends (the tests vary it so the end falls at different points).
"""

from __future__ import annotations

import sys
import threading
import time

import sinkcast


def on_message(target: str, type: str, message: str) -> None:
    pass


def set_callbacks(engine: sinkcast.AudioManager, started: threading.Event) -> None:
    while True:
        try:
            engine.set_python_webrtc_signaling_callback(on_message)
        except sinkcast.EngineClosedError:
            pass  # the exit hook shut the engine down; the calls go on
        started.set()


def main() -> None:
    engine = sinkcast.AudioManager(bind_address="127.0.0.1")
    started = threading.Event()
    threading.Thread(target=set_callbacks, args=(engine, started), daemon=True).start()
    started.wait(30)
    time.sleep(float(sys.argv[1]))
    print(f"EXITING {time.monotonic()}", flush=True)


if __name__ == "__main__":
    main()
