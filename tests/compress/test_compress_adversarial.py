"""Adversarial Stage 1 sources (``tests/fixtures/adversarial_stage1.jsonl``, written for these
tests): every shape compresses with its regions whole or is skipped with a named reason, and the
gate (``compress/integrity.py``) rejects each hand-made bad output with the expected reason."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from extra_cot.compress import segment as segment_module
from extra_cot.compress.integrity import math_problems, read
from extra_cot.compress.pipeline import CompressOptions, Source, compress_source
from extra_cot.compress.rows import integrity_skips, outcome_stats
from extra_cot.compress.scorers import HeuristicScorer
from extra_cot.compress.segment import UNSPACED, formulas, segment

from .conftest import fixture_rows

ROWS = {r["shape"]: r for r in fixture_rows("adversarial_stage1.jsonl")}
#: Every shape of issue 20 and of the earlier Stage 1 issue; the fixture must hold each.
SHAPES = {
    "align_star_rows", "align_star_shredded_no_markers", "multiline_inline", "escaped_dollar",
    "boxed_text_and_math", "left_right", "text_in_math", "gsm8k_annotations", "unicode_math",
    "prose_between_formulas", "cut_closing_dollar", "digit_led_math", "currency_prose", "postfix_dollar",
    "currency_math_multiline", "currency_math_trailing_space", "currency_math_words", "cjk_unspaced",
    "markdown_bold", "markdown_list", "code_fence", "displays", "nested_environments", "inline_code_dollars",
}
#: Shapes where the gate reads a region the segmenter (rightly) does not: math inside code spans.
GATE_ONLY = {"inline_code_dollars": ["$x` and `b=$"]}


class _RandomScorer:
    name = "random"

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def score(self, question, cot, units):
        return [self.rng.gauss(0, 1) for _ in units]


def cut_regions(source: str, regions: list[str], text: str) -> list[str]:
    """Expected regions of which ``text`` holds a piece but not the whole, by the fixture's own
    strings (no parser): a token of the region that occurs nowhere else in the source."""
    outside, rest = source, text
    for r in regions:
        outside = outside.replace(r, " ")
        rest = rest.replace(r, " ")
    return [r for r in regions if r not in text and any(t in rest for t in r.split() if t not in outside)]


def _compress(src: Source, scorer, tokenizer, count) -> dict:
    return compress_source(src, scorer, tokenizer, count, CompressOptions())


def test_fixture_covers_every_shape():
    assert set(ROWS) == SHAPES
    assert all(r["bad"] for r in ROWS.values())


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_regions_as_expected_by_gate_and_segmenter(shape):
    row = ROWS[shape]
    source = row["source"]
    assert [source[s:e] for s, e in read(source).regions] == row["regions"]
    atoms = [u.text for u in segment(source) if u.formula]
    for region in row["regions"]:
        expected = 0 if region in GATE_ONLY.get(shape, []) else 1
        assert sum(region in a for a in atoms) == expected, (region, atoms)
    assert math_problems(source, source) == []


@pytest.mark.parametrize(("shape", "k"), [(s, k) for s in sorted(SHAPES) for k in range(len(ROWS[s]["bad"]))])
def test_gate_rejects_hand_made_bad_outputs(shape, k):
    row = ROWS[shape]
    output, kind = row["bad"][k]
    problems = math_problems(row["source"], output)
    if kind is None:  # a control: a good output the gate must pass
        assert problems == []
    else:
        assert any(p.startswith(f"{kind}:") for p in problems), problems


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_compresses_whole_or_is_skipped_with_a_reason(shape, tiny_tokenizer, tiny_count):
    row = ROWS[shape]
    src = Source("Compute the value.", row["source"], "", None)
    written = 0
    for scorer in (HeuristicScorer(), _RandomScorer(1), _RandomScorer(2), _RandomScorer(3)):
        out = _compress(src, scorer, tiny_tokenizer, tiny_count)
        assert set(out["compressed"]) | set(out["dropped"]) >= {"0.2", "0.4", "0.6", "0.8"}
        assert all(isinstance(why, str) and why for why in out["dropped"].values())
        for text in out["compressed"].values():
            assert math_problems(src.cot, text) == []
            assert cut_regions(src.cot, row["regions"], text) == [], text
        written += len(out["compressed"])
    assert written > 0  # every shape reaches SFT at some ratio


def test_currency_looking_math_compresses(tiny_tokenizer, tiny_count):
    """Issue 20's rows that used to be dropped at every ratio now write at least two ratios."""
    for shape in ("currency_math_multiline", "currency_math_trailing_space", "currency_math_words"):
        src = Source("Compute the value.", ROWS[shape]["source"], "", None)
        out = _compress(src, HeuristicScorer(), tiny_tokenizer, tiny_count)
        assert len(out["compressed"]) >= 2, (shape, out["dropped"])
        assert not any(why.startswith("math_integrity") for why in out["dropped"].values()), out["dropped"]


