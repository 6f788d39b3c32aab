"""examples/reproduce_qwen3-1.7b.sh: every step printed by --dry-run, one path layout end to end, absolute
paths from any directory, sizes that follow N_GPUS, Qwen3's lengths and sampling, and the LLaMA-Factory
and verl configs it launches composed on CPU with the hosts' own parsers."""

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
RL_SCRIPT = REPO / "examples" / "run_qwen3-1.7b_chrpo.sh"
SFT_YAML = REPO / "examples" / "qwen3-1.7b_mixed.yaml"
STEPS = ["compress", "build-sft", "prepare-model", "train", "serve", "eval", "eval", "stop", "build-rl",
         "chrpo", "merge", "serve", "eval", "stop"]
#: Qwen3's documented thinking-mode sampling and output lengths (docs/hosts.md, "The GPU recipe").
QWEN3_SAMPLING = {"--temperature": "0.6", "--top-p": "0.95", "--top-k": "20"}
EVAL_MAX_TOKENS, MAX_MODEL_LEN, RL_MAX_RESPONSE = 38912, 40960, 32768


def run_dry(cwd: Path = REPO, **env) -> tuple[list[list[str]], list[str]]:
    """(printed commands as argv lists, '# ' note lines) of ``bash SCRIPT --dry-run`` run in ``cwd``."""
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run"], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    notes = [line for line in lines if line.startswith("# ")]
    cmds = [line[2:] for line in lines if line.startswith("+ ")]
    assert len(cmds) + len(notes) == len(lines), "every output line is a printed command or a '# ' note"
    return [shlex.split(line.removesuffix(" &")) for line in cmds], notes


def dry_run(**env) -> list[list[str]]:
    return run_dry(**env)[0]


def _step(argv: list[str]) -> str:
    if argv[0] == "extra-cot":
        return argv[1]
    if "llamafactory-cli" in argv and "train" in argv:
        return "train"
    if "vllm" in argv and "serve" in argv:
        return "serve"
    if argv[0] == "kill":
        return "stop"
    if argv[0] == "env" and str(RL_SCRIPT) in argv:
        return "chrpo"
    if "verl.model_merger" in argv:
        return "merge"
    raise AssertionError(f"unexpected command {argv}")


def _opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _kv(argv: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in argv if re.fullmatch(r"[A-Za-z_][\w.+]*=.*", a))


def _steps(cmds: list[list[str]]) -> list[str]:
    """Step names, one 'serve' per group of servers started together."""
    names = [_step(c) for c in cmds]
    return [n for i, n in enumerate(names) if not (n == "serve" and i and names[i - 1] == "serve")]


def commands(**env) -> dict[str, list[list[str]]]:
    by: dict[str, list[list[str]]] = {}
    cmds = dry_run(**env)
    assert _steps(cmds) == STEPS
    for cmd in cmds:
        by.setdefault(_step(cmd), []).append(cmd)
    return by


def _sft_yaml_arg(train: list[str]) -> str:
    return train[train.index("train") + 1]


