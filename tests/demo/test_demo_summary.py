"""The demo's summary step: demo.json (issue 10's schema and targets) and the --results copy."""

from __future__ import annotations

import json

from extra_cot.demo.summary import main

TOKENS = {"base": 0.0, "0.2": 20.0, "0.4": 30.0, "0.6": 40.0, "0.8": 50.0, "1.0": 60.0, "policy": 35.0}


def _run_folder(root, echo_04=0.95, acc_10=0.4):
    for name, tokens in TOKENS.items():
        fixed = name not in ("base", "policy")
        metrics = {
            "dataset": "arith", "ratio": name, "n": 32, "n_items": 32, "tokens": tokens, "acc_all": 0.1 if name == "base"
            else (acc_10 if name == "1.0" else 0.3), "acc_answered": None, "pass_at_k": 0.3, "act_ratio": None,
            "latency_s": 0.5, "closed_think_share": 1.0, "control_distribution": {},
            "echo_fidelity": (echo_04 if name == "0.4" else 1.0) if fixed else None,
            "chosen_ratio_distribution": {"<COMP_40>": 0.5, "<COMP_60>": 0.5} if name == "policy" else {},
            "forced_control": False, "realized_ratio": tokens / 60.0 if name != "base" else 0.0,
        }
        (root / "eval" / "arith" / name).mkdir(parents=True)
        (root / "eval" / "arith" / name / "metrics.json").write_text(json.dumps(metrics))
        token = {"0.2": "<COMP_20>", "0.4": "<COMP_40>", "0.6": "<COMP_60>", "0.8": "<COMP_80>", "1.0": "<COMP_100>"}
        # two samples per item: sample 1 thinks 3x as long at 1.0 (its realized steps fall below 0.08)
        preds = [{"index": i, "sample": k, "output": f"{token.get(name, '')}\n<think>\nx</think>",
                  "correct": i < 2, "think_tokens": tokens * (3 if k == 1 and name == "1.0" else 1)}
                 for i in range(4) for k in (0, 1)]
        (root / "eval" / "arith" / name / "prediction.json").write_text(json.dumps(preds))
    (root / "demo_config.json").write_text(json.dumps({"sft": 48, "rl": 16, "test": 32, "tiny": False}))
    state = {"steps": {"train": {"done_at": 1.0, "wall_s": 600.0, "command": "llamafactory-cli train x"}},
             "invocations": [{"command": "python -m extra_cot.demo", "started": "2026-11-30 13:20:00 UTC",
                              "loadavg_start": [0.1, 0.2, 0.3]}],
             "load_samples": [[1.0, 1.5], [2.0, 2.5]]}
    (root / "demo_state.json").write_text(json.dumps(state))


def test_demo_json_schema_checks_and_results_copy(tmp_path):
    root, results = tmp_path / "run", tmp_path / "results"
    _run_folder(root)
    assert main(["--out", str(root), "--results", str(results)]) == 0
    record = json.loads((root / "demo.json").read_text())
    assert record["command"] == "python -m extra_cot.demo" and record["date"].endswith("UTC")
    assert record["load"]["loadavg_mean"] == 2.0 and record["load"]["loadavg_max"] == 2.5
    assert set(record["runs"]) == set(TOKENS)
    for row in record["runs"].values():
        assert {"realized_ratio", "echo_fidelity", "accuracy", "think_tokens"} <= set(row)
    assert record["runs"]["0.4"]["echo_fidelity"] == 0.95 and record["runs"]["1.0"]["accuracy"] == 0.4
    assert record["checks"]["met"] is True and record["checks"]["realized_steps"] == [0.167] * 4
    per = record["runs"]["0.6"]["per_sample"]
    assert [(x["sample"], x["accuracy"], x["echo_fidelity"]) for x in per] == [(0, 0.5, 1.0), (1, 0.5, 1.0)]
    assert per[0]["realized_ratio"] == 40 / 60 and per[1]["realized_ratio"] == 40 / 180
    each = record["checks"]["each_sample"]
    assert len(each) == 2 and each[1]["met"] is False and each[1]["realized"][-1] == 1.0
    assert json.loads((results / "demo.json").read_text()) == record
    md = (results / "demo.md").read_text()
    assert md == (root / "summary.md").read_text()
    assert "Issue 10 targets MET" in md and "Sample 1 alone (an eval of its own): NOT met" in md and "`python -m extra_cot.demo`" in md and "| 0.4 | 95% |" in md
    # the Tokens legend states the think_span rule: an unclosed (cut-off) block counts in full, not 0
    assert "0 when no closed think block" not in md and "an unclosed think block counts in full" in md


