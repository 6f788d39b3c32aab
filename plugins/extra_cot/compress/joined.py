"""Joining kept units into a compression, and keeping its token count up to date as the
correction loop of :mod:`extra_cot.compress.select` adds and drops units one at a time.

Issue 37: the loop used to re-join and re-count the whole chain after every step (up to 400 steps
× 4 repair rounds × each ratio), so a 16k-token CoT took about a minute. Here a step re-counts
only the stretch of the join it changes: from the emitted unit before the change to the first
emitted unit after it whose gap is unchanged (both included as context, so a token that spans a
gap is counted in both versions). The sum of those deltas equals the full count wherever the
tokenizer's tokens do not reach across a whole unit on each side (words, formulas: always so for
pre-tokenizing BPE and SentencePiece tokenizers on spaced text); :meth:`JoinCount.sync` re-counts
the whole join, and the loop calls it before every decision to stop, so a stretch where the
deltas drift (unspaced scripts) costs a re-count, never a wrong stop. Pure apart from ``count``.
"""

from __future__ import annotations

import heapq
import re
from bisect import bisect_left
from collections.abc import Callable, Sequence

from extra_cot.compress.segment import UNSPACED, Unit

_PUNCT_ONLY = re.compile(r"[.,;:!?]+")
_UNSPACED_RE = re.compile(f"[{UNSPACED}]")
_PUNCT = ".,;:!?"


def _gap(between: str, adjacent: bool, left: str, right: str) -> str:
    """What separates two kept units whose source gap is ``between``."""
    if adjacent:
        return between if between.strip() == "" else " "
    if "\n" in between:
        return "\n"
    return "" if _UNSPACED_RE.match(left) and _UNSPACED_RE.match(right) else " "


def _emitted(units: Sequence[Unit], i: int, prev: int | None) -> bool:
    """A bare ``.``/``,`` run is left out after nothing or after a unit ending in punctuation."""
    return not (_PUNCT_ONLY.fullmatch(units[i].text) and (prev is None or units[prev].text[-1] in _PUNCT))


def gap_before(source: str, units: Sequence[Unit], prev: int | None, i: int) -> str:
    """The gap written before unit ``i`` when ``prev`` is the unit emitted before it."""
    if prev is None:
        return ""
    return _gap(source[units[prev].end:units[i].start], prev == i - 1, units[prev].text[-1], units[i].text[0])


def join_units(source: str, units: Sequence[Unit], kept: set[int]) -> tuple[str, list[tuple[int, int, int]]]:
    """Join kept units; returns the text and ``(unit, out_start, out_end)`` per emitted unit.

    Adjacent source units keep their original gap; across a dropped stretch the gap is a
    newline if the stretch held one, else nothing between two characters of an unspaced script
    (CJK) and a space otherwise. Runs of bare ``.``/``,`` collapse (docs/method.md).
    """
    pieces: list[str] = []
    placed: list[tuple[int, int, int]] = []
    length, prev = 0, None
    for i in sorted(kept):
        if not _emitted(units, i, prev):
            continue
        gap, text = gap_before(source, units, prev, i), units[i].text
        pieces.append(gap + text)
        placed.append((i, length + len(gap), length + len(gap) + len(text)))
        length += len(gap) + len(text)
        prev = i
    return "".join(pieces), placed


