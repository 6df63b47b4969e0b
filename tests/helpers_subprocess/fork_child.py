"""Child: fork() while an engine runs, and leave the forked child by a normal exit.

    python fork_child.py streaming   an engine streams to a probe when the process forks
    python fork_child.py mixing      an engine mixes, but no listener was ever opened
    python fork_child.py callback N  the signaling callback forks; the child returns from it
                                     (N = 0) or raises SystemExit(N)

fork() copies only the calling thread, so an engine made before it has no
threads in the child. The forked child checks what it may and may not do,
prints "CHILD <json>", and leaves with sys.exit(0), which runs the engine's
exit hook and every finalizer. The parent then prints "PARENT <json>": how the
child ended, and whether its own engine and listener carried on.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import threading
import time
import warnings

import numpy as np

import sinkcast
from common import Collector, connect_probe, wait_until

# Python 3.12+ warns that forking a process with threads is risky; that risk is what this tests.
warnings.filterwarnings("ignore", message=".*multi-threaded.*fork", category=DeprecationWarning)


def refusal(call: object) -> str:
    """The message of the EngineClosedError the call raises, or what happened instead."""
    try:
        call()  # type: ignore[operator]
    except sinkcast.EngineClosedError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - reported, and the test fails on it
        return f"raised {type(e).__name__} instead: {e}"
    return "no error"


def in_child_after_streaming(eng: sinkcast.AudioManager, tap: sinkcast.PcmTap) -> dict[str, object]:
    res: dict[str, object] = {"closed": eng.closed, "tap_closed": tap.closed, "tap_read": refusal(tap.read)}
    res["refusals"] = {
        "add_sink": refusal(lambda: eng.add_sink("x")),
        "push": refusal(lambda: eng.push("mic", np.zeros(480, np.float32))),
        "stats": refusal(eng.stats),
        "listeners": refusal(eng.listeners),
        "request_offer": refusal(lambda: eng.handle_incoming_webrtc_signaling_message("s/y", "request_offer", "")),
        "set_callback": refusal(lambda: eng.set_python_webrtc_signaling_callback(print)),
    }
    # What cleanup code does: both return, neither waits for the parent's threads.
    eng.set_python_webrtc_signaling_callback(None)
    eng.shutdown()
    res["shut_down"] = True

    # A new engine mixes: its threads are the child's own.
    m = sinkcast.AudioManager(realtime=False)
    m.add_sink("k", channels=1)
    m.add_tone_source("t", frequency_hz=440.0, amplitude=0.5)
    m.connect("t", "k")
    res["rendered_peak"] = float(np.abs(m.render("k", 4800)).max())
    m.shutdown()

    # But it cannot open a listener: libdatachannel's threads are the parent's.
    r = sinkcast.AudioManager(bind_address="127.0.0.1")
    r.add_sink("k")
    try:
        r.handle_incoming_webrtc_signaling_message("k", "request_offer", "")
        res["new_engine_listener"] = "opened"
    except sinkcast.LocalResourceError as e:
        res["new_engine_listener"] = str(e)
    res["new_engine_listeners"] = r.listeners()
    return res  # r is left to the exit hook


def in_child_after_mixing() -> dict[str, object]:
    # WebRTC never started in the parent, so the child may start it.
    r = sinkcast.AudioManager(bind_address="127.0.0.1")
    r.add_sink("k")
    sig = Collector(r)
    r.handle_incoming_webrtc_signaling_message("k", "request_offer", "")
    offer = sig.wait_for("k", "offer")
    res: dict[str, object] = {"offer_has_audio": "m=audio" in offer}
    r.shutdown()
    return res


def fork_in_callback(status: int) -> int:
    """The callback forks at its first message. The child's one thread is then
    the engine's dispatcher thread: when the callback returns (or raises
    SystemExit), the child ends, as a program whose main code is done."""
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s")
    forked: list[int] = []

    def callback(target: str, type: str, message: str) -> None:
        if forked:
            return
        pid = os.fork()
        forked.append(pid)
        if pid == 0:
            print("CHILD " + json.dumps({"closed": eng.closed}), flush=True)
            if status:
                sys.exit(status)

    eng.set_python_webrtc_signaling_callback(callback)
    eng.handle_incoming_webrtc_signaling_message("s/x", "request_offer", "")
    wait_until(lambda: bool(forked), timeout=10)
    _, status_seen = os.waitpid(forked[0], 0)
    res = {"child_exit_code": os.waitstatus_to_exitcode(status_seen), "listeners": eng.listeners()}
    eng.shutdown()
    print("PARENT " + json.dumps(res), flush=True)
    return 0


def main() -> int:
    mode = sys.argv[1]
    if mode == "callback":
        return fork_in_callback(int(sys.argv[2]))
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s", channels=2, frame_ms=10)
    eng.add_tone_source("a440", frequency_hz=440.0, amplitude=0.3)
    eng.add_source("mic", channels=1)
    eng.connect("a440", "s")
    sig = Collector(eng)
    probe = connect_probe(eng, sig, "s/p") if mode == "streaming" else None
    tap = eng.open_tap("s")
    # A thread of the parent using the engine when the process forks: in the
    # child its frame (and the engine it holds) is never released.
    stop = threading.Event()
    poller = threading.Thread(target=lambda: [eng.stats() for _ in iter(lambda: stop.wait(0.001), True)], daemon=True)
    poller.start()

    pid = os.fork()
    if pid == 0:
        faulthandler.dump_traceback_later(30, exit=True)  # a hang shows its stacks, and ends
        res = in_child_after_streaming(eng, tap) if mode == "streaming" else in_child_after_mixing()
        print("CHILD " + json.dumps(res), flush=True)
        faulthandler.cancel_dump_traceback_later()
        sys.exit(0)

    _, status = os.waitpid(pid, 0)
    stop.set()
    poller.join()
    res: dict[str, object] = {"child_exit_code": os.waitstatus_to_exitcode(status)}
    if probe is not None:
        # The parent's listener still streams, and nothing in the child closed its session.
        before = probe.packets
        wait_until(lambda: probe.packets >= before + 20, timeout=10)
        res["probe_connected"] = probe.connected
        res["listeners"] = eng.listeners()
    eng.shutdown()
    if probe is not None:
        probe.close()
    print("PARENT " + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
