"""verl's real ``main_ppo +algorithm=chrpo`` trains on CPU: our reward manager and estimator in the loop.

One module-scoped run (about 5 minutes on 2 cores): a tiny model first learns the policy-mode
output format (``extra_cot.testing.train_format_model``), so the real CHRPO reward spreads its
samples over the tiers. Then verl runs 2 steps with validation and a checkpoint, a second launch
resumes from that checkpoint for step 3, ``python -m verl.model_merger`` turns the last actor
checkpoint into an HF folder, and a real vLLM server serves it. Evidence comes from verl's own
step metrics (``trainer.logger=[console,file]``) and from the call log our adapters write
(``EXTRA_COT_CALL_LOG``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from extra_cot.rl.calllog import ENV as CALL_LOG_ENV
from extra_cot.rl.calllog import RESPONSES, THINK_TOKENS_MEAN, TRUNCATED_SHARE, read_calls, step_summary
from extra_cot.rl.cpu_launch import cpu_env, main_ppo_command
from extra_cot.testing import rollout_to_reference_kl_ratio

pytestmark = pytest.mark.slow

BATCH, N = 4, 4  # prompts per step x rollouts per prompt
RUN = (
    f"data.train_batch_size={BATCH}",
    f"actor_rollout_ref.rollout.n={N}",
    f"actor_rollout_ref.actor.ppo_mini_batch_size={BATCH}",
    "data.max_prompt_length=128",
    "data.max_response_length=64",
    "actor_rollout_ref.rollout.max_model_len=256",
    # A large step for a tiny model, so one update visibly moves the weights and the log-probs.
    "actor_rollout_ref.actor.optim.lr=1e-3",
    "trainer.val_before_train=true",
    "trainer.test_freq=1",
    "trainer.save_freq=2",
    "trainer.logger=[console,file]",
    "trainer.resume_mode=auto",
    "trainer.total_epochs=100",
    # The actor computes in float32 like the vLLM rollout (FSDP's mixed precision defaults to bf16
    # compute), so the rollout-vs-actor probability gap is rounding noise, not bf16's 1e-3 per token.
    "+actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=fp32",
)


def _launch(model: Path, data: Path, ckpt: Path, tmp: Path, name: str, steps: int) -> subprocess.CompletedProcess:
    env = cpu_env()
    env.update({
        CALL_LOG_ENV: str(tmp / f"{name}_calls.jsonl"),
        "VERL_FILE_LOGGER_PATH": str(tmp / f"{name}_metrics.jsonl"),
    })  # no RAY_TMPDIR under pytest's tmp: Ray's socket paths would exceed AF_UNIX's 107 bytes
    argv = main_ppo_command(model, data, [*RUN, f"trainer.total_training_steps={steps}",
                                          f"trainer.default_local_dir={ckpt}"])
    proc = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=900, cwd=tmp)
    (tmp / f"{name}.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-8000:]
    return proc


def _metrics(path: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    merged: dict[int, dict] = {}
    for row in rows:
        merged.setdefault(int(row["step"]), {}).update(row["data"])
    return merged


@pytest.fixture(scope="module")
def chrpo_run(tmp_path_factory):
    from extra_cot.testing import build_tiny_model, train_format_model, write_format_rl_data

    tmp = tmp_path_factory.mktemp("chrpo_cpu")
    base = build_tiny_model(tmp / "base")
    model = train_format_model(base, tmp / "sft")
    data = write_format_rl_data(model, tmp / "rl", n_train=16, n_val=4)
    ckpt = tmp / "ckpt"
    _launch(model, data, ckpt, tmp, "run1", steps=2)
    _launch(model, data, ckpt, tmp, "run2", steps=3)  # resume_mode=auto: step 3 only
    merged = tmp / "merged3"
    proc = subprocess.run(
        [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
         "--local_dir", str(ckpt / "global_step_3" / "actor"), "--target_dir", str(merged)],
        check=False, env=cpu_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return {"tmp": tmp, "model": model, "merged": merged, "ckpt": ckpt,
            "m1": _metrics(tmp / "run1_metrics.jsonl"), "m2": _metrics(tmp / "run2_metrics.jsonl"),
            "c1": read_calls(tmp / "run1_calls.jsonl"), "c2": read_calls(tmp / "run2_calls.jsonl")}


def _train_steps(metrics: dict[int, dict]) -> list[int]:
    return sorted(s for s, m in metrics.items() if "timing_s/adv" in m)


def _step(run: dict, step: int) -> dict:
    """Metrics of training step 1-2 (first launch) or 3 (resumed launch; its step 2 is validation only)."""
    return run["m1"][step] if step <= 2 else run["m2"][step]


def test_rl_cpu_estimator_ran_every_step_with_nonzero_advantages(chrpo_run):
    m1, m2 = chrpo_run["m1"], chrpo_run["m2"]
    assert _train_steps(m1) == [1, 2] and _train_steps(m2) == [3]
    estimator = [c for c in chrpo_run["c1"] + chrpo_run["c2"] if c["kind"] == "estimator"]
    assert len(estimator) == 3  # once per training step, across both launches
    for call in estimator:
        assert call["rows"] == BATCH * N and call["groups"] == BATCH
        assert call["nonzero_rows"] > 0 and call["abs_max"] > 0
    for step in (1, 2, 3):
        m = _step(chrpo_run, step)
        assert m["critic/advantages/max"] > 0 > m["critic/advantages/min"]


def test_rl_cpu_real_reward_spreads_over_tiers(chrpo_run):
    rewards = [c for c in chrpo_run["c1"] + chrpo_run["c2"] if c["kind"] == "reward" and c["split"] == "train"]
    assert len(rewards) == 3 * BATCH * N
    tiers = {int(r["tier"]) for r in rewards}
    assert len(tiers) >= 2, tiers  # format learned: valid answers, some right, some wrong
    assert any(r["valid"] for r in rewards)
    # each estimator call saw exactly the scores our manager returned for that step
    scores = sorted(round(r["score"], 6) for r in rewards)
    seen = sorted(s for c in chrpo_run["c1"] + chrpo_run["c2"] if c["kind"] == "estimator" for s in c["scores"])
    assert scores == seen


def test_rl_cpu_each_step_record_has_the_truncated_share(chrpo_run):
    """Issue 38 item 4: every training step's record carries chrpo/truncated_share (call log + INFO line)."""
    for run, steps in (("c1", [1, 2]), ("c2", [3])):
        records = [c for c in chrpo_run[run] if c["kind"] == "estimator"]
        assert [int(c["step"]) for c in records] == steps
        rewards = [c for c in chrpo_run[run] if c["kind"] == "reward" and c["split"] == "train"]
        for record in records:
            assert 0.0 <= record[TRUNCATED_SHARE] <= 1.0 and record[THINK_TOKENS_MEAN] >= 0
            assert record[RESPONSES] == BATCH * N
            own = step_summary(r for r in rewards if r["step"] == record["step"])
            assert record[TRUNCATED_SHARE] == pytest.approx(own[TRUNCATED_SHARE])
            assert record[THINK_TOKENS_MEAN] == pytest.approx(own[THINK_TOKENS_MEAN])
    logs = (chrpo_run["tmp"] / "run1.log").read_text() + (chrpo_run["tmp"] / "run2.log").read_text()
    for step in (1, 2, 3):
        assert f"chrpo step {step}: truncated_share=" in logs