def test_demo_json_targets_not_met_when_echo_or_accuracy_is_low(tmp_path):
    _run_folder(tmp_path, echo_04=0.5)
    assert main(["--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "demo.json").read_text())["checks"]["met"] is False
    assert not (tmp_path / "results").exists()
    (tmp_path / "x").mkdir()
    _run_folder(tmp_path / "x", acc_10=0.2)
    assert main(["--out", str(tmp_path / "x")]) == 0
    record = json.loads((tmp_path / "x" / "demo.json").read_text())
    assert record["checks"]["met"] is False and "NOT met" in (tmp_path / "x" / "summary.md").read_text()


def test_demo_summary_with_no_realized_ratio(tmp_path):
    """A model that never closes its think block (the --tiny run) has no realized ratio: NOT met, no crash."""
    _run_folder(tmp_path)
    for name in ("0.2", "1.0"):
        path = tmp_path / "eval" / "arith" / name / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "realized_ratio": None}))
    assert main(["--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "demo.json").read_text())
    assert record["checks"]["met"] is False and record["checks"]["realized_steps"] == []
    assert "NOT met" in (tmp_path / "summary.md").read_text()


def test_one_time_estimate_in_readme_makefile_and_help():
    import re
    from pathlib import Path

    from extra_cot.demo.config import TIME_ESTIMATE, parser

    repo = Path(__file__).resolve().parents[2]
    readme, makefile = (repo / "README.md").read_text(), (repo / "Makefile").read_text()
    demo_line = next(line for line in readme.splitlines() if line.startswith("make demo "))
    assert TIME_ESTIMATE in demo_line and TIME_ESTIMATE in makefile and TIME_ESTIMATE in parser().format_help()
    # no other duration for the demo in the Makefile or the config module
    config_src = (repo / "plugins/extra_cot/demo/config.py").read_text()
    for text in (makefile, demo_line):
        assert not re.search(r"~\s*\d+\s*-\s*\d+\s*min", text)
    assert "30-40 min" not in config_src and "20-40" not in config_src


def test_demo_gamma_section_reports_gamma_and_the_policy_choice_by_grade(tmp_path):
    """The γ* summary of the sweep and the policy's chosen ratio per held-out grade, from the run's files."""
    from extra_cot.demo.summary import gamma_section

    assert gamma_section(tmp_path, "arith") == ("(not run)", {})
    (tmp_path / "stage1").mkdir()
    gamma = {"n_questions": 4, "n_targets": 3, "distribution": {"0.2": 2, "1": 1}, "mean_by_grade": {"1": 0.2, "2": 1.0},
             "dropped_no_pass_by_grade": {"2": 1}}
    (tmp_path / "stage1/policy_targets.jsonl.summary.json").write_text(json.dumps(gamma))
    (tmp_path / "data").mkdir()
    (tmp_path / "data/test.jsonl").write_text("".join(json.dumps({"question": f"q{i}", "grade": g}) + "\n"
                                                      for i, g in enumerate((1, 1, 2, 2))))
    policy = tmp_path / "eval/arith/policy"
    policy.mkdir(parents=True)
    outputs = ("<COMP_20><think>a</think>", "<COMP_20><think>b</think>", "<COMP_100><think>c</think>", "no token")
    records = [{"index": i, "correct": i == 0, "think_tokens": 5.0, "output": o} for i, o in enumerate(outputs)]
    (policy / "prediction.json").write_text(json.dumps(records))
    text, data = gamma_section(tmp_path, "arith")
    assert data["gamma"] == gamma
    assert data["policy"]["chosen_by_grade"] == {"1": {"0.2": 1.0}, "2": {"1.0": 0.5, "none": 0.5}}
    assert data["policy"]["mean_chosen_ratio_by_grade"] == {"1": 0.2, "2": 1.0}
    assert "γ* of 3 of 4 swept problems" in text and "1: 50.0% (n=2), 2: 0.0% (n=2)" in text


def test_demo_summary_says_why_stage3_was_skipped(tmp_path):
    root = tmp_path / "run"
    _run_folder(root)
    main(["--out", str(root)])
    record = json.loads((root / "demo.json").read_text())
    assert record["stage3_skipped"] is None and "Stage 3 skipped" not in (root / "summary.md").read_text()
    state = json.loads((root / "demo_state.json").read_text())
    reason = "extra-cot build-rl: the train set has 3 rows (4 selected - 1 val), fewer than --train-batch-size 4"
    state["steps"]["build-rl"] = {"done_at": 2.0, "wall_s": 3.0, "command": "extra-cot build-rl --sweep x",
                                  "ended_group": "Stage 3", "reason": reason}
    (root / "demo_state.json").write_text(json.dumps(state))
    assert main(["--out", str(root)]) == 0
    record = json.loads((root / "demo.json").read_text())
    assert record["stage3_skipped"] == f"build-rl: {reason}"
    md = (root / "summary.md").read_text()
    assert f"**Stage 3 skipped** (build-rl: {reason})" in md
    assert f"| build-rl | 3 (Stage 3 skipped: {reason}) |" in md