def test_dry_run_prints_the_whole_pipeline_in_one_path_layout():
    by = commands()
    sft_yaml = yaml.safe_load(SFT_YAML.read_text())
    train = _kv(by["train"][0])
    assert _sft_yaml_arg(by["train"][0]) == str(SFT_YAML)
    assert _opt(by["compress"][0], "--output") == _opt(by["build-sft"][0], "--input")
    # the YAML holds the same layout, relative to the repository root (the default WORKDIR)
    assert _opt(by["build-sft"][0], "--output-dir") == train["dataset_dir"] == str(REPO / sft_yaml["dataset_dir"])
    assert _opt(by["prepare-model"][0], "--out") == train["model_name_or_path"] == str(REPO / sft_yaml["model_name_or_path"])
    sft_model = train["output_dir"]
    assert sft_model == str(REPO / sft_yaml["output_dir"]) == by["serve"][0][by["serve"][0].index("serve") + 1]
    assert train["deepspeed"] == str(REPO / sft_yaml["deepspeed"])
    sweep = by["eval"][1]
    assert _opt(sweep, "--n-samples") == "3" and _opt(sweep, "--ratios") == "0.2,0.4,0.6,0.8,1.0"
    build_rl = by["build-rl"][0]
    assert _opt(build_rl, "--sweep") == _opt(sweep, "--output_dir")
    chrpo = _kv(by["chrpo"][0])
    assert chrpo["SFT_MODEL"] == sft_model and chrpo["RL_DATA"] == _opt(build_rl, "--output-dir")
    assert chrpo["data.train_batch_size"] == _opt(build_rl, "--train-batch-size")  # one batch size for both
    merge = by["merge"][0]
    assert _opt(merge, "--local_dir").startswith(chrpo["OUT"] + "/global_step_")
    rl_model = _opt(merge, "--target_dir")
    assert {s[s.index("serve") + 1] for s in by["serve"]} == {sft_model, rl_model}
    outputs = [_opt(e, "--output_dir") for e in by["eval"]]
    assert len(set(outputs)) == 3  # SFT eval, sweep, CHRPO eval never share a folder
    # the RL script's own default is the same checkpoint folder (relative to the repository root)
    assert "OUT=$(abspath \"${OUT:-" + os.path.relpath(chrpo["OUT"], REPO) + "}\")" in RL_SCRIPT.read_text()


def _paths(cmds: list[list[str]]) -> set[str]:
    """Every word (or key=value / name=path:kind value) of the printed commands that names a path."""
    found = set()
    for cmd in cmds:
        for word in cmd[1:]:
            value = word.split("=", 1)[1] if re.match(r"[\w.+]+=", word) else word
            value = re.sub(r":(gsm8k|math)$", "", value)
            if "/" in value and not re.fullmatch(r"[\w.-]+/[\w.-]+", value):  # not a hub id (org/name)
                found.add(value)
    return found


def test_dry_run_from_another_directory_prints_absolute_paths_that_exist(tmp_path):
    """Started outside the repository (relative inputs from there), every path is absolute: inputs and
    the repository's configs exist, and everything else is an output inside WORKDIR."""
    elsewhere = tmp_path / "elsewhere"
    work = tmp_path / "work"
    (elsewhere / "in").mkdir(parents=True)
    work.mkdir()
    for name in ("traces.jsonl", "rl.jsonl", "gsm8k.jsonl", "math500.jsonl"):
        (elsewhere / "in" / name).write_text("{}\n")
    (elsewhere / "in" / "base").mkdir()
    cmds, _ = run_dry(cwd=elsewhere, WORKDIR=str(work), BASE_MODEL="in/base", TRACES="in/traces.jsonl",
                      RL_QUESTIONS="in/rl.jsonl", EVAL_SETS="gsm8k=in/gsm8k.jsonl math500=in/math500.jsonl:math")
    paths = _paths(cmds)
    assert len(paths) >= 15, paths
    relative = sorted(p for p in paths if not p.startswith("/"))
    assert not relative, f"relative paths in the dry run: {relative}"
    dangling = sorted(p for p in paths if not Path(p).exists() and not p.startswith(f"{work}/"))
    assert not dangling, f"paths that neither exist nor are outputs inside WORKDIR: {dangling}"
    for config in (SFT_YAML, REPO / "examples/deepspeed/ds_z3_config.json", RL_SCRIPT):
        assert str(config) in paths, config
    for given in ("in/base", "in/traces.jsonl", "in/rl.jsonl", "in/gsm8k.jsonl", "in/math500.jsonl"):
        assert str(elsewhere / given) in paths, given


