"""Run the demo's steps as subprocesses: visible progress, logs, resumable, timed.

State lives in ``OUT/demo_state.json``: per step ``done_at`` (time.time()) and ``wall_s``. A step
is skipped when its check passes and no earlier step finished after it; a step whose upstream
re-ran (or that is ``--force``d) has its outputs removed first, so commands that resume by
themselves (compress, eval) do not reuse stale partial results. A step that crashed keeps its
partial outputs, and the rerun resumes them.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from extra_cot.demo.config import DemoConfig, vllm_env
from extra_cot.demo.steps import PORT, SERVED_NAME, Step
from extra_cot.fileio import atomic_write_json

logger = logging.getLogger(__name__)

STATE_NAME = "demo_state.json"
#: Environment of every step: offline (docs/hosts.md: nothing can be downloaded), Ray auth off.
STEP_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "RAY_AUTH_MODE": "disabled", "DISABLE_VERSION_CHECK": "1"}


class StepFailed(RuntimeError):
    """A step's command exited non-zero; the message says what and how to rerun."""


def machine() -> str:
    """``nproc``, memory and CPU model of this machine (for the results file)."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        mem = f"{mem_kb / 1024 ** 2:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        mem = "unknown RAM"
    return f"{os.cpu_count()} cores ({model}), {mem}, {platform.system()} {platform.release()}"


def load_state(root: Path) -> dict:
    path = root / STATE_NAME
    return json.loads(path.read_text()) if path.is_file() else {"steps": {}}


def save_state(root: Path, state: dict) -> None:
    atomic_write_json(root / STATE_NAME, state)


def display(argv: list[str]) -> str:
    """A copy-pasteable form of a command (``{port}`` left as a placeholder), with this
    interpreter shown as ``python`` and its console scripts by name (no machine paths)."""
    bindir = Path(sys.executable).parent
    shown = []
    for i, arg in enumerate(argv):
        if i == 0 and arg == sys.executable:
            arg = "python"
        elif i == 0 and Path(arg).parent == bindir:
            arg = Path(arg).name
        shown.append(arg)
    return shlex.join(shown)


def print_steps(steps: list[Step]) -> None:
    """``--list``: every step's name, title, served model and command (demo and study)."""
    for i, step in enumerate(steps, 1):
        serve = f"   [served model: {' '.join([step.serve, *map(shlex.quote, step.serve_args)])}]" if step.serve else ""
        print(f"[{i}/{len(steps)}] {step.name}: {step.title}{serve}\n    {display(step.argv)}")


