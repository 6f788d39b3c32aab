"""Where a real CHRPO step spends its time: verl's own timers, ``chrpo`` vs verl's ``grpo``, or one
setting against another.

    python benchmarks/chrpo_cpu_step.py --steps 4
    python benchmarks/chrpo_cpu_step.py --model runs/study/models/sft --data runs/chrpo_learning/rl \\
        --steps 3 --batch 8 --max-response-length 400 --prompt-lengths 384,128

Without ``--model``/``--data`` it builds the tiny format-trained model and RL data of the slow test
(``extra_cot.testing``). Each variant is one run of verl's real ``main_ppo +algorithm=chrpo`` on the
CPU platform with the same seed, sizes and reward manager (``chrpo``): by default
``algorithm.adv_estimator=chrpo`` and ``=grpo``; with ``--prompt-lengths A,B`` the chrpo estimator at
``data.max_prompt_length`` A and B (verl pads every prompt to that length, and every response to
``data.max_response_length``, before the log-prob and update passes). From verl's step metrics
(``timing_s/*``) it prints the mean time per phase over steps 2..N (step 1 includes first-call
warm-up) and each variant's ratio to the first, so a phase's share of a real step is measured rather
than assumed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PHASES = ("gen", "reward", "old_log_prob", "ref", "adv", "update_actor", "update_weights", "step")


def run(name: str, overrides: list[str], model: Path, data: Path, work: Path, args) -> dict[str, float]:
    slug = name.replace(" ", "_").replace("=", "")
    metrics = work / f"{slug}_metrics.jsonl"
    metrics.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "extra_cot.rl.cpu_launch", str(model), str(data), "--metrics", str(metrics),
            f"data.train_batch_size={args.batch}", f"actor_rollout_ref.rollout.n={args.n}",
            f"actor_rollout_ref.actor.ppo_mini_batch_size={args.batch}",
            f"data.max_prompt_length={args.max_prompt_length}", f"data.max_response_length={args.max_response_length}",
            f"actor_rollout_ref.rollout.max_model_len={args.max_prompt_length + args.max_response_length + 64}",
            f"trainer.total_training_steps={args.steps}", "trainer.total_epochs=100",
            f"trainer.default_local_dir={work / slug / 'ckpt'}", *overrides]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, cwd=work)
    (work / f"{slug}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{name} run failed (log: {work / f'{slug}.log'}):\n{proc.stderr[-3000:]}")
    per_step: dict[int, dict] = {}
    for line in metrics.read_text().splitlines():
        row = json.loads(line)
        per_step.setdefault(int(row["step"]), {}).update(row["data"])
    timed = [per_step[s] for s in sorted(per_step) if s >= 2 and "timing_s/step" in per_step[s]]
    if not timed:
        raise SystemExit(f"{name}: no timed steps >= 2 in {metrics}")
    return {p: sum(m.get(f"timing_s/{p}", 0.0) for m in timed) / len(timed) for p in PHASES} | {"n": len(timed)}


def table(results: dict[str, dict[str, float]]) -> str:
    """Mean seconds per phase of each variant, its ratio to the first variant, and the phase's share."""
    names = list(results)
    first = results[names[0]]
    head = " | ".join(f"{n} (s)" for n in names) + " | " + " | ".join(f"{n} / {names[0]}" for n in names[1:])
    lines = [f"| phase | {head} | share of a {names[0]} step |", "|" + "---|" * (2 * len(names) + 1)]
    for p in PHASES:
        ratios = [f"{results[n][p] / first[p]:.2f}" if first[p] else "nan" for n in names[1:]]
        lines.append(f"| {p} | " + " | ".join(f"{results[n][p]:.4f}" for n in names) + " | " + " | ".join(ratios)
                     + f" | {100 * first[p] / first['step']:.2f}% |")
    return "\n".join(lines) + f"\n\n(mean over steps 2..{int(first['n']) + 1}; step 1 excluded as warm-up)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="training steps per run (>= 2; default 4)")
    parser.add_argument("--batch", type=int, default=4, help="prompts per step (default 4)")
    parser.add_argument("--n", type=int, default=4, help="rollouts per prompt (default 4)")
    parser.add_argument("--model", default=None, help="a Stage-2 model folder (default: the tiny format-trained model)")
    parser.add_argument("--data", default=None, help="an `extra-cot build-rl` folder (default: the tiny model's data)")
    parser.add_argument("--max-prompt-length", type=int, default=128, help="data.max_prompt_length (default 128)")
    parser.add_argument("--max-response-length", type=int, default=64, help="data.max_response_length (default 64)")
    parser.add_argument("--prompt-lengths", default=None,
                        help="compare these data.max_prompt_length values (chrpo) instead of chrpo vs grpo, e.g. 384,128")
    parser.add_argument("--work", default=None, help="folder for models, data and logs (default: a temp dir)")
    args = parser.parse_args(argv)
    if (args.model is None) != (args.data is None):
        parser.error("give both --model and --data, or neither (the tiny model and its data)")
    work = Path(args.work or tempfile.mkdtemp(prefix="chrpo_cpu_step_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        from extra_cot.testing import build_tiny_model, train_format_model, write_format_rl_data

        model = work / "sft"
        if not (model / "config.json").is_file():
            train_format_model(build_tiny_model(work / "base"), model)
        data = write_format_rl_data(model, work / "rl", n_train=args.batch * args.steps, n_val=2)
    else:
        model, data = Path(args.model).resolve(), Path(args.data).resolve()
    if args.prompt_lengths:
        variants = {f"prompt {n}": ["algorithm.adv_estimator=chrpo", f"data.max_prompt_length={n}"]
                    for n in args.prompt_lengths.split(",")}
    else:
        variants = {e: [f"algorithm.adv_estimator={e}"] for e in ("chrpo", "grpo")}
    results = {name: run(name, overrides, model, data, work, args) for name, overrides in variants.items()}
    print(f"verl main_ppo on the CPU platform, {model.name}, {args.batch} prompts x n={args.n}, "
          f"{args.steps} steps per variant (logs: {work})\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