@pytest.mark.parametrize("n_gpus", [1, 2, 4, 8])
def test_sizes_follow_the_gpu_count(n_gpus):
    """SFT global batch 128 on every count; one vLLM server per GPU, all of them behind each eval."""
    cmds, notes = run_dry(N_GPUS=str(n_gpus))
    by = {}
    for cmd in cmds:
        by.setdefault(_step(cmd), []).append(cmd)
    train = by["train"][0]
    kv = _kv(train)
    assert kv["NPROC_PER_NODE"] == str(n_gpus) and kv["FORCE_TORCHRUN"] == "1"
    per_device, accum = int(kv["per_device_train_batch_size"]), int(kv["gradient_accumulation_steps"])
    assert per_device * accum * n_gpus == 128
    assert f"per-device batch {per_device} x gradient accumulation {accum} x {n_gpus} GPUs = global batch 128" in "\n".join(notes)
    serves = by["serve"][:n_gpus]
    assert len(by["serve"]) == 2 * n_gpus
    assert [_kv(s)["CUDA_VISIBLE_DEVICES"] for s in serves] == [str(i) for i in range(n_gpus)]
    ports = [_opt(s, "--port") for s in serves]
    assert len(set(ports)) == n_gpus
    for ev in by["eval"]:
        assert sorted(_opt(ev, "--endpoints").split(",")) == sorted(f"127.0.0.1:{p}" for p in ports)
    assert _kv(by["chrpo"][0])["N_GPUS"] == str(n_gpus)


def test_a_gpu_count_that_cannot_keep_the_batch_is_refused():
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, "N_GPUS": "3"})
    assert done.returncode == 2 and "N_GPUS=3" in done.stderr and not done.stdout


def test_lengths_and_sampling_are_qwen3s():
    """Eval and sweep: Qwen3's sampling and 38,912 new tokens in a 40,960 context; CHRPO: 32,768-token
    responses; all above the SFT cutoff and far above ratio 1.0's mean think length (1,675 / 2,092)."""
    by = commands()
    for ev in by["eval"]:
        assert {k: _opt(ev, k) for k in QWEN3_SAMPLING} == QWEN3_SAMPLING
        assert int(_opt(ev, "--max-tokens")) == EVAL_MAX_TOKENS
    for serve in by["serve"]:
        assert int(_opt(serve, "--max-model-len")) == MAX_MODEL_LEN >= EVAL_MAX_TOKENS + 2048  # room for the prompt
    cutoff = int(_kv(by["train"][0])["cutoff_len"])
    # build-sft skips rows over the same cutoff, counted with the model's own tokenizer
    assert int(_opt(by["build-sft"][0], "--cutoff-len")) == cutoff
    assert _opt(by["build-sft"][0], "--tokenizer") == _opt(by["prepare-model"][0], "--src")
    assert int(_kv(by["chrpo"][0])["MAX_RESPONSE_LENGTH"]) == RL_MAX_RESPONSE >= cutoff >= 6144
    assert min(EVAL_MAX_TOKENS, RL_MAX_RESPONSE) > 10 * 2092


def test_dry_run_takes_inputs_from_the_environment():
    cmds = dry_run(BASE_MODEL="/models/Qwen3-1.7B", RL_TRAIN_BATCH="256", N_GPUS="4")
    by = {_step(c): c for c in cmds}
    assert _opt(by["prepare-model"], "--src") == "/models/Qwen3-1.7B"
    assert _kv(by["chrpo"])["data.train_batch_size"] == "256" == _opt(by["build-rl"], "--train-batch-size")
    assert _kv(by["chrpo"])["N_GPUS"] == "4"


