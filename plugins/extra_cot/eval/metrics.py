"""Evaluation metrics (docs/method.md, "Evaluation"): pure functions over prediction records.

Definitions (``n`` = number of records = items × samples):

* ``tokens``: mean think tokens (``extra_cot.think.think_span``'s count: the think block plus any
  reasoning outside it; an unclosed block counts in full; docs/method.md, "Think accounting").
* ``acc_all``: correct / n (no prediction counts as wrong).
* ``acc_answered``: correct / records with an extracted answer (``None`` if none answered).
* ``act_ratio``: tokens(this run) / tokens(base run of the same data set): a ratio of means.
* ``realized_ratio``: tokens(this run) / tokens(the ``1.0`` run of the same data set): the ratio
  the control token actually achieved (same ratio-of-means definition).
* ``latency_s``: wall time of all requests (concurrent) / number of items.
* ``closed_think_share``: share of outputs with a closed think block.
* ``truncated_share``: share of outputs cut off inside their think block (``<think>`` never
  closed); their tokens count in ``tokens``, so a high share means ``max_tokens`` caps the run.
* ``control_distribution``: share of each first control token in the outputs (``"none"``).
* ``echo_fidelity``: fixed ratios only (``None`` for policy/base): share of outputs whose leading
  token (leading whitespace ignored) is the requested ``<COMP_xx>``; with ``--force-control`` the
  token is prefilled, so it is 1.0 by construction (``forced_control`` says so).
* ``chosen_ratio_distribution``: share of each leading control token (``"none"`` when the output
  does not start with one): for ``policy`` the ratios the model chose.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from extra_cot.think import think_span
from extra_cot.tokens import canonical_text, parse_control, parse_leading_control

#: Two targets whose realized ratios differ by less than this have "collapsed" (issue 4);
#: 0.05 is also the compressor's bucket tolerance (docs/method.md, "Stage 1").
COLLAPSE_TOLERANCE = 0.05


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _requested_token(ratio: str) -> str | None:
    """The fixed-ratio token a run folder asked for (``None`` for policy/base/unknown names)."""
    try:
        choice = parse_control(ratio)
    except ValueError:
        return None
    return None if choice is None or choice.is_policy else choice.token


def _leading(record: Mapping) -> str:
    choice = parse_leading_control(str(record.get("output", "")))
    return "none" if choice is None else canonical_text(choice.token)


def echo_fidelity(records: Sequence[Mapping], ratio: str) -> float | None:
    """Share of ``records`` whose output starts with the token ``ratio`` requested (see module doc)."""
    token = _requested_token(ratio)
    if token is None or not records:
        return None
    return sum(_leading(r) == token for r in records) / len(records)


def run_metrics(records: Sequence[Mapping], wall_s: float, dataset: str, ratio: str) -> dict:
    """Metrics of one (data set, ratio) run; cross-run keys are ``None`` until :func:`link_runs`."""
    n = len(records)
    leading = Counter(_leading(r) for r in records)
    correct = sum(bool(r["correct"]) for r in records)
    answered = sum(r.get("pred") is not None for r in records)
    n_items = len({r["index"] for r in records})
    controls = Counter(r.get("control") or "none" for r in records)
    samples = {}
    for r in records:
        samples.setdefault(r["index"], []).append(bool(r["correct"]))
    return {
        "dataset": dataset,
        "ratio": ratio,
        "n": n,
        "n_items": n_items,
        "tokens": _mean([float(r["think_tokens"]) for r in records]),
        "acc_all": correct / n if n else 0.0,
        "acc_answered": correct / answered if answered else None,
        "pass_at_k": _mean([float(any(v)) for v in samples.values()]),
        "act_ratio": None,
        "latency_s": wall_s / n_items if n_items else 0.0,
        "closed_think_share": _mean([float(r["closed_think"]) for r in records]) if records else 0.0,
        "truncated_share": _mean([float(think_span(str(r.get("output", ""))).truncated) for r in records]),
        "control_distribution": {k: v / n for k, v in sorted(controls.items())} if n else {},
        "echo_fidelity": echo_fidelity(records, ratio),
        "chosen_ratio_distribution": {k: v / n for k, v in sorted(leading.items())} if n else {},
        "forced_control": any(r.get("forced_prefix") for r in records),
        "realized_ratio": None,
    }


def _ratio(num: float, den: float | None) -> float | None:
    return None if den is None or den <= 0 else num / den


def link_runs(by_ratio: Mapping[str, dict], base: str = "base", reference: str = "1.0") -> dict[str, dict]:
    """Fill ``act_ratio`` (vs ``base``) and ``realized_ratio`` (vs ``reference``) for one data set."""
    base_tokens = by_ratio[base]["tokens"] if base in by_ratio else None
    ref_tokens = by_ratio[reference]["tokens"] if reference in by_ratio else None
    out = {}
    for name, metrics in by_ratio.items():
        linked = dict(metrics)
        linked["act_ratio"] = _ratio(metrics["tokens"], base_tokens)
        linked["realized_ratio"] = _ratio(metrics["tokens"], ref_tokens)
        out[name] = linked
    return out


def control_collapse(
    by_ratio: Mapping[str, dict], tol: float = COLLAPSE_TOLERANCE
) -> list[tuple[str, str, float]]:
    """Pairs of fixed targets whose realized ratios differ by less than ``tol``: (a, b, gap)."""
    fixed = []
    for name, metrics in by_ratio.items():
        try:
            target = float(name)
        except ValueError:
            continue  # policy / base have no target
        if metrics.get("realized_ratio") is not None:
            fixed.append((target, name, metrics["realized_ratio"]))
    fixed.sort()
    pairs = []
    for i, (_, a, ra) in enumerate(fixed):
        for _, b, rb in fixed[i + 1 :]:
            if abs(ra - rb) < tol:
                pairs.append((a, b, abs(ra - rb)))
    return pairs


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary_table(rows: Iterable[dict]) -> str:
    """A Markdown table of metrics dicts (one per data set and ratio)."""
    head = (
        "| dataset | ratio | n | Tokens | ActRatio | Acc@all | Acc@answered | Latency (s) | "
        "realized | echo | closed think | top control |\n|" + "---|" * 12
    )
    lines = [head]
    for m in rows:
        dist = m.get("control_distribution") or {}
        top = max(dist.items(), key=lambda kv: kv[1]) if dist else None
        lines.append(
            f"| {m['dataset']} | {m['ratio']} | {m['n']} | {m['tokens']:.1f} | {_fmt(m['act_ratio'], '.2f')} | "
            f"{100 * m['acc_all']:.1f} | {_fmt(None if m['acc_answered'] is None else 100 * m['acc_answered'], '.1f')} | "
            f"{m['latency_s']:.3f} | {_fmt(m['realized_ratio'], '.2f')} | {_echo(m)} | "
            f"{100 * m['closed_think_share']:.0f}% | "
            f"{'-' if top is None else f'{top[0]} ({100 * top[1]:.0f}%)'} |"
        )
    text = "\n".join(lines) + "\n"
    text += ("\necho = share of outputs starting with the requested <COMP_xx> (fixed ratios; "
             "'forced' = prefilled by --force-control).\n")
    chosen = [m for m in rows if m.get("ratio") == "policy" and m.get("chosen_ratio_distribution")]
    for m in chosen:
        dist = ", ".join(f"{k} {100 * v:.0f}%" for k, v in m["chosen_ratio_distribution"].items())
        text += f"\n{m['dataset']} policy: leading control token chosen by the model: {dist}\n"
    return text


def _echo(m: Mapping) -> str:
    fid = m.get("echo_fidelity")
    if fid is None:
        return "-"
    return f"{100 * fid:.0f}%" + (" (forced)" if m.get("forced_control") else "")