def test_cjk_formulas_do_not_absorb_the_sentence(tiny_tokenizer, tiny_count):
    source = ROWS["cjk_unspaced"]["source"]
    assert formulas(source) == ROWS["cjk_unspaced"]["regions"]
    assert sum(1 for u in segment(source) if not u.formula) >= 25  # one unit per character
    out = _compress(Source("求周长。", source, "", None), HeuristicScorer(), tiny_tokenizer, tiny_count)
    assert min(out["realized"].values()) < 0.7, out
    for seed in (1, 2, 3):  # dropped characters leave no space between the kept ones
        out = _compress(Source("求周长。", source, "", None), _RandomScorer(seed), tiny_tokenizer, tiny_count)
        assert not any(re.search(f"[{UNSPACED}]\\s+[{UNSPACED}]", t) for t in out["compressed"].values()), out


def test_markdown_atoms():
    units = [u.text for u in segment(ROWS["markdown_bold"]["source"])]
    assert "**Step 1:**" in units and "**Step 2:**" in units
    units = [u.text for u in segment(ROWS["markdown_list"]["source"])]
    assert {"- if", "1. so", "2. and"} <= set(units)
    code = ROWS["code_fence"]["source"]
    fence = code[code.index("```"):code.rindex("```") + 3]
    assert fence in [u.text for u in segment(code)] and fence not in formulas(code)


def test_gate_and_segmenter_disagree_segmenter_right():
    """Math inside markdown code is not math (code spans bind first); the gate reads LaTeX only,
    so it sees a region there. A compression keeping one code span is then skipped, not cut."""
    source = ROWS["inline_code_dollars"]["source"]
    assert formulas(source) == ["$z = 1$"]
    assert "$x` and `b=$" in [source[s:e] for s, e in read(source).regions]
    assert any(p.startswith("cut_region") for p in math_problems(source, "we set `a=$x` before the run"))


def test_gate_and_segmenter_disagree_gate_right(monkeypatch, tiny_tokenizer, tiny_count):
    """A segmenter that takes every '$' before a digit for currency (the bug class of issue 20)
    splits digit-led math into words; the gate reads its own regions, so no written compression
    holds a cut of it and the cut ones are logged as math_integrity:cut_region."""
    real = segment_module._dollar_end

    def currency_first(text, i):
        return None if text[i + 1:i + 2].isdigit() else real(text, i)

    monkeypatch.setattr(segment_module, "_dollar_end", currency_first)
    row = ROWS["digit_led_math"]
    source = row["source"] + " Then $30 + 12 = 42$ again, since $42 - 12 = 30$ too, and we stop."
    regions = [source[s:e] for s, e in read(source).regions]
    assert len(regions) == 3 and not any(r in a for a in formulas(source) for r in regions)  # they disagree
    reasons = Counter()
    for seed in range(1, 9):
        out = _compress(Source("How many?", source, "", None), _RandomScorer(seed), tiny_tokenizer, tiny_count)
        for text in out["compressed"].values():
            assert cut_regions(source, regions, text) == [], text
        reasons.update(why.split("(")[0] for why in out["dropped"].values())
    assert reasons["math_integrity:cut_region"] > 0, reasons


def test_skip_log_counts_gate_drops_per_reason():
    record = {"key": "k", "line": 7, "dropped": {"0.2": "math_integrity:cut_region(cut_region: '+')",
                                                 "0.4": "math_integrity:stray_dollar(stray_dollar: '$')",
                                                 "0.6": "off_bucket(realized=0.700)"}}
    stats = outcome_stats("out", record)
    assert stats["dropped@0.2:math_integrity:cut_region"] == 1
    assert stats["dropped@0.4:math_integrity:stray_dollar"] == 1
    assert [s["ratio"] for s in integrity_skips("out", record)] == ["0.2", "0.4"]


def test_compress_cli_logs_gate_drops_per_reason(tmp_path, tiny_model_dir, capsys):
    """End to end: every adversarial source through ``extra-cot compress``; each ratio the gate
    drops is one skip-log row with its reason, and the stats line counts them per reason."""
    import json

    from extra_cot.cli import main as cli_main

    rows = [{"question": "Compute the value.", "gold": "1",
             "response": f"<think>\n{r['source']}</think>\n\nThe answer is \\boxed{{1}}."} for r in ROWS.values()]
    inp, out = tmp_path / "in.jsonl", tmp_path / "c.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert cli_main(["compress", "--input", str(inp), "--output", str(out), "--scorer", "heuristic",
                     "--tokenizer", str(tiny_model_dir)]) == 0
    printed = dict(line.rsplit(maxsplit=1) for line in capsys.readouterr().out.splitlines() if line.strip())
    skipped = [json.loads(x) for x in (tmp_path / "c.jsonl.skipped.jsonl").read_text().splitlines()]
    logged = Counter(f"dropped@{s['ratio']}:{s['reason'].split('(')[0]}" for s in skipped if "ratio" in s)
    assert logged and all(k.split(":", 1)[1].startswith("math_integrity:") for k in logged)
    assert {k: int(v) for k, v in printed.items() if ":math_integrity" in k} == dict(logged)
    for row in (json.loads(x) for x in out.read_text().splitlines()):
        shape = next(r for r in ROWS.values() if r["source"] == row["cot"])
        for text in row["compressed"].values():
            assert cut_regions(row["cot"], shape["regions"], text) == [], text
