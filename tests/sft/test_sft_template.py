"""Template ``qwen3_comp``: exact rendering (text and ids), no injected think, tokens not stop words."""

from __future__ import annotations

import pytest

pytest.importorskip("llamafactory")

from extra_cot.prompt import build_messages, build_response
from extra_cot.tokens import CONTROL_TOKENS

QUESTION = "What is 2 + 3?"
EXPECTED_PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nPlease reason step by step, and put your final answer within \\boxed{}.\n"
    "What is 2 + 3? <COMP_40><|im_end|>\n<|im_start|>assistant\n"
)
EXPECTED_RESPONSE = "<COMP_40>\n<think>\n2 + 3 = 5.</think>\n\nThe answer is \\boxed{5}.<|im_end|>\n"


@pytest.fixture
def template_and_tokenizer(tiny_model_dir):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    return get_template_and_fix_tokenizer(tokenizer, DataArguments(template="qwen3_comp")), tokenizer


def _encode(template, tokenizer, control="<COMP_40>"):
    system, user = build_messages(QUESTION, control)
    response = build_response("2 + 3 = 5.", "The answer is \\boxed{5}.", control)
    messages = [user, {"role": "assistant", "content": response}]
    return template.encode_oneturn(tokenizer, messages, system["content"])


def test_renders_exact_text_and_ids(template_and_tokenizer):
    template, tokenizer = template_and_tokenizer
    prompt_ids, response_ids = _encode(template, tokenizer)
    assert tokenizer.decode(prompt_ids, skip_special_tokens=False) == EXPECTED_PROMPT
    assert tokenizer.decode(response_ids, skip_special_tokens=False) == EXPECTED_RESPONSE
    assert prompt_ids == tokenizer.encode(EXPECTED_PROMPT, add_special_tokens=False)
    assert response_ids == tokenizer.encode(EXPECTED_RESPONSE, add_special_tokens=False)
    comp40 = tokenizer.convert_tokens_to_ids("<COMP_40>")
    assert prompt_ids.count(comp40) == 1 and response_ids[0] == comp40  # one id, echoed first


def test_prompt_matches_the_tokenizers_own_chat_template(template_and_tokenizer):
    template, tokenizer = template_and_tokenizer
    prompt_ids, _ = _encode(template, tokenizer)
    own = tokenizer.apply_chat_template(build_messages(QUESTION, "<COMP_40>"), add_generation_prompt=True,
                                        tokenize=False)
    assert tokenizer.decode(prompt_ids, skip_special_tokens=False) == own


def test_untagged_response_keeps_its_think_and_no_token(template_and_tokenizer):
    template, tokenizer = template_and_tokenizer
    prompt_ids, response_ids = _encode(template, tokenizer, control=None)
    text = tokenizer.decode(response_ids, skip_special_tokens=False)
    assert text.startswith("<think>\n2 + 3 = 5.</think>") and text.count("<think>") == 1
    assert tokenizer.decode(prompt_ids, skip_special_tokens=False).endswith("What is 2 + 3?<|im_end|>\n<|im_start|>assistant\n")


def test_control_tokens_are_not_stop_words(template_and_tokenizer):
    template, tokenizer = template_and_tokenizer
    assert template.stop_words == ["<|im_end|>"] and tokenizer.eos_token == "<|im_end|>"
    assert not set(CONTROL_TOKENS) & set(template.stop_words)
    assert template.default_system == "You are a helpful assistant."


def test_thought_removal_keeps_the_control_token(template_and_tokenizer):
    template, _ = template_and_tokenizer
    text = build_response("long\nthinking", "The answer is \\boxed{5}.", "<COMP_20>")
    assert template.remove_thought(text) == "<COMP_20>\nThe answer is \\boxed{5}."


def test_register_is_idempotent():
    from llamafactory.data.template import TEMPLATES

    from extra_cot.sft.plugin import register
    from extra_cot.sft.template import register_template

    register()
    assert register() is False and register_template() is False
    assert "qwen3_comp" in TEMPLATES


def test_llamafactory_keeps_the_tokenizers_comp_ratio_template(template_and_tokenizer):
    """The SFT output serves the tokenizer's template: LLaMA-Factory must not replace it for qwen3_comp."""
    from extra_cot.chat_template import with_comp_ratio
    from extra_cot.testing import CHAT_TEMPLATE

    template, tokenizer = template_and_tokenizer
    assert template.replace_jinja_template is False
    assert tokenizer.chat_template == with_comp_ratio(CHAT_TEMPLATE)
    own = tokenizer.apply_chat_template(build_messages(QUESTION), add_generation_prompt=True, tokenize=False,
                                        comp_ratio=0.4)
    assert own == EXPECTED_PROMPT
