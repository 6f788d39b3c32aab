"""``extra-cot compress`` and ``extra-cot build-sft`` end to end (tiny tokenizer, real files)."""

from __future__ import annotations

import json

import pytest

from extra_cot.cli import main as cli_main

from .conftest import GSM8K_ROWS


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


RESPONSES = [
    {"question": "What is 2 + 3 times 4?", "gold": "14",
     "response": "<think>\nFirst multiply: 3 * 4 = 12. Then add: 2 + 12 = 14. So the result is 14.</think>\n\n"
                 "The answer is \\boxed{14}."},
    {"question": "What is 5 * 5?", "gold": "25",
     "response": "<think>\nWell 5 * 5 = 20 obviously.</think>\n\nThe answer is \\boxed{20}."},
    {"question": "What is 1 + 1?", "gold": "2", "response": "<think>\n1 + 1 = 2 and then I never stop"},
]


def test_compress_gsm8k_resumable(tmp_path, tiny_model_dir, capsys):
    inp, out = _write(tmp_path / "in.jsonl", GSM8K_ROWS), tmp_path / "out" / "c.jsonl"
    argv = ["compress", "--input", str(inp), "--output", str(out), "--input-format", "gsm8k",
            "--scorer", "heuristic", "--tokenizer", str(tiny_model_dir)]
    assert cli_main(argv + ["--limit", "2"]) == 0
    assert len(_read(out)) == 2
    with open(out, "a", encoding="utf-8") as fh:  # a torn write from a crash
        fh.write('{"key": "torn')
    assert cli_main(argv) == 0
    rows = _read(out)
    assert len(rows) == 3 and len({r["key"] for r in rows}) == 3
    assert "already_done" in capsys.readouterr().out
    for row in rows:
        assert row["answer"].endswith("}$.") and "\\boxed{" in row["answer"]
        for key, realized in row["realized"].items():
            assert abs(realized - float(key)) <= 0.05
    config = json.loads((tmp_path / "out" / "c.jsonl.config.json").read_text())
    assert config["compress"]["ratios"] == [0.2, 0.4, 0.6, 0.8]


def test_compress_responses_drops_wrong_and_unclosed(tmp_path, tiny_model_dir):
    inp, out = _write(tmp_path / "in.jsonl", RESPONSES), tmp_path / "c.jsonl"
    argv = ["compress", "--input", str(inp), "--output", str(out), "--scorer", "lm",
            "--scorer-model", str(tiny_model_dir), "--tokenizer", str(tiny_model_dir), "--ratios", "0.4,0.8"]
    assert cli_main(argv) == 0
    rows, skipped = _read(out), _read(tmp_path / "c.jsonl.skipped.jsonl")
    assert [r["question"] for r in rows] == [RESPONSES[0]["question"]]
    assert rows[0]["answer"] == "The answer is \\boxed{14}."
    assert sorted(s["reason"] for s in skipped) == ["no_closed_think", "wrong_answer"]
    assert cli_main(argv) == 0 and len(_read(out)) == 1  # rerun: nothing new, skips remembered


def test_compress_bad_input_names_file_and_row(tmp_path, tiny_model_dir, caplog):
    inp = _write(tmp_path / "in.jsonl", [GSM8K_ROWS[0], {"question": "q", "answer": "no final line"}])
    argv = ["compress", "--input", str(inp), "--output", str(tmp_path / "o.jsonl"), "--input-format", "gsm8k",
            "--scorer", "heuristic", "--tokenizer", str(tiny_model_dir)]
    assert cli_main(argv) == 2
    assert f"{inp}:2" in caplog.text and "####" in caplog.text


def test_build_sft_rows_info_and_table(tmp_path, tiny_model_dir, capsys):
    from extra_cot.sft.mixture import validate_row

    inp, out = _write(tmp_path / "in.jsonl", GSM8K_ROWS), tmp_path / "c.jsonl"
    assert cli_main(["compress", "--input", str(inp), "--output", str(out), "--input-format", "gsm8k",
                     "--scorer", "heuristic", "--tokenizer", str(tiny_model_dir)]) == 0
    compressed = _read(out)
    policy = _write(tmp_path / "gt.jsonl", [{"question": compressed[0]["question"], "gt_ratio": 0.6},
                                            {"question": compressed[1]["question"], "gt_ratio": 1.0}])
    sft_dir = tmp_path / "sft"
    (sft_dir).mkdir()
    (sft_dir / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "x.json"}}))
    assert cli_main(["build-sft", "--input", str(out), "--output-dir", str(sft_dir), "--name", "mix",
                     "--policy-ratios", str(policy), "--tokenizer", str(tiny_model_dir)]) == 0
    rows = _read(sft_dir / "mix.jsonl")
    assert len(rows) == 3
    for n, row in enumerate(rows):
        validate_row(row, f"mix.jsonl row {n}")
        assert set(row) <= {"question", "cot", "answer", "compressed", "gt_ratio"}
    assert rows[0]["gt_ratio"] == 0.6 and rows[1]["gt_ratio"] == 1.0 and "gt_ratio" not in rows[2]
    info = json.loads((sft_dir / "dataset_info.json").read_text())
    assert info["other"] == {"file_name": "x.json"}
    assert info["mix"]["file_name"] == "mix.jsonl" and info["mix"]["formatting"] == "extra_cot"
    table = capsys.readouterr().out
    assert "bucket" in table and "realized" in table
    saved = json.loads((sft_dir / "mix.build_sft.json").read_text())
    assert [t["bucket"] for t in saved["table"]] == ["0.2", "0.4", "0.6", "0.8", "1"]
    assert saved["table"][-1]["rows"] == 3


