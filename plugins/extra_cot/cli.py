"""``extra-cot`` command line: one subcommand per pipeline step.

Examples::

    extra-cot compress --input traces.jsonl --output compressed.jsonl --ratios 0.2,0.4,0.6,0.8
    extra-cot build-sft --input compressed.jsonl --output-dir data/sft
    extra-cot eval --host 127.0.0.1 --port 8000 --model local_core_model --output_dir out \\
        --dataset gsm8k=gsm8k_test.jsonl --ratios 0.2,0.4,0.6,0.8,1.0,policy,base
    extra-cot plot out
    extra-cot build-rl --sweep out_rl --output-dir data/rl
"""

from __future__ import annotations

import importlib
import sys

#: subcommand -> module exposing ``main(argv=None) -> int``; imported lazily so that
#: ``extra-cot --help`` imports no host.
COMMANDS: dict[str, tuple[str, str]] = {
    "compress": ("extra_cot.compress.cli", "Stage 1: compress chains of thought to target ratios"),
    "label": ("extra_cot.compress.label", "Stage 1: ask an OpenAI-compatible teacher for keep-spans"),
    "train-compressor": ("extra_cot.compress.train", "Stage 1: fine-tune a token-classifier compressor"),
    "build-sft": ("extra_cot.compress.build_sft", "Stage 2: write multi-ratio SFT rows + dataset_info.json"),
    "prepare-model": ("extra_cot.sft.prepare", "Stage 2: add control tokens to a model and init their rows"),
    "eval": ("extra_cot.eval.cli", "Evaluation: ratio sweep against an OpenAI-compatible server"),
    "plot": ("extra_cot.eval.plot", "Evaluation: plots of an eval output tree"),
    "summarize": ("extra_cot.evalsummary", "Evaluation: accuracy and think tokens per grade of eval runs"),
    "build-rl": ("extra_cot.rl.build_rl", "Stage 3: verl parquet (gt_ratio, ref_full_len) from sweeps"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "usage: extra-cot <command> [options]\n\ncommands:\n" + "\n".join(lines) + "\n\n" + (
        "Run `extra-cot <command> --help` for a command's options and examples."
    )


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"extra-cot: unknown command {name!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
