"""examples/reproduce_qwen3-1.7b.sh: every step printed by --dry-run, one path layout end to end,
and the LLaMA-Factory and verl configs it launches compose on CPU with the hosts' own parsers."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "reproduce_qwen3-1.7b.sh"
SFT_YAML = REPO / "examples" / "qwen3-1.7b_mixed.yaml"
STEPS = ["compress", "build-sft", "prepare-model", "train", "serve", "eval", "eval", "stop", "build-rl",
         "chrpo", "merge", "serve", "eval", "stop"]


def dry_run(**env) -> list[list[str]]:
    done = subprocess.run(["bash", str(SCRIPT.relative_to(REPO)), "--dry-run"], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    lines = [line[2:] for line in done.stdout.splitlines() if line.startswith("+ ")]
    assert len(lines) == len(done.stdout.splitlines()), "every output line is a printed command"
    return [shlex.split(line.removesuffix(" &")) for line in lines]


def _step(argv: list[str]) -> str:
    if argv[0] == "extra-cot":
        return argv[1]
    if argv[:2] == ["llamafactory-cli", "train"]:
        return "train"
    if argv[:2] == ["vllm", "serve"]:
        return "serve"
    if argv[0] == "kill":
        return "stop"
    if argv[0] == "env" and "examples/run_qwen3-1.7b_chrpo.sh" in argv:
        return "chrpo"
    if "verl.model_merger" in argv:
        return "merge"
    raise AssertionError(f"unexpected command {argv}")


def _opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _kv(argv: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in argv if re.fullmatch(r"[A-Za-z_][\w.+]*=.*", a))


def commands() -> dict[str, list[list[str]]]:
    by: dict[str, list[list[str]]] = {}
    cmds = dry_run()
    assert [_step(c) for c in cmds] == STEPS
    for cmd in cmds:
        by.setdefault(_step(cmd), []).append(cmd)
    return by


def test_dry_run_prints_the_whole_pipeline_in_one_path_layout():
    by = commands()
    sft_yaml = yaml.safe_load(SFT_YAML.read_text())
    train = _kv(by["train"][0])
    assert by["train"][0][2] == "examples/qwen3-1.7b_mixed.yaml"
    assert _opt(by["compress"][0], "--output") == _opt(by["build-sft"][0], "--input")
    # the YAML already holds the layout: the script's explicit overrides repeat it
    assert _opt(by["build-sft"][0], "--output-dir") == train["dataset_dir"] == sft_yaml["dataset_dir"]
    assert _opt(by["prepare-model"][0], "--out") == train["model_name_or_path"] == sft_yaml["model_name_or_path"]
    sft_model = train["output_dir"]
    assert sft_model == sft_yaml["output_dir"] == by["serve"][0][2]
    sweep = by["eval"][1]
    assert _opt(sweep, "--n-samples") == "3" and _opt(sweep, "--ratios") == "0.2,0.4,0.6,0.8,1.0"
    build_rl = by["build-rl"][0]
    assert _opt(build_rl, "--sweep") == _opt(sweep, "--output_dir")
    chrpo = _kv(by["chrpo"][0])
    assert chrpo["SFT_MODEL"] == sft_model and chrpo["RL_DATA"] == _opt(build_rl, "--output-dir")
    assert chrpo["data.train_batch_size"] == _opt(build_rl, "--train-batch-size")  # one batch size for both
    merge = by["merge"][0]
    assert _opt(merge, "--local_dir").startswith(chrpo["OUT"] + "/global_step_")
    assert _opt(merge, "--target_dir") == by["serve"][1][2]
    outputs = [_opt(e, "--output_dir") for e in by["eval"]]
    assert len(set(outputs)) == 3  # SFT eval, sweep, CHRPO eval never share a folder
    # the RL script's own default is the same checkpoint folder
    assert "OUT=${OUT:-" + chrpo["OUT"] + "}" in (REPO / "examples/run_qwen3-1.7b_chrpo.sh").read_text()


def test_readme_uses_the_same_layout():
    readme = (REPO / "README.md").read_text()
    assert "examples/reproduce_qwen3-1.7b.sh --dry-run" in readme
    # the GPU block that follows it (the demo and CPU paths have their own runs/ layout)
    readme = readme.split("examples/reproduce_qwen3-1.7b.sh --dry-run", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    layout = set()
    for cmd in dry_run():
        layout |= {w for a in cmd for w in re.split(r"[=:]", a) if re.match(r"(data|models|saves|out)/", w)}
    named = set(re.findall(r"(?<![\w/.-])((?:data|models|saves|out)/[\w./-]*[\w])", readme))
    stray = {p for p in named if not any(p == x or x.startswith(p + "/") or p.startswith(x + "/") for x in layout)}
    assert not stray, f"README names paths outside the layout of {SCRIPT.name}: {sorted(stray)}"


def test_dry_run_takes_inputs_from_the_environment():
    cmds = dry_run(BASE_MODEL="/models/Qwen3-1.7B", RL_TRAIN_BATCH="256", N_GPUS="4")
    by = {_step(c): c for c in cmds}
    assert _opt(by["prepare-model"], "--src") == "/models/Qwen3-1.7B"
    assert _kv(by["chrpo"])["data.train_batch_size"] == "256" == _opt(by["build-rl"], "--train-batch-size")
    assert _kv(by["chrpo"])["N_GPUS"] == "4"


def test_llamafactory_config_composes_with_the_hosts_parser():
    """LLaMA-Factory's own reader (YAML + key=value, as `llamafactory-cli train` merges them) and
    argument parser accept the printed SFT command, without training."""
    pytest.importorskip("llamafactory")
    from llamafactory.hparams.parser import _parse_train_args
    from omegaconf import OmegaConf

    argv = commands()["train"][0]
    cfg = OmegaConf.to_container(OmegaConf.merge(OmegaConf.load(REPO / argv[2]), OmegaConf.from_cli(argv[3:])))
    # GPU-only parts on this CPU: DeepSpeed is not installed here and bf16 needs `use_cpu` to parse
    assert cfg.pop("deepspeed") == "examples/deepspeed/ds_z3_config.json"
    model, data, training, finetuning, _ = _parse_train_args({**cfg, "use_cpu": True})
    assert model.model_name_or_path == _kv(argv)["model_name_or_path"]
    assert (data.dataset_dir, data.dataset, data.template) == (_kv(argv)["dataset_dir"], ["extra_cot_sft"], "qwen3_comp")
    assert training.output_dir == _kv(argv)["output_dir"] and training.bf16 and finetuning.finetuning_type == "full"


@pytest.mark.slow
def test_verl_config_composes_with_cfg_job(tmp_path):
    """The printed CHRPO command, run with `--cfg job` (Hydra composes, nothing trains)."""
    pytest.importorskip("verl")
    argv = commands()["chrpo"][0]
    env = {**os.environ, **_kv(argv[1 : argv.index("bash")]), "RAY_AUTH_MODE": "disabled",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    script = argv.index("bash")
    done = subprocess.run(["bash", str(REPO / argv[script + 1]), *argv[script + 2:], "--cfg", "job"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = yaml.safe_load(done.stdout)
    kv = _kv(argv)
    assert cfg["algorithm"]["adv_estimator"] == "chrpo" and cfg["reward"]["reward_manager"]["name"] == "chrpo"
    assert cfg["actor_rollout_ref"]["model"]["path"] == kv["SFT_MODEL"]
    assert cfg["data"]["train_files"] == f"{kv['RL_DATA']}/train.parquet"
    assert cfg["data"]["train_batch_size"] == int(kv["data.train_batch_size"])
    assert cfg["trainer"]["default_local_dir"] == kv["OUT"] and cfg["trainer"]["n_gpus_per_node"] == int(kv["N_GPUS"])
