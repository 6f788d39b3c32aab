"""The ``comp_ratio`` chat-template variable: an OpenAI client picks the control token per request.

Against a plain ``vllm serve`` of a model prepared by ``extra-cot prepare-model``::

    client.chat.completions.create(model=..., messages=[{"role": "user", "content": question}],
                                   extra_body={"chat_template_kwargs": {"comp_ratio": 0.4}})

renders the prompt that :func:`extra_cot.prompt.build_messages` writes for ratio 0.4: `` <COMP_40>``
at the end of the last user message (where the project's prompt puts it). Accepted values: a fixed
ratio (number or string), ``"auto"``/``"policy"`` (``<COMP_AUTO>``), a control token, ``"base"``,
``"none"`` or ``null`` (no token). Anything else stops the render with ``raise_exception`` (vLLM
answers 400) naming the valid values. Without the variable the template renders exactly as before.

The Jinja below is generated from :mod:`extra_cot.tokens` (one vocabulary) and put in front of the
tokenizer's own chat template: it only rewrites ``messages`` and writes no text, so it works with
any template that reads ``messages`` (Qwen3's, SmolLM2's, the test models'). Pure strings: no
transformers, no vLLM.
"""

from __future__ import annotations

from extra_cot.tokens import (
    CONTROL_TOKENS,
    FIXED_RATIOS,
    POLICY_ALIASES,
    POLICY_NAMES,
    POLICY_TOKEN,
    ratio_to_token,
)

#: The chat-template variable (``chat_template_kwargs`` key).
COMP_RATIO_KWARG = "comp_ratio"
#: First line of the generated block; its presence makes :func:`with_comp_ratio` a no-op.
MARKER = "{#- extra_cot: comp_ratio chat-template variable (extra_cot.chat_template) #}"
#: String values that mean "no control token" (as ``parse_control``'s "base"/"none").
NO_TOKEN_NAMES: tuple[str, ...] = ("base", "none")


def comp_ratio_values() -> dict[str | float, str]:
    """Every accepted ``comp_ratio`` value -> the token it renders (``""``: none).

    Numbers are keyed by their float, strings as :func:`extra_cot.tokens.parse_control` reads them;
    the template matches strings trimmed and case-blind.
    """
    values: dict[str | float, str] = {}
    for ratio in FIXED_RATIOS:
        token = ratio_to_token(ratio)
        values.update({ratio: token, str(ratio): token, token: token})
    values.update(dict.fromkeys(POLICY_NAMES, POLICY_TOKEN))
    values.update(dict.fromkeys(NO_TOKEN_NAMES, ""))
    return values


def valid_values_text() -> str:
    """The valid values as the error message names them."""
    ratios = ", ".join(str(r) for r in FIXED_RATIOS)
    return (f"a ratio {ratios}; 'auto' or 'policy' ({POLICY_TOKEN}); a control token "
            f"({', '.join(CONTROL_TOKENS)}); or 'base'/'none'/null for no token")


def _jinja_dict(items: dict) -> str:
    return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in items.items()) + "}"


def _fail(message: str, tail: str = "") -> str:
    """A Jinja statement that stops the render with ``message`` (a Python-quoted literal) ``~ tail``."""
    return f"{{{{- raise_exception({message!r}{' ~ ' + tail if tail else ''}) }}}}"


def comp_ratio_block() -> str:
    """The Jinja block that resolves ``comp_ratio`` and appends its token to the last user message."""
    kw = COMP_RATIO_KWARG
    values = comp_ratio_values()
    numbers = _jinja_dict({k: v for k, v in values.items() if isinstance(k, float)})
    names = _jinja_dict({k.lower(): v for k, v in values.items() if isinstance(k, str)})
    all_tokens = repr([*CONTROL_TOKENS, *POLICY_ALIASES])
    bad_value = _fail(f"{kw} must be {valid_values_text()}; got ", f"({kw} | string)")
    no_user = _fail(f"{kw} needs a user message to put the control token in")
    not_text = _fail(f"{kw} needs the last user message to be text")
    has_token = _fail(f"{kw} is set but the last user message already holds ", "_t ~ ': give one of the two'")
    return "\n".join([
        MARKER,
        f"{{%- if {kw} is defined and {kw} is not none %}}",
        "{%- set _xc = namespace(token=none, last=-1, msgs=[]) %}",
        f"{{%- if {kw} is number and {kw} is not boolean %}}{{%- set _xc.token = {numbers}.get({kw} | float) %}}",
        f"{{%- elif {kw} is string %}}{{%- set _xc.token = {names}.get({kw} | trim | lower) %}}",
        "{%- endif %}",
        f"{{%- if _xc.token is none %}}{bad_value}{{%- endif %}}",
        "{%- if _xc.token %}",
        "{%- for _m in messages %}{%- if _m['role'] == 'user' %}{%- set _xc.last = loop.index0 %}{%- endif %}",
        "{%- endfor %}",
        f"{{%- if _xc.last < 0 %}}{no_user}{{%- endif %}}",
        "{%- for _m in messages %}",
        "{%- if loop.index0 == _xc.last %}",
        f"{{%- if _m['content'] is not string %}}{not_text}{{%- endif %}}",
        f"{{%- for _t in {all_tokens} %}}{{%- if _t in _m['content'] %}}{has_token}{{%- endif %}}{{%- endfor %}}",
        "{%- set _xc.msgs = _xc.msgs + [dict(_m, content=_m['content'].rstrip() ~ ' ' ~ _xc.token)] %}",
        "{%- else %}{%- set _xc.msgs = _xc.msgs + [_m] %}{%- endif %}",
        "{%- endfor %}",
        "{%- set messages = _xc.msgs %}",
        "{%- endif %}",
        "{%- endif %}",
    ])


def with_comp_ratio(chat_template: str) -> str:
    """``chat_template`` with the ``comp_ratio`` block in front (unchanged if it already has it).

    Nothing is written between the block and the template, so a render without ``comp_ratio``
    is byte-identical to the original template's.
    """
    if not isinstance(chat_template, str) or not chat_template:
        raise ValueError(f"need the tokenizer's chat template as a non-empty string, got {type(chat_template).__name__}")
    if MARKER in chat_template:
        return chat_template
    return comp_ratio_block() + chat_template
