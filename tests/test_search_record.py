"""What the lesson and the chapter say of the plain-text search, held against its record.

Issue 31's search is recorded in ``benchmarks/lm_plain_search.csv`` (every logged step of every
plain-text run, written by ``benchmarks/lm_plain_report.py`` from the runs' checkpoints). Lesson 06
and ``book/language_models.md`` state two facts about it in words, not glue (the lesson runs alone
in Colab, without the benchmarks folder): no run formed an induction head, and the longest run read
three hundred million tokens. These tests tie both statements to the record.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from toymodel.text import two_layer

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "benchmarks" / "lm_plain_search.csv"
MEASURES = ["text_loss", "icl", "text_prev", "continuation", "induction"]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with open(RECORD, newline="") as f:
        out = list(csv.DictReader(f))
    assert out, f"{RECORD} has no rows"
    return out


def flat(text: str) -> str:
    return " ".join(text.split())


def lesson_markdown() -> str:
    nb = json.loads((ROOT / "notebooks" / "06_language_two_layers.ipynb").read_text("utf-8"))
    return flat(" ".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"))


def test_every_logged_step_has_every_measure(rows):
    for r in rows:
        for key in ["tokens", *MEASURES]:
            float(r[key])  # raises on an empty or malformed cell
    runs = {r["run"] for r in rows}
    assert {"c64", "w128", "m128", "s256", "v512"} <= runs


def test_no_run_formed_an_induction_head(rows):
    # the lesson and the chapter: "formed no induction head in any of its settings"
    for r in rows:
        assert float(r["induction"]) < two_layer.BARS["induction"], r
        assert float(r["continuation"]) < two_layer.BARS["continuation"], r


def test_the_longest_run_read_what_the_text_says(rows):
    longest = max(float(r["tokens"]) for r in rows)
    assert 3e8 <= longest < 4e8  # "three hundred million tokens", the blocking rule of issue 31
    assert "its longest run reading three hundred million tokens" in lesson_markdown()
    chapter = flat((ROOT / "book" / "language_models.md").read_text("utf-8"))
    assert "its longest run read three hundred million tokens" in chapter


def test_the_longest_run_is_past_the_law_by_far(rows):
    # the record's runs all use B*C = 512 or 1,024 windows x tokens; the longest (c64, B*C = 512)
    # read many times the tokens by which the law expects induction heads
    c64 = [float(r["tokens"]) for r in rows if r["run"] == "c64"]
    assert max(c64) > 20 * two_layer.predicted_emergence(8, 64)
