"""The demo runner: real subprocess steps; skip when done, redo downstream, name the failing command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from extra_cot.demo.config import DemoConfig, config_from_args, parser
from extra_cot.demo.runner import StepFailed, load_state, run_steps
from extra_cot.demo.steps import Step, build_steps, cpu_has_native_bf16, precision_overrides


def _opt(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _writer(name: str, out: Path) -> Step:
    """A step whose command appends one line to its output file and to a shared run log."""
    target = out / f"{name}.txt"
    code = (f"import pathlib; p = pathlib.Path({str(target)!r}); p.write_text('ok'); "
            f"open({str(out / 'runs.log')!r}, 'a').write({name!r} + '\\n')")
    return Step(name, f"write {name}", [sys.executable, "-c", code],
                lambda: None if target.is_file() else f"missing {target}", clean=[target])


def _cfg(tmp_path: Path, **kw) -> DemoConfig:
    return DemoConfig(out=str(tmp_path), **kw)


def _runs(tmp_path: Path) -> list[str]:
    log = tmp_path / "runs.log"
    return log.read_text().split() if log.is_file() else []


def test_demo_runner_runs_then_skips_then_redoes_downstream(tmp_path, capsys):
    steps = [_writer(n, tmp_path) for n in ("a", "b", "c")]
    run_steps(_cfg(tmp_path), steps)
    assert _runs(tmp_path) == ["a", "b", "c"]
    state = load_state(tmp_path)
    assert all(state["steps"][n]["wall_s"] is not None for n in "abc")
    run_steps(_cfg(tmp_path), steps)  # everything valid: nothing runs
    assert _runs(tmp_path) == ["a", "b", "c"]
    assert "skip (done" in capsys.readouterr().out
    run_steps(_cfg(tmp_path, force=["b"]), steps)  # b is redone, so c (downstream) is too, a is not
    assert _runs(tmp_path) == ["a", "b", "c", "b", "c"]
    (tmp_path / "a.txt").unlink()  # a lost its output: a reruns, then b and c are stale
    run_steps(_cfg(tmp_path), steps)
    assert _runs(tmp_path)[-3:] == ["a", "b", "c"]


def test_demo_runner_redoes_a_step_whose_command_changed(tmp_path):
    steps = [_writer("a", tmp_path), _writer("b", tmp_path)]
    run_steps(_cfg(tmp_path), steps)
    steps[0].argv = [steps[0].argv[0], "-c", steps[0].argv[2] + "  # changed"]  # e.g. other --epochs
    run_steps(_cfg(tmp_path), steps)
    assert _runs(tmp_path) == ["a", "b", "a", "b"]


def test_demo_runner_failure_names_command_log_and_rerun(tmp_path):
    bad = Step("boom", "fails", [sys.executable, "-c", "import sys; print('partial'); sys.exit(3)"],
               lambda: "never done")
    steps = [_writer("a", tmp_path), bad, _writer("c", tmp_path)]
    with pytest.raises(StepFailed) as err:
        run_steps(_cfg(tmp_path), steps)
    msg = str(err.value)
    assert "'boom' failed (exit 3)" in msg and "sys.exit(3)" in msg
    assert str(tmp_path / "logs" / "boom.log") in msg and "python" in msg and "-m extra_cot.demo" in msg
    assert "partial" in (tmp_path / "logs" / "boom.log").read_text()
    assert _runs(tmp_path) == ["a"]  # c never ran
    assert "a" in load_state(tmp_path)["steps"]  # progress is saved for the resume


def test_a_failure_names_the_command_this_run_was_started_with(tmp_path):
    """The study and the learning run use this runner too: their resume hint is their own command."""
    from extra_cot.demo.runner import record_invocation

    record_invocation(tmp_path, ["--study", "runs/study", "--steps", "16"], ["python", "benchmarks/chrpo_learning.py"])
    bad = Step("boom", "fails", [sys.executable, "-c", "import sys; sys.exit(3)"], lambda: "never done")
    with pytest.raises(StepFailed) as err:
        run_steps(_cfg(tmp_path), [bad])
    msg = str(err.value)
    assert "rerun the same command (resumes here): python benchmarks/chrpo_learning.py --study runs/study --steps 16" in msg
    assert "extra_cot.demo" not in msg


def test_demo_runner_rejects_a_step_whose_outputs_stay_invalid(tmp_path):
    liar = Step("liar", "exits 0, writes nothing", [sys.executable, "-c", "pass"], lambda: "missing x")
    with pytest.raises(StepFailed, match="exited 0 but its outputs are not valid: missing x"):
        run_steps(_cfg(tmp_path), [liar])


def test_demo_runner_unknown_force_lists_steps(tmp_path):
    with pytest.raises(ValueError, match="valid: \\['a'\\]"):
        run_steps(_cfg(tmp_path, force=["nope"]), [_writer("a", tmp_path)])


def test_demo_steps_cover_the_pipeline_in_order(tmp_path):
    cfg = config_from_args(parser().parse_args(["--out", str(tmp_path)]))
    steps = build_steps(cfg)
    assert [s.name for s in steps] == [
        "data", "model", "compress", "compress-rl", "build-fixed", "prepare-model", "train-fixed", "sweep", "gamma",
        "build-sft", "train", "eval-base", "eval", "build-rl", "rl-command", "rl-train", "rl-merge", "eval-rl", "plot",
        "summary"]
    by = {s.name: s for s in steps}
    # Stage 3 trains for real: verl main_ppo on the CPU platform from the SFT model, K steps, one batch
    # constant with build-rl's guard; the merged checkpoint is served for its own evaluation rows.
    train = by["rl-train"].argv
    assert train[1:3] == ["-m", "extra_cot.rl.cpu_launch"] and train[3].endswith("models/sft")
    assert f"trainer.total_training_steps={cfg.rl_steps}" in train
    build = by["build-rl"].argv
    batch = build[build.index("--train-batch-size") + 1]
    assert f"data.train_batch_size={batch}" in train
    assert build[build.index("--quotas") + 1] == cfg.rl_quotas == "none"  # the demo's few sweep rows (config help)
    assert _opt(build, "--tolerance") == "0.2"  # the window: docs/demo.md
    assert by["rl-merge"].argv[1:4] == ["-m", "verl.model_merger", "merge"]
    # the RL model at the mode CHRPO trains by default; --rl-eval widens it
    assert by["eval-rl"].serve.endswith("models/rl") and _opt(by["eval-rl"].argv, "--ratios") == "policy"
    assert _opt(by["eval"].argv, "--ratios") == "0.2,0.4,0.6,0.8,1.0,policy"
    wide = config_from_args(parser().parse_args(["--out", str(tmp_path), "--rl-eval", "1.0,policy"]))
    assert _opt({s.name: s for s in build_steps(wide)}["eval-rl"].argv, "--ratios") == "1.0,policy"
    with pytest.raises(ValueError, match="--rl-eval 'base'"):
        config_from_args(parser().parse_args(["--out", str(tmp_path), "--rl-eval", "base"]))
    assert by["eval-base"].serve.endswith("models/base") and by["eval"].serve.endswith("models/sft")
    # two passes (issue 17): the first-pass model is swept on the RL problems; their γ* (study.gamma) labels the
    # second pass's <COMP_AUTO> rows, and the same sweep is build-rl's input
    sweep = by["sweep"].argv
    assert by["sweep"].serve.endswith("models/fixed") and sweep[sweep.index("--n-samples") + 1] == "3"
    assert by["gamma"].argv[1:3] == ["-m", "extra_cot.study.gamma"]
    assert _opt(by["gamma"].argv, "--sweep") == f"{_opt(sweep, '--output_dir')}/chains_rl"
    assert _opt(by["build-rl"].argv, "--sweep") == _opt(sweep, "--output_dir")
    assert _opt(by["build-sft"].argv, "--policy-ratios") == _opt(by["gamma"].argv, "--out")
    assert _opt(by["build-sft"].argv, "--input") == _opt(by["compress-rl"].argv, "--output")
    assert _opt(by["build-fixed"].argv, "--input") == _opt(by["compress"].argv, "--output")
    assert "--policy-ratios" not in by["build-fixed"].argv
    first, second = by["train-fixed"].argv, by["train"].argv
    assert "num_train_epochs=1" in first and "num_train_epochs=1.5" in second
    # the second pass trains at its own, lower learning rate (docs/demo.md: 5e-4 erased the first pass)
    assert "learning_rate=0.0005" in first and "learning_rate=5e-05" in second
    assert f"output_dir={tmp_path / 'models/fixed'}" in first and f"model_name_or_path={tmp_path / 'models/fixed'}" in second
    assert "0.2,0.4,0.6,0.8,1.0,policy" in by["eval"].argv
    assert by["train"].argv[1:3] == ["train", "examples/smollm2-135m_demo.yaml"]
    precision = [a for a in by["train"].argv if a.startswith(("bf16", "use_cpu"))]
    assert precision == []  # fp32 on every CPU by default (docs/demo.md: bf16 lost the control at the demo's sizes)
    bf16 = build_steps(config_from_args(parser().parse_args(["--out", str(tmp_path), "--precision", "bf16"])))
    assert [a for a in {s.name: s for s in bf16}["train"].argv if a.startswith(("bf16", "use_cpu"))] == ["bf16=true", "use_cpu=true"]
    tiny = build_steps(config_from_args(parser().parse_args(["--out", str(tmp_path), "--tiny"])))
    assert {s.serve for s in tiny if s.serve} == {str(tmp_path / "models/fixed"), str(tmp_path / "models/sft")}


def test_demo_precision_overrides(tmp_path):
    flags = tmp_path / "cpuinfo"
    flags.write_text("flags\t\t: fpu sse avx512f avx512_bf16 avx2\n")
    assert cpu_has_native_bf16(str(flags))
    flags.write_text("flags\t\t: fpu sse avx512f avx2\n")
    assert not cpu_has_native_bf16(str(flags)) and not cpu_has_native_bf16(str(tmp_path / "absent"))
    assert precision_overrides("auto", lambda: True) == ["bf16=true", "use_cpu=true"]
    assert precision_overrides("auto", lambda: False) == precision_overrides("fp32", lambda: True) == []
    assert precision_overrides("bf16", lambda: False) == ["bf16=true", "use_cpu=true"]
    with pytest.raises(ValueError, match="--precision"):
        DemoConfig(out=str(tmp_path), precision="fp16")


def test_demo_steps_redo_outputs_written_with_other_options(tmp_path):
    """A build-rl output from another --rl-quotas is not reused; another --untagged-share (or
    --decisive-bonus) is another build-sft (compress) command line, which the runner redoes (runner._needs_run)."""
    import json

    by = {s.name: s for s in build_steps(DemoConfig(out=str(tmp_path)))}
    rl = tmp_path / "rl"
    rl.mkdir()
    (rl / "train.parquet").write_bytes(b"")
    for quotas, done in (("method", False), ("none", True)):
        (rl / "build_rl_config.json").write_text(json.dumps({"quotas": quotas}))
        rl_why = by["build-rl"].check()
        assert (rl_why is None) == done
        if not done:
            assert "'quotas': 'method'" in rl_why and "'quotas': 'none'" in rl_why
    other = {s.name: s for s in build_steps(DemoConfig(out=str(tmp_path), untagged_share=0.5))}
    for name in ("build-fixed", "build-sft"):
        assert _opt(by[name].argv, "--untagged-share") == "0" and _opt(other[name].argv, "--untagged-share") == "0.5"
    bonus = {s.name: s for s in build_steps(DemoConfig(out=str(tmp_path), decisive_bonus=0.0))}
    for name in ("compress", "compress-rl"):
        assert _opt(by[name].argv, "--decisive-bonus") == "3" and _opt(bonus[name].argv, "--decisive-bonus") == "0"


def test_demo_config_validation_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="--test must be >= 1"):
        DemoConfig(out=str(tmp_path), test=0)
    with pytest.raises(ValueError, match="--sft-config"):
        DemoConfig(out=str(tmp_path), sft_config="nope.yaml")


def test_demo_runner_only_runs_the_named_steps(tmp_path, capsys):
    steps = [_writer(n, tmp_path) for n in ("a", "b", "c")]
    run_steps(_cfg(tmp_path), steps)
    run_steps(_cfg(tmp_path, only=["b"]), steps)  # b reruns although done; a and c do not run
    assert _runs(tmp_path) == ["a", "b", "c", "b"]
    assert capsys.readouterr().out.count("skip (not in --only)") == 2
    (tmp_path / "a.txt").unlink()  # an earlier step lost its outputs: --only b names it
    with pytest.raises(StepFailed, match="earlier step 'a' is not done"):
        run_steps(_cfg(tmp_path, only=["b"]), steps)
    with pytest.raises(ValueError, match="--only \\['x'\\]: unknown"):
        run_steps(_cfg(tmp_path, only=["x"]), steps)


def test_until_runs_the_steps_up_to_it_then_stops(tmp_path, capsys):
    steps = [_writer(n, tmp_path) for n in ("a", "b", "c", "d")]
    run_steps(_cfg(tmp_path, until="b"), steps)
    assert _runs(tmp_path) == ["a", "b"] and "stopped after b (--until)" in capsys.readouterr().out
    run_steps(_cfg(tmp_path, until="c"), steps)  # resumes: a and b are done, c runs, d does not
    assert _runs(tmp_path) == ["a", "b", "c"]
    run_steps(_cfg(tmp_path, only=["b", "d"], until="c"), steps)  # with --only: b reruns, d is past the stop
    assert _runs(tmp_path) == ["a", "b", "c", "b"]
    (tmp_path / "c.txt").unlink()  # a step after the stop that is not done does not stop --only
    run_steps(_cfg(tmp_path, only=["a"], until="b"), steps)
    assert _runs(tmp_path) == ["a", "b", "c", "b", "a"]
    with pytest.raises(ValueError, match="--until \\['x'\\]: unknown"):
        run_steps(_cfg(tmp_path, until="x"), steps)


@pytest.mark.parametrize(("module", "cls"), [("extra_cot.demo.config", "DemoConfig"), ("extra_cot.study.config", "StudyConfig"),
                                           ("extra_cot.demo.validate", "ValidateConfig"),
                                           ("extra_cot.study.learning", "LearningConfig")])
def test_every_experiment_takes_until(module, cls):
    import argparse
    import importlib

    from extra_cot.cliargs import add_dataclass_arguments

    config = getattr(importlib.import_module(module), cls)
    p = argparse.ArgumentParser()
    add_dataclass_arguments(p, config)
    flag = next(a for a in p._actions if a.dest == "until")
    assert flag.option_strings == ["--until"] and flag.default == "" and "STEP" in flag.help


@pytest.mark.parametrize("runner", ["extra_cot.demo.config", "extra_cot.study.config", "extra_cot.study.learning"])
def test_demo_server_pool_passes_vllm_args_and_reserved_cpus_to_the_process(tmp_path, monkeypatch, runner):
    """The launched process itself sees ``--vllm-args`` in its argv and ``--vllm-reserved-cpus`` in
    its environment (a stand-in command echoes both; readiness is not what is tested), for every run
    that serves models through the pool: the demo, the study and the CHRPO learning run."""
    import importlib

    from extra_cot.demo.runner import ServerPool

    module = importlib.import_module(runner)
    parser, config_from_args = module.parser, module.config_from_args
    from extra_cot.eval.server import VLLMServer

    real_command = VLLMServer.command
    seen: dict[str, list[str]] = {}

    def echo(self):
        seen["vllm"] = real_command(self)
        code = "import os, sys; print(os.environ.get('VLLM_CPU_NUM_OF_RESERVED_CPU', '<unset>'), *sys.argv[1:])"
        return [sys.executable, "-c", code, *seen["vllm"][3:]]

    monkeypatch.setattr(VLLMServer, "command", echo)
    monkeypatch.setattr(VLLMServer, "_wait_ready", lambda self: self._proc.wait(timeout=30))
    for flags, reserved, args in ((["--vllm-args", "--enforce-eager --dtype float32"], "0",
                                   ["--enforce-eager", "--dtype", "float32"]),
                                  (["--vllm-args", "", "--vllm-reserved-cpus", "-1"], "<unset>", [])):
        monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
        cfg = config_from_args(parser().parse_args(["--out", str(tmp_path), *flags]))
        logs = tmp_path / f"logs{reserved}"  # not created: the pool makes it (a run whose first step serves)
        pool = ServerPool(cfg, logs, {})
        pool.ensure(str(tmp_path))
        pool.stop()
        printed = (logs / f"vllm_{tmp_path.name}.log").read_text().split()
        assert printed[0] == reserved
        assert seen["vllm"][len(seen["vllm"]) - len(args):] == args  # appended after the demo's own
        assert printed[1:] == seen["vllm"][3:]
        assert ("--enforce-eager" in printed) == bool(args)


def test_demo_runner_a_step_can_end_its_group_with_a_reason(tmp_path, capsys):
    """build-rl's exit 3 (too few rows for one RL batch) skips the rest of Stage 3, not the run."""
    gate = Step("gate", "ends its group", [sys.executable, "-c",
                                           "import sys; print('3 train rows, fewer than one batch of 4'); sys.exit(3)"],
                lambda: "not built", group="g", ends_group_on=(3,))
    later = _writer("in_group", tmp_path)
    later.group = "g"
    steps = [_writer("a", tmp_path), gate, later, _writer("after", tmp_path)]
    run_steps(_cfg(tmp_path), steps)
    assert _runs(tmp_path) == ["a", "after"]  # the group's later step is skipped, the steps after it run
    state = load_state(tmp_path)
    assert state["steps"]["gate"]["ended_group"] == "g"
    assert state["steps"]["gate"]["reason"] == "3 train rows, fewer than one batch of 4"
    assert "in_group" not in state["steps"]
    assert "g cannot run: 3 train rows" in capsys.readouterr().out
    run_steps(_cfg(tmp_path), steps)  # resumed on the same inputs: nothing reruns, the group stays skipped
    assert _runs(tmp_path) == ["a", "after"] and "in_group" not in load_state(tmp_path)["steps"]
    assert "it ended g last time: 3 train rows" in capsys.readouterr().out
    run_steps(_cfg(tmp_path, force=["gate"]), steps)  # forced: the gate is tried again, then the steps after it
    assert _runs(tmp_path) == ["a", "after", "after"]
    assert load_state(tmp_path)["steps"]["gate"]["ended_group"] == "g"