def test_readme_uses_the_same_layout():
    readme = (REPO / "README.md").read_text()
    assert "examples/reproduce_qwen3-1.7b.sh --dry-run" in readme
    # the GPU block that follows it (the demo and CPU paths have their own runs/ layout)
    readme = readme.split("examples/reproduce_qwen3-1.7b.sh --dry-run", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    layout = set()
    for cmd in dry_run():
        words = [w.replace(f"{REPO}/", "") for a in cmd for w in re.split(r"[=:]", a)]
        layout |= {w for w in words if re.match(r"(data|models|saves|out)/", w)}
    named = set(re.findall(r"(?<![\w/.-])((?:data|models|saves|out)/[\w./-]*[\w])", readme))
    stray = {p for p in named if not any(p == x or x.startswith(p + "/") or p.startswith(x + "/") for x in layout)}
    assert not stray, f"README names paths outside the layout of {SCRIPT.name}: {sorted(stray)}"


def test_llamafactory_config_composes_with_the_hosts_parser():
    """LLaMA-Factory's own reader (YAML + key=value, as `llamafactory-cli train` merges them) and
    argument parser accept the printed SFT command, without training."""
    pytest.importorskip("llamafactory")
    from llamafactory.hparams.parser import _parse_train_args
    from omegaconf import OmegaConf

    argv = commands()["train"][0]
    yaml_at = argv.index("train") + 1
    cfg = OmegaConf.to_container(OmegaConf.merge(OmegaConf.load(argv[yaml_at]), OmegaConf.from_cli(argv[yaml_at + 1:])))
    # GPU-only parts on this CPU: DeepSpeed is not installed here and bf16 needs `use_cpu` to parse
    deepspeed = Path(cfg.pop("deepspeed"))
    assert deepspeed.is_absolute() and deepspeed.is_file()
    model, data, training, finetuning, _ = _parse_train_args({**cfg, "use_cpu": True})
    assert model.model_name_or_path == _kv(argv)["model_name_or_path"] and model.flash_attn == "sdpa"
    assert (data.dataset_dir, data.dataset, data.template) == (_kv(argv)["dataset_dir"], ["extra_cot_sft"], "qwen3_comp")
    assert training.output_dir == _kv(argv)["output_dir"] and training.bf16 and finetuning.finetuning_type == "full"
    assert training.gradient_accumulation_steps * training.per_device_train_batch_size * 8 == 128  # N_GPUS 8
    assert data.cutoff_len == 6144


@pytest.mark.slow
def test_verl_config_composes_with_cfg_job(tmp_path):
    """The printed CHRPO command, run with `--cfg job` (Hydra composes, nothing trains), from another
    directory: the GPU settings traced in docs/hosts.md reach the composed config."""
    pytest.importorskip("verl")
    argv = commands()["chrpo"][0]
    env = {**os.environ, **_kv(argv[1 : argv.index("bash")]), "RAY_AUTH_MODE": "disabled",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    script = argv.index("bash")
    done = subprocess.run(["bash", argv[script + 1], *argv[script + 2:], "--cfg", "job"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = yaml.safe_load(done.stdout)
    kv = _kv(argv)
    assert cfg["algorithm"]["adv_estimator"] == "chrpo" and cfg["reward"]["reward_manager"]["name"] == "chrpo"
    arr = cfg["actor_rollout_ref"]
    assert arr["model"]["path"] == kv["SFT_MODEL"]
    assert cfg["data"]["train_files"] == f"{kv['RL_DATA']}/train.parquet"
    assert cfg["data"]["train_batch_size"] == int(kv["data.train_batch_size"])
    assert cfg["trainer"]["default_local_dir"] == kv["OUT"] and cfg["trainer"]["n_gpus_per_node"] == int(kv["N_GPUS"])
    # attention the install has (no flash-attn) and padded batches; FSDP2 as on CPU; Qwen3 sampling and lengths
    assert arr["model"]["override_config"]["attn_implementation"] == "sdpa" and arr["model"]["use_remove_padding"] is False
    assert (arr["actor"]["strategy"], arr["actor"]["fsdp_config"]["strategy"], arr["ref"]["fsdp_config"]["strategy"]) == (
        "fsdp2", "fsdp2", "fsdp2")
    for sampling in (arr["rollout"], arr["rollout"]["val_kwargs"]):
        assert (sampling["temperature"], sampling["top_p"], sampling["top_k"]) == (0.6, 0.95, 20)
    assert cfg["data"]["max_response_length"] == RL_MAX_RESPONSE
    assert arr["actor"]["ppo_max_token_len_per_gpu"] >= cfg["data"]["max_prompt_length"] + RL_MAX_RESPONSE


def test_cpu_example_script_finds_the_project_venv_from_any_directory(tmp_path):
    """examples/run_chrpo_cpu.sh takes the venv from its own location, not from the current directory."""
    if not (REPO / ".venv" / "bin" / "python").is_file():
        pytest.skip("no project venv (make setup)")
    for name in ("train.parquet", "val.parquet"):
        (tmp_path / name).write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    env["PATH"] = "/usr/bin:/bin"  # no venv on PATH
    done = subprocess.run(["bash", str(REPO / "examples/run_chrpo_cpu.sh"), str(tmp_path), str(tmp_path),
                           "--print-command"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "-m verl.trainer.main_ppo +algorithm=chrpo" in done.stdout
