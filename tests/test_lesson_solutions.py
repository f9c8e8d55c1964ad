"""Every lesson reprints its checked outputs, and every exercise solution runs and says the truth.

Each lesson notebook is executed once (as the book build does, in its own folder) with, after its
own cells, one cell per solution: the solution's code as written in the markdown (inside
``<details><summary>Solution</summary>``), its printed output captured, then a check of what the
solution's text claims, from ``CHECKS`` below. A solution that raises, or whose claim is false,
fails the test named after its exercise. Solutions of a lesson missing from ``CHECKS`` still have
to run without error.

The same run checks the lesson's own cells as ``pytest --nbval-lax`` would
(``test_checked_outputs_match_the_commit``, rule in ``tests/colab/checked_outputs.py``): no cell
raises, and every cell tagged ``nbval-check-output`` prints, glues and shows what the committed
notebook holds. The solution cells come after the lesson's own, so they cannot change what those
print. ``make other-kernels`` runs this file with the last bits moved, in place of a second,
separate nbval run of every lesson (``make unit`` still runs nbval itself).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_spec = importlib.util.spec_from_file_location("checked_outputs", ROOT / "tests" / "colab" / "checked_outputs.py")
checked_outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checked_outputs)

SOLUTION = re.compile(r"<details>\s*<summary>\s*Solution\s*</summary>(?P<body>.*?)</details>",
                      re.DOTALL | re.IGNORECASE)
EXERCISE = re.compile(r"\*\*Exercise (?P<n>\d+)\.?\*\*")
CODE = re.compile(r"^(?P<fence>`{3,})\s*(?:python|py|ipython3?)?\s*\n(?P<code>.*?)^(?P=fence)\s*$",
                  re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"(?<!`)`(?P<code>[^`\n]+)`(?!`)")


def inline_expressions(body: str) -> list[str]:
    """The inline code spans of a solution's text that are Python expressions doing something.

    A span counts when it compiles as an expression and holds a call, a matrix product, an index or
    an attribute (``W_pos @ W_QK``, ``f(x)``, ``a[0]``, ``m.W_E``); a bare name, a literal or
    arithmetic such as ``n - 1`` is a mention of a quantity, not code to run.
    """
    body = CODE.sub("", body)
    found = []
    for m in INLINE.finditer(body):
        code = m.group("code").strip()
        try:
            compile(code, "<inline>", "eval")
        except SyntaxError:
            continue
        if re.search(r"[(@\[]|[A-Za-z_]\.[A-Za-z_]", code):
            found.append(code)
    return found


@dataclass(frozen=True)
class Solution:
    notebook: str
    exercise: int
    code: str


def solutions(nb: dict, name: str) -> list[Solution]:
    """The code of every solution in ``nb``'s markdown, labelled by its exercise number."""
    found, exercise = [], None
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        marks = [(m.start(), int(m.group("n"))) for m in EXERCISE.finditer(text)]
        for m in SOLUTION.finditer(text):
            before = [n for pos, n in marks if pos < m.start()]
            exercise = before[-1] if before else exercise
            code = "\n".join(c.group("code") for c in CODE.finditer(m.group("body")))
            inline = inline_expressions(m.group("body"))
            if inline:  # every inline expression of a solution runs in the lesson's state too
                code += "\n" + "\n".join(f"_inline = ({c})" for c in inline) + "\n"
            if code.strip():
                if exercise is None:
                    raise ValueError(f"{name}: a solution with code comes before any exercise")
                found.append(Solution(name, exercise, code))
        if marks:
            exercise = marks[-1][1]
    return found


