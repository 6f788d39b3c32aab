"""Options of one study run (``python -m extra_cot.study``): splits, sizes, schedule, evaluation.

The study is the demo's pipeline at a size that carries statistics (issue 17): generated problems
in four grades, split by ``--seed`` into SFT / policy / validation / test sets; Stage 1 compress;
a first-pass mixed-ratio SFT model (fixed ratios only) whose sweep on the policy set gives the
model-based γ*; a second pass that adds the ``<COMP_AUTO>`` rows; a no-control baseline trained on
the full traces of the same questions in the same two passes (by default with about the method's
training compute, see ``--baseline-schedule``); evaluation on the
validation and test splits. Choose options on the validation numbers; the test numbers are the record.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

from extra_cot.cliargs import (
    UNSET,
    add_dataclass_arguments,
    comma_subset,
    dataclass_from_args,
    option,
    unset_fields,
)
from extra_cot.demo.config import (
    _STEP_LIST,
    DECISIVE_BONUS,
    FORMULA_BONUS,
    PRECISIONS,
    until_option,
    vllm_args_option,
    vllm_reserved_cpus_option,
)
from extra_cot.rl.rl_data import DEFAULT_TOLERANCE
from extra_cot.sft.mixture import parse_policy_share
from extra_cot.tasks import TASKS, get_task
from extra_cot.tokens import FIXED_RATIOS

DEFAULT_OUT = "runs/study"
RUN, DATA, TRAIN, EVAL = "run", "data", "stage 2 training", "evaluation"
SPLITS = ("val", "test")
#: The no-control baseline's epochs per epoch of the method, by ``--baseline-schedule``. The method's sets
#: hold one row per question and fixed ratio, each row about ``ratio`` of a full trace's think tokens;
#: the baseline's one full trace per question.
BASELINE_REPEAT = {"compute": round(sum(FIXED_RATIOS), 6), "updates": len(FIXED_RATIOS), "epochs": 1}
#: ``--unsolved``: the γ* of a policy-set question that passes at no ratio (``None``: no policy row, the paper's rule).
UNSOLVED = {"drop": None, "1.0": 1.0}
#: ``--alternatives`` (issue 38): the rows a user has without Extra-CoT, run beside the method.
ALTERNATIVES = ("forcing", "blind")
#: ``--alternatives auto``: both on the budget-sensitive ``chains`` task, none on ``varied`` (its record stays as it was).
AUTO_ALTERNATIVES = {"chains": list(ALTERNATIVES)}
#: The record's file name in ``--results`` by task (``NAME.json`` + ``NAME.md``): ``chains`` is the study's record
#: (issue 36); ``varied``'s record, committed before ``chains`` existed, lives beside it.
RECORD_NAME = {"chains": "study", "varied": "study_varied"}
#: Sizes a ``--task`` brings on the command line, for the flags the user leaves unset (the field defaults are
#: ``varied``'s). ``chains``: the positive control's sizes (960 problems, 0.75 epoch = 449 updates,
#: 200 x 4 swept; chosen on seed 1: docs/study.md, "More first-pass updates") and item 3's test split
#: (n >= 500). ``policy_share`` 0.5: each ``<COMP_AUTO>`` row 5 times in the second pass; chosen on seed 0's
#: validation split against the paper's 0.172, whose SFT choice ignored its labels
#: (docs/study.md, "Repeating the").
TASK_SIZES = {"chains": {"n_sft": 960, "n_policy": 200, "n_val": 100, "n_test": 500, "epochs": 0.75,
                         "sweep_samples": 4, "policy_share": "0.5"}}


_alternatives = comma_subset("--alternatives", ALTERNATIVES, keywords=("auto", "none"))


def parse_tolerance(text: str) -> float | None:
    """``--budget-tolerance``: a float >= 0, or ``none`` (plain pass@k)."""
    if text.strip().lower() == "none":
        return None
    value = float(text)
    if value < 0:
        raise ValueError(f"--budget-tolerance must be >= 0 or none, got {text!r}")
    return value


def _splits(text: str) -> list[str]:
    names = [t for t in text.split(",") if t]
    bad = [t for t in names if t not in SPLITS]
    if bad or not names:
        raise ValueError(f"--splits {text!r}: use a comma list of {list(SPLITS)}")
    return names


@dataclass
class StudyConfig:
    """Everything a study run needs; saved as ``OUT/study_config.json``; the fields are the flags."""

    out: str = option(default=DEFAULT_OUT, group=RUN, help="output folder of everything (default: runs/study)")
    seed: int = option(default=0, group=DATA, help="seed of the problems and of their split (default 0)")
    task: str = option(default="varied", group=DATA, choices=sorted(TASKS),
                       help="problem generator (extra_cot.tasks): varied (word problems with varied traces; the "
                            "default) or chains (1/2/3/4 bare ± steps after fixed prose: the budget matters)")
    n_sft: int = option(default=80, cli_default=UNSET, group=DATA,
                        help="problems whose traces train the first pass (fixed ratios; default 80, chains 960)")
    n_policy: int = option(
        default=80, cli_default=UNSET, group=DATA,
        help="problems swept by the first-pass model for γ*; their traces and <COMP_AUTO> rows train the second "
             "pass (default 80, chains 200)")
    n_val: int = option(default=100, cli_default=UNSET, group=DATA,
                        help="validation problems (choose options on these; default 100)")
    n_test: int = option(default=200, cli_default=UNSET, group=DATA,
                         help="test problems (the record; default 200, chains 500)")
    splits: list[str] = option(default_factory=lambda: list(SPLITS), cli_default="val,test", parse=_splits,
                               group=EVAL, help="held-out splits the evaluation steps use (default val,test)")
    epochs: float = option(default=3.0, cli_default=UNSET, group=TRAIN,
                           help="epochs of the first pass (fixed-ratio rows of the train split; default 3, chains 0.75)")
    epochs_second: float = option(default=1.5, group=TRAIN,
                                  help="epochs of the second pass (policy split + <COMP_AUTO> rows; default 1.5)")
    baseline_schedule: str = option(
        default="compute", group=TRAIN, choices=list(BASELINE_REPEAT),
        help="what the no-control baseline matches, as a multiple of the method's epochs over its one row per "
             "question: compute (x the sum of the fixed ratios, 3: about the method's think tokens; the default), "
             "updates (x the number of fixed ratios, 5: as many optimizer steps as the method) or epochs (x 1)")
    batch_size: int = option(default=8, group=TRAIN, help="per-device batch size (default 8)")
    learning_rate: float = option(default=5.0e-4, group=TRAIN, help="peak learning rate, cosine schedule (5e-4)")
    precision: str = option(default="auto", group=TRAIN, choices=list(PRECISIONS),
                            help="Stage 2 arithmetic, as the demo's --precision (auto: bf16 where the CPU has it)")
    formula_bonus: float = option(default=FORMULA_BONUS, group=DATA, help=f"extra-cot compress --formula-bonus (default {FORMULA_BONUS:g})")
    decisive_bonus: float = option(default=DECISIVE_BONUS, group=DATA, help=f"extra-cot compress --decisive-bonus (default {DECISIVE_BONUS:g})")
    scorer: str = option(default="auto", group=DATA, choices=["auto", "lm", "heuristic"],
                         help="extra-cot compress --scorer: lm (SmolLM2 surprisal), heuristic (fast), or auto (the "
                              "default: heuristic for --task chains, lm for varied)")
    budget_tolerance: float | None = option(
        default=DEFAULT_TOLERANCE, cli_default=f"{DEFAULT_TOLERANCE:g}", parse=parse_tolerance, group=DATA,
        help="python -m extra_cot.study.gamma --budget-tolerance: a sweep sample passes ratio r only if it is correct "
             f"and its think tokens stay within (r + this) x the question's at 1.0 (ours; default {DEFAULT_TOLERANCE:g}, "
             "the paper's comp_tolerance); none: plain pass@k, where a sample that ignored its token counts")
    policy_quotas: str = option(
        default="none", group=DATA,
        help="build-sft --policy-quotas for the <COMP_AUTO> rows: none (one row per question with a γ*, the "
             "default), method (the paper's shares), or a spec")
    unsolved: str = option(
        default="drop", group=DATA, choices=list(UNSOLVED),
        help="python -m extra_cot.study.gamma --unsolved: γ* of a policy-set question that passes at no ratio in the "
             "sweep: drop (no <COMP_AUTO> row, the paper's rule; the default) or 1.0 (the largest budget)")
    policy_share: str = option(
        default="method", cli_default=UNSET, group=DATA,
        help="build-sft --policy-share for the second pass: repeat the <COMP_AUTO> rows until they are about this "
             "share of its examples; method (the paper's 10k of ~58k rows, 0.172; the default), none (each row "
             "once) or a share in (0, 1) (chains: 0.5, chosen on validation)")
    sweep_samples: int = option(default=2, cli_default=UNSET, group=EVAL,
                                help="samples per policy-set question in the γ* sweep (pass@k; default 2, chains 4)")
    alternatives: list[str] = option(
        default_factory=lambda: ["auto"], cli_default="auto", parse=_alternatives, group=EVAL,
        help="rows a user has without Extra-CoT (docs/study.md): forcing (the no-control baseline with its think "
             "block cut at each fixed ratio's mean think tokens, s1-style; ~17 min on chains), blind (a formula- and "
             "question-blind compressor, TokenSkip-style, trained as the method; ~80 min on chains); a comma list, none, "
             "or auto (the default: both for --task chains, none for varied)")
    max_tokens: int = option(default=400, group=EVAL, help="new tokens per evaluation request (default 400)")
    concurrency: int = option(default=32, group=EVAL, help="concurrent requests per server (default 32)")
    vllm_args: str = vllm_args_option(EVAL)
    vllm_reserved_cpus: int = vllm_reserved_cpus_option(EVAL)
    force: list[str] = option(help="comma list of steps to redo (and every step after the first)", **_STEP_LIST)
    only: list[str] = option(help="comma list of steps to (re)run; the others do not run", **_STEP_LIST)
    until: str = until_option()
    cutoff_len: int = 1024  # not a flag: the longest trace + prompt is under 800 tokens of SmolLM2
    max_model_len: int = 2048  # not a flag: vLLM's --max-model-len
    tiny: bool = False  # not a flag: the demo runner's CI mode

    def __post_init__(self) -> None:
        for name in ("n_sft", "n_policy", "n_val", "n_test", "batch_size", "sweep_samples", "max_tokens",
                     "concurrency"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        self.policy_share = str(self.policy_share).strip().lower()
        try:
            parse_policy_share(self.policy_share)  # build-sft's parser: one rule for both
        except ValueError as err:
            raise ValueError(f"--policy-share: {err}") from None
        if self.scorer == "auto":
            self.scorer = get_task(self.task).scorer  # --scorer auto: the task's own
        if self.alternatives == ["auto"]:
            self.alternatives = list(AUTO_ALTERNATIVES.get(self.task, []))
        elif self.alternatives == ["none"]:
            self.alternatives = []
        if self.epochs <= 0 or self.epochs_second <= 0:
            raise ValueError(f"--epochs and --epochs-second must be > 0, got {self.epochs}, {self.epochs_second}")

    @property
    def root(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict:
        return asdict(self)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m extra_cot.study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  python -m extra_cot.study --task chains --seed 0 --results results   # the record (runs/study; make study)\n"
        "  python -m extra_cot.study --seed 1 --splits val --out runs/study-val1   # choose options on val only\n"
        "  python -m extra_cot.study --seed 5 --out runs/s5 --only data   # just the traces (DIR/data/)\n"
        "  python -m extra_cot.study --task chains --out runs/c0 --only data,model,compress-train,chain-kept"
        "   # Level-0 check\n"
        "  python -m extra_cot.study --list                   # print every step's command\n",
    )
    groups = add_dataclass_arguments(p, StudyConfig, group_order=(RUN, DATA, TRAIN, EVAL))
    groups[RUN].add_argument("--list", action="store_true", help="print the steps and their commands; run nothing")
    groups[RUN].add_argument("--results", default=None,
                             help="after the run, also write the record into RESULTS: study.{json,md} for --task chains, "
                                  "study_varied.{json,md} for varied")
    return p


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """Resolve flags: the task's sizes (:data:`TASK_SIZES`) fill whatever the user left unset."""
    fill = unset_fields(StudyConfig, args)
    return dataclass_from_args(StudyConfig, args,
                               **{k: v for k, v in TASK_SIZES.get(args.task, {}).items() if k in fill})
