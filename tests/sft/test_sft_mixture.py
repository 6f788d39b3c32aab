"""Pure mixture logic: config validation, row validation, expansion, quotas, determinism."""

from __future__ import annotations

import json

import pytest

from extra_cot.prompt import build_response, build_user_text
from extra_cot.quotas import PAPER_QUOTAS
from extra_cot.sft.mixture import (
    BadRowError,
    MixtureConfig,
    dataset_info_entry,
    expand_row,
    parse_policy_share,
    policy_key,
    policy_targets,
    repeat_for_share,
    row_hash,
    select_policy_rows,
    validate_row,
)


def test_paper_defaults_and_round_trip():
    m = MixtureConfig()
    assert m.ratios == (0.2, 0.4, 0.6, 0.8, 1.0) and m.untagged_share == 0.5 and m.policy_rows == 10_000
    assert m.policy_quotas == pytest.approx(PAPER_QUOTAS)
    assert MixtureConfig.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    entry = dataset_info_entry("x.jsonl")
    assert entry["formatting"] == "extra_cot" and entry["file_name"] == "x.jsonl"


@pytest.mark.parametrize("bad, fix", [
    ({"ratios": [0.3]}, "valid"), ({"untagged_share": 2}, "[0, 1]"), ({"on_bad_row": "drop"}, "'skip'"),
    ({"policy_quotas": {"0.2": 0}}, "not all 0"), ({"ratios": []}, "subset"),
    ({"policy_repeat": 0}, ">= 1"), ({"policy_repeat": 1.5}, "whole number"), ({"policy_repeat": True}, "whole number"),
])
def test_config_errors_name_the_fix(bad, fix):
    with pytest.raises(ValueError, match=fix.replace("[", r"\[").replace("]", r"\]")):
        MixtureConfig.from_dict(bad)


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ValueError, match="untagged_share"):
        MixtureConfig.from_dict({"untaged_share": 0.5})


def test_expansion_one_per_available_ratio_token_in_and_echoed(sft):
    row = sft.make_row(7, gt_ratio=0.4, missing=("0.6",))
    m = MixtureConfig(untagged_share=0.0)
    examples = expand_row(row, m)
    assert [e.control for e in examples] == ["<COMP_20>", "<COMP_40>", "<COMP_80>", "<COMP_100>", "<COMP_AUTO>"]
    e20 = examples[0]
    assert e20.user == build_user_text(row["question"], "<COMP_20>")
    assert e20.response == build_response(row["compressed"]["0.2"], row["answer"], "<COMP_20>")
    assert examples[3].response == build_response(row["cot"], row["answer"], "<COMP_100>")
    policy = examples[-1]
    assert policy.user.endswith(" <COMP_AUTO>")
    assert policy.response == build_response(row["compressed"]["0.4"], row["answer"], "<COMP_40>")


def test_policy_repeat_copies_only_the_policy_example(sft):
    row = sft.make_row(3, gt_ratio=0.6)
    once = expand_row(row, MixtureConfig(untagged_share=0.0, policy_quotas=None))
    thrice = expand_row(row, MixtureConfig(untagged_share=0.0, policy_quotas=None, policy_repeat=3))
    assert thrice[:5] == once[:5] and len(once) == 6
    assert thrice[5:] == [once[5]] * 3 and once[5].control == "<COMP_AUTO>"
    no_gamma = sft.make_row(4)
    assert expand_row(no_gamma, MixtureConfig(policy_repeat=3)) == expand_row(no_gamma, MixtureConfig())
    m = MixtureConfig(policy_repeat=4)
    assert MixtureConfig.from_dict(json.loads(json.dumps(m.to_dict()))).policy_repeat == 4


def test_parse_policy_share():
    assert parse_policy_share("none") is None and parse_policy_share(" Method ") == pytest.approx(10 / 58)
    assert parse_policy_share("0.25") == 0.25
    for bad in ("0", "1", "-0.1", "half"):
        with pytest.raises(ValueError, match=r"none, method or a share in \(0, 1\)"):
            parse_policy_share(bad)


def test_repeat_for_share():
    assert repeat_for_share(400, 26, 10 / 58) == 3  # 78 of 478 examples = 16.3 %; 4 would give 20.6 %
    assert repeat_for_share(400, 26, 0.05) == 1  # already above: never below one copy
    assert repeat_for_share(400, 0, 0.5) == 1 and repeat_for_share(10, 10, 0.5) == 1
    assert repeat_for_share(90, 10, 0.5) == 9
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        repeat_for_share(10, 1, 1.0)


def test_ratio_subset_and_untagged_all():
    row = {"question": "q", "cot": "c", "answer": "\\boxed{1}", "compressed": {"0.2": "a", "0.4": "b"}}
    examples = expand_row(row, MixtureConfig(ratios=(0.4, 1.0), untagged_share=1.0))
    assert [e.control for e in examples] == ["<COMP_40>", None]
    assert examples[1].user.endswith("\nq") and examples[1].response.startswith("<think>\nc</think>")


