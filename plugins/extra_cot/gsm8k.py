"""GSM8K's answer format, parsed once: a worked solution, then a last line ``#### <final answer>``.

Used by the eval loader (gold), the compressor's ``gsm8k`` reader (CoT + gold) and the demo's
input check. (Model *responses* that end in ``#### x`` are graded by :mod:`extra_cot.grading`.)
"""

from __future__ import annotations

MARKER = "####"


def split_solution(answer: str, where: str) -> tuple[str, str]:
    """``(worked solution, final answer)`` of a GSM8K ``answer``; thousands commas are dropped
    from the final answer (``1,234`` -> ``1234``). Raise naming ``where`` (``file:line``)."""
    if not isinstance(answer, str) or MARKER not in answer:
        raise ValueError(
            f"{where}: GSM8K field 'answer' has no '{MARKER} <final answer>' line "
            "(not GSM8K? eval: use format 'generic'; compress: --input-format responses)"
        )
    solution, final = answer.rsplit(MARKER, 1)
    return solution.strip(), final.strip().replace(",", "")


def operation_count(answer: str) -> int:
    """Calculator annotations ``<<…>>`` in a GSM8K solution (its number of operations), at least 1:
    the difficulty grade the demo reports γ* by on GSM8K rows."""
    return max(1, answer.count("<<"))
