"""LoRA RL on verl's real ``main_ppo +algorithm=chrpo`` (CPU): the adapter AND the control-token rows train.

Fast: verl's own LoRA model build (patched by ``extra_cot.rl.lora``) gets the control rows, registers
the tied head's copy once and refuses the adapter-only sync; the weight-sync fold and
``lora_merge``'s rebuild equal peft's own merge. Slow: the LoRA script composes, and one
module-scoped run: the format-trained tiny model (as in ``test_rl_cpu_train.py``) gets 2 CHRPO steps
with verl's LoRA (``model.lora_rank``, ``all-linear`` targets, ``model.lora.merge=true``). Evidence
comes from verl's own FSDP checkpoints and step metrics: the LoRA A/B tensors and the control rows
moved, every other embedding row is bit-identical, vLLM sampled with the updated weights, and
``python -m extra_cot.rl.lora_merge`` turns the checkpoint into an HF folder holding both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from extra_cot.rl.cpu_launch import cpu_env, main_ppo_command
from extra_cot.testing import rollout_to_reference_kl_ratio

REPO = Path(__file__).resolve().parents[2]
BATCH, N, STEPS = 4, 4, 2
LORA = (
    "actor_rollout_ref.model.lora_rank=8",
    "actor_rollout_ref.model.lora_alpha=16",
    "actor_rollout_ref.model.target_modules=all-linear",
    "actor_rollout_ref.model.lora.merge=true",
)
RUN = (
    f"data.train_batch_size={BATCH}",
    f"actor_rollout_ref.rollout.n={N}",
    f"actor_rollout_ref.actor.ppo_mini_batch_size={BATCH}",
    "data.max_prompt_length=128",
    "data.max_response_length=64",
    "actor_rollout_ref.rollout.max_model_len=256",
    # a large step for a tiny LoRA: one update moves the policy well beyond the sync's bf16 noise
    "actor_rollout_ref.actor.optim.lr=1e-2",
    f"trainer.total_training_steps={STEPS}",
    "trainer.save_freq=1",
    "trainer.logger=[console,file]",
    "trainer.total_epochs=100",
)


def _checkpoint_state(actor_dir: Path) -> dict:
    """The (single-rank) FSDP2 model shard verl saved, as plain tensors."""
    import torch

    shard = actor_dir / "model_world_size_1_rank_0.pt"
    state = torch.load(shard, map_location="cpu", weights_only=False)
    return {k: (v.to_local() if hasattr(v, "to_local") else v) for k, v in state.items()}


def _peft_model(model_dir: Path, merge: bool = True, **lora_options):
    """verl's own ``FSDPEngine._build_lora_module`` (patched by our plugin) on a plain HF model."""
    import types

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from verl.workers.engine.fsdp import transformer_impl

    import extra_cot.rl.verl_plugin  # noqa: F401  (what `import verl` loads in every verl process)

    config = types.SimpleNamespace(
        tokenizer=AutoTokenizer.from_pretrained(str(model_dir)), lora={"merge": merge, **lora_options},
        lora_adapter_path=None, lora_rank=8, lora_alpha=16, target_modules="all-linear",
        target_parameters=None, exclude_modules=None,
    )
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    return transformer_impl.FSDPEngine._build_lora_module(types.SimpleNamespace(model_config=config), model)


def test_rl_lora_model_build_adds_control_rows_and_sync_fold_matches_peft_merge(tiny_model_dir):
    import torch
    from verl.utils.fsdp_utils import normalize_peft_param_name

    from extra_cot.rl.lora import fold_token_rows, token_indices

    ids = _control_ids(tiny_model_dir)
    peft_model = _peft_model(tiny_model_dir)
    indices, tied = token_indices(peft_model)
    assert indices == {"model.embed_tokens": ids} and tied == {"lm_head": "model.embed_tokens"}
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("trainable_tokens_delta" in n for n in trainable) and not any(".base_layer." in n for n in trainable)
    # the tied head's rows are one tensor in the state (verl's FSDP2 load fails on the alias)
    assert [k for k in peft_model.state_dict() if "trainable_tokens_delta" in k] == [
        "base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta.default"]
    with torch.no_grad():
        peft_model.base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta["default"].add_(1.0)
    # what verl's merged weight sync streams (names normalised by verl), folded by our wrapper ...
    stream = dict(fold_token_rows(normalize_peft_param_name(peft_model.state_dict()).items(), indices, tied))
    assert not any("token_adapter" in name for name in stream)
    # ... equals peft's own merge, the rows included
    merged = peft_model.merge_and_unload().state_dict()
    assert torch.equal(stream["model.embed_tokens.weight"], merged["model.embed_tokens.weight"])
    assert torch.equal(stream["lm_head.weight"], merged["model.embed_tokens.weight"])


