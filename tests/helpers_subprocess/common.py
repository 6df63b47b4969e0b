"""Shared helpers for the reliability tests and their child scripts.

Imported by the tests as ``helpers_subprocess.common`` (tests/ is on sys.path)
and by the child scripts in this folder as ``common`` (their own folder is
sys.path[0]). Nothing here starts threads or touches the network by itself.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sinkcast
from sinkcast import _sinkcast as native
from sinkcast.aio import merge_candidates

TESTS = Path(__file__).resolve().parent.parent
DATA = TESTS / "data"
HELPERS = Path(__file__).resolve().parent


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A loopback port free now (TCP by default, or socket.SOCK_DGRAM); it may be
    taken again before the caller binds it, which a test may retry on."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def threads_named(prefix: str) -> int:
    """Threads of this process whose name starts with `prefix` (the engine names
    its own: "sinkcast clock", "sinkcast signal", "sinkcast tasks", ...)."""
    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                count += f.read().startswith(prefix)
        except (FileNotFoundError, ProcessLookupError):  # the thread ended while we looked (at open, or at read)
            pass
    return count


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


def recorded_offers() -> dict[str, str]:
    """The browser offers in tests/data, by file stem, byte-exact (CRLF kept)."""
    return {p.stem: p.read_bytes().decode() for p in sorted(DATA.glob("offer_*.sdp"))}


def is_end_of_candidates(message: str) -> bool:
    try:
        value = json.loads(message)
    except ValueError:
        return False
    return isinstance(value, dict) and not value.get("candidate")


class Collector:
    """The engine's signaling callback: keeps every message, per target, in order."""

    def __init__(self, eng: sinkcast.AudioManager | None = None, delay_s: float = 0.0) -> None:
        self.cv = threading.Condition()
        self.log: list[tuple[str, str, str]] = []
        self.by_target: dict[str, list[tuple[str, str]]] = {}
        self.delay_s = delay_s
        if eng is not None:
            eng.set_python_webrtc_signaling_callback(self)

    def __call__(self, target: str, type: str, message: str) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.cv:
            self.log.append((target, type, message))
            self.by_target.setdefault(target, []).append((type, message))
            self.cv.notify_all()

    def forget(self, target: str) -> None:
        with self.cv:
            self.by_target.pop(target, None)

    def messages(self, target: str) -> list[tuple[str, str]]:
        with self.cv:
            return list(self.by_target.get(target, []))

    def wait_for(self, target: str, type: str, timeout: float = 10.0, start: int = 0) -> str:
        """The message of `type` for `target` at or after index `start` of that target's list."""

        def find() -> str | None:
            for t, m in self.by_target.get(target, [])[start:]:
                if t == type:
                    return m
            return None

        with self.cv:
            if not self.cv.wait_for(lambda: find() is not None, timeout):
                raise TimeoutError(f"no {type!r} for {target!r} within {timeout} s")
            return find()  # type: ignore[return-value]

    def full_answer(self, target: str, timeout: float = 10.0) -> str:
        """The engine's answer with its trickled candidates merged in (waits for end of candidates)."""

        def ready() -> bool:
            return any(t == "candidate" and is_end_of_candidates(m) for t, m in self.by_target.get(target, []))

        with self.cv:
            if not self.cv.wait_for(ready, timeout):
                raise TimeoutError(f"no end of candidates for {target!r} within {timeout} s")
            msgs = list(self.by_target[target])
        answers = [m for t, m in msgs if t == "answer"]
        if not answers:
            raise LookupError(f"{target!r} ended its candidates without an answer (its session was replaced?)")
        return merge_candidates(answers[-1], [m for t, m in msgs if t == "candidate"])


def connect_probe(eng: sinkcast.AudioManager, sig: Collector, target: str, timeout: float = 10.0) -> Any:
    """A receive-only libdatachannel listener on `target`, connected and receiving packets.

    A probe that never connects is replaced once. libdatachannel 0.24.6 can fail
    a DTLS handshake on the probe's side (the DTLS server here), about once in
    thousands of loopback connections (docs/reliability.md, "A DTLS handshake
    that fails"); the tests that use this helper are about what follows a
    connection, not that race. A probe that connected and still gets no packet,
    or a second failure, is an error."""
    for attempt in (1, 2):
        probe = native._ReceiveProbe("127.0.0.1")
        try:
            sig.forget(target)
            eng.handle_incoming_webrtc_signaling_message(target, "offer", probe.create_offer(5.0))
            probe.accept_answer(sig.full_answer(target, timeout))
            wait_until(lambda: probe.packets > 0, timeout)
            return probe
        except AssertionError:
            connected = probe.connected
            probe.close()
            if attempt == 2 or connected:
                raise
            print(f"connect_probe: {target}'s probe never connected; trying a new one", file=sys.stderr)
        except BaseException:
            probe.close()
            raise
    raise AssertionError("unreachable")


def probe_offer() -> str:
    """A fresh offer from a probe that is closed straight away (valid SDP, nobody behind it)."""
    probe = native._ReceiveProbe("127.0.0.1")
    try:
        return probe.create_offer(5.0)
    finally:
        probe.close()


# ---- what the engine must say before it looks at any session (DESIGN.md, signaling contract)

SIGNALING_TYPES = ("offer", "answer", "candidate", "bye", "request_offer")
MAX_MESSAGE_BYTES = 64 * 1024
MAX_TARGET_BYTES = 256


def utf8_or_none(value: object) -> bytes | None:
    """The UTF-8 bytes the binding passes on, or None if it cannot convert (-> TypeError)."""
    if type(value) is not str:
        return None
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return None


def predict_precheck(sinks: set[str] | frozenset[str], target: object, type: object, message: object) -> type | None:
    """The exception the engine must raise before any session state matters, in
    the engine's order: argument types (TypeError), the message type, the size,
    the target's syntax (SignalingError), the sink (UnknownSinkError). None: the
    message passed these checks and its fate depends on the session state."""
    t, ty, m = utf8_or_none(target), utf8_or_none(type), utf8_or_none(message)
    if t is None or ty is None or m is None:
        return TypeError
    if type not in SIGNALING_TYPES:
        return sinkcast.SignalingError
    if len(m) > MAX_MESSAGE_BYTES:
        return sinkcast.SignalingError
    if not t or len(t) > MAX_TARGET_BYTES or any(c < 0x20 or c == 0x7F for c in t):
        return sinkcast.SignalingError
    sink, slash, listener = t.partition(b"/")
    if slash and (not sink or not listener):
        return sinkcast.SignalingError
    if sink.decode() not in sinks:
        return sinkcast.UnknownSinkError
    return None
