"""CHRPO vs GRPO from one SFT checkpoint, with verl's real ``main_ppo`` on this CPU (issue 18).

``python benchmarks/chrpo_learning.py --study runs/study --results results`` runs these steps
(the demo's resumable runner, :mod:`extra_cot.demo.runner`; each step a real command):

1. ``data``: RL questions generated with the study's seed *after* its train/policy/val/test rows
   (the generator is prefix-stable and its questions distinct, so none is in any study split),
   of the study's task and grades (``OUT/data/rl.jsonl``);
2. ``explore``: ``python -m extra_cot.study.choice`` on them: the SFT model's ``<COMP_AUTO>`` choice as a
   rollout samples it (``--rollout-temperature``, ``--rollout-top-p``, groups of ``--rollout-n``); the run
   stops here when fewer than ``--min-explorable`` of the rollout groups would hold two different choices,
   since then the groups choose alike and no group estimator can move the choice (``OUT/sft_choice.json``;
   the record's ``sft.choice_on_rl``);
3. ``sweep``: the study's SFT model (``STUDY/models/sft``) at 0.2 … 1.0 on them, pass@k (vLLM);
4. ``build-rl``: ``extra-cot build-rl`` → verl parquet with γ*(x), ``ref_full_len`` (the paper's rule, with
   ``--rl-tolerance`` as its window and calibration band; quotas off);
5. ``train-chrpo`` / ``train-grpo``: ``python -m extra_cot.rl.cpu_launch`` = ``main_ppo
   +algorithm=chrpo`` on the CPU platform, K steps each, same model, parquet, data seed, batch,
   rollouts, lr and reward (the CHRPO reward manager); the GRPO arm only sets
   ``algorithm.adv_estimator=grpo`` (verl's own estimator; no control-token weight);
6. ``merge-*``: ``python -m verl.model_merger`` → ``OUT/models/{chrpo,grpo}``;
7. ``eval-{sft,chrpo,grpo}``: ``<COMP_AUTO>`` (policy mode) on the study's held-out split (``--split``);
8. ``report``: ``OUT/chrpo_learning.{json,md,png}`` (``--results``: also into ``RESULTS/``, named by the
   study's task: ``chrpo_learning`` for ``chains``, ``chrpo_learning_varied`` for ``varied``).

Per training step and arm (from the reward manager's call record and verl's step metrics): mean
reward, tier shares, the chosen ratio overall and per grade, the share of rollouts that chose
γ*(x) or lower and answered correctly, mean think tokens, KL loss, and where the step's time went
(verl's ``timing_s/*``). Held out: accuracy (Wilson 95 %), think tokens (bootstrap 95 %),
accuracy per 1k think tokens (paired bootstrap 95 %), chosen ratio per grade, and the frontier gap (issue 36:
accuracy above the study's own fixed-ratio runs of the SFT model on the same split, interpolated at the
model's mean think tokens, paired bootstrap 95 %; :mod:`extra_cot.study.frontier`); targets add each arm's
gap minus the SFT model's (``{arm}_above_sft_by_frontier``, interval above 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from extra_cot import fileio
from extra_cot.cliargs import add_dataclass_arguments, comma_subset, dataclass_from_args, option
from extra_cot.demo.config import _STEP_LIST, until_option, vllm_args_option, vllm_reserved_cpus_option
from extra_cot.eval.store import PREDICTION
from extra_cot.evalsummary import (
    NOT_A_RATIO,
    Columns,
    eval_records,
    mean_ratio,
    per_question,
    ratio_key,
    read_grades,
    run_summary,
)
from extra_cot.experiment import Experiment
from extra_cot.stats import bootstrap_ratio, mean_diff, overlaps
from extra_cot.study import frontier as fr
from extra_cot.study.choice import DEFAULT_GROUP_SIZE, DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from extra_cot.study.report import FIXED, format_rise, provenance, rises

DEFAULT_OUT = "runs/chrpo_learning"
ARMS = ("chrpo", "grpo")
#: Held-out models: the SFT start and the two RL arms.
MODELS = ("sft", *ARMS)
RUN, DATA, RL, EVAL = "run", "data", "reinforcement learning", "evaluation"
#: The explore step's output: the SFT model's choice on the RL questions (:mod:`extra_cot.study.choice`).
SFT_CHOICE = "sft_choice.json"
#: verl's step timers (``timing_s/<name>``, verl/trainer/ppo/ray_trainer.py) the report breaks a step into.
TIMERS = ("gen", "reward", "old_log_prob", "ref", "adv", "update_actor", "update_weights", "save_checkpoint", "step")


_arms = comma_subset("--arms", ARMS)


@dataclass
class LearningConfig:
    """Options of one learning run; saved as ``OUT/learning_config.json``; the fields are the flags."""

    out: str = option(default=DEFAULT_OUT, group=RUN, help="output folder of everything (default runs/chrpo_learning)")
    study: str = option(default="runs/study", group=DATA,
                        help="a finished study folder (python -m extra_cot.study): its SFT model, seed and splits")
    n_rl: int = option(default=160, group=DATA,
                       help="RL questions generated and swept (build-rl keeps those with a γ* in its window)")
    rl_tolerance: float = option(
        default=0.2, group=DATA,
        help="build-rl --tolerance: half-width of the γ* window and the reward's calibration band (default 0.2; "
             "docs/method.md's 0.1 kept 13 of 96 swept questions: the study model's 0.2 outputs run at ~0.3 of "
             "its own 1.0 length)")
    sweep_samples: int = option(default=2, group=DATA, help="samples per RL question and ratio in the sweep (pass@k)")
    min_explorable: float = option(
        default=0.05, group=DATA,
        help="the explore step stops the run (before the sweep) when, averaged over the RL questions, the chance "
             "that a group of --rollout-n rollouts (at --rollout-temperature / --rollout-top-p) holds two different "
             "ratio choices is below this (python -m extra_cot.study.choice, 'group_varies'): the groups would "
             "choose alike and neither arm could move the choice (default 0.05, a guard for that case, not a tuned "
             "value; 0 = never stop)")
    seed: int = option(default=0, group=RL, help="verl's data.seed (prompt order), the same for both arms (default 0)")
    steps: int = option(default=16, group=RL, help="training steps K per arm (default 16)")
    batch: int = option(default=8, group=RL, help="prompts per step (data.train_batch_size = ppo_mini_batch_size)")
    rollout_n: int = option(default=DEFAULT_GROUP_SIZE, group=RL, help="rollouts per prompt (docs/method.md: n = 4)")
    rollout_temperature: float = option(
        default=DEFAULT_TEMPERATURE, group=RL,
        help="actor_rollout_ref.rollout.temperature of both arms' training rollouts, and of the explore step "
             "(default the preset's 0.7, docs/method.md; the held-out evaluation keeps the evaluation's 0.7)")
    rollout_top_p: float = option(
        default=DEFAULT_TOP_P, group=RL,
        help="actor_rollout_ref.rollout.top_p of the training rollouts and the explore step (default the preset's "
             "0.9; 1.0 lets every ratio token be drawn when the SFT choice is sharp: docs/study.md)")
    lr: float = option(default=2e-5, group=RL, help="actor learning rate, both arms (default 2e-5)")
    arms: list[str] = option(
        default_factory=lambda: list(ARMS), cli_default=",".join(ARMS), parse=_arms, group=RL,
        help=f"comma list of the RL arms to train and evaluate, of {list(ARMS)} (default both; one arm for an "
             "option check on validation)")
    safe_wrong_fraction: float | None = option(
        default=None, group=RL,
        help="reward.reward_kwargs.chrpo.safe_wrong_fraction for every arm: a wrong answer at a ratio >= γ*(x) "
             "scores 1 + this (default: the preset's 0.5, i.e. 1.5; 0 pays every wrong answer 1.0, issue 36 item 4)")
    control_token_weight: float = option(
        default=0.02, group=RL,
        help="CHRPO's DeGRPO alpha for the ratio token (default 0.02: alpha x mean response length ~ 1-2, "
             "the balance Thinkless's 1e-3 gives its ~1-4k-token responses; ours are ~50-100 tokens)")
    split: str = option(default="test", group=EVAL, choices=["val", "test"],
                        help="the study's held-out split evaluated (choose options on val; test is the record)")
    max_prompt_length: int = option(
        default=384, group=RL,
        help="verl data.max_prompt_length (default 384; the RL prompts are 64-101 SmolLM2 tokens, and 128 measured "
             "no faster: benchmarks/chrpo_cpu_step.py --prompt-lengths 384,128)")
    max_tokens: int = option(default=400, group=EVAL, help="new tokens per rollout and evaluation request (400)")
    concurrency: int = option(default=32, group=EVAL, help="concurrent requests per vLLM server (default 32)")
    vllm_args: str = vllm_args_option(EVAL)
    vllm_reserved_cpus: int = vllm_reserved_cpus_option(EVAL)
    force: list[str] = option(help="comma list of steps to redo (and every step after the first)", **_STEP_LIST)
    only: list[str] = option(help="comma list of steps to (re)run; the others do not run", **_STEP_LIST)
    until: str = until_option()
    max_model_len: int = 2048  # not a flag: vLLM's --max-model-len (the runner's servers)
    tiny: bool = False  # not a flag: the runner's CI mode

    def __post_init__(self) -> None:
        if self.safe_wrong_fraction is not None:
            from extra_cot.rl.reward import ChrpoRewardConfig  # the reward's own bound, one source of truth

            try:
                ChrpoRewardConfig(safe_wrong_fraction=self.safe_wrong_fraction)
            except ValueError as e:
                raise ValueError(f"--safe-wrong-fraction {self.safe_wrong_fraction}: {e}") from e
        if not 0 <= self.min_explorable <= 1:
            raise ValueError(f"--min-explorable must be in [0, 1], got {self.min_explorable}")
        if not 0 < self.rl_tolerance < 1:
            raise ValueError(f"--rl-tolerance must be in (0, 1), got {self.rl_tolerance}")
        for name in ("n_rl", "sweep_samples", "steps", "batch", "max_prompt_length", "max_tokens", "concurrency"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.rollout_temperature <= 0 or not 0 < self.rollout_top_p <= 1:
            raise ValueError(f"--rollout-temperature must be > 0 and --rollout-top-p in (0, 1], got "
                             f"{self.rollout_temperature}, {self.rollout_top_p}")
        if self.rollout_n < 2:
            raise ValueError(f"--rollout-n must be >= 2 (group estimators), got {self.rollout_n}")
        if self.lr <= 0 or self.control_token_weight < 0:
            raise ValueError(f"--lr must be > 0 and --control-token-weight >= 0, got {self.lr}, "
                             f"{self.control_token_weight}")

    @property
    def root(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict:
        return asdict(self)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/chrpo_learning.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  python benchmarks/chrpo_learning.py --study runs/study --results results   # the record\n"
        "  python benchmarks/chrpo_learning.py --split val --out runs/chrpo-val --lr 5e-5   # tune on val\n"
        "  python benchmarks/chrpo_learning.py --list   # print every step's command\n")
    groups = add_dataclass_arguments(p, LearningConfig, group_order=(RUN, DATA, RL, EVAL))
    groups[RUN].add_argument("--list", action="store_true", help="print the steps and their commands; run nothing")
    groups[RUN].add_argument("--results", default=None,
                             help="after the run, also write the record into RESULTS: chrpo_learning.{json,md,png} "
                                  "for a chains study, chrpo_learning_varied.* for a varied one")
    return p


def config_from_args(args: argparse.Namespace) -> LearningConfig:
    return dataclass_from_args(LearningConfig, args)


# --- data ------------------------------------------------------------------------------------------------------


def study_task(study_data: Path) -> str:
    """The task of the study whose data folder is ``study_data`` (``varied`` for studies written before
    ``--task`` existed)."""
    from extra_cot.study.data import CONFIG_NAME

    return json.loads((study_data / CONFIG_NAME).read_text()).get("task", "varied")


def rl_questions(study_data: Path, n: int) -> list[dict]:
    """``n`` generated problems after every split of the study in ``study_data`` (same task, seed and options)."""
    from extra_cot.demo.problems import to_gsm8k
    from extra_cot.study.data import CONFIG_NAME, SPLIT_ORDER
    from extra_cot.tasks import generate

    conf = json.loads((study_data / CONFIG_NAME).read_text())
    used = sum(int(conf[name]) for name in SPLIT_ORDER)
    return [to_gsm8k(row) for row in generate(study_task(study_data), used + n, seed=int(conf["seed"]))[used:]]


# --- steps -----------------------------------------------------------------------------------------------------


class Paths:
    """The fixed output tree of a learning run."""

    def __init__(self, cfg: LearningConfig) -> None:
        r, s = cfg.root, Path(cfg.study)
        self.root, self.data, self.sweep, self.rl, self.eval = r, r / "data", r / "sweep", r / "rl", r / "eval"
        self.sft, self.held_out = s / "models" / "sft", s / "data" / f"{cfg.split}.jsonl"
        self.questions = self.data / "rl.jsonl"

    def train(self, arm: str) -> Path:
        return self.root / f"train_{arm}"

    def model(self, arm: str) -> Path:
        return self.root / "models" / arm


def train_argv(cfg: LearningConfig, p: Paths, arm: str) -> list[str]:
    """One arm's ``main_ppo`` on the CPU platform; the arms differ in the estimator only."""
    out = p.train(arm).resolve()
    arm_overrides = ([f"algorithm.chrpo.control_token_weight={cfg.control_token_weight:g}"] if arm == "chrpo"
                     else ["algorithm.adv_estimator=grpo"])
    reward = ([] if cfg.safe_wrong_fraction is None
              else [f"reward.reward_kwargs.chrpo.safe_wrong_fraction={cfg.safe_wrong_fraction:g}"])
    return [
        sys.executable, "-m", "extra_cot.rl.cpu_launch", str(p.sft.resolve()), str(p.rl.resolve()),
        "--metrics", str(out / "metrics.jsonl"), "--call-log", str(out / "calls.jsonl"),
        f"data.train_batch_size={cfg.batch}", f"actor_rollout_ref.actor.ppo_mini_batch_size={cfg.batch}",
        f"actor_rollout_ref.rollout.n={cfg.rollout_n}", f"data.seed={cfg.seed}",
        f"actor_rollout_ref.rollout.temperature={cfg.rollout_temperature:g}",
        f"actor_rollout_ref.rollout.top_p={cfg.rollout_top_p:g}",
        f"data.max_prompt_length={cfg.max_prompt_length}", f"data.max_response_length={cfg.max_tokens}",
        f"actor_rollout_ref.rollout.max_model_len={cfg.max_model_len}",
        f"actor_rollout_ref.actor.optim.lr={cfg.lr:g}",
        f"trainer.total_training_steps={cfg.steps}", "trainer.total_epochs=1000",
        f"trainer.save_freq={cfg.steps}", "trainer.test_freq=-1", "trainer.val_before_train=false",
        f"trainer.default_local_dir={out / 'ckpt'}", f"trainer.experiment_name=chrpo-learning-{arm}",
        *reward, *arm_overrides,
    ]