@pytest.mark.parametrize("share", [None, 0.0, 1.0])
def test_build_sft_untagged_share_reaches_the_processor(tmp_path, tiny_model_dir, share):
    """--untagged-share lands in the dataset entry, and the mixture read back from it tags every
    1.0 example (0), none (1) or the paper's half by default."""
    from extra_cot.sft.mixture import ENTRY_KEY, MixtureConfig, expand_row

    inp, out = _write(tmp_path / "in.jsonl", GSM8K_ROWS), tmp_path / "c.jsonl"
    assert cli_main(["compress", "--input", str(inp), "--output", str(out), "--input-format", "gsm8k",
                     "--scorer", "heuristic", "--tokenizer", str(tiny_model_dir)]) == 0
    argv = ["build-sft", "--input", str(out), "--output-dir", str(tmp_path / "sft"), "--name", "mix",
            "--tokenizer", str(tiny_model_dir)] + ([] if share is None else ["--untagged-share", str(share)])
    assert cli_main(argv) == 0
    entry = json.loads((tmp_path / "sft" / "dataset_info.json").read_text())["mix"][ENTRY_KEY]
    mixture = MixtureConfig.from_dict(entry)
    assert mixture.untagged_share == (0.5 if share is None else share)
    rows = [dict(r, cot=f"{r['cot']} variant {n}") for n in range(40) for r in _read(tmp_path / "sft" / "mix.jsonl")]
    full = [e for r in rows for e in expand_row(r, mixture) if r["cot"] in e.response]
    untagged = sum(e.control is None for e in full)
    if share is None:
        assert 0.3 * len(full) < untagged < 0.7 * len(full)
    else:
        assert untagged == round(share * len(full))


@pytest.mark.parametrize("share", ["0.5", "0.8", "method"])
def test_build_sft_policy_share_sets_the_repeat_nearest_the_share(tmp_path, tiny_model_dir, share):
    """--policy-share picks the policy_repeat whose expanded data comes nearest the share (counted
    here from the examples the processor's mixture makes, for repeats around the chosen one)."""
    from extra_cot.sft.mixture import ENTRY_KEY, PAPER_POLICY_SHARE, MixtureConfig, expand_row

    inp, out = _write(tmp_path / "in.jsonl", GSM8K_ROWS), tmp_path / "c.jsonl"
    assert cli_main(["compress", "--input", str(inp), "--output", str(out), "--input-format", "gsm8k",
                     "--scorer", "heuristic", "--tokenizer", str(tiny_model_dir)]) == 0
    policy = _write(tmp_path / "gt.jsonl", [{"question": _read(out)[0]["question"], "gt_ratio": 1.0}])
    assert cli_main(["build-sft", "--input", str(out), "--output-dir", str(tmp_path / "sft"), "--name", "mix",
                     "--policy-ratios", str(policy), "--policy-quotas", "none", "--policy-share", share,
                     "--tokenizer", str(tiny_model_dir)]) == 0
    mixture = MixtureConfig.from_dict(json.loads((tmp_path / "sft" / "dataset_info.json").read_text())["mix"][ENTRY_KEY])
    rows = _read(tmp_path / "sft" / "mix.jsonl")
    target = PAPER_POLICY_SHARE if share == "method" else float(share)

    def miss(repeat):
        controls = [e.control for r in rows
                    for e in expand_row(r, MixtureConfig.from_dict({**mixture.to_dict(), "policy_repeat": repeat}))]
        return abs(controls.count("<COMP_AUTO>") / len(controls) - target)

    k = mixture.policy_repeat
    assert miss(k) <= min(miss(k + 1), miss(max(1, k - 1)))
    assert k == {"0.5": 14, "0.8": 56, "method": 3}[share]  # 3 rows x 5 ratios less one 0.2 off its bucket
    saved = json.loads((tmp_path / "sft" / "mix.build_sft.json").read_text())["stats"]
    assert saved["policy_repeat"] == k and saved["policy_examples"] == 1


def test_build_sft_policy_share_and_repeat_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(["build-sft", "--input", "x", "--output-dir", str(tmp_path), "--policy-share", "0.2",
                  "--policy-repeat", "2"])
    assert "not allowed with" in capsys.readouterr().err


