"""Budgeted selection: ratios measured with the target tokenizer, mandatory parts, filters."""

from __future__ import annotations

import pytest

from extra_cot.compress.filters import FilterOptions, degeneracy_reason
from extra_cot.compress.pipeline import CompressOptions, Source, compress_source, read_gsm8k, score_units
from extra_cot.compress.scorers import HeuristicScorer
from extra_cot.compress.segment import segment
from extra_cot.compress.select import (
    SelectOptions,
    compress_to_ratio,
    join_units,
    mandatory_units,
    nearest_bucket,
    unit_token_counts,
)

from .conftest import GSM8K_ROWS, LATEX_COT

TARGETS = (0.2, 0.4, 0.6, 0.8)


def test_unit_token_counts_are_additive(tiny_tokenizer, tiny_count):
    for text in [LATEX_COT] + [r["answer"] for r in GSM8K_ROWS]:
        counts = unit_token_counts(text, segment(text), tiny_tokenizer)
        assert sum(counts) == tiny_count(text)


def test_ratio_accuracy_on_gsm8k_train(gsm8k_train_rows, tiny_tokenizer, tiny_count):
    """±0.05 for >= 95% of (row, ratio) pairs whose mandatory parts fit; the rest counted."""
    errors, not_fitting = [], 0
    opts = CompressOptions()
    for n, row in enumerate(gsm8k_train_rows):
        src, _ = read_gsm8k(row, f"row {n}")
        units, scores = score_units(src, HeuristicScorer(), opts)
        counts = unit_token_counts(src.cot, units, tiny_tokenizer)
        for r in TARGETS:
            sel = compress_to_ratio(src.cot, units, scores, counts, src.gold, r, tiny_count, opts.select)
            assert sel.realized == pytest.approx(tiny_count(sel.text) / tiny_count(src.cot))
            if sel.fits:
                errors.append(abs(sel.realized - r))
            else:
                not_fitting += 1
    within = sum(e <= 0.05 for e in errors) / len(errors)
    assert within >= 0.95, (within, not_fitting)
    assert not_fitting < len(gsm8k_train_rows)  # low ratios of short rows may not fit; reported


def test_mandatory_boxed_and_final_statement():
    cot = "We add 2 + 3 = 5 and then double: 5 * 2 = 10. So the total is 10 and \\boxed{10}."
    units = segment(cot)
    keep = {units[i].text for i in mandatory_units(units, "10", SelectOptions())}
    assert keep == {"\\boxed{10}.", "10"}
    keep = {units[i].text for i in mandatory_units(units, None, SelectOptions(keep_boxed=False))}
    assert keep == set()


def test_final_answer_survives_every_ratio(tiny_tokenizer, tiny_count):
    row = GSM8K_ROWS[1]
    src, _ = read_gsm8k(row, "row")
    out = compress_source(src, HeuristicScorer(), tiny_tokenizer, tiny_count, CompressOptions())
    for text in out["compressed"].values():
        assert "24 + 3 = $<<24+3=27>>27" in text
    assert out["answer"] == "The final answer is $\\boxed{27}$."
    for key, realized in out["realized"].items():
        assert abs(realized - float(key)) <= 0.05


def test_join_keeps_adjacent_gaps_and_collapses_punctuation():
    text = "a b\nc , , . d"
    units = segment(text)
    out, _ = join_units(text, units, {0, 1, 2, 3, 4, 5, 6})
    assert out == "a b\nc , d"
    out, _ = join_units(text, units, {0, 2})
    assert out == "a\nc"


def test_nearest_bucket():
    assert nearest_bucket(0.23, (0.2, 0.4)) == 0.2
    assert nearest_bucket(0.31, (0.2, 0.4)) == 0.4


@pytest.mark.parametrize(("text", "ratio", "reason"), [
    ("so so so the total", 0.2, "run>2"),
    ("so so so the total", 0.8, None),
    ("a = 1 then 2 + 3 = 5 and 5 * 2 = 10 so 10", 0.2, None),
    ("x y x y x y x y x y x y", 0.8, "top_word_share>0.4"),
    ("", 0.4, "empty"),
])
def test_degeneracy_filter(text, ratio, reason):
    assert degeneracy_reason(text, ratio, FilterOptions()) == reason


def test_options_validate_with_the_fix_named():
    with pytest.raises(ValueError, match="aim"):
        SelectOptions(aim=0.1, tolerance=0.05)
    with pytest.raises(ValueError, match="subset"):
        CompressOptions(ratios=(0.3,))


def test_ratio_one_is_identity(tiny_tokenizer, tiny_count):
    src = Source("q", LATEX_COT, "", None)
    units, scores = score_units(src, HeuristicScorer(), CompressOptions())
    counts = unit_token_counts(LATEX_COT, units, tiny_tokenizer)
    sel = compress_to_ratio(LATEX_COT, units, scores, counts, None, 1.0, tiny_count, SelectOptions())
    assert sel.text == LATEX_COT and sel.realized == 1.0


def test_big_unit_plan_keeps_the_best_scored_subset_not_the_largest():
    """When whole equations must be planned (each bigger than the aim's slack), the plan keeps
    the highest-scoring subset that lets the small units close the gap: three decisive equations
    (scores 5; 8, 9, 9 tokens) and one check (score 2), not the 36-token set that trades the
    8-token decisive equation for a second check (the seed-0 demo row that lost ``3 * 5 = 15``
    at 0.2)."""
    from extra_cot.compress.select import _plan_big_units

    counts = [8, 9, 9, 9, 9] + [1] * 10 + [2]  # A, B, C decisive; D, E checks; 10 words; the answer
    scores = [5.0, 5.0, 5.0, 2.0, 2.0] + [0.0] * 10 + [-1.0]
    units = [None] * len(counts)  # the plan reads sizes and scores only
    total = 226
    ctx = (None, units, scores, counts, {15}, set(), total, None, SelectOptions())
    chosen = _plan_big_units(ctx, 0.2, SelectOptions().aim)
    assert chosen is not None and {0, 1, 2} <= chosen and len(chosen & {3, 4}) == 1
    need = 0.2 * total - counts[15]
    assert need - 10 <= sum(counts[i] for i in chosen) <= need  # the ten 1-token words close the rest
    # nothing within the band: no plan
    assert _plan_big_units((None, units, scores, [60] * 5 + [1] * 10 + [2], {15}, set(), total, None,
                            SelectOptions()), 0.2, SelectOptions().aim) is None
