"""Policy quotas: the paper's share of each target ratio γ* and the one allocator that turns
shares into row counts, used by Stage 2 (SFT policy rows) and Stage 3 (RL rows). Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping

from extra_cot.tokens import FIXED_RATIOS

#: docs/method.md Stage 2, policy rows: share of each γ* (the RL data uses the same shares).
PAPER_QUOTAS: dict[float, float] = {0.2: 0.18, 0.4: 0.24, 0.6: 0.26, 0.8: 0.22, 1.0: 0.10}

_EPS = 1e-9  # 0.26 * 384.6... must not floor to 99 through float error


def allocate(
    available: Mapping[float, int], quotas: Mapping[float, float] | None, total: float | None
) -> dict[float, int]:
    """Rows to keep per γ*, given ``available`` rows per γ*, ``quotas`` (shares) and a cap.

    * ``quotas=None`` keeps every row, scaled down proportionally when ``total`` caps it.
    * A γ* with no rows (or a zero share) gets 0 and the other shares are renormalised, so a
      missing bucket does not zero the rest; the caller says so to the user.
    * ``total=None``: the largest total the scarcest bucket (rows / share) allows.

    Rounding, decided once for both stages: floor each exact share ``total * share``, then give
    the rows lost to flooring, one each, to the largest remainders (Hamilton's method; ties
    go to the lower γ*), never beyond a bucket's rows. So the total is met exactly when the
    rows allow it (``--num-rows`` / ``policy_rows`` is what you get), no bucket exceeds its
    rows, and each is within one row of its exact share. Plain rounding can overshoot the cap
    (shares 1/2 + 1/2 of 3 rows round to 2 + 2); plain flooring loses up to a row per bucket.
    """
    if quotas is None:
        if total is None:
            return dict(available)
        quotas = {r: float(n) for r, n in available.items()}
    live = {r: float(q) for r, q in quotas.items() if q > 0 and available.get(r, 0) > 0}
    out = {r: 0 for r in available}
    if not live:
        return out
    norm = sum(live.values())
    shares = {r: q / norm for r, q in live.items()}
    cap = min(available[r] / s for r, s in shares.items())
    rows = math.floor(min(cap, total if total is not None else cap) + _EPS)
    exact = {r: rows * s for r, s in shares.items()}
    for r, x in exact.items():
        out[r] = min(available[r], math.floor(x + _EPS))
    by_remainder = sorted(shares, key=lambda r: (-(exact[r] - math.floor(exact[r] + _EPS)), r))
    missing = rows - sum(out.values())
    for r in by_remainder:
        if missing <= 0:
            break
        if out[r] < available[r]:
            out[r] += 1
            missing -= 1
    return out


def parse_quotas(text: str) -> dict[float, float] | None:
    """``method`` | ``none`` | ``0.2:0.18,0.4:0.24,...`` -> quotas (None = no quotas)."""
    text = text.strip().lower()
    if text == "method":
        return dict(PAPER_QUOTAS)
    if text == "none":
        return None
    quotas = {}
    for part in text.split(","):
        try:
            ratio, share = part.split(":")
            quotas[float(ratio)] = float(share)
        except ValueError:
            raise ValueError(f"--quotas {text!r}: use 'method', 'none' or e.g. '0.2:0.18,0.4:0.24'") from None
    unknown = sorted(set(quotas) - set(FIXED_RATIOS))
    if unknown or any(s < 0 for s in quotas.values()):
        raise ValueError(f"--quotas {text!r}: ratios must be among {list(FIXED_RATIOS)} with shares >= 0")
    return quotas
