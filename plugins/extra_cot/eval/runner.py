"""One sweep: for each ratio, request every missing item, log it, then write the final files."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import httpx
from tqdm.auto import tqdm

from extra_cot.eval import metrics as M
from extra_cot.eval import store
from extra_cot.eval.client import EndpointPool
from extra_cot.eval.config import EvalConfig
from extra_cot.eval.datasets import DatasetSpec, EvalItem
from extra_cot.fileio import append_jsonl, atomic_write_json, atomic_write_text
from extra_cot.think import THINK_CLOSE, THINK_OPEN
from extra_cot.tokens import RATIO_DIRS, first_control

logger = logging.getLogger(__name__)


def _grade(output: str, gold: str) -> tuple[str | None, bool]:
    from extra_cot.grading import grade_response  # the one grading rule (answer after </think>)

    return grade_response(output, gold)


async def _one_item(
    item: EvalItem, ratio: str, cfg: EvalConfig, client: httpx.AsyncClient, counter, pool: EndpointPool
) -> dict:
    from extra_cot.eval.client import chat
    from extra_cot.prompt import build_messages, build_user_text, forced_prefix

    control = None if ratio == "base" else ratio
    sampling = cfg.sampling
    messages = build_messages(item.question, control)
    prefix = forced_prefix(control) if cfg.force_control and ratio not in ("base", "policy") else ""
    if sampling.s1 and ratio == "base":
        prefix = f"{THINK_OPEN}\n"  # the opener as the model writes it, so the budget counts think tokens only
    asked = [*messages, {"role": "assistant", "content": prefix}] if prefix else messages
    body = (sampling.s1_think_body if sampling.s1 else sampling.body)(cfg.model, asked, item.index)
    if prefix:  # vLLM: continue the prefilled assistant turn instead of opening a new one
        body.update(continue_final_message=True, add_generation_prompt=False)
    completions, latency = await chat(client, pool, body, retries=cfg.retries)
    outputs = [prefix + c for c in completions]  # the whole assistant turn, prefill included
    if sampling.s1:
        outputs, answer_latency = await _s1_answers(outputs, messages, item.index, cfg, client, pool)
        latency += answer_latency
    records = []
    for sample, output in enumerate(outputs):
        pred, correct = await asyncio.to_thread(_grade, output, item.gold)
        think_tokens, closed = await counter.count(client, output)
        records.append(
            {
                "index": item.index,
                "sample": sample,
                "question": item.question,
                "prompt": build_user_text(item.question, control),
                "output": output,
                "pred": pred,
                "gold": item.gold,
                "correct": correct,
                "think_tokens": think_tokens,
                "control": first_control(output),
                "latency_s": latency,
                "closed_think": closed,
                "forced_prefix": prefix,
            }
        )
    return {"index": item.index, "records": records, "think_budget": sampling.think_budget,
            **({"think_budget_mode": sampling.think_budget_mode} if sampling.think_budget is not None else {})}


def s1_turn(think: str, cue: str) -> str:
    """s1-style budget forcing: the think phase's text (cut at the budget or closed by the model,
    ``</think>`` not included) closed with ``</think>``, a blank line and the answer cue: the layout
    :func:`extra_cot.prompt.build_response` writes."""
    return f"{think.rstrip()}{THINK_CLOSE}\n\n{cue}"


async def _s1_answers(thinks: list[str], messages: list[dict], index: int, cfg: EvalConfig,
                      client: httpx.AsyncClient, pool: EndpointPool) -> tuple[list[str], float]:
    """The answer phase of each think-phase text (one request each, at once): the whole turns and
    the slowest request's latency."""
    from extra_cot.eval.client import chat

    async def one(think: str) -> tuple[str, float]:
        turn = s1_turn(think, cfg.sampling.answer_cue)
        body = cfg.sampling.s1_answer_body(cfg.model, [*messages, {"role": "assistant", "content": turn}], index)
        texts, latency = await chat(client, pool, body, retries=cfg.retries)
        return turn + (texts[0] if texts else ""), latency

    done = await asyncio.gather(*(one(t) for t in thinks))
    return [turn for turn, _ in done], max((lat for _, lat in done), default=0.0)


