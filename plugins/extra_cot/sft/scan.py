"""The converter's whole-file scan, streamed and host-free: validate each row (``file:line``
errors) and select the policy rows by the quotas, which need global counts. One record in memory
at a time, plus :class:`~extra_cot.sft.mixture.PolicySelection`'s two floats per ``gt_ratio`` row.

One scan per job (:func:`cached_scan`): the first process to need it scans and writes the result
to a cache file keyed by the files (path, size, mtime, inode), the mixture options and this code;
every later process (the other ranks, which LLaMA-Factory holds back until the main process has
loaded the data) reads it instead of parsing the file again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from extra_cot import quotas
from extra_cot.fileio import atomic_write_json, read_records
from extra_cot.sft import mixture as mixture_module
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


ScanResult = tuple[tuple[str, ...], tuple[str, ...]]


def scan_key(files: Sequence[str], mixture: MixtureConfig, entry: str) -> str:
    """Cache key of a scan: the files' identity and state, the options, and the code that scans.

    The code's own bytes are part of it so that a changed selection rule (an upgrade or an
    editable checkout) never serves a result the current code would not compute.
    """
    stats = []
    for path in files:
        st = os.stat(path)
        stats.append([os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino])
    code = hashlib.sha256()
    for module in (mixture_module, quotas):
        code.update(Path(module.__file__).read_bytes())
    code.update(Path(__file__).read_bytes())
    payload = {"files": stats, "mixture": mixture.to_dict(), "entry": entry, "code": code.hexdigest()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def cached_scan(files: Sequence[str], mixture: MixtureConfig, entry: str, cache_dir: str | Path,
                rescan: bool = False) -> ScanResult:
    """:func:`scan_files`, run once: read the result from ``cache_dir`` when a process already
    scanned these files with these options, else scan and write it there (atomically).

    ``rescan`` ignores an existing result (LLaMA-Factory's ``overwrite_cache`` on the main process).
    """
    if not files:
        return scan_files(files, mixture, entry)
    path = Path(cache_dir) / f"{scan_key(files, mixture, entry)}.json"
    if not rescan and (hit := _read_scan(path)) is not None:
        logger.info("dataset %r: scan of %s read from %s (written by the process that parsed it)",
                    entry, ", ".join(files), path)
        return hit
    keep, bad = scan_files(files, mixture, entry)
    try:
        atomic_write_json(path, {"files": list(files), "entry": entry, "policy_keep": keep, "bad_rows": bad})
    except OSError as err:
        logger.warning("dataset %r: cannot write the scan cache %s (%s): every rank will parse %s itself",
                       entry, path, err, ", ".join(files))
    return keep, bad


def _read_scan(path: Path) -> ScanResult | None:
    """The cached result at ``path``; None when absent or unreadable (then the caller scans)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return tuple(data["policy_keep"]), tuple(data["bad_rows"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("ignoring the unreadable scan cache %s (%s): scanning again", path, err)
        return None
