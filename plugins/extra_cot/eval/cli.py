"""``extra-cot eval``: a ratio sweep against an OpenAI-compatible (vLLM) server.

Writes ``OUT/<dataset>/<ratio>/{partial.jsonl,prediction.json,metrics.json}``, ``OUT/summary.md``
and ``OUT/eval_config.json``. Rerunning the same command completes only the missing items.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from extra_cot.cliargs import add_dataclass_arguments, dataclass_from_args, user_error_line
from extra_cot.eval.config import DATA, SERVER, EvalConfig
from extra_cot.eval.datasets import EvalItem, load_items
from extra_cot.eval.runner import run_sweep, write_dataset_metrics, write_summary
from extra_cot.eval.server import REASONING_CONFIG
from extra_cot.eval.store import PARTIAL

logger = logging.getLogger("extra_cot.eval")

EXAMPLES = """examples:
  # the paper's sweep (server started with --served-model-name local_core_model)
  extra-cot eval --host 127.0.0.1 --port 8000 --model local_core_model --output_dir out/eval \\
      --dataset gsm8k=data/gsm8k_test.jsonl --dataset math500=data/math500_test.jsonl \\
      --dataset amc23=data/amc23_test.jsonl --ratios 0.2,0.4,0.6,0.8,1.0,policy,base

  # quick look: 20 items, 3 samples each, think tokens counted with a local tokenizer
  extra-cot eval --port 8000 --output_dir out/quick --dataset gsm8k=data/gsm8k_test.jsonl \\
      --limit 20 --n-samples 3 --ratios 0.2,1.0,base --tokenizer models/extra-cot-sft

  # the same sweep over two servers (requests spread by load; one that dies is retried elsewhere)
  extra-cot eval --endpoints node1:8000,node2:8000 --output_dir out/eval --dataset gsm8k=data/gsm8k_test.jsonl

  # think budget: the server forces </think> after 512 think tokens (vLLM thinking_token_budget);
  # start it with our think markers as its reasoning config (not a --reasoning-parser):
  #   python -m vllm.entrypoints.openai.api_server --model DIR --served-model-name local_core_model \\
  #       --reasoning-config '<REASONING_CONFIG>'
  extra-cot eval --port 8000 --output_dir out/budget512 --dataset gsm8k=data/gsm8k_test.jsonl \\
      --ratios 1.0,policy,base --think-budget 512

  # re-grade stored outputs after a grader change (no server needed)
  extra-cot eval --output_dir out/eval --regrade

  # generic jsonl with other field names: NAME=PATH:generic:QUESTION_FIELD:ANSWER_FIELD
  extra-cot eval --port 8000 --output_dir out/mm --dataset metamath=mm1k.jsonl:generic:query:response
""".replace("<REASONING_CONFIG>", json.dumps(REASONING_CONFIG))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="extra-cot eval",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    groups = add_dataclass_arguments(p, EvalConfig, group_order=(SERVER, DATA))
    groups[DATA].add_argument(
        "--regrade",
        action="store_true",
        help="no requests: re-grade every stored output under --output_dir, rewrite metrics",
    )
    return p


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    cfg = dataclass_from_args(EvalConfig, args)
    cfg.validate()
    return cfg


def _regrade(out: Path, base_run: str) -> int:
    from extra_cot.eval.runner import regrade_dataset

    ds_dirs = (
        sorted(p for p in out.iterdir() if p.is_dir() and any(p.glob(f"*/{PARTIAL}")))
        if out.is_dir()
        else []
    )
    if not ds_dirs:
        print(f"extra-cot eval --regrade: no <dataset>/<ratio>/{PARTIAL} under {out}", file=sys.stderr)
        return 2
    for ds_dir in ds_dirs:
        logger.info("%s: re-graded %d records", ds_dir.name, regrade_dataset(ds_dir))
        write_dataset_metrics(ds_dir, ds_dir.name, base_run)
    print(write_summary(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns tqdm
    args = _parser().parse_args(argv)
    if args.regrade:
        return _regrade(Path(args.output_dir), args.base_run)
    try:
        cfg = config_from_args(args)
        items: dict[str, list[EvalItem]] = {d.name: load_items(d, cfg.limit) for d in cfg.datasets}
    except (ValueError, TypeError, OSError) as err:
        print(f"extra-cot eval: {user_error_line(err)}", file=sys.stderr)
        return 2
    from extra_cot.eval.client import ServerError, check_servers
    from extra_cot.fileio import atomic_write_json

    out = Path(cfg.output_dir)
    try:
        down = tuple(check_servers(cfg.base_urls, cfg.model))
        atomic_write_json(out / "eval_config.json", asdict(cfg))
        for spec in cfg.datasets:
            asyncio.run(run_sweep(cfg, spec, items[spec.name], down))
            write_dataset_metrics(out / spec.name, spec.name, cfg.base_run)
    except ServerError as err:
        print(f"extra-cot eval: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # an --output_dir that cannot be written: one line, not a traceback
        print(f"extra-cot eval: {user_error_line(err)}", file=sys.stderr)
        return 2
    except ValueError as err:  # e.g. resuming a run with another --think-budget
        print(f"extra-cot eval: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "extra-cot eval: interrupted; finished items are kept, rerun the same command to complete",
            file=sys.stderr,
        )
        return 130
    print(write_summary(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
