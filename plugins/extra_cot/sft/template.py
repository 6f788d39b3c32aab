"""LLaMA-Factory chat template ``qwen3_comp``: Qwen3's reasoning template for ratio-tagged data.

It reuses the host's own ``qwen3`` formatters (no copied slots), so the chat format follows
the installed LLaMA-Factory. Differences from ``qwen3``:

- ``default_system`` is the project's system prompt (docs/method.md), so ``llamafactory-cli chat``
  and ``api`` build the same prompt as training.
- The control tokens are never stop words (only ``<|im_end|>`` is), and a response that
  starts with ``<COMP_xx>\\n<think>`` keeps both: the host adds an empty think block only
  when a response has no think markers at all, which our rows always have.
- Removing a thought (history turns, or ``enable_thinking: false``) keeps a leading control
  token and matches our ``<think>\\n…</think>`` layout, which has no newline before
  ``</think>`` (the host's pattern wants ``\\n</think>\\n\\n``).

This template only builds training rows: the Jinja chat template a served model uses is the
tokenizer's own, which LLaMA-Factory keeps for ``qwen3_comp`` (no ``replace_jinja_template``), so
the ``comp_ratio`` variable that ``extra-cot prepare-model`` adds to it (:mod:`extra_cot.chat_template`)
reaches the SFT output unchanged.
"""

from __future__ import annotations

import re

from llamafactory.data import template as lf_template  # this module is the host adapter

from extra_cot.prompt import SYSTEM_PROMPT

TEMPLATE_NAME = "qwen3_comp"
_THOUGHT = re.compile(r"<think>.*?</think>\s*", re.DOTALL)


class ControlReasoningTemplate(lf_template.ReasoningTemplate):
    """``ReasoningTemplate`` whose thought removal keeps the echoed control token.

    Module level (not local) so ``datasets`` can pickle it into preprocessing workers.
    """

    def remove_thought(self, content: str) -> str:
        return _THOUGHT.sub("", content)


def register_template() -> bool:
    """Register ``qwen3_comp`` once; return True when it was added by this call."""
    if TEMPLATE_NAME in lf_template.TEMPLATES:
        return False
    qwen3 = lf_template.TEMPLATES["qwen3"]
    lf_template.register_template(
        name=TEMPLATE_NAME,
        format_user=qwen3.format_user,
        format_assistant=qwen3.format_assistant,
        format_system=qwen3.format_system,
        format_function=qwen3.format_function,
        format_observation=qwen3.format_observation,
        format_tools=qwen3.format_tools,
        default_system=SYSTEM_PROMPT,
        stop_words=list(qwen3.stop_words),
        thought_words=tuple(qwen3.thought_words),
        replace_eos=qwen3.replace_eos,
        template_class=ControlReasoningTemplate,
    )
    return True
