"""The eval output tree: append-only partial logs, atomic final files, the run's wall time.

``OUT/<dataset>/<ratio>/partial.jsonl`` gets one line per finished item (its K samples) as soon as
the item finishes, flushed and fsynced, so Ctrl-C or a crash loses at most the item being
written; a truncated last line is ignored on reading. ``prediction.json`` and ``metrics.json``
are rewritten atomically (:mod:`extra_cot.fileio`) from the log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

PARTIAL = "partial.jsonl"
PREDICTION = "prediction.json"
METRICS = "metrics.json"
#: The keys of one prediction.json record (cross-team contract).
RECORD_KEYS = (
    "index",
    "sample",
    "question",
    "prompt",
    "output",
    "pred",
    "gold",
    "correct",
    "think_tokens",
    "control",
    "latency_s",
)


def read_partial(path: Path) -> dict[int, dict]:
    """Finished items of a run by index (first entry wins; bad or truncated lines skipped)."""
    done: dict[int, dict] = {}
    if not path.is_file():
        return done
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            done.setdefault(int(entry["index"]), entry)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            logger.warning(
                "%s:%d: unreadable line skipped (an interrupted write); it will be redone", path, lineno
            )
    return done


def records_of(done: dict[int, dict]) -> list[dict]:
    """All sample records of the finished items, sorted by (index, sample)."""
    return [rec for idx in sorted(done) for rec in done[idx]["records"]]


def wall_time(done: dict[int, dict]) -> float:
    """Summed wall time of all sessions: per session, last finish minus session start.

    Each line carries its session's start and its own finish time, so a killed session still
    contributes the time it spent on the items it finished.
    """
    sessions: dict[float, float] = {}
    for entry in done.values():
        start = float(entry.get("session_start", 0.0))
        sessions[start] = max(sessions.get(start, start), float(entry.get("t_done", start)))
    return sum(end - start for start, end in sessions.items())


def public_record(record: dict) -> dict:
    return {key: record[key] for key in RECORD_KEYS}
