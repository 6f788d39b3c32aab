"""Demo Stage 3 for real: K CHRPO steps with verl on CPU, merge, evaluate next to the SFT model.

Steps (after ``build-rl``), each a real command:

* ``rl-train``: ``python -m extra_cot.rl.cpu_launch <sft model> <rl data> ...`` = verl's
  ``main_ppo +algorithm=chrpo`` on the CPU platform (``extra_cot.rl.cpu_platform``) for K steps,
  with verl's step metrics (``rl_train/metrics.jsonl``) and the record of our reward manager's
  and estimator's calls (``rl_train/calls.jsonl``);
* ``rl-merge``: ``python -m verl.model_merger merge`` of the last actor checkpoint -> ``models/rl``;
* ``eval-rl``: ``extra-cot eval`` of ``models/rl`` at the fixed ratios and in policy mode.

:func:`rl_train_section` turns those files into the summary's Stage 3 section.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from extra_cot.demo.rl_command import MINI_BATCH, TRAIN_BATCH
from extra_cot.eval.store import METRICS

#: Rollouts per prompt: docs/method.md Stage 3 (n = 4). Prompts per step: the demo's one batch constant.
RL_N = 4
RL_BATCH, RL_MINI_BATCH = TRAIN_BATCH, MINI_BATCH
#: Learning rate [R]: Thinkless's 1e-6 moves nothing visible in K steps; 1e-5 is still a small step.
RL_LR = 1e-5
#: Prompt budget: system + instruction + a demo/GSM8K question is ~100-250 SmolLM2 tokens.
RL_PROMPT_LEN = 384


def train_argv(cfg, p, model: Path, out: Path) -> list[str]:
    """The ``rl-train`` command (paths absolute: verl's workers run in Ray's own working dirs)."""
    return [
        sys.executable, "-m", "extra_cot.rl.cpu_launch", str(model.resolve()), str(p.rl.resolve()),
        "--metrics", str((out / "metrics.jsonl").resolve()), "--call-log", str((out / "calls.jsonl").resolve()),
        f"data.train_batch_size={RL_BATCH}", f"actor_rollout_ref.rollout.n={RL_N}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={RL_MINI_BATCH}",
        f"data.max_prompt_length={RL_PROMPT_LEN}", f"data.max_response_length={cfg.max_tokens}",
        f"actor_rollout_ref.rollout.max_model_len={cfg.max_model_len}",
        f"actor_rollout_ref.actor.optim.lr={RL_LR:g}",
        f"trainer.total_training_steps={cfg.rl_steps}", "trainer.total_epochs=100",
        f"trainer.save_freq={cfg.rl_steps}", "trainer.test_freq=-1", "trainer.val_before_train=false",
        f"trainer.default_local_dir={(out / 'ckpt').resolve()}",
        "trainer.experiment_name=demo-chrpo-cpu",
    ]


def merge_argv(ckpt_actor: Path, target: Path) -> list[str]:
    return [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
            "--local_dir", str(ckpt_actor), "--target_dir", str(target)]


def read_metrics(path: Path) -> dict[int, dict]:
    """verl's file-logger JSONL -> ``{step: merged metrics}``."""
    from extra_cot.fileio import read_jsonl

    per_step: dict[int, dict] = {}
    if path.is_file():
        for _, row in read_jsonl(path):
            per_step.setdefault(int(row["step"]), {}).update(row.get("data", {}))
    return per_step


def reward_steps(calls: list[dict]) -> list[dict]:
    """Training-split reward records grouped into steps: each estimator call closes one step."""
    steps, current = [], []
    for call in calls:
        if call.get("kind") == "reward" and call.get("split") != "val":
            current.append(call)
        elif call.get("kind") == "estimator":
            n = len(current)
            steps.append({
                "step": len(steps) + 1, "rollouts": n, **{k: _share(current, k) for k in ("valid", "correct", "calibrated")},
                "mean_score": sum(r["score"] for r in current) / n if n else 0.0,
                "tiers": dict(Counter(int(r["tier"]) for r in current)),
                "chosen": dict(Counter(f"{r['ratio']:.1f}" if r["ratio"] >= 0 else "none" for r in current)),
                "nonzero_adv_rows": call.get("nonzero_rows"),
            })
            current = []
    return steps


