"""Child: the process-wide default engine, its Python object long gone, is shut down at exit.

    python default_instance_exit.py

AudioManager.get_instance() hands out an engine that C++ owns: once the
caller's Python object is dropped, nothing on the Python side refers to it.
The engine's atexit hook must still shut it down. An atexit function
registered before sinkcast is imported runs after that hook, and reports
whether the engine is closed by then.
"""

from __future__ import annotations

import atexit
import gc


def after_sinkcast_exit_hook() -> None:
    import sinkcast

    # A closed default is replaced by a new, empty one; the old one still open
    # would still list its sink.
    sinks = sinkcast.AudioManager.get_instance().sinks()
    print(f"AFTER-HOOK sinks={sinks}", flush=True)
    sinkcast.AudioManager.get_instance().shutdown()  # the new one, made just now


atexit.register(after_sinkcast_exit_hook)

import sinkcast  # noqa: E402  (after the registration above: its hook runs before ours)

sinkcast.AudioManager.get_instance().add_sink("kitchen")  # the Python object is dropped at once
sinkcast.AudioManager.get_instance().add_tone_source("tone")
sinkcast.AudioManager.get_instance().connect("tone", "kitchen")
gc.collect()
print(f"BEFORE-EXIT sinks={sinkcast.AudioManager.get_instance().sinks()}", flush=True)
