"""The think accounting (docs/method.md, "Think accounting"): what counts, what is well formed."""

from __future__ import annotations

import pytest

from extra_cot.think import (
    CLOSE_FIRST,
    EXTRA_TAG,
    FINAL_LINE_MAX_CHARS,
    NO_THINK,
    UNCLOSED,
    count_think_tokens,
    count_tokens,
    split_think,
    think_span,
)

X = "Reason 12 + 30 = 42 and check 42 - 30 = 12"


def test_honest_layout_counts_the_block_only():
    span = think_span(f"<COMP_20>\n<think>\n{X}</think>\n\nThe answer is \\boxed{{42}}.")
    assert span.well_formed and span.closed and not span.truncated
    assert span.block == X and span.counted == X
    assert span.answer == "The answer is \\boxed{42}."


def test_block_text_starts_right_after_the_tag():
    """No newline after ``<think>``: the first character belongs to the block (a slice one late loses it)."""
    span = think_span("<COMP_40><think>abc</think>\\boxed{1}")
    assert span.block == "abc" and span.counted == "abc"
    assert split_think("<think>abc</think>x") == ("abc", "x")


def test_first_close_ends_the_block():
    """Two ``</think>``: the block is up to the first, the answer after it; the layout is refused."""
    span = think_span("<think>a</think>b</think>c")
    assert span.block == "a" and span.answer == "b</think>c"
    assert span.problem == EXTRA_TAG and not span.well_formed
    assert split_think("<think>a</think>b</think>c") == ("a", "b</think>c")
    assert span.counted.split() == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("response", "problem", "hidden"),
    [
        (f"<COMP_20>\n{X}\n<think>\nok</think>\n\n\\boxed{{42}}", None, X),  # before the block
        (f"<COMP_20>\n<think>\nok</think>\n\n{X}\n\\boxed{{42}}", None, X),  # after the block
        (f"<COMP_20>\n<think>\nok</think>\n\n\\boxed{{42}}\n{X}", None, X),  # answer, then more reasoning
        (f"<COMP_20>\n<think>\nok</think>\n<think>\n{X}</think>\n\\boxed{{42}}", EXTRA_TAG, X),  # second block
        (f"<COMP_20>\n<think>\nok <think>{X}</think></think>\\boxed{{42}}", EXTRA_TAG, X),  # nested
        (f"<COMP_20>\n<think><think>\nok</think></think>{X} \\boxed{{42}}", EXTRA_TAG, X),  # repeated tags
        (f"<COMP_20>\n<think>\nok</think>\\boxed{{<think>{X}</think>42}}", EXTRA_TAG, X),  # tags inside a box
        (f"<COMP_20>\n</think>{X}<think>\\boxed{{42}}", CLOSE_FIRST, X),  # close before open
        (f"<COMP_20>\n<think>\n{X}", UNCLOSED, X),  # cut off inside the block
        (f"<COMP_20>\n{X}\n\\boxed{{42}}", NO_THINK, X),  # no block at all
    ],
)
def test_reasoning_outside_the_block_is_counted(response, problem, hidden):
    span = think_span(response)
    assert span.problem == problem
    assert hidden in span.counted
    assert "<think>" not in span.counted and "</think>" not in span.counted and "<COMP_" not in span.counted


def test_final_answer_line_is_free_only_when_short_and_boxed():
    free = think_span("<think>\nx</think>\n\nSo Ann has 4 apples now. The answer is \\boxed{4}.")
    assert free.counted == "x"
    long_line = "So " + "and then " * 10 + "\\boxed{4}."
    assert len(long_line) > FINAL_LINE_MAX_CHARS
    assert think_span(f"<think>\nx</think>\n\n{long_line}").counted == f"x\n{long_line}"
    no_box = think_span("<think>\nx</think>\n\nThe answer is 4.")
    assert no_box.counted == "x\nThe answer is 4."
    summary = think_span("<think>\nx</think>\n\nStep 1: 2 + 2 = 4.\nThe answer is \\boxed{4}.")
    assert summary.counted == "x\nStep 1: 2 + 2 = 4."
    assert summary.well_formed


def test_truncated_block_counts_its_tokens(tiny_tokenizer):
    response = "<COMP_100>\n<think>\n12 + 3 = 15 and then"
    span = think_span(response)
    assert span.truncated and not span.closed and span.block is None
    assert count_think_tokens(response, tiny_tokenizer) == count_tokens("12 + 3 = 15 and then", tiny_tokenizer) > 0


def test_honest_count_equals_the_block_count(tiny_tokenizer):
    """For the accepted layout with a one-line boxed answer the count is the block's, as before."""
    response = f"<COMP_40>\n<think>\n{X}</think>\n\nThe final answer is $\\boxed{{42}}$."
    assert count_think_tokens(response, tiny_tokenizer) == count_tokens(X, tiny_tokenizer)
