"""Signaling routing against a pure-Python model (hypothesis stateful testing).

A RuleBasedStateMachine drives one real-time engine with random interleavings
of: adding and removing sinks; opening default ("sink") and named
("sink/listener") sessions with offers -- real offers from a libdatachannel
probe, from aiortc, and recorded from headless Chromium and Firefox
(tests/data/), each also mutated in ways whose validity is known --; engine
offers (request_offer) and answers to them, good and bad; candidates of every
form; byes; unknown types, oversized messages, unknown sinks and malformed
targets; real connections from a probe; and shutdown.

Every offer is re-tagged before it is sent: its audio mid becomes a tag used
once in the whole run and its Opus payload type a random one, so each answer
the engine sends identifies the offer it answers.

The model predicts, for every call, success or the exact exception class, in
the engine's order of checks: engine closed (EngineClosedError), message type,
size, target syntax (SignalingError), sink (UnknownSinkError), then state:
an offer is validated before it replaces a session (a bad one changes
nothing), an answer needs an engine offer still waiting for one, a candidate
needs a session, a bye never fails. Invariants after every step:

* every message the engine sends names a target that had a session;
* nothing meant for one target reaches another: an answer for T carries the
  mid tag and payload type of an offer accepted on T (in order); each
  candidate for T carries the ICE ufrag and mid of T's latest answer/offer;
  engine offers go only to targets that asked for one;
* byes: one per session of a removed sink ("sink removed"), one per session
  live at shutdown ("shutdown"), none for replaced or closed sessions -- and
  at the end of each run (after shutdown has drained everything) exactly the
  expected ones arrived;
* listeners(), stats() (sinks, per-sink listeners, counts, live peers) agree
  with the model; after shutdown both raise EngineClosedError.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import sinkcast
from helpers_subprocess.common import is_end_of_candidates, predict_precheck, probe_offer, recorded_offers, wait_until
from sinkcast import _sinkcast as native
from sinkcast.aio import merge_candidates
from webrtc_peer import Listener, aiortc_offer

# ---------------------------------------------------------------------------- offers




BASE_OFFERS: dict[str, str] = {"probe": probe_offer(), "aiortc": aiortc_offer(), **recorded_offers()}
assert any("chromium" in k for k in BASE_OFFERS) and any("firefox" in k for k in BASE_OFFERS)


def split_sdp(sdp: str) -> tuple[list[str], list[list[str]]]:
    """Session-level lines and the media sections, without line ends."""
    lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
    head: list[str] = []
    sections: list[list[str]] = []
    for line in lines:
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            head.append(line)
    return head, sections


def join_sdp(head: list[str], sections: list[list[str]]) -> str:
    return "\r\n".join(head + [l for s in sections for l in s]) + "\r\n"


def audio_mid_and_opus(sdp: str) -> tuple[str | None, int]:
    for section in split_sdp(sdp)[1]:
        if section[0].startswith("m=audio"):
            mid = next((l[len("a=mid:"):] for l in section if l.startswith("a=mid:")), None)
            for l in section:
                m = re.match(r"a=rtpmap:(\d+) opus/48000", l, re.I)
                if m:
                    return mid, int(m.group(1))
    raise ValueError("no audio section with Opus")


def retag(sdp: str, tag: str, pt: int) -> str:
    """The offer with its audio mid renamed to `tag` and its Opus payload type swapped with `pt`."""
    old_mid, old_pt = audio_mid_and_opus(sdp)
    swap = {str(old_pt): str(pt), str(pt): str(old_pt)}
    head, sections = split_sdp(sdp)
    out = []
    for section in sections:
        if not section[0].startswith("m=audio"):
            out.append(section)
            continue
        fields = section[0].split(" ")
        new = [" ".join(fields[:3] + [swap.get(f, f) for f in fields[3:]])]
        for line in section[1:]:
            if line == f"a=mid:{old_mid}":
                line = f"a=mid:{tag}"
            m = re.match(r"(a=(?:rtpmap|fmtp|rtcp-fb)):(\d+)(.*)", line)
            if m and m.group(2) in swap:
                line = f"{m.group(1)}:{swap[m.group(2)]}{m.group(3)}"
            if line.startswith("a=fmtp:") and re.search(rf"\s{old_pt}/{old_pt}$", line):  # RED's "111/111"
                line = re.sub(rf"{old_pt}/{old_pt}$", f"{pt}/{pt}", line)
            new.append(line)
        out.append(new)
    head = [" ".join(tag if t == old_mid else t for t in l.split(" ")) if l.startswith("a=group:BUNDLE") else l
            for l in head]
    return join_sdp(head, out)


def in_audio(sdp: str, change: Callable[[list[str]], list[str]]) -> str:
    head, sections = split_sdp(sdp)
    return join_sdp(head, [change(s) if s[0].startswith("m=audio") else s for s in sections])


def without(sdp: str, *prefixes: str) -> str:
    head, sections = split_sdp(sdp)
    keep = lambda lines: [l for l in lines if not l.startswith(prefixes)]  # noqa: E731
    return join_sdp(keep(head), [keep(s) for s in sections])


# name: (transform, does the engine accept it?) -- checked against every base offer.
TRANSFORMS: dict[str, tuple[Callable[[str], str], bool]] = {
    "plain": (lambda s: s, True),
    "lf_only": (lambda s: s.replace("\r\n", "\n"), True),
    "no_candidates": (lambda s: without(s, "a=candidate", "a=end-of-candidates"), True),
    "extra_attribute": (lambda s: in_audio(s, lambda sec: sec + ["a=x-sinkcast-test:1"]), True),
    "no_opus": (lambda s: "\r\n".join(l for l in s.split("\r\n") if not re.match(r"a=rtpmap:\d+ opus/", l, re.I)), False),
    "video_only": (lambda s: s.replace("m=audio", "m=video"), False),
    "no_ice_credentials": (lambda s: without(s, "a=ice-ufrag", "a=ice-pwd"), False),
    "no_fingerprint": (lambda s: without(s, "a=fingerprint"), False),
    "sendonly": (lambda s: in_audio(s, lambda sec: ["a=sendonly" if l == "a=recvonly" else l for l in sec]), False),
    "port_zero": (lambda s: re.sub(r"m=audio \d+", "m=audio 0", s), False),
    "plain_rtp": (lambda s: in_audio(s, lambda sec: [sec[0].replace("UDP/TLS/RTP/SAVPF", "RTP/AVP")] + sec[1:]), False),
    "not_sdp": (lambda s: "hello, I am not SDP", False),
    "oversized": (lambda s: s + "a=x-pad:" + "p" * (64 * 1024) + "\r\n", False),
}

CANDIDATES: dict[str, tuple[str, bool]] = {
    "json": ('{"candidate":"candidate:1 1 UDP 2122260223 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0}', True),
    "bare": ("candidate:2 1 udp 2122260222 127.0.0.1 50001 typ host", True),
    "a_line": ("a=candidate:3 1 udp 2122260221 127.0.0.1 50002 typ host", True),
    "end_empty": ("", True),
    "end_json": ('{"candidate":"","sdpMid":"0","sdpMLineIndex":0}', True),
    "end_null": ("null", True),
    "malformed": ("candidate:this is not a candidate", False),
    "bad_json": ('{"candidate": ', False),
    "wrong_field_type": ('{"candidate": 42}', False),
    "not_a_candidate": ("hello", False),
}

SINK_POOL = ["a", "b", "c"]
UNKNOWN_SINK = "zz"
LISTENER_IDS = ["", "l1", "l2", "x/y"]
BAD_TARGETS = ["", "a/", "/l1", "/", "a/\x01", "a" * 300]
BAD_TYPES = ["greeting", "", "OFFER", "bye ", "answer\x00"]

valid_targets = st.builds(lambda s, l: s if not l else f"{s}/{l}",
                          st.sampled_from(SINK_POOL * 3 + [UNKNOWN_SINK]), st.sampled_from(LISTENER_IDS))



def weighted(percent_first: int, first: st.SearchStrategy[Any], second: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`first` about percent_first % of the time (one_of's own mix is far from even)."""
    return st.integers(0, 99).flatmap(lambda n: first if n < percent_first else second)


