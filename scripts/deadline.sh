#!/usr/bin/env bash
# Runs a command with a deadline:
#   scripts/deadline.sh SECONDS COMMAND [ARGS...]
# If the command is still running after SECONDS, this prints the stack of
# every thread of every process it started (gdb's native backtraces, when gdb
# is installed; Python's own frames come from pytest's faulthandler_timeout),
# then ends them all and exits with 124, as timeout(1) does.
# Why: a hang in CI otherwise runs out the CI's clock and says nothing about
# where it hung.
set -uo pipefail
limit=$1
shift
# A background command of a script starts with SIGINT and SIGQUIT ignored, and
# Python then leaves SIGINT ignored too (no KeyboardInterrupt): put them back.
# `trap -` cannot when this shell itself started with them ignored (run from a
# background job); env can (coreutils 8.31 and later).
reset_signals=()
env --default-signal=INT true 2>/dev/null && reset_signals=(env --default-signal=INT,QUIT)
( trap - INT QUIT; exec "${reset_signals[@]}" "$@" ) &
child=$!

descendants() {  # the process and all below it, parents first
    local pid=$1
    echo "$pid"
    for kid in $(pgrep -P "$pid"); do descendants "$kid"; done
}

# Ctrl-C reaches the command itself (same process group): wait for it to end
# as it chooses. A kill of this script ends the command too.
trap '' INT
trap 'kill -TERM $(descendants "$child") 2>/dev/null; exit 143' TERM

SECONDS=0  # bash's clock of elapsed seconds
while kill -0 "$child" 2>/dev/null; do
    if [ "$SECONDS" -ge "$limit" ]; then
        echo "[deadline] still running after ${limit} s: $*" >&2
        pids=$(descendants "$child")
        for pid in $pids; do
            echo "[deadline] process $pid: $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | cut -c1-200)" >&2
            if command -v gdb >/dev/null; then
                timeout 120 gdb -p "$pid" -batch -nx -iex 'set auto-load off' -ex 'set pagination off' \
                    -ex 'thread apply all bt' 2>&1 | grep -E '^(Thread |#)' >&2
            fi
        done
        kill -TERM $pids 2>/dev/null
        for _ in 1 2 3 4 5; do kill -0 "$child" 2>/dev/null || break; sleep 1; done
        kill -KILL $pids 2>/dev/null
        wait "$child" 2>/dev/null
        exit 124
    fi
    sleep 1
done
wait "$child"