def _remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def stream(argv: list[str], log_path: Path) -> int:
    """Run ``argv``; echo its output live (tqdm bars included) and keep a copy in ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **STEP_ENV}
    with open(log_path, "wb") as log:
        log.write(f"$ {display(argv)}\n".encode())
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        try:
            while chunk := proc.stdout.read1(65536):
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                log.write(chunk)
        finally:
            code = proc.wait()
    return code


class ServerPool:
    """At most one vLLM server at a time, switched when a step needs another model."""

    def __init__(self, cfg: DemoConfig, logs: Path, state: dict) -> None:
        self.cfg, self.logs = cfg, logs
        self.server = None
        self.model: str | None = None
        self.args: tuple[str, ...] = ()
        self.starts: list[dict] = state.setdefault("server_starts", [])

    def ensure(self, model_dir: str, args: tuple[str, ...] = ()):
        """The server of ``model_dir`` started with ``args`` beyond ``--vllm-args`` (restarted for other args)."""
        if self.server is not None and self.model == model_dir and self.args == tuple(args):
            return self.server
        self.stop()
        from extra_cot.eval.server import VLLMServer

        name = Path(model_dir).name
        self.logs.mkdir(parents=True, exist_ok=True)  # a run whose first step serves a model
        server = VLLMServer(model_dir, served_model_name=SERVED_NAME, max_model_len=self.cfg.max_model_len,
                            log_path=self.logs / f"vllm_{name}.log", extra_args=[*shlex.split(self.cfg.vllm_args), *args],
                            env=vllm_env(self.cfg.vllm_reserved_cpus))
        print(f"\n--- starting vLLM for {model_dir} (log {server.log_path}; ~40 s for SmolLM2 on 2 cores eager)\n"
              f"    {' '.join([*server.env_words(), display(server.command())])}", flush=True)
        started = time.monotonic()
        server.start()
        wall = time.monotonic() - started
        print(f"--- vLLM ready at {server.base_url} after {wall:.0f} s", flush=True)
        self.starts.append({"model": model_dir, "startup_s": round(wall, 1)})
        self.server, self.model, self.args = server, model_dir, tuple(args)
        return server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server, self.model = None, None


def _rerun_hint(cfg: DemoConfig, step: Step, state: dict | None = None) -> str:
    """How to resume: the command of this run's last invocation (``record_invocation``: the demo, the study or
    the learning run, as it was started), else the demo's own."""
    invocations = (state or {}).get("invocations") or [{}]
    again = invocations[-1].get("command") or (
        f"{sys.executable} -m extra_cot.demo --out {shlex.quote(cfg.out)}" + (" --tiny" if cfg.tiny else ""))
    alone = display(step.argv)
    if step.serve:
        alone = (f"(with a server: {sys.executable} -m vllm.entrypoints.openai.api_server --model {step.serve} "
                 f"--served-model-name {SERVED_NAME} --port 8000{''.join(' ' + shlex.quote(a) for a in step.serve_args)})  then  "
                 + alone.replace(PORT, "8000"))
    return f"rerun the same command (resumes here): {again}\n  or this step alone: {alone}"


def _needs_run(step: Step, index: int, steps: list[Step], state: dict, force: set[str]) -> tuple[bool, bool, str]:
    """(run?, clean first?, why)."""
    done = state["steps"]
    rec = done.get(step.name)
    upstream = max((done[s.name]["done_at"] for s in steps[:index] if s.name in done), default=0.0)
    if step.name in force:
        return True, True, "forced (--force/--only)"
    if rec is not None and rec["done_at"] < upstream:
        return True, True, "an earlier step was redone"
    if rec is not None and rec.get("command") not in (None, display(step.argv)):
        return True, True, "its command changed (other flags than the last run)"
    if rec is not None and rec.get("ended_group"):
        return False, False, f"it ended {rec['ended_group']} last time: {rec.get('reason')}"
    reason = step.check()
    if reason is None:
        return False, False, "done"
    return True, False, reason


def run_steps(cfg: DemoConfig, steps: list[Step]) -> dict:
    """Run what is not done; return the state. Raises :class:`StepFailed` on the first failure."""
    root = cfg.root
    state = load_state(root)
    state.setdefault("steps", {})
    for flag, names in (("--force", cfg.force), ("--only", cfg.only), ("--until", [cfg.until] if cfg.until else [])):
        unknown = set(names) - {s.name for s in steps}
        if unknown:
            raise ValueError(f"{flag} {sorted(unknown)}: unknown step(s); valid: {[s.name for s in steps]}")
    pool = ServerPool(cfg, root / "logs", state)
    sampler = LoadSampler(state)
    ended: dict[str, str] = {}  # group -> why a step of it ended the group in this run (Step.ends_group_on)
    try:
        names = [s.name for s in steps]
        todo = steps[:names.index(cfg.until) + 1] if cfg.until else steps  # --until: the steps up to it
        for i, step in enumerate(todo, 1):
            head = f"[{i}/{len(steps)}] {step.name}: {step.title}"
            if step.group in ended:
                state["steps"].pop(step.name, None)  # no record of an earlier run may claim it done
                print(f"{head}\n    skip ({step.group} cannot run: {ended[step.group]})", flush=True)
                continue
            if cfg.only and step.name not in cfg.only:
                reason = step.check() if step.name not in ("summary", "report") else None
                if reason is not None and any(s.name in cfg.only for s in todo[i:]):
                    raise StepFailed(f"--only {','.join(cfg.only)}: the earlier step {step.name!r} is not done "
                                     f"({reason}); run it first (add it to --only, or drop --only)")
                print(f"{head}\n    skip (not in --only)", flush=True)
                continue
            run, clean, why = _needs_run(step, i - 1, steps, state, set(cfg.force) | set(cfg.only))
            if not run and state["steps"].get(step.name, {}).get("ended_group"):
                ended[step.group] = state["steps"][step.name]["reason"]
                print(f"{head}\n    skip ({why})", flush=True)
            elif not run:
                print(f"{head}\n    skip ({why}; outputs valid)", flush=True)
                state["steps"].setdefault(step.name, {"done_at": time.time(), "wall_s": None})
            else:
                print(f"\n{'=' * 100}\n{head}\n    why: {why}", flush=True)
                if clean:
                    _remove(step.clean)
                reason = _run_one(cfg, step, pool, state)
                if reason is not None:
                    ended[step.group] = reason
                save_state(root, state)
        if cfg.until:
            print(f"stopped after {cfg.until} (--until); later steps did not run", flush=True)
    finally:
        sampler.stop()
        pool.stop()
        save_state(root, state)
    return state


