"""The ``"formatting": "extra_cot"`` dataset path in LLaMA-Factory 0.9.5 (host adapter).

LLaMA-Factory converts rows 1->1 (``align_dataset``), merges datasets, then tokenizes them
in batches with a ``DatasetProcessor``. One multi-ratio row must become N examples, so:

1. :class:`ExtraCotConverter` (registered with ``register_dataset_converter``) validates
   each row and puts *all* of its expansions into the aligned row: the i-th user turn of
   ``_prompt`` pairs with the i-th assistant turn of ``_response``, and ``_tools`` holds
   :data:`PACKED_MARK` so the rows cannot be mistaken for a multi-turn chat.
2. ``_get_dataset_processor`` (private; wrapped by :func:`install_processor`) returns
   subclasses of the stock supervised processors (plain and packed) that first explode
   marked rows into one example per pair, then run the stock tokenization unchanged.

Why the converter re-reads ``dataset_info.json``: ``DatasetAttr`` keeps only the keys the host
knows, so the ``"extra_cot"`` mixture settings of the entry never reach the converter. It finds
the entry of the datasets being loaded (``data_args.dataset``/``eval_dataset``) whose
``file_name`` is this dataset. The settings (and the policy selection) are stored as
attributes of the converter: the ``datasets`` cache fingerprint hashes the mapped callable, so
a changed mixture gives a new cache key instead of a stale cached result.

For local JSON/JSONL files the converter also scans the whole file, streamed
(:func:`extra_cot.sft.scan.scan_files`, memory measured by ``benchmarks/sft_data_bench.py
--memory``): bad rows are reported as ``file:line``, and the policy quotas are met exactly (they
need global counts). The file is parsed once per job, not per rank: LLaMA-Factory builds the
converter inside ``training_args.main_process_first(desc="load dataset")`` (``loader.get_dataset``),
so the main process scans first and writes the result to a cache file
(:func:`extra_cot.sft.scan.cached_scan`, under the ``datasets`` cache, next to the host's own map
cache); the other ranks, released by the host's barrier, read it. The converter adds no barrier of
its own: one inside the host's would pair with the wrong ``dist.barrier()`` call.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from llamafactory.data import loader as lf_loader
from llamafactory.data.converter import DatasetConverter
from llamafactory.data.processor import (
    PackedSupervisedDatasetProcessor,
    SupervisedDatasetProcessor,
    UnsupervisedDatasetProcessor,
)

from extra_cot.hostcheck import require_signature, require_version
from extra_cot.sft.mixture import (
    ENTRY_KEY,
    FORMATTING,
    BadRowError,
    MixtureConfig,
    expand_row,
    policy_key,
    validate_row,
)
from extra_cot.sft.scan import cached_scan

logger = logging.getLogger("llamafactory.extra_cot.processor")  # host's handler (see extra_cot.sft.plugin)
#: ``_tools`` value marking an aligned row that holds several single-turn examples.
PACKED_MARK = "__extra_cot_examples__"
_DATA_CONFIG = "dataset_info.json"  # llamafactory.extras.constants.DATA_CONFIG
#: Folder of the scan cache inside the ``datasets`` cache (``HF_DATASETS_CACHE``).
SCAN_CACHE = "extra_cot_scan"


#: keys of a dataset_info.json entry that become ``DatasetAttr.dataset_name`` (llamafactory.data.parser)
_SOURCE_KEYS = ("file_name", "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")


def find_mixture(data_args: Any, file_name: str) -> tuple[str, MixtureConfig]:
    """The (entry name, mixture) of the requested dataset entry whose source is ``file_name``."""
    info = data_args.dataset_dir
    if not isinstance(info, dict):
        if info == "ONLINE" or info.startswith("REMOTE:"):
            logger.warning("dataset_dir=%s: no local %s to read mixture settings from; using the paper defaults",
                           info, _DATA_CONFIG)
            return file_name, MixtureConfig()
        with open(os.path.join(info, _DATA_CONFIG), encoding="utf-8") as f:
            info = json.load(f)
    names = list(data_args.dataset or []) + list(data_args.eval_dataset or [])
    found = {
        name: info[name].get(ENTRY_KEY)
        for name in names
        if name in info and info[name].get("formatting") == FORMATTING
        and file_name in (info[name].get(key) for key in _SOURCE_KEYS)
    }
    if not found:
        logger.warning("no %s entry with formatting %r for %r; using the paper defaults", _DATA_CONFIG, FORMATTING,
                       file_name)
        return file_name, MixtureConfig()
    settings = {json.dumps(v, sort_keys=True) for v in found.values()}
    if len(settings) > 1:
        raise ValueError(f"entries {sorted(found)} share file {file_name!r} with different '{ENTRY_KEY}' settings; "
                         "give each mixture its own file")
    name = min(found)
    try:
        return name, MixtureConfig.from_dict(found[name])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{_DATA_CONFIG} entry {name!r}, key '{ENTRY_KEY}': {err}") from None


def _local_json_files(dataset_attr: Any, data_args: Any) -> list[str]:
    if dataset_attr.load_from != "file" or isinstance(data_args.dataset_dir, dict):
        return []
    path = os.path.join(data_args.dataset_dir, dataset_attr.dataset_name)
    files = [os.path.join(path, f) for f in sorted(os.listdir(path))] if os.path.isdir(path) else [path]
    return files if all(f.endswith((".json", ".jsonl")) for f in files) else []


@dataclass
class ExtraCotConverter(DatasetConverter):
    """1->1 converter packing a row's mixed-ratio examples into one aligned row."""

    entry: str = ""
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    # sorted tuples, not sets: the cache fingerprint pickles these, and set order varies by process
    policy_keep: tuple[str, ...] | None = None
    bad_rows: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.entry, self.mixture = find_mixture(self.data_args, self.dataset_attr.dataset_name)
        files = _local_json_files(self.dataset_attr, self.data_args)
        keep, self.bad_rows = cached_scan(files, self.mixture, self.entry, scan_cache_dir(), rescan=_rescan(self.data_args))
        if files:
            self.policy_keep = keep
        elif self.mixture.policy_quotas is not None:
            logger.warning("dataset %r is not a local JSON file: policy quotas cannot be counted, every row's "
                           "gt_ratio with a non-zero quota gets a policy example", self.entry)

    def __call__(self, example: dict[str, Any]) -> dict[str, Any]:
        examples = []
        example = dict(example)  # datasets hands a LazyRow
        key = policy_key(example)
        try:
            validate_row(example, f"dataset {self.entry!r} row with question {str(example.get('question'))[:60]!r}")
            keep = None if self.policy_keep is None else _contains(self.policy_keep, key)
            examples = expand_row(example, self.mixture, policy_keep=keep)
        except BadRowError as err:
            if self.mixture.on_bad_row == "error":
                raise
            # every row is checked: a good row may share its key (question, cot, answer, gt_ratio)
            # with a bad one; a bad row the scan reported (with its line) is not reported again
            if not _contains(self.bad_rows, key):
                logger.warning("skipping bad row (on_bad_row=skip): %s", err)
        return {
            "_prompt": [{"role": "user", "content": e.user} for e in examples],
            "_response": [{"role": "assistant", "content": e.response} for e in examples],
            "_system": examples[0].system if examples else "",
            "_tools": PACKED_MARK,
            "_images": None,
            "_videos": None,
            "_audios": None,
        }


