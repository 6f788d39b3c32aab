"""The ``chains`` task (extra_cot.tasks) and its Level-0 check (extra_cot.study.chain_kept), fast."""

from __future__ import annotations

import json
import re

import pytest

from extra_cot.study.chain_kept import chain_kept, check, gold_chain, kept_table
from extra_cot.tasks import TASKS, generate, get_task, trace_row
from extra_cot.tasks.chains import ChainOptions
from extra_cot.tasks.chains import generate as chains_generate

_EQ = re.compile(r"^(\d+) ([-+]) (\d+) = (\d+)$")


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_chains_rows_hold_one_bare_correct_line_per_step_with_distinct_two_digit_totals(seed):
    rows = generate("chains", 200, seed=seed)
    assert rows == generate("chains", 200, seed=seed) and len({r["question"] for r in rows}) == 200
    assert {r["grade"] for r in rows} == {1, 2, 3, 4}
    for row in rows:
        lines = row["cot"].split("\n")
        eqs = [m.groups() for line in lines if (m := _EQ.match(line))]
        prose = [line for line in lines if not _EQ.match(line)]
        assert len(eqs) == row["grade"] and len(prose) == 3, row["cot"]  # opener, plan | chain | closing
        assert not any(ch.isdigit() for line in prose for ch in line), prose  # number-free prose
        totals = [int(eqs[0][0])] + [int(c) for *_, c in eqs]
        assert len(set(totals)) == len(totals) and all(10 <= t <= 99 for t in totals)
        assert len({b for _, _, b, _ in eqs}) == len(eqs)  # each step moves by its own amount
        for (a, op, b, c), prev in zip(eqs, totals):
            assert int(a) == prev and 2 <= int(b) <= 9 and int(c) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        assert gold_chain(row["answer"]) == eqs  # the GSM8K solution is the same chain
        assert row["gold"] == str(totals[-1]) and row["answer"].endswith(f"#### {totals[-1]}")
        assert f"\\boxed{{{row['gold']}}}" in row["final"]
        count = {1: "one", 2: "two", 3: "three", 4: "four"}[row["grade"]]
        assert f" {count} " in row["question"]  # the step count is shown


def test_distinct_moves_is_an_option_and_needs_enough_move_sizes():
    same = chains_generate(300, seed=2, options=ChainOptions(distinct_moves=False))
    repeats = [r for r in same if len(set(re.findall(r" [-+] (\d+) =", r["cot"]))) < r["grade"]]
    assert repeats  # without the option a problem may move twice by the same amount
    with pytest.raises(ValueError, match="distinct_moves needs at least 6 move sizes"):
        ChainOptions(steps=(1, 6), min_move=2, max_move=6)
    assert ChainOptions(steps=(1, 6), min_move=2, max_move=6, distinct_moves=False).max_move == 6
    tight = ChainOptions(steps=(6,), min_move=2, max_move=7, low=10, high=30, min_start=15, max_start=25)
    for row in chains_generate(50, seed=4, options=tight):  # the retry finds a draw in a tight range
        ks = [int(k) for k in re.findall(r" [-+] (\d+) =", row["cot"])]
        assert sorted(ks) == [2, 3, 4, 5, 6, 7] and all(10 <= int(t) <= 30 for t in re.findall(r"= (\d+)", row["cot"]))


def test_chains_prose_does_not_grow_with_the_steps_and_the_wording_varies():
    from extra_cot.demo.problems import trace_stats

    rows = generate("chains", 400, seed=3)
    prose = {g: [sum(len(x.split()) for x in r["cot"].split("\n") if "=" not in x) for r in rows if r["grade"] == g]
             for g in (1, 4)}
    means = {g: sum(v) / len(v) for g, v in prose.items()}
    assert abs(means[4] - means[1]) < 2 and 35 < min(map(min, prose.values())) <= max(map(max, prose.values())) < 60
    stats = trace_stats([r["cot"] for r in rows], [len(r["cot"].split()) for r in rows], [r["grade"] for r in rows])
    assert stats["top_sentence_share"] <= 0.10, stats
    assert len({r["question"].split(".")[1] for r in rows}) > 20  # many phrasings of the question


