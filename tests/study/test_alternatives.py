"""The alternatives a user has, as study rows (issue 38, item 9): budget forcing of the no-control
baseline at each fixed ratio's measured think tokens, and a formula- and question-blind compressor
(TokenSkip-style) trained as the method; Extra-CoT minus each, paired over questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extra_cot.study import alternatives as alt
from extra_cot.study import forcing

FIXED = ("0.2", "0.4", "0.6", "0.8", "1.0")


def _records(correct: list[bool], tokens: list[float], output: str = "") -> list[dict]:
    return [{"index": i, "correct": c, "think_tokens": t, "output": output}
            for i, (c, t) in enumerate(zip(correct, tokens, strict=True))]


def _write_run(run: Path, records: list[dict], **metrics) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "prediction.json").write_text(json.dumps(records))
    (run / "metrics.json").write_text(json.dumps({"n": len(records), **metrics}))


# --- 1. budget forcing: the budget is each ratio's measured mean think tokens on the same split -------------


def _method_eval(root: Path) -> dict[str, dict[str, list[float]]]:
    """A hand-built ``eval/<split>/<ratio>/`` of the Extra-CoT model: val and test think differently."""
    tokens = {split: {r: [10.0 * (i + 1) * k + j for j in range(4)] for i, r in enumerate(FIXED)}
              for split, k in (("val", 1), ("test", 2))}
    for split, by_ratio in tokens.items():
        for r, toks in by_ratio.items():
            _write_run(root / "eval" / split / r, _records([True, False, True, True], toks), tokens=sum(toks) / 4)
    return tokens


def test_the_forcing_budget_is_each_ratios_mean_think_tokens_on_the_same_split(tmp_path, monkeypatch):
    tokens = _method_eval(tmp_path)
    want = {split: {r: round(sum(t) / len(t)) for r, t in by_ratio.items()} for split, by_ratio in tokens.items()}
    assert want["val"] == {"0.2": 12, "0.4": 22, "0.6": 32, "0.8": 42, "1.0": 52}
    assert want["test"] == {"0.2": 22, "0.4": 42, "0.6": 62, "0.8": 82, "1.0": 102}
    assert forcing.budgets(tmp_path / "eval", ["val", "test"]) == want

    calls = []
    monkeypatch.setattr("extra_cot.eval.cli.main", lambda argv: calls.append(argv) or 0)
    out = tmp_path / "eval_forced"
    assert forcing.main(["--eval", str(tmp_path / "eval"), "--out", str(out), "--dataset", "val=/d/val.jsonl",
                         "--dataset", "test=/d/test.jsonl", "--port", "8123", "--tokenizer", "/m/no_control",
                         "--max-tokens", "300", "--concurrency", "4"]) == 0
    assert json.loads((out / forcing.BUDGETS_NAME).read_text())["budgets"] == want
    assert len(calls) == 10
    for argv in calls:
        opt = {k: argv[i + 1] for i, k in enumerate(argv) if k.startswith("--") and i + 1 < len(argv)}
        split, ratio = Path(opt["--output_dir"]).parts[-2:]
        assert opt["--think-budget"] == str(want[split][ratio])  # the budget of this split's run at this ratio
        assert opt["--dataset"] == f"{split}=/d/{split}.jsonl:gsm8k" and opt["--ratios"] == "base"  # no token
        assert (opt["--port"], opt["--tokenizer"], opt["--max-tokens"], opt["--concurrency"]) == (
            "8123", "/m/no_control", "300", "4")
        assert forcing.run_dir(out, split, ratio) == Path(opt["--output_dir"]) / split / "base"
        assert opt["--think-budget-mode"] == "s1"  # s1's forcing unless --mode server
    assert json.loads((out / forcing.BUDGETS_NAME).read_text())["mode"] == "s1" and forcing.mode_stale(out) is None
    calls.clear()
    assert forcing.main(["--eval", str(tmp_path / "eval"), "--out", str(out), "--dataset", "val=/d/val.jsonl",
                         "--port", "1", "--tokenizer", "/m", "--mode", "server"]) == 0
    assert all(a[a.index("--think-budget-mode") + 1] == "server" for a in calls)
    assert "forced in mode 'server', the study forces in 's1'" in forcing.mode_stale(out)


def test_forcing_stops_on_a_missing_method_run_and_on_a_failed_eval(tmp_path, monkeypatch, capsys):
    _method_eval(tmp_path)
    argv = ["--eval", str(tmp_path / "eval"), "--out", str(tmp_path / "f"), "--dataset", "test=/d/t.jsonl",
            "--port", "1", "--tokenizer", "/m"]
    monkeypatch.setattr("extra_cot.eval.cli.main", lambda a: 1)
    assert forcing.main(argv) == 1 and "exited 1 for forced_0.2 on test" in capsys.readouterr().err
    (tmp_path / "eval" / "test" / "0.6" / "metrics.json").write_text('{"n": 4}')
    assert forcing.main(argv) == 2 and "0.6/metrics.json: field 'tokens' (mean think tokens) is missing" in capsys.readouterr().err
    (tmp_path / "eval" / "test" / "0.6" / "metrics.json").unlink()
    assert forcing.main(argv) == 2 and "0.6/metrics.json is missing" in capsys.readouterr().err


# --- 2. the blind scorer: the formula goes first, the method keeps it ---------------------------------------

Q = "Ann has 12 red pens and 24 blue pens. How many pens does Ann have?"
#: a check that restates the numbers: to a scorer that does not know what a formula is, its bare
#: numbers outweigh the one equation the answer rests on
COT = ("Ann has 12 red pens and 24 blue pens, and we add them.\n12 + 24 = 36\n"
       "Check with the numbers again: 12 red, 24 blue, 12 and 24, red 12, blue 24. So Ann has 36 pens.")


def _compress(tmp_path: Path, tokenizer: Path, scorer: str, bonus: str) -> dict[str, str]:
    from extra_cot.cli import main

    inp, out = tmp_path / "in.jsonl", tmp_path / f"{scorer}.jsonl"
    inp.write_text(json.dumps({"question": Q, "response": f"<think>\n{COT}\n</think>\n\nSo \\boxed{{36}}.",
                               "gold": "36"}) + "\n")
    assert main(["compress", "--input", str(inp), "--output", str(out), "--scorer", scorer, "--tokenizer",
                 str(tokenizer), "--formula-bonus", bonus, "--decisive-bonus", bonus]) == 0
    return json.loads(out.read_text())["compressed"]


def test_the_blind_compressor_drops_the_formula_first_the_method_keeps_it(tmp_path, tiny_model_dir):
    """A real ``extra-cot compress`` of one trace, heuristic scorer: the study's method (formula and
    decisive bonus 3) against its blind twin with the bonuses off (what the study's blind steps run)."""
    from extra_cot.compress.blind import BLIND_BONUSES
    from extra_cot.demo.config import DECISIVE_BONUS, FORMULA_BONUS

    assert FORMULA_BONUS == DECISIVE_BONUS == 3.0 and set(BLIND_BONUSES.values()) == {0.0}
    method = _compress(tmp_path, tiny_model_dir, "heuristic", "3")
    blind = _compress(tmp_path, tiny_model_dir, "heuristic-blind", "0")
    assert "12 + 24 = 36" in method["0.2"] and "12 + 24 = 36" not in blind["0.2"]
    assert blind["0.2"].count("12") >= 2 and blind["0.2"].count("24") >= 2  # it kept the restated numbers instead
    assert all("12 + 24 = 36" in blind[r] for r in ("0.4", "0.6", "0.8"))  # with room, the equation stays


def test_the_blind_scorers_ignore_the_question_and_the_formula_flag(tiny_model_dir):
    from extra_cot.compress.blind import BlindHeuristicScorer
    from extra_cot.compress.scorers import HeuristicScorer, ScorerOptions, make_scorer
    from extra_cot.compress.segment import segment

    units = segment(COT)
    other = "How many blue things are there?"
    assert HeuristicScorer().score(Q, COT, units) != HeuristicScorer().score(other, COT, units)
    blind = BlindHeuristicScorer(HeuristicScorer()).score(Q, COT, units)
    assert blind == BlindHeuristicScorer(HeuristicScorer()).score(other, COT, units)
    at = next(i for i, u in enumerate(units) if u.formula)
    # the formula scores as its words: its numbers as numbers, its operators as punctuation
    words = [next(b for b, u in zip(blind, units, strict=True) if u.text == t) for t in ("12", "24")]
    assert blind[at] < min(words) and blind[at] < HeuristicScorer().score(Q, COT, units)[at]
    lm = make_scorer(ScorerOptions(name="lm", model=str(tiny_model_dir), max_length=512))  # one window
    lm_blind = make_scorer(ScorerOptions(name="lm-blind", model=str(tiny_model_dir), max_length=512))
    assert lm.score(Q, COT, units) != lm.score(other, COT, units)
    assert lm_blind.score(Q, COT, units) == lm_blind.score(other, COT, units)
    _, _, s_0 = lm.surprisals(Q, COT)  # the blind score is the question-free surprisal, standardised
    from extra_cot.compress.lm_scorer import _standardize
    from extra_cot.compress.scorer_base import aggregate

    offsets = lm.tokenizer(COT, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert lm_blind.score(Q, COT, units) == pytest.approx(aggregate(offsets, _standardize(s_0).tolist(), units), abs=1e-4)


# --- 3. Extra-CoT minus the alternative: paired over questions, verdict only beyond noise --------------------


def test_the_paired_difference_and_its_verdict():
    n = 40
    base = [i % 2 == 0 for i in range(n)]  # 20 of 40
    better = [c or i in (1, 3, 5, 7, 9, 11) for i, c in enumerate(base)]  # 6 more, on the same questions
    ours, theirs = _records(better, [30.0] * n), _records(base, [40.0] * n)
    d = alt.paired_difference(ours, theirs, n)
    assert d["accuracy_diff"] == pytest.approx(0.15) and d["think_tokens_diff"] == -10.0
    assert d["think_tokens_diff_ci"] == [-10.0, -10.0]
    assert d["accuracy_diff_ci"][0] > 0 and d["verdict"] == "Extra-CoT higher, beyond noise"
    # paired: the two accuracies' own Wilson intervals overlap, yet every question moved one way
    from extra_cot.stats import overlaps, wilson

    assert overlaps(wilson(26, n), wilson(20, n))
    assert alt.paired_difference(theirs, ours, n)["verdict"] == "alternative higher, beyond noise"
    noisy = [c != (i in (1, 2, 3, 4)) for i, c in enumerate(base)]  # 2 gained, 2 lost
    same = alt.paired_difference(_records(noisy, [30.0] * n), theirs, n)
    assert same["accuracy_diff"] == 0.0 and same["accuracy_diff_ci"][0] < 0 < same["accuracy_diff_ci"][1]
    assert same["verdict"] == "within noise"
    assert alt.verdict([0.0, 0.2]) == "within noise" and alt.verdict([-0.2, 0.0]) == "within noise"


def _study_folder(root: Path, n: int = 40, grades: tuple[int, ...] = (1, 6)) -> list[int]:
    """Method runs, the unforced baseline and both alternatives' runs of the test split, hand-made."""
    grades = list(grades) * (n // len(grades))
    base = [i % 2 == 0 for i in range(n)]
    for k, r in enumerate(FIXED):
        _write_run(root / "eval" / "test" / r, _records([True] * n, [10.0 * (k + 1)] * n, f"<COMP_{r}>"))
        _write_run(forcing.run_dir(root / "eval_forced", "test", r), _records(base, [10.0 * (k + 1) - 1] * n),
                   think_budget=10 * (k + 1))
        _write_run(root / "eval_blind" / "test" / r, _records([c or k == 4 for c in base], [8.0 * (k + 1)] * n))
    return grades


def test_the_report_adds_each_alternatives_runs_and_compares_them_per_ratio(tmp_path):
    from extra_cot.study.report import eval_records, run_summary

    grades = _study_folder(tmp_path)
    ours = {r: eval_records(tmp_path / "eval" / "test" / r) for r in FIXED}
    runs = {r: run_summary(ours[r], grades) for r in FIXED}
    runs["no_control"] = {**runs["1.0"], "think_tokens": 100.0}
    block = alt.add_runs(tmp_path, "test", grades, ["forcing", "blind"], runs, ours, ref_mean=200.0)
    assert set(block) == {"forcing", "blind"}
    fields = set(runs["0.2"]) | {"echo_fidelity", "realized_ratio", "realized_vs_reference"}
    for name in (*[f"forced_{r}" for r in FIXED], *[f"blind_{r}" for r in FIXED]):
        assert fields <= set(runs[name]), name
    assert runs["forced_0.4"]["think_tokens"] == 19.0 and runs["forced_0.4"]["realized_ratio"] == 0.19  # vs no_control
    assert runs["blind_0.2"]["realized_ratio"] == 0.2 and runs["blind_0.2"]["realized_vs_reference"] == 0.04
    assert block["forcing"]["think_budgets"] == {"0.2": 10, "0.4": 20, "0.6": 30, "0.8": 40, "1.0": 50}
    assert block["forcing"]["extra_cot_higher_beyond_noise"] == list(FIXED)
    assert block["blind"]["extra_cot_higher_beyond_noise"] == ["0.2", "0.4", "0.6", "0.8"]  # at 1.0 all correct too
    assert block["blind"]["vs_extra_cot"]["1.0"]["verdict"] == "within noise"
    assert block["forcing"]["vs_extra_cot"]["0.2"]["accuracy_diff"] == 0.5
    assert block["forcing"]["vs_extra_cot"]["0.2"]["think_tokens_diff"] == 1.0
    json.dumps(block)


def test_the_record_renders_the_alternatives_and_the_committed_one_without_them(tmp_path):
    from extra_cot.study.report import eval_records, render, run_summary

    record = json.loads((Path(__file__).parents[2] / "results" / "study_varied.json").read_text())
    old = render(record)
    assert "Alternatives" not in old and "forced_" not in old
    grades = _study_folder(tmp_path, n=200, grades=(1, 2, 3, 4))  # the committed record's grades
    ours = {r: eval_records(tmp_path / "eval" / "test" / r) for r in FIXED}
    runs = {**record["runs"], **{r: {**run_summary(ours[r], grades), "echo_fidelity": 1.0, "realized_ratio": 1.0,
                                     "realized_vs_reference": 1.0} for r in FIXED}}
    block = alt.add_runs(tmp_path, "test", grades, ["forcing", "blind"], runs, ours, ref_mean=200.0)
    block["blind"]["minutes"] = 44.5
    lines = render({**record, "runs": runs, "alternatives": block}).splitlines()
    assert "## Alternatives: Extra-CoT minus each, per ratio (same questions; paired bootstrap 95 %)" in lines
    assert any(x.startswith("### forcing (- min of steps; think budgets {'0.2': 10") for x in lines)
    assert any(x.startswith("### blind (44.5 min of steps)") for x in lines)
    row = next(x for x in lines if x.startswith("0.2 | 100.0 | 50.0 ["))
    assert "| +50.0 [" in row and row.endswith("| Extra-CoT higher, beyond noise")
    assert "- Extra-CoT's accuracy above blind's beyond noise at: 0.2, 0.4, 0.6, 0.8" in lines
    assert any(x.startswith("forced_0.2 | 50.0 [") for x in lines)  # in the runs table with the others


# --- 4. the study flags reach their steps ---------------------------------------------------------------------


def _steps(tmp_path, **kw) -> dict:
    from extra_cot.study.config import StudyConfig
    from extra_cot.study.steps import build_steps

    return {s.name: s for s in build_steps(StudyConfig(out=str(tmp_path), **kw))}


def test_alternatives_default_to_both_on_chains_and_none_on_varied(tmp_path):
    from extra_cot.study.config import StudyConfig, config_from_args, parser

    names = list(_steps(tmp_path, task="chains"))
    mine = [s for a in ("blind", "forcing") for s in alt.STEPS[a]]
    # after the method's evaluation; the blind trainings before the forcing (redoing it must not redo them)
    assert names[names.index("eval") + 1:] == [*mine, "report"]
    assert not set(mine) & set(_steps(tmp_path))  # varied: the study as it was
    assert StudyConfig(task="chains").alternatives == ["forcing", "blind"] and StudyConfig().alternatives == []
    for flag, want in (("forcing", ["forcing"]), ("blind,forcing", ["forcing", "blind"]), ("none", []), ("auto", [])):
        assert config_from_args(parser().parse_args(["--alternatives", flag])).alternatives == want
    only = list(_steps(tmp_path, task="chains", alternatives=["blind"]))
    assert "budget-forcing" not in only and "eval-blind" in only
    with pytest.raises(ValueError, match="--alternatives"):
        config_from_args(parser().parse_args(["--alternatives", "forcing,tokenskip"]))


def test_the_scorer_defaults_to_the_heuristic_on_chains_and_lm_on_varied(tmp_path):
    from extra_cot.study.config import StudyConfig, config_from_args, parser

    assert StudyConfig(task="chains").scorer == "heuristic" and StudyConfig().scorer == "lm"
    for task, flag, want in (("chains", "lm", "lm"), ("varied", "heuristic", "heuristic"), ("varied", "auto", "lm")):
        assert config_from_args(parser().parse_args(["--task", task, "--scorer", flag])).scorer == want
    argv = _steps(tmp_path, task="chains")["compress-train"].argv
    assert argv[argv.index("--scorer") + 1] == "heuristic"


@pytest.mark.parametrize(("scorer", "blind"), [("lm", "lm-blind"), ("heuristic", "heuristic-blind")])
def test_the_blind_steps_run_the_blind_scorer_without_bonuses_and_train_as_the_method(tmp_path, scorer, blind):
    steps = _steps(tmp_path, task="chains", scorer=scorer)
    for split in ("train", "policy"):
        ours, theirs = steps[f"compress-{split}"].argv, steps[f"compress-{split}-blind"].argv
        val = {k: theirs[theirs.index(k) + 1] for k in ("--scorer", "--formula-bonus", "--decisive-bonus", "--input")}
        assert val == {"--scorer": blind, "--formula-bonus": "0", "--decisive-bonus": "0",
                       "--input": ours[ours.index("--input") + 1]}
        assert ours[ours.index("--scorer") + 1] == scorer and ours[ours.index("--formula-bonus") + 1] == "3"
        assert theirs[theirs.index("--output") + 1] != ours[ours.index("--output") + 1]

    def args(name):
        return dict(a.split("=", 1) for a in steps[name].argv if "=" in a and not a.startswith("--"))

    for ours, theirs in (("train-fixed", "train-blind-first"), ("train-policy", "train-blind")):
        a, b = args(ours), args(theirs)
        for key in ("learning_rate", "per_device_train_batch_size", "cutoff_len", "num_train_epochs"):
            assert a[key] == b[key], key
    assert args("train-blind-first")["model_name_or_path"] == args("train-fixed")["model_name_or_path"]
    assert args("train-blind")["model_name_or_path"] == args("train-blind-first")["output_dir"]
    assert "--policy-ratios" not in steps["build-blind-policy"].argv  # no <COMP_AUTO> rows: fixed ratios only
    ev = steps["eval-blind"]
    assert ev.serve == args("train-blind")["output_dir"] and ev.argv[ev.argv.index("--ratios") + 1] == ",".join(FIXED)


def test_the_forcing_step_serves_the_baseline_with_the_reasoning_config_on_every_split(tmp_path):
    from extra_cot.eval.server import reasoning_config_args
    from extra_cot.study.config import StudyConfig

    steps = _steps(tmp_path, task="chains", splits=["val", "test"], max_tokens=321)
    step = steps["budget-forcing"]
    assert step.serve == steps["eval-no-control"].serve and step.serve_args == reasoning_config_args()
    assert not steps["eval-no-control"].serve_args and not steps["eval"].serve_args
    argv = step.argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--dataset"] == [
        f"val={tmp_path}/data/val.jsonl", f"test={tmp_path}/data/test.jsonl"]
    assert argv[argv.index("--eval") + 1] == steps["eval"].argv[steps["eval"].argv.index("--output_dir") + 1]
    assert argv[argv.index("--max-tokens") + 1] == "321" and argv[argv.index("--port") + 1] == "{port}"
    assert step.check() is not None  # nothing evaluated yet
    assert argv[argv.index("--mode") + 1] == "s1"  # in the command: a folder forced in another mode is redone
    # every forced run written, but by the server's cut (a budgets.json from before the mode was recorded): not done
    cfg = StudyConfig(out=str(tmp_path), task="chains")
    for split, n in (("val", cfg.n_val), ("test", cfg.n_test)):
        for r in FIXED:
            run = forcing.run_dir(tmp_path / "eval_forced", split, r)
            run.mkdir(parents=True)
            (run / "metrics.json").write_text(json.dumps({"n": n}))
    budgets = tmp_path / "eval_forced" / forcing.BUDGETS_NAME
    budgets.write_text(json.dumps({"budgets": {}}))
    assert "forced in mode 'server'" in step.check()
    budgets.write_text(json.dumps({"budgets": {}, "mode": "s1"}))
    assert step.check() is None
    assert _steps(tmp_path, task="chains", splits=["test"])["budget-forcing"].argv.count("--dataset") == 1


def test_the_server_pool_starts_a_step_with_its_server_args_and_restarts_for_others(tmp_path, monkeypatch):
    from extra_cot.demo.runner import ServerPool
    from extra_cot.eval.server import VLLMServer, reasoning_config_args
    from extra_cot.study.config import StudyConfig

    started = []
    monkeypatch.setattr(VLLMServer, "start", lambda self: started.append(self.command()) or self)
    monkeypatch.setattr(VLLMServer, "stop", lambda self, *a, **k: None)
    pool = ServerPool(StudyConfig(out=str(tmp_path), vllm_args="--enforce-eager"), tmp_path / "logs", {})
    pool.ensure(str(tmp_path))
    pool.ensure(str(tmp_path))
    assert len(started) == 1 and "--reasoning-config" not in started[0]
    pool.ensure(str(tmp_path), reasoning_config_args())
    assert len(started) == 2 and started[1][-3:] == ["--enforce-eager", *reasoning_config_args()]
    pool.ensure(str(tmp_path))
    assert len(started) == 3 and "--reasoning-config" not in started[2]


def test_the_alternatives_step_times_and_blind_trainings(tmp_path):
    assert alt.minutes({"budget-forcing": 600.0, "eval": 900.0}, "forcing") == 10.0
    assert alt.minutes({"train-blind-first": 1500.0, "eval-blind": 300.0, "train-fixed": 1e6}, "blind") == 30.0
    (tmp_path / "models" / "blind").mkdir(parents=True)
    (tmp_path / "models" / "blind" / "trainer_state.json").write_text('{"global_step": 81}')
    assert alt.optimizer_steps(tmp_path) == {"blind_first": None, "blind": 81}


def test_task_chains_brings_its_sizes_for_the_flags_left_unset():
    from extra_cot.study.config import TASK_SIZES, StudyConfig, config_from_args, parser

    def conf(*argv):
        return config_from_args(parser().parse_args(list(argv)))

    chains = conf("--task", "chains")
    assert {k: getattr(chains, k) for k in TASK_SIZES["chains"]} == TASK_SIZES["chains"]
    assert (chains.n_sft, chains.n_test, chains.epochs, chains.sweep_samples) == (960, 500, 0.75, 4)
    mine = conf("--task", "chains", "--n-test", "40", "--epochs", "2", "--sweep-samples", "2")
    assert (mine.n_test, mine.epochs, mine.sweep_samples, mine.n_sft) == (40, 2.0, 2, 960)  # the user's flags win
    plain = StudyConfig()
    varied = conf()
    assert {k: getattr(varied, k) for k in TASK_SIZES["chains"]} == {k: getattr(plain, k) for k in TASK_SIZES["chains"]}
    assert (varied.n_sft, varied.n_test, varied.epochs) == (80, 200, 3.0)
    # the second pass's <COMP_AUTO> share: chains 0.5 (chosen on validation), varied the paper's; a flag wins
    assert (chains.policy_share, varied.policy_share) == ("0.5", "method")
    assert conf("--task", "chains", "--policy-share", "method").policy_share == "method"
