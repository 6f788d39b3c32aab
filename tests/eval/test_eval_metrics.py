"""Metric definitions against hand-computed values (docs/method.md, "Evaluation")."""

from __future__ import annotations

import pytest

from extra_cot.eval.metrics import control_collapse, link_runs, run_metrics, summary_table


def rec(index, sample=0, correct=False, pred="1", tokens=0, closed=True, control=None):
    return {
        "index": index,
        "sample": sample,
        "correct": correct,
        "pred": pred,
        "think_tokens": tokens,
        "closed_think": closed,
        "control": control,
    }


def test_run_metrics_hand_computed():
    records = [
        rec(0, 0, True, "4", 100, True, "<COMP_40>"),
        rec(0, 1, False, None, 0, False, None),
        rec(1, 0, False, "7", 300, True, "<COMP_40>"),
        rec(1, 1, True, "5", 200, True, "<COMP_20>"),
    ]
    m = run_metrics(records, wall_s=3.0, dataset="gsm8k", ratio="0.4")
    assert m["n"] == 4 and m["n_items"] == 2
    assert m["tokens"] == pytest.approx((100 + 0 + 300 + 200) / 4)
    assert m["acc_all"] == pytest.approx(2 / 4)
    assert m["acc_answered"] == pytest.approx(2 / 3)
    assert m["pass_at_k"] == pytest.approx(1.0)
    assert m["latency_s"] == pytest.approx(3.0 / 2)  # wall time / items
    assert m["closed_think_share"] == pytest.approx(3 / 4)
    assert m["control_distribution"] == {"<COMP_20>": 0.25, "<COMP_40>": 0.5, "none": 0.25}
    assert m["act_ratio"] is None and m["realized_ratio"] is None


def test_truncated_share_counts_outputs_cut_off_inside_the_think_block():
    """docs/method.md, "Think accounting": an unclosed block is truncated; other malformed layouts are not."""
    outputs = [
        "<COMP_100>\n<think>\nstill thinking",  # truncated
        "<COMP_100>\n<think>\nx</think>\n\n\\boxed{1}",  # closed
        "<COMP_100>\n<think>\nx</think><think>y</think>\\boxed{1}",  # two blocks: not truncated
        "\\boxed{1}",  # no block
    ]
    records = [{**rec(i, closed="</think>" in out), "output": out} for i, out in enumerate(outputs)]
    m = run_metrics(records, 1.0, "d", "1.0")
    assert m["truncated_share"] == pytest.approx(1 / 4)
    assert run_metrics(records[1:], 1.0, "d", "1.0")["truncated_share"] == 0.0
    assert run_metrics([], 1.0, "d", "1.0")["truncated_share"] == 0.0


def test_no_answers_gives_null_acc_answered():
    m = run_metrics([rec(0, pred=None)], 1.0, "d", "base")
    assert m["acc_answered"] is None and m["acc_all"] == 0.0


def test_act_ratio_is_a_ratio_of_means_not_a_mean_of_ratios():
    # A case where the two definitions differ: base 10 and 190 (mean 100), method 10 and 90 (mean 50)
    base = run_metrics([rec(0, tokens=10), rec(1, tokens=190)], 1.0, "d", "base")
    method = run_metrics([rec(0, tokens=10), rec(1, tokens=90)], 1.0, "d", "0.2")
    full = run_metrics([rec(0, tokens=100), rec(1, tokens=100)], 1.0, "d", "1.0")
    linked = link_runs({"base": base, "0.2": method, "1.0": full})
    assert linked["0.2"]["act_ratio"] == pytest.approx(50 / 100)  # mean of ratios would be (1 + 90/190)/2
    assert linked["0.2"]["realized_ratio"] == pytest.approx(50 / 100)
    assert linked["base"]["act_ratio"] == pytest.approx(1.0)
    assert linked["base"]["realized_ratio"] == pytest.approx(100 / 100)
    assert linked["1.0"]["act_ratio"] == pytest.approx(100 / 100)


def test_link_runs_without_base_or_reference_gives_null():
    m = run_metrics([rec(0, tokens=10)], 1.0, "d", "0.2")
    linked = link_runs({"0.2": m})
    assert linked["0.2"]["act_ratio"] is None and linked["0.2"]["realized_ratio"] is None
    zero_base = run_metrics([rec(0, tokens=0)], 1.0, "d", "base")
    assert link_runs({"0.2": m, "base": zero_base})["0.2"]["act_ratio"] is None


def test_control_collapse_flags_close_targets_only():
    runs = {
        name: {"realized_ratio": r}
        for name, r in (("0.2", 0.31), ("0.4", 0.34), ("0.6", 0.6), ("1.0", 1.0), ("policy", 0.32))
    }
    pairs = control_collapse(runs)
    assert [(a, b) for a, b, _ in pairs] == [("0.2", "0.4")]
    assert pairs[0][2] == pytest.approx(0.03)
    assert control_collapse({"0.2": {"realized_ratio": 0.2}, "0.4": {"realized_ratio": 0.4}}) == []


def test_summary_table_has_a_row_per_run():
    m = link_runs({"base": run_metrics([rec(0, 0, True, tokens=8)], 2.0, "gsm8k", "base")})
    table = summary_table(m.values())
    assert "| gsm8k | base | 1 | 8.0 | 1.00 | 100.0 | 100.0 | 2.000 |" in table


def test_eval_think_counter_follows_the_think_accounting(tiny_model_dir, tiny_tokenizer):
    """Eval's count (local tokenizer path) is think_span's: reasoning after the block and an unclosed
    block count; ``closed`` is whether the first block closed."""
    import asyncio

    from extra_cot.eval.client import ThinkCounter
    from extra_cot.think import count_think_tokens, count_tokens

    counter = ThinkCounter(str(tiny_model_dir), "http://127.0.0.1:9", "m")  # local path: no request
    reasoning = "First 12 + 30 = 42, then the total costs 42 dollars."
    cases = {
        f"<COMP_40>\n<think>\n{reasoning}</think>\n\n\\boxed{{42}}": True,
        f"<COMP_40>\n<think>\nok</think>\n\n{reasoning}\n\\boxed{{42}}": True,
        f"<COMP_40>\n<think>\n{reasoning}": False,
    }
    for response, closed in cases.items():
        tokens, was_closed = asyncio.run(counter.count(None, response))
        assert was_closed is closed
        assert tokens == count_think_tokens(response, tiny_tokenizer) >= count_tokens(reasoning, tiny_tokenizer)
