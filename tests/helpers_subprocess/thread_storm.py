"""Child: a thread storm against one engine, under a watchdog.

    python thread_storm.py SECONDS SEED

8 "storm" threads call handle_incoming_webrtc_signaling_message with valid
and invalid messages to random targets, and stats()/listeners(), while 20
listener slots churn (offer, maybe a candidate, bye; every 4th cycle of a
churn thread is a real connection from a probe; on the 10 slots the storm does not
aim at, every one of them must receive audio). One more
thread removes and re-adds a sink that has listeners. The signaling callback
sleeps now and then and calls back into the engine.

faulthandler.dump_traceback_later() kills the process with every thread's
stack if it is still running 60 s after start (the parent's timeout is the
second line of defence). Only SignalingError and UnknownSinkError may come
out of the engine calls (and DuplicateIdError from re-adding the sink); any
other exception is counted as a failure.

Prints one JSON line of figures at the end and exits 0 on success, 1 on a
failed check.
"""

from __future__ import annotations

import faulthandler
import json
import random
import sys
import threading
import time
from collections import Counter

import sinkcast
from common import Collector, probe_offer, recorded_offers, wait_until
from sinkcast import _sinkcast as native

WATCHDOG_S = 60.0
SLOTS = 20
STORMED_SLOTS = 10  # slots 0-9 are also storm targets; 10-19 only churn, so their real connections must work
STORM_THREADS = 8
CHURN_THREADS = 4
REAL_EVERY = 4  # every 4th cycle of a churn thread is a real connection
MIN_PROTECTED_REAL = 3


