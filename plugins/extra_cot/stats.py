"""95 % intervals for experiment records (pure): Wilson for accuracies, a seeded percentile
bootstrap for means (think tokens), and the p-value of a permutation test.

Both are the standard textbook forms: Wilson's score interval (Wilson 1927) stays inside [0, 1]
and is sound for small n and accuracies near 0 or 1, where the normal interval is not; the
percentile bootstrap needs no normality of the token counts, which are skewed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from itertools import pairwise

#: Two-sided 95 % normal quantile.
Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``; (0, 1) when ``n == 0``."""
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}, {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile_interval(stats: list[float], level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap (or permutation) statistics (sorted here)."""
    stats.sort()
    n, tail = len(stats), (1 - level) / 2
    return stats[max(0, math.floor(tail * n))], stats[min(n - 1, math.ceil((1 - tail) * n) - 1)]


def bootstrap_mean(values: Sequence[float], n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (seeded, so records are reproducible)."""
    if not values:
        raise ValueError("bootstrap_mean of no values")
    rng, n = random.Random(seed), len(values)
    return percentile_interval([sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot)], level)


def bootstrap_ratio(num: Sequence[float], den: Sequence[float], n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``sum(num) / sum(den)`` over paired items (seeded), e.g.
    accuracy per think token: items are resampled together, so the two sums stay paired."""
    if not num or len(num) != len(den):
        raise ValueError(f"bootstrap_ratio needs paired non-empty values, got {len(num)} and {len(den)}")
    rng, n = random.Random(seed), len(num)
    stats = []
    for _ in range(n_boot):
        picks = [rng.randrange(n) for _ in range(n)]
        total = sum(den[i] for i in picks)
        stats.append(sum(num[i] for i in picks) / total if total else 0.0)
    return percentile_interval(stats, level)


def bootstrap_mean_diff(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(b) - mean(a)`` for two independent samples (seeded):
    each is resampled on its own, e.g. the chosen ratio at the hardest grade minus at the easiest."""
    if not a or not b:
        raise ValueError(f"bootstrap_mean_diff needs two non-empty samples, got {len(a)} and {len(b)}")
    rng, na, nb = random.Random(seed), len(a), len(b)
    return percentile_interval([sum(b[rng.randrange(nb)] for _ in range(nb)) / nb
                                 - sum(a[rng.randrange(na)] for _ in range(na)) / na for _ in range(n_boot)], level)


def mean_diff(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0) -> dict:
    """``mean(b) - mean(a)`` with its :func:`bootstrap_mean_diff` 95 % interval, as the records store a
    difference: ``{"value": ..., "ci": [lo, hi]}``, each rounded to 4 places."""
    lo, hi = bootstrap_mean_diff(a, b, n_boot=n_boot, seed=seed)
    return {"value": round(sum(b) / len(b) - sum(a) / len(a), 4), "ci": [round(lo, 4), round(hi, 4)]}


def overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two intervals ``[lo, hi]`` share a point (then a difference is not a result)."""
    return a[0] <= b[1] and b[0] <= a[1]


def permutation_p(null: Sequence[float], observed: float, two_sided: bool = False) -> float:
    """p-value of ``observed`` against statistics drawn under the null (a permutation test):
    the share of draws at least as extreme, counting the observation itself (so never 0).
    One-sided: draws ``>= observed``; two-sided: ``|draw| >= |observed|`` (a null centred at 0)."""
    if not null:
        raise ValueError("permutation_p of no null draws")
    hits = sum(1 for x in null if (abs(x) >= abs(observed) - 1e-12 if two_sided else x >= observed - 1e-12))
    return (1 + hits) / (1 + len(null))


def interpolate(points: Sequence[tuple[float, float]], x: float) -> float:
    """``y`` at ``x`` on the polyline through ``points`` ``(x, y)`` sorted by ``x`` (plain linear
    interpolation between neighbours, no hull); outside their range, the nearest end point's ``y``."""
    if not points:
        raise ValueError("interpolate needs at least one point")
    pts = sorted(points)
    if x <= pts[0][0]:
        return pts[0][1]
    for (x0, y0), (x1, y1) in pairwise(pts):
        if x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[-1][1]