def test_the_registry_names_its_tasks_and_keeps_varied_as_it_was():
    from extra_cot.demo.problems import generate as varied
    from extra_cot.demo.problems import to_trace

    assert sorted(TASKS) == ["chains", "varied"]
    assert generate("varied", 30, seed=5) == varied(30, seed=5)
    row = generate("varied", 1, seed=5)[0]
    assert trace_row("varied", row) == to_trace(row)  # no new field in the varied data
    assert trace_row("chains", generate("chains", 1)[0])["answer"].startswith(tuple("0123456789"))
    with pytest.raises(ValueError, match=r"unknown task 'nope'; valid: \['chains', 'varied'\]"):
        get_task("nope")
    with pytest.raises(ValueError, match="steps"):
        ChainOptions(steps=(0, 2))


def test_chain_kept_finds_every_gold_equation_spaced_or_not_and_never_inside_another_number():
    chain = [("23", "+", "7", "30"), ("30", "-", "5", "25")]
    assert chain_kept("so\n23 + 7 = 30\n30  -   5 =\n25 done", chain)
    assert chain_kept("23+7=30 and 30-5=25.", chain)
    assert not chain_kept("23 + 7 = 30", chain)  # a step missing
    assert not chain_kept("123 + 7 = 30 30 - 5 = 25", chain)
    assert not chain_kept("23 + 7 = 301 30 - 5 = 25", chain)
    assert not chain_kept("23 + 7 = 30 30 - 5 = 26", chain)
    assert chain_kept("no chain at all", [])


def _rows(shares: dict[str, dict[int, float]], n: int = 10):
    """Kept-table rows whose chain survives in the given share per ratio and grade."""
    chain = [("10", "+", "2", "12")]
    rows = []
    for grade in {g for by in shares.values() for g in by}:
        for i in range(n):
            rows.append((grade, chain, {r: "10 + 2 = 12" if i < by[grade] * n else "words" for r, by in shares.items()}))
    return rows


def test_kept_table_and_the_level0_check():
    good = {"0.2": {1: 1.0, 6: 0.0}, "0.4": {1: 1.0, 6: 0.3}, "0.6": {1: 1.0, 6: 0.9}, "1.0": {1: 1.0, 6: 1.0}}
    share, counts = kept_table(_rows(good))
    assert share == {"0.2": {"1": 1.0, "6": 0.0}, "0.4": {"1": 1.0, "6": 0.3}, "0.6": {"1": 1.0, "6": 0.9},
                     "1.0": {"1": 1.0, "6": 1.0}}
    assert counts["0.4"] == {"1": 10, "6": 10}
    result = check(share)
    assert result["met"] and result["value"]["hardest_kept_at"] == ["0.6"]  # 1.0 is not a compression
    for bad in ({**good, "0.2": {1: 0.8, 6: 0.0}}, {**good, "0.2": {1: 1.0, 6: 0.2}},
                {**good, "0.6": {1: 1.0, 6: 0.8}}):
        assert not check(kept_table(_rows(bad))[0])["met"], bad


