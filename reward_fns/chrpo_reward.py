"""CHRPO reward for ``reward.custom_reward_function.path=reward_fns/chrpo_reward.py``.

A thin, editable entry for users who prefer a file path over ``pkg://extra_cot.rl.reward_fn``;
it needs the ``extra-cot`` package installed on every node. Use it with our manager:

    reward.reward_manager.name=chrpo \
    reward.custom_reward_function.path=reward_fns/chrpo_reward.py \
    reward.custom_reward_function.name=compute_score

Options go to ``+reward.custom_reward_function.reward_kwargs.<option>=...`` (the fields of
``extra_cot.rl.reward.ChrpoRewardConfig``).
"""

from extra_cot.rl.reward_fn import compute_score

__all__ = ["compute_score"]
