"""Decisive equations: the answer's dependency chain, walked back from the answer (pure, fast)."""

from __future__ import annotations

from extra_cot.compress.decisive import decisive_units, equation
from extra_cot.compress.pipeline import CompressOptions, Source, score_units
from extra_cot.compress.scorers import HeuristicScorer
from extra_cot.compress.segment import segment

TRACE = ("Lena has 10 coins.\nMultiplying, 10 * 2 = 20.\nGoing backwards, 20 / 2 = 10, yes.\n"
         "That is 20 - 9 = 11 coins left.\nQuick check: 11 + 9 = 20, good.\nAt first I got 11 + 12 = 24, "
         "which does not look right; let me redo it: 11 + 12 = 23.\nSubtracting gives 23 - 12 = 11.\n"
         "I will write 11 down so I do not lose it, it helps to picture Lena holding the coins.\n"
         "Therefore Lena ends up with 11 coins.")


def _decisive_texts(text, gold):
    units = segment(text)
    return [units[i].text.strip(" .,") for i in sorted(decisive_units(units, gold))]


def test_the_chain_is_decisive_and_checks_restatements_dead_ends_are_not():
    assert _decisive_texts(TRACE, "11") == ["10 * 2 = 20", "20 - 9 = 11", "11 + 12 = 23", "23 - 12 = 11"]


def test_without_gold_the_last_result_stands_for_the_answer_and_annotations_parse():
    assert _decisive_texts("So 3 * 4 = 12. Check: 12 / 4 = 3. Then 12 + 5 = 17.", None) == ["3 * 4 = 12", "12 + 5 = 17"]
    assert equation("2,000 + 15 = 2,015") == (["2000", "15"], "2015")
    assert equation("<<48/2=24>>24") == (["48", "2"], "24")
    assert equation("x + y") is None and equation("a = b") is None
    assert decisive_units(segment("no math here"), "5") == set()


def test_the_bonus_ranks_the_chain_above_checks_and_dead_ends():
    asides = [f"\nAside number {w}: I should not mix up the coins with the purses of the {w} aunt here." for w in
              ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")]
    src = Source("Lena has 10 coins ... How many coins does Lena have now?", TRACE + "".join(asides), "\\boxed{11}", "11")
    chain = ("10 * 2 = 20", "20 - 9 = 11", "11 + 12 = 23", "23 - 12 = 11")
    noise = ("20 / 2 = 10", "11 + 9 = 20", "11 + 12 = 24")
    for bonus, ranked in ((0.0, False), (6.0, True)):
        units, scores = score_units(src, HeuristicScorer(), CompressOptions(formula_bonus=1.0, decisive_bonus=bonus))
        by_text = {u.text.strip(" .,"): sc for u, sc in zip(units, scores, strict=True) if u.formula}
        assert (min(by_text[e] for e in chain) > max(by_text[e] for e in noise)) is ranked, by_text