def scan_cache_dir() -> str:
    """Where the main process leaves its scan for the other ranks: the ``datasets`` cache, which
    holds the host's map cache too (shared by the nodes when ``data_shared_file_system`` is set)."""
    from datasets import config

    return os.path.join(config.HF_DATASETS_CACHE, SCAN_CACHE)


def _rescan(data_args: Any) -> bool:
    """LLaMA-Factory's ``overwrite_cache``: the local main process recomputes, the others reuse."""
    return bool(getattr(data_args, "overwrite_cache", False)) and os.environ.get("LOCAL_RANK", "0") == "0"


def _contains(sorted_keys: tuple[str, ...], key: str) -> bool:
    i = bisect.bisect_left(sorted_keys, key)
    return i < len(sorted_keys) and sorted_keys[i] == key


def explode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """One row per (user, assistant) pair for marked rows; other rows pass unchanged."""
    out: dict[str, list[Any]] = {key: [] for key in batch}
    for i in range(len(batch["_prompt"])):
        if batch["_tools"][i] != PACKED_MARK:
            for key in batch:
                out[key].append(batch[key][i])
            continue
        for user, assistant in zip(batch["_prompt"][i], batch["_response"][i]):
            for key in batch:
                out[key].append(batch[key][i])
            out["_prompt"][-1], out["_response"][-1], out["_tools"][-1] = [user], [assistant], ""
    return out


