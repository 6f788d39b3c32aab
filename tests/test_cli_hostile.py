"""Every data CLI over a hostile corpus (issue 37): each case ends in exit status 2 and one line that
names the file, the row and the field (or the path and the cause), or in a logged skip; nothing is
coerced, nothing half-written is registered, no input is overwritten.

The CLIs run in-process through ``extra_cot.cli.main`` (a traceback would fail the test), one in a
subprocess to see exactly what a user sees. The tiny tokenizer of ``tests/conftest.py``; no model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from extra_cot.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
GSM8K = [
    {"question": "Tom has 48 apples and gives half away. How many does he keep?",
     "answer": "He gives 48/2 = 24 apples away.\nSo he keeps 48 - 24 = 24 apples.\n#### 24"},
    {"question": "A pen costs $3 and a book 4 times as much. What does a book cost?",
     "answer": "A book costs 3 * 4 = 12 dollars.\n#### 12"},
]
RESPONSE = {"question": "What is 2 + 3?", "gold": "5",
            "response": "<think>\n2 + 3 = 5, so the sum is 5.</think>\n\nThe answer is \\boxed{5}."}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _one_error(caplog) -> str:
    """The single ERROR line a failed Stage 1 command logged."""
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    return errors[0]


# ---- extra-cot compress ------------------------------------------------------------------------


@pytest.fixture
def compress(tmp_path, tiny_model_dir):
    def run(inp, out=None, *extra, fmt="gsm8k"):
        out = tmp_path / "out" / "c.jsonl" if out is None else out
        return cli_main(["compress", "--input", str(inp), "--output", str(out), "--input-format", fmt,
                         "--scorer", "heuristic", "--tokenizer", str(tiny_model_dir), *extra])
    return run


def _bad_line(tmp_path, line: bytes):
    path = tmp_path / "in.jsonl"
    path.write_bytes(json.dumps(GSM8K[0]).encode() + b"\n" + line + b"\n")
    return path


@pytest.mark.parametrize(("line", "needles"), [
    (b"{not json", [":2:", "not JSON"]),
    (b'{"question": "caf\xe9", "answer": "x #### 1"}', [":2:", "not UTF-8"]),
    (b"[1, 2]", [":2:", "expected a JSON object"]),
    (json.dumps({"question": 7, "answer": "x #### 1"}).encode(), [":2:", "'question'"]),
    (json.dumps({"question": "q", "answer": ["x #### 1"]}).encode(), [":2:", "'answer'"]),
])
def test_compress_refuses_a_bad_line_naming_file_and_line(tmp_path, compress, caplog, line, needles):
    inp = _bad_line(tmp_path, line)
    assert compress(inp) == 2
    message = _one_error(caplog)
    assert str(inp) in message and all(n in message for n in needles), message


@pytest.mark.parametrize(("gold", "needle"), [
    (None, "null"), ("", "non-empty"), ("  ", "non-empty"), ([5], "list"), ({"v": 5}, "dict"), (True, "bool")])
def test_compress_refuses_a_missing_empty_or_non_scalar_gold(tmp_path, compress, caplog, gold, needle):
    row = {k: v for k, v in RESPONSE.items() if k != "gold" or gold is not None}
    if gold is not None:
        row["gold"] = gold
    inp = _write(tmp_path / "in.jsonl", [row])
    assert compress(inp, None, fmt="responses") == 2
    message = _one_error(caplog)
    assert f"{inp}:1" in message and "'gold'" in message and needle in message, message


def test_compress_empty_input_is_an_error_and_writes_nothing(tmp_path, compress, caplog):
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n\n")
    assert compress(inp) == 2
    assert "no rows" in _one_error(caplog) and not (tmp_path / "out").exists()


def test_compress_output_equal_to_input_is_refused_and_the_input_kept(tmp_path, compress, caplog):
    inp = _write(tmp_path / "in.jsonl", GSM8K)
    before = inp.read_bytes()
    assert compress(inp, inp) == 2
    assert "lies inside, the input" in _one_error(caplog) and inp.read_bytes() == before
    caplog.clear()
    assert compress(inp, tmp_path / "sub" / ".." / "in.jsonl") == 2  # the same file, spelled otherwise
    assert "lies inside, the input" in _one_error(caplog)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"] and inp.read_bytes() == before


@pytest.mark.parametrize("where", ["under_a_file", "a_directory"])
def test_compress_unwritable_output_is_one_line_naming_the_path(tmp_path, compress, caplog, where):
    inp = _write(tmp_path / "in.jsonl", GSM8K)
    blocker = tmp_path / "blocker"
    if where == "under_a_file":
        blocker.write_text("a regular file")
        out = blocker / "c.jsonl"
    else:
        out = blocker
        out.mkdir()
    assert compress(inp, out) == 2
    message = _one_error(caplog)
    assert message.startswith(str(blocker)), message
    assert ("a file is in the way" if where == "under_a_file" else "Is a directory") in message, message


@pytest.mark.parametrize("ratios", ["true", "nan", "0.3", "1.5"])
def test_compress_and_build_sft_refuse_a_ratio_outside_the_set(tmp_path, compress, build_sft, caplog, ratios):
    inp = _write(tmp_path / "in.jsonl", GSM8K)
    assert compress(inp, None, "--ratios", f"0.4,{ratios}") == 2
    assert f"--ratios: {ratios!r} is not a ratio; valid" in _one_error(caplog)
    caplog.clear()
    assert build_sft(_write(tmp_path / "c.jsonl", [_sft_row(1)]), None, "--ratios", ratios) == 2
    assert f"--ratios: {ratios!r} is not a ratio; valid" in _one_error(caplog)
    assert not (tmp_path / "out").exists() and not (tmp_path / "sft").exists()


def test_compress_negative_limit_is_refused(tmp_path, compress, capsys):
    inp = _write(tmp_path / "in.jsonl", GSM8K)
    with pytest.raises(SystemExit) as info:
        compress(inp, None, "--limit", "-1")
    assert info.value.code == 2 and "--limit" in capsys.readouterr().err


def test_compress_duplicates_and_a_huge_line_are_logged_skips(tmp_path, compress):
    huge = {"question": "q" * 4_000_000, "answer": "It is 1.\n#### 1"}  # a 4 MB line, read and compressed
    inp = _write(tmp_path / "in.jsonl", [GSM8K[0], GSM8K[0], GSM8K[1], huge])
    assert compress(inp, None, "--ratios", "0.4") == 0
    out = tmp_path / "out" / "c.jsonl"
    rows, skipped = _read(out), _read(tmp_path / "out" / "c.jsonl.skipped.jsonl")
    assert [r["line"] for r in rows] == [1, 3, 4]
    assert skipped == [{"key": rows[0]["key"], "line": 2, "reason": "duplicate", "first_line": 1}]


def test_compress_error_reaches_the_user_as_one_line_without_traceback(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b'{"question": "\xff"}\n')
    proc = subprocess.run([sys.executable, "-m", "extra_cot.cli", "compress", "--input", str(inp),
                           "--output", str(inp), "--scorer", "heuristic"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    expected = (f"ERROR extra_cot.compress: --output {inp}: is, or lies inside, the input {inp}; a run would "
                "overwrite or reread its own input. Fix: write the output somewhere else")
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [expected]


# ---- extra-cot build-sft -----------------------------------------------------------------------


def _sft_row(i: int, **changes) -> dict:
    row = {"question": f"What is {i} + {i}?", "cot": f"{i} + {i} = {2 * i}, so the sum is {2 * i}.",
           "answer": f"The answer is \\boxed{{{2 * i}}}.", "compressed": {"0.4": f"{i}+{i}={2 * i}"},
           "realized": {"0.4": 0.41}, "dropped": {"0.2": "off_bucket(realized=0.300)"}}
    row.update(changes)
    return row


@pytest.fixture
def build_sft(tmp_path, tiny_model_dir):
    def run(inp, out_dir=None, *extra):
        out_dir = tmp_path / "sft" if out_dir is None else out_dir
        return cli_main(["build-sft", "--input", str(inp), "--output-dir", str(out_dir), "--name", "mix",
                         "--tokenizer", str(tiny_model_dir), *extra])
    return run


@pytest.mark.parametrize(("bad", "field"), [
    ({"compressed": ["a list"]}, "field 'compressed'"),
    ({"compressed": {"1.5": "longer than the cot"}}, "'compressed.1.5'"),
    ({"compressed": {"NaN": "x"}}, "'compressed.NaN'"),
    ({"compressed": {"0.3": "x"}}, "'compressed.0.3'"),
    ({"compressed": {"0.4": 7}}, "'compressed.0.4'"),
    ({"realized": "0.4"}, "field 'realized'"),
    ({"dropped": {"0.2": ["x"]}}, "'dropped.0.2'"),
    ({"question": None}, "field 'question'"),
    ({"answer": "no box"}, "field 'answer'"),
])
def test_build_sft_skips_a_bad_row_alone_naming_file_row_and_field(tmp_path, build_sft, caplog, bad, field):
    inp = _write(tmp_path / "c.jsonl", [_sft_row(1), _sft_row(2, **bad), _sft_row(3)])
    assert build_sft(inp) == 0
    assert [r["question"] for r in _read(tmp_path / "sft" / "mix.jsonl")] == ["What is 1 + 1?", "What is 3 + 3?"]
    (skip,) = _read(tmp_path / "sft" / "mix.skipped.jsonl")
    assert (skip["file"], skip["line"], skip["reason"]) == (str(inp), 2, "bad_row")
    assert f"{inp}:2" in skip["detail"] and field in skip["detail"], skip
    assert any(f"{inp}:2" in r.getMessage() and field in r.getMessage() for r in caplog.records)


def test_build_sft_leaves_a_compressed_text_at_1_0_to_the_cot(tmp_path, build_sft):
    """compress writes a compression that landed at full length under "1": the row's cot is its
    1.0 example, so that text is left out (the row is not refused)."""
    inp = _write(tmp_path / "c.jsonl", [_sft_row(1, compressed={"0.4": "1+1=2", "1": "nearly all of it"})])
    assert build_sft(inp) == 0
    assert _read(tmp_path / "sft" / "mix.jsonl")[0]["compressed"] == {"0.4": "1+1=2"}


@pytest.mark.parametrize(("content", "needles"), [
    (b"", ["no row to write"]),
    (b"{not json\n", ["c.jsonl:1", "not JSON"]),
    (json.dumps(_sft_row(1)).encode() + b"\n\xff\xfe\n", ["c.jsonl:2", "not UTF-8"]),
    (json.dumps(_sft_row(1, answer="no box")).encode() + b"\n", ["no row to write", "1 skipped"]),
])
def test_build_sft_failed_run_registers_nothing(tmp_path, build_sft, caplog, content, needles):
    (tmp_path / "sft").mkdir()
    info = tmp_path / "sft" / "dataset_info.json"
    info.write_text(json.dumps({"other": {"file_name": "x.json"}}))
    inp = tmp_path / "c.jsonl"
    inp.write_bytes(content)
    assert build_sft(inp) == 2
    message = _one_error(caplog)
    assert all(n in message for n in needles), message
    assert sorted(p.name for p in (tmp_path / "sft").iterdir()) == ["dataset_info.json"]
    assert json.loads(info.read_text()) == {"other": {"file_name": "x.json"}}


def test_build_sft_output_in_the_input_folder_is_refused(tmp_path, build_sft, caplog):
    parts = tmp_path / "parts"
    parts.mkdir()
    _write(parts / "part-0.jsonl", [_sft_row(1)])
    for out_dir in (parts, parts / "sft"):
        assert build_sft(parts, out_dir) == 2
        assert "lies inside, the input" in _one_error(caplog)
        caplog.clear()
    assert build_sft(f"{parts}/part-*.jsonl", parts, "--name", "part-9") == 2  # a file the glob would match
    assert sorted(p.name for p in parts.iterdir()) == ["part-0.jsonl"]


def test_build_sft_unwritable_output_dir_is_one_line(tmp_path, build_sft, caplog):
    inp = _write(tmp_path / "c.jsonl", [_sft_row(1)])
    (tmp_path / "file").write_text("x")
    assert build_sft(inp, tmp_path / "file" / "sft") == 2
    assert f"{tmp_path / 'file'}" in _one_error(caplog)


def test_build_sft_duplicates_and_rows_over_the_cutoff_are_logged_skips(tmp_path, build_sft, tiny_tokenizer):
    from extra_cot.compress.build_sft import chat_text
    from extra_cot.sft.mixture import MixtureConfig, expand_row

    long_row = _sft_row(3, cot="and then " * 300 + "6.")
    inp = _write(tmp_path / "c.jsonl", [_sft_row(1), _sft_row(1), long_row, _sft_row(4)])
    full = max(len(tiny_tokenizer.encode(chat_text(e), add_special_tokens=False))
               for e in expand_row(long_row, MixtureConfig(), policy_keep=True))
    assert build_sft(inp, None, "--cutoff-len", str(full - 1)) == 0
    assert [r["question"] for r in _read(tmp_path / "sft" / "mix.jsonl")] == ["What is 1 + 1?", "What is 4 + 4?"]
    skipped = _read(tmp_path / "sft" / "mix.skipped.jsonl")
    assert [(s["line"], s["reason"]) for s in skipped] == [(2, "duplicate"), (3, "too_long")]
    assert skipped[1]["tokens"] == full and skipped[1]["cutoff_len"] == full - 1
    stats = json.loads((tmp_path / "sft" / "mix.build_sft.json").read_text())["stats"]
    assert stats["skipped:too_long"] == 1 and stats["skipped:duplicate"] == 1
    assert build_sft(inp, tmp_path / "sft2", "--cutoff-len", str(full)) == 0  # exactly at the cutoff: kept
    assert len(_read(tmp_path / "sft2" / "mix.jsonl")) == 3


def test_demo_build_sft_steps_use_the_demo_sft_cutoff():
    from extra_cot.demo.config import DemoConfig
    from extra_cot.demo.steps import _build_step

    class P:
        sft, base = Path("sft"), Path("base")

    argv = _build_step(DemoConfig(), P, "build-sft", "mix", Path("c.jsonl"), [], "t").argv
    assert argv[argv.index("--cutoff-len") + 1] == str(DemoConfig().cutoff_len)


def test_build_sft_cutoff_default_is_the_recipe_cutoff_len():
    import yaml

    from extra_cot.compress.build_sft import RECIPE_CUTOFF_LEN, build_parser

    recipe = yaml.safe_load((REPO / "examples" / "qwen3-1.7b_mixed.yaml").read_text())
    assert build_parser().parse_args(["--input", "x", "--output-dir", "y"]).cutoff_len == RECIPE_CUTOFF_LEN
    assert recipe["cutoff_len"] == RECIPE_CUTOFF_LEN


@pytest.mark.parametrize(("policy", "needle"), [
    ({"What is 1 + 1?": True}, "True is not a ratio"),
    ({"What is 1 + 1?": "nan"}, "'nan' is not a ratio"),
    ({"What is 1 + 1?": 0.3}, "0.3 is not a ratio"),
])
def test_build_sft_refuses_a_policy_ratio_outside_the_ratio_set(tmp_path, build_sft, caplog, policy, needle):
    inp = _write(tmp_path / "c.jsonl", [_sft_row(1)])
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(policy))
    assert build_sft(inp, None, "--policy-ratios", str(gt)) == 2
    message = _one_error(caplog)
    assert str(gt) in message and "'gt_ratio'" in message and needle in message, message
    assert not (tmp_path / "sft").exists()


def test_build_sft_refuses_one_question_with_two_policy_ratios(tmp_path, build_sft, caplog):
    inp = _write(tmp_path / "c.jsonl", [_sft_row(1)])
    gt = _write(tmp_path / "gt.jsonl", [{"question": "What is 1 + 1?", "gt_ratio": 0.4},
                                        {"question": "What is 1 + 1?", "gt_ratio": 1.0}])
    assert build_sft(inp, None, "--policy-ratios", str(gt)) == 2
    assert f"{gt}:2" in _one_error(caplog)


# ---- ratios and SFT rows: one vocabulary, no bool read as 1.0 ---------------------------------


@pytest.mark.parametrize("value", [True, False, None, float("nan"), "nan", 1.5, "0.3", [0.4], "abc"])
def test_ratio_value_refuses_what_is_not_a_fixed_ratio(value):
    from extra_cot.tokens import ratio_value

    with pytest.raises(ValueError, match="gt_ratio: .* is not a ratio; valid"):
        ratio_value(value, "gt_ratio")


def test_sft_row_gt_ratio_true_is_refused_not_read_as_1_0():
    from extra_cot.sft.mixture import BadRowError, validate_row

    with pytest.raises(BadRowError, match="field 'gt_ratio'"):
        validate_row(_sft_row(1, gt_ratio=True), "mix.jsonl:1")


# ---- extra-cot build-rl ------------------------------------------------------------------------

def _sweep(root, change=None):
    """Four questions passing at every ratio; ``change(records)`` edits the 0.6 file's records."""
    from extra_cot.tokens import FIXED_RATIOS

    for ratio in FIXED_RATIOS:
        records = [{"index": i, "sample": s, "question": f"What is {i} + 1?", "gold": str(i + 1), "pred": str(i + 1),
                    "correct": True, "think_tokens": round(100 * ratio)} for i in range(4) for s in range(3)]
        if change is not None and ratio == 0.6:
            change(records)
        (root / f"{ratio:.1f}").mkdir(parents=True)
        (root / f"{ratio:.1f}" / "prediction.json").write_text(json.dumps(records))
    return root.parent


