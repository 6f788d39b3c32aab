"""How hard is the demo's problem family for SmolLM2? (issue 10: accuracy must be measurable)

For every equation in the verbose traces of held-out demo problems, the untuned model is fed the trace
up to ``a op b = `` (the narration an SFT model learns to write) and greedily completes the number.
Reported: share of equations right, and share of problems with every equation right (teacher-forced,
so an upper-bound-like proxy for what a format-trained model can solve), for the demo's default family
and the issue-6 family.

    python benchmarks/demo_arith_probe.py --model runs/demo/models/base   # the demo's converted SmolLM2
"""

from __future__ import annotations

import argparse
import re
import time

from extra_cot.demo.data import DEMO_OPTIONS
from extra_cot.demo.problems import ProblemOptions, generate

EQUATION = re.compile(r"(\d+ [-+*] \d+ = )(\d+)")
FAMILIES = {
    "varied demo (1-2 steps, start <= 9)": DEMO_OPTIONS["varied"],
    "issue-6 family (2-3 steps, start <= 30)": ProblemOptions(min_steps=2, max_steps=3, max_start=30, max_factor=9,
                                                               max_add=15),
}


def probe(model, tok, options: ProblemOptions, n: int, seed: int) -> tuple[int, int, int]:
    import torch

    rows = generate(96, seed=seed, options=options)[-n:]  # the demo's held-out split for --sft 48 --rl 16 --test 32
    right = total = solved = 0
    for row in rows:
        all_right = True
        for m in EQUATION.finditer(row["cot"]):
            ids = tok(row["cot"][: m.start(2)], return_tensors="pt").input_ids
            with torch.no_grad():
                out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
            got = re.match(r"\s*(\d+)", tok.decode(out[0, ids.shape[1]:]))
            ok = bool(got) and got.group(1) == m.group(2)
            right, total, all_right = right + ok, total + 1, all_right and ok
        solved += all_right
    return right, total, solved


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HF folder of the untuned model (the demo's models/base)")
    p.add_argument("--n", type=int, default=32, help="held-out problems per family")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    started = time.time()
    print("| family | equations right | problems with every equation right |\n|---|---|---|")
    for name, options in FAMILIES.items():
        right, total, solved = probe(model, tok, options, args.n, args.seed)
        print(f"| {name} | {right}/{total} = {right / total:.0%} | {solved}/{args.n} = {solved / args.n:.0%} |",
              flush=True)
    print(f"\n{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
