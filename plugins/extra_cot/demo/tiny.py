"""``python -m extra_cot.demo.tiny --out DIR``: the ``--tiny`` demo's base model.

A tiny Qwen3-style model built locally (``extra_cot.testing.build_tiny_model``) *without*
control tokens, so the demo's ``prepare-model`` step adds them as it does for SmolLM2.
Written to a temp folder, then renamed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from extra_cot.fileio import atomic_output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m extra_cot.demo.tiny", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output model folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from extra_cot.testing import build_tiny_model

    out = Path(args.out)
    with atomic_output(out) as tmp:
        build_tiny_model(tmp, control_tokens=False, seed=args.seed)
    print(f"wrote tiny model {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