def _set(field, value):
    def change(records):
        if value is KeyError:
            del records[1][field]
        else:
            records[1][field] = value
    return change


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("gold", None, "null"), ("gold", "", "non-empty"), ("gold", [2], "list"), ("gold", {"a": 2}, "dict"),
    ("gold", True, "bool"), ("correct", "false", "true or false"), ("correct", 0, "true or false"),
    ("correct", None, "true or false"), ("think_tokens", "12", "whole number"), ("index", 0.5, "whole number"),
    ("question", 12, "non-empty string"),
])
def test_build_rl_refuses_wrong_types_naming_file_row_and_field(tmp_path, capsys, field, value, needle):
    sweep = _sweep(tmp_path / "sweep" / "gsm8k", _set(field, value))
    assert cli_main(["build-rl", "--sweep", str(sweep), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    bad = sweep / "gsm8k" / "0.6" / "prediction.json"
    assert "\n" not in err and f"{bad}:2: field '{field}'" in err and needle in err, err
    assert not (tmp_path / "o").exists()


def test_build_rl_refuses_two_golds_for_one_question(tmp_path, capsys):
    def change(records):
        for rec in records:
            rec["gold"] = "3"
    sweep = _sweep(tmp_path / "sweep" / "gsm8k", change)
    assert cli_main(["build-rl", "--sweep", str(sweep), "--output-dir", str(tmp_path / "o")]) == 2
    assert "gsm8k index 0" in capsys.readouterr().err
    assert cli_main(["build-rl", "--sweep", str(_sweep(tmp_path / "ok" / "gsm8k")), "--output-dir", str(tmp_path / "o"),
                     "--quotas", "none", "--val-size", "1", "--train-batch-size", "1"]) == 0  # the same, agreeing


@pytest.mark.parametrize("content", [b"", b"\xff\xfe[", b"{\"a\": 1}"])
def test_build_rl_unreadable_prediction_file_names_it(tmp_path, capsys, content):
    sweep = _sweep(tmp_path / "sweep" / "gsm8k")
    bad = sweep / "gsm8k" / "0.6" / "prediction.json"
    bad.write_bytes(content)
    assert cli_main(["build-rl", "--sweep", str(sweep), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(bad) in err, err


@pytest.mark.parametrize("where", ["inside_the_sweep", "under_a_file"])
def test_build_rl_bad_output_dir_is_one_line(tmp_path, capsys, where):
    sweep = _sweep(tmp_path / "sweep" / "gsm8k")
    (tmp_path / "file").write_text("x")
    out = sweep / "rl" if where == "inside_the_sweep" else tmp_path / "file" / "rl"
    args = ["build-rl", "--sweep", str(sweep), "--output-dir", str(out), "--quotas", "none", "--val-size", "1",
            "--train-batch-size", "1"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert ("lies inside, the input" in err) if where == "inside_the_sweep" else (str(tmp_path / "file") in err)


# ---- extra-cot label (a dead local URL: every case fails before a request) ---------------------


@pytest.fixture
def label(tmp_path, tiny_model_dir):
    def run(inp, out, *extra):
        return cli_main(["label", "--input", str(inp), "--output", str(out), "--input-format", "gsm8k",
                         "--base-url", "http://127.0.0.1:9/v1", "--model", "teacher",
                         "--tokenizer", str(tiny_model_dir), *extra])
    return run


def test_label_refuses_same_path_bad_lines_and_unwritable_outputs(tmp_path, label, caplog):
    inp = _write(tmp_path / "in.jsonl", GSM8K)
    before = inp.read_bytes()
    assert label(inp, inp) == 2 and "lies inside, the input" in _one_error(caplog)
    assert inp.read_bytes() == before
    caplog.clear()
    (tmp_path / "bad").mkdir()
    bad = _bad_line(tmp_path / "bad", b"\xff")
    assert label(bad, tmp_path / "l.jsonl") == 2 and f"{bad}:2: not UTF-8" in _one_error(caplog)
    caplog.clear()
    (tmp_path / "file").write_text("x")
    assert label(inp, tmp_path / "file" / "l.jsonl") == 2 and str(tmp_path / "file") in _one_error(caplog)


def test_label_negative_limit_is_refused(tmp_path, label, capsys):
    with pytest.raises(SystemExit) as info:
        label(_write(tmp_path / "in.jsonl", GSM8K), tmp_path / "l.jsonl", "--limit", "-1")
    assert info.value.code == 2 and "--limit" in capsys.readouterr().err


# ---- extra-cot eval (a local stand-in answers /v1/models only: every case fails before a request) ---


@pytest.fixture
def models_server():
    """``http://127.0.0.1:PORT/v1`` serving ``GET /v1/models`` = ``[local_core_model]``."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Models(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"data": [{"id": "local_core_model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("where", ["output_under_a_file", "dataset_is_a_folder"])
def test_eval_path_errors_are_one_line(tmp_path, capsys, models_server, where):
    data = tmp_path / "gsm8k_test.jsonl"
    data.write_text(json.dumps({"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"}) + "\n")
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "eval" if where == "output_under_a_file" else tmp_path / "eval"
    if where == "dataset_is_a_folder":
        data = tmp_path / "folder.jsonl"
        data.mkdir()
    assert cli_main(["eval", "--port", str(models_server), "--output_dir", str(out), "--dataset",
                     f"gsm8k={data}", "--ratios", "1.0"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("extra-cot eval:")]
    assert len(err) == 1 and str(tmp_path / ("file" if where == "output_under_a_file" else "folder.jsonl")) in err[0], err