async def run_ratio(
    cfg: EvalConfig, spec: DatasetSpec, items: list[EvalItem], ratio: str, counter, pool: EndpointPool
) -> None:
    run_dir = Path(cfg.output_dir) / spec.name / ratio
    partial = run_dir / store.PARTIAL
    done = store.read_partial(partial)
    check_budget(done, cfg.sampling.think_budget, partial, cfg.sampling.think_budget_mode)
    odd = sorted(i for i, e in done.items() if len(e["records"]) != cfg.n_samples)
    if odd:
        logger.warning(
            "%s: %d finished items have a sample count other than --n-samples %d (e.g. item %d); "
            "they are kept as they are: use a new --output_dir to change K",
            partial,
            len(odd),
            cfg.n_samples,
            odd[0],
        )
    todo = [item for item in items if item.index not in done]
    if todo:
        logger.info("%s/%s: %d done, %d to request", spec.name, ratio, len(done), len(todo))
        session_start = time.time()
        width = cfg.concurrency * len(pool.roots)  # --concurrency is per server
        limit = asyncio.Semaphore(width)
        timeout = httpx.Timeout(cfg.request_timeout_s, connect=30.0)
        limits = httpx.Limits(max_connections=width, max_keepalive_connections=width)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:

            async def guarded(item: EvalItem) -> dict:
                async with limit:
                    return await _one_item(item, ratio, cfg, client, counter, pool)

            tasks = [asyncio.create_task(guarded(item)) for item in todo]
            try:
                for finished in tqdm(
                    asyncio.as_completed(tasks), total=len(tasks), desc=f"{spec.name}/{ratio}"
                ):
                    entry = await finished
                    entry.update(session_start=session_start, t_done=time.time())
                    append_jsonl(partial, entry)
                    done[entry["index"]] = entry
            finally:
                for task in tasks:
                    task.cancel()
    wanted = {item.index for item in items}
    records = store.records_of({i: e for i, e in done.items() if i in wanted})
    atomic_write_json(run_dir / store.PREDICTION, [store.public_record(r) for r in records])


def run_budget(done: dict[int, dict]) -> int | None:
    """The ``--think-budget`` the finished items of a run were requested with (``None``: no cap)."""
    budgets = {entry.get("think_budget") for entry in done.values()}
    if len(budgets) > 1:
        raise ValueError(f"items requested with different --think-budget values {sorted(budgets, key=str)}")
    return budgets.pop() if budgets else None


def run_budget_mode(done: dict[int, dict]) -> str | None:
    """The ``--think-budget-mode`` of a run's finished items (``None`` without a budget; items
    logged before the option existed were ``server``)."""
    modes = {entry.get("think_budget_mode", "server") for entry in done.values() if entry.get("think_budget") is not None}
    if len(modes) > 1:
        raise ValueError(f"items requested with different --think-budget-mode values {sorted(modes)}")
    return modes.pop() if modes else None


def check_budget(done: dict[int, dict], budget: int | None, partial: Path, mode: str = "server") -> None:
    """Refuse to resume a run whose finished items were requested with another ``--think-budget``
    (or the same budget enforced another way, ``--think-budget-mode``)."""
    try:
        before, before_mode = run_budget(done), run_budget_mode(done)
    except ValueError as err:
        raise ValueError(f"{partial}: {err}; use a new --output_dir") from None
    if done and before != budget:
        raise ValueError(f"{partial}: its {len(done)} finished items were requested with --think-budget "
                         f"{before}, this run asks {budget}; use a new --output_dir or the same budget")
    if done and budget is not None and before_mode != mode:
        raise ValueError(f"{partial}: its {len(done)} finished items were requested with --think-budget-mode "
                         f"{before_mode}, this run asks {mode}; use a new --output_dir or the same mode")


