"""``python -m extra_cot.demo.validate``: held-out table of trained models, for choosing options.

    python -m extra_cot.demo.data --out runs/val --sft 1 --rl 1 --test 64 --seed 1
    python -m extra_cot.demo.validate --data runs/val/test.jsonl --out runs/val-eval \\
        --model first=runs/demo/models/fixed --model second=runs/demo/models/sft

Each model is served by vLLM with the demo's settings (``--vllm-args``, ``--vllm-reserved-cpus``) and
asked every held-out question at each ratio of ``--ratios`` with ``extra-cot eval`` (one step per
model, resumable: a rerun skips the models already evaluated). The table gives, per model and ratio,
mean think tokens with a bootstrap 95 % interval, the realized ratio against the model's own 1.0,
accuracy with a Wilson 95 % interval, and for ``policy`` the chosen ratios; it is written to
``OUT/validation.md`` and ``OUT/validation.json``. The data file is a GSM8K-format JSONL with a
``grade`` per row (``extra_cot.demo.data`` writes one); use a seed no training run uses, and keep the
test split for the record (docs/demo.md).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

from extra_cot import experiment, fileio
from extra_cot.cliargs import add_dataclass_arguments, dataclass_from_args, option
from extra_cot.demo.config import _STEP_LIST, until_option, vllm_args_option, vllm_reserved_cpus_option
from extra_cot.demo.steps import TRAINED_RATIOS, Step, _all_ok, _eval_argv
from extra_cot.eval.store import METRICS

RUN, EVAL = "run", "evaluation"
DATASET = "val"


def _models(text: str) -> list[str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"--model {text!r}: use NAME=MODEL_DIR")
    return [name, path]


@dataclass
class ValidateConfig:
    """Options of one validation evaluation; saved as ``OUT/validate_config.json``."""

    data: str = option(group=RUN, help="held-out GSM8K-format JSONL with a 'grade' per row")
    model: list[list[str]] = option(
        default_factory=list, group=RUN, parse=_models, cli_default=None, action="append",
        help="NAME=MODEL_DIR, repeated: a model folder to evaluate and its name in the table")
    out: str = option(default="runs/val-eval", group=RUN, help="output folder (default runs/val-eval)")
    ratios: str = option(default=",".join(TRAINED_RATIOS), group=EVAL,
                         help="comma list of extra-cot eval --ratios (default: 0.2 ... 1.0 and policy)")
    samples: int = option(default=1, group=EVAL, help="samples per question and ratio (default 1)")
    max_tokens: int = option(default=320, group=EVAL, help="new tokens per request (default 320, the demo's)")
    concurrency: int = option(default=32, group=EVAL, help="concurrent requests (default 32)")
    vllm_args: str = vllm_args_option(EVAL)
    vllm_reserved_cpus: int = vllm_reserved_cpus_option(EVAL)
    force: list[str] = option(help="comma list of steps to redo (eval-NAME)", **_STEP_LIST)
    only: list[str] = option(help="comma list of steps to (re)run; the others do not run", **_STEP_LIST)
    until: str = until_option()
    max_model_len: int = 2048  # not a flag: vLLM's --max-model-len (the runner's servers)
    tiny: bool = False  # not a flag: the runner's CI mode

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("give at least one --model NAME=MODEL_DIR")
        names = [name for name, _ in self.model]
        if len(set(names)) != len(names):
            raise ValueError(f"--model names must differ, got {names}")
        for name in ("samples", "max_tokens", "concurrency"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")

    @property
    def root(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict:
        return asdict(self)


def build_steps(cfg: ValidateConfig) -> list[Step]:
    n = sum(1 for _ in fileio.read_jsonl(cfg.data)) * cfg.samples
    ratios = cfg.ratios.split(",")
    steps = []
    for name, model in cfg.model:
        out = cfg.root / name
        argv = _eval_argv(cfg, out, f"{DATASET}={cfg.data}:gsm8k", cfg.ratios, Path(model), cfg.samples)
        check = (lambda out=out: _all_ok([(out / DATASET / r / METRICS, n) for r in ratios]))
        steps.append(Step(f"eval-{name}", f"{name} ({model}) at {cfg.ratios} on {cfg.data}", argv, check,
                          serve=model, clean=[out / DATASET / r for r in ratios]))
    return steps


def table(cfg: ValidateConfig) -> dict:
    """Per model and ratio: the study's run summary plus the realized ratio against the model's 1.0."""
    from extra_cot.evalsummary import eval_records, link_realized, read_grades, run_summary

    grades = read_grades(Path(cfg.data))
    record: dict = {"data": cfg.data, "n_items": len(grades), "samples": cfg.samples, "models": {}}
    for name, model in cfg.model:
        runs = {r: run_summary(eval_records(cfg.root / name / DATASET / r), grades) for r in cfg.ratios.split(",")}
        link_realized(runs)
        record["models"][name] = {"model": model, "runs": runs}
    return record


def render(record: dict) -> str:
    lines = [f"# Held-out table: {record['data']} ({record['n_items']} items x {record['samples']} sample(s))", "",
             "model | run | think tokens [95 % CI] | realized vs own 1.0 | accuracy % [95 % CI] | chosen",
             "--- | --- | --- | --- | --- | ---"]
    for name, entry in record["models"].items():
        for run, s in entry["runs"].items():
            lo, hi = s["think_tokens_ci"]
            alo, ahi = s["accuracy_ci"]
            realized = "-" if s["realized_ratio"] is None else f"{s['realized_ratio']:.2f}"
            chosen = s["chosen"] if run == "policy" else ""
            lines.append(f"{name} | {run} | {s['think_tokens']:.1f} [{lo:.1f}, {hi:.1f}] | {realized} | "
                         f"{100 * s['accuracy']:.1f} [{100 * alo:.1f}, {100 * ahi:.1f}] | {chosen}")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m extra_cot.demo.validate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = add_dataclass_arguments(p, ValidateConfig, group_order=(RUN, EVAL))
    groups[RUN].add_argument("--list", action="store_true", help="print the steps and their commands; run nothing")
    return p


def finish(cfg: ValidateConfig, args: argparse.Namespace) -> str:
    """After the steps: the table -> ``OUT/validation.{json,md}``."""
    record = table(cfg)
    text = render(record)
    fileio.atomic_write_json(cfg.root / "validation.json", record)
    fileio.atomic_write_text(cfg.root / "validation.md", text)
    print(text)
    return f"table: {cfg.root / 'validation.md'}"


def main(argv: list[str] | None = None) -> int:
    return experiment.main(experiment.Experiment(
        name="validation", prog=("python", "-m", "extra_cot.demo.validate"), error_name="extra_cot.demo.validate",
        config_file="validate_config.json", parser=parser,
        config_from_args=lambda args: dataclass_from_args(ValidateConfig, args), build_steps=build_steps,
        finish=finish, user_errors=(ValueError, OSError), steps_checked=True), argv)


if __name__ == "__main__":
    raise SystemExit(main())