class MemoEncode:
    """A tokenizer whose ``encode`` remembers its results (every other attribute is the tokenizer's).

    The examples of one row repeat strings: the system turn is the same in all of them, and the
    policy example's response is the response of its γ* example. Used for one batch at a time.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._memo: dict[tuple[str, bool], list[int]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def encode(self, text: Any, add_special_tokens: bool = True, **kwargs: Any) -> list[int]:
        if kwargs or not isinstance(text, str):
            return self._tokenizer.encode(text, add_special_tokens=add_special_tokens, **kwargs)
        key = (text, add_special_tokens)
        if key not in self._memo:
            self._memo[key] = self._tokenizer.encode(text, add_special_tokens=add_special_tokens)
        return list(self._memo[key])  # a copy: callers may extend it


@contextmanager
def memo_encode(processor: Any) -> Iterator[None]:
    """``processor.tokenizer`` wrapped in :class:`MemoEncode` for the duration of the block."""
    tokenizer = processor.tokenizer
    processor.tokenizer = MemoEncode(tokenizer)
    try:
        yield
    finally:
        processor.tokenizer = tokenizer


class _ExplodeFirst:
    """Mixin: expand marked rows, then let the stock processor tokenize them (a string repeated
    in the batch is tokenized once, :class:`MemoEncode`)."""

    def preprocess_dataset(self, examples: dict[str, list[Any]]) -> dict[str, list[Any]]:
        with memo_encode(self):
            return super().preprocess_dataset(explode(examples))


@dataclass
class ExtraCotSupervisedDatasetProcessor(_ExplodeFirst, SupervisedDatasetProcessor):
    """Stock supervised processor on exploded rows."""


@dataclass
class ExtraCotPackedSupervisedDatasetProcessor(_ExplodeFirst, PackedSupervisedDatasetProcessor):
    """Stock packed processor on exploded rows (examples from one row may share a pack)."""


@dataclass
class ExtraCotUnsupervisedDatasetProcessor(_ExplodeFirst, UnsupervisedDatasetProcessor):
    """Stock processor for ``predict_with_generate`` evaluation on exploded rows."""


#: Parameters of the private ``_get_dataset_processor`` in LLaMA-Factory 0.9.5 (the wrapper passes them on).
WRAPPED_PARAMS = ("data_args", "stage", "template", "tokenizer", "processor", "do_generate")

#: stock processor class -> ours (exact type match: other stages are left alone).
EXPANDING = {
    SupervisedDatasetProcessor: ExtraCotSupervisedDatasetProcessor,
    PackedSupervisedDatasetProcessor: ExtraCotPackedSupervisedDatasetProcessor,
    UnsupervisedDatasetProcessor: ExtraCotUnsupervisedDatasetProcessor,
}


def install_processor() -> bool:
    """Wrap ``llamafactory.data.loader._get_dataset_processor`` once; True when done by this call."""
    original = lf_loader._get_dataset_processor
    if getattr(original, "__extra_cot__", False):
        return False
    what = "extra-cot's 1->N SFT processor (wraps llamafactory.data.loader._get_dataset_processor)"
    require_version("llamafactory", None, what)
    require_signature(original, WRAPPED_PARAMS, what)

    def _get_dataset_processor(data_args, stage, template, tokenizer, processor, do_generate=False):
        stock = original(data_args, stage, template, tokenizer, processor, do_generate=do_generate)
        ours = EXPANDING.get(type(stock))
        if ours is None:
            return stock
        return ours(template=template, tokenizer=tokenizer, processor=processor, data_args=data_args)

    _get_dataset_processor.__extra_cot__ = True
    _get_dataset_processor.__wrapped__ = original
    lf_loader._get_dataset_processor = _get_dataset_processor
    return True


def install_converter() -> bool:
    """Register the ``extra_cot`` converter once; True when done by this call."""
    from llamafactory.data import converter as lf_converter

    if FORMATTING in lf_converter.DATASET_CONVERTERS:
        return False
    lf_converter.register_dataset_converter(FORMATTING, ExtraCotConverter)
    return True
