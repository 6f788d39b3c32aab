"""``"formatting": "extra_cot"`` through LLaMA-Factory's real data pipeline (in-process).

Each test calls the host's own ``get_train_args`` / ``load_tokenizer`` / ``get_dataset``.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("llamafactory")

from extra_cot.sft.mixture import BadRowError, MixtureConfig, expand_row, policy_key, select_policy_rows


@pytest.fixture
def skip_warnings():
    """Messages of the "skipping bad row" warnings. Captured on LLaMA-Factory's logger itself: the
    host's logging setup stops its records from propagating to the root logger (and caplog)."""
    import logging

    records: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    host = logging.getLogger("llamafactory")
    host.addHandler(handler)
    yield lambda: [m for m in records if "skipping bad row" in m]
    host.removeHandler(handler)


def _expected(rows, mixture):
    keep = select_policy_rows(rows, mixture)
    return [e for r in rows for e in expand_row(r, mixture, policy_key(r) in keep)]


def test_expansion_counts_and_contents(sft, tiny_model_dir, tmp_path, sft_rows):
    data = sft.write_dataset(tmp_path / "data", sft_rows)
    dataset, tokenizer = sft.lf_train_dataset(tiny_model_dir, data, tmp_path / "out")
    expected = _expected(sft_rows, MixtureConfig())
    # 4 rows x 5 ratios with one missing; of the 3 gt_ratio rows the paper quotas keep 2
    # (shares renormalised over 0.2/0.4/1.0: the 0.4 row binds at 2 rows -> 0.2: 1, 0.4: 1, 1.0: 0)
    assert len(dataset) == len(expected) == 4 * 5 - 1 + 2
    texts = sft.decode_examples(dataset, tokenizer)
    for (full, trained), e in zip(texts, expected):
        assert full.startswith(f"<|im_start|>system\n{e.system}<|im_end|>\n<|im_start|>user\n{e.user}<|im_end|>\n")
        assert trained == e.response + "<|im_end|>\n"  # only the response is trained on
    controls = [e.control for e in expected]
    assert controls.count("<COMP_AUTO>") == 2 and controls.count("<COMP_20>") == 3
    # the policy example of row 0 asks <COMP_AUTO> and answers with its γ* token 0.2
    auto = [t for (f, t) in texts if "<COMP_AUTO><|im_end|>" in f]
    assert auto[0].startswith("<COMP_20>\n<think>\nr0.2 reasoning 0</think>")


def test_packed_variant_keeps_every_example(sft, tiny_model_dir, tmp_path, sft_rows):
    data = sft.write_dataset(tmp_path / "data", sft_rows)
    dataset, tokenizer = sft.lf_train_dataset(tiny_model_dir, data, tmp_path / "out", packing=True, cutoff_len=512)
    expected = _expected(sft_rows, MixtureConfig())
    assert len(dataset) < len(expected)  # packed several per sequence
    trained = "".join(t for _, t in sft.decode_examples(dataset, tokenizer))
    for e in expected:
        assert e.response + "<|im_end|>\n" in trained
    assert trained.count("<|im_end|>") == len(expected)


def test_mixture_settings_come_from_the_entry_and_are_not_served_stale(sft, tiny_model_dir, tmp_path, sft_rows):
    data = sft.write_dataset(tmp_path / "data", sft_rows, {"ratios": [0.2, 1.0], "untagged_share": 1.0})
    first, _ = sft.lf_train_dataset(tiny_model_dir, data, tmp_path / "out")
    assert len(first) == 3 + 4 + 2  # 0.2 where available, 1.0 for all, policy rows
    sft.write_dataset(tmp_path / "data", sft_rows, {"ratios": [0.4], "policy_quotas": None})
    second, tokenizer = sft.lf_train_dataset(tiny_model_dir, data, tmp_path / "out")  # same file, cache on
    assert len(second) == 4 + 3
    assert all("<COMP_20><|im_end|>" not in full for full, _ in sft.decode_examples(second, tokenizer))
    sft.write_dataset(tmp_path / "data", sft_rows, {"ratios": [0.4], "policy_quotas": None, "policy_repeat": 2})
    third, tokenizer = sft.lf_train_dataset(tiny_model_dir, data, tmp_path / "out")
    assert len(third) == 4 + 3 * 2
    assert sum("<COMP_AUTO><|im_end|>" in full for full, _ in sft.decode_examples(third, tokenizer)) == 3 * 2


def test_bad_row_error_names_file_line_field(sft, tiny_model_dir, tmp_path, sft_rows):
    bad = dict(sft_rows[1], answer="no box here")
    data = sft.write_dataset(tmp_path / "data", [sft_rows[0], bad])
    with pytest.raises(BadRowError, match=r"mix\.jsonl:2, field 'answer'"):
        sft.lf_train_dataset(tiny_model_dir, data, tmp_path / "out")


def test_bad_rows_skipped_with_logged_reason(sft, tiny_model_dir, tmp_path, sft_rows, skip_warnings):
    lines = [json.dumps(sft_rows[0]), json.dumps({k: v for k, v in sft_rows[1].items() if k != "cot"}),
             json.dumps(dict(sft_rows[2], compressed={"0.5": "x"}))]
    data = sft.write_dataset(tmp_path / "data", [], {"on_bad_row": "skip"}, raw_lines=lines)
    dataset, _ = sft.lf_train_dataset(tiny_model_dir, data, tmp_path / "out")
    assert len(dataset) == len(_expected([sft_rows[0]], MixtureConfig()))
    reasons = skip_warnings()
    assert any("mix.jsonl:2, field 'cot'" in m for m in reasons), reasons
    assert any("'compressed.0.5'" in m for m in reasons)


