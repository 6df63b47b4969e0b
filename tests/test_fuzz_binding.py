"""Fuzzing handle_incoming_webrtc_signaling_message through the Python binding.

hypothesis throws arbitrary text, huge strings, NULs, lone surrogates, wrong
argument types, and mutations of real offers (aiortc, probe, Chromium,
Firefox) and candidates at the engine, to random targets with random types.
Only SignalingError, UnknownSinkError or TypeError may come out, and where
the contract fixes the outcome before any session state matters (argument
types, message type, size, target syntax, unknown sink) it must be exactly
that one. Meanwhile a real WebRTC listener on "s/keep" must keep receiving
audio: its packet count is checked before and after every test, at the
expected rate. Every message the engine sends must name a target someone
opened a session on.

hypothesis keeps no example database here (database=None): each run is a
fresh random search; a failure prints the reproducing example and seed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sinkcast
from helpers_subprocess.common import Collector, connect_probe, predict_precheck, probe_offer, recorded_offers
from webrtc_peer import Listener, aiortc_offer

ALLOWED = (sinkcast.SignalingError, sinkcast.UnknownSinkError, TypeError)
KEEP = "s/keep"
SINKS = frozenset({"s", "t"})

FUZZ = settings(
    max_examples=1500,
    deadline=None,
    database=None,
    # `listening` is function-scoped on purpose: it measures the listener across all examples of a test.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                           HealthCheck.function_scoped_fixture],
)




BASE_OFFERS = {"aiortc": aiortc_offer(), "probe": probe_offer(), **recorded_offers()}
CANDIDATE = '{"candidate":"candidate:1 1 UDP 2122260223 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0}'
BARE_CANDIDATE = "candidate:842163049 1 udp 1677729535 127.0.0.1 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0"


class Harness:
    """The engine, its listener on KEEP, and the record of what was opened and sent."""

    def __init__(self) -> None:
        self.eng = sinkcast.AudioManager(bind_address="127.0.0.1")
        for sink in sorted(SINKS):
            self.eng.add_sink(sink, channels=2, frame_ms=20)
            self.eng.add_tone_source(f"tone_{sink}", frequency_hz=440.0)
            self.eng.connect(f"tone_{sink}", sink)
        self.sig = Collector(self.eng)
        self.probe = connect_probe(self.eng, self.sig, KEEP)
        self.opened: set[str] = {KEEP}  # every target an offer or request_offer was accepted on
        self.lock = threading.Lock()
        self.calls = 0
        self.outcomes: dict[str, int] = {}

    def send(self, target: Any, type: Any, message: Any) -> None:
        """One fuzzed call: checks the exception against the contract, records the outcome."""
        if target == KEEP and type in ("offer", "request_offer", "bye"):
            target = "s/not-keep"  # the listener under watch must survive the whole run
        expected = predict_precheck(SINKS, target, type, message)
        self.calls += 1
        answers_before = self.count(target, "answer") if type == "offer" and expected is None else 0
        try:
            self.eng.handle_incoming_webrtc_signaling_message(target, type, message)
        except ALLOWED as e:
            outcome: type | None = e.__class__ if not isinstance(e, sinkcast.SinkcastError) else (
                sinkcast.UnknownSinkError if isinstance(e, sinkcast.UnknownSinkError) else sinkcast.SignalingError)
        else:
            outcome = None
            if type in ("offer", "request_offer"):
                self.opened.add(target)
            if type == "offer":
                # An accepted offer is answered, on its own target.
                deadline = time.monotonic() + 5.0
                while self.count(target, "answer") <= answers_before:
                    assert time.monotonic() < deadline, f"no answer for the accepted offer on {target!r}"
                    time.sleep(0.002)
        key = outcome.__name__ if outcome else "ok"
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        if expected is not None:
            assert outcome is expected, f"{target!r} {type!r}: expected {expected.__name__}, got {key}"
        elif type == "bye":
            assert outcome is None, f"bye to a known sink must succeed, got {key}"
        elif type == "request_offer":
            assert outcome is None, f"request_offer to a known sink must succeed, got {key}"
        else:
            assert outcome in (None, sinkcast.SignalingError), key
        # Anything other than ALLOWED propagates and fails the test by itself.
        if self.calls % 50 == 0:
            self.tidy()

    def count(self, target: str, type: str) -> int:
        with self.sig.cv:
            return sum(1 for t, _ in self.sig.by_target.get(target, []) if t == type)

    def tidy(self) -> None:
        """Closes every session but KEEP (bye is also under test: it must always work)."""
        for target in self.eng.listeners():
            if target != KEEP:
                self.eng.handle_incoming_webrtc_signaling_message(target, "bye", "")
        assert KEEP in self.eng.listeners()

    def check_outgoing(self) -> None:
        with self.sig.cv:
            targets = {t for t, _, _ in self.sig.log}
        stray = targets - self.opened
        assert not stray, f"messages for targets nobody opened: {sorted(stray)[:5]}"

    def close(self) -> None:
        self.probe.close()
        self.eng.shutdown()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        print(f"\nfuzz calls: {h.calls}; outcomes {h.outcomes}")
        h.close()


@pytest.fixture
def listening(harness: Harness) -> Iterator[Harness]:
    """Checks that the KEEP listener received audio at the expected rate during the test."""
    before, t0 = harness.probe.packets, time.monotonic()
    outcomes_before = dict(harness.outcomes)
    yield harness
    print(f"  outcomes: { {k: v - outcomes_before.get(k, 0) for k, v in harness.outcomes.items()} }", end="")
    harness.tidy()
    harness.check_outgoing()
    time.sleep(0.2)
    got, elapsed = harness.probe.packets - before, time.monotonic() - t0
    stats = harness.eng.stats()["sinks"]["s"]["listeners"][KEEP]
    print(f"  listener: {got} packets in {elapsed:.1f} s ({got / elapsed:.0f}/s), state {stats['state']}")
    assert harness.probe.connected and stats["state"] == "connected"
    assert got >= 0.8 * 50 * elapsed, f"the listener got {got} packets in {elapsed:.1f} s"


# ---------------------------------------------------------------------------- strategies

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
any_text = st.text(st.characters(codec=None), max_size=200)  # includes NUL and control characters
# Text with at least one lone surrogate somewhere: the binding cannot make UTF-8 of it.
with_surrogates = st.tuples(st.text(max_size=30), surrogates, st.text(max_size=30)).map("".join)
valid_types = st.sampled_from(["offer", "answer", "candidate", "bye", "request_offer"])
named_targets = st.sampled_from(["s", "t", "s/a", "t/b", "s/a/b", "nope", "nope/x", "", "s/", "/x", "/", KEEP,
                                 "s/" + "x" * 254, "s/" + "x" * 255, "s/\x00", "s/\x7f", "s/é", "s/😀"])
targets = st.one_of(
    named_targets,
    named_targets,
    st.builds(lambda sink, lid: f"{sink}/{lid}", st.sampled_from(["s", "t", "u"]), any_text),
    any_text,
)
# Weighted towards the real types, so that most messages get past the type check.
types = st.one_of(valid_types, valid_types, valid_types,
                  st.sampled_from(["OFFER", "offer ", "", "greeting", "offer\x00", "bye\n"]), any_text)
wrong_types = st.one_of(st.none(), st.integers(), st.floats(), st.binary(max_size=20),
                        st.lists(st.integers(), max_size=3), st.builds(object))


@st.composite
def big_strings(draw: st.DrawFn) -> str:
    size = draw(st.sampled_from([65535, 65536, 65537, 70_000, 1_000_000]))
    unit = draw(st.sampled_from(["x", "é", "😀", "v=0\r\n", "\x00"]))
    return (unit * (size // len(unit.encode()) + 1))[: max(1, size // len(unit.encode()))]


messages = st.one_of(
    any_text,
    st.sampled_from(list(BASE_OFFERS.values()) + [CANDIDATE, BARE_CANDIDATE, "", "null", "{}", "[]", "v=0"]),
    big_strings(),
)


@st.composite
def mutated_offers(draw: st.DrawFn) -> str:
    sdp = draw(st.sampled_from(sorted(BASE_OFFERS.values())))
    for _ in range(draw(st.integers(1, 4))):
        lines = sdp.split("\r\n") or [""]
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "flip", "truncate", "insert", "lf", "digits"]))
        i = draw(st.integers(0, len(lines) - 1))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            lines.insert(i, draw(any_text))
        elif op == "digits":
            lines[i] = "".join(str(draw(st.integers(0, 2**40))) if c.isdigit() else c for c in lines[i])
        sdp = "\r\n".join(lines)
        if op == "flip" and sdp:
            raw = bytearray(sdp.encode("utf-8", errors="surrogateescape"))
            at = draw(st.integers(0, len(raw) - 1))
            raw[at] ^= 1 << draw(st.integers(0, 7))
            # surrogateescape keeps a broken UTF-8 byte as a lone surrogate: the binding must refuse it.
            sdp = raw.decode("utf-8", errors=draw(st.sampled_from(["surrogateescape", "replace"])))
        elif op == "truncate":
            sdp = sdp[: draw(st.integers(0, len(sdp)))]
        elif op == "lf":
            sdp = sdp.replace("\r\n", "\n")
    return sdp


@st.composite
def mutated_candidates(draw: st.DrawFn) -> str:
    base = draw(st.sampled_from([CANDIDATE, BARE_CANDIDATE, json.dumps({"candidate": BARE_CANDIDATE})]))
    op = draw(st.sampled_from(["flip", "truncate", "field", "json"]))
    if op == "flip":
        raw = bytearray(base.encode())
        raw[draw(st.integers(0, len(raw) - 1))] ^= 1 << draw(st.integers(0, 7))
        return raw.decode("utf-8", errors="replace")
    if op == "truncate":
        return base[: draw(st.integers(0, len(base)))]
    if op == "field":
        words = BARE_CANDIDATE.split()
        words[draw(st.integers(0, len(words) - 1))] = draw(st.sampled_from(["", "x", "-1", "99999999999", "\x00"]))
        return " ".join(words)
    value = draw(st.sampled_from([None, 0, -1, 2**40, "0", [], {}, True]))
    key = draw(st.sampled_from(["candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"]))
    obj = json.loads(CANDIDATE)
    obj[key] = value
    return json.dumps(obj)


# ---------------------------------------------------------------------------- the fuzz


@FUZZ
@given(target=targets, type=types, message=messages)
def test_fuzz_arbitrary_text(listening: Harness, target: str, type: str, message: str) -> None:
    listening.send(target, type, message)


@settings(FUZZ, max_examples=300)
@given(which=st.integers(0, 2), value=with_surrogates, target=targets, type=types, message=messages)
def test_fuzz_lone_surrogates(listening: Harness, which: int, value: str, target: str, type: str,
                              message: str) -> None:
    """A lone surrogate in any argument: TypeError, whatever else is in the call."""
    args = [target, type, message]
    args[which] = value
    listening.send(*args)


@settings(FUZZ, max_examples=300)
@given(which=st.integers(0, 2), value=wrong_types, target=targets, type=types, message=messages)
def test_fuzz_wrong_argument_types(listening: Harness, which: int, value: Any, target: str, type: str,
                                   message: str) -> None:
    args = [target, type, message]
    args[which] = value
    listening.send(*args)


@settings(FUZZ, max_examples=1000)
@given(target=st.sampled_from(["s/m1", "s/m2", "t", "t/m3"]), offer=mutated_offers())
def test_fuzz_mutated_offers(listening: Harness, target: str, offer: str) -> None:
    listening.send(target, "offer", offer)
    listening.send(target, "bye", "")


@settings(FUZZ, max_examples=600)
@given(target=st.sampled_from([KEEP, "s/c1", "t/c2", "s/none"]), candidate=mutated_candidates(),
       open_first=st.booleans(), kind=st.sampled_from(["offer", "request_offer"]))
def test_fuzz_mutated_candidates(listening: Harness, target: str, candidate: str, open_first: bool, kind: str) -> None:
    """Candidates for the connected listener itself, for fresh sessions, and for none."""
    if open_first and target != KEEP:
        listening.send(target, kind, BASE_OFFERS["probe"] if kind == "offer" else "")
    listening.send(target, "candidate", candidate)


@settings(FUZZ, max_examples=300)
@given(answer=st.one_of(mutated_offers(), any_text, st.sampled_from(list(BASE_OFFERS.values()))),
       target=st.sampled_from([KEEP, "s/ro", "t"]))
def test_fuzz_answers(listening: Harness, answer: str, target: str) -> None:
    """Answers to a connected session (must be refused), and to sessions the engine offered."""
    if target != KEEP:
        listening.send(target, "request_offer", "")
    listening.send(target, "answer", answer)


# ---------------------------------------------------------------------------- exact cases


EXACT = [
    # (target, type, message, exception)
    ("s/x", "offer", "x" * (64 * 1024 + 1), sinkcast.SignalingError),
    ("s/x", "offer", "x" * (64 * 1024), sinkcast.SignalingError),  # within the limit, but not SDP
    ("s/x", "offer", "é" * (32 * 1024 + 1), sinkcast.SignalingError),  # 32 Ki characters, > 64 KiB of UTF-8
    ("nope/x", "offer", "x" * 1_000_000, sinkcast.SignalingError),  # size before sink
    ("nope/x", "bye", "", sinkcast.UnknownSinkError),
    ("s/x", "bye", "x" * 1_000_000, sinkcast.SignalingError),
    ("s/x", "candidate", "\x00" * 100, sinkcast.SignalingError),
    ("s/x", "offer", BASE_OFFERS["probe"].replace("v=0", "v=0\x00"), sinkcast.SignalingError),
    ("s/\x00", "bye", "", sinkcast.SignalingError),
    ("s\x00/x", "bye", "", sinkcast.SignalingError),
    ("s/x", "bye\x00", "", sinkcast.SignalingError),
    ("s/\ud800", "bye", "", TypeError),
    ("s/x", "\udfff", "", TypeError),
    ("s/x", "offer", BASE_OFFERS["probe"] + "\udc80", TypeError),
    ("s/x", "offer", b"v=0", TypeError),
    ("s/x", "offer", None, TypeError),
    (None, "bye", "", TypeError),
    ("s/x", 1, "", TypeError),
    ("s/x", "offer", bytearray(b"v=0"), TypeError),
    ("s/x", "offer", memoryview(b"v=0"), TypeError),
]


def test_error_messages_quoting_non_ascii_input_are_still_signaling_errors(listening: Harness) -> None:
    """Engine bug (found by test_fuzz_arbitrary_text): an error message that quotes
    the input cut at a byte count can end in half a UTF-8 character; the binding
    then fails to make a Python str of it, and UnicodeDecodeError escapes instead
    of SignalingError. 'x'*63 + 'é' is cut after 64 bytes (the unknown-type
    message); 'x'*59 + 'é' as an offer's first line is cut after 60 (excerpt())."""
    cases = [
        ("s/x", "x" * 63 + "é", ""),  # unknown signaling type 'xxx...\xc3'
        ("s/x", "offer", "x" * 59 + "é"),  # malformed SDP: ... got "xxx...\xc3..."
        ("s/x", "offer", "v=0\r\n" + "y" * 59 + "é"),  # line 2 "yyy...\xc3..." is not of the form
    ]
    wrong = []
    for target, type, message in cases:
        try:
            listening.eng.handle_incoming_webrtc_signaling_message(target, type, message)
            wrong.append((type, message[-8:], "no error"))
        except sinkcast.SignalingError:
            pass
        except Exception as e:  # noqa: BLE001 - collected
            wrong.append((type, message[-8:], f"{e.__class__.__name__}: {e}"))
    assert not wrong, wrong


def test_exact_outcomes_of_weird_messages(listening: Harness) -> None:
    for target, type, message, exc in EXACT:
        with pytest.raises(exc):
            listening.eng.handle_incoming_webrtc_signaling_message(target, type, message)
    assert listening.eng.listeners() == [KEEP]


def test_a_str_subclass_is_accepted_as_a_str(listening: Harness) -> None:
    class Text(str):
        pass

    listening.eng.handle_incoming_webrtc_signaling_message(Text("s/sub"), Text("offer"), Text(BASE_OFFERS["probe"]))
    listening.opened.add("s/sub")
    assert "s/sub" in listening.eng.listeners()


def test_wrong_number_of_arguments_and_keywords(listening: Harness) -> None:
    h = listening.eng.handle_incoming_webrtc_signaling_message
    with pytest.raises(TypeError):
        h("s/x", "bye")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        h("s/x", "bye", "", "extra")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        h(target="s/x", type="bye", msg="")  # type: ignore[call-arg]
    h(target="s/x", type="bye", message="")
