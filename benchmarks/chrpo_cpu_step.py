"""Where a real CHRPO step spends its time: verl's own timers, ``chrpo`` vs verl's ``grpo``.

    python benchmarks/chrpo_cpu_step.py --steps 4

Builds the tiny format-trained model and RL data of the slow test (``extra_cot.testing``), then
runs verl's real ``main_ppo +algorithm=chrpo`` on the CPU platform twice with the same seed,
sizes and reward manager (``chrpo``): once with ``algorithm.adv_estimator=chrpo`` and once with
``algorithm.adv_estimator=grpo``. From verl's step metrics (``timing_s/*``) it prints the mean
time per phase over steps 2..N (step 1 includes first-call warm-up) and the chrpo/grpo ratio, so
the estimator's share of a real step is measured rather than assumed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PHASES = ("gen", "reward", "old_log_prob", "ref", "adv", "update_actor", "update_weights", "step")


def run(estimator: str, model: Path, data: Path, work: Path, steps: int, batch: int, n: int) -> dict[str, float]:
    metrics = work / f"{estimator}_metrics.jsonl"
    argv = [sys.executable, "-m", "extra_cot.rl.cpu_launch", str(model), str(data), "--metrics", str(metrics),
            f"algorithm.adv_estimator={estimator}", f"data.train_batch_size={batch}",
            f"actor_rollout_ref.rollout.n={n}", f"actor_rollout_ref.actor.ppo_mini_batch_size={batch}",
            "data.max_prompt_length=128", "data.max_response_length=64", "actor_rollout_ref.rollout.max_model_len=256",
            f"trainer.total_training_steps={steps}", "trainer.total_epochs=100",
            f"trainer.default_local_dir={work / estimator / 'ckpt'}"]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, cwd=work)
    (work / f"{estimator}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{estimator} run failed (log: {work / f'{estimator}.log'}):\n{proc.stderr[-3000:]}")
    per_step: dict[int, dict] = {}
    for line in metrics.read_text().splitlines():
        row = json.loads(line)
        per_step.setdefault(int(row["step"]), {}).update(row["data"])
    timed = [per_step[s] for s in sorted(per_step) if s >= 2 and "timing_s/step" in per_step[s]]
    if not timed:
        raise SystemExit(f"{estimator}: no timed steps >= 2 in {metrics}")
    return {p: sum(m.get(f"timing_s/{p}", 0.0) for m in timed) / len(timed) for p in PHASES} | {"n": len(timed)}


def table(results: dict[str, dict[str, float]]) -> str:
    chrpo, grpo = results["chrpo"], results["grpo"]
    lines = ["| phase | chrpo (s) | grpo (s) | chrpo / grpo | chrpo share of step |", "|---|---|---|---|---|"]
    for p in PHASES:
        ratio = chrpo[p] / grpo[p] if grpo[p] else float("nan")
        lines.append(f"| {p} | {chrpo[p]:.4f} | {grpo[p]:.4f} | {ratio:.2f} | {100 * chrpo[p] / chrpo['step']:.2f}% |")
    return "\n".join(lines) + f"\n\n(mean over steps 2..{int(chrpo['n']) + 1}; step 1 excluded as warm-up)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="training steps per run (>= 2; default 4)")
    parser.add_argument("--batch", type=int, default=4, help="prompts per step (default 4)")
    parser.add_argument("--n", type=int, default=4, help="rollouts per prompt (default 4)")
    parser.add_argument("--work", default=None, help="folder for models, data and logs (default: a temp dir)")
    args = parser.parse_args(argv)
    from extra_cot.testing import build_tiny_model, train_format_model, write_format_rl_data

    work = Path(args.work or tempfile.mkdtemp(prefix="chrpo_cpu_step_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    model = work / "sft"
    if not (model / "config.json").is_file():
        train_format_model(build_tiny_model(work / "base"), model)
    data = write_format_rl_data(model, work / "rl", n_train=args.batch * args.steps, n_val=2)
    results = {e: run(e, model, data, work, args.steps, args.batch, args.n) for e in ("chrpo", "grpo")}
    print(f"verl main_ppo on the CPU platform, tiny Qwen3, {args.batch} prompts x n={args.n}, "
          f"{args.steps} steps per estimator (logs: {work})\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
