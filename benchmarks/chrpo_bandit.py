"""CHRPO vs GRPO on a contextual bandit that stands in for the policy mode, with verl's own code.

Each question has a known difficulty d ∈ {0.2, …, 1.0}: the smallest budget that usually
solves it. The policy (a table of logits per question) picks a ratio token γ_c, then "reasons":
success with probability ``p_hi`` when γ_c ≥ d, else ``p_lo``; the think length is
``ref_len · (γ_c + noise)`` tokens (out of band when |noise| > τ); a few responses are
malformed. Rewards come from ``extra_cot.rl.reward.score_outcome``; advantages from verl's
registered estimators (``get_adv_estimator_fn``); the update from verl's registered ``vanilla``
PPO policy loss (token-mean over the full response mask, the ratio token first).

Methods (same seeds, same rollouts per seed at step 0):

* ``chrpo``        — hierarchical reward + ``chrpo`` estimator (ratio-token weight folded in);
* ``grpo_same``    — the same hierarchical reward + verl's ``grpo``;
* ``grpo_correct`` — correctness only (1/0) + verl's ``grpo``.

Reported per method (mean ± std over seeds) for the final policy, computed exactly from its
probabilities: accuracy, mean chosen ratio, share of choices at the minimal sufficient ratio d.
Also the estimator's cost against verl's ``grpo`` on (4096 × 8192) tensors.

    python benchmarks/chrpo_bandit.py                 # full run (~1-2 min on 2 CPU cores)
    python benchmarks/chrpo_bandit.py --steps 60 --seeds 0 --skip-cost   # quick
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

RATIOS = (0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class BanditConfig:
    """Bandit and training constants (all [R]: chosen to mimic the policy-mode trade-off)."""

    questions: int = 64
    steps: int = 150
    prompts_per_step: int = 32
    n: int = 8  # responses per prompt (Thinkless uses 8; docs/method.md Stage 3 uses 4)
    p_hi: float = 0.9  # success when γ_c >= difficulty
    p_lo: float = 0.15  # success below it
    p_invalid: float = 0.02  # malformed responses (no ratio token / unclosed think)
    noise: float = 0.06  # std of realized-ratio noise around γ_c (τ = 0.1 => ~10 % out of band)
    ref_len: int = 60  # think tokens at ratio 1.0 (kept small so the benchmark runs in seconds)
    lr: float = 0.05  # Adam on the logits
    ppo_epochs: int = 2  # updates per batch, so PPO's clip matters
    max_bonus: float = 0.9  # the reward's efficiency bonus (ChrpoRewardConfig.max_bonus)


def _policy_loss_config():
    from omegaconf import OmegaConf

    # verl's defaults (actor.yaml: clip_ratio 0.2, clip_ratio_c 3.0); empty batch info = one rank.
    return OmegaConf.create(
        {
            "clip_ratio": 0.2,
            "clip_ratio_low": 0.2,
            "clip_ratio_high": 0.2,
            "clip_ratio_c": 3.0,
            "global_batch_info": {},
        }
    )


def _rollout(logits, qs, difficulty, cfg, gen):
    """Sample n responses per question; return actions, outcome arrays and a response mask."""
    probs = torch.softmax(logits[qs], dim=-1).repeat_interleave(cfg.n, dim=0)
    actions = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
    gamma = torch.tensor(RATIOS)[actions]
    d = difficulty[qs].repeat_interleave(cfg.n)
    p = torch.where(gamma >= d - 1e-9, cfg.p_hi, cfg.p_lo)
    correct = torch.rand(len(p), generator=gen) < p
    valid = torch.rand(len(p), generator=gen) >= cfg.p_invalid
    realized = (gamma + cfg.noise * torch.randn(len(p), generator=gen)).clamp(min=0.01)
    lengths = 1 + (realized * cfg.ref_len).round().long()  # ratio token + think tokens
    mask = (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).float()
    return actions, gamma, d, correct, valid, realized, mask


def _scores(method, gamma, d, correct, valid, realized, max_bonus):
    from extra_cot.rl.reward import ChrpoRewardConfig, score_outcome

    if method == "grpo_correct":
        return (correct & valid).float()
    cfg = ChrpoRewardConfig(max_bonus=max_bonus)
    out = [
        score_outcome(
            valid=bool(v),
            correct=bool(c),
            ratio=float(g),
            realized_ratio=float(r),
            gt_ratio=float(dd),
            tolerance=cfg.tolerance,
            config=cfg,
        ).score
        for g, dd, c, v, r in zip(gamma, d, correct, valid, realized)
    ]
    return torch.tensor(out)


def _advantages(method, scores, mask, uid):
    from omegaconf import OmegaConf
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    rewards = torch.zeros_like(mask)
    last = mask.sum(-1).long() - 1
    rewards[torch.arange(len(scores)), last] = scores
    if method == "chrpo":
        algo = OmegaConf.create({"adv_estimator": "chrpo", "chrpo": {}})
        return get_adv_estimator_fn("chrpo")(
            token_level_rewards=rewards, response_mask=mask, index=uid, config=algo
        )[0]
    return get_adv_estimator_fn("grpo")(token_level_rewards=rewards, response_mask=mask, index=uid)[0]


def _evaluate(logits, difficulty, cfg):
    probs = torch.softmax(logits, dim=-1)
    ratios = torch.tensor(RATIOS)
    success = torch.where(ratios[None, :] >= difficulty[:, None] - 1e-9, cfg.p_hi, cfg.p_lo) * (
        1 - cfg.p_invalid
    )
    minimal = (ratios[None, :] - difficulty[:, None]).abs() < 1e-9
    return {
        "accuracy": float((probs * success).sum(-1).mean()),
        "mean_ratio": float((probs * ratios).sum(-1).mean()),
        "minimal_share": float((probs * minimal).sum(-1).mean()),
        "optimal_mean_ratio": float(difficulty.mean()),  # every choice at its minimal ratio
    }


def train(method: str, seed: int, cfg: BanditConfig) -> dict:
    """One run: returns the final policy's metrics."""
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    gen = torch.Generator().manual_seed(seed)
    difficulty = torch.tensor(RATIOS)[torch.randint(0, len(RATIOS), (cfg.questions,), generator=gen)]
    logits = torch.zeros(cfg.questions, len(RATIOS), requires_grad=True)
    opt = torch.optim.Adam([logits], lr=cfg.lr)
    loss_fn, loss_cfg = get_policy_loss_fn("vanilla"), _policy_loss_config()
    for _ in range(cfg.steps):
        qs = torch.randint(0, cfg.questions, (cfg.prompts_per_step,), generator=gen)
        actions, gamma, d, correct, valid, realized, mask = _rollout(
            logits.detach(), qs, difficulty, cfg, gen
        )
        uid = np.repeat(qs.numpy().astype(str), cfg.n).astype(object)
        adv = _advantages(
            method, _scores(method, gamma, d, correct, valid, realized, cfg.max_bonus), mask, uid
        )
        rows = qs.repeat_interleave(cfg.n)
        old = None
        for _ in range(cfg.ppo_epochs):
            lp_action = torch.log_softmax(logits[rows], dim=-1).gather(1, actions[:, None]).squeeze(-1)
            log_prob = torch.zeros_like(mask)  # reasoning tokens: no parameters in the bandit
            log_prob = log_prob.index_put((torch.arange(len(rows)), torch.zeros_like(rows)), lp_action)
            old = log_prob.detach() if old is None else old
            loss, _ = loss_fn(old, log_prob, adv, mask, "token-mean", loss_cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return _evaluate(logits.detach(), difficulty, cfg)


def estimator_cost(rows: int = 4096, cols: int = 8192, group: int = 8, repeats: int = 3) -> dict:
    """Wall time of chrpo vs verl's grpo (and grpo_vectorized) on the same (rows × cols) batch."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, cols + 1, (rows,), generator=gen)
    mask = (torch.arange(cols)[None, :] < lengths[:, None]).float()
    rewards = torch.zeros(rows, cols)
    scores = torch.randint(0, 3, (rows,), generator=gen).float() + 0.9 * torch.rand(rows, generator=gen)
    rewards[torch.arange(rows), lengths - 1] = scores
    uid = np.repeat(np.arange(rows // group).astype(str), group).astype(object)
    algo = OmegaConf.create({"adv_estimator": "chrpo", "chrpo": {}})
    calls = {
        "chrpo": lambda: get_adv_estimator_fn("chrpo")(
            token_level_rewards=rewards, response_mask=mask, index=uid, config=algo
        ),
        "grpo": lambda: get_adv_estimator_fn("grpo")(
            token_level_rewards=rewards, response_mask=mask, index=uid
        ),
        "grpo_vectorized": lambda: get_adv_estimator_fn("grpo_vectorized")(
            token_level_rewards=rewards, response_mask=mask, index=uid
        ),
    }
    times = {}
    for name, call in calls.items():
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
        times[name] = best
    return {
        "shape": [rows, cols],
        "seconds": times,
        "chrpo_over_grpo": times["chrpo"] / times["grpo"],
        "chrpo_over_grpo_vectorized": times["chrpo"] / times["grpo_vectorized"],
    }


def _fmt(values) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=BanditConfig.steps)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, shared by every method")
    parser.add_argument("--methods", default="chrpo,grpo_same,grpo_correct")
    parser.add_argument(
        "--max-bonus", type=float, default=BanditConfig.max_bonus, help="reward bonus at ratio 0.2"
    )
    parser.add_argument("--skip-cost", action="store_true", help="skip the 4096x8192 estimator timing")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import verl  # noqa: F401  (loads the extra_cot plugin: registers chrpo)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = BanditConfig(steps=args.steps, max_bonus=args.max_bonus)
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {m: [train(m, s, cfg) for s in seeds] for m in args.methods.split(",")}
    print(
        f"contextual bandit: {cfg.questions} questions, {cfg.steps} steps x {cfg.prompts_per_step} prompts x "
        f"n={cfg.n}, max_bonus {cfg.max_bonus}, seeds {seeds}; optimum: accuracy {cfg.p_hi * (1 - cfg.p_invalid):.3f}, minimal share 1.0"
    )
    print("| method | accuracy | mean chosen ratio | optimal mean ratio | share at minimal ratio |")
    print("|---|---|---|---|---|")
    for method, runs in results.items():
        keys = ("accuracy", "mean_ratio", "optimal_mean_ratio", "minimal_share")
        cells = [_fmt([r[k] for r in runs]) for k in keys]
        print(f"| {method} | " + " | ".join(cells) + " |")
    out = {"config": asdict(cfg), "seeds": seeds, "results": results}
    if not args.skip_cost:
        cost = estimator_cost()
        out["cost"] = cost
        secs = cost["seconds"]
        print(
            f"estimator cost on {cost['shape'][0]}x{cost['shape'][1]}: chrpo {secs['chrpo']:.3f}s, "
            f"grpo {secs['grpo']:.3f}s, grpo_vectorized {secs['grpo_vectorized']:.3f}s; "
            f"chrpo/grpo = {cost['chrpo_over_grpo']:.2f}, chrpo/grpo_vectorized = "
            f"{cost['chrpo_over_grpo_vectorized']:.2f}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