def build_steps(cfg: LearningConfig) -> list:
    from extra_cot.demo.rl_train import merge_argv, read_metrics
    from extra_cot.demo.steps import Step, _count_lines, _missing, _tokenizer_drift, tool
    from extra_cot.fileio import stale_options
    from extra_cot.study.steps import _eval_step

    p = Paths(cfg)
    conf = p.data / "data_config.json"

    def data_check() -> str | None:
        if not conf.is_file():
            return f"missing {conf}"
        return stale_options(conf, json.loads(conf.read_text()), {"study": cfg.study, "n": cfg.n_rl}) or (
            None if _count_lines(p.questions) == cfg.n_rl else f"{p.questions}: not {cfg.n_rl} rows")

    steps = [
        Step("data", "RL questions: the study's generator and seed, after all its splits (4 grades)",
             [sys.executable, "-m", "extra_cot.study.learning", "data", "--study", cfg.study, "--n", str(cfg.n_rl),
              "--out", str(p.data)], data_check, clean=[p.data]),
        Step("explore", "Can RL explore the choice? The SFT model's <COMP_AUTO> choice on the RL questions, within the "
             "rollout's nucleus", [sys.executable, "-m", "extra_cot.study.choice", "--model", str(p.sft), "--data",
                                   str(p.questions), "--out", str(p.root / SFT_CHOICE),
                                   "--temperature", f"{cfg.rollout_temperature:g}", "--top-p",
                                   f"{cfg.rollout_top_p:g}", "--group-size", str(cfg.rollout_n),
                                   "--min-explorable", f"{cfg.min_explorable:g}"],
             lambda: explore_check(p.root / SFT_CHOICE, cfg), clean=[p.root / SFT_CHOICE]),
        _eval_step(cfg, "sweep", f"Sweep: the SFT model at 0.2 … 1.0 on the RL questions (pass@{cfg.sweep_samples})",
                   p.sft, p.sweep, {"rl": (p.questions, cfg.n_rl)}, FIXED, cfg.sweep_samples),
        Step("build-rl", "extra-cot build-rl: verl parquet with γ*(x) and ref_full_len (quotas off)",
             tool("extra-cot", "extra_cot.cli") + [
                 "build-rl", "--sweep", str(p.sweep), "--output-dir", str(p.rl), "--overwrite", "--quotas", "none",
                 "--val-size", "1", "--train-batch-size", str(cfg.batch), "--tolerance", f"{cfg.rl_tolerance:g}"],
             lambda: _missing(p.rl / "train.parquet", p.rl / "val.parquet"),
             clean=[p.rl / "train.parquet", p.rl / "val.parquet"]),
    ]
    n_held = _count_lines(p.held_out) or 1

    def held_out_eval(name: str) -> Step:
        model = p.sft if name == "sft" else p.model(name)
        return _eval_step(cfg, f"eval-{name}", f"Held out: {name} in policy mode (<COMP_AUTO>) on {cfg.split}",
                          model, p.eval / name, {cfg.split: (p.held_out, n_held)}, ("policy",))

    steps.insert(3, held_out_eval("sft"))  # right after the sweep: the same server
    for arm in cfg.arms:
        out, actor = p.train(arm), p.train(arm) / "ckpt" / f"global_step_{cfg.steps}" / "actor"

        def train_check(out=out, actor=actor) -> str | None:
            done = [s for s, m in read_metrics(out / "metrics.jsonl").items() if "timing_s/step" in m]
            return _missing(actor) or (None if len(done) == cfg.steps else f"{len(done)}/{cfg.steps} steps logged")

        def merge_check(arm=arm) -> str | None:
            model = p.model(arm)
            return _missing(model / "config.json", model / "tokenizer.json") or _tokenizer_drift(p.sft, model)

        steps += [
            Step(f"train-{arm}", f"{arm.upper()}: {cfg.steps} steps of verl main_ppo on the CPU platform",
                 train_argv(cfg, p, arm), train_check, clean=[out]),
            Step(f"merge-{arm}", f"{arm.upper()}: python -m verl.model_merger -> {p.model(arm)}",
                 merge_argv(actor, p.model(arm)), merge_check, clean=[p.model(arm)]),
        ]
    steps += [held_out_eval(arm) for arm in cfg.arms]
    steps.append(Step("report", "Report: per-step curves, held-out intervals, targets, step time -> chrpo_learning.*",
                      [sys.executable, "-m", "extra_cot.study.learning", "report", "--out", str(p.root)],
                      lambda: "always refreshed"))
    return steps


