"""Child: the process-wide default engine, its Python object long gone, is shut down at exit.

    python default_instance_exit.py

AudioManager.get_instance() hands out an engine that C++ owns: once the
caller's Python object is dropped, nothing on the Python side refers to it.
The engine's atexit hook must still shut it down. An atexit function
registered before sinkcast is imported runs after that hook, and reports
whether the engine is closed by then, and what making a new engine does
there (it is refused: nothing would shut it down before the interpreter
finalizes under its threads).
"""

from __future__ import annotations

import atexit
import gc


def after_sinkcast_exit_hook() -> None:
    import sinkcast

    engine = sinkcast.AudioManager.get_instance()
    print(f"AFTER-HOOK closed={engine.closed}", flush=True)
    for make in (sinkcast.AudioManager, lambda: sinkcast.AudioManager(realtime=False)):
        try:
            make()
            print("NEW-ENGINE made", flush=True)
        except sinkcast.EngineClosedError as e:
            print(f"NEW-ENGINE refused: {e}", flush=True)


atexit.register(after_sinkcast_exit_hook)

import sinkcast  # noqa: E402  (after the registration above: its hook runs before ours)

sinkcast.AudioManager.get_instance().add_sink("kitchen")  # the Python object is dropped at once
sinkcast.AudioManager.get_instance().add_tone_source("tone")
sinkcast.AudioManager.get_instance().connect("tone", "kitchen")
gc.collect()
print(f"BEFORE-EXIT sinks={sinkcast.AudioManager.get_instance().sinks()}", flush=True)
