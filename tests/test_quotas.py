"""The one quota allocator of SFT policy rows and RL rows (extra_cot.quotas.allocate)."""

from __future__ import annotations

import random

from extra_cot.quotas import PAPER_QUOTAS, allocate

ALL = (0.2, 0.4, 0.6, 0.8, 1.0)


def test_paper_shares_scarcest_bucket_and_exact_totals():
    # 10 rows at 1.0 (share 0.10) bind: 100 rows in all, exactly the paper's percentages
    assert allocate({0.2: 100, 0.4: 100, 0.6: 100, 0.8: 100, 1.0: 10}, PAPER_QUOTAS, None) == {
        0.2: 18, 0.4: 24, 0.6: 26, 0.8: 22, 1.0: 10}
    # 100 each: 0.6 binds at 384 rows; floors 69/92/99/84/38 = 382, +1 to 0.6 and 0.8 (largest remainders)
    assert allocate(dict.fromkeys(ALL, 100), PAPER_QUOTAS, None) == {0.2: 69, 0.4: 92, 0.6: 100, 0.8: 85, 1.0: 38}
    assert allocate(dict.fromkeys(ALL, 5), PAPER_QUOTAS, 10) == {0.2: 2, 0.4: 2, 0.6: 3, 0.8: 2, 1.0: 1}


def test_rounding_never_overshoots_the_cap_nor_a_bucket():
    assert allocate({0.2: 5, 0.4: 5}, {0.2: 0.5, 0.4: 0.5}, 3) == {0.2: 2, 0.4: 1}  # round() would give 2 + 2
    rng = random.Random(0)
    for _ in range(500):
        avail = {r: rng.randint(0, 40) for r in ALL}
        quotas = {r: rng.choice([0.0, rng.random()]) for r in ALL}
        cap = rng.choice([None, rng.randint(0, 120)])
        got = allocate(avail, quotas, cap)
        live = {r: q for r, q in quotas.items() if q > 0 and avail[r] > 0}
        assert all(0 <= got[r] <= avail[r] for r in ALL)
        assert all(got[r] == 0 for r in ALL if r not in live)
        if live:
            norm = sum(live.values())
            most = min(avail[r] * norm / q for r, q in live.items())
            rows = int(min(most, cap if cap is not None else most) + 1e-9)
            assert sum(got.values()) == rows  # the total is met exactly
            assert all(abs(got[r] - rows * q / norm) < 1 + 1e-9 for r, q in live.items())  # within a row


def test_missing_bucket_renormalises_and_none_keeps_or_scales():
    assert allocate({0.2: 18, 0.4: 0}, PAPER_QUOTAS, None) == {0.2: 18, 0.4: 0}
    assert allocate({0.2: 6, 0.4: 4}, None, None) == {0.2: 6, 0.4: 4}
    assert allocate({0.2: 6, 0.4: 4}, None, 5) == {0.2: 3, 0.4: 2}