# --- per-step accounting ---------------------------------------------------------------------------------------


def step_chunks(calls: Sequence[Mapping], rollouts_per_step: int) -> list[list[Mapping]]:
    """Training reward records cut into steps: verl's trainer scores exactly ``batch x n`` rollouts per
    step and finishes a step before the next starts, so the records come in whole steps, in order."""
    rewards = [c for c in calls if c.get("kind") == "reward" and c.get("split") != "val"]
    if len(rewards) % rollouts_per_step:
        raise ValueError(f"{len(rewards)} training reward records is not a whole number of "
                         f"{rollouts_per_step}-rollout steps (a step was cut short?)")
    return [rewards[i:i + rollouts_per_step] for i in range(0, len(rewards), rollouts_per_step)]


def _shares(keys: Sequence[str]) -> dict[str, float]:
    n = len(keys)
    return {k: round(v / n, 4) for k, v in sorted(Counter(keys).items())} if n else {}


def efficient(record: Mapping) -> bool:
    """The rollout chose γ*(x) or a lower ratio and still answered correctly."""
    ratio, gt = float(record["ratio"]), record.get("gt_ratio")
    return bool(record["correct"]) and ratio >= 0 and gt is not None and ratio <= float(gt) + 1e-9


def at_or_above_gamma(record: Mapping) -> bool | None:
    """The rollout chose γ*(x) or a higher ratio; None where that cannot be said (no γ* for the
    question, or no fixed-ratio token chosen)."""
    ratio, gt = float(record["ratio"]), record.get("gt_ratio")
    return None if gt is None or ratio < 0 else ratio >= float(gt) - 1e-9


