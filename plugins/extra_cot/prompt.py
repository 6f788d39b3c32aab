"""The one prompt builder shared by SFT data, RL data and evaluation (docs/method.md, "Prompt").

user:     ``Please reason step by step, and put your final answer within \\boxed{}.\\n{question} <COMP_xx>``
response: ``<COMP_xx>\\n<think>\\n{reasoning}</think>\\n\\n{answer}``
"""

from __future__ import annotations

from extra_cot.tokens import ControlChoice, parse_control

SYSTEM_PROMPT = "You are a helpful assistant."
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}.\n"


def _token(control: str | float | ControlChoice | None) -> str | None:
    if isinstance(control, ControlChoice):
        return control.token
    choice = parse_control(control)
    return None if choice is None else choice.token


def build_user_text(question: str, control: str | float | ControlChoice | None = None) -> str:
    """Instruction + question, then `` <COMP_xx>`` (one space) unless ``control`` is None/base."""
    token = _token(control)
    text = INSTRUCTION + question.strip()
    return text if token is None else f"{text} {token}"


def build_messages(question: str, control: str | float | ControlChoice | None = None) -> list[dict]:
    """Chat messages (system + user) for one question at one control setting."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": build_user_text(question, control)},
    ]


def forced_prefix(control: str | float | ControlChoice | None) -> str:
    """The start of a response that :func:`build_response` writes for ``control``: the echoed
    token and the think opener (``extra-cot eval --force-control`` prefills it); ``""`` for none."""
    token = _token(control)
    return "" if token is None else f"{token}\n<think>\n"


def build_response(think: str, answer: str, control: str | float | ControlChoice | None = None) -> str:
    """A training/target response: the echoed token (if any), the think block, the answer."""
    token = _token(control)
    body = f"<think>\n{think.strip()}</think>\n\n{answer.strip()}"
    return body if token is None else f"{token}\n{body}"