@pytest.mark.parametrize("shards", ["dir", "glob"])
def test_build_sft_reads_sharded_compress_output(tmp_path, tiny_model_dir, shards):
    inp, out = _write(tmp_path / "in.jsonl", GSM8K_ROWS), tmp_path / "c.jsonl"
    assert cli_main(["compress", "--input", str(inp), "--output", str(out), "--input-format", "gsm8k",
                     "--scorer", "heuristic", "--tokenizer", str(tiny_model_dir)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "part-0.jsonl").write_text("".join(lines[:2]), encoding="utf-8")
    (parts / "part-1.jsonl").write_text("".join(lines[2:]), encoding="utf-8")
    (parts / "part-0.jsonl.skipped.jsonl").write_text('{"key": "k", "line": 9, "reason": "empty_cot"}\n')
    spec = str(parts) if shards == "dir" else f"{parts}/part-*.jsonl"
    for source, name in ((str(out), "whole"), (spec, "sharded")):
        assert cli_main(["build-sft", "--input", source, "--output-dir", str(tmp_path / "sft"), "--name", name,
                         "--tokenizer", str(tiny_model_dir)]) == 0
    whole, sharded = _read(tmp_path / "sft" / "whole.jsonl"), _read(tmp_path / "sft" / "sharded.jsonl")
    assert len(whole) == len(GSM8K_ROWS) and sharded == whole


def test_label_reads_a_glob_of_parts(tmp_path, tiny_model_dir):
    import threading
    from http.server import ThreadingHTTPServer

    from .test_compress_label import _Teacher

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Teacher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        for n, row in enumerate(GSM8K_ROWS):
            _write(tmp_path / f"in-{n}.jsonl", [row])
        labels = tmp_path / "labels.jsonl"
        assert cli_main(["label", "--input", f"{tmp_path}/in-*.jsonl", "--output", str(labels), "--input-format",
                         "gsm8k", "--base-url", url, "--model", "teacher", "--retries", "1",
                         "--tokenizer", str(tiny_model_dir)]) == 0
    finally:
        server.shutdown()
        server.server_close()
    done = _read(labels) + _read(tmp_path / "labels.jsonl.skipped.jsonl")
    assert len(done) == len(GSM8K_ROWS) and len({r["key"] for r in done}) == len(GSM8K_ROWS)


def test_build_sft_rejects_bad_policy_ratio(tmp_path, tiny_model_dir, caplog):
    out = _write(tmp_path / "c.jsonl", [])
    policy = tmp_path / "gt.json"
    policy.write_text(json.dumps({"some question": 0.3}))
    assert cli_main(["build-sft", "--input", str(out), "--output-dir", str(tmp_path / "d"),
                     "--policy-ratios", str(policy), "--tokenizer", str(tiny_model_dir)]) == 2
    assert "0.3" in caplog.text


@pytest.mark.parametrize("cmd", ["compress", "build-sft", "label", "train-compressor"])
def test_help_has_examples(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main([cmd, "--help"])
    assert exc.value.code == 0
    assert f"extra-cot {cmd}" in capsys.readouterr().out


def test_scorer_device_auto_is_resolved_in_the_worker():
    import torch

    from extra_cot.compress.rows import resolve_device
    from extra_cot.compress.scorers import ScorerOptions

    assert resolve_device(ScorerOptions(name="heuristic", device="auto")).device == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(ScorerOptions(name="lm", device="auto")).device == expected
    assert resolve_device(ScorerOptions(name="lm", device="cuda:1")).device == "cuda:1"


@pytest.mark.parametrize("change", [["--ratios", "0.2,0.4"], ["--tolerance", "0.1"], ["--formula-bonus", "2"]])
def test_compress_refuses_to_resume_into_an_output_with_other_options(tmp_path, tiny_model_dir, caplog, change):
    inp, out = _write(tmp_path / "in.jsonl", GSM8K_ROWS), tmp_path / "c.jsonl"
    argv = ["compress", "--input", str(inp), "--output", str(out), "--input-format", "gsm8k",
            "--scorer", "heuristic", "--tokenizer", str(tiny_model_dir)]
    assert cli_main(argv + ["--limit", "1"]) == 0
    before = out.read_text(), (tmp_path / "c.jsonl.config.json").read_text()
    assert cli_main(argv + change) == 2
    assert "was written with" in caplog.text and "another --output" in caplog.text and change[0][2:].replace("-", "_") in caplog.text
    assert (out.read_text(), (tmp_path / "c.jsonl.config.json").read_text()) == before  # nothing mixed or overwritten
    assert cli_main(argv + ["--device", "cpu"]) == 0  # where it runs is not an output option
    assert len(_read(out)) == 3


def test_compress_checks_a_config_written_before_output_options_existed(tmp_path, tiny_model_dir, caplog):
    inp, out = _write(tmp_path / "in.jsonl", GSM8K_ROWS), tmp_path / "c.jsonl"
    argv = ["compress", "--input", str(inp), "--output", str(out), "--input-format", "gsm8k",
            "--scorer", "heuristic", "--tokenizer", str(tiny_model_dir), "--limit", "1"]
    assert cli_main(argv) == 0
    config = tmp_path / "c.jsonl.config.json"
    config.write_text(json.dumps({k: v for k, v in json.loads(config.read_text()).items() if k != "output_options"}))
    assert cli_main(argv) == 0  # same options: resumes
    assert cli_main(argv + ["--ratios", "0.2"]) == 2
