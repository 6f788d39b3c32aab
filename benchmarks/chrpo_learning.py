"""CHRPO learns the budget? verl's real ``main_ppo`` on this CPU, CHRPO vs GRPO from one SFT checkpoint.

    python benchmarks/chrpo_learning.py --study runs/study --results results   # the record
    python benchmarks/chrpo_learning.py --split val --out runs/chrpo-val       # choose options on val
    python benchmarks/chrpo_learning.py --list                                 # every step's command

Needs a finished study (``python -m extra_cot.study``, ``make study``): its SFT model, seed and
held-out splits. Steps, outputs and the per-step / held-out accounting: :mod:`extra_cot.study.learning`.
Resumable: rerun the same command after an interruption; ``--force STEP`` redoes a step and all after it.
"""

from __future__ import annotations

from extra_cot import experiment
from extra_cot.study.learning import LEARNING


def main(argv: list[str] | None = None) -> int:
    return experiment.main(LEARNING, argv)


if __name__ == "__main__":
    raise SystemExit(main())
