"""Run a command that dies with the process that started it, even when that process is SIGKILLed.

``python -m extra_cot.lifeline PARENT_PID -- CMD...`` starts ``CMD`` as its child and waits.
When ``PARENT_PID`` is no longer its parent (the parent died, however: the kernel re-parents this
process), it stops its whole process group: SIGTERM, then SIGKILL after a grace period. Start it
with ``start_new_session=True`` (see :func:`popen`) so that group is exactly this tree: the vLLM
server with its engine processes (``extra_cot.eval.server``), a math-verify worker
(``extra_cot.grading``).

Why a separate process instead of ``PR_SET_PDEATHSIG`` or a thread: Linux sends the death signal
when the *thread* that started the child exits (a reward-worker thread, not the process), and a
watchdog thread inside a busy worker cannot run while sympy holds the GIL in one C call for
minutes. This process does nothing but wait, so it always notices. A SIGTERM sent to the group
(a normal stop) reaches ``CMD`` directly; this process then exits with ``CMD``'s exit code.
Imports only the standard library (it starts in ~30 ms).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

#: How often the parent is checked; a killed parent's children are gone within ~this + GRACE_S.
POLL_S = 0.5
#: Time CMD gets to exit on SIGTERM after the parent died, before the group is SIGKILLed.
GRACE_S = 10.0


def command(cmd: list[str], parent_pid: int | None = None) -> list[str]:
    """``cmd`` wrapped so it dies with ``parent_pid`` (default: this process)."""
    return [sys.executable, "-m", "extra_cot.lifeline", str(parent_pid or os.getpid()), "--", *cmd]


def popen(cmd: list[str], **kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` of ``cmd`` in a new session, tied to this process's life.

    The returned process is the lifeline; signal its group (``os.killpg(proc.pid, sig)``) to
    stop everything. ``PYTHONPATH`` gets the import root of this package, so the lifeline module
    is found even when only ``sys.path`` (not the environment) holds it.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(kwargs.pop("env", None) or os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return subprocess.Popen(command(cmd), start_new_session=True, env=env, **kwargs)


def _stop_group() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(os.getpgrp(), signal.SIGTERM)


def _exit_like(code: int) -> int:
    """CMD's exit status as ours; killed by a signal: die of the same signal (caller sees -N)."""
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m extra_cot.lifeline PARENT_PID -- CMD [ARGS...]", file=sys.stderr)
        return 2
    parent, cmd = int(argv[0]), argv[2:]
    # A group-wide SIGTERM (a normal stop) is for CMD; this process waits for CMD's exit code.
    signal.signal(signal.SIGTERM, lambda *_: None)
    child = subprocess.Popen(cmd)  # inherits stdin/stdout/stderr and this process group
    # Drop our copies of the pipes: the caller must see EOF the moment CMD dies.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    while True:
        try:
            return _exit_like(child.wait(timeout=POLL_S))
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:  # the parent died: take the group down
            _stop_group()
            try:
                child.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            os.killpg(os.getpgrp(), signal.SIGKILL)  # ends this process too
            return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