def test_the_chain_kept_step_regenerates_the_gold_and_checks_the_compressions(tmp_path):
    from extra_cot.study.chain_kept import main
    from extra_cot.study.data import main as data_main

    data = tmp_path / "data"
    assert data_main(["--out", str(data), "--task", "chains", "--seed", "2", "--train", "24", "--policy", "2",
                      "--val", "2", "--test", "2"]) == 0
    rows = [json.loads(x) for x in (data / "train.jsonl").read_text().splitlines()]

    def compress(row):  # keep the whole chain where grade <= 2 or ratio >= 0.6, else drop the first step
        cot = row["response"].split("<think>\n")[1].split("</think>")[0]
        lines = cot.split("\n")
        cut = "\n".join(lines[:2] + lines[3:])
        return {r: cot if row["grade"] <= 2 or float(r) >= 0.6 else cut for r in ("0.2", "0.4", "0.6", "0.8")}

    out_rows = [{"question": r["question"], "cot": r["response"].split("<think>\n")[1].split("</think>")[0],
                 "compressed": compress(r)} for r in rows]
    compressed = tmp_path / "c.jsonl"
    compressed.write_text("".join(json.dumps(r) + "\n" for r in out_rows))
    argv = ["--data", str(data), "--compressed", str(compressed), "--out", str(tmp_path / "k.json"), "--require"]
    assert main(argv) == 0
    got = json.loads((tmp_path / "k.json").read_text())
    assert got["share"]["0.2"]["1"] == 1.0 and got["share"]["0.2"]["4"] == 0.0 and got["share"]["0.6"]["4"] == 1.0
    assert got["check"]["met"]
    out_rows[0]["question"] = "a question the generator never made"
    compressed.write_text("".join(json.dumps(r) + "\n" for r in out_rows))
    with pytest.raises(ValueError, match=r"c.jsonl:1: field 'question' is not a train-split question"):
        main(argv)
    out_rows[0]["question"] = rows[0]["question"]
    for r in out_rows:  # now the easiest grade loses its chain at 0.2 too: the check fails and --require says so
        r["compressed"]["0.2"] = "words"
    compressed.write_text("".join(json.dumps(r) + "\n" for r in out_rows))
    assert main(argv) == 1 and not json.loads((tmp_path / "k.json").read_text())["check"]["met"]


def test_study_task_chains_only_data_writes_the_interface_rows(tmp_path):
    from extra_cot.study.__main__ import main

    out = tmp_path / "s"
    assert main(["--task", "chains", "--seed", "4", "--out", str(out), "--only", "data", "--n-sft", "20",
                 "--n-policy", "8", "--n-val", "8", "--n-test", "8"]) == 0
    rows = [json.loads(x) for x in (out / "data" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 20
    for r in rows:
        assert {"question", "response", "grade", "answer"} <= set(r) and isinstance(r["grade"], int)
        assert r["response"].startswith("<think>\n") and "</think>" in r["response"]
        assert all(f"{a} {op} {b} = {c}" in r["response"] for a, op, b, c in gold_chain(r["answer"]))
    assert json.loads((out / "data" / "data_config.json").read_text())["task"] == "chains"
    from extra_cot.study.config import StudyConfig
    from extra_cot.study.steps import build_steps

    names = [s.name for s in build_steps(StudyConfig(out=str(out), task="chains"))]
    assert names[:5] == ["data", "model", "compress-train", "chain-kept", "compress-policy"]
    steps = {s.name: s.argv for s in build_steps(StudyConfig(out=str(out), task="chains"))}
    assert "--require" in steps["chain-kept"] and steps["data"][steps["data"].index("--task") + 1] == "chains"
    assert "--require" not in {s.name: s.argv for s in build_steps(StudyConfig(out=str(out)))}["chain-kept"]


def test_the_varied_study_data_are_byte_for_byte_what_they_were(tmp_path):
    """The data step's seven files for the varied task, seed 11, hashed as written before the task
    registry (commit d440e07): a change of the varied generator or its rows changes this digest."""
    import hashlib

    from extra_cot.study.data import main

    assert main(["--out", str(tmp_path), "--seed", "11", "--train", "30", "--policy", "20", "--val", "10",
                 "--test", "12"]) == 0
    names = ("train", "policy", "policy_gsm8k", "val", "test", "val_traces", "test_traces")
    digest = hashlib.sha256(b"".join((tmp_path / f"{n}.jsonl").read_bytes() for n in names)).hexdigest()
    assert digest == "a021c9b7f69b4ea83a78dfb4b0ee3259524acbb0dc407a2947bd0b5648ad9f19"
