import pytest

from extra_cot.tokens import (
    CONTROL_TOKENS,
    POLICY_TOKEN,
    canonical_text,
    parse_control,
    parse_leading_control,
    ratio_to_token,
    token_to_ratio,
)


@pytest.mark.parametrize("ratio,token", [(0.2, "<COMP_20>"), (0.4, "<COMP_40>"), (0.6, "<COMP_60>"),
                                         (0.8, "<COMP_80>"), (1.0, "<COMP_100>")])
def test_ratio_token_round_trip(ratio, token):
    assert ratio_to_token(ratio) == token
    assert token_to_ratio(token) == ratio
    assert parse_control(str(ratio)).token == token


def test_six_tokens_in_order():
    assert CONTROL_TOKENS == ("<COMP_20>", "<COMP_40>", "<COMP_60>", "<COMP_80>", "<COMP_100>", "<COMP_AUTO>")


@pytest.mark.parametrize("spec", ["policy", "auto", "<COMP_AUTO>", "<COMP_POLICY>", "POLICY"])
def test_policy_aliases(spec):
    choice = parse_control(spec)
    assert choice.token == POLICY_TOKEN and choice.ratio is None and choice.is_policy


@pytest.mark.parametrize("spec", [None, "base", "none", ""])
def test_no_token(spec):
    assert parse_control(spec) is None


@pytest.mark.parametrize("bad", [0.3, "0.5", "<COMP_30>", "fast"])
def test_unknown_control_names_valid_ones(bad):
    with pytest.raises(ValueError, match="valid|use one of"):
        parse_control(bad)


def test_parse_leading_control():
    assert parse_leading_control("<COMP_40>\n<think>\nx</think>").ratio == 0.4
    assert parse_leading_control("  \n<COMP_POLICY><think>").token == POLICY_TOKEN
    assert parse_leading_control("<think>\n<COMP_40></think>") is None
    assert parse_leading_control("") is None


def test_canonical_text():
    assert canonical_text("q <COMP_POLICY>") == "q <COMP_AUTO>"


def test_import_extra_cot_imports_no_host():
    """`import extra_cot` (and the CLI's --help) stays free of hosts, torch and vLLM."""
    import subprocess
    import sys

    code = (
        "import sys, extra_cot, extra_cot.cli, extra_cot.grading, extra_cot.compress, extra_cot.sft, extra_cot.rl;"
        "extra_cot.cli.main(['--help']);"
        "heavy = {'torch', 'transformers', 'vllm', 'verl', 'llamafactory', 'ray'} & set(sys.modules);"
        "print('HEAVY', sorted(heavy))"
    )
    env = {"EXTRA_COT_AUTOLOAD": "0", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
