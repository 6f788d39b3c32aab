"""The converter's whole-file scan, streamed and host-free (every rank runs it, so its memory
must not grow with the file): validate each row (``file:line`` errors) and select the policy
rows by the quotas, which need global counts. One record in memory at a time, plus
:class:`~extra_cot.sft.mixture.PolicySelection`'s two floats per ``gt_ratio`` row."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from extra_cot.fileio import read_records
from extra_cot.sft.mixture import BadRowError, MixtureConfig, PolicySelection, policy_key, validate_row

logger = logging.getLogger("llamafactory.extra_cot.scan")  # the host's handler (see extra_cot.sft.plugin)


def scan_files(files: Iterable[str], mixture: MixtureConfig, entry: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(policy_keep, bad_rows)``: sorted keys of the rows that get a policy example, and of the
    rows skipped as bad (``on_bad_row: skip``; ``"error"`` raises naming ``file:line``).

    Sorted tuples, not sets: the ``datasets`` cache fingerprint pickles them, and set order
    varies between processes.
    """
    selection, bad = PolicySelection(mixture), set()
    for path in files:
        for n, row in read_records(path):
            try:
                validate_row(row, f"dataset {entry!r}: {path}:{n}")
                selection.add(row)
            except BadRowError as err:
                if mixture.on_bad_row == "error":
                    raise
                logger.warning("skipping bad row (on_bad_row=skip): %s", err)
                bad.add(policy_key(row) if isinstance(row, dict) else f"{path}:{n}")
    return tuple(sorted(selection.chosen())), tuple(sorted(bad))
