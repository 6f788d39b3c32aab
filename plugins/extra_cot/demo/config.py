"""Options of one demo run (``python -m extra_cot.demo``): sizes, paths, modes.

Budget of the default (real) run, measured on a 2-core CPU (results/demo.md): about 20-40
minutes depending on how busy the machine is, of which Stage 2 training ≤ ~15 minutes
(SmolLM2-135M full fine-tune in fp32: 48 problems x ~5.3 examples = 256 examples, batch 8,
2 epochs = 64 steps; measured 7-8 s per step at load ~2, 40-60 s per step at load ~6) and two
vLLM start-ups (65-80 s each measured here; HOSTS.md says up to ~170 s).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Where a bare ``make demo`` writes (relative to the working directory).
DEFAULT_OUT = "runs/demo"
#: The one LLaMA-Factory config of the demo; runs override paths and sizes on the command line.
DEFAULT_SFT_CONFIG = "examples/smollm2-135m_demo.yaml"
#: Sizes of ``--tiny`` (CI): a handful of problems, a couple of optimizer steps, short answers.
TINY_SIZES = {"sft": 8, "rl": 3, "test": 3, "max_steps": 2, "max_tokens": 48, "cutoff_len": 512,
              "batch_size": 4, "max_model_len": 1024}


@dataclass
class DemoConfig:
    """Everything a demo run needs; saved as ``OUT/demo_config.json``.

    sft/rl/test: problems for Stage 1-2, for the Stage 3 sweep (training split) and held out.
    epochs/max_steps: Stage 2 length (max_steps > 0 wins, as in LLaMA-Factory).
    max_tokens: new tokens per evaluation request. base_server: ``separate`` serves the untuned
    model for the ``base`` row (the real run); ``reuse`` asks the trained model without a token
    (``--tiny`` default: one vLLM start instead of two).
    """

    out: str = DEFAULT_OUT
    tiny: bool = False
    sft: int = 48
    rl: int = 16
    test: int = 32
    seed: int = 0
    epochs: float = 2.0
    max_steps: int = -1
    batch_size: int = 8
    cutoff_len: int = 512
    learning_rate: float = 5.0e-4
    formula_bonus: float = 3.0
    max_tokens: int = 320
    max_model_len: int = 2048
    concurrency: int = 32
    n_samples: int = 3
    gsm8k_train: str | None = None
    gsm8k_test: str | None = None
    sft_config: str = DEFAULT_SFT_CONFIG
    base_server: str = "separate"
    n_gpus: int = 8
    force: list[str] = field(default_factory=list)
    only: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("sft", "rl", "test", "batch_size", "max_tokens", "concurrency", "n_samples"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.base_server not in ("separate", "reuse"):
            raise ValueError(f"--base-server {self.base_server!r}: use 'separate' or 'reuse'")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("set --epochs > 0 or --max-steps > 0")
        if not Path(self.sft_config).is_file():
            raise ValueError(f"--sft-config {self.sft_config} not found; run from the repository root or pass the path")

    @property
    def root(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict:
        return asdict(self)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m extra_cot.demo",
        description="The whole Extra-CoT pipeline end to end on CPU: data -> Stage 1 compress -> Stage 2 SFT "
        "of SmolLM2-135M-Instruct -> vLLM evaluation -> Stage 3 RL data + the checked CHRPO command -> plots "
        "and summary. Every step is a real command (printed); a rerun skips steps whose outputs are valid.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  make demo                                   # = python -m extra_cot.demo (runs/demo, ~30-40 min)\n"
        "  python -m extra_cot.demo --tiny --out runs/tiny   # tiny local model, a few minutes (CI)\n"
        "  python -m extra_cot.demo --list             # print every step's command, run nothing\n"
        "  python -m extra_cot.demo --force train      # redo training and every step after it\n"
        "  python -m extra_cot.demo --gsm8k-train ../shared/data/gsm8k_train.jsonl \\\n"
        "      --gsm8k-test ../shared/data/gsm8k_test.jsonl --out runs/demo-gsm8k\n",
    )
    g = p.add_argument_group("run")
    g.add_argument("--out", default=DEFAULT_OUT, help="output folder of everything (default: runs/demo)")
    g.add_argument("--tiny", action="store_true", help="tiny local model + a handful of problems (CI wiring check)")
    g.add_argument("--list", action="store_true", help="print the steps and their commands; run nothing")
    g.add_argument("--force", default="", help="comma list of steps to redo (and every step after the first)")
    g.add_argument("--only", default="", help="comma list of steps to run (others are skipped if done)")
    g = p.add_argument_group("data")
    g.add_argument("--sft", type=int, default=None, help="problems for Stage 1/2 (default 48; tiny 8)")
    g.add_argument("--rl", type=int, default=None, help="training-split problems for the RL sweep (default 16)")
    g.add_argument("--test", type=int, default=None, help="held-out evaluation problems (default 32)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--gsm8k-train", default=None, help="GSM8K JSONL instead of generated problems")
    g.add_argument("--gsm8k-test", default=None, help="GSM8K test JSONL (default: train path with train->test)")
    g.add_argument("--formula-bonus", type=float, default=3.0,
                   help="extra-cot compress --formula-bonus (default here 3.0: the demo problems' decisive steps "
                   "are their equations, so they outrank prose; compress's own default is 1.0)")
    g = p.add_argument_group("stage 2 training")
    g.add_argument("--epochs", type=float, default=2.0,
                   help="default 2 (measured: 1 epoch leaves the realized ratio non-monotonic, 2 epochs ~8.6 min here)")
    g.add_argument("--max-steps", type=int, default=None, help="optimizer steps (overrides --epochs)")
    g.add_argument("--batch-size", type=int, default=None)
    g.add_argument("--learning-rate", type=float, default=5.0e-4,
                   help="default 5e-4: measured at 1e-4, 32 steps leave the new token rows nearly untouched "
                   "and the model skips <COMP_xx>/<think>")
    g.add_argument("--sft-config", default=DEFAULT_SFT_CONFIG, help="LLaMA-Factory YAML (overridden per run)")
    g = p.add_argument_group("evaluation")
    g.add_argument("--max-tokens", type=int, default=None, help="new tokens per request (default 320; tiny 48)")
    g.add_argument("--concurrency", type=int, default=32, help="concurrent requests (METHOD.md: 32)")
    g.add_argument("--n-samples", type=int, default=3, help="samples per item in the RL sweep (pass@3)")
    g.add_argument("--base-server", choices=["separate", "reuse"], default=None,
                   help="separate: serve the untuned model for 'base' (default); reuse: the trained model untagged (tiny)")
    g.add_argument("--n-gpus", type=int, default=8, help="GPUs per node in the printed CHRPO command")
    return p


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    """Resolve flags: tiny sizes fill whatever the user left unset."""
    tiny = TINY_SIZES if args.tiny else {}
    pick = lambda flag, key, default: flag if flag is not None else tiny.get(key, default)
    return DemoConfig(
        out=args.out, tiny=args.tiny, sft=pick(args.sft, "sft", 48), rl=pick(args.rl, "rl", 16),
        test=pick(args.test, "test", 32), seed=args.seed, epochs=args.epochs,
        max_steps=pick(args.max_steps, "max_steps", -1), batch_size=pick(args.batch_size, "batch_size", 8),
        cutoff_len=tiny.get("cutoff_len", 512), learning_rate=args.learning_rate, formula_bonus=args.formula_bonus,
        max_tokens=pick(args.max_tokens, "max_tokens", 320), max_model_len=tiny.get("max_model_len", 2048),
        concurrency=args.concurrency, n_samples=args.n_samples, gsm8k_train=args.gsm8k_train,
        gsm8k_test=args.gsm8k_test, sft_config=args.sft_config,
        base_server=args.base_server or ("reuse" if args.tiny else "separate"), n_gpus=args.n_gpus,
        force=[s for s in args.force.split(",") if s], only=[s for s in args.only.split(",") if s],
    )
