"""extra_cot.lifeline: a command started under it dies with its parent, even a SIGKILLed one.

Waits poll for the effect with a generous ceiling (it only ends a broken run), never sleep a fixed
time and assume the other processes got the CPU meanwhile: the suite shares its machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from extra_cot import lifeline

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc (Linux)")


#: Ceiling of every wait below: far above the lifeline's own ~POLL_S reaction on a loaded machine.
WAIT_S = 120.0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(condition, what: str) -> None:
    end = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < end, f"not within {WAIT_S:.0f} s: {what}"
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(k) for k in f.read().split()]


def test_group_dies_with_a_sigkilled_parent():
    # parent: starts `sleep` (which ignores nothing) and a child of it, under a lifeline; prints pids
    code = (
        "import sys, time; from extra_cot import lifeline;"
        "p = lifeline.popen(['sh', '-c', 'sleep 300 & echo $!; sleep 300'], stdout=sys.stdout);"
        "print(p.pid, flush=True); time.sleep(300)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(parent.stdout.readline()) for _ in range(2)]  # the lifeline, the background sleep
        assert all(_alive(p) for p in pids)
        time.sleep(lifeline.POLL_S * 2)  # a living parent keeps them (a slow machine can only make
        assert all(_alive(p) for p in pids)  # this pass without checking, never fail without cause)
    finally:
        parent.kill()
        parent.wait()
    _wait_for(lambda: not any(_alive(p) for p in pids), "the group gone with its SIGKILLed parent")


def test_exit_code_and_group_stop_are_passed_through():
    proc = lifeline.popen([sys.executable, "-c", "import sys; sys.exit(7)"])
    assert proc.wait(timeout=WAIT_S) == 7
    proc = lifeline.popen(["sleep", "300"])
    # stop it once CMD runs (a SIGTERM before that would reach the lifeline alone, however slow
    # the machine is, instead of after a fixed sleep that a loaded machine may not cover)
    _wait_for(lambda: _children(proc.pid), "the lifeline started its command")
    os.killpg(proc.pid, signal.SIGTERM)  # how VLLMServer.stop stops it
    assert proc.wait(timeout=WAIT_S) == -signal.SIGTERM


def test_usage_error():
    assert lifeline.main(["123"]) == 2
