"""Reliability in child processes: interpreter exit, SIGINT, and a thread storm.

Each scenario runs a script from tests/helpers_subprocess/ in a fresh
interpreter with this process's environment (so PYTHONPATH reaches the same
build). Every child runs with faulthandler on; a child that overstays its
budget gets SIGABRT, which makes it print every thread's stack into the
failure message, and then SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parent / "helpers_subprocess"
EXIT_RUNS = 50
EXIT_VARIANTS = 7  # see exit_with_listeners.py
EXIT_BUDGET_S = 10.0
PARALLEL = 3
STORM_SECONDS = 10.0

# What must never appear on a child's stderr. "leaked" catches nanobind's
# "nanobind: leaked N instances/types/functions" report at shutdown.
FORBIDDEN = ("leaked", "Traceback", "Fatal Python error", "Segmentation fault", "terminate called",
             "Exception ignored", "AddressSanitizer")


@dataclass
class Child:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    marker_at: float | None  # monotonic time the child printed its marker line
    ended_at: float
    timed_out: bool


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT on a hung child dumps every thread's stack
    env.pop("PYTHONDEVMODE", None)
    return env


def start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HELPERS / script), *args],
        cwd=HELPERS,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str, bool]:
    try:
        out, err = proc.communicate(timeout=timeout)
        return out, err, False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return out, err, True


def run_until_marker(script: str, args: list[str], marker: str, setup_timeout: float, exit_budget: float) -> Child:
    """Runs a child; times its exit from the moment it prints a line starting with `marker`.

    The child prints the marker with its own time.monotonic() (the same clock
    across processes on Linux) as the second word."""
    proc = start(script, *args)
    assert proc.stdout is not None
    marker_at = None
    lines: list[str] = []
    # Read line by line until the marker; a child that never gets there is a
    # failure too. One that hangs silently would block readline() for good:
    # past the setup time it gets SIGABRT (its stacks go to stderr), and
    # readline() then meets the end of its output.
    aborted = threading.Event()

    def abort() -> None:
        aborted.set()
        proc.send_signal(signal.SIGABRT)

    watchdog = threading.Timer(setup_timeout, abort)
    watchdog.start()
    try:
        while True:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith(marker):
                marker_at = float(line.split()[1])
                break
    finally:
        watchdog.cancel()
    if marker_at is None:
        out, err, timed_out = finish(proc, 5)
        timed_out = timed_out or aborted.is_set()
        return Child(args, proc.returncode, "".join(lines) + out, err, None, time.monotonic(), timed_out)
    remaining = max(0.1, marker_at + exit_budget - time.monotonic())
    out, err, timed_out = finish(proc, remaining)
    ended_at = time.monotonic()
    return Child(args, proc.returncode, "".join(lines) + out, err, marker_at, ended_at, timed_out)


def forbidden_in(stderr: str) -> list[str]:
    return [word for word in FORBIDDEN if word in stderr]


def describe(child: Child) -> str:
    return (f"child {child.args}: rc={child.returncode} timed_out={child.timed_out}\n"
            f"--- stdout ---\n{child.stdout[-2000:]}\n--- stderr ---\n{child.stderr[-6000:]}")


# ---------------------------------------------------------------------------- interpreter exit


def test_interpreter_exit_with_listeners_and_callbacks_in_flight_50_runs() -> None:
    """50 children each leave the interpreter with two probes receiving audio, a
    slow callback mid-delivery with more queued, and no shutdown() call."""

    def one(i: int) -> Child:
        return run_until_marker("exit_with_listeners.py", [str(i % EXIT_VARIANTS)], "EXITING",
                                setup_timeout=60.0, exit_budget=EXIT_BUDGET_S)

    t0 = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        children = list(pool.map(one, range(EXIT_RUNS)))
    wall = time.monotonic() - t0

    problems = []
    exit_times = []
    for child in children:
        if child.marker_at is None:
            problems.append("never reached its exit point\n" + describe(child))
            continue
        exit_s = child.ended_at - child.marker_at
        exit_times.append(exit_s)
        if child.timed_out or exit_s > EXIT_BUDGET_S:
            problems.append(f"took {exit_s:.1f} s to exit\n" + describe(child))
        elif child.returncode != 0:
            problems.append("nonzero exit code\n" + describe(child))
        elif forbidden_in(child.stderr):
            problems.append(f"stderr has {forbidden_in(child.stderr)}\n" + describe(child))
    print(f"\n{len(children)} exits in {wall:.1f} s ({PARALLEL} at a time); exit after the last line: "
          f"median {sorted(exit_times)[len(exit_times) // 2]:.2f} s, max {max(exit_times):.2f} s"
          if exit_times else "")
    assert not problems, f"{len(problems)} of {EXIT_RUNS} runs failed; the first:\n{problems[0]}"


def test_the_program_may_end_while_a_daemon_thread_renders() -> None:
    """A daemon thread inside render() (GIL released) when the program ends: the
    exit hook waits for it to have the GIL back. It used to abort the process."""
    for run in range(5):
        child = run_until_marker("exit_while_rendering.py", [], "EXITING", 30.0, EXIT_BUDGET_S)
        assert child.returncode == 0 and not child.timed_out, describe(child)
        assert not forbidden_in(child.stderr), describe(child)


@pytest.mark.parametrize("mode", ["shutdown", "collect", "allocate"])
def test_program_ends_while_a_daemon_thread_makes_and_drops_engines(mode: str) -> None:
    """A daemon thread setting callbacks and shutting engines down (itself, or
    through the cycle collector) as the program ends. It used to abort the
    process in every run."""
    for run in range(4):
        child = run_until_marker("exit_while_churning_engines.py", [mode], "EXITING", 30.0, EXIT_BUDGET_S)
        assert child.returncode == 0 and not child.timed_out, describe(child)
        assert not forbidden_in(child.stderr), describe(child)


def test_program_ends_while_a_daemon_thread_runs_python_inside_a_call() -> None:
    """A daemon thread inside set_python_webrtc_signaling_callback(), running
    inspect's Python code, as the program ends. CPython unwinds such a thread;
    nanobind caught that unwinding and the process died of SIGSEGV in about one
    exit in seven (6 of 40 runs of this child), now parked as CPython 3.14 does."""
    for run in range(16):
        delay = f"{0.05 + 0.03 * (run % 8):.2f}"
        child = run_until_marker("exit_while_python_runs_inside_a_call.py", [delay], "EXITING", 30.0, EXIT_BUDGET_S)
        assert child.returncode == 0 and not child.timed_out, describe(child)
        assert not forbidden_in(child.stderr), describe(child)


@pytest.mark.parametrize("script", ["exit_while_the_callback_runs.py", "exit_while_pushing_dlpack.py"])
def test_program_ends_while_python_runs_on_an_engine_thread_or_in_a_conversion(script: str) -> None:
    """The signaling callback still running Python code at the end (it shut its own
    engine down first); or a daemon thread inside push() running an array's
    __dlpack__ written in Python. CPython unwinds such threads; that unwinding
    released a GIL not held ("Fatal Python error", every run) or met nanobind's
    noexcept conversion (an abort, 17 of 20 runs). Both threads are parked now."""
    for run in range(8):
        child = run_until_marker(script, [str(run)], "EXITING", 30.0, EXIT_BUDGET_S)
        assert child.returncode == 0 and not child.timed_out, describe(child)
        assert not forbidden_in(child.stderr), describe(child)


@pytest.mark.parametrize("mode", ["finishes", "never"])
def test_program_ends_while_a_collected_engines_callback_still_runs(mode: str) -> None:
    """The cycle collector shut an engine down without waiting for its callback
    in progress, which still holds the engine when the program ends. The exit
    waits for that callback (it finishes and prints), or gives up after 10 s
    on one that never ends; either way quietly, with nothing reported leaked."""
    child = run_until_marker("exit_while_a_collected_engines_callback_runs.py", [mode], "EXITING", 30.0,
                             EXIT_BUDGET_S + 15.0)
    assert child.returncode == 0 and not child.timed_out, describe(child)
    assert "COLLECTED" in child.stdout, describe(child)
    assert not forbidden_in(child.stderr), describe(child)
    if mode == "finishes":
        assert child.stdout.rstrip().endswith("CALLBACK DONE"), describe(child)


def test_the_leak_check_can_see_a_leak() -> None:
    """Positive control: a child that leaks an AudioManager on purpose trips the stderr check."""
    child = run_until_marker("leak_control.py", [], "EXITING", setup_timeout=30.0, exit_budget=EXIT_BUDGET_S)
    assert child.returncode == 0, describe(child)
    assert "leaked" in forbidden_in(child.stderr), describe(child)


# ---------------------------------------------------------------------------- SIGINT


@pytest.mark.parametrize("mode", ["sleep", "busy", "wait"])
def test_sigint_during_streaming_exits_cleanly(mode: str) -> None:
    proc = start("sigint_streaming.py", mode)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "STREAMING":
        out, err, _ = finish(proc, 10)
        pytest.fail(f"the child never started streaming: {line!r}{out}\n{err[-4000:]}")
    time.sleep(1.0)  # let it stream (and, in 'busy', churn) for a while
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err, timed_out = finish(proc, 10.0)
    took = time.monotonic() - sent
    print(f"\nSIGINT ({mode}): exited {proc.returncode} after {took:.2f} s; {out.strip()}")
    child = Child([mode], proc.returncode, out, err, sent, time.monotonic(), timed_out)
    assert not timed_out and took <= 10.0, describe(child)
    assert proc.returncode == 0, describe(child)
    assert "INTERRUPTED" in out and "still_streaming=True" in out, describe(child)
    assert not forbidden_in(err), describe(child)


# ---------------------------------------------------------------------------- thread storm


def test_thread_storm_has_no_deadlock_and_no_crash() -> None:
    """8 threads of random signaling and stats() while 20 listeners churn, under a watchdog."""
    proc = start("thread_storm.py", str(STORM_SECONDS), "20240601")
    out, err, timed_out = finish(proc, STORM_SECONDS + 90.0)
    child = Child(["storm"], proc.returncode, out, err, None, time.monotonic(), timed_out)
    assert not timed_out, "the storm child hung (watchdog of the parent)\n" + describe(child)
    lines = [l for l in out.splitlines() if l.startswith("{")]
    assert lines, "no result line (the child's faulthandler watchdog fired, or it crashed)\n" + describe(child)
    result = json.loads(lines[-1])
    counts = result["counts"]
    print(f"\nstorm: {json.dumps(result)}")
    assert proc.returncode == 0, describe(child)
    assert not result["failures"], result["failures"]
    assert not result["bad_targets"], result["bad_targets"]
    assert result["listeners_after_byes"] == []
    assert result["final_listener_ok"]
    assert result["live_peers_after_shutdown"] == 0
    # It was a storm: many calls of every kind actually happened.
    storm_calls = counts.get("storm_ok", 0) + counts.get("storm_SignalingError", 0) + counts.get("storm_UnknownSinkError", 0)
    assert storm_calls > 2000, counts
    assert counts.get("stats", 0) > 200, counts
    assert counts.get("churn_offers", 0) > 20, counts  # 84-150 seen, fewer under load
    assert counts.get("real_connected_protected", 0) >= 3 and counts.get("real_not_connected_protected", 0) == 0, counts
    assert counts.get("sink_flaps", 0) > 10, counts
    assert not forbidden_in(err), describe(child)


def test_the_default_engine_is_shut_down_at_exit_and_no_new_engine_starts_after() -> None:
    child = subprocess.run(
        [sys.executable, str(HELPERS / "default_instance_exit.py")],
        cwd=HELPERS, env=child_env(), capture_output=True, text=True, timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert "BEFORE-EXIT sinks=['kitchen']" in child.stdout, child.stdout
    # Open would mean the exit hook left it running.
    assert "AFTER-HOOK closed=True" in child.stdout, child.stdout + child.stderr
    # A new engine there would outlive the hook: its threads met the interpreter finalizing (an abort).
    refusals = [line for line in child.stdout.splitlines() if line.startswith("NEW-ENGINE")]
    assert len(refusals) == 2 and all("the program is ending" in line for line in refusals), child.stdout
    assert not forbidden_in(child.stderr), child.stderr


# ---------------------------------------------------------------------------- fork()


def run_fork_child(*args: str) -> tuple[dict[str, object], dict[str, object], str]:
    proc = start("fork_child.py", *args)
    out, err, timed_out = finish(proc, 90.0)
    child = Child(["fork", *args], proc.returncode, out, err, None, time.monotonic(), timed_out)
    assert not timed_out and proc.returncode == 0, describe(child)
    results = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1])
               for line in out.splitlines() if line.startswith(("CHILD ", "PARENT "))}
    assert set(results) == {"CHILD", "PARENT"}, describe(child)
    assert not forbidden_in(err), describe(child)
    return results["CHILD"], results["PARENT"], describe(child)


def test_a_forked_child_exits_cleanly_and_refuses_the_engine_it_inherited() -> None:
    """fork() while an engine streams: the child's copy has none of the engine's
    threads. Each call on it says why it cannot run, shutdown() returns, a new
    engine mixes but cannot open a listener (libdatachannel's threads are the
    parent's), and the child's normal exit neither crashes nor hangs (it used to
    crash in the exit hook, joining threads the child does not have). The
    parent's listener streams on."""
    child, parent, report = run_fork_child("streaming")
    assert parent["child_exit_code"] == 0, report
    assert child["closed"] is True
    # A tap the parent's clock may have been writing at the fork: its lock may be held for good.
    assert child["tap_closed"] is True and "opened before the process forked" in str(child["tap_read"]), child
    refusals = child["refusals"]
    assert isinstance(refusals, dict) and len(refusals) == 6
    for call, message in refusals.items():
        assert "before it forked this one" in message and "'spawn'" in message, (call, message)
    assert child["shut_down"] is True
    assert child["rendered_peak"] == pytest.approx(0.5, abs=0.01)
    assert "this process was forked from it" in str(child["new_engine_listener"]), child
    assert child["new_engine_listeners"] == []
    assert parent["probe_connected"] is True and parent["listeners"] == ["s/p"], parent


def test_a_forked_child_may_start_webrtc_if_its_parent_never_did() -> None:
    child, parent, report = run_fork_child("mixing")
    assert parent["child_exit_code"] == 0, report
    assert child["offer_has_audio"] is True


@pytest.mark.parametrize("status", [0, 3])
def test_a_child_forked_inside_the_signaling_callback_ends_when_the_callback_does(status: int) -> None:
    """Its one thread is the engine's dispatcher thread: returning from the
    callback (or raising SystemExit) ends it like a finished program. It used
    to abort (Fatal Python error: init_threadstate) at the next delivery."""
    child, parent, report = run_fork_child("callback", str(status))
    assert child["closed"] is True
    assert parent["child_exit_code"] == status, report
    assert parent["listeners"] == ["s/x"]