def record_invocation(root, argv: list[str], prog: list[str]) -> None:
    """Append this invocation (command, UTC start, load) to ``OUT/demo_state.json``: the summary's
    ``demo.json`` (and the study's ``study.json``) names the command(s) that produced the run."""
    from datetime import UTC, datetime

    state = load_state(root)
    state.setdefault("invocations", []).append({
        "command": shlex.join([*prog, *argv]),
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "code": code_version(),
    })
    save_state(root, state)


def code_version() -> dict:
    """Git commit of the package's checkout and whether its tracked files differ from it (None outside git):
    the results file names the exact code that produced it."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


class LoadSampler:
    """Samples the 1-minute load average every ``every_s`` seconds while the demo runs, into
    ``state["load_samples"]`` as ``[time.time(), load]`` (the results name the load they ran under)."""

    def __init__(self, state: dict, every_s: float = 30.0) -> None:
        import threading

        self.samples: list = state.setdefault("load_samples", [])
        self._stop = threading.Event()
        self._every = every_s
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        self.samples.append([round(time.time(), 1), round(os.getloadavg()[0], 2)])

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._sample()


def _last_line(log: Path) -> str | None:
    lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else None


def _run_one(cfg: DemoConfig, step: Step, pool: ServerPool, state: dict) -> str | None:
    """Run one step; ``None`` when it finished, else why its group cannot run (``Step.ends_group_on``)."""
    argv = list(step.argv)
    started = time.monotonic()
    if step.serve:
        server = pool.ensure(step.serve, step.serve_args)
        argv = [a.replace(PORT, str(server.port)) for a in argv]
    else:
        pool.stop()  # free the cores for CPU-heavy steps
    print(f"    $ {display(argv)}", flush=True)
    log = cfg.root / "logs" / f"{step.name}.log"
    code = stream(argv, log)
    wall = time.monotonic() - started
    if code != 0 and code in step.ends_group_on:
        reason = _last_line(log) or f"exit {code}"
        state["steps"][step.name] = {"done_at": time.time(), "wall_s": round(wall, 1), "command": display(step.argv),
                                     "ended_group": step.group, "reason": reason}
        print(f"    exit {code} after {wall:.0f} s: {step.group} cannot run, its later steps are skipped: {reason}",
              flush=True)
        return reason
    if code != 0:
        raise StepFailed(f"step {step.name!r} failed (exit {code}) after {wall:.0f} s\n  command: {display(argv)}\n"
                         f"  log: {log}\n  {_rerun_hint(cfg, step, state)}")
    reason = step.check() if step.name not in ("summary", "report") else None
    if reason is not None:
        raise StepFailed(f"step {step.name!r} exited 0 but its outputs are not valid: {reason}\n  log: {log}\n"
                         f"  {_rerun_hint(cfg, step, state)}")
    state["steps"][step.name] = {"done_at": time.time(), "wall_s": round(wall, 1), "command": display(step.argv)}
    print(f"    done in {wall:.0f} s", flush=True)
    return None