def test_demo_runner_another_exit_code_of_a_gate_still_fails(tmp_path):
    gate = Step("gate", "fails otherwise", [sys.executable, "-c", "import sys; sys.exit(2)"], lambda: "not built",
                group="g", ends_group_on=(3,))
    with pytest.raises(StepFailed, match="'gate' failed \\(exit 2\\)"):
        run_steps(_cfg(tmp_path), [gate, _writer("after", tmp_path)])
    assert _runs(tmp_path) == []


def test_demo_step_that_ends_a_group_needs_one():
    with pytest.raises(ValueError, match="ends_group_on needs a group"):
        Step("gate", "no group", ["true"], lambda: None, ends_group_on=(3,))


def test_demo_build_rl_ends_stage3_and_only_stage3(tmp_path):
    from extra_cot.demo.steps import STAGE3
    from extra_cot.rl.build_rl import EXIT_TOO_FEW_ROWS

    steps = build_steps(config_from_args(parser().parse_args(["--out", str(tmp_path)])))
    by_name = {s.name: s for s in steps}
    assert by_name["build-rl"].ends_group_on == (EXIT_TOO_FEW_ROWS,)
    grouped = [s.name for s in steps if s.group == STAGE3]
    assert grouped == ["build-rl", "rl-command", "rl-train", "rl-merge", "eval-rl"]
    assert [s.name for s in steps][-2:] == ["plot", "summary"]  # still run after a skipped Stage 3