def _share(records: list[dict], key: str) -> float:
    return sum(1 for r in records if r.get(key)) / len(records) if records else 0.0


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _dist(dist: dict | None) -> str:
    if not dist:
        return "-"
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(dist.items()))


def rl_train_section(root: Path, dataset: str, order: tuple[str, ...]) -> tuple[str, dict]:
    """Markdown + JSON of the Stage 3 run: per-step rewards, chosen ratios before/after, eval rows."""
    from extra_cot.rl.calllog import read_calls

    out = root / "rl_train"
    metrics = read_metrics(out / "metrics.jsonl")
    steps = reward_steps(read_calls(out / "calls.jsonl"))
    if not steps:
        return "CHRPO training did not run (no `rl_train/calls.jsonl`).", {}
    lines = [("| step | rollouts | valid | correct | calibrated | mean score | tiers (0 invalid, 1 wrong, 2 correct) "
              "| adv != 0 rows | kl_loss | step time (s) |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for s in steps:
        m = metrics.get(s["step"], {})
        kl, wall = m.get("actor/kl_loss"), m.get("timing_s/step")
        lines.append(
            f"| {s['step']} | {s['rollouts']} | {_pct(s['valid'])} | {_pct(s['correct'])} | {_pct(s['calibrated'])} "
            f"| {s['mean_score']:.3f} | {s['tiers']} | {s['nonzero_adv_rows']} | {'-' if kl is None else f'{kl:.2e}'} "
            f"| {'-' if wall is None else f'{wall:.0f}'} |")
    evals = {"sft": _load(root / "eval" / dataset, order), "rl": _load(root / "eval_rl" / dataset, order)}
    before = (evals["sft"].get("policy") or {}).get("control_distribution")
    after = (evals["rl"].get("policy") or {}).get("control_distribution")
    rows = ["| ratio | model | Tokens | Acc@all (%) | realized ratio | closed think | first token |",
            "|---|---|---|---|---|---|---|"]
    for name in order:
        for model, runs in evals.items():
            m = runs.get(name)
            if m is None:
                continue
            dist = m.get("control_distribution") or {}
            top = max(dist.items(), key=lambda kv: kv[1]) if dist else None
            realized = m.get("realized_ratio")
            rows.append(f"| {name} | {model} | {m['tokens']:.1f} | {100 * m['acc_all']:.1f} | "
                        f"{'-' if realized is None else f'{realized:.2f}'} | {100 * m['closed_think_share']:.0f}% | "
                        f"{'-' if top is None else f'{top[0]} ({100 * top[1]:.0f}%)'} |")
    md = (
        "Per training step, from our reward manager's and estimator's call record (`rl_train/calls.jsonl`) and "
        "verl's step metrics (`rl_train/metrics.jsonl`):\n\n" + "\n".join(lines)
        + f"\n\nChosen ratio in policy mode on the held-out set: before (SFT) {_dist(before)}; "
        f"after {len(steps)} CHRPO steps (RL) {_dist(after)}.\n\n"
        + "Held-out evaluation, SFT model vs the merged RL checkpoint (`models/rl`):\n\n" + "\n".join(rows)
        + f"\n\nWhat {len(steps)} steps can show: that verl's real trainer runs CHRPO end to end here (rollouts "
        "from vLLM, our reward and estimator on every step, an optimizer step, weight sync, checkpoint, merge, "
        "a servable model), and how the reward tiers spread over a batch. What they cannot show: a learning "
        f"effect. {len(steps)} x {RL_BATCH} prompts at lr {RL_LR:g} move the weights only slightly, so differences "
        "between the SFT and RL rows are within sampling noise of a small held-out set; Thinkless/Extra-CoT "
        "train for hundreds of steps on GPUs."
    )
    return md, {"steps": steps, "policy_before": before, "policy_after": after,
                "eval": {k: v for k, v in evals.items()}, "rl_steps": len(steps)}


def _load(dataset_dir: Path, order: tuple[str, ...]) -> dict[str, dict]:
    return {name: json.loads((dataset_dir / name / METRICS).read_text())
            for name in order if (dataset_dir / name / METRICS).is_file()}