targets = weighted(85, valid_targets, st.sampled_from(BAD_TARGETS))
good_transforms = st.sampled_from(sorted(k for k, (_, valid) in TRANSFORMS.items() if valid))
transforms = weighted(65, good_transforms, st.sampled_from(sorted(TRANSFORMS)))


def answer_for(engine_offer: str, kind: str) -> str:
    """An answer to the engine's offer, from the listener's side."""
    sdp = engine_offer.replace("a=setup:actpass", "a=setup:active").replace("a=sendonly", "a=recvonly")
    sdp = re.sub(r"a=ice-ufrag:[^\r\n]*", "a=ice-ufrag:mdl1", sdp)
    sdp = re.sub(r"a=ice-pwd:[^\r\n]*", "a=ice-pwd:modelmodelmodelmodelmo", sdp)
    sdp = re.sub(r"a=fingerprint:[^\r\n]*", "a=fingerprint:sha-256 " + ":".join(["5A"] * 32), sdp)
    sdp = without(sdp, "a=ssrc", "a=msid")
    if kind == "wrong_mid":
        sdp = re.sub(r"a=mid:[^\r\n]*", "a=mid:nomatch", sdp)
    elif kind == "sendonly":
        sdp = sdp.replace("a=recvonly", "a=sendonly")
    elif kind == "garbage":
        sdp = "v=0\r\nthis is no answer\r\n"
    return sdp