# What each solution's text claims, checked in the lesson's kernel right after the solution ran.
# ``_out`` is the solution's printed output.
CHECKS = {
    ("01_worked_example.ipynb", 1): """
from toymodel import circuits as _c
_pattern = _c.attention_pattern(_c.attention_scores(ex.x, ex.W_Q, ex.W_K), ex.d_head)
np.testing.assert_allclose(_pattern, ex.pattern)  # W_V does not move the pattern
np.testing.assert_allclose(_c.attention_output(_pattern, ex.x, np.eye(4), ex.W_O)[0], new_out_A)
np.testing.assert_allclose(new_out_A, ex.output[0][[0, 2, 1, 3]])  # middle two exchanged
assert format_vector(new_out_A) in _out and format_vector(ex.output[0]) in _out
""",
    ("01_worked_example.ipynb", 2): """
assert _out.splitlines()[0] == "True"
np.testing.assert_array_equal(ex.x @ (2 * ex.W_Q), 2 * ex.q)  # queries double
np.testing.assert_array_equal(ex.x @ (ex.W_K / 2), ex.k / 2)  # keys halve
np.testing.assert_array_equal(circuits.attention_scores(ex.x, 2 * ex.W_Q, ex.W_K / 2), ex.scores)
""",
    ("01_worked_example.ipynb", 3): """
np.testing.assert_array_equal(scores, [[3, -2], [-2, 3]])
_p = circuits.attention_pattern(scores, 4)
np.testing.assert_allclose(np.diag(_p), 1 / (1 + np.exp(-5 / 2)), rtol=1e-12)
np.testing.assert_allclose(_p[0, 0], ex.weight("A", "B"), rtol=1e-12)  # what A used to give B
assert (np.diag(_p) > 0.5).all()  # each token looks mostly at itself
""",
    ("01_worked_example.ipynb", 4): """
np.testing.assert_allclose(scores3[:2, :2], ex.scores)  # A and B score as before
np.testing.assert_allclose(scores3, x3 @ ex.W_QK @ x3.T)
np.testing.assert_array_equal(scores3[2], [1, 1, 4])  # the scores the text derives for D
assert pattern3[2, 2] > 0.5 and abs(on_others - (1 - pattern3[2, 2])) < 1e-12  # D keeps most
assert f"{on_others:.3f}" in _out
assert pattern3[0, 1] > 0.5 and pattern3[1, 0] > 0.5  # A and B do fit the hypothesis
""",
    ("02_one_layer_model.ipynb", 1): """
_stats = experiments.circuit_stats(first, first_task)
_value_spread = float(value_part.max() - value_part.min())
assert float(position_part[0] - position_part[1:].max()) > _value_spread  # position 0 decides
assert abs(_stats.qk_spearman) < 0.5  # the value row is no longer ordered by value
assert _stats.copying_score > 0.9  # again a copier
assert evaluate(first, first_task) >= 0.99
""",
    ("02_one_layer_model.ipynb", 2): """
assert int(two.sum()) >= 100 and pairs.shape == (int(two.sum()), 2)
assert float((pairs.min(dim=1).values / pairs.max(dim=1).values).min()) > 0.8  # nearly even
_single = float(weights[one][is_max[one]].mean())
assert abs(float(pairs.sum(dim=1).mean()) - _single) < 0.05  # the pair gets what one copy gets
assert experiments.agreement(model, tokens[two], targets[two]) >= 0.99  # still right
_lines = _out.strip().splitlines()
assert f"{pairs.mean():.2f}" in _lines[0] and f"{_single:.2f}" in _lines[0]
""",
    ("02_one_layer_model.ipynb", 3): """
_scale = float(big_eigs.abs().max())
assert len(big_eigs) == n and len(small_eigs) == model.cfg.d_head
assert float(nearest.max()) < 1e-9 * _scale  # every small eigenvalue is one of the big table's
assert len(rest) == n - model.cfg.d_head and float(rest.abs().max()) < 1e-9 * _scale  # zeros
""",
    ("03_editing_circuits.ipynb", 1): """
assert bool((runner_up >= 0).all())  # every held-out list has a runner-up
_up = experiments.agreement(model, tokens, runner_up, score_hook=hide_the_max)
_top = experiments.agreement(model, tokens, targets, score_hook=hide_the_max)
assert _up >= 0.95 and _top <= 0.01  # the runner-up on (nearly) every list, practically never the max
assert f"{_up:.4f}" in _out and f"{_top:.4f}" in _out
with torch.no_grad():
    _, _p = model.run_with_pattern(tokens, score_hook=hide_the_max)
assert float((_p[:, 0, -1, : task.list_len] * (lists == targets[:, None])).sum()) == 0.0  # hidden
""",
    ("03_editing_circuits.ipynb", 2): """
assert float(_out.strip()) == evaluate(both, task) == accuracy
with torch.no_grad():
    assert torch.equal(both(tokens[:1000]), model(tokens[:1000]))  # exactly the trained model
    _neg_k = copy.deepcopy(model)
    _neg_k.W_K.neg_()
    assert torch.equal(_neg_k(tokens[:1000]), negated(tokens[:1000]))  # same as negating W_Q
""",
    ("03_editing_circuits.ipynb", 3): """
_rows = [line.split() for line in _out.strip().splitlines()]
_acc = {float(c): float(a) for c, a in _rows}
assert list(_acc) == [1, 0.3, 0.1, 0.03, 0]
assert _acc[1] == accuracy and _acc[0] < 0.5  # most lists wrong at c = 0 ...
assert _acc[0] > 4 / task.n_numbers  # ... but the maximum several times more often than a guess
assert all(a >= b for a, b in zip(list(_acc.values()), list(_acc.values())[1:]))  # it falls
with torch.no_grad():
    _, _p = scaled.run_with_pattern(tokens[:100])  # scaled holds c = 0 after the loop
torch.testing.assert_close(_p[:, 0, -1], torch.full_like(_p[:, 0, -1], 1 / task.n_ctx))
""",
    ("07_at_scale.ipynb", 1): """
assert abs(diagonal_sum - eigenvalue_sum.real.item()) <= 1e-9 * max(1.0, abs(diagonal_sum))
assert abs(eigenvalue_sum.imag.item()) <= 1e-9 * max(1.0, abs(diagonal_sum))
""",
    ("07_at_scale.ipynb", 2): """
assert 0 <= below <= 1 and len(sample) >= 100
assert f"{below:.0%}" in _out
assert name == "one_layer" and float(scores[bottom_head]) > 0  # the lowest score, still positive
""",
    ("07_at_scale.ipynb", 3): """
assert on_self.shape == (m.n_heads,) and f"{on_self[0]:.2f}" in _out
assert bool((stats[name]["pos_self"] > 0.5).all())  # by position alone: the present token
assert float(on_self.max()) < 0.5  # on text no head puts even half its weight there
# a float32 softmax, summed in float64: its rows sum to 1 within float32 rounding (about 3e-7
# under ATEN_CPU_CAPABILITY=default, make other-kernels)
torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern.sum(-1)), atol=1e-5, rtol=0)
""",
    ("04_two_layers.ipynb", 4): """
assert len(copies[0] | copies[1]) == n_tok  # every token copied by at least one head
assert 0.2 * n_tok < len(copies[0] & copies[1]) < 0.5 * n_tok  # about a third by both
""",
    ("05_language_one_layer.ipynb", 1): """
assert strings.index("·self") not in top and scores[worst] == scores.min()
""",
    ("05_language_one_layer.ipynb", 2): """
assert swapped["model_p_with"] < swapped["model_p_without"]
assert swapped["data_p_with"] < swapped["data_p_without"]
""",
    ("05_language_one_layer.ipynb", 3): """
assert len(paid) == 5 and 0 < sum(paid) < len(paid)  # some pay, some barely register: refuted
_ov, _cand = findings.full_ov(model), np.sort(cand)
for _b in bugs[:5]:  # B's OV row ranks C2 among the outputs it raises most, in every pair
    _row = _ov[_b.head, _b.b][torch.as_tensor(_cand)]
    assert _b.c2 in _cand[_row.argsort(descending=True)[:6].numpy()] and _b.ov_z[1] > 0
_lines = _out.strip().splitlines()
assert len(_lines) == 5 and all(" -> " in line and "…" in line for line in _lines)
""",
    ("06_language_two_layers.ipynb", 1): """
assert ms.induction[1, ind_head] < 0.5 * m.induction[1, ind_head]  # the head followed the content
assert ms.loss_second > m.loss_second + 1  # and copied the shuffled, wrong successor
""",
    ("06_language_two_layers.ipynb", 2): """
assert int(np.argmax(rises)) == prev_head == int(np.argmax(k[:, ind_head]))  # heads both lists
""",
    ("06_language_two_layers.ipynb", 3): """
assert float(_out.strip()) > 0.5  # positive, and well towards 1
""",
    ("03_editing_circuits.ipynb", 4): """
assert float(_out.strip()) == accuracy  # by construction: every answer moved
_lst = torch.tensor([[n - 1, 3, 5, 0, 7, 2, task.query_token]])
assert int(shifted(_lst)[0, -1].argmax()) == 0
""",
}


