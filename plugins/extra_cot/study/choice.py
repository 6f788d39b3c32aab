"""What ``<COMP_AUTO>`` would choose, read from the model instead of sampled (an analysis; ours).

The study's policy row counts the control token each sampled answer starts with: one draw per
question at temperature 0.7, so a model that leans a little more towards a larger budget on hard
questions can still answer 0.2 almost everywhere. This reads the whole choice instead: for each
question, the model's next-token distribution right after the ``<COMP_AUTO>`` prompt (the chat
template of ``--model``, the prompt of :mod:`extra_cot.prompt`), restricted to the five fixed-ratio
tokens. Reported per grade: the mean probability of each ratio, the expected ratio, and the expected
ratio at the hardest grade minus at the easiest with a bootstrap 95 % interval; with ``gt_ratio`` in
the rows (the policy rows' γ*, ``policy_targets.jsonl``), the expected ratio per γ* label too (did
the model fit its own training labels?).

``python -m extra_cot.study.choice --model runs/study/models/sft --data runs/study/data/test.jsonl``
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

from extra_cot.fileio import atomic_write_json, read_jsonl
from extra_cot.prompt import build_messages
from extra_cot.stats import bootstrap_mean_diff
from extra_cot.study.report import read_grades
from extra_cot.tokens import FIXED_RATIOS, POLICY_TOKEN, ratio_dir_name, ratio_to_token


def choice_probs(model_dir: str | Path, questions: Sequence[str]) -> list[dict[str, float]]:
    """Per question: ``{"0.2": p, …, "1.0": p}`` (keys: the run folder names) renormalised over the fixed-ratio tokens, plus
    ``"mass"``, the unnormalised probability of all five (how much of the next token they hold)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    ids = [tok.convert_tokens_to_ids(ratio_to_token(r)) for r in FIXED_RATIOS]
    if any(i is None or i == tok.unk_token_id for i in ids):
        raise ValueError(f"{model_dir}: the tokenizer lacks the control tokens (run extra-cot prepare-model)")
    out = []
    for question in questions:
        text = tok.apply_chat_template(build_messages(question, POLICY_TOKEN), tokenize=False, add_generation_prompt=True)
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            probs = torch.softmax(model(**enc).logits[0, -1].float(), dim=-1)[ids]
        mass = float(probs.sum())
        out.append({**{ratio_dir_name(r): float(p) / mass for r, p in zip(FIXED_RATIOS, probs)}, "mass": mass})
    return out


def expected_ratio(probs: Mapping[str, float]) -> float:
    return sum(r * probs[ratio_dir_name(r)] for r in FIXED_RATIOS)


def summarize(probs: Sequence[Mapping[str, float]], grades: Sequence[int],
              labels: Sequence[float | None] | None = None, seed: int = 0) -> dict:
    """Per-grade mean choice distribution and expected ratio, the hardest-minus-easiest rise of the
    expected ratio (bootstrap 95 % interval), and with ``labels`` the expected ratio per label."""
    if not probs or len(probs) != len(grades):
        raise ValueError(f"summarize needs one grade per question, got {len(probs)} and {len(grades)}")
    by: dict[str, list[Mapping[str, float]]] = {}
    for p, g in zip(probs, grades):
        by.setdefault(str(g), []).append(p)
    order = sorted(by, key=int)

    def _mean(rows, key):
        return round(sum(r[key] for r in rows) / len(rows), 4)

    out = {"n": len(probs), "mean_mass": _mean(probs, "mass"),
           "by_grade": {g: {"n": len(by[g]), "probs": {ratio_dir_name(r): _mean(by[g], ratio_dir_name(r)) for r in FIXED_RATIOS},
                            "expected_ratio": round(sum(map(expected_ratio, by[g])) / len(by[g]), 4),
                            "argmax_not_0.2": round(sum(max(FIXED_RATIOS, key=lambda r, p=p: p[ratio_dir_name(r)]) != 0.2
                                                        for p in by[g]) / len(by[g]), 4)} for g in order}}
    if len(order) > 1:
        a, b = [expected_ratio(p) for p in by[order[0]]], [expected_ratio(p) for p in by[order[-1]]]
        lo, hi = bootstrap_mean_diff(a, b, seed=seed)
        out["rise"] = {"easiest": order[0], "hardest": order[-1],
                       "value": round(sum(b) / len(b) - sum(a) / len(a), 4), "ci": [round(lo, 4), round(hi, 4)]}
    if labels is not None:
        per: dict[str, list[float]] = {}
        for p, lab in zip(probs, labels):
            if lab is not None:
                per.setdefault(f"{float(lab):g}", []).append(expected_ratio(p))
        out["expected_ratio_by_label"] = {k: {"n": len(v), "expected_ratio": round(sum(v) / len(v), 4)}
                                          for k, v in sorted(per.items(), key=lambda kv: float(kv[0]))}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extra_cot.study.choice", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a trained Extra-CoT model folder (HF format, control tokens added)")
    p.add_argument("--data", required=True, help="JSONL rows with 'question' and 'grade' (and optionally 'gt_ratio')")
    p.add_argument("--out", default=None, help="also write the summary here as JSON")
    args = p.parse_args(argv)
    grades, rows = read_grades(Path(args.data)), []
    for n, row in read_jsonl(args.data):
        if not isinstance(row.get("question"), str):
            raise SystemExit(f"{args.data}:{n}: field 'question' is missing or not a string")
        rows.append(row)
    probs = choice_probs(args.model, [r["question"] for r in rows])
    labels = [r.get("gt_ratio") for r in rows] if any("gt_ratio" in r for r in rows) else None
    summary = {"model": str(args.model), "data": str(args.data), **summarize(probs, grades, labels)}
    if args.out:
        atomic_write_json(args.out, summary)
    for g, s in summary["by_grade"].items():
        print(f"grade {g} (n={s['n']}): expected ratio {s['expected_ratio']}, choice {s['probs']}, "
              f"argmax not 0.2 {s['argmax_not_0.2']}")
    if "rise" in summary:
        r = summary["rise"]
        print(f"rise of the expected ratio, grade {r['hardest']} - {r['easiest']}: {r['value']:+} {r['ci']}")
    if labels is not None:
        print(f"expected ratio by γ* label: {summary['expected_ratio_by_label']}")
    print(f"mean probability mass on the five ratio tokens: {summary['mean_mass']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
