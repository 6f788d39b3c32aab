"""Study step ``budget-forcing``: s1-style budget forcing as a row of the study (issue 38, item 9).

The alternative a user has without Extra-CoT: take the no-control baseline (trained on full traces,
asked without a token) and cut its think block at a budget, closing it there, then let it answer.
``--mode s1`` (the default; ``extra-cot eval --think-budget N --think-budget-mode s1``) is s1's
budget forcing: the think block is generated with at most N tokens, closed, and the answer cue
("The answer is \\boxed{", s1's "Final Answer:") written after it, so the model answers from the
reasoning it has. ``--mode server`` leaves the cut to vLLM (``thinking_token_budget``; the server,
started with our think markers as its reasoning config,
:func:`extra_cot.eval.server.reasoning_config_args`, forces ``</think>`` after N think tokens) and
then lets the model write freely: measured on the chains study's baseline
(docs/study.md, "Budget forcing: the server's cut does not bind"), the model goes on reasoning after the forced
``</think>`` and spends about its unforced think tokens, so that row is not at the method's budget.

The budgets are measured, not chosen: for each fixed ratio r, N = the Extra-CoT model's mean think
tokens at r on the same split (``eval/<split>/<r>/prediction.json``, rounded), so ``forced_<r>``
spends about what the method's row r spends. One ``extra-cot eval`` per split and ratio (one budget
per command) writes ``OUT/<split>/<r>/<split>/base/``; ``OUT/budgets.json`` records the budgets.

``python -m extra_cot.study.forcing --eval runs/study/eval --out runs/study/eval_forced
--dataset test=runs/study/data/test.jsonl --port 8000 --tokenizer runs/study/models/no_control``
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

from extra_cot.eval.client import BUDGET_MODES
from extra_cot.eval.store import METRICS
from extra_cot.fileio import atomic_write_json
from extra_cot.tokens import FIXED_RATIOS, ratio_dir_name

logger = logging.getLogger(__name__)

FIXED = tuple(ratio_dir_name(r) for r in FIXED_RATIOS)
BUDGETS_NAME = "budgets.json"
#: ``--mode`` default: s1's budget forcing (the module doc says why not the server's cut)
DEFAULT_MODE = "s1"


def mode_stale(out: Path, mode: str = DEFAULT_MODE) -> str | None:
    """Why the forced runs in ``out`` are not ``mode``'s (``None`` when they are): a folder written
    in another mode, or before ``budgets.json`` recorded one (then it was ``server``)."""
    path = Path(out) / BUDGETS_NAME
    if not path.is_file():
        return f"{path} is missing"
    before = json.loads(path.read_text()).get("mode", "server")
    return None if before == mode else f"{path}: forced in mode {before!r}, the study forces in {mode!r}"


def run_dir(out: Path, split: str, ratio: str) -> Path:
    """Where the forced run of ``ratio`` on ``split`` is written (one ``extra-cot eval`` output folder)."""
    return Path(out) / split / ratio / split / "base"


def mean_think_tokens(run: Path) -> float:
    """Mean think tokens of an evaluation run: its ``metrics.json`` ``tokens`` (the mean over its records,
    :mod:`extra_cot.eval.metrics`; the report's ``think_tokens``)."""
    path = Path(run) / METRICS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the study's evaluation step 'eval' first")
    tokens = json.loads(path.read_text()).get("tokens")
    if not isinstance(tokens, (int, float)) or isinstance(tokens, bool):
        raise ValueError(f"{path}: field 'tokens' (mean think tokens) is missing or not a number")  # noqa: TRY004 (bad input file)
    return float(tokens)


def budgets(eval_root: Path, splits: list[str], ratios: tuple[str, ...] = FIXED) -> dict[str, dict[str, int]]:
    """``{split: {ratio: N}}``: N = the Extra-CoT run's mean think tokens at ``ratio`` on ``split``, rounded."""
    return {split: {r: round(mean_think_tokens(Path(eval_root) / split / r)) for r in ratios} for split in splits}


def eval_argv(out: Path, split: str, data: Path, ratio: str, budget: int, args) -> list[str]:
    """The ``extra-cot eval`` arguments of one forced run (the study's evaluation command, no token)."""
    from extra_cot.demo.steps import PORT, _eval_argv

    opts = SimpleNamespace(max_tokens=args.max_tokens, concurrency=args.concurrency)
    argv = _eval_argv(opts, Path(out) / split / ratio, f"{split}={data}:gsm8k", "base", Path(args.tokenizer))
    argv = [a.replace(PORT, str(args.port)) for a in argv[argv.index("eval") + 1:]]
    return [*argv, "--think-budget", str(budget), "--think-budget-mode", args.mode]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m extra_cot.study.forcing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eval", required=True, help="the Extra-CoT model's evaluation folder (EVAL/<split>/<ratio>/)")
    p.add_argument("--out", required=True, help="output folder of the forced runs")
    p.add_argument("--dataset", action="append", required=True, metavar="SPLIT=PATH",
                   help="a held-out split and its GSM8K-format file (repeat per split)")
    p.add_argument("--port", required=True, help="port of the vLLM server serving the no-control baseline")
    p.add_argument("--tokenizer", required=True, help="the served model's folder (think tokens counted with it)")
    p.add_argument("--mode", choices=BUDGET_MODES, default=DEFAULT_MODE,
                   help="extra-cot eval --think-budget-mode: s1 (client-side cut and answer cue) or server "
                   "(vLLM's thinking_token_budget, then a free answer)")
    p.add_argument("--max-tokens", type=int, default=400)
    p.add_argument("--concurrency", type=int, default=32)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    data = dict(d.split("=", 1) for d in args.dataset)
    try:
        plan = budgets(Path(args.eval), list(data))
    except (OSError, ValueError) as err:
        print(f"python -m extra_cot.study.forcing: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    atomic_write_json(out / BUDGETS_NAME, {"source": str(args.eval), "mode": args.mode, "budgets": plan})
    from extra_cot.eval.cli import main as eval_main

    for split, by_ratio in plan.items():
        for ratio, budget in by_ratio.items():
            cmd = eval_argv(out, split, Path(data[split]), ratio, budget, args)
            logger.info("forced_%s on %s: think budget %d\n    $ extra-cot eval %s", ratio, split, budget, shlex.join(cmd))
            code = eval_main(cmd)
            if code != 0:
                print(f"python -m extra_cot.study.forcing: extra-cot eval exited {code} for forced_{ratio} on {split}",
                      file=sys.stderr)
                return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
