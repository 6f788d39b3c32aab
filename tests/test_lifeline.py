"""extra_cot.lifeline: a command started under it dies with its parent, even a SIGKILLed one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from extra_cot import lifeline

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc (Linux)")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


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
        time.sleep(lifeline.POLL_S * 2)
        assert all(_alive(p) for p in pids)  # a living parent keeps them
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + lifeline.GRACE_S + 5
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)


def test_exit_code_and_group_stop_are_passed_through():
    proc = lifeline.popen([sys.executable, "-c", "import sys; sys.exit(7)"])
    assert proc.wait(timeout=30) == 7
    proc = lifeline.popen(["sleep", "300"])
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)  # how VLLMServer.stop stops it
    assert proc.wait(timeout=30) == -signal.SIGTERM


def test_usage_error():
    assert lifeline.main(["123"]) == 2
