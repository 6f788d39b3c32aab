"""Stage 1 fixtures: GSM8K-style and LaTeX-heavy texts written for these tests, and small samples
of GSM8K train and MATH-500 shipped in ``tests/fixtures`` (no shared data directory needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GSM8K_ROWS = [
    {"question": "Tom has 48 apples and gives half to Ann. How many apples does he keep?",
     "answer": "Tom gives 48/2 = <<48/2=24>>24 apples to Ann.\nSo he keeps 48 - 24 = <<48-24=24>>24 apples.\n#### 24"},
    {"question": "A pen costs $3 and a book costs 4 times as much. What do 2 books and 1 pen cost?",
     "answer": "A book costs 3 × 4 = $<<3*4=12>>12.\nTwo books cost 2 x 12 = $<<2*12=24>>24.\n"
               "Together with the pen that is 24 + 3 = $<<24+3=27>>27.\n#### 27"},
    {"question": "Mia reads 12 pages a day for 5 days, then 1,200 pages in a month. How many pages in total?",
     "answer": "In 5 days she reads 12 * 5 = <<12*5=60>>60 pages.\nIn total she reads 60 + 1,200 = <<60+1200=1260>>1,260 "
               "pages, which is about 3.5% of the library's 36,000 pages.\n#### 1260"},
]

LATEX_COT = (
    "We want the polar form of $(0,3)$. First, $r = \\sqrt{0^2 + 3^2} = 3$, and the angle is "
    "\\(\\theta = \\frac{\\pi}{2}\\) because the point lies on the positive $y$-axis. Wait, let me double-check: "
    "\\[ x = r\\cos\\theta = 3 \\cdot 0 = 0, \\quad y = r\\sin\\theta = 3 \\]\nso $$\\left(3, \\frac{\\pi}{2}\\right)$$ "
    "is right. Hmm, also note that $0 \\le \\theta < 2\\pi$ holds. Ünïcödé wörds — like ≤ and ≠ — stay whole. "
    "Therefore the answer is \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}."
)


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_rows(name: str) -> list[dict]:
    """Rows of a JSONL file shipped in ``tests/fixtures`` (see its README for provenance)."""
    with open(FIXTURES / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="session")
def gsm8k_train_rows():
    """The first 120 GSM8K train rows, shipped so the ratio-accuracy claim runs on a clean clone."""
    return fixture_rows("gsm8k_train_head.jsonl")


@pytest.fixture(scope="session")
def math500_rows():
    """12 MATH-500 test rows (solutions > 300 characters, no [asy]) covering align*, pmatrix,
    array, cases, eqnarray*, aligned, vmatrix, $$..$$, \\$, boxed in a display, multi-line $..$."""
    return fixture_rows("math500_sample.jsonl")


@pytest.fixture(scope="session")
def tiny_count(tiny_tokenizer):
    from extra_cot.compress.models import make_counter

    return make_counter(tiny_tokenizer)
