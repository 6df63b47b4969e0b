"""Child: the program ends while a daemon thread pushes an array whose
__dlpack__ is Python code (as a torch tensor's is).

nanobind ran __dlpack__ inside a noexcept conversion; CPython ends a daemon
thread there during finalization by unwinding it, and the process aborted
(17 of 20 runs). argv[1]: how long the program runs, in 10 ms steps.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import numpy as np

import sinkcast


class PythonDLPack:
    """Offers its samples only through a __dlpack__ written in Python, which does some work first."""

    def __init__(self) -> None:
        self.samples = np.zeros((480, 1), np.float32)

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        sum(range(2000))
        return self.samples.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.samples.__dlpack_device__()  # type: ignore[return-value]


def push_forever(engine: sinkcast.AudioManager, started: threading.Event) -> None:
    samples = PythonDLPack()
    while True:
        try:
            engine.push("mic", samples)
        except sinkcast.EngineClosedError:
            pass  # the exit hook shut the engine down; the calls go on
        started.set()


def main() -> None:
    engine = sinkcast.AudioManager(realtime=False)
    engine.add_source("mic", sample_rate=48000, channels=1)
    started = threading.Event()
    threading.Thread(target=push_forever, args=(engine, started), daemon=True).start()
    started.wait(30)
    time.sleep(0.02 + 0.01 * int(sys.argv[1]))
    print(f"EXITING {time.monotonic()}", flush=True)


if __name__ == "__main__":
    main()
