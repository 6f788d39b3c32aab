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

What a sampler can draw (``--temperature``, ``--top-p``; default the evaluation's and the CHRPO
preset's rollout sampling, 0.7 and 0.9): the same next-token distribution over the whole vocabulary
at that temperature, cut to vLLM's nucleus (the lowest-probability tokens whose cumulative mass is at
most ``1 - top_p`` are dropped, the top token always kept), gives per grade the sampled share of each
ratio and ``explorable``, the share of questions with two or more ratio tokens left in the nucleus.
A question where one ratio holds more than ``top_p`` of the tempered mass is never answered with
another ratio: an RL rollout there cannot explore the choice, whatever the estimator. A ratio in the
nucleus is not enough either: a group estimator compares the ``--group-size`` rollouts of one prompt,
so ``group_varies`` is the chance that such a group is not unanimous (:func:`group_varies`; at top_p 1
every token is in the nucleus and ``explorable`` says nothing). ``--min-explorable`` turns the mean
``group_varies`` into a gate (the CHRPO learning run's ``explore`` step): exit 3
(:data:`EXIT_NOT_EXPLORABLE`), after writing ``--out``, when it is below that share.

``python -m extra_cot.study.choice --model runs/study/models/sft --data runs/study/data/test.jsonl``
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

from extra_cot.eval.client import SamplingOptions
from extra_cot.fileio import atomic_write_json, read_jsonl
from extra_cot.prompt import build_messages
from extra_cot.stats import mean_diff
from extra_cot.study.report import read_grades
from extra_cot.tokens import FIXED_RATIOS, POLICY_TOKEN, ratio_dir_name, ratio_to_token

#: Exit code of ``--min-explorable`` when too few questions leave a second ratio in the nucleus.
EXIT_NOT_EXPLORABLE = 3
#: The evaluation's sampling defaults (``extra-cot eval``; the CHRPO preset's rollout uses the same values).
DEFAULT_TEMPERATURE = SamplingOptions.__dataclass_fields__["temperature"].default
DEFAULT_TOP_P = SamplingOptions.__dataclass_fields__["top_p"].default
#: Rollouts per prompt of the CHRPO preset (``actor_rollout_ref.rollout.n``; docs/method.md Stage 3: n = 4).
DEFAULT_GROUP_SIZE = 4


def nucleus_probs(probs, temperature: float, top_p: float):
    """The sampling distribution over the vocabulary of next-token probabilities ``probs`` (a 1-D
    tensor) at ``temperature`` (0: greedy) cut to vLLM's top-p nucleus: sorted ascending, the tokens
    whose cumulative mass is at most ``1 - top_p`` are dropped (the most probable token never), the
    rest renormalised."""
    import torch

    if temperature <= 0:
        out = torch.zeros_like(probs)
        out[int(torch.argmax(probs))] = 1.0
        return out
    tempered = torch.softmax(torch.log(probs.clamp_min(1e-30)) / temperature, dim=-1)
    order = torch.argsort(tempered)
    cum = torch.cumsum(tempered[order], dim=-1)
    drop = cum <= 1.0 - top_p
    drop[-1] = False
    kept = tempered.clone()
    kept[order[drop]] = 0.0
    return kept / kept.sum()


def choice_probs(model_dir: str | Path, questions: Sequence[str], temperature: float = DEFAULT_TEMPERATURE,
                 top_p: float = DEFAULT_TOP_P) -> list[dict]:
    """Per question: ``{"0.2": p, …, "1.0": p}`` (keys: the run folder names) renormalised over the fixed-ratio tokens, plus
    ``"mass"``, the unnormalised probability of all five (how much of the next token they hold), ``"sampled"``, each
    ratio's probability of being drawn at ``temperature`` within the ``top_p`` nucleus (:func:`nucleus_probs`; the
    five need not sum to 1 where other tokens stay in the nucleus), and ``"in_nucleus"``, how many ratio tokens do."""
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
            full = torch.softmax(model(**enc).logits[0, -1].float(), dim=-1)
        probs, sampled = full[ids], nucleus_probs(full, temperature, top_p)[ids]
        mass = float(probs.sum())
        out.append({**{ratio_dir_name(r): float(p) / mass for r, p in zip(FIXED_RATIOS, probs)}, "mass": mass,
                    "sampled": {ratio_dir_name(r): round(float(p), 6) for r, p in zip(FIXED_RATIOS, sampled)},
                    "in_nucleus": int((sampled > 0).sum())})
    return out


def expected_ratio(probs: Mapping[str, float]) -> float:
    return sum(r * probs[ratio_dir_name(r)] for r in FIXED_RATIOS)


def group_varies(sampled: Mapping[str, float], group_size: int) -> float:
    """The probability that ``group_size`` rollouts drawn from ``sampled`` (each ratio token's chance of being
    drawn; the rest of the mass, other tokens, counts as one more outcome) do not all start alike:
    ``1 - sum(q ** n)``. A group estimator (GRPO, CHRPO) sees a choice difference only in such a group."""
    shares = [max(0.0, float(v)) for v in sampled.values()]
    shares.append(max(0.0, 1.0 - sum(shares)))
    return 1.0 - sum(q ** group_size for q in shares)


def summarize(probs: Sequence[Mapping[str, float]], grades: Sequence[int],
              labels: Sequence[float | None] | None = None, seed: int = 0, group_size: int = DEFAULT_GROUP_SIZE) -> dict:
    """Per-grade mean choice distribution and expected ratio, the hardest-minus-easiest rise of the
    expected ratio (bootstrap 95 % interval), and with ``labels`` the expected ratio per label. Rows with
    ``sampled`` add ``explorable`` and ``group_varies`` (:func:`group_varies` of ``group_size`` rollouts)."""
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
    if all("sampled" in p for p in probs):
        for g in order:
            rows = by[g]
            out["by_grade"][g]["sampled"] = {ratio_dir_name(r): round(sum(p["sampled"][ratio_dir_name(r)] for p in rows)
                                                                      / len(rows), 4) for r in FIXED_RATIOS}
            out["by_grade"][g]["explorable"] = round(sum(p["in_nucleus"] >= 2 for p in rows) / len(rows), 4)
            out["by_grade"][g]["group_varies"] = round(
                sum(group_varies(p["sampled"], group_size) for p in rows) / len(rows), 4)
        out["explorable"] = round(sum(p["in_nucleus"] >= 2 for p in probs) / len(probs), 4)
        out["group_size"] = group_size
        out["group_varies"] = round(sum(group_varies(p["sampled"], group_size) for p in probs) / len(probs), 4)
    if len(order) > 1:
        a, b = [expected_ratio(p) for p in by[order[0]]], [expected_ratio(p) for p in by[order[-1]]]
        out["rise"] = {"easiest": order[0], "hardest": order[-1], **mean_diff(a, b, seed=seed)}
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
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                   help=f"sampling temperature of the 'sampled' and 'explorable' columns (default {DEFAULT_TEMPERATURE:g}, "
                        "the evaluation's and the CHRPO rollout's; 0 = greedy)")
    p.add_argument("--top-p", type=float, default=DEFAULT_TOP_P,
                   help=f"nucleus of those columns (default {DEFAULT_TOP_P:g}, the evaluation's and the CHRPO rollout's)")
    p.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE,
                   help=f"rollouts per prompt of the 'group_varies' column: the chance that a group of this many "
                        f"sampled choices is not unanimous (default {DEFAULT_GROUP_SIZE}, the CHRPO preset's rollout.n)")
    p.add_argument("--min-explorable", type=float, default=None,
                   help=f"exit {EXIT_NOT_EXPLORABLE} (after writing --out) when 'group_varies', averaged over the "
                        "questions, is below this: too few rollout groups would hold two different choices for RL "
                        "to compare")
    args = p.parse_args(argv)
    if args.temperature < 0 or not 0 < args.top_p <= 1 or args.group_size < 2:
        raise SystemExit(f"need --temperature >= 0, 0 < --top-p <= 1 and --group-size >= 2, got {args.temperature}, "
                         f"{args.top_p}, {args.group_size}")
    grades, rows = read_grades(Path(args.data)), []
    for n, row in read_jsonl(args.data):
        if not isinstance(row.get("question"), str):
            raise SystemExit(f"{args.data}:{n}: field 'question' is missing or not a string")
        rows.append(row)
    probs = choice_probs(args.model, [r["question"] for r in rows], args.temperature, args.top_p)
    labels = [r.get("gt_ratio") for r in rows] if any("gt_ratio" in r for r in rows) else None
    summary = {"model": str(args.model), "data": str(args.data), "temperature": args.temperature, "top_p": args.top_p,
               **summarize(probs, grades, labels, group_size=args.group_size)}
    if args.out:
        atomic_write_json(args.out, summary)
    for g, s in summary["by_grade"].items():
        print(f"grade {g} (n={s['n']}): expected ratio {s['expected_ratio']}, choice {s['probs']}, "
              f"argmax not 0.2 {s['argmax_not_0.2']}; sampled at T={args.temperature:g}, top_p={args.top_p:g}: "
              f"{s['sampled']}, explorable {s['explorable']}, groups of {args.group_size} not unanimous "
              f"{s['group_varies']}")
    if "rise" in summary:
        r = summary["rise"]
        print(f"rise of the expected ratio, grade {r['hardest']} - {r['easiest']}: {r['value']:+} {r['ci']}")
    if labels is not None:
        print(f"expected ratio by γ* label: {summary['expected_ratio_by_label']}")
    print(f"mean probability mass on the five ratio tokens: {summary['mean_mass']}; questions with >= 2 ratios in the "
          f"nucleus: {summary['explorable']}; rollout groups of {args.group_size} not unanimous: {summary['group_varies']}")
    if args.min_explorable is not None and summary["group_varies"] < args.min_explorable:
        print(f"not explorable: {summary['group_varies']} of the rollout groups of {args.group_size} would hold two "
              f"different choices at T={args.temperature:g}, top_p={args.top_p:g} (< --min-explorable "
              f"{args.min_explorable:g}); the rest choose alike, so RL has almost nothing to compare the choice on")
        return EXIT_NOT_EXPLORABLE
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