def main() -> int:
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    seconds = float(sys.argv[1])
    seed = int(sys.argv[2])

    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    for sink in ("a", "b"):
        eng.add_sink(sink, channels=2)
    eng.add_tone_source("t", frequency_hz=440.0)
    eng.connect("t", "a")
    eng.connect("t", "b")

    lock = threading.Lock()
    counts: Counter[str] = Counter()
    failures: list[str] = []
    bad_targets: list[str] = []
    stop = threading.Event()

    def fail(what: str) -> None:
        with lock:
            if len(failures) < 20:
                failures.append(what)

    def count(key: str, n: int = 1) -> None:
        with lock:
            counts[key] += n

    # ---- the callback: slow sometimes, re-entrant sometimes, checks every target
    sig = Collector()
    rnd_cb = random.Random(seed)

    def callback(target: str, type: str, message: str) -> None:
        sink, _, listener = target.partition("/")
        if sink not in ("a", "b", "tmp") or (target.count("/") and not listener):
            with lock:
                bad_targets.append(target)
        r = rnd_cb.random()
        if r < 0.02:
            time.sleep(0.005)
        elif r < 0.04:
            try:
                eng.stats()
            except sinkcast.EngineClosedError:
                pass
        sig(target, type, message)
        count("callbacks")

    eng.set_python_webrtc_signaling_callback(callback)

    offers = [probe_offer() for _ in range(3)] + list(recorded_offers().values())
    candidate = '{"candidate":"candidate:1 1 UDP 2122260223 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0}'
    garbage = ["", "v=0\r\n", "hello", "\x00\x01", "{}", "x" * 70000, '{"candidate": 5}', "candidate:bad"]

    # ---- churn: 20 listener slots
    def churn(worker: int) -> None:
        rnd = random.Random(seed * 100 + worker)
        slots = [f"{'ab'[s % 2]}/slot{s}" for s in range(worker, SLOTS, CHURN_THREADS)]
        cycle = 0
        while not stop.is_set():
            for target in slots:
                if stop.is_set():
                    return
                cycle += 1
                try:
                    if cycle % REAL_EVERY == 0:
                        # A target of its own: late messages of the slot's previous session must not
                        # be mistaken for this one's answer (a harness race, not an engine one).
                        protected = int(target.rsplit("slot", 1)[1]) >= STORMED_SLOTS
                        real_cycle(target if not protected else f"{target}-r{cycle}", protected)
                    else:
                        eng.handle_incoming_webrtc_signaling_message(target, "offer", rnd.choice(offers))
                        count("churn_offers")
                        if rnd.random() < 0.5:
                            eng.handle_incoming_webrtc_signaling_message(target, "candidate", candidate)
                        time.sleep(rnd.random() * 0.01)
                        eng.handle_incoming_webrtc_signaling_message(target, "bye", "")
                        count("churn_byes")
                except (sinkcast.SignalingError, sinkcast.UnknownSinkError) as e:
                    # the storm may have closed or replaced the slot's session, or removed its sink
                    count(f"churn_{type(e).__name__}")
                except sinkcast.EngineClosedError:
                    return
                except Exception as e:  # noqa: BLE001 - reported
                    fail(f"churn {target}: {type(e).__name__}: {e}")

    def real_cycle(target: str, protected: bool) -> None:
        probe = native._ReceiveProbe("127.0.0.1")
        try:
            sig.forget(target)
            eng.handle_incoming_webrtc_signaling_message(target, "offer", probe.create_offer(5.0))
            try:
                answer = sig.full_answer(target, 10.0)
            except (TimeoutError, LookupError):
                count("real_no_answer")  # the storm replaced or closed it first
                if protected:
                    fail(f"{target} (not a storm target) got no answer")
                return
            probe.accept_answer(answer)
            deadline = time.monotonic() + 15.0  # ICE + DTLS while 13 threads share the GIL
            while probe.packets == 0 and time.monotonic() < deadline and not stop.is_set():
                time.sleep(0.01)
            if probe.packets == 0 and stop.is_set():
                count("real_cut_short")  # the storm ended while this one was connecting
                return
            outcome = "connected" if probe.packets else "not_connected"
            count(f"real_{outcome}_{'protected' if protected else 'stormed'}")
            eng.handle_incoming_webrtc_signaling_message(target, "bye", "")
        finally:
            probe.close()

    # ---- the storm: 8 threads of random messages and stats()
    targets = (
        [f"{'ab'[s % 2]}/slot{s}" for s in range(STORMED_SLOTS)]
        + ["a", "b", "a/x", "b/y", "tmp", "tmp/z", "nope", "nope/x", "", "a/", "/x", "a/" + "x" * 300, "a/\x01"]
    )
    types = ["offer", "answer", "candidate", "bye", "request_offer", "greeting", ""]

    def storm(worker: int) -> None:
        rnd = random.Random(seed * 1000 + worker)
        while not stop.is_set():
            r = rnd.random()
            try:
                if r < 0.1:
                    eng.stats()
                    count("stats")
                elif r < 0.15:
                    eng.listeners()
                    count("listeners")
                else:
                    target = rnd.choice(targets)
                    type = rnd.choice(types)
                    pick = rnd.random()
                    if pick < 0.4:
                        message = rnd.choice(offers)
                    elif pick < 0.6:
                        message = candidate
                    else:
                        message = rnd.choice(garbage)
                    eng.handle_incoming_webrtc_signaling_message(target, type, message)
                    count("storm_ok")
            except sinkcast.SignalingError:
                count("storm_SignalingError")
            except sinkcast.UnknownSinkError:
                count("storm_UnknownSinkError")
            except sinkcast.EngineClosedError:
                return
            except Exception as e:  # noqa: BLE001 - reported
                fail(f"storm: {type(e).__name__}: {e}")

    # ---- a sink that comes and goes with listeners on it
    def sink_flapper() -> None:
        rnd = random.Random(seed + 7)
        while not stop.is_set():
            try:
                eng.add_sink("tmp", channels=1)
                eng.connect("t", "tmp")
                for i in range(3):
                    eng.handle_incoming_webrtc_signaling_message(f"tmp/f{i}", "offer", rnd.choice(offers))
                time.sleep(rnd.random() * 0.05)
                eng.remove_sink("tmp")
                count("sink_flaps")
            except (sinkcast.SignalingError, sinkcast.UnknownSinkError, sinkcast.DuplicateIdError,
                    sinkcast.RouteError):
                count("flap_expected_error")
            except sinkcast.EngineClosedError:
                return
            except Exception as e:  # noqa: BLE001 - reported
                fail(f"flapper: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=churn, args=(w,), name=f"churn{w}") for w in range(CHURN_THREADS)]
    threads += [threading.Thread(target=storm, args=(w,), name=f"storm{w}") for w in range(STORM_THREADS)]
    threads.append(threading.Thread(target=sink_flapper, name="flapper"))
    t0 = time.monotonic()
    for th in threads:
        th.start()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join(30.0)
        if th.is_alive():
            fail(f"thread {th.name} did not finish within 30 s of stop: deadlock?")
            faulthandler.dump_traceback(all_threads=True)
            return 1
    storm_s = time.monotonic() - t0

    # Afterwards the engine still works: every session can be closed, and a new listener hears audio.
    for target in eng.listeners():
        eng.handle_incoming_webrtc_signaling_message(target, "bye", "")
    after_byes = eng.listeners()
    probe = native._ReceiveProbe("127.0.0.1")
    sig.forget("a/final")
    eng.handle_incoming_webrtc_signaling_message("a/final", "offer", probe.create_offer(5.0))
    probe.accept_answer(sig.full_answer("a/final"))
    try:
        wait_until(lambda: probe.packets > 10, 10.0)
        final_ok = True
    except AssertionError:
        final_ok = False
    probe.close()
    eng.shutdown()
    live_peers_after = sinkcast.AudioManager(realtime=False).stats()["live_peers"]

    result = {
        "seconds": round(storm_s, 2),
        "counts": dict(counts),
        "failures": failures,
        "bad_targets": bad_targets[:10],
        "listeners_after_byes": after_byes,
        "final_listener_ok": final_ok,
        "live_peers_after_shutdown": live_peers_after,
    }
    print(json.dumps(result), flush=True)
    faulthandler.cancel_dump_traceback_later()
    ok = (not failures and not bad_targets and not after_byes and final_ok and live_peers_after == 0
          and counts["real_connected_protected"] >= MIN_PROTECTED_REAL and counts["real_not_connected_protected"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
