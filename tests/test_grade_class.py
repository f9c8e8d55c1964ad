"""``python -m tools.grade_class`` grades a class offline with otter and writes one gradebook.

For every assignment a mixed submission (the solutions with one question answered by calling the
package, one question answered wrongly, everything else right) goes through the class command, and
for the first assignment also a blank one (the student version) and the untouched solutions, all in
one run. The gradebook must give the mixed one full marks except on its two edited questions (zero
for the package call, fewer points for the wrong answer), the solutions full marks, the blank zero,
and an empty written column per question graded by hand. Each submission goes through ``otter run``
with the assignment's autograder zip, offline: the grading route of ``book/instructor.md``. Slow
(one otter run per submission, 7 in all); every assignment's solutions and blank version are also
graded in-process by ``tests/test_assignments.py``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("otter", reason="otter-grader is in requirements-test.txt")
sys.path.insert(0, str(ROOT))
from tools import grade_class  # noqa: E402

#: ``{assignment: [(question, solution line, replacement, "zero" or "less")]}``.
EDITS = {
    "a1_head_by_hand": [
        ("q1", "    W_QK = W_Q @ W_K.T",
         "    W_QK = __import__('toymodel.circuits').circuits.qk_circuit(W_Q, W_K)", "zero"),
        ("q2", "    W_OV = W_V @ W_O", "    W_OV = (W_V @ W_O).T", "less"),
    ],
    "a2_build_a_head": [
        ("q4", "    ov = W_E @ W_V @ W_O @ W_U", "    ov = circuits.full_ov_circuit(W_E, W_V, W_O, W_U)",
         "zero"),
        ("q5", "accuracy = (predictions[:, 1:] == tokens[:, :-1]).float().mean().item()",
         "accuracy = (predictions[:, 1:] == tokens[:, :-1]).float().sum().item()", "less"),
    ],
    "a3_read_a_trained_model": [
        ("q3", "    ov = W_E @ W_V @ W_O @ W_U", "    ov = circuits.full_ov_circuit(W_E, W_V, W_O, W_U)",
         "zero"),
        ("q5", "    fraction = float((M.argmax(axis=1) == np.arange(n_numbers)).mean())",
         "    fraction = float((M.argmax(axis=1) == np.arange(n_numbers)).sum())", "less"),
    ],
    "a4_composition": [
        ("q3", "    score = float(np.linalg.norm(W_A @ W_B) / (np.linalg.norm(W_A) * "
               "np.linalg.norm(W_B)))",
         "    score = float(composition.composition_score(torch.as_tensor(W_A), "
         "torch.as_tensor(W_B)))", "zero"),
        ("q5", "induction_heads = [h for h in range(model.cfg.n_heads) if ind_scores[h] > 2 * "
               "control_scores[h]]", "induction_heads = [0]", "less"),
    ],
    "a5_language_model": [
        ("q2", "    ov = W_E @ W_V @ W_O @ W_U",
         "    ov = __import__('toymodel.circuits').circuits.full_ov_circuit(W_E, W_V, W_O, W_U)",
         "zero"),
        ("q4", 'raised = bool(min(lift["n_with"], lift["n_without"]) >= 30',
         'raised = not bool(min(lift["n_with"], lift["n_without"]) >= 30', "less"),
    ],
}

#: The assignment whose blank version and untouched solutions also go through the class command.
FULL = "a1_head_by_hand"


def _edit(nb: dict, old: str, new: str) -> dict:
    hits = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        lines = src.split("\n")
        for i, line in enumerate(lines):
            code = re.sub(r"\s*# SOLUTION$", "", line)
            if code.startswith(old):
                lines[i] = new + code[len(old):]
                hits += 1
        cell["source"] = "\n".join(lines)
    assert hits == 1, (old, hits)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    out = tmp_path_factory.mktemp("class")
    built = out / "built"
    subprocess.run([sys.executable, str(ROOT / "assignments" / "build.py"), "--out", str(built)],
                   check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(
                       ROOT / "src")})
    subs = out / "submissions"
    for name, edits in EDITS.items():
        folder = subs / name
        folder.mkdir(parents=True)
        nb = json.loads((built / name / "autograder" / f"{name}.ipynb").read_text())
        if name == FULL:
            (folder / "blank.ipynb").write_text(
                (built / name / "student" / f"{name}.ipynb").read_text())
            (folder / "right.ipynb").write_text(json.dumps(nb))
        for _, old, new, _ in edits:
            nb = _edit(nb, old, new)
        (folder / "mixed" ).mkdir()
        (folder / "mixed" / f"{name}.ipynb").write_text(json.dumps(nb))
    grade_class.main([str(subs), "--out", str(out / "grades"), "--assignments", str(built)])
    with (out / "grades" / "gradebook.csv").open() as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    return rows, out / "grades"


def _columns(name, rows):
    header = list(next(iter(rows.values())))
    auto = [(h, float(re.search(r"\(/([\d.]+)\)", h).group(1))) for h in header
            if h.startswith(f"{name} q") and "written" not in h]
    total = next(h for h in header if h.startswith(f"{name} automatic total"))
    written = [h for h in header if h.startswith(name) and "written" in h]
    return auto, total, written


@pytest.mark.parametrize("name", sorted(EDITS))
def test_gradebook(graded, name):
    rows, grades = graded
    auto, total, written = _columns(name, rows)
    qs = grade_class.questions(name)
    assert [q for q, _, m in qs if not m] == [h.split()[1] for h, _ in auto]
    assert len(written) == sum(m for *_, m in qs) >= 1
    mixed = rows["mixed"]
    edited = {q: kind for q, _, _, kind in EDITS[name]}
    for h, top in auto:
        q = h.split()[1]
        got = float(mixed[h])
        if edited.get(q) == "zero":
            assert got == 0, (h, got)
        elif edited.get(q) == "less":
            assert got < top, (h, got)
        else:
            assert got == top, (h, got, (grades / name / "mixed" / "feedback.txt").read_text())
    assert all(mixed[h] == "" for h in written)
    feedback = (grades / name / "mixed" / "feedback.txt").read_text()
    assert "write this yourself" in feedback
    assert (grades / name / "mixed" / "results.json").is_file()
    assert (grades / name / f"written_{written[0].split()[1]}.md").is_file()
    if name != FULL:
        assert rows["blank"][total] == rows["right"][total] == "", "graded only for " + FULL
        return
    blank, right = rows["blank"], rows["right"]  # right: the untouched solutions
    assert float(blank[total]) == 0 and all(float(blank[h]) == 0 for h, _ in auto)
    assert all(blank[h] == "" for h in written)
    assert all(float(right[h]) == top for h, top in auto), (
        grades / name / "right" / "feedback.txt").read_text()
    assert float(right[total]) == sum(top for _, top in auto)
