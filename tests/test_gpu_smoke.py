"""examples/gpu_smoke.sh --dry-run: works without a GPU, from any directory, and prints the GPU path's parts
(tiny model built here, ZeRO-3 bf16 SFT, vLLM eval of two ratios, 2 CHRPO steps, merge) with absolute paths
that exist or are the run's own outputs; every check it would run on the GPU parses."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "gpu_smoke.sh"
PARTS = ["preflight", "model", "sft", "eval", "rl", "merge"]


def _dry_run(cwd: Path, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHON": sys.executable, **env}
    full.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run(["bash", str(SCRIPT), "--dry-run"], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False, env=full)


def _commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def test_dry_run_prints_every_part_with_absolute_paths(tmp_path):
    out = tmp_path / "smoke"
    done = _dry_run(tmp_path, OUT="smoke")  # relative OUT: taken from the current directory
    assert done.returncode == 0, done.stderr
    assert re.findall(r"^== (\w+)", done.stdout, flags=re.MULTILINE) == PARTS + ["summary"]
    summary = done.stdout.split("== summary", 1)[1].splitlines()[1:]
    assert [line.split()[0] for line in summary] == PARTS and all("(dry run)" in line for line in summary)
    cmds = _commands(done.stdout)
    train = next(c for c in cmds if "llamafactory-cli" in c)
    kv = dict(w.split("=", 1) for w in train if re.fullmatch(r"[\w.]+=.*", w))
    assert kv["bf16"] == "true" and kv["max_steps"] == "2" and kv["NPROC_PER_NODE"] == "1"
    assert Path(kv["deepspeed"]).is_file() and '"stage": 3' in Path(kv["deepspeed"]).read_text()
    assert any(c[:2] == ["vllm", "serve"] for c in cmds)
    ev = next(c for c in cmds if c[:2] == ["extra-cot", "eval"])
    assert ev[ev.index("--ratios") + 1] == "0.2,1.0"
    rl = next(c for c in cmds if str(REPO / "examples/run_qwen3-1.7b_chrpo.sh") in c)
    assert "trainer.total_training_steps=2" in rl and "N_GPUS=1" in rl
    assert any("verl.model_merger" in c for c in cmds)
    paths = {w.split("=", 1)[-1].split(":")[0] for c in cmds for w in c[1:] if "/" in w}
    assert not sorted(p for p in paths if not p.startswith("/")), paths
    dangling = sorted(p for p in paths if not Path(p).exists() and not p.startswith(f"{out}/"))
    assert not dangling, dangling


def test_every_gpu_check_parses_in_the_dry_run(tmp_path):
    done = _dry_run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(checks: ") == len(PARTS) and "BROKEN CHECK" not in done.stderr
    # a broken check is caught: the same script with a syntax error in one check
    broken = tmp_path / "gpu_smoke.sh"
    broken.write_text(SCRIPT.read_text().replace("assert torch.cuda.is_available()", "assert torch.cuda.is_available("))
    (tmp_path / "deepspeed").mkdir()
    done = subprocess.run(["bash", str(broken), "--dry-run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 1 and "BROKEN CHECK" in done.stderr


def test_unknown_argument_is_refused():
    done = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "unknown argument" in done.stderr