def test_untagged_share_is_seeded_and_near_half(sft):
    rows = [sft.make_row(i) for i in range(2000)]
    m = MixtureConfig(policy_quotas=None)
    untagged = [expand_row(r, m)[-1].control is None for r in rows]
    assert 0.46 < sum(untagged) / len(rows) < 0.54
    assert untagged == [expand_row(r, m)[-1].control is None for r in rows]  # same every time
    other = [expand_row(r, MixtureConfig(seed=7))[-1].control is None for r in rows]
    assert other != untagged


@pytest.mark.parametrize("row, field", [
    ({"cot": "c", "answer": "\\boxed{1}"}, "'question'"),
    ({"question": "q", "cot": "", "answer": "\\boxed{1}"}, "'cot'"),
    ({"question": "q", "cot": "c", "answer": "no box"}, "'answer'"),
    ({"question": "q", "cot": "c", "answer": "\\boxed{1}", "compressed": {"0.3": "x"}}, "'compressed.0.3'"),
    ({"question": "q", "cot": "c", "answer": "\\boxed{1}", "compressed": {"1.0": "x"}}, "'compressed.1.0'"),
    ({"question": "q", "cot": "c", "answer": "\\boxed{1}", "compressed": {"0.2": 3}}, "'compressed.0.2'"),
    ({"question": "q", "cot": "c", "answer": "\\boxed{1}", "gt_ratio": 0.5}, "'gt_ratio'"),
    ({"question": "q", "cot": "c", "answer": "\\boxed{1}", "gt_ratio": 0.2}, "'gt_ratio'"),
])
def test_bad_rows_name_where_and_field(row, field):
    with pytest.raises(BadRowError, match=f"data.jsonl:9, field {field}"):
        validate_row(row, "data.jsonl:9")


def test_policy_quotas_exact_and_order_independent(sft):
    # 100 rows per γ*: the 0.6 quota (26%) binds -> total 100/0.26 = 384.6 policy rows
    rows = [sft.make_row(i, gt_ratio=r) for r in (0.2, 0.4, 0.6, 0.8, 1.0) for i in range(int(r * 1000), int(r * 1000) + 100)]
    m = MixtureConfig()
    targets = policy_targets({r: 100 for r in (0.2, 0.4, 0.6, 0.8, 1.0)}, m)
    assert targets == {0.2: 69, 0.4: 92, 0.6: 100, 0.8: 85, 1.0: 38}
    chosen = select_policy_rows(rows, m)
    assert chosen == select_policy_rows(list(reversed(rows)), m)
    by_ratio = {r: sum(policy_key(x) in chosen for x in rows if x["gt_ratio"] == r) for r in targets}
    assert by_ratio == targets
    capped = policy_targets({r: 100 for r in targets}, MixtureConfig(policy_rows=50))
    assert sum(capped.values()) == 50  # the cap is met exactly (extra_cot.quotas.allocate)


def test_policy_quota_zero_or_missing_ratio():
    m = MixtureConfig(policy_quotas={"0.2": 1.0, "0.4": 0.0})
    assert policy_targets({0.2: 5, 0.4: 5}, m) == {0.2: 5}
    # a γ* with a quota but no rows does not zero the others
    assert policy_targets({0.2: 18}, MixtureConfig()) == {0.2: 18}
    row = {"question": "q", "cot": "c", "answer": "\\boxed{1}", "compressed": {"0.4": "b"}, "gt_ratio": 0.4}
    assert all(e.control != "<COMP_AUTO>" for e in expand_row(row, m))
    assert expand_row(row, MixtureConfig())[-1].control == "<COMP_AUTO>"
    assert all(e.control != "<COMP_AUTO>" for e in expand_row(row, MixtureConfig(), policy_keep=False))


def test_data_templates_in_sync(sft):
    info = json.loads((sft.SAMPLE_DIR / "dataset_info.json").read_text())
    (_name, entry), = info.items()
    assert entry == dataset_info_entry(entry["file_name"], MixtureConfig.from_dict(entry["extra_cot"]))
    assert entry["extra_cot"] == MixtureConfig().to_dict()  # the template shows the paper defaults
    lines = (sft.SAMPLE_DIR / entry["file_name"]).read_text().splitlines()
    assert len(lines) >= 5
    for i, line in enumerate(lines):
        validate_row(json.loads(line), f"{entry['file_name']} line {i + 1}")
    assert any("gt_ratio" in json.loads(line) for line in lines)


def test_streaming_policy_selection_matches_a_brute_force_sort(sft):
    """PolicySelection keeps two floats per row; the chosen set must equal sorting whole rows."""
    import random

    rng = random.Random(3)
    for trial in range(20):
        rows = [sft.make_row(i, rng.choice([0.2, 0.4, 0.6, 0.8, 1.0, None])) for i in range(rng.randint(0, 300))]
        m = MixtureConfig(seed=trial, policy_rows=rng.choice([None, 10, 100]))
        by_ratio: dict[float, list] = {}
        for row in rows:
            if row.get("gt_ratio") is not None:
                by_ratio.setdefault(row["gt_ratio"], []).append((row_hash(row, m.seed, "policy"), policy_key(row)))
        targets = policy_targets({r: len(v) for r, v in by_ratio.items()}, m)
        brute = {key for r, items in by_ratio.items() for _, key in sorted(items)[: targets.get(r, 0)]}
        assert select_policy_rows(rows, m) == brute
        assert select_policy_rows(list(reversed(rows)), m) == brute