@functools.cache
def executed(path: Path) -> tuple[dict[int, list[str]], list[str]]:
    """Run the notebook plus its solutions once; ``({exercise: [error messages]}, [checked-output
    differences])``. Raises if one of the lesson's own cells raises."""
    nb = nbformat.read(str(path), as_version=4)
    committed = nbformat.read(str(path), as_version=4).cells
    sols = solutions(nb, path.name)
    for sol in sols:
        run = nbformat.v4.new_code_cell("%%capture _captured\n" + sol.code)
        check = CHECKS.get((path.name, sol.exercise), "")
        verify = nbformat.v4.new_code_cell("_out = _captured.stdout\n" + check)
        for cell in (run, verify):
            cell.metadata["solution"] = sol.exercise
        nb.cells += [run, verify]
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors: dict[int, list[str]] = {sol.exercise: [] for sol in sols}
    lesson_errors = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                message = f"{out['ename']}: {out['evalue']}\n{cell.source}"
                if "solution" in cell.metadata:
                    errors[cell.metadata["solution"]].append(message)
                else:
                    lesson_errors.append(message)
    if lesson_errors:
        raise AssertionError(f"{path.name} itself fails:\n" + "\n".join(lesson_errors))
    own = [c for c in nb.cells if "solution" not in c.metadata]
    return errors, checked_outputs.checked_differences(own, committed)


def _cases():
    cases = []
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for sol in solutions(nb, path.name):
            cases.append(pytest.param(path, sol.exercise, id=f"{path.stem}-exercise{sol.exercise}"))
    return cases


