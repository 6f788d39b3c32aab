"""Scorers behind one interface: heuristic, lm (tiny causal LM), classifier (tiny Longformer)."""

from __future__ import annotations

import math

import pytest

from extra_cot.compress.scorer_base import SCORER_NAMES
from extra_cot.compress.scorers import SCORERS, HeuristicScorer, ScorerOptions, aggregate, make_scorer
from extra_cot.compress.segment import segment

Q = "Tom has 48 apples and gives half to Ann. How many apples does he keep?"
COT = "Well, let me think. Tom gives 48/2 = <<48/2=24>>24 apples to Ann.\nSo he keeps 48 - 24 = <<48-24=24>>24 apples."


def test_dispatch_names_and_unknown_name():
    assert set(SCORERS) == {"lm", "classifier", "heuristic"} == set(SCORER_NAMES)
    with pytest.raises(ValueError, match="valid"):
        ScorerOptions(name="nope")


def test_heuristic_ranks_formulas_and_question_words_over_hedges():
    units = segment(COT)
    scores = dict(zip([u.text for u in units], HeuristicScorer().score(Q, COT, units)))
    assert scores["48/2 = <<48/2=24>>24"] > scores["apples"] > scores["let"]
    assert scores["Well,"] < scores["gives"]


def test_aggregate_means_tokens_per_unit():
    units = segment("ab cd")
    assert aggregate([(0, 1), (1, 2), (3, 5)], [1.0, 3.0, 5.0], units) == [2.0, 5.0]


def test_lm_scorer_tiny_model_question_contrast(tiny_model_dir):
    scorer = make_scorer(ScorerOptions(name="lm", model=str(tiny_model_dir), max_length=64))
    units = segment(COT)
    scores = scorer.score(Q, COT, units)
    assert len(scores) == len(units) and not any(math.isnan(s) for s in scores)
    offsets, s_q, s_0 = scorer.surprisals(Q, COT)
    assert len(offsets) == len(s_q) == len(s_0) and (s_q > 0).all()
    assert not bool((s_q == s_0).all())  # the question changes the predictions
    # windows: a window of 64 tokens forces several blocks; every CoT token is still scored
    long_cot = " ".join([COT] * 6)
    offsets, s_q, _ = scorer.surprisals(Q, long_cot)
    assert len(s_q) == len(offsets) > 64


def test_classifier_scorer_tiny_longformer_global_attention(tiny_model_dir, tmp_path):
    from extra_cot.compress.classifier_scorer import accepts_global_attention, encode
    from extra_cot.compress.train import build_tiny_classifier

    model_dir = build_tiny_classifier(tmp_path / "clf", tiny_model_dir)
    scorer = make_scorer(ScorerOptions(name="classifier", model=str(model_dir)))
    assert accepts_global_attention(scorer.model)
    units = segment(COT)
    scores = scorer.score(Q, COT, units)
    assert len(scores) == len(units)
    offsets, windows = encode(scorer.tokenizer, Q, COT, 48)
    assert len(windows) > 1
    covered = [t for w in windows for t in w.cot_tokens]
    assert covered == list(range(len(offsets)))
    for w in windows:
        assert sum(w.global_mask) > 0 and all(w.global_mask[p] == 0 for p in w.cot_positions)


def test_classifier_needs_a_model():
    with pytest.raises(ValueError, match="scorer-model"):
        make_scorer(ScorerOptions(name="classifier"))
