"""extra_cot.study.choice: the policy's choice distribution read from the model, and its summary."""

from __future__ import annotations

import json

import pytest

from extra_cot.study.choice import choice_probs, expected_ratio, nucleus_probs, summarize

RATIOS = ("0.2", "0.4", "0.6", "0.8", "1.0")


def _p(**weights):
    total = sum(weights.values())
    return {**{r: 0.0 for r in RATIOS}, **{k.replace("r", "").replace("_", "."): v / total for k, v in weights.items()},
            "mass": 0.9}


def test_summary_finds_a_choice_that_rises_with_grade_and_none_where_it_is_flat():
    easy, hard = _p(r0_2=9, r1_0=1), _p(r0_2=1, r0_8=4, r1_0=5)
    assert expected_ratio(easy) == pytest.approx(0.28) and expected_ratio(hard) == pytest.approx(0.84)
    rising = summarize([easy] * 20 + [hard] * 20, [1] * 20 + [4] * 20, labels=[0.2] * 20 + [1.0] * 20)
    assert rising["by_grade"]["1"]["expected_ratio"] == pytest.approx(0.28)
    assert rising["by_grade"]["4"]["probs"]["0.8"] == pytest.approx(0.4)
    assert rising["by_grade"]["1"]["argmax_not_0.2"] == 0 and rising["by_grade"]["4"]["argmax_not_0.2"] == 1
    assert rising["rise"]["value"] == pytest.approx(0.56) and rising["rise"]["ci"][0] > 0.5
    assert rising["expected_ratio_by_label"] == {"0.2": {"n": 20, "expected_ratio": 0.28},
                                                 "1": {"n": 20, "expected_ratio": 0.84}}
    mixed = [easy, hard] * 20
    flat = summarize(mixed, [1, 4] * 10 + [4, 1] * 10)
    assert flat["rise"]["ci"][0] < 0 < flat["rise"]["ci"][1] and "expected_ratio_by_label" not in flat
    with pytest.raises(ValueError):
        summarize([easy], [1, 2])


def test_nucleus_keeps_what_vllm_keeps():
    import torch

    p = torch.tensor([0.93, 0.04, 0.02, 0.01])
    # at T = 1 the tail 0.01 + 0.02 + 0.04 = 0.07 <= 0.1: only the top token is left; top_p 0.95 keeps the 0.04
    assert nucleus_probs(p, 1.0, 0.9).tolist() == [1.0, 0.0, 0.0, 0.0]
    kept = nucleus_probs(p, 1.0, 0.95)
    assert kept[2] == 0 and kept[3] == 0 and float(kept[1]) == pytest.approx(0.04 / 0.97)
    # a lower temperature sharpens before the cut; a higher one can bring the tail back in
    assert nucleus_probs(torch.tensor([0.85, 0.15]), 0.7, 0.9).tolist() == [1.0, 0.0]
    assert float(nucleus_probs(torch.tensor([0.85, 0.15]), 1.0, 0.9)[1]) == pytest.approx(0.15)
    assert nucleus_probs(p, 0.0, 0.9).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert float(nucleus_probs(p, 1.0, 1.0).sum()) == pytest.approx(1.0) and bool((nucleus_probs(p, 1.0, 1.0) > 0).all())


def test_summary_counts_questions_a_sampler_can_explore():
    one = {**_p(r0_2=95, r0_4=5), "sampled": {"0.2": 1.0, "0.4": 0.0, "0.6": 0.0, "0.8": 0.0, "1.0": 0.0}, "in_nucleus": 1}
    two = {**_p(r0_2=6, r0_4=4), "sampled": {"0.2": 0.6, "0.4": 0.4, "0.6": 0.0, "0.8": 0.0, "1.0": 0.0}, "in_nucleus": 2}
    s = summarize([one, one, one, two], [1, 1, 4, 4])
    assert s["by_grade"]["1"]["explorable"] == 0 and s["by_grade"]["4"]["explorable"] == 0.5 and s["explorable"] == 0.25
    assert s["by_grade"]["4"]["sampled"]["0.4"] == pytest.approx(0.2)
    assert s["group_size"] == 4 and s["by_grade"]["1"]["group_varies"] == 0
    assert s["by_grade"]["4"]["group_varies"] == pytest.approx((1 - 0.6**4 - 0.4**4) / 2, abs=1e-4)
    assert summarize([two], [1], group_size=2)["group_varies"] == pytest.approx(1 - 0.36 - 0.16)
    assert "explorable" not in summarize([_p(r0_2=1)], [1])


def test_group_varies_counts_the_mass_outside_the_ratio_tokens_as_one_more_outcome():
    from extra_cot.study.choice import group_varies

    assert group_varies({"0.2": 1.0, "0.4": 0.0}, 4) == 0
    assert group_varies({"0.2": 0.5, "0.4": 0.5}, 2) == pytest.approx(0.5)
    # 0.9 on one ratio, 0.1 on tokens that are no ratio at all: a group can still differ
    assert group_varies({"0.2": 0.9, "0.4": 0.0}, 4) == pytest.approx(1 - 0.9**4 - 0.1**4)
    # larger groups differ more often
    assert group_varies({"0.2": 0.97, "0.4": 0.03}, 8) > group_varies({"0.2": 0.97, "0.4": 0.03}, 4) > 0.1


