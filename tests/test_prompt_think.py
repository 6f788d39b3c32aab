from extra_cot.prompt import build_messages, build_response, build_user_text
from extra_cot.think import count_think_tokens, split_think


def test_user_text_byte_identical_to_method():
    expected = "Please reason step by step, and put your final answer within \\boxed{}.\nWhat is 2+3? <COMP_40>"
    assert build_user_text("What is 2+3?", 0.4) == expected
    assert build_user_text("  What is 2+3?\n", "<COMP_40>") == expected
    assert build_user_text("What is 2+3?", None).endswith("What is 2+3?")
    assert build_user_text("Q", "<COMP_POLICY>").endswith("Q <COMP_AUTO>")


def test_messages_have_system_prompt():
    msgs = build_messages("Q", "policy")
    assert msgs[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert msgs[1]["role"] == "user"


def test_response_layout():
    assert build_response("a b", "\\boxed{5}", 0.2) == "<COMP_20>\n<think>\na b</think>\n\n\\boxed{5}"
    assert build_response("a b", "\\boxed{5}") == "<think>\na b</think>\n\n\\boxed{5}"


def test_split_think():
    assert split_think("<COMP_20>\n<think>\n x </think>\n\nans") == ("x", "ans")
    assert split_think("<think>\nunclosed") == (None, "<think>\nunclosed")
    assert split_think("no think") == (None, "no think")


def test_count_think_tokens_excludes_special(tiny_tokenizer):
    tok = tiny_tokenizer
    plain = count_think_tokens("<think>\n12 + 3 = 15</think>\n\n\\boxed{15}", tok)
    assert plain == len(tok.encode("12 + 3 = 15", add_special_tokens=False)) > 0
    with_special = count_think_tokens("<think>\n12 + 3 = 15<COMP_20></think>", tok)
    assert with_special == plain
    # an unclosed block is counted (docs/method.md, "Think accounting"), not read as 0
    assert count_think_tokens("<think>\nnever closed", tok) == len(tok.encode("never closed", add_special_tokens=False))
