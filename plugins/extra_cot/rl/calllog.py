"""An opt-in JSONL record of the calls verl makes into our code (estimator, reward manager).

``EXTRA_COT_CALL_LOG=/path/calls.jsonl`` makes the verl adapters append one line per call,
from whichever process verl runs them in (the trainer actor, reward workers): proof that a real
``main_ppo`` run called *our* estimator and manager, and what they saw (tests, the demo's
per-step reward table). Unset, nothing is written. Lines are appended with one ``write`` each
(``O_APPEND``), so records of concurrent processes do not interleave within a line.

The per-step summary (:func:`step_summary`: ``chrpo/truncated_share``, ``chrpo/think_tokens_mean``)
is this log's, not verl's: verl 0.9.1 builds its training step metrics from a fixed field list and
never reads ``reward_extra_info`` there (docs/hosts.md, "verl 0.9.1": the truncated share). Once per
step the estimator (one call per step, in the trainer process) takes the reward records of its
batch's ``uid`` groups with :class:`RewardTail`, writes the summary into its own record and
logs it (:func:`log_step`, one INFO line per step).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from extra_cot.fileio import read_jsonl

#: Environment variable naming the JSONL file; unset = no record.
ENV = "EXTRA_COT_CALL_LOG"


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def record(kind: str, **fields: Any) -> None:
    """Append ``{"kind", "pid", "time", **fields}`` to the call log (no-op when it is off)."""
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"kind": kind, "pid": os.getpid(), "time": time.time(), **fields}, default=float)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read_calls(path: str | Path, kind: str | None = None) -> list[dict]:
    """The records of ``path`` (of one ``kind`` if given), in file order."""
    if not Path(path).is_file():
        return []
    return [row for _, row in read_jsonl(path) if kind is None or row.get("kind") == kind]


#: Keys of the per-step summary in the estimator's record (verl-style metric names).
TRUNCATED_SHARE = "chrpo/truncated_share"
THINK_TOKENS_MEAN = "chrpo/think_tokens_mean"
RESPONSES = "chrpo/responses"


def step_summary(rewards: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Share of responses cut off inside their think block, and mean think tokens, of one step.

    ``rewards``: the step's ``reward`` records (``truncated`` 1.0/0.0, ``think_tokens``); a record
    without ``think_tokens`` counts in the share only. No records: ``{}`` (nothing to report).
    """
    rows = list(rewards)
    if not rows:
        return {}
    think = [float(r["think_tokens"]) for r in rows if r.get("think_tokens") is not None]
    summary = {
        TRUNCATED_SHARE: sum(float(r.get("truncated") or 0.0) for r in rows) / len(rows),
        RESPONSES: float(len(rows)),
    }
    if think:
        summary[THINK_TOKENS_MEAN] = sum(think) / len(think)
    steps = [int(r["step"]) for r in rows if r.get("step") is not None]
    if steps:
        summary["step"] = float(max(steps))  # verl's global step of the samples (one value when sync)
    return summary


class RewardTail:
    """The ``reward`` records appended to a call log since the last read, handed out by ``uid``.

    Reads only the new complete lines each time (the log grows by one line per response), and
    keeps records not yet asked for (validation, or a later step's rollouts) up to ``keep`` uids.
    """

    def __init__(self, path: str | Path, keep: int = 65536):
        self.path, self.keep, self.offset = Path(path), keep, 0
        self.pending: OrderedDict[str, list[dict]] = OrderedDict()

    def _read_new(self) -> None:
        if not self.path.is_file():
            return
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written stays for the next read
        self.offset += end
        for line in chunk[:end].decode().splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("kind") == "reward" and row.get("uid") is not None:
                self.pending.setdefault(str(row["uid"]), []).append(row)
        while len(self.pending) > self.keep:
            self.pending.popitem(last=False)

    def take(self, uids: Iterable[Any]) -> list[dict]:
        """Remove and return the records of ``uids`` (each uid once, in file order per uid)."""
        self._read_new()
        return [row for uid in dict.fromkeys(map(str, uids)) for row in self.pending.pop(uid, [])]


_TAILS: dict[str, RewardTail] = {}


def step_metrics(uids: Iterable[Any] | None) -> dict[str, float]:
    """:func:`step_summary` of the reward records of ``uids`` (verl's ``uid`` column); ``{}`` when off."""
    path = os.environ.get(ENV)
    if not path or uids is None:
        return {}
    tail = _TAILS.setdefault(path, RewardTail(path))
    return step_summary(tail.take(uids))


#: Logger of the per-step line; it has its own stderr handler (see :func:`log_step`).
step_logger = logging.getLogger("extra_cot.rl.steps")


def log_step(summary: Mapping[str, float]) -> None:
    """One INFO line ``chrpo step N: truncated_share=... think_tokens_mean=... over K responses``.

    In the slow CPU run a line logged from the estimator through the root logger's handler did not
    reach the run's output (verl's own lines, whose logger has its own handler, did; cause not
    traced), so this logger gets its own stderr handler at first use, as verl does for ``verl``
    (``verl.utils.logging_utils.configure_verl_logging``).
    """
    if not summary:
        return
    if not step_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:%(asctime)s:%(message)s"))
        step_logger.addHandler(handler)
        step_logger.propagate = False
    step_logger.disabled = False
    step_logger.setLevel(os.getenv("EXTRA_COT_LOG_LEVEL", "INFO"))
    step_logger.info(
        "chrpo step %d: truncated_share=%.4f think_tokens_mean=%.1f over %d responses",
        int(summary.get("step", -1)), summary[TRUNCATED_SHARE],
        summary.get(THINK_TOKENS_MEAN, float("nan")), int(summary[RESPONSES]),
    )
