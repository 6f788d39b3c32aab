"""Dataset loaders, the partial log, wall-time accounting and the plot command (no server)."""

from __future__ import annotations

import json

import pytest

from extra_cot.eval import store
from extra_cot.eval.datasets import load_items, parse_dataset_spec
from extra_cot.fileio import append_jsonl, atomic_write_json


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_loaders_for_each_format(tmp_path):
    gsm = write_jsonl(tmp_path / "g.jsonl", [{"question": "q1", "answer": "work\n#### 1,234"}])
    math = write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "answer": "\\frac{1}{2}", "solution": "s"}])
    amc = write_jsonl(
        tmp_path / "a.jsonl", [{"question": "q", "answer": 27.0}, {"problem": "q2", "answer": [3.5]}]
    )
    gen = write_jsonl(tmp_path / "x.jsonl", [{"query": "Q", "resp": "7"}])
    assert load_items(parse_dataset_spec(f"gsm8k={gsm}"))[0].gold == "1234"
    assert load_items(parse_dataset_spec(f"math500={math}"))[0].question == "p"
    amc_items = load_items(parse_dataset_spec(f"amc23={amc}"))
    assert [i.gold for i in amc_items] == ["27", "3.5"]
    item = load_items(parse_dataset_spec(f"mine={gen}:generic:query:resp"))[0]
    assert (item.question, item.gold) == ("Q", "7")
    assert len(load_items(parse_dataset_spec(f"gsm8k={gsm}"), limit=1)) == 1


def test_bad_rows_name_file_row_and_field(tmp_path):
    bad = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "#### 1"}, {"question": "q"}])
    with pytest.raises(ValueError, match=r"g.jsonl:2: missing field 'answer'"):
        load_items(parse_dataset_spec(f"gsm8k={bad}"))
    with pytest.raises(ValueError, match="unknown format 'nope'"):
        parse_dataset_spec(f"x={bad}:nope")
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_dataset_spec(str(bad))
    (tmp_path / "broken.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{not json\n')
    with pytest.raises(ValueError, match=r"broken.jsonl:2: not JSON"):
        load_items(parse_dataset_spec(f"gsm8k={tmp_path / 'broken.jsonl'}"))


def test_partial_log_skips_a_truncated_line_and_keeps_first_entry(tmp_path):
    path = tmp_path / store.PARTIAL
    append_jsonl(path, {"index": 0, "records": [{"v": "first"}], "session_start": 10.0, "t_done": 12.0})
    append_jsonl(path, {"index": 1, "records": [{"v": "b"}], "session_start": 10.0, "t_done": 15.0})
    append_jsonl(path, {"index": 0, "records": [{"v": "dup"}], "session_start": 20.0, "t_done": 21.0})
    with open(path, "a") as fh:
        fh.write('{"index": 2, "records": [')  # killed mid-write
    done = store.read_partial(path)
    assert sorted(done) == [0, 1]
    assert done[0]["records"] == [{"v": "first"}]
    # session 10: 15 - 10 = 5 s; session 20's only line is a duplicate of item 0 and is ignored
    assert store.wall_time(done) == pytest.approx(5.0)


def test_wall_time_sums_sessions():
    done = {
        0: {"session_start": 0.0, "t_done": 4.0},
        1: {"session_start": 0.0, "t_done": 6.0},
        2: {"session_start": 100.0, "t_done": 103.0},
    }
    assert store.wall_time(done) == pytest.approx(6.0 + 3.0)


def test_plot_writes_pngs(tmp_path):
    from extra_cot.eval.plot import main

    for name, tokens, acc in (("0.2", 30, 0.5), ("1.0", 100, 0.7), ("policy", 40, 0.65), ("base", 110, 0.7)):
        d = tmp_path / "gsm8k" / name
        d.mkdir(parents=True)
        atomic_write_json(
            d / "metrics.json",
            {
                "dataset": "gsm8k",
                "ratio": name,
                "n": 10,
                "tokens": tokens,
                "acc_all": acc,
                "acc_answered": acc,
                "act_ratio": tokens / 110,
                "latency_s": 0.1,
                "closed_think_share": 1.0,
                "control_distribution": {},
                "realized_ratio": tokens / 100,
            },
        )
    assert main([str(tmp_path)]) == 0
    for name in ("accuracy_vs_ratio.png", "realized_vs_target.png"):
        data = (tmp_path / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert main([str(tmp_path / "empty")]) == 2


def _fake_run(ds_dir, ratio, think_tokens, correct):
    for i, (tokens, ok) in enumerate(zip(think_tokens, correct)):
        rec = {
            "index": i,
            "sample": 0,
            "question": "q",
            "prompt": "p",
            "output": "o",
            "pred": "1",
            "gold": "1",
            "correct": ok,
            "think_tokens": tokens,
            "control": None,
            "latency_s": 0.1,
            "closed_think": True,
        }
        append_jsonl(
            ds_dir / ratio / store.PARTIAL,
            {"index": i, "records": [rec], "session_start": 0.0, "t_done": 2.0 * (i + 1)},
        )


def test_dataset_metrics_link_runs_and_warn_on_collapse(tmp_path, caplog):
    from extra_cot.eval.runner import write_dataset_metrics, write_summary

    ds = tmp_path / "gsm8k"
    _fake_run(ds, "base", [200, 200], [True, True])
    _fake_run(ds, "1.0", [100, 100], [True, False])
    _fake_run(ds, "0.2", [30, 34], [False, False])
    _fake_run(ds, "0.4", [34, 34], [True, False])
    with caplog.at_level("WARNING"):
        linked = write_dataset_metrics(ds, "gsm8k")
    assert "CONTROL COLLAPSE on gsm8k: targets 0.2 and 0.4" in caplog.text
    m02 = json.loads((ds / "0.2" / "metrics.json").read_text())
    assert m02 == linked["0.2"]
    assert m02["realized_ratio"] == pytest.approx(32 / 100) and m02["act_ratio"] == pytest.approx(32 / 200)
    assert m02["latency_s"] == pytest.approx(4.0 / 2)
    summary = write_summary(tmp_path)
    assert (
        summary.index("| gsm8k | 0.2 |")
        < summary.index("| gsm8k | 1.0 |")
        < summary.index("| gsm8k | base |")
    )
    assert "**Control collapse**" in summary and "0.2 vs 0.4" in summary


def test_regrade_rewrites_pred_correct_and_metrics(tmp_path):
    from extra_cot.eval.cli import main

    ds = tmp_path / "gsm8k"
    _fake_run(ds, "1.0", [10, 10], [False, False])  # stored verdicts from an older grader
    lines = (ds / "1.0" / store.PARTIAL).read_text().splitlines()
    entry = json.loads(lines[0])
    entry["records"][0]["output"] = "<think>\nx</think>\n\nSo the answer is 1 apple."
    (ds / "1.0" / store.PARTIAL).write_text(json.dumps(entry) + "\n" + lines[1] + "\n")
    assert main(["--output_dir", str(tmp_path), "--regrade"]) == 0
    preds = json.loads((ds / "1.0" / "prediction.json").read_text())
    assert [(r["pred"], r["correct"]) for r in preds] == [("1", True), (None, False)]
    assert json.loads((ds / "1.0" / "metrics.json").read_text())["acc_all"] == pytest.approx(0.5)
    assert main(["--output_dir", str(tmp_path / "nothing"), "--regrade"]) == 2