async def run_sweep(cfg: EvalConfig, spec: DatasetSpec, items: list[EvalItem], down: tuple[str, ...] = ()) -> None:
    """Every ratio of one data set; ``down``: API roots that did not answer at start (benched first)."""
    from extra_cot.eval.client import EndpointPool, ThinkCounter

    pool = EndpointPool.from_base_urls(cfg.base_urls, per_server=cfg.concurrency, down=tuple(down))
    counter = ThinkCounter(cfg.tokenizer, pool, cfg.model)
    logger.info("think tokens counted with %s", counter.source)
    try:
        for ratio in cfg.ratios:
            await run_ratio(cfg, spec, items, ratio, counter, pool)
    finally:
        report_endpoints(pool, spec.name)


def report_endpoints(pool: EndpointPool, dataset: str) -> None:
    """Log each server's share of the requests; a WARNING names every server that failed."""
    for root, counts in pool.report().items():
        level = logging.WARNING if counts["failed"] else logging.INFO
        logger.log(level, "%s: endpoint %s got %d requests, %d failed (retried on another)",
                   dataset, root, counts["requests"], counts["failed"])


def regrade_dataset(ds_dir: Path) -> int:
    """Re-extract and re-grade every stored output under ``ds_dir`` (no server); return records.

    For when the grader improves after an expensive sweep: each partial log is rewritten
    atomically with new ``pred``/``correct``, then prediction.json follows.
    """
    total = 0
    for partial in sorted(ds_dir.glob(f"*/{store.PARTIAL}")):
        done = store.read_partial(partial)
        for entry in done.values():
            for rec in entry["records"]:
                rec["pred"], rec["correct"] = _grade(rec["output"], rec["gold"])
                total += 1
        text = "".join(json.dumps(done[i], ensure_ascii=False) + "\n" for i in sorted(done))
        atomic_write_text(partial, text)
        atomic_write_json(
            partial.parent / store.PREDICTION, [store.public_record(r) for r in store.records_of(done)]
        )
    return total


def _sort_key(name: str) -> tuple[int, str]:
    return (RATIO_DIRS.index(name), name) if name in RATIO_DIRS else (len(RATIO_DIRS), name)


def write_dataset_metrics(ds_dir: Path, dataset: str, base_run: str = "base") -> dict[str, dict]:
    """(Re)compute metrics.json of every run under ``ds_dir`` (cross-run keys need all runs)."""
    by_ratio = {}
    for run_dir in sorted(
        (p for p in ds_dir.iterdir() if (p / store.PARTIAL).is_file()), key=lambda p: _sort_key(p.name)
    ):
        done = store.read_partial(run_dir / store.PARTIAL)
        by_ratio[run_dir.name] = M.run_metrics(
            store.records_of(done), store.wall_time(done), dataset, run_dir.name
        )
        by_ratio[run_dir.name]["think_budget"] = run_budget(done)  # None: no cap
        by_ratio[run_dir.name]["think_budget_mode"] = run_budget_mode(done)
    linked = M.link_runs(by_ratio, base=base_run)
    for name, metrics in linked.items():
        atomic_write_json(ds_dir / name / store.METRICS, metrics)
    for a, b, gap in M.control_collapse(linked):
        logger.warning(
            "CONTROL COLLAPSE on %s: targets %s and %s realize ratios only %.3f apart (< %.2f); "
            "the model does not follow these control tokens",
            dataset,
            a,
            b,
            gap,
            M.COLLAPSE_TOLERANCE,
        )
    return linked


def write_summary(out: Path) -> str:
    """``OUT/summary.md``: the metrics table of every data set and run found under ``out``."""
    rows = []
    for metrics_path in sorted(
        out.glob(f"*/*/{store.METRICS}"), key=lambda p: (p.parent.parent.name, _sort_key(p.parent.name))
    ):
        rows.append(json.loads(metrics_path.read_text()))
    text = "# Evaluation summary\n\n" + M.summary_table(rows)
    collapsed = []
    for dataset in sorted({r["dataset"] for r in rows}):
        by_ratio = {r["ratio"]: r for r in rows if r["dataset"] == dataset}
        collapsed += [
            f"- {dataset}: {a} vs {b} (gap {gap:.3f})" for a, b, gap in M.control_collapse(by_ratio)
        ]
    if collapsed:
        text += "\n**Control collapse** (realized ratios < 0.05 apart):\n" + "\n".join(collapsed) + "\n"
    atomic_write_text(out / "summary.md", text)
    return text
