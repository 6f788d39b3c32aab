"""The demo's CHRPO command: what it sets, and the check of a composed config."""

from __future__ import annotations

from extra_cot.demo.rl_command import check_job, chrpo_argv


def test_demo_chrpo_argv_is_a_main_ppo_command_with_the_preset():
    argv = chrpo_argv("runs/demo/rl", "runs/demo/models/sft", n_gpus=4)
    assert argv[:4] == ["python", "-m", "verl.trainer.main_ppo", "+algorithm=chrpo"]
    assert "data.train_files=runs/demo/rl/train.parquet" in argv
    assert "actor_rollout_ref.model.path=runs/demo/models/sft" in argv
    assert "trainer.n_gpus_per_node=4" in argv


def test_demo_check_job_names_what_is_missing():
    good = {"algorithm": {"adv_estimator": "chrpo"}, "reward": {"reward_manager": {"name": "chrpo"}},
            "data": {"train_files": "d/train.parquet"},
            "actor_rollout_ref": {"model": {"path": "m"}, "rollout": {"name": "vllm"}}}
    assert check_job(good, "d", "m") == []
    bad = {**good, "algorithm": {"adv_estimator": "grpo"}}
    assert check_job(bad, "d", "m") == ["algorithm.adv_estimator = 'grpo', expected 'chrpo'"]
    assert len(check_job({}, "d", "m")) == 5