def _template_engine_offer() -> str:
    got: list[str] = []
    with sinkcast.AudioManager(bind_address="127.0.0.1") as eng:
        eng.add_sink("t")
        done = threading.Event()
        eng.set_python_webrtc_signaling_callback(lambda t, ty, m: (got.append(m), done.set()) if ty == "offer" else None)
        eng.handle_incoming_webrtc_signaling_message("t", "request_offer", "")
        done.wait(10)
    return got[0]


TEMPLATE_ENGINE_OFFER = _template_engine_offer()  # for answers sent where no engine offer waits

# ---------------------------------------------------------------------------- the machine

TAGS = itertools.count()
TOTALS: Counter[str] = Counter()  # across all runs, printed at the end


@dataclass
class Session:
    sink: str
    kind: str  # "listener_offer" (engine answered), "engine_offer" (waiting for an answer), "engine_answered"
    mark: int = 0  # index in the target's messages when the session opened


class SignalingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.peers_at_start = live_peers()  # process-wide count, whatever other tests left
        self.eng = sinkcast.AudioManager(bind_address="127.0.0.1")
        self.eng.add_tone_source("tone", frequency_hz=440.0)
        self.cv = threading.Condition()
        self.log: list[tuple[str, str, str]] = []
        self.eng.set_python_webrtc_signaling_callback(self.on_message)
        # the model
        self.sinks: set[str] = set()
        self.sessions: dict[str, Session] = {}
        self.closed = False
        self.ever: set[str] = set()  # targets that ever had a session
        self.requested: set[str] = set()  # targets that ever had a request_offer accepted
        self.tags: dict[str, tuple[str, int]] = {}  # mid tag -> (target, payload type) of accepted offers
        self.accepted: dict[str, list[str]] = {}  # target -> tags of offers accepted there, in order
        self.expected_byes: Counter[tuple[str, str]] = Counter()
        # checking state
        self.checked = 0
        self.per_target: dict[str, list[tuple[str, str]]] = {}
        self.current: dict[str, tuple[str, str]] = {}  # target -> (ufrag, mid) of its latest answer/offer
        self.answered_upto: dict[str, int] = {}
        self.got_byes: Counter[tuple[str, str]] = Counter()
        self.reaped: set[str] = set()
        self.probes: list[Any] = []
        TOTALS["runs"] += 1

    # -- plumbing ----------------------------------------------------------------

    def on_message(self, target: str, type: str, message: str) -> None:
        with self.cv:
            self.log.append((target, type, message))
            self.cv.notify_all()

    def messages_for(self, target: str) -> list[tuple[str, str]]:
        with self.cv:
            return [(ty, m) for t, ty, m in self.log if t == target]

    def call(self, target: str, type: str, message: str, expected: type[BaseException] | None) -> bool:
        """Sends one message; asserts the outcome is the predicted one. True if it succeeded."""
        TOTALS["calls"] += 1
        try:
            self.eng.handle_incoming_webrtc_signaling_message(target, type, message)
        except Exception as e:  # noqa: BLE001 - compared with the prediction
            TOTALS[f"{type}:{e.__class__.__name__}"] += 1
            assert expected is not None and type_matches(e, expected), (
                f"{type} to {target!r}: expected {name(expected)}, got {e.__class__.__name__}: {e}")
            return False
        TOTALS[f"{type}:ok"] += 1
        assert expected is None, f"{type} to {target!r}: expected {name(expected)}, got success"
        return True

    def predict(self, target: str, type: str, message: str) -> type[BaseException] | None:
        if self.closed:
            return sinkcast.EngineClosedError
        return predict_precheck(frozenset(self.sinks), target, type, message)

    def sink_of(self, target: str) -> str:
        return target.split("/", 1)[0]

    def open(self, target: str, kind: str, mark: int) -> None:
        """`mark`: how many messages the target had before the call that opened the session."""
        self.sessions[target] = Session(self.sink_of(target), kind, mark)
        self.ever.add(target)

    # -- rules: sinks ------------------------------------------------------------

    @initialize()
    def first_sinks(self) -> None:
        for sink in SINK_POOL:
            self.add_sink(sink)

    @rule(sink=st.sampled_from(SINK_POOL))
    def add_sink(self, sink: str) -> None:
        expected = sinkcast.EngineClosedError if self.closed else (
            sinkcast.DuplicateIdError if sink in self.sinks else None)
        try:
            self.eng.add_sink(sink, channels=2, frame_ms=20)
            self.eng.connect("tone", sink)
        except Exception as e:  # noqa: BLE001 - compared with the prediction
            assert expected is not None and type_matches(e, expected), f"add_sink({sink}): {e!r}"
            return
        assert expected is None, f"add_sink({sink}) should have raised {name(expected)}"
        self.sinks.add(sink)

    @rule(sink=st.sampled_from(SINK_POOL + [UNKNOWN_SINK]))
    def remove_sink(self, sink: str) -> None:
        expected = sinkcast.EngineClosedError if self.closed else (
            None if sink in self.sinks else sinkcast.UnknownSinkError)
        try:
            self.eng.remove_sink(sink)
        except Exception as e:  # noqa: BLE001 - compared with the prediction
            assert expected is not None and type_matches(e, expected), f"remove_sink({sink}): {e!r}"
            return
        assert expected is None, f"remove_sink({sink}) should have raised {name(expected)}"
        self.sinks.discard(sink)
        for target in [t for t, s in self.sessions.items() if s.sink == sink]:
            del self.sessions[target]
            self.expected_byes[(target, "sink removed")] += 1

    # -- rules: sessions -----------------------------------------------------------

    @rule(to=targets, base=st.sampled_from(sorted(BASE_OFFERS)), transform=transforms, pt=st.integers(96, 127))
    def offer(self, to: str, base: str, transform: str, pt: int) -> None:
        target = to  # 'target' is a reserved argument name of @rule
        tag = f"m{next(TAGS)}"
        change, valid = TRANSFORMS[transform]
        sdp = change(retag(BASE_OFFERS[base], tag, pt))
        expected = self.predict(target, "offer", sdp)
        if expected is None and not valid:
            expected = sinkcast.SignalingError  # and the session there, if any, stays
        mark = len(self.messages_for(target))
        if self.call(target, "offer", sdp, expected):
            self.open(target, "listener_offer", mark)  # replaces any session there, without a bye
            self.tags[tag] = (target, pt)
            self.accepted.setdefault(target, []).append(tag)

    @rule(to=targets, answer_now=st.integers(0, 2))
    def request_offer(self, to: str, answer_now: int) -> None:
        """An engine offer; a third of the time answered right away (the common flow)."""
        target = to  # 'target' is a reserved argument name of @rule
        mark = len(self.messages_for(target))
        if self.call(target, "request_offer", "", self.predict(target, "request_offer", "")):
            self.open(target, "engine_offer", mark)
            self.requested.add(target)
            if answer_now == 0:
                self.send_answer(target, "good")

    def aim(self, data: st.DataObject, percent: int, kinds: tuple[str, ...]) -> str:
        """A target: `percent` % of the time one with a session of one of `kinds`, if any."""
        live = sorted(t for t, s in self.sessions.items() if s.kind in kinds)
        if live and data.draw(st.integers(0, 99), label="aim") < percent:
            return data.draw(st.sampled_from(live), label="live target")
        return data.draw(targets, label="target")

    @rule(data=st.data(), kind=st.sampled_from(["good", "good", "good", "wrong_mid", "sendonly", "garbage"]))
    def answer(self, data: st.DataObject, kind: str) -> None:
        self.send_answer(self.aim(data, 80, ("engine_offer",)), kind)

    def send_answer(self, target: str, kind: str) -> None:
        session = self.sessions.get(target)
        engine_offer = TEMPLATE_ENGINE_OFFER
        if session is not None and session.kind == "engine_offer" and not self.closed:
            engine_offer = self.wait_for_message(target, "offer", session.mark)
        sdp = answer_for(engine_offer, kind)
        expected = self.predict(target, "answer", sdp)
        if expected is None:
            if session is None or session.kind != "engine_offer" or kind != "good":
                expected = sinkcast.SignalingError
        if self.call(target, "answer", sdp, expected):
            session.kind = "engine_answered"  # type: ignore[union-attr]

    @rule(data=st.data(), kind=st.sampled_from(sorted(CANDIDATES)))
    def candidate(self, data: st.DataObject, kind: str) -> None:
        target = self.aim(data, 75, ("listener_offer", "engine_offer", "engine_answered"))
        message, valid = CANDIDATES[kind]
        expected = self.predict(target, "candidate", message)
        if expected is None and (target not in self.sessions or not valid):
            expected = sinkcast.SignalingError
        self.call(target, "candidate", message, expected)

    @rule(data=st.data())
    def bye(self, data: st.DataObject) -> None:
        target = self.aim(data, 60, ("listener_offer", "engine_offer", "engine_answered"))
        if self.call(target, "bye", "", self.predict(target, "bye", "")):
            self.sessions.pop(target, None)  # no session there is no error either

    @rule(to=targets, type=st.sampled_from(BAD_TYPES))
    def unknown_type(self, to: str, type: str) -> None:
        target = to  # 'target' is a reserved argument name of @rule
        expected = sinkcast.EngineClosedError if self.closed else sinkcast.SignalingError
        self.call(target, type, "v=0\r\n", expected)

    @rule(to=targets, type=st.sampled_from(["offer", "answer", "candidate", "bye", "request_offer"]),
          size=st.sampled_from([64 * 1024 + 1, 200_000]))
    def oversized(self, to: str, type: str, size: int) -> None:
        target = to  # 'target' is a reserved argument name of @rule
        expected = sinkcast.EngineClosedError if self.closed else sinkcast.SignalingError
        self.call(target, type, "x" * size, expected)

    @rule(to=valid_targets, go=st.integers(0, 3))
    def real_listener(self, to: str, go: int) -> None:
        """A real connection from a probe (a quarter of the times the rule is drawn: they cost ~0.1 s)."""
        target = to  # 'target' is a reserved argument name of @rule
        if go or self.closed or self.sink_of(target) not in self.sinks:
            return
        probe = native._ReceiveProbe("127.0.0.1")
        self.probes.append(probe)
        offer = probe.create_offer(5.0)
        mark = len(self.messages_for(target))
        self.call(target, "offer", offer, None)
        self.open(target, "listener_offer", mark)
        mid, pt = audio_mid_and_opus(offer)
        tag = f"m{next(TAGS)}"  # the probe's own mid: register it under a unique alias
        self.tags[tag] = (target, pt)
        self.accepted.setdefault(target, []).append(mid or "0")
        session = self.sessions[target]

        # Messages of the session this offer replaced may still be in the
        # dispatcher's queue (another rule's offer is not waited for), so they can
        # land after the mark. They all come before this session's own (one FIFO),
        # and this session's answer is the one that carries the probe's mid (the
        # other rules tag their offers with unique mids).
        def own_messages(ms: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
            after = ms[session.mark:]
            for i, (t, m) in enumerate(after):
                if t == "answer" and audio_mid_and_opus(m)[0] == mid:
                    return after[i:]
            return None

        def gathered(ms: list[tuple[str, str]]) -> bool:
            own = own_messages(ms)
            return own is not None and any(t == "candidate" and is_end_of_candidates(m) for t, m in own)

        own = own_messages(self.wait_for(target, gathered))
        assert own is not None
        answer = own[0][1]
        probe.accept_answer(merge_candidates(answer, [m for t, m in own if t == "candidate"]))
        wait_until(lambda: probe.packets > 0, 10.0)
        TOTALS["real_connections"] += 1

    @rule(go=st.integers(0, 29))
    def shutdown(self, go: int) -> None:
        if go:  # one in 30 times the rule is drawn, so that most runs get somewhere first
            return
        self.eng.shutdown()  # idempotent: a second shutdown is fine
        for target in self.sessions:
            self.expected_byes[(target, "shutdown")] += 1
        self.sessions.clear()
        self.closed = True
        TOTALS["shutdowns"] += 1

    # -- waiting for the engine ----------------------------------------------------

    def wait_for(self, target: str, ready: Callable[[list[tuple[str, str]]], bool],
                 timeout: float = 10.0) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                msgs = [(ty, m) for t, ty, m in self.log if t == target]
                if ready(msgs):
                    return msgs
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting on {target!r}; it got {[t for t, _ in msgs]}"
                self.cv.wait(left)

    def wait_for_message(self, target: str, type: str, start: int) -> str:
        msgs = self.wait_for(target, lambda ms: any(t == type for t, _ in ms[start:]))
        return next(m for t, m in msgs[start:] if t == type)

    # -- invariants --------------------------------------------------------------

    @invariant()
    def count_steps(self) -> None:
        TOTALS["steps"] += 1

    @invariant()
    def messages_go_where_they_belong(self) -> None:
        with self.cv:
            new = self.log[self.checked :]
            self.checked = len(self.log)
        for target, type, message in new:
            TOTALS[f"sent_{type}"] += 1
            assert target in self.ever, f"{type} for {target!r}, which never had a session"
            if type == "answer":
                mid, pt = audio_mid_and_opus(message)
                tags_here = self.accepted.get(target, [])
                assert mid in tags_here, f"answer for {target!r} answers mid {mid!r}, an offer sent elsewhere"
                if mid in self.tags:
                    assert self.tags[mid] == (target, pt), f"answer for {target!r}: {mid} {pt} vs {self.tags[mid]}"
                at = tags_here.index(mid) if mid.startswith("m") else self.answered_upto.get(target, 0)
                assert at >= self.answered_upto.get(target, 0), f"answers for {target!r} out of order"
                self.answered_upto[target] = at
                self.current[target] = (ice_ufrag(message), mid or "")
            elif type == "offer":
                assert target in self.requested, f"an engine offer for {target!r}, which never asked for one"
                mid, _ = audio_mid_and_opus(message)
                self.current[target] = (ice_ufrag(message), mid or "")
            elif type == "candidate":
                value = json.loads(message)
                ufrag, mid = self.current.get(target, (None, None))
                assert value.get("sdpMid") == mid, f"candidate for {target!r} has mid {value.get('sdpMid')}, not {mid}"
                if value.get("candidate"):
                    assert value.get("usernameFragment") == ufrag, (
                        f"candidate for {target!r} belongs to ufrag {value.get('usernameFragment')}, not {ufrag}")
            elif type == "bye":
                if message in ("sink removed", "shutdown"):
                    self.got_byes[(target, message)] += 1
                    assert self.got_byes[(target, message)] <= self.expected_byes[(target, message)], (
                        f"unexpected bye ({message}) for {target!r}")
                else:  # the engine reaped a failed peer: the model follows
                    assert message in ("failed", "closed", "disconnected"), message
                    self.reaped.add(target)
                    TOTALS["reaped"] += 1
            else:
                pytest.fail(f"unknown outgoing type {type!r}")

    @invariant()
    def sessions_and_stats_agree_with_the_model(self) -> None:
        if self.closed:
            for call in (self.eng.listeners, self.eng.stats):
                with pytest.raises(sinkcast.EngineClosedError):
                    call()
            return
        engine = self.eng.listeners()
        model = sorted(self.sessions)
        if engine != model:
            # Only a session the engine reaped (its peer failed) may be missing; follow it.
            missing = set(model) - set(engine)
            assert not set(engine) - set(model) and missing <= self.reaped | missing, (engine, model)
            self.messages_go_where_they_belong()
            assert missing <= self.reaped, f"sessions gone without a reason: {sorted(missing - self.reaped)}"
            for target in missing:
                del self.sessions[target]
            model = sorted(self.sessions)
        assert engine == model
        stats = self.eng.stats()
        assert set(stats["sinks"]) == self.sinks
        assert stats["listeners"] == len(model)
        for sink in self.sinks:
            assert sorted(stats["sinks"][sink]["listeners"]) == sorted(t for t, s in self.sessions.items()
                                                                       if s.sink == sink)
        # One WebRTC peer per session, no more (a closed one may take a moment to be freed).
        if stats["live_peers"] - self.peers_at_start != len(model):
            TOTALS["live_peer_waits"] += 1
            wait_until(lambda: self.eng.stats()["live_peers"] - self.peers_at_start == len(model), 5.0)

    def teardown(self) -> None:
        try:
            if not self.closed:
                # Every session still open got its answer (or, engine-offered, its offer). A session
                # closed straight after opening may not have: the answer is generated asynchronously.
                for target, session in self.sessions.items():
                    wanted = "offer" if session.kind == "engine_offer" else "answer"
                    if session.kind != "engine_answered":
                        self.wait_for_message(target, wanted, session.mark)
                for target in self.sessions:
                    self.expected_byes[(target, "shutdown")] += 1
                self.eng.shutdown()
            # shutdown() has drained the dispatcher: every message is in the log now.
            self.messages_go_where_they_belong()
            expected = +self.expected_byes
            assert +self.got_byes == expected, f"byes: got {dict(self.got_byes)}, expected {dict(expected)}"
            wait_until(lambda: live_peers() == self.peers_at_start, 10.0)
        finally:
            for probe in self.probes:
                probe.close()
            self.eng.shutdown()


def live_peers() -> int:
    with sinkcast.AudioManager(realtime=False) as probe_engine:
        return int(probe_engine.stats()["live_peers"])


def type_matches(e: BaseException, expected: type[BaseException]) -> bool:
    # Exact class: an UnknownSinkError is a KeyError, but a KeyError is not an UnknownSinkError.
    return type(e) is expected


def name(cls: type[BaseException] | None) -> str:
    return cls.__name__ if cls else "success"


def ice_ufrag(sdp: str) -> str:
    m = re.search(r"a=ice-ufrag:([^\r\n]*)", sdp)
    return m.group(1) if m else ""


# ---------------------------------------------------------------------------- the tests


def test_every_transform_of_every_recorded_offer_is_what_the_model_says() -> None:
    """The model's premise, checked directly: each base offer x transform is accepted or refused as stated."""
    with sinkcast.AudioManager(bind_address="127.0.0.1") as eng:
        eng.add_sink("s")
        wrong = []
        for base, sdp in BASE_OFFERS.items():
            for transform, (change, valid) in TRANSFORMS.items():
                try:
                    eng.handle_incoming_webrtc_signaling_message("s/x", "offer", change(retag(sdp, "mtest", 101)))
                    accepted = True
                except sinkcast.SignalingError:
                    accepted = False
                if accepted != valid:
                    wrong.append((base, transform, accepted))
                eng.handle_incoming_webrtc_signaling_message("s/x", "bye", "")
        assert not wrong, wrong


SignalingMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestSignalingModel = SignalingMachine.TestCase


def test_zz_print_totals() -> None:
    """Not a check: prints how much the state machine did in this run (for docs/reliability.md)."""
    print(f"\nstate machine totals: {dict(TOTALS)}")