def test_rl_lora_refuses_adapter_sync_and_can_keep_rows_frozen(tiny_model_dir):
    with pytest.raises(ValueError, match="lora.merge=true"):
        _peft_model(tiny_model_dir, merge=False)
    frozen = _peft_model(tiny_model_dir, merge=False, extra_cot_control_rows=False)  # verl's own behaviour
    assert not any("trainable_tokens" in n for n, _ in frozen.named_parameters())


def test_rl_lora_merge_rebuilds_the_trained_model_from_its_state(tiny_model_dir):
    """lora_merge's save: the checkpoint's peft state -> the same weights as peft's merge_and_unload."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from extra_cot.rl.lora_merge import merged_model

    peft_model = _peft_model(tiny_model_dir)
    with torch.no_grad():
        for param in peft_model.parameters():
            if param.requires_grad:  # LoRA A/B and the row delta, as after training
                param.add_(torch.randn_like(param) * 0.1)
    state = {k: v.clone() for k, v in peft_model.state_dict().items()}
    rebuilt = merged_model(state, AutoConfig.from_pretrained(str(tiny_model_dir)),
                           AutoTokenizer.from_pretrained(str(tiny_model_dir)), {"r": 8, "lora_alpha": 16})
    expected = peft_model.merge_and_unload().state_dict()
    got = rebuilt.state_dict()
    assert set(got) == set(expected)
    assert all(torch.allclose(got[k], expected[k]) for k in expected)
    with pytest.raises(ValueError, match="do not describe"):  # alpha/rank fine, but rows missing
        merged_model({k: v for k, v in state.items() if "trainable_tokens" not in k},
                     AutoConfig.from_pretrained(str(tiny_model_dir)), None, None)


def test_rl_lora_fold_tied_head_takes_its_source_rows_and_a_missing_delta_is_an_error():
    import torch

    from extra_cot.rl.lora import fold_token_rows

    base, delta = torch.zeros(4, 2), torch.ones(2, 2)
    stream = [("lm_head.token_adapter.weight", base), ("x", torch.ones(1)),
              ("model.embed_tokens.token_adapter.weight", base),
              ("model.embed_tokens.token_adapter.trainable_tokens_delta.default", delta)]
    out = dict(fold_token_rows(stream, {"model.embed_tokens": [3, 1]}, {"lm_head": "model.embed_tokens"}))
    assert sorted(out) == ["lm_head.weight", "model.embed_tokens.weight", "x"]
    for name in ("lm_head.weight", "model.embed_tokens.weight"):
        assert out[name].sum(dim=1).tolist() == [0.0, 2.0, 0.0, 2.0]
    with pytest.raises(RuntimeError, match="no trained rows"):
        list(fold_token_rows(stream[:3], {"model.embed_tokens": [3, 1]}, {"lm_head": "model.embed_tokens"}))
    with pytest.raises(KeyError, match="no token indices"):
        list(fold_token_rows(stream, {}))


@pytest.mark.slow
def test_rl_lora_script_composes(tmp_path, tiny_model_dir):
    """examples/run_qwen3-1.7b_chrpo_lora.sh = the base recipe + verl's LoRA keys (`--cfg job`)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_AUTH_MODE="disabled", SFT_MODEL=str(tiny_model_dir),
               RL_DATA=str(tmp_path), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out = subprocess.run(["bash", str(REPO / "examples" / "run_qwen3-1.7b_chrpo_lora.sh"), "--cfg", "job"],
                         check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    import yaml

    cfg = yaml.safe_load(out.stdout)
    model = cfg["actor_rollout_ref"]["model"]
    assert (model["lora_rank"], model["target_modules"], model["lora"]["merge"]) == (64, "all-linear", True)
    assert cfg["algorithm"]["adv_estimator"] == "chrpo"
    assert cfg["data"]["train_files"] == str(tmp_path / "train.parquet")


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    from extra_cot.testing import build_tiny_model, train_format_model, write_format_rl_data

    tmp = tmp_path_factory.mktemp("chrpo_lora")
    model = train_format_model(build_tiny_model(tmp / "base"), tmp / "sft")
    data = write_format_rl_data(model, tmp / "rl", n_train=16, n_val=4)
    env = cpu_env()
    env["VERL_FILE_LOGGER_PATH"] = str(tmp / "metrics.jsonl")
    argv = main_ppo_command(model, data, [*LORA, *RUN, f"trainer.default_local_dir={tmp / 'ckpt'}"])
    proc = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=900, cwd=tmp)
    (tmp / "run.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-8000:]
    metrics: dict[int, dict] = {}
    for line in (tmp / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        metrics.setdefault(int(row["step"]), {}).update(row["data"])
    merge = subprocess.run([sys.executable, "-m", "extra_cot.rl.lora_merge", "--local_dir",
                            str(tmp / "ckpt" / f"global_step_{STEPS}" / "actor"), "--target_dir",
                            str(tmp / f"merged{STEPS}")],
                           check=False, env=cpu_env(), capture_output=True, text=True, timeout=600)
    assert merge.returncode == 0, (merge.stdout + merge.stderr)[-5000:]
    return {"tmp": tmp, "model": model, "metrics": metrics, "log": proc.stdout + proc.stderr,
            "state": _checkpoint_state(tmp / "ckpt" / f"global_step_{STEPS}" / "actor"),
            "merged": tmp / f"merged{STEPS}"}


def _start(model: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32).state_dict()


def _control_ids(model: Path) -> list[int]:
    from transformers import AutoTokenizer

    from extra_cot.rl.lora import control_token_ids

    return control_token_ids(AutoTokenizer.from_pretrained(str(model)))


@pytest.mark.slow
def test_rl_lora_trained_two_steps_with_nonzero_advantages(lora_run):
    steps = sorted(s for s, m in lora_run["metrics"].items() if "timing_s/adv" in m)
    assert steps == [1, 2]
    for step in steps:
        m = lora_run["metrics"][step]
        assert m["critic/advantages/max"] > 0 > m["critic/advantages/min"]
        assert m["actor/grad_norm"] > 0
    assert "LoRA with trainable control-token rows" in lora_run["log"]


@pytest.mark.slow
def test_rl_lora_adapter_changed(lora_run):
    import torch

    state = lora_run["state"]
    lora_b = {k: v for k, v in state.items() if ".lora_B." in k}
    lora_a = {k: v for k, v in state.items() if ".lora_A." in k}
    # 2 layers x 7 linear modules; peft starts B at zero, so a non-zero B is a trained B
    assert len(lora_b) == len(lora_a) == 14, sorted(state)[:20]
    assert all(float(v.abs().max()) > 0 for v in lora_b.values())
    # A starts random: compare it to peft's own start (same seed as verl's model build is not known),
    # so check that the merged low-rank update B @ A is non-zero in every module
    for key, b in lora_b.items():
        a = lora_a[key.replace(".lora_B.", ".lora_A.")]
        assert float(torch.linalg.matrix_norm(b.float() @ a.float())) > 0, key


@pytest.mark.slow
def test_rl_lora_control_rows_changed_and_other_rows_did_not(lora_run):
    import torch

    state, ids = lora_run["state"], _control_ids(lora_run["model"])
    start = _start(lora_run["model"])["model.embed_tokens.weight"]
    base = state["base_model.model.model.embed_tokens.token_adapter.base_layer.weight"].float()
    delta = state["base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta.default"].float()
    assert len(ids) == 6 and delta.shape == (len(ids), start.shape[1])
    assert torch.equal(base, start)  # the whole frozen table, control rows' starting values included
    trained = base.clone()
    trained[ids] = delta
    moved = (trained - start).abs().amax(dim=1)
    assert bool((moved[ids] > 0).all()), moved[ids]  # every control row moved ...
    others = torch.ones(start.shape[0], dtype=torch.bool)
    others[ids] = False
    assert float(moved[others].max()) == 0.0  # ... and no other row did


@pytest.mark.slow
def test_rl_lora_rollouts_use_the_trained_weights(lora_run):
    m = lora_run["metrics"]
    assert m[2]["actor/kl_loss"] > 0  # the actor left the reference (adapter + rows off) after step 1
    for step in (1, 2):
        assert m[step]["training/rollout_probs_diff_valid"] == 1
    # Step 2 samples with the step-1 weights: on its own tokens vLLM's log-probs are far closer to the
    # actor's than the start weights' (the reference) are; a sync that kept the start weights gives about 1.
    assert rollout_to_reference_kl_ratio(m[2]) < 0.2, (m[2]["rollout_corr/k3_kl"], m[2]["actor/kl_loss"])


@pytest.mark.slow
def test_rl_lora_merged_folder_holds_the_trained_rows_and_adapter(lora_run):
    """``python -m extra_cot.rl.lora_merge`` on verl's checkpoint: a plain HF folder with both merged."""
    import torch

    ids, state = _control_ids(lora_run["model"]), lora_run["state"]
    start, merged = _start(lora_run["model"]), _start(lora_run["merged"])
    assert set(merged) == set(start)
    delta = state["base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta.default"]
    embed = merged["model.embed_tokens.weight"]  # saved in bf16, as verl's own merger saves
    bf16 = lambda t: t.to(torch.bfloat16).float()
    assert torch.equal(embed[ids], bf16(delta))
    others = torch.ones(embed.shape[0], dtype=torch.bool)
    others[ids] = False
    assert torch.equal(embed[others], bf16(start["model.embed_tokens.weight"][others]))
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged[q_proj], start[q_proj])  # the adapter is merged into the linear weights