class JoinCount:
    """``count(join_units(source, units, kept)[0])`` under single-unit changes (see module doc).

    Per kept unit it holds the unit emitted before it (``prev``) and whether it is emitted itself;
    a change re-derives these from the change forward until they stop changing."""

    def __init__(self, source: str, units: Sequence[Unit], kept: set[int], count: Callable[[str], int]) -> None:
        self.source, self.units, self.count = source, units, count
        self.kept = set(kept)
        self.order = sorted(kept)
        self.state: dict[int, tuple[int | None, bool]] = {}
        prev = None
        for i in self.order:
            self.state[i] = (prev, _emitted(units, i, prev))
            prev = i if self.state[i][1] else prev
        self.tokens = count(join_units(source, units, self.kept)[0])
        self.synced = True

    def sync(self) -> int:
        """Re-count the whole join (exact); returns the count."""
        if not self.synced:
            self.tokens = self.count(join_units(self.source, self.units, self.kept)[0])
            self.synced = True
        return self.tokens

    def _text(self, members: list[int], state: Callable[[int], tuple[int | None, bool]]) -> str:
        """The join of ``members`` (consecutive kept units) under ``state``; the first has no gap."""
        out, first = [], True
        for j in members:
            prev, emitted = state(j)
            if emitted:
                out.append(("" if first else gap_before(self.source, self.units, prev, j)) + self.units[j].text)
                first = False
        return "".join(out)

    def toggle(self, i: int) -> None:
        """Add unit ``i`` if it is not kept, else drop it, and update the count."""
        old_order, adding = self.order, i not in self.kept
        pos = bisect_left(old_order, i)
        new_order = [*old_order[:pos], i, *old_order[pos:]] if adding else [*old_order[:pos], *old_order[pos + 1:]]
        start = pos  # the context's head: the last unit emitted before the change
        while start > 0 and not self.state[old_order[start - 1]][1]:
            start -= 1
        head = old_order[start - 1] if start > 0 else None
        changed, k, prev = {}, pos, head
        while k < len(new_order):  # new states from the change on, until one is unchanged
            j = new_order[k]
            s = (prev, _emitted(self.units, j, prev))
            if j != i and self.state[j] == s:
                break
            changed[j] = s
            prev = j if s[1] else prev
            k += 1
        while k < len(new_order) and not self.state[new_order[k]][1]:
            k += 1  # unchanged from here on: extend the context to the next emitted unit
        tail = new_order[k] if k < len(new_order) else None
        lo = max(0, start - 1)
        old_end = bisect_left(old_order, tail) + 1 if tail is not None else len(old_order)
        before = self._text(old_order[lo:old_end], self.state.__getitem__)
        after = self._text(new_order[lo:k + 1], lambda j: changed.get(j) or self.state[j])
        self.tokens += self.count(after) - self.count(before)
        self.state.update(changed)
        if not adding:
            del self.state[i]
        self.order = new_order
        (self.kept.add if adding else self.kept.discard)(i)
        self.synced = False


class Pools:
    """The correction loop's candidates: kept units it may drop (not mandatory) and units it may
    add (not kept, not banned, with tokens), by token count, each as a heap in the loop's order
    (drop: lowest score, then the later unit; add: highest score, then the earlier unit)."""

    def __init__(self, counts: Sequence[int], scores: Sequence[float], kept: set[int], mandatory: set[int],
                 banned: set[int]) -> None:
        self.counts, self.scores, self.mandatory, self.banned = counts, scores, mandatory, banned
        self.sizes = sorted(set(counts))
        self.drop: dict[int, list] = {c: [] for c in self.sizes}
        self.add: dict[int, list] = {c: [] for c in self.sizes}
        for i in range(len(counts)):
            self.push(i, i in kept, list.append)
        for heap in (*self.drop.values(), *self.add.values()):
            heapq.heapify(heap)

    def push(self, i: int, kept: bool, heap_op: Callable = heapq.heappush) -> None:
        """Make unit ``i`` a candidate in its state (kept or not), if it is one there."""
        if kept and i not in self.mandatory:
            heap_op(self.drop[self.counts[i]], (self.scores[i], -i))
        elif not kept and i not in self.banned and self.counts[i] > 0:
            heap_op(self.add[self.counts[i]], (-self.scores[i], i))

    @staticmethod
    def _top(heap: list, valid: Callable[[int], bool]):
        while heap and not valid(heap[0]):
            heapq.heappop(heap)
        return heap[0] if heap else None

    def _best(self, heaps: dict, limit: float | None, valid: Callable) -> tuple | None:
        tops = [self._top(heaps[c], valid) for c in self.sizes if limit is None or c <= limit]
        return min((t for t in tops if t is not None), default=None)

    def pick_drop(self, kept: set[int], limit: float) -> int | None:
        """The kept unit to drop: lowest score among those of at most ``limit`` tokens, else among all."""
        valid = lambda e: -e[1] in kept
        top = self._best(self.drop, limit, valid) or self._best(self.drop, None, valid)
        return None if top is None else -top[1]

    def pick_add(self, kept: set[int], limit: float) -> int | None:
        """The unit to add: highest score among those of at most ``limit`` tokens (none: ``None``)."""
        top = self._best(self.add, limit, lambda e: e[1] not in kept)
        return None if top is None else top[1]
