"""The experiments' one runner entry (:mod:`extra_cot.experiment`): real subprocess steps, every exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from extra_cot import experiment
from extra_cot.demo.config import DemoConfig, config_from_args, parser
from extra_cot.demo.runner import load_state
from extra_cot.demo.steps import Step


def _steps(cfg: DemoConfig, fail: bool = False, interrupt: bool = False) -> list[Step]:
    out = cfg.root / "a.txt"
    code = "import sys; sys.exit(3)" if fail else f"import pathlib; pathlib.Path({str(out)!r}).write_text('ok')"
    check = (lambda: (_ for _ in ()).throw(KeyboardInterrupt)) if interrupt else (
        lambda: None if out.is_file() else f"missing {out}")
    return [Step("a", "write a", [sys.executable, "-c", code], check, clean=[out])]


def _experiment(finished: list, **kw) -> experiment.Experiment:
    def finish(cfg, args) -> str:
        finished.append((cfg.out, args.list))
        return f"result: {cfg.root / 'a.txt'}"

    return experiment.Experiment(
        name="toy", prog=("python", "-m", "toy"), error_name="toy", config_file="toy_config.json", parser=parser,
        config_from_args=config_from_args, build_steps=kw.pop("build_steps", _steps), finish=finish, **kw)


def test_main_runs_the_steps_then_finishes_and_records_the_invocation(tmp_path, capsys):
    finished: list = []
    argv = ["--out", str(tmp_path), "--precision", "fp32"]
    assert experiment.main(_experiment(finished), argv) == 0
    assert (tmp_path / "a.txt").read_text() == "ok" and finished == [(str(tmp_path), False)]
    assert json.loads((tmp_path / "toy_config.json").read_text())["out"] == str(tmp_path)
    state = load_state(tmp_path)
    assert state["invocations"][-1]["command"].startswith(f"python -m toy --out {tmp_path}")
    assert "a" in state["steps"]
    assert "toy finished in " in capsys.readouterr().out


def test_main_lists_without_running(tmp_path, capsys):
    finished: list = []
    assert experiment.main(_experiment(finished), ["--out", str(tmp_path), "--list"]) == 0
    assert "[1/1] a: write a" in capsys.readouterr().out
    assert not (tmp_path / "a.txt").exists() and finished == [] and not (tmp_path / "toy_config.json").exists()


@pytest.mark.parametrize(("kw", "code", "said"), [
    ({"build_steps": lambda cfg: _steps(cfg, fail=True)}, 1, "TOY FAILED: step 'a' failed (exit 3)"),
    ({"build_steps": lambda cfg: _steps(cfg, interrupt=True)}, 130, "interrupted; rerun the same command"),
])
def test_main_maps_a_failed_or_interrupted_step_to_its_exit_code(tmp_path, capsys, kw, code, said):
    finished: list = []
    assert experiment.main(_experiment(finished, **kw), ["--out", str(tmp_path)]) == code
    assert said in capsys.readouterr().err and finished == []


def test_main_names_a_bad_option_in_one_line_exit_2(tmp_path, capsys):
    assert experiment.main(_experiment([]), ["--out", str(tmp_path), "--rl-tolerance", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("toy: ") and len(err.strip().splitlines()) == 1 and not Path(tmp_path, "toy_config.json").exists()


def test_main_catches_bad_steps_only_where_told(tmp_path, capsys):
    def broken(error: type[Exception]):
        def build(cfg):
            raise error(f"{cfg.root}/data.jsonl: no such file")
        return build

    argv = ["--out", str(tmp_path), "--list"]
    assert experiment.main(_experiment([], build_steps=broken(OSError), user_errors=(ValueError, OSError),
                                       steps_checked=True), argv) == 2  # the validation table's data file
    assert capsys.readouterr().err.startswith("toy: ")
    with pytest.raises(ValueError, match="no such file"):  # a demo's, study's or learning run's steps: a crash, as before
        experiment.main(_experiment([], build_steps=broken(ValueError)), argv)


@pytest.mark.parametrize(("module", "name"), [("extra_cot.demo.__main__", "DEMO"), ("extra_cot.study.__main__", "STUDY"),
                                              ("extra_cot.study.learning", "LEARNING")])
def test_the_experiments_use_the_one_entry(module, name):
    import importlib

    exp = getattr(importlib.import_module(module), name)
    assert isinstance(exp, experiment.Experiment) and exp.parser().prog == " ".join(exp.prog)