def test_solution_parser():
    nb = {"cells": [
        {"cell_type": "markdown", "source": "**Exercise 1.** Do it.\n\n<details>\n<summary>Solution"
         "</summary>\n\nText.\n```python\nx = 1\n```\nMore.\n```python\nprint(x)\n```\n</details>\n"},
        {"cell_type": "code", "source": "pass"},
        {"cell_type": "markdown", "source": "**Exercise 2.** Think.\n<details><summary>Solution"
         "</summary>\nNo code here.\n</details>\n\n**Exercise 3.** More."},
        {"cell_type": "markdown", "source": "<details><summary>Solution</summary>\n\n"
         "````python\ny = 2\n````\n</details>"},
        {"cell_type": "markdown", "source": "**Exercise 4.** Compute. <details><summary>Solution"
         "</summary>\nTake `a @ b.T`, then `max(c)`; the name `W_E` is only a mention.\n</details>"},
    ]}
    assert solutions(nb, "x.ipynb") == [
        Solution("x.ipynb", 1, "x = 1\n\nprint(x)\n"), Solution("x.ipynb", 3, "y = 2\n"),
        Solution("x.ipynb", 4, "\n_inline = (a @ b.T)\n_inline = (max(c))\n"),
    ]


def test_the_lessons_have_code_solutions():
    names = {c.values[0].name for c in _cases()}
    assert {"01_worked_example.ipynb", "02_one_layer_model.ipynb", "03_editing_circuits.ipynb"} <= names


@pytest.mark.parametrize("lesson", ["01_worked_example.ipynb", "02_one_layer_model.ipynb",
                                    "03_editing_circuits.ipynb", "05_language_one_layer.ipynb",
                                    "06_language_two_layers.ipynb",
                                    "07_at_scale.ipynb"])
def test_every_code_solution_of_the_lessons_has_a_check(lesson):
    nb = json.loads((ROOT / "notebooks" / lesson).read_text(encoding="utf-8"))
    unchecked = [s.exercise for s in solutions(nb, lesson) if (lesson, s.exercise) not in CHECKS]
    assert not unchecked, f"{lesson}: add a check of the claims of exercises {unchecked} to CHECKS"
    stale = [k for k in CHECKS if k[0] == lesson and k[1] not in {s.exercise for s in solutions(nb, lesson)}]
    assert not stale, f"CHECKS has entries for solutions that no longer have code: {stale}"


@pytest.mark.parametrize(("path", "exercise"), _cases())
def test_solution_runs_and_its_claims_hold(path, exercise):
    errors = executed(path)[0][exercise]
    assert not errors, f"{path.name}, exercise {exercise}:\n" + "\n\n".join(errors)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_checked_outputs_match_the_commit(path):
    assert checked_outputs.count_checked(nbformat.read(str(path), as_version=4).cells) >= 5
    differences = executed(path)[1]
    assert not differences, (f"{path.name}: {len(differences)} checked cell(s) differ from the "
                             "committed notebook (re-execute it, or fix the digits):\n\n"
                             + "\n\n".join(differences))


def test_checked_outputs_rule():
    """The comparison is nbval's: streams joined, glue payloads compared, images and ids not."""
    def cell(*outputs):
        return {"cell_type": "code", "id": "a", "metadata": {"tags": ["nbval-check-output"]},
                "source": "x", "outputs": list(outputs)}
    out = {"output_type": "stream", "name": "stdout", "text": "loss 3.46\n"}
    split = [{"output_type": "stream", "name": "stdout", "text": t} for t in ("loss 3.", "46\n")]
    glued = {"output_type": "display_data", "metadata": {"scrapbook": {"name": "x"}},
             "data": {"application/papermill.record/text/plain": "3.46", "image/png": "AAA"}}
    assert checked_outputs.difference(cell(*split), cell(out)) is None
    assert checked_outputs.difference(cell(dict(glued, data=dict(glued["data"], **{"image/png": "B"}))),
                                      cell(glued)) is None
    moved = dict(glued, data={"application/papermill.record/text/plain": "3.47"})
    assert "3.47" in checked_outputs.difference(cell(moved), cell(glued))
    assert checked_outputs.difference(cell(out), cell(out, glued)) is not None  # a glue went missing
    assert checked_outputs.difference(cell(moved), cell(glued), ignore=checked_outputs.GLUE) is None
    assert checked_outputs.difference(cell(out), cell(out, glued), ignore=checked_outputs.GLUE) is None
    unchecked = dict(cell(moved), metadata={})
    assert checked_outputs.checked_differences([unchecked], [cell(glued)]) == []
    assert len(checked_outputs.checked_differences([cell(moved)], [cell(glued)])) == 1
