"""Evaluation data sets: ``(question, gold answer)`` items from jsonl files or HF ``datasets``.

A ``--dataset`` spec is ``NAME=SOURCE[:FORMAT]`` or ``NAME=SOURCE`` with the format guessed from
NAME; SOURCE is a ``.jsonl``/``.json`` file or a HF ``datasets`` id (``hf:openai/gsm8k@main:test``,
only where the hub is reachable). Formats (one loader per row shape):

* ``gsm8k``: ``question`` + ``answer`` whose last line is ``#### x``.
* ``math``: ``problem`` + ``answer`` (MATH-500).
* ``amc``: ``question`` (or ``problem``) + ``answer`` (a number, string, or a list of them: first).
* ``generic``: any field names, ``question_field``/``answer_field`` given as
  ``NAME=PATH:generic:QFIELD:AFIELD``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extra_cot.fileio import read_jsonl
from extra_cot.gsm8k import split_solution


@dataclass(frozen=True)
class EvalItem:
    index: int
    question: str
    gold: str


@dataclass(frozen=True)
class DatasetSpec:
    """One ``--dataset`` argument, parsed."""

    name: str
    source: str
    format: str
    question_field: str = "question"
    answer_field: str = "answer"


def _gold_text(value: Any, where: str) -> str:
    if isinstance(value, list):
        if not value:
            raise ValueError(f"{where}: empty answer list")
        value = value[0]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # AMC stores 27.0 for the answer 27
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"{where}: answer must be a non-empty string, number or list, got {value!r}")


def _field(row: dict, names: tuple[str, ...], where: str) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    raise ValueError(f"{where}: missing field {' or '.join(repr(n) for n in names)}; row has {sorted(row)}")


def _gsm8k(row: dict, where: str, spec: DatasetSpec) -> tuple[str, str]:
    _, gold = split_solution(str(_field(row, ("answer",), where)), where)
    return str(_field(row, ("question",), where)), gold


def _math(row: dict, where: str, spec: DatasetSpec) -> tuple[str, str]:
    return str(_field(row, ("problem", "question"), where)), _gold_text(
        _field(row, ("answer",), where), where
    )


def _amc(row: dict, where: str, spec: DatasetSpec) -> tuple[str, str]:
    return str(_field(row, ("question", "problem"), where)), _gold_text(
        _field(row, ("answer",), where), where
    )


def _generic(row: dict, where: str, spec: DatasetSpec) -> tuple[str, str]:
    question = _field(row, (spec.question_field,), where)
    return str(question), _gold_text(_field(row, (spec.answer_field,), where), where)


LOADERS: dict[str, Callable[[dict, str, DatasetSpec], tuple[str, str]]] = {
    "gsm8k": _gsm8k,
    "math": _math,
    "amc": _amc,
    "generic": _generic,
}
#: Name prefixes that imply a format when none is given.
_GUESS = (("gsm8k", "gsm8k"), ("math", "math"), ("amc", "amc"), ("aime", "amc"))


def parse_dataset_spec(text: str) -> DatasetSpec:
    """``NAME=SOURCE[:FORMAT[:QFIELD:AFIELD]]`` -> :class:`DatasetSpec`."""
    if "=" not in text:
        raise ValueError(f"--dataset {text!r}: expected NAME=PATH[:FORMAT], e.g. gsm8k=data/gsm8k_test.jsonl")
    name, rest = text.split("=", 1)
    parts = rest.split(":")
    if parts[0] == "hf":  # hf:<id>@<config>:<split> keeps its colons
        source, tail = ":".join(parts[:3]), parts[3:]
    else:
        source, tail = parts[0], parts[1:]
    fmt = tail[0] if tail else next((f for prefix, f in _GUESS if name.lower().startswith(prefix)), "generic")
    if fmt not in LOADERS:
        raise ValueError(f"--dataset {text!r}: unknown format {fmt!r}; valid: {sorted(LOADERS)}")
    fields = tail[1:3] if len(tail) >= 3 else ["question", "answer"]
    if not name or "/" in name:
        raise ValueError(f"--dataset {text!r}: NAME must be a plain directory name such as gsm8k")
    return DatasetSpec(name, source, fmt, fields[0], fields[1])


def _read_rows(source: str) -> list[tuple[int, dict]]:
    """``(n, row)``: ``n`` is the 1-based line of a JSONL file, else the 1-based record."""
    if source.startswith("hf:"):
        return list(enumerate(_read_hf(source), 1))
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {source} not found")
    if path.suffix == ".json":
        rows = json.loads(path.read_text())
        if not isinstance(rows, list):
            raise ValueError(f"{source}: a .json dataset must hold a list of objects")
        return list(enumerate(rows, 1))
    return list(read_jsonl(path))


def _read_hf(source: str) -> list[dict]:
    """``hf:<id>[@<config>]:<split>`` via ``datasets`` (needs the hub or a local cache)."""
    import datasets

    _, ident, *split = source.split(":")
    repo, _, config = ident.partition("@")
    return list(datasets.load_dataset(repo, config or None, split=split[0] if split else "test"))


def load_items(spec: DatasetSpec, limit: int | None = None) -> list[EvalItem]:
    """Items of one data set in file order; errors name the file, row and field."""
    loader = LOADERS[spec.format]
    rows = _read_rows(spec.source)
    items = []
    for i, (n, row) in enumerate(rows[:limit] if limit else rows):
        where = f"{spec.source}:{n}"
        if not isinstance(row, dict):
            raise TypeError(f"{where}: expected a JSON object, got {type(row).__name__}")
        question, gold = loader(row, where, spec)
        items.append(EvalItem(i, question, gold))
    return items