def test_choice_probs_reads_the_first_response_token_after_the_policy_prompt(tiny_model_dir):
    """Checked against transformers' own generate(): its first-step scores, over the five tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from extra_cot.prompt import build_messages

    questions = ["Tom has 3 apples and buys 4 more. How many now?", "What is 12 * 7 - 5?"]
    got = choice_probs(tiny_model_dir, questions)
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    ids = [tok.convert_tokens_to_ids(f"<COMP_{n}>") for n in (20, 40, 60, 80, 100)]
    for question, probs in zip(questions, got):
        enc = tok.apply_chat_template(build_messages(question, "<COMP_AUTO>"), add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        out = model.generate(**enc, max_new_tokens=1, do_sample=False, output_scores=True, return_dict_in_generate=True)
        ref = torch.softmax(out.scores[0][0].float(), dim=-1)[ids]
        assert probs["mass"] == pytest.approx(float(ref.sum()), rel=1e-4)
        assert [probs[r] for r in RATIOS] == pytest.approx((ref / ref.sum()).tolist(), rel=1e-4)
        # at T = 1 and top_p = 1 nothing is cut: the sampled share is the raw probability
        full = choice_probs(tiny_model_dir, [question], temperature=1.0, top_p=1.0)[0]
        assert [full["sampled"][r] for r in RATIOS] == pytest.approx(ref.tolist(), rel=1e-3, abs=1e-6)
        assert full["in_nucleus"] == 5
    assert got[0] != got[1]  # the question is read, not only the template


def test_choice_refuses_a_model_without_control_tokens_and_names_bad_rows(tiny_base_model_dir, tmp_path):
    from extra_cot.study.choice import main

    with pytest.raises(ValueError, match="control tokens"):
        choice_probs(tiny_base_model_dir, ["q"])
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "q", "grade": "hard"}) + "\n")
    with pytest.raises(ValueError, match=r"d.jsonl:1: field 'grade'"):
        main(["--model", str(tiny_base_model_dir), "--data", str(data)])
    data.write_text(json.dumps({"grade": 2}) + "\n")
    with pytest.raises(SystemExit, match=r"d.jsonl:1: field 'question'"):
        main(["--model", str(tiny_base_model_dir), "--data", str(data)])


def test_min_explorable_gates_with_exit_3_after_writing_the_summary(tmp_path, monkeypatch, capsys):
    from extra_cot.study import choice

    peaked = {**_p(r0_2=99, r0_4=1), "sampled": {"0.2": 1.0, "0.4": 0.0, "0.6": 0.0, "0.8": 0.0, "1.0": 0.0},
              "in_nucleus": 1}
    open_ = {**_p(r0_2=6, r0_4=4), "sampled": {"0.2": 0.6, "0.4": 0.4, "0.6": 0.0, "0.8": 0.0, "1.0": 0.0},
             "in_nucleus": 2}
    seen = {}

    def fake(model, questions, temperature, top_p):
        seen.update(t=temperature, p=top_p)
        return [peaked, peaked, peaked, open_]

    monkeypatch.setattr(choice, "choice_probs", fake)
    data = tmp_path / "rl.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "grade": 1 + i % 2}) + "\n" for i in range(4)))
    out = tmp_path / "c.json"
    assert choice.main(["--model", "m", "--data", str(data), "--out", str(out), "--min-explorable", "0.3"]) == 3
    # the gate reads group_varies: one question of four with a 0.6 / 0.4 split -> (1 - 0.6^4 - 0.4^4) / 4
    written = json.loads(out.read_text())
    assert written["explorable"] == 0.25 and written["group_varies"] == pytest.approx(0.2112, abs=1e-4)
    assert "not explorable: 0.2112 of the rollout groups of 4" in capsys.readouterr().out
    assert seen == {"t": 0.7, "p": 0.9}
    assert choice.main(["--model", "m", "--data", str(data), "--min-explorable", "0.25"]) == 3
    assert choice.main(["--model", "m", "--data", str(data), "--min-explorable", "0.2"]) == 0
    # groups of 8 differ more often: (1 - 0.6^8 - 0.4^8) / 4 = 0.2456
    assert choice.main(["--model", "m", "--data", str(data), "--min-explorable", "0.24"]) == 3
    assert choice.main(["--model", "m", "--data", str(data), "--min-explorable", "0.24", "--group-size", "8"]) == 0
    with pytest.raises(SystemExit, match="group-size"):
        choice.main(["--model", "m", "--data", str(data), "--group-size", "1"])
    assert choice.main(["--model", "m", "--data", str(data), "--temperature", "1", "--top-p", "1"]) == 0
    assert seen == {"t": 1.0, "p": 1.0}
