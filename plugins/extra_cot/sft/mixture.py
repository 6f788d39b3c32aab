"""Stage 2 mixture: how one multi-ratio row becomes several SFT examples (pure, no host import).

A row (issue 2)::

    {"question": str, "cot": str, "answer": str,            # answer = text after </think>, has \\boxed{}
     "compressed": {"0.2": str, "0.4": str, "0.6": str, "0.8": str},   # any subset (calibration drops some)
     "gt_ratio": 0.4}                                        # optional: the policy target γ*(x) (Stage 3)

expands (docs/method.md, Stage 2) into one example per *available* ratio in ``MixtureConfig.ratios``
(token at the end of the user turn and echoed at the start of the response); at 1.0 (the full
``cot``) a seeded ``untagged_share`` of rows carries no token at all; and, when ``gt_ratio`` is
present and selected by the policy quotas, a policy example (``<COMP_AUTO>`` in, γ* token out;
``policy_repeat`` copies of it).

Every random choice hashes the row's content with the seed, so each rank, worker and rerun
builds the same data whatever the order or sharding.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from extra_cot.prompt import SYSTEM_PROMPT, build_response, build_user_text
from extra_cot.quotas import PAPER_QUOTAS, allocate
from extra_cot.tokens import FIXED_RATIOS, POLICY_TOKEN, ratio_to_token, ratio_value

#: Key of the mixture settings inside a ``dataset_info.json`` entry.
ENTRY_KEY = "extra_cot"
#: The value of ``"formatting"`` that selects our converter/processor.
FORMATTING = "extra_cot"
#: Paper: "10k rows" of policy data (docs/method.md, Stage 2).
PAPER_POLICY_ROWS = 10_000
#: Paper: ~58k SFT rows in all (docs/method.md, Stage 2), so policy rows are ~17 % of them.
PAPER_POLICY_SHARE = PAPER_POLICY_ROWS / 58_000
_REQUIRED = ("question", "cot", "answer")
_BOXED = re.compile(r"\\boxed\s*\{")


class BadRowError(ValueError):
    """A row that cannot be expanded; the message names file, row and field."""


def _ratio_key(ratio: float) -> str:
    return f"{float(ratio):.1f}"


def _as_ratio(value: Any, what: str) -> float:
    return round(ratio_value(value, what), 1)  # a bool or NaN is refused, not read as 1.0 / dropped


@dataclass
class MixtureConfig:
    """Mixture settings; they live in the dataset entry under ``"extra_cot"`` (paper defaults).

    ratios: fixed ratios that get an example when the row has text for them (1.0 = ``cot``).
    untagged_share: share of rows whose 1.0 example carries no token (paper: half).
    policy_quotas: target share of each γ* among policy examples; ``None`` keeps every row
        with a ``gt_ratio``; a ratio absent or at 0 gets no policy example.
    policy_rows: cap on policy examples (paper: 10k); ``None`` = as many as the quotas allow.
    policy_repeat: copies of each kept policy example (default 1). Our reconstruction, not the
        paper's: its 10k policy rows are ~17 % of ~58k SFT rows (``PAPER_POLICY_SHARE``); a small
        policy set (tens of questions with a γ*) is ~5 % of its mixture, and repeating its
        examples restores that share (:func:`repeat_for_share`, ``build-sft --policy-share``).
    seed: mixed into every per-row hash.
    on_bad_row: ``"error"`` raises naming file/row/field; ``"skip"`` logs the reason and drops it.
    """

    ratios: tuple[float, ...] = FIXED_RATIOS
    untagged_share: float = 0.5
    policy_quotas: dict[float, float] | None = field(default_factory=lambda: dict(PAPER_QUOTAS))
    policy_rows: int | None = PAPER_POLICY_ROWS
    policy_repeat: int = 1
    seed: int = 42
    on_bad_row: Literal["error", "skip"] = "error"

    def __post_init__(self) -> None:
        self.ratios = tuple(sorted({_as_ratio(r, "MixtureConfig.ratios") for r in self.ratios}))
        if not self.ratios:
            raise ValueError("MixtureConfig.ratios is empty; use a subset of " f"{list(FIXED_RATIOS)}")
        if not 0.0 <= float(self.untagged_share) <= 1.0:
            raise ValueError(f"MixtureConfig.untagged_share={self.untagged_share!r}: use a share in [0, 1]")
        if self.policy_quotas is not None:
            quotas = {_as_ratio(k, "MixtureConfig.policy_quotas key"): float(v) for k, v in self.policy_quotas.items()}
            if any(v < 0 for v in quotas.values()) or sum(quotas.values()) <= 0:
                raise ValueError(f"MixtureConfig.policy_quotas={self.policy_quotas!r}: use shares >= 0, not all 0")
            total = sum(quotas.values())
            self.policy_quotas = {k: v / total for k, v in sorted(quotas.items())}
        if self.policy_rows is not None and int(self.policy_rows) < 0:
            raise ValueError(f"MixtureConfig.policy_rows={self.policy_rows!r}: use a count >= 0 or null")
        if isinstance(self.policy_repeat, bool) or int(self.policy_repeat) != self.policy_repeat or self.policy_repeat < 1:
            raise ValueError(f"MixtureConfig.policy_repeat={self.policy_repeat!r}: use a whole number >= 1")
        self.policy_repeat = int(self.policy_repeat)
        if self.on_bad_row not in ("error", "skip"):
            raise ValueError(f"MixtureConfig.on_bad_row={self.on_bad_row!r}: use 'error' or 'skip'")
        self.seed = int(self.seed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ratio keys as strings) for a ``dataset_info.json`` entry."""
        out = asdict(self)
        out["ratios"] = list(self.ratios)
        if self.policy_quotas is not None:
            out["policy_quotas"] = {_ratio_key(k): round(v, 6) for k, v in self.policy_quotas.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> MixtureConfig:
        """Build from an entry's ``"extra_cot"`` dict; unknown keys are an error listing valid ones."""
        data = dict(data or {})
        valid = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ValueError(f"unknown mixture key(s) {unknown}; valid: {sorted(valid)}")
        if "ratios" in data:
            data["ratios"] = tuple(data["ratios"])
        return cls(**data)


def dataset_info_entry(file_name: str, mixture: MixtureConfig | None = None) -> dict:
    """The ``dataset_info.json`` value for one multi-ratio dataset file."""
    return {"file_name": file_name, "formatting": FORMATTING, ENTRY_KEY: (mixture or MixtureConfig()).to_dict()}


def validate_row(row: Any, where: str) -> None:
    """Raise :class:`BadRowError` naming ``where`` (e.g. ``"data.jsonl row 7"``) and the field."""
    if not isinstance(row, Mapping):
        raise BadRowError(f"{where}: row is {type(row).__name__}, expected a JSON object")
    for name in _REQUIRED:
        if not isinstance(row.get(name), str) or not row[name].strip():
            raise BadRowError(f"{where}, field {name!r}: missing or not a non-empty string")
    if not _BOXED.search(row["answer"]):
        raise BadRowError(f"{where}, field 'answer': no \\boxed{{...}} in {row['answer'][:80]!r}")
    compressed = row.get("compressed")
    if compressed is None:
        compressed = {}
    if not isinstance(compressed, Mapping):
        raise BadRowError(f"{where}, field 'compressed': expected an object of ratio -> text")
    for key, text in compressed.items():
        if text is None:
            continue  # absent: Arrow gives every row the union of all rows' keys, filled with null
        try:
            ratio = _as_ratio(key, "key")
        except ValueError:
            raise BadRowError(f"{where}, field 'compressed.{key}': unknown ratio key; valid: 0.2 0.4 0.6 0.8") from None
        if ratio == 1.0:
            raise BadRowError(f"{where}, field 'compressed.{key}': ratio 1.0 is the 'cot' field, not a compressed key")
        if text is not None and not isinstance(text, str):
            raise BadRowError(f"{where}, field 'compressed.{key}': expected a string or null")
    _validate_gt_ratio(row, compressed, where)


def _validate_gt_ratio(row: dict, compressed: dict, where: str) -> None:
    if row.get("gt_ratio") is None:
        return
    try:
        gt = _as_ratio(row["gt_ratio"], "gt_ratio")
    except ValueError:
        raise BadRowError(f"{where}, field 'gt_ratio': {row['gt_ratio']!r} is not one of {list(FIXED_RATIOS)}") from None
    if gt != 1.0 and not _text_at(compressed, gt):
        raise BadRowError(f"{where}, field 'gt_ratio': {gt} has no text under 'compressed.{_ratio_key(gt)}'")


def _text_at(compressed: dict, ratio: float) -> str | None:
    for key, text in compressed.items():
        if isinstance(text, str) and text.strip() and abs(float(key) - ratio) < 1e-9:
            return text
    return None


def row_hash(row: dict, seed: int, salt: str) -> float:
    """A uniform number in [0, 1) from the row's content, the seed and a purpose salt."""
    gt = row.get("gt_ratio")
    if isinstance(gt, (int, float)) and not isinstance(gt, bool):
        gt = round(float(gt), 3)  # JSON 1 and Arrow 1.0 must hash alike
    content = json.dumps(
        [row.get("question"), row.get("cot"), row.get("answer"), gt, seed, salt],
        ensure_ascii=False,
    )
    digest = hashlib.sha256(content.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class Example:
    """One SFT example: chat turns as LLaMA-Factory's aligned format wants them."""

    system: str
    user: str
    response: str
    control: str | None  # the token in the user turn (None = untagged)


def _example(question: str, think: str, answer: str, token_in: str | None, token_out: str | None) -> Example:
    return Example(SYSTEM_PROMPT, build_user_text(question, token_in), build_response(think, answer, token_out), token_in)


def expand_row(row: dict, mixture: MixtureConfig, policy_keep: bool | None = None) -> list[Example]:
    """Examples for one *valid* row (call :func:`validate_row` first).

    ``policy_keep`` is the quota decision for this row's policy example (see
    :func:`select_policy_rows`); ``None`` means "keep when the row has a gt_ratio".
    """
    compressed = row.get("compressed") or {}
    question, answer = row["question"], row["answer"]
    examples = []
    for ratio in mixture.ratios:
        think = row["cot"] if ratio == 1.0 else _text_at(compressed, ratio)
        if think is None:
            continue  # ratio not available for this row (calibration dropped it)
        token = ratio_to_token(ratio)
        if ratio == 1.0 and row_hash(row, mixture.seed, "untagged") < mixture.untagged_share:
            token = None
        examples.append(_example(question, think, answer, token, token))
    if row.get("gt_ratio") is not None and policy_keep is not False:
        gt = _as_ratio(row["gt_ratio"], "gt_ratio")
        quota = 1.0 if mixture.policy_quotas is None else mixture.policy_quotas.get(gt, 0.0)
        if quota > 0:
            think = row["cot"] if gt == 1.0 else _text_at(compressed, gt)
            examples += [_example(question, think, answer, POLICY_TOKEN, ratio_to_token(gt))] * mixture.policy_repeat
    return examples


def policy_targets(counts: dict[float, int], mixture: MixtureConfig) -> dict[float, int]:
    """How many policy examples to keep per γ* given how many rows carry each γ*
    (:func:`extra_cot.quotas.allocate`, capped by ``policy_rows``; γ* without a quota dropped)."""
    targets = allocate(counts, mixture.policy_quotas, mixture.policy_rows)
    if mixture.policy_quotas is None:
        return targets
    return {r: n for r, n in targets.items() if mixture.policy_quotas.get(r, 0) > 0 and counts.get(r, 0) > 0}


def parse_policy_share(text: str) -> float | None:
    """``none`` -> None (each policy example once), ``method`` -> the paper's share, else a share in (0, 1)."""
    text = str(text).strip().lower()
    if text == "none":
        return None
    if text == "method":
        return PAPER_POLICY_SHARE
    try:
        share = float(text)
    except ValueError:
        share = -1.0
    if not 0.0 < share < 1.0:
        raise ValueError(f"policy share {text!r}: use none, method or a share in (0, 1)")
    return share


def repeat_for_share(fixed: int, policy: int, share: float) -> int:
    """Copies of each policy example (>= 1) that bring ``policy`` examples nearest ``share`` of all
    examples, next to ``fixed`` examples with a fixed-ratio token (or none)."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"policy share {share!r}: use a share in (0, 1)")
    if policy <= 0:
        return 1
    return max(1, round(share * fixed / ((1.0 - share) * policy)))


class PolicySelection:
    """The quota selection of policy rows, fed one row at a time (a streaming file scan).

    Within each γ* the rows with the lowest seeded hash win, so the choice is exact,
    deterministic and independent of row order (every rank computes the same set). Memory is
    two floats per row with a ``gt_ratio`` while feeding, then the chosen keys; invalid rows
    are ignored here.
    """

    def __init__(self, mixture: MixtureConfig) -> None:
        self.mixture = mixture
        self._hashes: dict[float, array] = {}  # γ* -> seeded selection hash of each row
        self._keys: dict[float, array] = {}  # γ* -> the row's policy_key, as its float

    def add(self, row: Any) -> None:
        try:
            gt = _as_ratio(row.get("gt_ratio"), "gt_ratio") if isinstance(row, dict) else None
        except ValueError:
            return
        if gt is None:
            return
        self._hashes.setdefault(gt, array("d")).append(row_hash(row, self.mixture.seed, "policy"))
        self._keys.setdefault(gt, array("d")).append(row_hash(row, 0, "key"))

    def chosen(self) -> set[str]:
        """Keys (:func:`policy_key`) of the rows whose policy example meets the quotas."""
        targets = policy_targets({r: len(h) for r, h in self._hashes.items()}, self.mixture)
        chosen: set[str] = set()
        for ratio, hashes in self._hashes.items():
            best = heapq.nsmallest(targets.get(ratio, 0), zip(hashes, self._keys[ratio]))
            chosen.update(_key_text(key) for _, key in best)
        return chosen


def select_policy_rows(rows: Iterable[dict], mixture: MixtureConfig) -> set[str]:
    """Keys (:func:`policy_key`) of the rows whose policy example meets the quotas
    (:class:`PolicySelection` over ``rows``)."""
    selection = PolicySelection(mixture)
    for row in rows:
        selection.add(row)
    return selection.chosen()


def _key_text(key: float) -> str:
    return f"{key:.17f}"


def policy_key(row: dict) -> str:
    """A stable identity of a row's content (independent of the seed)."""
    return _key_text(row_hash(row, 0, "key"))
