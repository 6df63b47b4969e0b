"""Child: open listener sessions until the process runs out of file descriptors.

    python out_of_file_descriptors.py ROUNDS

Each listener's ICE agent needs a UDP socket (without ice_udp_mux). The child
lowers its own RLIMIT_NOFILE to a few descriptors above what it holds, then
opens sessions, by request_offer and by offer, until the engine refuses one.
Still at the limit, it then tries to replace the last session it opened, on
the same target, which the engine should refuse too. It does that ROUNDS times
(closing every session in between), raises the limit again and opens one more
session. It prints one JSON object: the errors, the sessions the engine
listed, every message the callback got for a target whose opening call failed
(there must be none: such a session never existed for the application, though
libdatachannel may already have made its description on another thread when
the call failed), and what became of the sessions a refused call would have
replaced (they must carry on: listed, and no bye).
"""

from __future__ import annotations

import json
import os
import resource
import sys

import sinkcast
from common import Collector, recorded_offers

HEADROOM = 8


def open_one(eng: sinkcast.AudioManager, kind: str, target: str) -> None:
    if kind == "request_offer":
        eng.handle_incoming_webrtc_signaling_message(target, "request_offer", "")
    else:
        eng.handle_incoming_webrtc_signaling_message(target, "offer", OFFER)


def open_until_refused(eng: sinkcast.AudioManager, kind: str, prefix: str) -> tuple[list[str], str, str]:
    opened: list[str] = []
    for i in range(10_000):
        target = f"s/{prefix}{i}"
        try:
            open_one(eng, kind, target)
        except sinkcast.SignalingError as e:
            return opened, target, f"{type(e).__name__}: {e}"
        opened.append(target)
    raise AssertionError(f"{kind}: no session was refused with RLIMIT_NOFILE at {resource.getrlimit(resource.RLIMIT_NOFILE)}")


OFFER = recorded_offers()["offer_chromium_recvonly_audio"]


def main() -> None:
    rounds = int(sys.argv[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    eng.add_sink("s")
    sig = Collector(eng)
    errors: list[str] = []
    failed: list[str] = []
    listed_as_opened: list[bool] = []
    kept: list[str] = []  # sessions that a refused call would have replaced
    kept_listed: list[bool] = []
    try:
        for r in range(rounds):
            for kind in ("request_offer", "offer"):
                resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + HEADROOM, hard))
                opened, target, error = open_until_refused(eng, kind, f"{kind}{r}-")
                try:
                    open_one(eng, kind, opened[-1])  # replace one, still at the limit
                except sinkcast.LocalResourceError:
                    kept.append(opened[-1])
                    kept_listed.append(opened[-1] in eng.listeners())
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
                errors.append(error)
                failed.append(target)
                listed_as_opened.append(sorted(eng.listeners()) == sorted(opened))  # not the refused one
                for t in opened:
                    eng.handle_incoming_webrtc_signaling_message(t, "bye", "")
        eng.handle_incoming_webrtc_signaling_message("s/after", "request_offer", "")
        after = sorted(eng.listeners())
    finally:
        eng.shutdown()  # delivers (or drops) everything queued: the log below is complete
    leaked = [(t, ty) for t, ty, _ in sig.log if t in failed]
    kept_byes = [t for t, ty, _ in sig.log if t in kept and ty == "bye"]
    print(json.dumps({"errors": errors, "failed": failed, "listed_as_opened": listed_as_opened, "after": after,
                      "leaked": leaked, "kept": kept, "kept_listed": kept_listed, "kept_byes": kept_byes}))


if __name__ == "__main__":
    main()