def test_skip_drops_only_the_bad_row_not_good_rows_sharing_its_key(sft, tiny_model_dir, tmp_path, sft_rows,
                                                                    skip_warnings):
    """A bad row with the same question, cot, answer and gt_ratio as a good one (the policy key)
    is skipped alone: the good row keeps all its examples, and the bad one is reported once."""
    bad_twin = dict(sft_rows[0], compressed={**sft_rows[0]["compressed"], "0.5": "x"})
    lines = [json.dumps(bad_twin), json.dumps(sft_rows[0]), json.dumps(sft_rows[1])]
    data = sft.write_dataset(tmp_path / "data", [], {"on_bad_row": "skip"}, raw_lines=lines)
    dataset, _ = sft.lf_train_dataset(tiny_model_dir, data, tmp_path / "out")
    assert len(dataset) == len(_expected(sft_rows[:2], MixtureConfig()))
    reasons = skip_warnings()
    assert len(reasons) == 1 and "mix.jsonl:1, field 'compressed.0.5'" in reasons[0], reasons


def test_other_formattings_pass_through(sft, tiny_model_dir, tmp_path, sft_rows):
    data = sft.write_dataset(tmp_path / "data", sft_rows)
    (data / "plain.json").write_text(json.dumps([{"instruction": "hi", "input": "", "output": "hello"}]))
    info = json.loads((data / "dataset_info.json").read_text())
    info["plain"] = {"file_name": "plain.json"}
    (data / "dataset_info.json").write_text(json.dumps(info))
    dataset, tokenizer = sft.lf_train_dataset(tiny_model_dir, data, tmp_path / "out", dataset="mix,plain")
    texts = sft.decode_examples(dataset, tokenizer)
    assert len(texts) == len(_expected(sft_rows, MixtureConfig())) + 1
    assert texts[-1][1].endswith("hello<|im_end|>\n")


def test_converter_scan_is_streamed_and_selects_like_the_list_selection(sft, tmp_path):
    """The main process scans the whole file: its memory must not grow with the file (issue 13)."""
    import tracemalloc

    from llamafactory.data.parser import DatasetAttr
    from llamafactory.hparams import DataArguments

    from extra_cot.sft.processor import ExtraCotConverter

    rows = [sft.make_row(i, (0.2, 0.4, 0.6, 0.8, 1.0)[i % 5] if i % 3 else None) for i in range(4000)]
    for row in rows:
        row["cot"] += " padding" * 300  # ~2.5 kB a row, ~10 MB in all
    data = sft.write_dataset(tmp_path / "data", rows)
    size = (data / "mix.jsonl").stat().st_size
    args = DataArguments(template="qwen3_comp", dataset="mix", dataset_dir=str(data))
    tracemalloc.start()
    converter = ExtraCotConverter(DatasetAttr("file", dataset_name="mix.jsonl"), args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert size > 8e6 and peak < size / 8, (size, peak)  # the old whole-file scan peaked above the file size
    assert set(converter.policy_keep) == select_policy_rows(rows, MixtureConfig())


def test_small_batches_and_the_encode_memo_give_the_same_tokens(sft, tiny_model_dir, tmp_path, sft_rows):
    """The per-batch encode memo gives the same tokens whatever the batching."""
    data = sft.write_dataset(tmp_path / "data", sft_rows)
    whole, _ = sft.lf_train_dataset(tiny_model_dir, data, tmp_path / "out")
    cut, _ = sft.lf_train_dataset(tiny_model_dir, data, tmp_path / "out2", preprocessing_batch_size=2,
                                  overwrite_cache=True)
    assert len(cut) == len(whole) == len(_expected(sft_rows, MixtureConfig()))
    assert [(e["input_ids"], e["labels"]) for e in cut] == [(e["input_ids"], e["labels"]) for e in whole]


def test_encode_memo_hands_out_copies_and_encodes_a_string_once(tiny_tokenizer):
    from extra_cot.sft.processor import MemoEncode

    calls = []

    class Counting:
        def encode(self, text, add_special_tokens=True):
            calls.append(text)
            return tiny_tokenizer.encode(text, add_special_tokens=add_special_tokens)

    memo = MemoEncode(Counting())
    first = memo.encode("the same system turn", add_special_tokens=False)
    first.append(-1)  # the template extends what it gets
    again = memo.encode("the same system turn", add_special_tokens=False)
    assert again == tiny_tokenizer.encode("the same system turn", add_special_tokens=False) and -1 not in again
    assert calls == ["the same system turn"]
    assert memo.encode("other", add_special_tokens=False) and len(calls) == 2


def test_build_sft_cutoff_count_matches_the_examples_llamafactory_tokenizes(sft, tiny_model_dir, tmp_path, sft_rows):
    """build-sft's --cutoff-len counts a row's longest example as LLaMA-Factory's qwen3_comp renders
    it: the count equals the longest input_ids the host makes of that row (no truncation here)."""
    from transformers import AutoTokenizer

    from extra_cot.compress.build_sft import longest_example, think_token_counts

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))

    def encode_len(text):
        return len(tokenizer.encode(text, add_special_tokens=False))

    for row in (sft_rows[0], sft_rows[3]):
        data = sft.write_dataset(tmp_path / f"data{row['gt_ratio']}", [row])
        dataset, _ = sft.lf_train_dataset(tiny_model_dir, data, tmp_path / "out", cutoff_len=4096)
        host = max(len(ex["input_ids"]) for ex in dataset)
        counts = think_token_counts(row, encode_len)
        assert longest_example(row, MixtureConfig(), encode_len, counts, cutoff=0) == host
        assert longest_example(row, MixtureConfig(), encode_len, counts, cutoff=host) == host
