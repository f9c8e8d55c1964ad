"""What the lesson and the chapter say of the plain-text search, held against its record.

Issue 31's search is recorded in ``benchmarks/lm_plain_search.csv`` (every logged step of every
plain-text two-layer run, written by ``benchmarks/lm_plain_report.py`` from the runs'
checkpoints). Lesson 06 and ``book/language_models.md`` state in words, not glue (the lesson runs
alone in Colab, without the benchmarks folder), that most settings formed no induction head, that
the longest run read three hundred million tokens, and that the last setting formed one: the
shipped plain-text model. These tests tie those statements to the record.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from toymodel.text import lm, two_layer

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "benchmarks" / "lm_plain_search.csv"
MEASURES = ["text_loss", "icl", "text_prev", "continuation", "induction"]
SHIPPED_RUN = "w256"  # lm.CONFIGS["two_layer_plain"] is this run's recipe


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


def chapter() -> str:
    return flat((ROOT / "book" / "language_models.md").read_text("utf-8"))


def formed(r: dict) -> bool:
    """The natural-text bars a log entry can show: a previous-token head and a layer-1 head that
    attends to earlier continuations."""
    return (float(r["text_prev"]) >= two_layer.BARS["prev"]
            and float(r["continuation"]) >= two_layer.BARS["continuation"])


def test_every_logged_step_has_every_measure(rows):
    for r in rows:
        for key in ["tokens", *MEASURES]:
            float(r[key])  # raises on an empty or malformed cell
    runs = {r["run"] for r in rows}
    assert {"c64", "w128", "m128", "s256", "v512", SHIPPED_RUN} <= runs


def test_only_the_last_setting_formed_the_circuit(rows):
    # the lesson: "formed none in most of its settings ... until a wider model ... formed one"
    assert {r["run"] for r in rows if formed(r)} == {SHIPPED_RUN}
    assert "until a wider model reading more kinds of text formed one" in lesson_markdown()
    assert "formed no induction head in most of its settings" in chapter()
    assert "its last setting formed one" in chapter()


def test_the_longest_run_read_what_the_text_says(rows):
    longest = max(float(r["tokens"]) for r in rows)
    assert 3e8 <= longest < 4e8  # "three hundred million tokens", the blocking rule of issue 31
    assert not any(formed(r) for r in rows if float(r["tokens"]) == longest)
    assert "one run reading three hundred million tokens" in lesson_markdown()
    assert "its longest run read three hundred million tokens" in chapter()


def test_the_shipped_model_is_the_run_that_formed_it(rows):
    """The shipped file's log is the record's run, step for step, up to where the file was taken."""
    _, log = lm.load_lm("two_layer_plain", with_log=True)
    run = {int(r["step"]): r for r in rows if r["run"] == SHIPPED_RUN}
    assert log and all(e["step"] in run for e in log)
    for e in log:
        for key in MEASURES:
            assert e[key] == pytest.approx(float(run[e["step"]][key]), abs=1e-4), (e["step"], key)
    first = next(e for e in log if formed({k: e[k] for k in ("text_prev", "continuation")}))
    # it formed near the law's prediction, long before the longest run's budget
    assert first["tokens"] < 3 * two_layer.predicted_emergence(4, 128)
