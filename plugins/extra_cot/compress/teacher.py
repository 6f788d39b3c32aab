"""The teacher's side of Stage 1, pure: ``[MATH_k]`` masking, ~512-token chunking, the
labelling prompt, and parsing/mapping the teacher's answer back to keep-spans of the CoT.

docs/method.md, "Stage 1": before labelling every formula becomes an atomic placeholder ``[MATH_k]``
(so a formula is kept or dropped whole); chunks of ~512 encoder tokens (cap 640) never split a
formula; the teacher (temperature 0) returns the ranges to KEEP. Here the teacher copies the kept
ranges verbatim, as a JSON object ``{"keep": ["span", ...]}``; anything else is "malformed" and
the caller retries or skips with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from extra_cot.compress.segment import segment

#: docs/method.md: "~512 encoder tokens per chunk (cap 640)".
CHUNK_TOKENS = 512
CHUNK_CAP = 640

SYSTEM = (
    "You compress a math solution by choosing which parts to KEEP. Rules: keep relation and "
    "negation symbols (= ≠ < > ≤ ≥ not mod); a placeholder like [MATH_3] is an atomic formula: keep "
    "it whole or drop it; cover a multi-token equation with one span; keep the decisive intermediate "
    "steps and results; bind to what the question asks; prefer spans tied to the question's numbers "
    "and variables; drop narration, hedges, dead ends and restatements. Answer with JSON only: "
    '{"keep": ["<span copied verbatim from the chunk>", ...]} with spans in order of appearance.'
)
USER = "Question:\n{question}\n\nSolution chunk:\n{chunk}\n\nReturn the JSON object of spans to keep."


@dataclass(frozen=True)
class Masked:
    """Masked text and, per masked segment, ``(m_start, m_end, o_start, o_end, is_formula)``."""

    text: str
    segments: tuple[tuple[int, int, int, int, bool], ...]


def mask_formulas(cot: str) -> Masked:
    """Replace every formula unit by ``[MATH_k]`` (k counts from 0 in the CoT)."""
    out, segs, pos, k = [], [], 0, 0
    for u in segment(cot):
        if not u.formula:
            continue
        plain = cot[pos:u.start]
        m = sum(map(len, out))
        out.append(plain)
        segs.append((m, m + len(plain), pos, u.start, False))
        tag = f"[MATH_{k}]"
        out.append(tag)
        segs.append((m + len(plain), m + len(plain) + len(tag), u.start, u.end, True))
        pos, k = u.end, k + 1
    m = sum(map(len, out))
    out.append(cot[pos:])
    segs.append((m, m + len(cot) - pos, pos, len(cot), False))
    return Masked("".join(out), tuple(segs))


def to_original(masked: Masked, start: int, end: int) -> tuple[int, int]:
    """Map a masked-text range to the CoT; a range touching a placeholder covers its formula."""
    def conv(p: int, is_end: bool) -> int:
        for ms, me, os_, oe, formula in masked.segments:
            if ms <= p < me or (is_end and ms < p <= me):
                if formula:
                    return oe if is_end else os_
                return os_ + (p - ms)
        return masked.segments[-1][3] if masked.segments else 0
    return conv(start, False), conv(end, True)


def chunk(masked_text: str, count: Callable[[str], int], target: int = CHUNK_TOKENS, cap: int = CHUNK_CAP) -> list[tuple[int, int]]:
    """``(start, end)`` chunks of ~``target`` tokens at line/sentence ends, never above ``cap``
    unless one word is longer; placeholders are words, so formulas are never split."""
    pieces = [m.span() for m in re.finditer(r"[^\n]*?(?:[.!?](?=\s)|\n|$)\s*", masked_text) if m.end() > m.start()]
    chunks, start, end = [], 0, 0
    for s, e in pieces:
        if end > start and count(masked_text[start:e]) > target:
            chunks.append((start, end))
            start = end
        if count(masked_text[start:e]) > cap:  # one long sentence: cut at words
            for w in re.finditer(r"\S+\s*", masked_text[s:e]):
                ws, we = s + w.start(), s + w.end()
                if ws > start and count(masked_text[start:we]) > cap:
                    chunks.append((start, ws))
                    start = ws
        end = e
    if end > start:
        chunks.append((start, end))
    return chunks


def parse_keep(reply: str, chunk_text: str) -> list[tuple[int, int]]:
    """Keep-spans (offsets in ``chunk_text``) from a teacher reply; ``ValueError`` says why not."""
    body = re.sub(r"^```(?:json)?|```$", "", reply.strip(), flags=re.MULTILINE).strip()
    match = re.search(r"\{.*\}", body, re.DOTALL)
    if match is None:
        raise ValueError("no JSON object in the reply")
    try:
        obj = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg})") from None
    spans = obj.get("keep") if isinstance(obj, dict) else None
    if not isinstance(spans, list) or not all(isinstance(s, str) for s in spans):
        raise ValueError('the JSON has no "keep" list of strings')
    out, cursor = [], 0
    for span in (s.strip() for s in spans):
        if not span:
            continue
        at = chunk_text.find(span, cursor)
        at = at if at >= 0 else chunk_text.find(span)
        if at < 0:
            raise ValueError(f"span not found verbatim in the chunk: {span[:60]!r}")
        if re.search(r"\[MATH_\d*$|^\d*\]", span) or re.search(r"^_?\d+\]", span):
            raise ValueError(f"span cuts a [MATH_k] placeholder: {span[:60]!r}")
        out.append((at, at + len(span)))
        cursor = at + len(span)
    return sorted(out)


def snap_to_units(cot: str, spans: list[tuple[int, int]]) -> list[list[int]]:
    """Union of the units (words, formulas) whose middle lies in a span: labels stay atomic."""
    kept = [u for u in segment(cot) if any(a <= (u.start + u.end - 1) / 2 < b for a, b in spans)]
    merged: list[list[int]] = []
    for u in kept:
        if merged and cot[merged[-1][1]:u.start].strip() == "":
            merged[-1][1] = u.end
        else:
            merged.append([u.start, u.end])
    return merged


def messages(question: str, chunk_text: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": USER.format(question=question, chunk=chunk_text)}]