def gamma_counts(records: Sequence[Mapping]) -> dict[str, int]:
    """Rollouts that can be placed against γ* (``placed``), those at or above it, and the wrong ones
    among those: where the reward's ``safe_wrong_fraction`` pays a wrong answer."""
    placed = [(r, up) for r in records if (up := at_or_above_gamma(r)) is not None]
    above = [r for r, up in placed if up]
    return {"placed": len(placed), "at_or_above": len(above), "wrong_at_or_above": sum(not r["correct"] for r in above)}


def gamma_totals(per_step: Sequence[Mapping]) -> dict:
    """:func:`gamma_counts` summed over an arm's steps, with the share at or above γ*."""
    total = {k: sum(s["gamma_counts"][k] for s in per_step) for k in ("placed", "at_or_above", "wrong_at_or_above")}
    return {**total, "at_or_above_share": round(total["at_or_above"] / total["placed"], 4) if total["placed"] else None}


def step_summary(step: int, records: Sequence[Mapping], grades: Sequence[int]) -> dict:
    """One step's rollouts: reward, tiers, chosen ratio (overall, per grade), efficiency, think tokens."""
    n = len(records)
    if n == 0:
        raise ValueError(f"step {step}: no reward records")
    by_grade: dict[str, list[Mapping]] = {}
    for r in records:
        if r.get("index") is None:
            raise ValueError(f"step {step}: a reward record has no 'index' (RL parquet without extra_info.index?)")
        by_grade.setdefault(str(grades[int(r["index"])]), []).append(r)
    chosen = _shares([ratio_key(float(r["ratio"])) for r in records])
    chosen_by_grade = {g: _shares([ratio_key(float(r["ratio"])) for r in rows]) for g, rows in sorted(by_grade.items())}
    return {
        "step": step, "rollouts": n,
        "reward_mean": round(sum(float(r["score"]) for r in records) / n, 4),
        "tiers": _shares([str(int(float(r["tier"]))) for r in records]),
        "correct": round(sum(bool(r["correct"]) for r in records) / n, 4),
        "chosen": chosen, "mean_chosen_ratio": mean_ratio(chosen),
        "chosen_by_grade": chosen_by_grade,
        "mean_chosen_ratio_by_grade": {g: mean_ratio(d) for g, d in chosen_by_grade.items()},
        "gamma_or_lower_correct": round(sum(efficient(r) for r in records) / n, 4),
        "gamma_counts": gamma_counts(records),
        "think_tokens": round(sum(float(r["think_tokens"]) for r in records) / n, 2),
    }


