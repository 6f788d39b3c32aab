"""A SIGKILLed parent takes its VLLMServer down: no server keeps the port (or the memory)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from extra_cot import lifeline


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _group_alive(pgid: int) -> bool:
    """A non-zombie process of group ``pgid`` exists (zombies wait for a reaper, they hold nothing)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                state, _ppid, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


@pytest.mark.slow
def test_sigkilled_parent_takes_the_vllm_server_down(tiny_model_dir, tmp_path):
    code = (
        "import sys, time; from extra_cot.eval.server import VLLMServer;"
        "s = VLLMServer(sys.argv[1], log_path=sys.argv[2], startup_timeout_s=400).start();"
        "print(s.port, s._proc.pid, flush=True); time.sleep(900)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code, str(tiny_model_dir), str(tmp_path / "vllm.log")],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        assert line, f"server did not start; log: {(tmp_path / 'vllm.log').read_text()[-3000:]}"
        port, group = map(int, line.split())
        assert _port_open(port)
    finally:
        parent.kill()  # SIGKILL: no __exit__, no atexit
        parent.wait()
    deadline = time.monotonic() + lifeline.POLL_S + lifeline.GRACE_S + 20
    while time.monotonic() < deadline and (_port_open(port) or _group_alive(group)):
        time.sleep(0.5)
    assert not _port_open(port), "the server still listens after its parent was killed"
    assert not _group_alive(group), "processes of the server's group outlived its parent"
