"""Stage 2 seconds per optimizer step on this CPU: precisions and YAML overrides, same data, same run.

    python benchmarks/sft_precision_step.py --model runs/study/models/ctrl --dataset-dir runs/study/sft \\
        --dataset study_fixed --steps 12
    python benchmarks/sft_precision_step.py --model runs/demo/models/ctrl --dataset-dir runs/demo/sft \\
        --dataset extra_cot_demo_fixed --cutoff-len 512 \\
        --settings "fp32 disable_gradient_checkpointing=false" "fp32 disable_gradient_checkpointing=true"

Each setting (a precision, then LLaMA-Factory ``key=value`` overrides) is one real
``llamafactory-cli train`` of the demo's YAML (the study's and demo's Stage 2 command, with the
precision mapped by :func:`extra_cot.demo.steps.precision_overrides`), stopped after ``--steps``
optimizer steps; the time per step is LLaMA-Factory's ``train_runtime`` over the steps (the first
step's warm-up included), and its ``train_loss`` shows whether a setting changes the arithmetic (the
same data order and seed in every setting). Prints one row per setting and its ratio to the first. Run it alone: the
other load on 2 cores goes straight into the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from extra_cot.demo.config import DEFAULT_SFT_CONFIG
from extra_cot.demo.steps import precision_overrides, tool


def run_one(args: argparse.Namespace, setting: str, out: Path) -> dict:
    precision, *overrides = setting.split()
    argv = tool("llamafactory-cli", "llamafactory.cli") + [
        "train", DEFAULT_SFT_CONFIG, f"model_name_or_path={args.model}", f"dataset_dir={args.dataset_dir}",
        f"dataset={args.dataset}", f"output_dir={out}", f"per_device_train_batch_size={args.batch_size}",
        f"cutoff_len={args.cutoff_len}", f"max_steps={args.steps}", *precision_overrides(precision), *overrides]
    start, load0 = time.time(), os.getloadavg()[0]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = json.loads((out / "train_results.json").read_text())
    runtime = results["train_runtime"]
    return {"setting": setting, "steps": args.steps, "train_runtime_s": round(runtime, 1),
            "train_loss": round(results["train_loss"], 4),
            "s_per_step": round(runtime / args.steps, 2), "wall_s": round(time.time() - start, 1),
            "load_start": round(load0, 2), "load_end": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder to start from (with the control tokens)")
    p.add_argument("--dataset-dir", required=True, help="folder with dataset_info.json (extra-cot build-sft)")
    p.add_argument("--dataset", required=True, help="dataset name in that dataset_info.json")
    p.add_argument("--steps", type=int, default=12, help="optimizer steps per setting")
    p.add_argument("--batch-size", type=int, default=8, help="per-device batch size (the study's and demo's 8)")
    p.add_argument("--cutoff-len", type=int, default=1024, help="LLaMA-Factory cutoff_len (the study's 1024)")
    p.add_argument(
        "--settings", nargs="+", default=["bf16", "fp32"],
        help="settings to time, each 'PRECISION [key=value ...]': fp32 or bf16, then LLaMA-Factory overrides "
        "(default: bf16 fp32); the first is the baseline")
    args = p.parse_args(argv)
    for setting in args.settings:
        if setting.split()[0] not in ("fp32", "bf16"):
            p.error(f"--settings: {setting!r} must start with fp32 or bf16")
    rows = []
    with tempfile.TemporaryDirectory(prefix="sft_precision_") as tmp:
        for i, setting in enumerate(args.settings):
            rows.append(run_one(args, setting, Path(tmp) / str(i)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    base = rows[0]["s_per_step"]
    width = max(len(r["setting"]) for r in rows)
    print(f"{'setting':>{width}} | {'steps':>5} | {'s/step':>7} | {'ratio':>5} | train loss | load start/end")
    for r in rows:
        print(f"{r['setting']:>{width}} | {r['steps']:>5} | {r['s_per_step']:>7.2f} | {r['s_per_step'] / base:>5.2f} | "
              f"{r['train_loss']:>10.4f} | {r['load_start']}/{r['load_end']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
