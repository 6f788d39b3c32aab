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
    assert set(SCORERS) == {"lm", "classifier", "heuristic", "heuristic-blind", "lm-blind"} == set(SCORER_NAMES)
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


# ---- the lm scorer's question contrast: its direction is pinned -----------------------------

def test_lm_token_scores_reward_tokens_the_question_makes_predictable():
    """s_0 − s_q > 0 (the question lowered the surprisal) must raise a token's score: flipping
    the contrast's sign (s_q − s_0) makes this fail."""
    import torch

    from extra_cot.compress.lm_scorer import token_scores

    s_q = torch.tensor([2.0, 2.0, 2.0, 2.0])
    s_0 = torch.tensor([6.0, 2.0, 1.0, 2.5])  # the question helps token 0 most, hurts token 2
    scores = token_scores(s_q, s_0, 1.0)
    assert scores.argmax() == 0 and scores.argmin() == 2
    assert scores[0] > scores[3] > scores[1] > scores[2]
    # with equal contrast, the more surprising token (s_q higher) ranks first (LLMLingua)
    scores = token_scores(torch.tensor([1.0, 4.0]), torch.tensor([1.0, 4.0]), 1.0)
    assert scores[1] > scores[0]
    # contrast_weight scales the contrast only
    assert torch.allclose(token_scores(s_q, s_0, 0.0), torch.zeros(4), atol=1e-4)


def _brute_surprisal(model, tokenizer, prefix: str, cot: str):
    """-log p(x_i | prefix, x_<i) for every CoT token, one full forward pass (no windows)."""
    import torch

    pre = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    ids = tokenizer(cot, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([pre + ids])).logits.float()[0]
    logp = torch.log_softmax(logits, dim=-1)
    return torch.stack([-logp[len(pre) + k - 1, t] for k, t in enumerate(ids)])


def test_lm_surprisals_match_a_brute_force_pass_with_and_without_the_question(tiny_model_dir):
    """s_q is conditioned on the question prefix and s_0 is not (swapping them flips the
    contrast), and score() is the mean token_scores of each unit."""
    import torch

    from extra_cot.compress.lm_scorer import PREFIX_0, PREFIX_Q, token_scores

    scorer = make_scorer(ScorerOptions(name="lm", model=str(tiny_model_dir), max_length=2048))
    offsets, s_q, s_0 = scorer.surprisals(Q, COT)
    ref_q = _brute_surprisal(scorer.model, scorer.tokenizer, PREFIX_Q.format(question=Q), COT)
    ref_0 = _brute_surprisal(scorer.model, scorer.tokenizer, PREFIX_0, COT)
    assert torch.allclose(s_q, ref_q, atol=1e-4) and torch.allclose(s_0, ref_0, atol=1e-4)
    assert not torch.allclose(s_q, s_0, atol=1e-3)
    units = segment(COT)
    expected = aggregate(offsets, token_scores(ref_q, ref_0, 1.0).tolist(), units)
    swapped = aggregate(offsets, token_scores(ref_0, ref_q, 1.0).tolist(), units)
    got = scorer.score(Q, COT, units)
    assert got == pytest.approx(expected, abs=1e-4)
    assert got != pytest.approx(swapped, abs=1e-4)


@pytest.mark.slow
def test_lm_contrast_favours_question_words_with_smollm2():
    """With the real default scorer (SmolLM2-135M-Instruct), made-up names that only the
    question introduces become predictable given the question: positive contrast, and the
    units naming them outrank the same CoT's other words."""
    scorer = make_scorer(ScorerOptions(name="lm"))
    question = "Zorblax has 7 quibnits and Vermillia gives Zorblax 5 more quibnits. How many quibnits does Zorblax have?"
    cot = "First, Zorblax starts with 7 quibnits. Then Vermillia gives 5 quibnits, so the count is 7 + 5 = 12 quibnits."
    offsets, s_q, s_0 = scorer.surprisals(question, cot)
    named = [k for k, (a, b) in enumerate(offsets) if any(w in cot[a:b] for w in ("Zor", "Verm", "quib"))]
    other = [k for k in range(len(offsets)) if k not in named]
    contrast = s_0 - s_q
    assert float(contrast[named].mean()) > 1.0  # nats: the question makes these much likelier
    assert float(contrast[named].mean()) > float(contrast[other].mean())
    units = segment(cot)
    scores = dict(zip([u.text for u in units], scorer.score(question, cot, units)))
    assert scores["Vermillia"] > scores["Then"] and scores["Zorblax"] > scores["First,"]


def _batch_items(rows):
    """(question, cot, units) of several CoTs of different lengths, one long enough for 2+ windows."""
    texts = [(Q, COT), ("How many pears?", "Pears: 3 + 4 = 7."), (Q, " ".join([COT] * 5)), ("Why?", "Because 2 * 5 = 10.")]
    return [(q, c, segment(c)) for q, c in texts[:rows]]


@pytest.mark.parametrize("name", ["lm", "classifier"])
def test_batched_scores_match_one_row_at_a_time(name, tiny_model_dir, tmp_path):
    """Windows of several CoTs padded into one pass (attention masks on the pads) give each CoT the
    scores it gets alone, to float tolerance, whatever the batch size."""
    model = tiny_model_dir
    if name == "classifier":
        from extra_cot.compress.train import build_tiny_classifier

        model = build_tiny_classifier(tmp_path / "clf", tiny_model_dir)
    items = _batch_items(4)
    single = make_scorer(ScorerOptions(name=name, model=str(model), max_length=64, batch_size=1))
    alone = [single.score(q, c, u) for q, c, u in items]
    assert any(len(c) > 200 for _, c, _ in items)  # the long CoT needs several 64-token windows
    for size in (2, 3, 16):
        batched = make_scorer(ScorerOptions(name=name, model=str(model), max_length=64, batch_size=size))
        got = batched.score_batch(items)
        for a, b in zip(got, alone, strict=True):
            assert a == pytest.approx(b, abs=1e-4)
    assert HeuristicScorer().score_batch(items) == [HeuristicScorer().score(q, c, u) for q, c, u in items]
    with pytest.raises(ValueError, match="batch size"):
        ScorerOptions(batch_size=0)
