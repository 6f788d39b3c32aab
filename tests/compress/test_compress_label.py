"""Teacher labelling: masking, chunking, parsing; a real HTTP teacher; the student's training."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from extra_cot.cli import main as cli_main
from extra_cot.compress import teacher

from .conftest import GSM8K_ROWS, LATEX_COT


def test_mask_formulas_round_trip():
    masked = teacher.mask_formulas(LATEX_COT)
    assert "[MATH_0]" in masked.text and "$" not in masked.text and "\\boxed" not in masked.text
    for ms, me, os_, oe, formula in masked.segments:
        if not formula:
            assert masked.text[ms:me] == LATEX_COT[os_:oe]
    start = masked.text.index("[MATH_1]")
    a, b = teacher.to_original(masked, start, start + len("[MATH_1]"))
    assert LATEX_COT[a:b] == "$r = \\sqrt{0^2 + 3^2} = 3$,"  # glued punctuation stays with its formula


def test_chunks_respect_cap_and_never_split_placeholders():
    masked = teacher.mask_formulas(" ".join([LATEX_COT] * 5)).text
    words = lambda t: len(t.split())
    chunks = teacher.chunk(masked, words, target=20, cap=30)
    assert len(chunks) > 3 and chunks[0][0] == 0 and chunks[-1][1] == len(masked)
    assert all(a == b for (_, a), (b, _) in itertools.pairwise(chunks))  # contiguous
    for s, e in chunks:
        assert words(masked[s:e]) <= 30
        assert masked[s:e].count("[MATH_") == masked[s:e].count("]") - masked[s:e].count("\\]")


@pytest.mark.parametrize("reply", [
    '{"keep": ["Tom gives [MATH_0]", "he keeps [MATH_1] apples"]}',
    '```json\n{"keep": ["Tom gives [MATH_0]", "he keeps [MATH_1] apples"]}\n```',
    'Sure! Here it is: {"keep": ["Tom gives [MATH_0]", "he keeps [MATH_1] apples"]} Hope it helps.',
])
def test_parse_well_formed_answers(reply):
    chunk = "Tom gives [MATH_0] apples to Ann.\nSo he keeps [MATH_1] apples."
    spans = teacher.parse_keep(reply, chunk)
    assert [chunk[a:b] for a, b in spans] == ["Tom gives [MATH_0]", "he keeps [MATH_1] apples"]


@pytest.mark.parametrize(("reply", "why"), [
    ("I think you should keep everything.", "no JSON"),
    ('{"keep": "all"}', "keep"),
    ('{"keep": ["Tom sells [MATH_0]"]}', "not found"),
    ('{"keep": ["Tom gives [MATH_"]}', "placeholder"),
    ('{"keep": [1, 2]}', "keep"),
    ("{'keep': ['x']}", "invalid JSON"),
])
def test_parse_malformed_answers(reply, why):
    with pytest.raises(ValueError, match=why):
        teacher.parse_keep(reply, "Tom gives [MATH_0] apples to Ann.")


def test_snap_to_units_keeps_whole_words_and_formulas():
    cot = "Tom gives 48/2 = <<48/2=24>>24 apples."
    # a unit is kept when its middle character is covered: "ives 48" keeps "gives" only,
    # "ives 48/2 = <<48/2=" keeps the whole formula too
    assert [cot[a:b] for a, b in teacher.snap_to_units(cot, [(5, 12)])] == ["gives"]
    assert [cot[a:b] for a, b in teacher.snap_to_units(cot, [(5, 25)])] == ["gives 48/2 = <<48/2=24>>24"]


class _Teacher(BaseHTTPRequestHandler):
    """A small OpenAI-compatible teacher: malformed on the first try for each chunk, then the
    first line of the chunk; always junk for questions about pens (to exercise the skip path)."""

    seen: ClassVar[set] = set()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["messages"][-1]["content"]
        chunk = user.split("Solution chunk:\n", 1)[1].rsplit("\n\nReturn the JSON", 1)[0]
        if "pen" in user.split("Solution chunk:")[0] or chunk not in self.seen:
            self.seen.add(chunk)
            content = "Let me think about which parts matter..."
        else:
            content = json.dumps({"keep": [chunk.split("\n")[0].strip()]})
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def teacher_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Teacher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_label_retries_skips_and_trains_a_student(tmp_path, tiny_model_dir, teacher_url):
    from extra_cot.compress.train import build_tiny_classifier

    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in GSM8K_ROWS))
    labels = tmp_path / "labels.jsonl"
    argv = ["label", "--input", str(inp), "--output", str(labels), "--input-format", "gsm8k",
            "--base-url", teacher_url, "--model", "teacher", "--retries", "1", "--tokenizer", str(tiny_model_dir)]
    assert cli_main(argv) == 0
    rows, skipped = _rows(labels), _rows(tmp_path / "labels.jsonl.skipped.jsonl")
    assert len(rows) == 2 and len(skipped) == 1 and skipped[0]["reason"].startswith("malformed: no JSON")
    for row in rows:
        first_line = row["cot"].split("\n")[0]
        assert [row["cot"][a:b] for a, b in row["keep_spans"]] == [first_line]
    base = build_tiny_classifier(tmp_path / "base", tiny_model_dir)
    student = tmp_path / "student"
    assert cli_main(["train-compressor", "--labels", str(labels), "--model", str(base), "--output-dir",
                     str(student), "--max-steps", "3", "--lr", "1e-3"]) == 0
    out = tmp_path / "c.jsonl"
    assert cli_main(["compress", "--input", str(inp), "--output", str(out), "--input-format", "gsm8k",
                     "--scorer", "classifier", "--scorer-model", str(student), "--tokenizer", str(tiny_model_dir)]) == 0
    assert len(_rows(out)) == 3


def test_training_learns_the_labels(tmp_path, tiny_model_dir):
    from extra_cot.compress.scorers import ScorerOptions, make_scorer
    from extra_cot.compress.segment import segment
    from extra_cot.compress.train import TrainOptions, build_tiny_classifier, train

    cot = "Well, hmm, Tom gives 48/2 = <<48/2=24>>24 apples to Ann, I think."
    keep = [[cot.index("48/2"), cot.index(" to Ann")]]
    rows = [{"question": "How many apples?", "cot": cot, "keep_spans": keep}]
    base = build_tiny_classifier(tmp_path / "base", tiny_model_dir)
    out = train(rows, TrainOptions(str(base), str(tmp_path / "s"), lr=3e-3, max_steps=25))
    scorer = make_scorer(ScorerOptions(name="classifier", model=str(out)))
    units = segment(cot)
    scores = dict(zip([u.text for u in units], scorer.score("How many apples?", cot, units)))
    assert min(scores["48/2 = <<48/2=24>>24"], scores["apples"]) > max(scores["Well,"], scores["think."])


@pytest.mark.slow
def test_label_against_real_vllm_server(tmp_path, tiny_model_dir, vllm_server):
    """The tiny random model answers junk: every row must end labelled or skipped with a reason."""
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in GSM8K_ROWS[:2]))
    labels = tmp_path / "labels.jsonl"
    assert cli_main(["label", "--input", str(inp), "--output", str(labels), "--input-format", "gsm8k",
                     "--base-url", vllm_server.base_url, "--model", "local_core_model", "--retries", "1",
                     "--max-tokens", "48", "--tokenizer", str(tiny_model_dir), "--workers", "2"]) == 0
    rows, skipped = _rows(labels), _rows(tmp_path / "labels.jsonl.skipped.jsonl")
    assert len(rows) + len(skipped) == 2
    assert all(s["reason"].startswith(("malformed", "http_error")) for s in skipped)
    assert any(s["reason"].startswith("malformed") for s in skipped)


# ---- nothing lost on an outage (issue 37): retries with backoff, failed rows, resume ----------

class _Flaky(BaseHTTPRequestHandler):
    """A teacher that answers ``plan`` in order (an HTTP status to fail with, or ``"drop"``: close
    the connection without a reply), then well-formed keep lists; a question about ``bad_for``
    gets a 400 every time (a permanent error of that row)."""

    plan: ClassVar[list] = []
    bad_for: ClassVar[str | None] = None
    requests: ClassVar[int] = 0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["messages"][-1]["content"]
        type(self).requests += 1
        failure = self.plan.pop(0) if self.plan else None
        if failure == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if self.bad_for and self.bad_for in user.split("Solution chunk:")[0]:
            failure = 400
        if failure is not None:
            self.send_error(failure, "teacher says no")
            return
        chunk = user.split("Solution chunk:\n", 1)[1].rsplit("\n\nReturn the JSON", 1)[0]
        data = json.dumps({"choices": [{"message": {"content": json.dumps({"keep": [chunk.split("\n")[0]]})}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


@pytest.fixture
def flaky():
    handler = type("Flaky", (_Flaky,), {"plan": [], "bad_for": None, "requests": 0})
    server, url = _serve(handler)
    yield handler, url
    server.shutdown()
    server.server_close()


def _label(tmp_path, tiny_model_dir, url, *extra):
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in GSM8K_ROWS))
    argv = ["label", "--input", str(inp), "--output", str(tmp_path / "labels.jsonl"), "--input-format", "gsm8k",
            "--base-url", url, "--model", "teacher", "--tokenizer", str(tiny_model_dir), "--backoff-s", "0.001",
            "--timeout-s", "5", "--workers", "1", *extra]
    code = cli_main(argv)
    logs = {name: _rows(tmp_path / f"labels.jsonl{name}") if (tmp_path / f"labels.jsonl{name}").exists() else []
            for name in ("", ".skipped.jsonl", ".failed.jsonl")}
    return code, logs[""], logs[".skipped.jsonl"], logs[".failed.jsonl"]


def _dead_url() -> str:
    import socket

    with socket.socket() as s:  # a port nothing listens on once closed: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_transient_errors_are_retried_with_backoff(tmp_path, tiny_model_dir, flaky):
    handler, url = flaky
    handler.plan = [503, 429, "drop", 502]  # four transient failures on the first rows, then healthy
    code, rows, skipped, failed = _label(tmp_path, tiny_model_dir, url, "--attempts", "5")
    assert code == 0 and len(rows) == 3 and skipped == [] and failed == []
    assert handler.requests == 3 + 4  # every failure was retried, nothing else was sent twice


def test_outage_fails_rows_exits_nonzero_and_resume_completes_them(tmp_path, tiny_model_dir, flaky, caplog):
    code, rows, skipped, failed = _label(tmp_path, tiny_model_dir, _dead_url(), "--attempts", "3")
    assert code == 1 and rows == [] and skipped == []  # failed, not done and not skipped
    assert len(failed) == 3 and all(f["reason"].startswith("teacher_down: URLError") for f in failed)
    assert "3 row(s) failed" in caplog.text
    handler, url = flaky  # the teacher is back: a rerun of the same command labels exactly those rows
    code, rows, skipped, failed = _label(tmp_path, tiny_model_dir, url)
    assert code == 0 and len(rows) == 3 and skipped == [] and failed == []
    assert sorted(r["line"] for r in rows) == [1, 2, 3] and handler.requests == 3


def test_exhausted_retries_and_permanent_errors_fail_with_their_reason(tmp_path, tiny_model_dir, flaky):
    handler, url = flaky
    handler.plan, handler.bad_for = [500, 500], "pen"  # row 1: 500 twice with 2 attempts; row 2: a 400
    code, rows, skipped, failed = _label(tmp_path, tiny_model_dir, url, "--attempts", "2")
    assert code == 1 and [r["line"] for r in rows] == [3] and skipped == []
    reasons = {f["line"]: f["reason"] for f in failed}
    assert reasons[1].startswith("teacher_down: HTTP 500") and reasons[2].startswith("teacher_error: HTTP 400")
    assert handler.requests == 2 + 1 + 1  # a 400 is not retried
    handler.bad_for = None  # resume: only the two failed rows are sent again
    code, rows, _, failed = _label(tmp_path, tiny_model_dir, url)
    assert code == 0 and sorted(r["line"] for r in rows) == [1, 2, 3] and failed == [] and handler.requests == 6


def test_a_down_teacher_stops_being_asked(tmp_path, tiny_model_dir):
    code, rows, _, failed = _label(tmp_path, tiny_model_dir, _dead_url(), "--attempts", "1",
                                   "--max-consecutive-failures", "1")
    assert code == 1 and rows == [] and len(failed) == 3
    assert [f["reason"].split(":")[0] for f in failed] == ["teacher_down", "not_sent", "not_sent"]


def test_old_http_error_skips_are_retried_on_resume(tmp_path, tiny_model_dir, flaky):
    """A skip log written before failed rows had their own file held outages as ``http_error``."""
    from extra_cot.compress.rows import input_key

    (tmp_path / "labels.jsonl.skipped.jsonl").write_text(
        json.dumps({"key": input_key(GSM8K_ROWS[0]), "line": 1, "reason": "http_error: timed out"}) + "\n"
        + json.dumps({"key": input_key(GSM8K_ROWS[1]), "line": 2, "reason": "malformed: no JSON"}) + "\n")
    _, url = flaky
    code, rows, _, _ = _label(tmp_path, tiny_model_dir, url)
    assert code == 0 and sorted(r["line"] for r in rows) == [1, 3]  # the malformed skip stays done


def test_a_bad_input_writes_no_config_and_keeps_the_last_failed_log(tmp_path, tiny_model_dir, caplog):
    """The input is read and checked before anything is written: a bad line exits 2 naming it, and
    leaves no ``.config.json`` and the previous run's ``.failed.jsonl`` (the rows a rerun retries)."""
    inp, labels = tmp_path / "in.jsonl", tmp_path / "labels.jsonl"
    inp.write_text(json.dumps(GSM8K_ROWS[0]) + "\n" + "{not json\n")
    failed_log = tmp_path / "labels.jsonl.failed.jsonl"
    failed_log.write_text(json.dumps({"key": "k", "line": 1, "reason": "teacher_down: earlier run"}) + "\n")
    argv = ["label", "--input", str(inp), "--output", str(labels), "--input-format", "gsm8k",
            "--base-url", _dead_url(), "--model", "teacher", "--tokenizer", str(tiny_model_dir)]
    assert cli_main(argv) == 2
    assert f"{inp}:2" in caplog.text
    assert not (tmp_path / "labels.jsonl.config.json").exists() and not labels.exists()
    assert "earlier run" in failed_log.read_text()
    # a good input (the helper rewrites in.jsonl): the config is written as before
    code, *_ = _label(tmp_path, tiny_model_dir, _dead_url(), "--attempts", "1")
    assert code == 1 and json.loads((tmp_path / "labels.jsonl.config.json").read_text())["args"]["input"] == str(inp)
