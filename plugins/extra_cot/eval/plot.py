"""``extra-cot plot OUT``: PNG plots of an ``extra-cot eval`` output tree.

* ``OUT/plots/accuracy_vs_ratio.png``: Acc@all against the realized ratio, one line per data set
  over the fixed targets (the seed's line graph); policy runs as stars, base runs as crosses.
* ``OUT/plots/realized_vs_target.png``: realized against target ratio with the ideal diagonal
  and the ±0.05 collapse band.

The realized ratio is mean think tokens over the ``1.0`` run's (metrics.py); where a data set
has none (no ``1.0`` run, or 0 think tokens there) the target ratio is plotted and the legend says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from extra_cot.eval.store import METRICS
from extra_cot.fileio import atomic_output

logger = logging.getLogger(__name__)

EXAMPLES = """examples:
  extra-cot plot out/eval
  extra-cot plot out/eval --output-dir figures --dpi 200
"""


def load_metrics(out: Path) -> dict[str, dict[str, dict]]:
    """``{dataset: {ratio: metrics}}`` from ``OUT/<dataset>/<ratio>/metrics.json``."""
    found: dict[str, dict[str, dict]] = {}
    for path in sorted(out.glob(f"*/*/{METRICS}")):
        m = json.loads(path.read_text())
        found.setdefault(m.get("dataset", path.parent.parent.name), {})[m.get("ratio", path.parent.name)] = m
    return found


def _fixed(runs: dict[str, dict]) -> list[tuple[float, dict]]:
    points = []
    for name, m in runs.items():
        try:
            points.append((float(name), m))
        except ValueError:
            continue
    return sorted(points, key=lambda p: p[0])


def plot_accuracy(data: dict[str, dict[str, dict]], path: Path, dpi: int = 120) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, (dataset, runs) in enumerate(sorted(data.items())):
        color = f"C{i}"
        pts = _fixed(runs)
        realized = all(m.get("realized_ratio") is not None for _, m in pts)
        xs = [m["realized_ratio"] if realized else t for t, m in pts]
        label = dataset if realized else f"{dataset} (x = target: no 1.0 run or 0 think tokens there)"
        ax.plot(xs, [100 * m["acc_all"] for _, m in pts], "o-", color=color, label=label)
        for marker, name in (("*", "policy"), ("x", "base")):
            m = runs.get(name)
            if m is not None and m.get("realized_ratio") is not None:
                ax.plot(
                    [m["realized_ratio"]],
                    [100 * m["acc_all"]],
                    marker,
                    color=color,
                    markersize=11,
                    label=f"{dataset} {name}",
                )
    ax.set_xlabel("realized ratio (think tokens / tokens at ratio 1.0)")
    ax.set_ylabel("Acc@all (%)")
    top = max((100 * m["acc_all"] for runs in data.values() for m in runs.values()), default=0.0)
    ax.set_ylim(0, min(100.0, top + 5) if top > 0 else 10)
    ax.set_title("Accuracy against realized compression ratio")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def plot_realized(data: dict[str, dict[str, dict]], path: Path, dpi: int = 120) -> None:
    import matplotlib.pyplot as plt

    from extra_cot.eval.metrics import COLLAPSE_TOLERANCE
    from extra_cot.tokens import FIXED_RATIOS

    fig, ax = plt.subplots(figsize=(5, 5))
    ideal = [0.0, *FIXED_RATIOS]
    ax.plot(ideal, ideal, "k--", lw=1, label="ideal (realized = target)")
    ax.fill_between(
        ideal,
        [x - COLLAPSE_TOLERANCE for x in ideal],
        [x + COLLAPSE_TOLERANCE for x in ideal],
        color="grey",
        alpha=0.15,
        label=f"±{COLLAPSE_TOLERANCE}",
    )
    for i, (dataset, runs) in enumerate(sorted(data.items())):
        pts = [(t, m["realized_ratio"]) for t, m in _fixed(runs) if m.get("realized_ratio") is not None]
        if pts:
            ax.plot(*zip(*pts), "o-", color=f"C{i}", label=dataset)
    ax.set_xlabel("target ratio")
    ax.set_ylabel("realized ratio")
    ax.set_title("Control fidelity")
    ax.set_xlim(0, 1.1)
    ax.set_ylim(0, max(1.2, *(m.get("realized_ratio") or 0 for r in data.values() for m in r.values())))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(
        prog="extra-cot plot",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", help="an extra-cot eval --output_dir")
    p.add_argument("--output-dir", default=None, help="where the PNGs go (default OUT/plots)")
    p.add_argument("--dpi", type=int, default=120)
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers and CI
    out = Path(args.out)
    data = load_metrics(out)
    if not data:
        print(f"extra-cot plot: no */*/{METRICS} under {out}; run extra-cot eval first", file=sys.stderr)
        return 2
    dest = Path(args.output_dir) if args.output_dir else out / "plots"
    dest.mkdir(parents=True, exist_ok=True)
    for name, fn in (("accuracy_vs_ratio.png", plot_accuracy), ("realized_vs_target.png", plot_realized)):
        with atomic_output(dest / name) as tmp:
            fn(data, tmp, args.dpi)
        print(dest / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
