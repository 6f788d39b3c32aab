"""The demo's proxy gamma* for Stage 2 policy rows."""

from __future__ import annotations

import json

from extra_cot.demo import policy

COT = "Tom has 3.\nSo 3 * 4 = 12 apples.\nThen 12 + 5 = 17 apples.\nSo the answer is 17."


def test_demo_intermediate_results():
    assert policy.intermediate_results(COT) == {"12", "17"}
    assert policy.intermediate_results("x = $1,200 and y=3") == {"1200", "3"}


def test_demo_proxy_gt_ratio_is_the_lowest_ratio_keeping_every_result():
    assert policy.proxy_gt_ratio(COT, {"0.2": "3*4=12 12+5=17", "0.4": "3 * 4 = 12 12 + 5 = 17"}) == 0.2
    assert policy.proxy_gt_ratio(COT, {"0.2": "3*4=12", "0.4": "x", "0.6": "=12 =17"}) == 0.6
    assert policy.proxy_gt_ratio(COT, {"0.2": "3*4=12", "0.8": "12 and 170"}) == 1.0  # 170 is not 17
    assert policy.proxy_gt_ratio(COT, {}) == 1.0


def test_demo_policy_step_writes_targets(tmp_path):
    src = tmp_path / "compressed.jsonl"
    src.write_text(json.dumps({"question": "q", "cot": COT, "compressed": {"0.4": "12 17"}}) + "\n")
    assert policy.main(["--compressed", str(src), "--out", str(tmp_path / "t.jsonl")]) == 0
    assert json.loads((tmp_path / "t.jsonl").read_text()) == {"question": "q", "gt_ratio": 0.4}