def arm_steps(train_dir: Path, grades: Sequence[int], rollouts_per_step: int) -> list[dict]:
    """Per-step records of one arm: :func:`step_summary` + verl's KL loss and step timers."""
    from extra_cot.demo.rl_train import read_metrics
    from extra_cot.rl.calllog import read_calls

    metrics = read_metrics(train_dir / "metrics.jsonl")
    out = []
    for step, records in enumerate(step_chunks(read_calls(train_dir / "calls.jsonl"), rollouts_per_step), 1):
        m = metrics.get(step, {})
        row = step_summary(step, records, grades)
        row["kl_loss"] = m.get("actor/kl_loss")
        row["timing_s"] = {t: round(m[f"timing_s/{t}"], 2) for t in TIMERS if f"timing_s/{t}" in m}
        out.append(row)
    return out


def timing_table(per_step: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    """Mean seconds per timer over steps 2..K (``later``; step 1 starts the engines) and step 1 alone."""
    later = [s["timing_s"] for s in per_step[1:]]
    return {
        "step_1": dict(per_step[0]["timing_s"]) if per_step else {},
        "later_mean": {t: round(sum(s.get(t, 0.0) for s in later) / len(later), 2)
                       for t in TIMERS if any(t in s for s in later)} if later else {},
    }


def step_ratios(step: Mapping) -> list[float]:
    """The chosen ratio of each rollout of one :func:`step_summary` row, rebuilt from its ``chosen``
    shares (exact: a share is a count over ``rollouts`` rounded to 4 places); a rollout without a
    fixed-ratio token (``none``, ``auto``) is dropped, as in :func:`mean_ratio`."""
    out: list[float] = []
    for key, share in step["chosen"].items():
        if key not in NOT_A_RATIO:
            out += [float(key)] * round(share * step["rollouts"])
    return out


def settling(per_step: Sequence[Mapping], window: int | None = None) -> dict | None:
    """Issue 36, item 4 ("show that the chosen-ratio curves flatten"): the mean chosen ratio of the
    rollouts in the last ``window`` steps (default a quarter of K, at least 1) against the ``window``
    steps just before them and against the first ``window`` steps, each difference with a bootstrap 95 %
    interval over rollouts (:func:`extra_cot.stats.mean_diff`). ``settled``: the last move's
    interval holds 0, i.e. the curve no longer moves beyond noise over its last ``2 x window`` steps.
    None below 2 steps. Rollouts of one step share a policy, so the interval is narrower than one over
    independent draws; read it as a check, not a test."""
    k = len(per_step)
    if k < 2:
        return None
    w = max(1, min(window or k // 4, k // 2))
    first, before, last = ([r for s in rows for r in step_ratios(s)]
                           for rows in (per_step[:w], per_step[k - 2 * w:k - w], per_step[k - w:]))
    if not (first and before and last):
        return None

    last_move = mean_diff(before, last)
    return {"window_steps": w,
            "mean_chosen_ratio": {"first": round(sum(first) / len(first), 4),
                                  "before_last": round(sum(before) / len(before), 4),
                                  "last": round(sum(last) / len(last), 4)},
            "last_minus_before": last_move, "last_minus_first": mean_diff(first, last),
            "settled": last_move["ci"][0] <= 0 <= last_move["ci"][1]}


# --- held out --------------------------------------------------------------------------------------------------


def held_out(records: Sequence[Mapping], grades: Sequence[int], seed: int = 0) -> dict:
    """:func:`extra_cot.study.report.run_summary` + accuracy per 1k think tokens with a paired bootstrap CI."""
    out = run_summary(records, grades, seed=seed)
    correct = [1000.0 * bool(r["correct"]) for r in records]
    tokens = [float(r["think_tokens"]) for r in records]
    total = sum(tokens)
    out["accuracy_per_1k"] = round(sum(correct) / total, 3) if total else None
    out["accuracy_per_1k_ci"] = [round(x, 3) for x in bootstrap_ratio(correct, tokens, seed=seed)] if total else None
    return out


def compute_targets(held: Mapping[str, Mapping]) -> dict[str, dict]:
    """Issue 18, item 4: CHRPO beats the SFT model's accuracy per think token beyond noise, and its
    mean chosen ratio rises with the grade (GRPO's values alongside, for the comparison)."""
    out = {}
    sft = held["sft"]
    for arm in ARMS:
        h = held.get(arm)
        if h is None:
            continue
        beats = (h["accuracy_per_1k"] or 0) > (sft["accuracy_per_1k"] or 0) and not overlaps(
            h["accuracy_per_1k_ci"], sft["accuracy_per_1k_ci"])
        by_grade = h["mean_chosen_ratio_by_grade"]
        out[f"{arm}_accuracy_per_token_beats_sft"] = {
            "value": {arm: h["accuracy_per_1k_ci"], "sft": sft["accuracy_per_1k_ci"]},
            "target": "higher accuracy per 1k think tokens than the SFT model, intervals not overlapping",
            "met": bool(beats)}
        out[f"{arm}_ratio_rises_with_grade"] = {
            "value": by_grade, "target": "mean chosen ratio non-decreasing in grade, hardest > easiest",
            "met": rises([by_grade[g] for g in sorted(by_grade, key=int)])}
    return out


def fixed_columns(study: Path, split: str, n: int) -> dict[str, Columns] | None:
    """The study's own fixed-ratio runs of its SFT model on ``split`` (``STUDY/eval/SPLIT/0.2`` …), per
    question: the frontier the held-out policies are measured against; None when any is missing."""
    runs = {ratio: study / "eval" / split / ratio for ratio in FIXED}
    if not all((run / PREDICTION).is_file() for run in runs.values()):
        return None
    return {ratio: per_question(eval_records(run), n) for ratio, run in runs.items()}


def frontier_targets(fixed: Mapping[str, Columns], records: Mapping[str, Sequence[Mapping]], n: int) -> dict:
    """Issue 36, item 4: each arm's held-out policy above the SFT policy by the frontier measure (its
    frontier gap minus the SFT model's, paired bootstrap 95 % interval above 0)."""
    sft = per_question(records["sft"], n)
    out = {}
    for arm in ARMS:
        if arm in records:
            diff = fr.gap_difference(fixed, per_question(records[arm], n), sft)
            out[f"{arm}_above_sft_by_frontier"] = {
                **diff, "target": "frontier gap above the SFT policy's, paired 95 % interval above 0",
                "met": diff["ci"][0] > 0}
    return out


# --- record ----------------------------------------------------------------------------------------------------


def build_record(root: Path) -> dict:
    config = json.loads((root / "learning_config.json").read_text())
    rl_grades = read_grades(root / "data" / "rl.jsonl")
    held_grades = read_grades(Path(config["study"]) / "data" / f"{config['split']}.jsonl")
    per_step_rollouts = config["batch"] * config["rollout_n"]
    arms = {}
    for arm in config.get("arms", ARMS):
        per_step = arm_steps(root / f"train_{arm}", rl_grades, per_step_rollouts)
        arms[arm] = {"per_step": per_step, "timing": timing_table(per_step), "settling": settling(per_step),
                     "against_gamma": gamma_totals(per_step)}
    held, records = {}, {}
    for name in MODELS:
        run = root / "eval" / name / config["split"] / "policy"
        if (run / PREDICTION).is_file():
            records[name] = eval_records(run)
            held[name] = held_out(records[name], held_grades)
    fixed = fixed_columns(Path(config["study"]), config["split"], len(held_grades))
    if fixed:
        for name, recs in records.items():
            held[name]["frontier_gap"] = fr.frontier_gap(fixed, per_question(recs, len(held_grades)))
    for arm in ARMS:
        if arm in held:
            arms[arm]["heldout"] = held[arm]
    targets = compute_targets(held) if "sft" in held else {}
    if fixed and "sft" in records:
        targets.update(frontier_targets(fixed, records, len(held_grades)))
    choice = root / SFT_CHOICE
    rl_stats = root / "rl" / "build_rl_stats.json"
    rl_rows = root / "rl" / "train.parquet"
    return {
        **provenance(root), "steps": config["steps"], "seeds": {"data.seed": config["seed"],
                                                                 "study": _study_seed(Path(config["study"]))},
        "task": study_task(Path(config["study"]) / "data"), "split": config["split"], "n_heldout": len(held_grades),
        "config": config,
        "rl_data": json.loads(rl_stats.read_text()) if rl_stats.is_file() else None,
        "rl_grades": dict(sorted(Counter(str(g) for g in rl_grades).items())),
        "rl_train_gamma_by_grade": gamma_by_grade(rl_rows, rl_grades) if rl_rows.is_file() else None,
        "arms": arms, "sft": {"heldout": held.get("sft"), "choice_on_rl": _choice_block(choice)}, "targets": targets,
        "written": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def explore_check(path: Path, cfg: LearningConfig) -> str | None:
    """Whether the explore step is done: its file exists, was read at the run's rollout sampling and passes
    the gate. ``study.choice`` writes the file before it exits 3, so existence alone would let a rerun walk
    past a failed gate into the sweep."""
    if not path.is_file():
        return f"missing {path}"
    summary = json.loads(path.read_text())
    read_at = {k: summary.get(k) for k in ("temperature", "top_p", "group_size")}
    wanted = {"temperature": cfg.rollout_temperature, "top_p": cfg.rollout_top_p, "group_size": cfg.rollout_n}
    if read_at != wanted:
        return f"{path}: read at {read_at}, the run samples at {wanted}"
    varies = summary.get("group_varies")
    if not isinstance(varies, (int, float)):
        return f"{path}: no numeric 'group_varies' field"
    if varies < cfg.min_explorable:
        return (f"{path}: group_varies {varies:g} < --min-explorable {cfg.min_explorable:g} (the rollout groups "
                "would choose alike; docs/study.md)")
    return None


def _choice_block(path: Path) -> dict | None:
    """The explore step's summary, trimmed to what the record shows (None before that step existed)."""
    if not path.is_file():
        return None
    s = json.loads(path.read_text())
    return {"temperature": s.get("temperature"), "top_p": s.get("top_p"), "explorable": s.get("explorable"),
            "group_size": s.get("group_size"), "group_varies": s.get("group_varies"),
            "by_grade": {g: {k: v[k] for k in ("n", "probs", "sampled", "explorable", "group_varies") if k in v}
                         for g, v in s["by_grade"].items()}}


def gamma_by_grade(train_parquet: Path, grades: Sequence[int]) -> dict[str, dict[str, int]]:
    """The RL training rows' γ*(x) counted per difficulty grade (``{grade: {γ*: rows}}``)."""
    import pandas as pd

    counts: dict[str, Counter] = {}
    for info in pd.read_parquet(train_parquet)["extra_info"]:
        counts.setdefault(str(grades[int(info["index"])]), Counter())[ratio_key(float(info["gt_ratio"]))] += 1
    return {g: dict(sorted(c.items())) for g, c in sorted(counts.items())}


def _study_seed(study: Path) -> int | None:
    conf = study / "study_config.json"
    return json.loads(conf.read_text()).get("seed") if conf.is_file() else None


def plot(record: Mapping, path: Path) -> None:
    """Both arms' curves against the step on one figure (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("reward_mean", "mean reward"), ("mean_chosen_ratio", "mean chosen ratio"),
              ("gamma_or_lower_correct", "share ≤ γ*(x) and correct"), ("correct", "share correct"),
              ("think_tokens", "mean think tokens"), ("kl_loss", "KL loss"))
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        for arm, data in record["arms"].items():
            xs = [s["step"] for s in data["per_step"] if s.get(key) is not None]
            ax.plot(xs, [s[key] for s in data["per_step"] if s.get(key) is not None], marker="o", ms=3, label=arm)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    fig.suptitle(f"CHRPO vs GRPO, {record['steps']} steps each from one SFT checkpoint (verl main_ppo, CPU)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _ci(ci: Sequence[float] | None, scale: float = 1.0, spec: str = ".1f") -> str:
    return "-" if ci is None else f"[{scale * ci[0]:{spec}}, {scale * ci[1]:{spec}}]"


def _gap(gap: Mapping | None) -> str:
    """A frontier gap in points with its interval (``-`` without the study's fixed-ratio runs)."""
    return "-" if gap is None else f"{100 * gap['value']:+.1f} {_ci(gap['ci'], 100)}"


def _choice_lines(choice: Mapping | None) -> list[str]:
    if not choice:
        return []
    grades = "; ".join(f"grade {g}: {v.get('sampled')}" for g, v in choice["by_grade"].items())
    return [(f"- the SFT model's `<COMP_AUTO>` choice on the RL questions, as a rollout samples it (T {choice['temperature']}, "
             f"top_p {choice['top_p']}): {grades}; questions with two or more ratios in the nucleus: {choice['explorable']}"
             + ("" if choice.get("group_varies") is None else
                f"; rollout groups of {choice['group_size']} not unanimous: {choice['group_varies']}"))]


def render(rec: Mapping) -> str:
    cfg = rec["config"]
    lines = [(f"# CHRPO vs GRPO learning run ({rec['steps']} steps per arm, task {rec.get('task', 'varied')}, "
              f"held-out split {rec['split']}, n = {rec['n_heldout']})"), "",
             f"- command: `{rec['command']}` ({rec['invocations']} invocation(s))",
             (f"- date: {rec['date']}; commit {rec['commit']} (dirty: {rec['dirty']}); report rendered by code "
              f"{rec['report_code']['commit']} (dirty: {rec['report_code']['dirty']}) on {rec['written']}"),
             f"- machine: {rec['machine']}; load mean {rec['load']['mean']}, max {rec['load']['max']}",
             (f"- seeds: {rec['seeds']}; K = {rec['steps']}, batch {cfg['batch']} prompts x n {cfg['rollout_n']}, "
             f"rollouts at T {cfg.get('rollout_temperature', DEFAULT_TEMPERATURE):g}, "
             f"top_p {cfg.get('rollout_top_p', DEFAULT_TOP_P):g}, "
             f"lr {cfg['lr']:g}, CHRPO control-token weight {cfg['control_token_weight']:g}, reward's "
             f"safe_wrong_fraction {'the preset' if cfg.get('safe_wrong_fraction') is None else cfg['safe_wrong_fraction']}"
             f"; arms {', '.join(cfg.get('arms', ARMS))}"),
             (f"- start: `{cfg['study']}/models/sft`; RL questions by grade {rec['rl_grades']}; RL training rows' "
             f"γ* by grade {rec['rl_train_gamma_by_grade']}"),
             f"- step wall times (s): {rec['step_wall_s']} (total {rec['total_wall_s']} s)",
             *_choice_lines(rec["sft"].get("choice_on_rl")), "",
             "## Per step (training rollouts)", ""]
    for arm, data in rec["arms"].items():
        lines += [f"### {arm}", "", ("step | reward | correct | tiers | chosen | mean ratio by grade | ≤γ* & correct "
                  "| think tokens | KL loss | step s"), "--- | --- | --- | --- | --- | --- | --- | --- | --- | ---"]
        for s in data["per_step"]:
            kl = "-" if s["kl_loss"] is None else f"{s['kl_loss']:.2e}"
            lines.append(f"{s['step']} | {s['reward_mean']:.3f} | {s['correct']:.2f} | {s['tiers']} | {s['chosen']} | "
                         f"{s['mean_chosen_ratio_by_grade']} | {s['gamma_or_lower_correct']:.2f} | "
                         f"{s['think_tokens']:.1f} | {kl} | {s['timing_s'].get('step', float('nan')):.0f}")
        lines.append("")
    lines += ["## Did the choice settle? (mean chosen ratio of the training rollouts; bootstrap 95 % over rollouts)", "",
              ("arm | window (steps) | first window | the window before last | last window | last - before [CI] "
               "| last - first [CI] | settled"), "--- | --- | --- | --- | --- | --- | --- | ---"]
    for arm, data in rec["arms"].items():
        st = data.get("settling")
        if st:
            m = st["mean_chosen_ratio"]
            lines.append(f"{arm} | {st['window_steps']} | {m['first']:.3f} | {m['before_last']:.3f} | {m['last']:.3f} | "
                         f"{st['last_minus_before']['value']:+.3f} {_ci(st['last_minus_before']['ci'], 1, '.3f')} | "
                         f"{st['last_minus_first']['value']:+.3f} {_ci(st['last_minus_first']['ci'], 1, '.3f')} | "
                         f"{'yes' if st['settled'] else 'NO'}")
    lines += ["", "## Training rollouts against γ* (all steps; rollouts with a γ* and a fixed-ratio token)", "",
              "arm | placed | at or above γ* | share | wrong at or above γ*", "--- | --- | --- | --- | ---"]
    for arm, data in rec["arms"].items():
        g = data.get("against_gamma")
        if g:
            share = "-" if g["at_or_above_share"] is None else f"{100 * g['at_or_above_share']:.1f} %"
            lines.append(f"{arm} | {g['placed']} | {g['at_or_above']} | {share} | {g['wrong_at_or_above']}")
    lines += ["", "## Held out, policy mode (`<COMP_AUTO>`; 95 % intervals: Wilson, bootstrap, paired bootstrap)", "",
              ("model | accuracy % [CI] | think tokens [CI] | acc per 1k tokens [CI] | chosen | mean ratio by grade "
               "| rise hardest - easiest [CI] | frontier gap [CI]"),
              "--- | --- | --- | --- | --- | --- | --- | ---"]
    held = {"sft": rec["sft"]["heldout"], **{a: d.get("heldout") for a, d in rec["arms"].items()}}
    for name, h in held.items():
        if h:
            lines.append(f"{name} | {100 * h['accuracy']:.1f} {_ci(h['accuracy_ci'], 100)} | {h['think_tokens']:.1f} "
                         f"{_ci(h['think_tokens_ci'])} | {h['accuracy_per_1k']} {_ci(h['accuracy_per_1k_ci'], 1, '.2f')} "
                         f"| {h['chosen']} | {h['mean_chosen_ratio_by_grade']} | {format_rise(h.get('chosen_ratio_rise'))} "
                         f"| {_gap(h.get('frontier_gap'))}")
    lines += ["", "## Where a step's time goes (seconds; mean over steps 2..K, step 1 in brackets)", "",
              "timer | " + " | ".join(rec["arms"]), "--- | " + " | ".join("---" for _ in rec["arms"])]
    for t in TIMERS:
        cells = [f"{d['timing']['later_mean'].get(t, '-')} ({d['timing']['step_1'].get(t, '-')})"
                 for d in rec["arms"].values()]
        lines.append(f"{t} | " + " | ".join(cells))
    lines += ["", "## Targets", "", "target | value | wanted | met", "--- | --- | --- | ---"]
    lines += [f"{k} | {t['value']}{' ' + _ci(t['ci'], 1, '.4f') if 'ci' in t else ''} | {t['target']} | "
              f"{'yes' if t['met'] else 'NO'}" for k, t in rec["targets"].items()]
    if not any("frontier_gap" in (h or {}) for h in held.values()):
        lines += ["", (f"No frontier gap: the study's fixed-ratio runs on {rec['split']} "
                       f"(`STUDY/eval/{rec['split']}/0.2` …) are missing.")]
    return "\n".join(lines) + "\n"


#: ``--results`` file name of a learning record per study task (the run folder's own copy is always
#: ``chrpo_learning``): the ``chains`` record is the current one, ``varied``'s keeps its own name.
RECORD_NAME = {"chains": "chrpo_learning", "varied": "chrpo_learning_varied"}


def write_report(root: Path, results: Path | None = None) -> dict:
    record = build_record(root)
    text = render(record)
    names = [(root, "chrpo_learning")] + ([(results, RECORD_NAME[record["task"]])] if results else [])
    for folder, name in names:
        fileio.atomic_write_json(folder / f"{name}.json", record)
        fileio.atomic_write_text(folder / f"{name}.md", text)
        plot(record, folder / f"{name}.png")
    print(text)
    return record


def finish(cfg: LearningConfig, args: argparse.Namespace) -> str:
    """After the steps: ``--results`` also writes the record there."""
    if args.results:
        write_report(cfg.root, Path(args.results))
    return f"report: {cfg.root / 'chrpo_learning.md'}"


#: ``python benchmarks/chrpo_learning.py`` (:func:`extra_cot.experiment.main`).
LEARNING = Experiment(
    name="CHRPO learning run", prog=("python", "benchmarks/chrpo_learning.py"), error_name="chrpo_learning",
    config_file="learning_config.json", parser=parser, config_from_args=config_from_args,
    build_steps=build_steps, finish=finish)


def main(argv: list[str] | None = None) -> int:
    """The steps' helper commands: ``data`` (the RL questions) and ``report``."""
    p = argparse.ArgumentParser(prog="python -m extra_cot.study.learning", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("data", help="write OUT/rl.jsonl: RL questions after the study's splits")
    d.add_argument("--study", required=True, help="the study folder (its data/data_config.json)")
    d.add_argument("--n", type=int, required=True, help="questions to generate")
    d.add_argument("--out", required=True, help="output folder")
    r = sub.add_parser("report", help="write OUT/chrpo_learning.{json,md,png}")
    r.add_argument("--out", required=True, help="the learning run's folder")
    r.add_argument("--results", default=None, help="also write the record into this folder")
    args = p.parse_args(argv)
    if args.command == "data":
        out = Path(args.out)
        rows = rl_questions(Path(args.study) / "data", args.n)
        fileio.atomic_write_jsonl(out / "rl.jsonl", rows)
        fileio.atomic_write_json(out / "data_config.json", {"study": args.study, "n": args.n,
                                                            "grades": dict(Counter(str(r["grade"]) for r in rows))})
        print(f"wrote {out / 'rl.jsonl'}: {len(rows)} questions")
        return 0
    write_report(Path(args.out), Path(args.results) if args.results else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
