"""The control-token vocabulary: ``<COMP_20>`` … ``<COMP_100>`` and the policy token.

The paper calls the adaptive token ``<COMP_POLICY>``; the authors' code calls it
``<COMP_AUTO>``. ``<COMP_AUTO>`` is canonical here (it is the one added to tokenizers);
``<COMP_POLICY>`` is accepted as an alias wherever a token is parsed or requested.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Fixed target ratios γ (docs/method.md, "Control tokens").
FIXED_RATIOS: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
POLICY_TOKEN = "<COMP_AUTO>"
POLICY_ALIASES: tuple[str, ...] = ("<COMP_POLICY>",)
#: Names accepted on command lines for the policy mode.
POLICY_NAMES: tuple[str, ...] = ("policy", "auto", POLICY_TOKEN, *POLICY_ALIASES)

_FIXED_TOKENS = tuple(f"<COMP_{round(r * 100)}>" for r in FIXED_RATIOS)
#: The six tokens added to a tokenizer as special tokens, in a fixed order.
CONTROL_TOKENS: tuple[str, ...] = (*_FIXED_TOKENS, POLICY_TOKEN)

#: The one control-token regex: any fixed token, the policy token or its alias (group 1: the tail).
CONTROL_RE = re.compile(r"<COMP_(20|40|60|80|100|AUTO|POLICY)>")
#: Folder name of each evaluated run, in display order: a fixed ratio (``0.2`` … ``1.0``),
#: ``policy`` (``<COMP_AUTO>``) and ``base`` (no token). Shared by eval, build-rl and the demo.
RATIO_DIRS: tuple[str, ...] = (*(f"{r:.1f}" for r in FIXED_RATIOS), "policy", "base")


@dataclass(frozen=True)
class ControlChoice:
    """A parsed control token: ``ratio`` is ``None`` for the policy token."""

    token: str
    ratio: float | None

    @property
    def is_policy(self) -> bool:
        return self.ratio is None


def ratio_to_token(ratio: float) -> str:
    """Map a fixed ratio (0.2 … 1.0) to its token; raise naming the valid ratios."""
    for r, tok in zip(FIXED_RATIOS, _FIXED_TOKENS):
        if abs(float(ratio) - r) < 1e-9:
            return tok
    raise ValueError(f"ratio {ratio!r} has no control token; valid ratios: {list(FIXED_RATIOS)}")


def ratio_value(value: object, what: str, allowed: tuple[float, ...] = FIXED_RATIOS) -> float:
    """A ratio read from data (a field such as ``gt_ratio``, or a ``compressed`` key): a number,
    or a string holding one, that is one of ``allowed``; returned as that canonical float.

    Refused, naming ``what`` and the valid ratios: booleans (``float(True)`` is 1.0), NaN, other
    types, and numbers outside ``allowed``.
    """
    ratio = None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            ratio = float(value)
        except ValueError:
            ratio = None
    for r in allowed:
        if ratio is not None and abs(ratio - r) < 1e-9:
            return r
    raise ValueError(f"{what}: {value!r} is not a ratio; valid: {list(allowed)}")


def token_to_ratio(token: str) -> float | None:
    """Map a token to its ratio; the policy token (or an alias) maps to ``None``."""
    return parse_control(token).ratio


def parse_control(spec: str | float | None) -> ControlChoice | None:
    """Parse a user-facing control spec.

    Accepts a token (``"<COMP_40>"``), a ratio (``0.4`` or ``"0.4"``), a policy name
    (``"policy"``, ``"auto"``, ``"<COMP_AUTO>"``, ``"<COMP_POLICY>"``), or ``None`` /
    ``"base"`` / ``"none"`` for no token (the model's untagged default behaviour).
    """
    if spec is None:
        return None
    if isinstance(spec, (int, float)):
        return ControlChoice(ratio_to_token(spec), float(spec))
    text = spec.strip()
    if text.lower() in ("", "base", "none"):
        return None
    if text in POLICY_NAMES or text.lower() in POLICY_NAMES:
        return ControlChoice(POLICY_TOKEN, None)
    if CONTROL_RE.fullmatch(text):
        ratio = int(text[len("<COMP_") : -1]) / 100
        return ControlChoice(text, ratio)
    try:
        ratio = float(text)
    except ValueError:
        raise ValueError(
            f"unknown control {spec!r}; use one of {list(FIXED_RATIOS)}, {list(CONTROL_TOKENS)}, "
            f"{list(POLICY_NAMES)} or 'base'"
        ) from None
    return ControlChoice(ratio_to_token(ratio), ratio)


def parse_leading_control(response: str) -> ControlChoice | None:
    """The control token a response starts with (leading whitespace ignored), else ``None``."""
    match = CONTROL_RE.match(response.lstrip())
    if match is None:
        return None
    return parse_control(match.group(0))


def ratio_dir_name(spec: str | float | None) -> str:
    """Folder name of a run (one of :data:`RATIO_DIRS`) for any control spec :func:`parse_control` takes."""
    choice = parse_control(spec)  # strips spaces; raises naming the valid values
    if choice is None:
        return "base"
    return "policy" if choice.is_policy else f"{choice.ratio:.1f}"


def first_control(text: str) -> str | None:
    """The first control token anywhere in ``text`` (aliases made canonical), else ``None``."""
    match = CONTROL_RE.search(text)
    return None if match is None else canonical_text(match.group(0))


def canonical_text(text: str) -> str:
    """Replace alias tokens by the canonical policy token."""
    for alias in POLICY_ALIASES:
        text = text.replace(alias, POLICY_TOKEN)
    return text