def test_rl_cpu_actor_weights_moved(chrpo_run):
    import torch
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(str(chrpo_run["model"]), dtype=torch.float32).state_dict()
    after = AutoModelForCausalLM.from_pretrained(str(chrpo_run["merged"]), dtype=torch.float32).state_dict()
    assert before.keys() == after.keys()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(moved) >= len(before) // 2, moved
    for step, m in chrpo_run["m1"].items():
        if step in (1, 2):
            assert m["actor/grad_norm"] > 0


def test_rl_cpu_rollouts_after_step_1_use_updated_weights(chrpo_run):
    m = {step: _step(chrpo_run, step) for step in (1, 2, 3)}
    for step in (1, 2, 3):
        assert m[step]["training/rollout_probs_diff_valid"] == 1
    # By step 3 (two updates; the resumed launch synced the step-2 checkpoint) the actor has left the
    # reference: its KL loss is far above step 1's, where both hold the same weights (rounding noise) ...
    assert m[3]["actor/kl_loss"] > 10 * m[1]["actor/kl_loss"]
    # ... and vLLM sampled with the actor's weights, not the initial (reference) ones: on the step's own
    # tokens its log-probs are far closer to the actor's than the reference's are (about 1 if stale).
    # Step 2 alone is not checked: one update moved the policy by a KL of 5e-4 to 1e-2 between runs,
    # too close to the rollout's rounding noise (4e-5 to 1e-4) at the low end.
    assert rollout_to_reference_kl_ratio(m[3]) < 0.2, (m[3]["rollout_corr/k3_kl"], m[3]["actor/kl_loss"])


def test_rl_cpu_validation_and_resume(chrpo_run):
    m1, m2 = chrpo_run["m1"], chrpo_run["m2"]
    val_steps = sorted(s for s, m in m1.items() if any(k.startswith("val-core/") for k in m))
    assert val_steps == [0, 1, 2]  # before training (step 0) and test_freq=1
    assert (chrpo_run["ckpt"] / "global_step_2" / "actor").is_dir()
    assert (chrpo_run["ckpt"] / "latest_checkpointed_iteration.txt").read_text().strip() == "3"
    # the second launch resumed: it trained step 3 only (after validating the step-2 weights)
    assert _train_steps(m2) == [3] and any(k.startswith("val-core/") for k in m2[2])
    assert f"Resuming from {chrpo_run['ckpt'] / 'global_step_2'}" in (chrpo_run["tmp"] / "run2.log").read_text()


def test_rl_cpu_merged_checkpoint_is_served_by_vllm(chrpo_run):
    from extra_cot.eval.server import VLLMServer

    merged = chrpo_run["merged"]
    assert (merged / "config.json").is_file() and (merged / "tokenizer_config.json").is_file()
    log = chrpo_run["tmp"] / "vllm.log"
    with VLLMServer(merged, served_model_name="rl", max_model_len=512, log_path=log) as server:
        import urllib.request

        body = json.dumps({"model": "rl", "prompt": "What is 2 + 3?", "max_tokens": 8, "temperature": 0}).encode()
        request = urllib.request.Request(f"{server.base_url}/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
    assert answer["choices"][0]["text"] is not None
    assert not math.isnan(answer["usage"]["completion_tokens"])
    assert os.path.getsize(log) > 0
