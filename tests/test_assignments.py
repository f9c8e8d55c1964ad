"""The course assignments (assignments/*.ipynb, otter-grader masters).

For every assignment: ``otter assign`` builds it offline; the master's solutions pass every check,
hidden ones included; the student version holds no solution line (cells, outputs, metadata, test
files); it runs top to bottom with its blanks unfilled and each check then fails with its message;
and each question's checks reject a plausible wrong answer, with a message naming the mistake.

Notebooks run in this process (IPython's input transformer handles the ``%pip``/``!`` lines of the
Colab setup, which never execute here): one import of torch and otter for the whole file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "assignments"

otter = pytest.importorskip("otter", reason="otter-grader is in requirements-test.txt")

from toymodel import grading  # noqa: E402
from toymodel.grading import _answers as ref  # noqa: E402


def _load_build():
    """assignments/build.py, under a name no installed package uses."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("assignments_build", ASSIGNMENTS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()

NAMES = [p.stem for p in build.masters()]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """``otter assign`` every master once (no test run); returns the output folder."""
    out = tmp_path_factory.mktemp("assignments")
    build.main(["--out", str(out)])
    return out


@pytest.fixture(scope="module", autouse=True)
def train_once():
    """Train each seeded model once in this module.

    Assignment 3's notebook trains its model; the student and autograder versions train the same
    seeded model with the same config (determinism is tested in test_train.py), so the second
    call gets a copy of the first one's result. Restored when the module ends.
    """
    import copy

    import toymodel.train as tr

    real, cache = tr.train, {}

    def cached(task, cfg=None, device="cpu", progress=True):
        key = (task.name, task.n_numbers, task.list_len, cfg, str(device))
        if key not in cache:
            cache[key] = real(task, cfg, device=device, progress=progress)
        model, history = cache[key]
        return copy.deepcopy(model), history

    tr.train = cached
    yield
    tr.train = real


def code_cells(nb_path: Path):
    nb = json.loads(nb_path.read_text())
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def run_notebook(nb_path: Path, stop_before: str | None = None,
                 cwd: Path | None = None) -> tuple[dict, dict]:
    """Execute a notebook's code cells in order, in this process, from its own folder (or
    ``cwd``).

    Returns ``(namespace, checks)`` where ``checks`` maps each question name to the result of
    its ``grader.check("q")`` cell (an otter ``TestFile``). Stops before the first cell whose
    source contains ``stop_before``.
    """
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    ns: dict = {"__name__": "__main__"}
    checks = {}
    here = os.getcwd()
    os.chdir(cwd or nb_path.parent)
    try:
        for cell in code_cells(nb_path):
            src = "".join(cell["source"])
            if stop_before and stop_before in src:
                break
            m = re.fullmatch(r'grader\.check\("(\w+)"\)', src.strip())
            with contextlib.redirect_stdout(io.StringIO()):
                if m:
                    checks[m.group(1)] = eval(src, ns)
                elif "grader.check_all()" not in src:
                    exec(compile(transform(src), str(nb_path), "exec"), ns)
    finally:
        os.chdir(here)
    ns["__checks__"] = checks
    return ns, checks


def check(ns: dict, tests_dir: Path, question: str):
    """Run ``question``'s checks from ``tests_dir`` against the namespace ``ns``."""
    from otter.execute import Checker
    from otter.nbmeta_config import NBMetadataConfig

    with contextlib.redirect_stdout(io.StringIO()):
        return Checker.check(str(tests_dir / f"{question}.py"), NBMetadataConfig(), None, ns)


def messages(result) -> str:
    """Every failure message of an otter TestFile, as one string."""
    return "\n".join(tc.message for tc in result.test_case_results if not tc.passed)


def solution_lines(master: Path) -> list[str]:
    """The lines of the master that are solutions (``# SOLUTION`` lines and solution blocks)."""
    lines, inside = [], False
    for cell in json.loads(master.read_text())["cells"]:
        if cell["cell_type"] == "raw":
            src = "".join(cell["source"]).strip()
            inside = {"# BEGIN SOLUTION": True, "# END SOLUTION": False}.get(src, inside)
            continue
        if cell["cell_type"] != "code" or not inside:
            continue
        block = False
        for line in "".join(cell["source"]).splitlines():
            s = line.strip()
            if s.startswith("# BEGIN SOLUTION"):
                block = True
            elif s.startswith("# END SOLUTION"):
                block = False
            elif s.endswith("# SOLUTION") or block:
                code = s.removesuffix("# SOLUTION").strip()
                if "=" in code and s.endswith("# SOLUTION"):
                    code = code.split("=", 1)[1].strip()  # the student keeps `name = ...`
                if len(code) > 3:
                    lines.append(code)
    return lines


# --------------------------------------------------------------------------------------------
# the tests, for every assignment
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_layout(built, name):
    student, autograder = built / name / "student", built / name / "autograder"
    assert (student / f"{name}.ipynb").is_file(), "the student notebook keeps the master's name"
    assert list(autograder.glob(f"{name}-autograder_*.zip")), "no autograder zip for otter run"
    assert not (student / "autograder").exists()
    assert not list(student.glob("*.zip")) and not list(student.glob("*.pdf"))
    assert (built / "publish" / name / f"{name}.ipynb").is_file()
    assert not list((built / "publish").rglob("*autograder*"))
    # the Colab setup cell fetches the checks from this repository's publish branch
    from toymodel._repo import REPO_URL

    setup = "".join(code_cells(ASSIGNMENTS / f"{name}.ipynb")[1]["source"])
    assert f"--branch {build.PUBLISH_BRANCH} {REPO_URL} " in setup
    assert f'notebook = "{name}.ipynb"' in setup and "otter.Notebook(" in setup
    # the first code cell installs toymodel as every lesson's does (toymodel._repo's template)
    from toymodel._repo import install_cell

    first = code_cells(ASSIGNMENTS / f"{name}.ipynb")[0]
    assert "".join(first["source"]) == install_cell()


@pytest.fixture(scope="module")
def solved(request):
    """``{name: (namespace, tests_dir)}`` for the assignment a test asks for, solved once."""

    class Lazy(dict):
        def __missing__(self, name):
            self[name] = request.getfixturevalue(f"solved_{name[:2]}")
            return self[name]

    return Lazy()


@pytest.mark.parametrize("name", NAMES)
def test_solutions_pass_every_check(built, solved, name):
    ns = solved[name][0]
    public = ns["__checks__"]
    questions = sorted(p.stem for p in (built / name / "autograder" / "tests").glob("q*.py"))
    assert questions and sorted(public) == questions
    for q in questions:
        result = check(ns, built / name / "autograder" / "tests", q)
        assert result.passed_all, f"{name} {q}: {messages(result)}"
        assert any(tc.test_case.hidden for tc in result.test_case_results), f"{q} has no hidden check"
    for q, result in public.items():  # the notebook's own check cells pass too
        assert result.passed_all, f"{name} {q}: {messages(result)}"


@pytest.mark.parametrize("name", NAMES)
def test_master_shows_the_numbers_a_solution_reaches(solved, name):
    """The committed master ends with the summary its solutions print, up to date."""
    cells = code_cells(ASSIGNMENTS / f"{name}.ipynb")
    last = [c for c in cells if "grading.summary(" in "".join(c["source"])]
    assert len(last) == 1, "the master ends with one grading.summary cell"
    stored = "".join("".join(o.get("text", "")) for o in last[0]["outputs"])
    assert "not answered" not in stored and stored.strip(), "re-execute the master"
    assert stored == solved[name][0]["results"] + "\n", (
        "the master's stored summary differs from a fresh run: re-execute it with "
        "docs-dev/execute.py")


@pytest.mark.parametrize("name", NAMES)
def test_student_version_has_no_solution(built, name):
    student = built / name / "student"
    lines = solution_lines(ASSIGNMENTS / f"{name}.ipynb")
    assert len(lines) >= 5
    texts = {f"{name}.ipynb": (student / f"{name}.ipynb").read_text()}
    for p in (student / "tests").glob("*.py"):
        texts[f"tests/{p.name}"] = p.read_text()
        assert "hidden=True" not in texts[f"tests/{p.name}"], f"hidden check in {p.name}"
        assert "hidden=False" in texts[f"tests/{p.name}"], "unexpected test file format"
    nb = json.loads(texts[f"{name}.ipynb"])
    for cell in nb["cells"]:
        assert not cell.get("outputs"), "the student notebook ships without outputs"
    for where, text in texts.items():
        # json.dumps covers sources, outputs and metadata with the same escaping as the file
        flat = text if where.endswith(".py") else json.dumps(nb)
        for line in lines:
            assert line not in flat and json.dumps(line)[1:-1] not in flat, (
                f"solution line {line!r} leaked into {where}")
    assert "HIDDEN" not in texts[f"{name}.ipynb"]


@pytest.mark.parametrize("name", NAMES)
def test_blank_student_version_runs_and_checks_fail(built, name):
    ns, checks = run_notebook(built / name / "student" / f"{name}.ipynb")
    assert checks, "no check cells ran"
    for q, result in checks.items():
        assert not result.passed_all, f"{q} passes with its blanks unfilled"
        text = messages(result)
        # every failure is one of grading's messages (not a NameError or a bare assert) ...
        assert text.count("CheckFailed: ") == text.count("Test case failed"), text
        # ... and says what is missing: a `...` left in place, an answer not computed, or a
        # head left at zero
        assert ("`...`" in text or "all zeros" in text or "is zero" in text
                or "does not exist yet" in text), text


def _solve(built, name):
    nb = built / name / "autograder" / f"{name}.ipynb"
    return run_notebook(nb)[0], nb.parent / "tests"


@pytest.fixture(scope="module")
def solved_a1(built):
    return _solve(built, "a1_head_by_hand")


@pytest.fixture(scope="module")
def solved_a2(built):
    return _solve(built, "a2_build_a_head")


@pytest.fixture(scope="module")
def solved_a3(built):
    return _solve(built, "a3_read_a_trained_model")


@pytest.fixture(scope="module")
def solved_a4(built):
    return _solve(built, "a4_composition")


@pytest.fixture(scope="module")
def solved_a5(built):
    return _solve(built, "a5_language_model")


def test_instructor_page_agrees_with_the_masters():
    """book/instructor.md's table: question count and total time of each master, and links."""
    page = (ROOT / "book" / "instructor.md").read_text()
    for name in NAMES:
        master = (ASSIGNMENTS / f"{name}.ipynb").read_text()
        minutes = [int(m) for m in re.findall(r"Estimated time:\*? (\d+) minutes", master)]
        questions = len(re.findall(r"# BEGIN QUESTION", master))
        assert len(minutes) == questions > 0
        row = next(line for line in page.splitlines() if line.startswith(f"| `{name}`"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == str(questions), row
        assert cells[4] == f"{sum(minutes)} minutes", row
        assert build.colab_link(name) in page


def test_colab_like_run_of_a_student_version(built, tmp_path, monkeypatch):
    """As on Colab: otter sees the Colab shell, the notebook file is not on disk, and the
    tests/ folder is what the setup cell fetched from the assignments branch (copied here)."""
    import shutil
    import types

    import otter.check.utils as ocu

    name = "a1_head_by_hand"
    shutil.copytree(built / "publish" / name / "tests", tmp_path / "tests")
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(ocu, "get_ipython", lambda: "<google.colab._shell.Shell object>")
    ns, checks = run_notebook(built / name / "student" / f"{name}.ipynb", cwd=tmp_path)
    assert ns["grader"].interpreter is ocu.IPythonInterpreter.COLAB
    assert not (tmp_path / f"{name}.ipynb").exists()
    assert sorted(checks) == [f"q{i}" for i in range(1, 8)]  # q8 is answered in words
    assert "`W_QK` is still `...`" in messages(checks["q1"])


# --------------------------------------------------------------------------------------------
# plausible wrong answers, one or more per question
# --------------------------------------------------------------------------------------------


def assert_rejected(ns, tests_dir, q, changes: dict, phrase: str):
    """Apply ``changes`` to a solved namespace, rerun ``q``'s checks, expect ``phrase``."""
    trial = {**ns, **changes}
    result = check(trial, tests_dir, q)
    assert not result.passed_all, f"{q} accepts the wrong answer {sorted(changes)}"
    assert phrase in messages(result), f"{q}: expected {phrase!r} in:\n{messages(result)}"


def test_a1_rejects_wrong_answers(solved_a1):
    ns, tests = solved_a1
    x, W_Q, W_K, W_V, W_O = (ns[k] for k in ("x", "W_Q", "W_K", "W_V", "W_O"))
    assert_rejected(ns, tests, "q1", {"W_QK": W_K @ W_Q.T}, "W_K W_Q^T")
    assert_rejected(ns, tests, "q1", {"qk_circuit": lambda q, k: k @ q.T}, "qk_circuit(")
    assert_rejected(ns, tests, "q2", {"W_OV": (W_V @ W_O).T}, "transpose")
    assert_rejected(ns, tests, "q2", {"ov_circuit": lambda v, o: (v @ o).T}, "ov_circuit(")
    W_QK = W_Q @ W_K.T
    assert_rejected(ns, tests, "q3", {"scores": x @ W_QK.T @ x.T}, "transposed")
    assert_rejected(ns, tests, "q3", {"scores": x @ W_QK @ x.T / 2}, "sqrt(d_head)")
    scores = x @ W_QK @ x.T
    no_mask = ref.reference_pattern(scores, 4, causal=False)
    no_scale = ref.reference_pattern(scores * 2, 4)
    assert_rejected(ns, tests, "q4", {"pattern": no_mask}, "no causal mask")
    assert_rejected(ns, tests, "q4", {"pattern": no_scale}, "1/sqrt(d_head)")
    assert_rejected(ns, tests, "q4", {"causal_pattern": lambda s, d: np.exp(s) / np.exp(s).sum(
        -1, keepdims=True)}, "causal_pattern(")
    pattern = ref.reference_pattern(scores, 4)
    W_OV = W_V @ W_O
    assert_rejected(ns, tests, "q5", {"output": pattern.T @ (x @ W_OV)}, "pattern transposed")
    assert_rejected(ns, tests, "q5", {"output": pattern @ (x @ W_OV.T)}, "W_OV transposed")
    wrong_std = ref.reference_pattern(scores * 2, 4) @ (x @ W_OV)
    assert_rejected(ns, tests, "q6", {"standard_output": wrong_std}, "1/sqrt(d_head)")
    assert_rejected(ns, tests, "q6", {"max_difference": 0.5}, "max_difference")


def test_a2_rejects_wrong_answers(solved_a2):
    import torch

    ns, tests = solved_a2

    def swapped_qk(model, strength=20.0):  # W_Q and W_K roles exchanged: favours p + 1
        V, C = model.cfg.d_vocab, model.cfg.n_ctx
        with torch.no_grad():
            for p in range(C - 1):
                model.W_Q[0, V + p, p + 1] = strength
            for j in range(C):
                model.W_K[0, V + j, j] = 1.0

    def ov_into_token_block(model):  # writes where W_U does not read
        V = model.cfg.d_vocab
        with torch.no_grad():
            for t in range(V):
                model.W_V[0, t, t] = 1.0
                model.W_O[0, t, t] = 1.0

    wrong = grading.blank_model(5, 6)
    swapped_qk(wrong)
    assert_rejected(ns, tests, "q1", {"model": wrong}, "*next* position")
    assert_rejected(ns, tests, "q1", {"set_qk": swapped_qk}, "*next* position")
    assert_rejected(ns, tests, "q2", {"pos_qk": np.asarray(ns["pos_qk"]).T}, "transposed")
    assert_rejected(ns, tests, "q2", {"position_qk": lambda m: ns["position_qk"](m).T},
                    "transposed")
    wrong = grading.blank_model(5, 6)
    ov_into_token_block(wrong)
    assert_rejected(ns, tests, "q3", {"model": wrong}, "is zero")
    assert_rejected(ns, tests, "q3", {"set_ov": ov_into_token_block}, "is zero")
    assert_rejected(ns, tests, "q4", {"full_ov": lambda m: ns["full_ov"](m).T}, "transposed")
    tokens, model = ns["tokens"], ns["model"]
    with torch.no_grad():
        pred = model(tokens).argmax(-1)
    current = (pred[:, 1:] == tokens[:, 1:]).float().mean().item()
    assert_rejected(ns, tests, "q5", {"accuracy": current}, "current token")


def test_a3_rejects_wrong_answers(solved_a3):
    ns, tests = solved_a3
    model, query, n = ns["model"], ns["query"], ns["task"].n_numbers
    w = grading.head_weights(model)
    full_qk = w["W_E"] @ w["W_Q"] @ w["W_K"].T @ w["W_E"].T
    assert_rejected(ns, tests, "q1", {"row": full_qk[:n, query]}, "column")
    assert_rejected(ns, tests, "q1", {"query_row": lambda m, q, k: ns["query_row"](m, q, k) * 2},
                    "query_row(")
    assert ns["winner"] != 15
    assert_rejected(ns, tests, "q2", {"winner": 15}, "largest number")
    full_ov = np.asarray(ns["full_ov"])
    assert_rejected(ns, tests, "q3", {"full_ov": full_ov.T}, "transposed")
    assert_rejected(ns, tests, "q3", {"full_ov_circuit": lambda m: ns["full_ov_circuit"](m).T},
                    "transposed")
    assert_rejected(ns, tests, "q4", {"copy_score": 1.0}, "|eigenvalues|")
    assert_rejected(ns, tests, "q4", {"copying_sign": -ns["copying_sign"]}, "sign")
    by_column = ref.top1_of(full_ov.T, n)
    assert by_column != ns["ov_top1"]
    assert_rejected(ns, tests, "q5", {"ov_top1": by_column}, "column")


def test_a4_rejects_wrong_answers(solved_a4):
    import torch

    ns, tests = solved_a4
    model, resid0, tokens, prev_head = ns["model"], ns["resid0"], ns["tokens"], ns["prev_head"]
    scores = ref.two_layer_scores(model, resid0, 0, 0)
    unmasked = ref.reference_pattern(scores, model.cfg.d_head, causal=False)
    assert_rejected(ns, tests, "q1", {"pattern": unmasked}, "no causal mask")
    assert_rejected(ns, tests, "q1", {"head_pattern": lambda m, x, layer, h: torch.as_tensor(
        ref.reference_pattern(ref.two_layer_scores(m, x, layer, h), 1))},
        "head_pattern(")
    heads = range(model.cfg.n_heads)
    raw_scores = [ref.previous_token_score_of(ref.two_layer_scores(model, resid0, 0, h))
                  for h in heads]
    assert_rejected(ns, tests, "q2", {"prev_scores": np.array(raw_scores)}, "raw scores")
    no_mask = [ref.previous_token_score_of(ref.reference_pattern(
        ref.two_layer_scores(model, resid0, 0, h), model.cfg.d_head, causal=False))
        for h in heads]
    assert_rejected(ns, tests, "q2", {"prev_scores": np.array(no_mask)}, "causal mask")
    assert_rejected(ns, tests, "q2", {"previous_token_score": lambda p: float(
        torch.as_tensor(p).detach().diagonal(dim1=-2, dim2=-1).mean())}, "previous_token_score(")
    assert_rejected(ns, tests, "q2", {"prev_head": 1 - prev_head}, "highest")
    W_OV0, W_QK1 = ns["W_OV0"], ns["W_QK1"]
    reversed_ = np.array([[ref.composition_score_of(W_OV0[a].T, W_QK1[b]) for b in heads]
                          for a in heads])
    assert_rejected(ns, tests, "q3", {"k_comp": reversed_}, "wrong order")
    assert_rejected(ns, tests, "q3", {"composition_score": lambda a, b: ns["composition_score"](
        b, a)}, "wrong order")
    assert_rejected(ns, tests, "q3", {"composition_score": lambda a, b: float(
        np.linalg.norm(np.asarray(a) @ np.asarray(b)))}, "product of the two norms")
    assert_rejected(ns, tests, "q4", {"ablated_accuracy": ns["induction_accuracy"](
        model, hooks={"blocks.0.attn.hook_z": ns["zero_head"](1 - prev_head)})},
        "not the previous-token head")
    assert_rejected(ns, tests, "q4", {"zero_head": lambda h: (lambda z: z)}, "unchanged")
    assert tokens.shape[0] > 0


# --------------------------------------------------------------------------------------------
# the open-ended questions: a hypothesis, evidence the student computes, words graded by hand
# --------------------------------------------------------------------------------------------

#: The auto-checked open-ended question of each assignment and the manual one after it.
OPEN_ENDED = {"a1_head_by_hand": ("q7", "q8"), "a2_build_a_head": ("q6", "q7"),
              "a3_read_a_trained_model": ("q6", "q7"), "a4_composition": ("q5", "q7"),
              "a5_language_model": ("q5", "q6")}


def _questions(master: Path) -> dict:
    """``{name: (config text, [cells])}`` of a master's questions, in order."""
    out, current = {}, None
    for cell in json.loads(master.read_text())["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "raw" and src.startswith("# BEGIN QUESTION"):
            current = re.search(r"name: (\w+)", src).group(1)
            out[current] = (src, [])
        elif cell["cell_type"] == "raw" and src.startswith("# END QUESTION"):
            current = None
        elif current:
            out[current][1].append(cell)
    return out


def test_every_assignment_has_an_open_ended_item_with_a_rubric():
    """Each assignment: a hypothesis question whose computed evidence is checked (public and
    hidden checks, several hints), then a question answered in words (manual, with a reference
    answer only in the autograder version), and a rubric row for it on the instructor page."""
    assert sorted(OPEN_ENDED) == sorted(NAMES)
    page = (ROOT / "book" / "instructor.md").read_text()
    for name, (auto, words) in OPEN_ENDED.items():
        qs = _questions(ASSIGNMENTS / f"{name}.ipynb")
        config, cells = qs[auto]
        prompt = "".join(cells[0]["source"])
        assert "manual" not in config and "hypothesis" in prompt.lower(), name
        assert prompt.count("<summary>Hint") >= 2, f"{name} {auto}: give two or more hints"
        tests = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"
                 and re.search(r"def test_" + auto, "".join(c["source"]))]
        assert any("# HIDDEN" in t for t in tests) and any("# HIDDEN" not in t for t in tests)
        config, cells = qs[words]
        assert "manual: true" in config, f"{name} {words} is graded by hand"
        assert any(c["cell_type"] == "markdown" and "**Reference answer" in "".join(c["source"])
                   for c in cells), f"{name} {words} has no reference answer for the grader"
        assert f"| `{name}` {words} |" in page, f"no rubric row for {name} {words}"


@pytest.mark.parametrize("name", NAMES)
def test_reference_answers_stay_in_the_autograder_version(built, name):
    student = (built / name / "student" / f"{name}.ipynb").read_text()
    autograder = (built / name / "autograder" / f"{name}.ipynb").read_text()
    assert "Reference answer" not in student
    assert "Reference answer" in autograder
    assert "_Type your answer here, replacing this text._" in student


def test_a1_open_ended_checks_the_evidence(solved_a1):
    ns, tests = solved_a1
    args = [ns[k] for k in ("x", "W_Q", "W_K")]
    dest, src, factors = ns["dest"], ns["src"], ns["factors"]
    assert ns["weight_rises"] is False  # the source is not the top of its row: its weight falls
    both = ref.scaled_weights(*args, dest, src, factors, scale_keys=True)
    assert_rejected(ns, tests, "q7", {"evidence": both}, "c^2")
    flipped = ref.scaled_weights(*args, src, dest, factors)
    assert_rejected(ns, tests, "q7", {"evidence": flipped}, "pattern[dest, src]")
    rows = np.stack([ref.reference_pattern(ns["x"] @ (c * ns["W_Q"]) @ ns["W_K"].T @ ns["x"].T,
                                               4)[dest] for c in factors])
    assert_rejected(ns, tests, "q7", {"evidence": rows}, "whole row")
    assert_rejected(ns, tests, "q7", {"weight_rises": True}, "does not follow from your evidence")
    assert_rejected(ns, tests, "q7", {"weight_rises": "no"}, "True or False")
    assert_rejected(ns, tests, "q7", {"dest": 0}, "one source only")
    assert_rejected(ns, tests, "q7", {"dest": 1, "src": 2}, "masked")
    assert_rejected(ns, tests, "q7", {"weight_vs_scale": lambda x, q, k, d, s, f: np.array([
        ref.reference_pattern(x @ (c * q) @ k.T @ x.T, 1)[d, s] for c in f])},
        "weight_vs_scale(")
    # a student who picks the top source sees the weight rise: the check agrees
    top = int(np.argmax(ns["scores"][dest]))
    ev = ref.scaled_weights(*args, dest, top, factors)
    grading.check_scale_evidence(ev, *args, dest, top, factors, True)


def test_a2_open_ended_checks_the_evidence(solved_a2):
    ns, tests = solved_a2
    ev = np.asarray(ns["evidence"])
    assert ev.shape == (len(ns["strengths"]), ns["C"] - 1) and ev[-1].min() == 1 > ev[0].min()
    assert_rejected(ns, tests, "q6", {"evidence": ev.T}, "transposed")
    with_zero = np.concatenate([np.ones((len(ev), 1)), ev], axis=1)
    assert_rejected(ns, tests, "q6", {"evidence": with_zero}, "leave out position 0")
    assert_rejected(ns, tests, "q6", {"evidence": 1 - ev}, "wrong predictions")
    others = [p for p in range(1, ns["C"]) if ev[0, p - 1] > ev[0].min()]
    assert_rejected(ns, tests, "q6", {"weakest_position": others[0]}, "does not follow")
    assert_rejected(ns, tests, "q6", {"enough": float(ns["strengths"][-1])}, "does not follow")
    assert_rejected(ns, tests, "q6", {"enough": None}, "does not follow")
    assert_rejected(ns, tests, "q6", {"strengths": ns["strengths"][::-1]}, "increasing order")


def test_a3_open_ended_checks_the_evidence(solved_a3):
    import torch

    ns, tests = solved_a3
    model, lists = ns["model"], ns["my_lists"]
    assert ns["supports"] is False  # on lists of large numbers the head misses the smallest
    assert_rejected(ns, tests, "q6", {"on_min": ref.attention_on(model, lists, "max")},
                    "*largest*")
    assert_rejected(ns, tests, "q6", {"supports": True}, "does not follow from your evidence")
    assert_rejected(ns, tests, "q6", {"my_lists": lists[:, :-1]}, "query token")
    no_query = lists.clone()
    no_query[:, -1] = 0
    assert_rejected(ns, tests, "q6", {"my_lists": no_query}, "end with the query token")
    assert_rejected(ns, tests, "q6", {"my_lists": lists[:10],
                                      "on_min": ref.attention_on(model, lists[:10])},
                    "at least 20")
    # lists of small numbers support the hypothesis, and the check accepts that conclusion
    g = torch.Generator().manual_seed(1)
    small = torch.cat([torch.randint(0, 8, (50, 5), generator=g),
                       torch.full((50, 1), ns["query"])], dim=1)
    grading.check_min_attention(ref.attention_on(model, small), model, small,
                                ns["task"].n_numbers, True)
    assert_rejected(ns, tests, "q6", {"attention_on_min": lambda m, t: ref.attention_on(
        m, t, "max")}, "attention_on_min(")


def test_a4_open_ended_checks_the_evidence(solved_a4):
    ns, tests = solved_a4
    model, tokens = ns["model"], ns["tokens"]
    ind, base = np.asarray(ns["ind_scores"]), np.asarray(ns["control_scores"])
    assert np.all(ind > 2 * base) and ns["induction_heads"] == list(range(model.cfg.n_heads))
    dup = ref.layer_offset_scores(model, tokens, shift=0)
    assert_rejected(ns, tests, "q5", {"ind_scores": dup}, "duplicate-token")
    assert_rejected(ns, tests, "q5", {"ind_scores": ref.layer_offset_scores(
        model, tokens, layer=0)}, "layer 0")
    assert_rejected(ns, tests, "q5", {"control_scores": ind}, "other set of sequences")
    assert_rejected(ns, tests, "q5", {"induction_heads": [0]}, "does not follow")
    assert_rejected(ns, tests, "q5", {"ind_scores": ind[:1]}, "shape")
    assert_rejected(ns, tests, "q5", {"induction_score": lambda p: ref.offset_score_of(p, 0)},
                    "duplicate token")


def test_a5_rejects_wrong_answers(solved_a5):
    ns, tests = solved_a5
    model, head, B, freq = ns["model"], ns["HEAD"], ns["B"], ns["frequent"]
    qk = ref.lm_full_qk(model, head)
    assert_rejected(ns, tests, "q1", {"full_qk": ref.lm_full_qk(model, head, "none")},
                    "mean of W_pos")
    assert_rejected(ns, tests, "q1", {"full_qk": qk.T}, "transposed")
    assert_rejected(ns, tests, "q1", {"full_qk_of": lambda m, h: ns["full_qk_of"](m, h).T},
                    "full_qk_of(")
    ov = ref.lm_full_ov(model, head)
    assert_rejected(ns, tests, "q2", {"full_ov": ov.T}, "transposed")
    assert_rejected(ns, tests, "q2", {"full_ov": ref.lm_full_ov(model, head + 1)},
                    f"not of head {head}")
    a, c = ns["a"], ns["c"]
    assert (a, c) == ref.read_trigram_of(model, head, B, freq)
    keep = [int(t) for t in freq if t != B]
    by_column = keep[int(np.argmax(qk[keep, B]))]
    assert by_column != a
    assert_rejected(ns, tests, "q3", {"a": by_column}, "B's row")
    full = [int(t) for t in freq]
    from_b = full[int(np.argmax(ov[B, full]))]
    assert from_b != c
    assert_rejected(ns, tests, "q3", {"c": from_b}, "read A's row")
    w, p = ns["windows"], ns["prob_c"]
    assert ns["raised"] is True and ref.raised_by(ns["lift"])
    for slip, phrase in (("anywhere", "*earlier*"), ("late", "one position late"),
                         ("swap", "swapped"), ("here", "next token")):
        assert_rejected(ns, tests, "q4", {"lift": ref.lift_of(w, p, a, B, c, slip)}, phrase)
    assert_rejected(ns, tests, "q4", {"lift": list(ns["lift"].values())}, "should be a dict")
    assert_rejected(ns, tests, "q4", {"raised": False}, "does not follow from your evidence")
    # the student's own skip-trigram, in text order (head, a earlier, b current, c next)
    assert_rejected(ns, tests, "q5", {"my_trigram": (head, a, B, c)}, "question 3")
    low = int(np.argmin(qk[B, keep]))
    assert_rejected(ns, tests, "q5", {"my_trigram": (head, keep[low], B, c)}, "do not suggest")
    assert_rejected(ns, tests, "q5", {"my_trigram": (99, a, B, c)}, "out of range")
    assert_rejected(ns, tests, "q5", {"my_raised": not ns["my_raised"]}, "does not follow")
    mh, ma, mb, mc = ns["my_trigram"]
    wrong = ref.lift_of(*ns["next_token_probs"](mc), ma, mb, mc, "late")
    assert_rejected(ns, tests, "q5", {"my_lift": wrong}, "one position late")


def test_a5_rare_tokens_are_not_evidence():
    """A triple the weights support but whose tokens are too rare in the held-out text is
    refused with a message that says so (the held-out split comes from the corpus cache)."""
    from toymodel.text import lm

    model = lm.load_lm("one_layer")
    held = lm.token_ids("held_out")[:32_768]
    seen = np.bincount(held.astype(np.int64), minlength=model.cfg.d_vocab)
    rare_b = int(np.argsort(seen, kind="stable")[0])  # a token the held-out text lacks
    assert seen[rare_b] < 30
    qk, ov = ref.lm_full_qk(model, 0), ref.lm_full_ov(model, 0)
    cand = np.arange(model.cfg.d_vocab)
    a = int(next(t for t in np.argsort(-qk[rare_b], kind="stable") if t != rare_b))
    c = int(np.argmax(ov[a]))
    with pytest.raises(grading.CheckFailed, match="choose more frequent tokens"):
        grading.check_own_trigram((0, a, rare_b, c), {}, True, model, held, cand)


# --------------------------------------------------------------------------------------------
# the check helpers themselves
# --------------------------------------------------------------------------------------------


def test_transposed_answer_is_caught_off_the_diagonal():
    W_Q = np.array([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]])
    W_K = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    right = W_Q @ W_K.T
    assert np.allclose(np.diag(right), np.diag(right.T))  # a diagonal-only check would pass
    with pytest.raises(grading.CheckFailed, match="W_K W_Q"):
        grading.check_qk_circuit(right.T, W_Q, W_K)
    with pytest.raises(grading.CheckFailed, match=r"shape \(2, 2\), expected \(3, 3\)"):
        grading.check_qk_circuit(W_Q.T @ W_K, W_Q, W_K)
    with pytest.raises(grading.CheckFailed, match="still `...`"):
        grading.check_qk_circuit(..., W_Q, W_K)
    grading.check_qk_circuit(right, W_Q, W_K)
    grading.check_qk_circuit(list(map(list, right)), W_Q, W_K)


def test_messages_name_the_entry_not_the_answer():
    expected = np.arange(6.0).reshape(2, 3)
    got = expected.copy()
    got[1, 2] = 99.0
    with pytest.raises(grading.CheckFailed) as err:
        grading.check_array(got, expected, "M")
    assert "[1, 2]" in str(err.value) and "1 of 6" in str(err.value)
    assert "5" not in str(err.value).replace("[1, 2]", "")  # the right value is not given away
    with pytest.raises(grading.CheckFailed, match="constant factor"):
        grading.check_array(3 * expected, expected, "M")
    with pytest.raises(grading.CheckFailed, match="NaN"):
        grading.check_array(expected * np.nan, expected, "M")


def test_pattern_check_names_each_mistake():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(4, 4)) * 3
    d = 4
    right = ref.reference_pattern(scores, d)
    grading.check_pattern(right, scores, d)

    def softmax(s, axis=-1):
        e = np.exp(s - s.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    future = np.triu(np.ones((4, 4), bool), 1)
    cases = {
        "no causal mask": softmax(scores / 2),
        "1/sqrt(d_head)": softmax(np.where(future, -np.inf, scores)),
        "wrong side": softmax(np.where(future.T, -np.inf, scores / 2)),
        "wrong axis": softmax(np.where(future, -np.inf, scores / 2), axis=0),
        "neither": softmax(scores),
    }
    for phrase, wrong in cases.items():
        with pytest.raises(grading.CheckFailed, match=re.escape(phrase)):
            grading.check_pattern(wrong, scores, d)
    with pytest.raises(grading.CheckFailed, match="future positions"):
        grading.check_pattern(right + np.triu(np.full((4, 4), 0.01), 1), scores, d)


def test_circuit_checks_catch_transposes_and_accept_tensors():
    import torch

    h = grading.random_head(seed=3, d_model=5, d_head=3)
    grading.check_ov_circuit(torch.tensor(h.W_V @ h.W_O, requires_grad=True), h.W_V, h.W_O)
    with pytest.raises(grading.CheckFailed, match="transpose"):
        grading.check_ov_circuit((h.W_V @ h.W_O).T, h.W_V, h.W_O)
    W_E, W_U = np.eye(5)[:4] + 0.1, np.arange(20.0).reshape(5, 4) / 10
    full_ov = W_E @ h.W_V @ h.W_O @ W_U
    grading.check_full_ov(full_ov, W_E, h.W_V, h.W_O, W_U)
    with pytest.raises(grading.CheckFailed, match="transposed"):
        grading.check_full_ov(full_ov.T, W_E, h.W_V, h.W_O, W_U)
    full_qk = W_E @ h.W_Q @ h.W_K.T @ W_E.T
    with pytest.raises(grading.CheckFailed, match="transposed"):
        grading.check_full_qk(full_qk.T, W_E, h.W_Q, h.W_K)


def test_function_and_value_checks():
    h = grading.random_head(seed=4)
    with pytest.raises(grading.CheckFailed, match=r"qk\(\[6, 3\], \[6, 3\]\) raised ValueError"):
        grading.check_function(lambda a, b: a @ b, "qk", [(h.W_Q, h.W_K)],
                               grading.check_qk_circuit)
    with pytest.raises(grading.CheckFailed, match="should be a function"):
        grading.check_function(..., "qk", [], grading.check_qk_circuit)
    grading.check_value(np.int64(3), 3, "winner")
    with pytest.raises(grading.CheckFailed, match="not right: because"):
        grading.check_value(4, 3, "winner", wrong={4: "because"})
    with pytest.raises(grading.CheckFailed, match="not right"):
        grading.check_value(True, 1, "sign")
    grading.check_close(0.5 + 1e-9, 0.5, "x")
    with pytest.raises(grading.CheckFailed, match="single number"):
        grading.check_close([0.5, 0.5], 0.5, "x")


def test_preview_and_summary_tolerate_blanks(capsys):
    grading.preview(...)
    grading.preview(np.arange(12.0).reshape(3, 4), rows=2, cols=2)
    text = grading.summary({"a": lambda: ..., "b": 0.25, "c": lambda: 1 / 0, "d": np.ones(2)})
    out = capsys.readouterr().out
    assert "not answered yet" in out and "[[0. 1.]\n [4. 5.]]" in out
    assert text.splitlines()[1].endswith("0.2500")
    assert "error: ZeroDivisionError" in text.splitlines()[2]


@pytest.mark.parametrize("name", NAMES)
def test_master_markdown_follows_the_book_rules(name):
    """The lessons' rules hold in the assignments' markdown too: no number typed by hand (they
    come from code), nothing Colab cannot render, and every hint folds away."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_book import colab_unrenderable, decimals_in_math, hand_typed_numbers

    cells = json.loads((ASSIGNMENTS / f"{name}.ipynb").read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        assert not hand_typed_numbers(text) and not decimals_in_math(text), text
        assert not colab_unrenderable(text), text
        assert text.count("<details>") == text.count("</details>")
    prompts = ["".join(c["source"]) for c in cells
               if c["cell_type"] == "markdown" and "*Learning goal:*" in "".join(c["source"])]
    assert prompts and all(re.search(r"<summary>Hint( \d)?</summary>", p) and "*Difficulty:*" in p
                           and "*Estimated time:*" in p for p in prompts)


# --------------------------------------------------------------------------------------------
# every named mistake, played against its check: a table of wrong answers and expected phrases
# --------------------------------------------------------------------------------------------

DELETE = object()  # a change that removes a name (an upstream cell that failed)


class Student:
    """Source run in the trial namespace as the student's own cell (so its package calls are
    recorded as the student's)."""

    def __init__(self, src: str):
        self.src = src


def _apply(ns: dict, changes: dict) -> dict:
    from IPython.core.inputtransformer2 import TransformerManager

    trial = {**ns, "__toymodel_calls__": []}
    for key, value in changes.items():
        if value is DELETE:
            trial.pop(key, None)
        elif isinstance(value, Student):
            src = TransformerManager().transform_cell(value.src)
            import linecache

            fn = f"<student-cell-{abs(hash(src))}>"
            linecache.cache[fn] = (len(src), None, src.splitlines(True), fn)
            exec(compile(src, fn, "exec"), trial)
        else:
            trial[key] = value
    return trial


def _set_qk_src(body: str) -> str:
    return ("import torch\ndef set_qk(model, strength=20.0):\n"
            "    V, C = model.cfg.d_vocab, model.cfg.n_ctx\n    with torch.no_grad():\n" + body)


def _mistakes(name, ns):
    """``[(question, changes, phrase)]``: each named mistake of the issue for one assignment."""
    import torch

    if name == "a1_head_by_hand":
        x, W_Q, W_K = ns["x"], ns["W_Q"], ns["W_K"]
        s = x @ W_Q @ W_K.T @ x.T
        diag_masked = np.where(np.triu(np.ones((3, 3), bool)), -np.inf, s / 2)
        with np.errstate(invalid="ignore"):
            e = np.exp(diag_masked - diag_masked.max(-1, keepdims=True))
            diag = e / e.sum(-1, keepdims=True)
        return [
            ("q3", {"W_QK": DELETE}, "`W_QK` (question 1) does not exist yet"),
            ("q3", {"scores": None}, "returns nothing"),
            ("q4", {"pattern": diag}, "hides the diagonal too"),
            ("q4", {"pattern": ref.reference_pattern(s * 2 / 4, 4)}, "not by its square root"),
            ("q4", {"pattern": "0.5"}, "string"),
            ("q1", {"qk_circuit": Student("from toymodel import circuits\ndef qk_circuit(W_Q, W_K)"
                                          ":\n    return circuits.qk_circuit(W_Q, W_K)\n")},
             "write this yourself; `toymodel.circuits.qk_circuit` computes it"),
            ("q4", {"causal_pattern": Student(
                "from toymodel.circuits import attention_pattern as ap\n"
                "def causal_pattern(scores, d_head):\n    return ap(scores, d_head, causal=True)\n"
                "pattern = causal_pattern(scores, d_head)\n")}, "toymodel.circuits.attention_pattern"),
            ("q5", {"head_output": Student(
                "from toymodel.grading import _answers\ndef head_output(p, x, W_OV):\n"
                "    return p @ x @ W_OV\n_answers.reference_pattern(scores, 4)\n")}, None),
        ]
    if name == "a2_build_a_head":
        model = grading.blank_model(5, 6)
        ns["set_qk"](model, float("nan"))
        ns["set_ov"](model)
        tokens = ns["tokens"]
        with torch.no_grad():
            right = (model(tokens).argmax(-1)[:, 1:] == tokens[:, :-1]).float().mean().item()
        del right
        return [
            ("q1", {"set_qk": Student(_set_qk_src(
                "        V, C = 5, 6\n        for p in range(C):\n"
                "            model.W_Q[0, V + p, p] = strength\n        for j in range(C - 1):\n"
                "            model.W_K[0, V + j, j + 1] = 1.0\n"))}, "typed in"),
            ("q1", {"model": model}, "NaN"),
            ("q1", {"set_qk": Student(_set_qk_src(
                "        for p in range(C):\n            model.W_Q[0, V + p, p] = strength\n"
                "            model.W_K[0, V + p, p] = 1.0\n"))}, "diagonal"),
            ("q3", {"set_ov": Student(
                "import torch\ndef set_ov(model):\n    V, C = model.cfg.d_vocab, model.cfg.n_ctx\n"
                "    with torch.no_grad():\n        for t in range(V):\n"
                "            model.W_V[0, t, t] = 1.0\n            model.W_O[0, t, V + C + t] = -1.0\n"
            )}, "suppresses"),
            ("q5", {"accuracy": "1.0"}, "string"),
            ("q5", {"accuracy": ns["accuracy"] * ns["tokens"][:, 1:].numel()}, "*number*"),
            ("q4", {"full_ov": Student(
                "from toymodel import circuits\ndef full_ov(model):\n"
                "    return circuits.full_ov_circuit(model.W_E.detach(), model.W_V[0].detach(), "
                "model.W_O[0].detach(), model.W_U.detach())\n")}, "write this yourself"),
        ]
    if name == "a3_read_a_trained_model":
        model, query = ns["model"], ns["query"]
        row_only = ref.key_token_score(model, query, 16, with_position=False)
        keys = [4, 9, 15]
        by_row = keys[int(np.argmax(row_only[keys]))]
        out = [
            ("q4", {"full_ov": np.asarray(ns["full_ov"])[:, :5]}, "fix question 3 first"),
            ("q5", {"ov_top1": ns["ov_top1"] * ns["task"].n_numbers}, "*number*"),
            ("q2", {"winner": keys.index(ns["winner"])}, "*position*"),
            ("q4", {"copying_score": Student(
                "from toymodel import circuits\nimport torch\ndef copying_score(M):\n"
                "    M = torch.as_tensor(M).double()\n    eye = torch.eye(len(M), dtype=M.dtype)\n"
                "    return circuits.copying_score(eye, eye, M, eye)\n")}, "write this yourself"),
        ]
        if by_row != ns["winner"]:
            out.append(("q2", {"winner": by_row}, "pos_tok"))
        return out
    if name == "a4_composition":
        model, tokens, prev = ns["model"], ns["tokens"], ns["prev_head"]
        heads = range(model.cfg.n_heads)
        W_OV0, W_QK1 = ns["W_OV0"], ns["W_QK1"]
        no_t = np.array([[ref.composition_score_of(W_QK1[b], W_OV0[a]) for b in heads]
                         for a in heads])
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens)
        pats = cache["blocks.0.attn.hook_pattern"].double().numpy()
        n = pats.shape[-1]
        diag = np.array([pats[:, h][..., np.arange(n), np.arange(n)].mean() for h in heads])
        from toymodel.composition import ablation_hook
        from toymodel.induction import induction_accuracy

        layer1 = induction_accuracy(model, hooks={"blocks.1.attn.hook_z": ablation_hook(prev)})
        return [
            ("q2", {"prev_scores": diag}, "previous-token stripe"),
            ("q3", {"k_comp": no_t}, "leaves out the transpose"),
            ("q4", {"zero_head": Student("def zero_head(head):\n    def hook(z):\n"
                                         "        z = z.clone()\n        z[head] = 0\n"
                                         "        return z\n    return hook\n")}, "wrong axis"),
            ("q4", {"ablated_accuracy": layer1}, "layer 1"),
            ("q5", {"ind_scores": ref.layer_offset_scores(model, tokens, shift=2)}, "off by one"),
            ("q6", {"k_removed": ref.side_removed_scores(model, tokens, prev, "q")}, "queries"),
            ("q6", {"reads_through": "q"}, "does not follow"),
            ("q3", {"composition_score": Student(
                "from toymodel import composition\nimport torch\ndef composition_score(A, B):\n"
                "    return float(composition.composition_score(torch.as_tensor(A), "
                "torch.as_tensor(B)))\n")}, "write this yourself"),
        ]
    if name == "a5_language_model":
        model, head = ns["model"], ns["HEAD"]
        keep = [int(t) for t in ns["frequent"] if t != ns["B"]]
        w, p = ns["windows"], ns["prob_c"]
        wrong = ref.lift_of(w, p, ns["a"], ns["B"], ns["c"], "late")
        return [
            ("q1", {"full_qk": ref.lm_full_qk(model, head, side="query")}, "query side only"),
            ("q3", {"a": keep.index(ns["a"])}, "*position*"),
            ("q4", {"a": None}, "(question 3) is None"),
            ("q4", {"raised": not ref.raised_by(wrong), "lift": wrong},
             f"B occurs {wrong['n_with']} times"),
            ("q4", {"lift": ref.lift_of(w, p, ns["a"], ns["B"], ns["c"], "roles")},
             "exchanges A and B"),
            ("q4", {"held_out_test": Student(
                "from toymodel.grading import _answers\ndef held_out_test(w, p, a, b, c):\n"
                "    return _answers.lift_of(w, p, a, b, c)\n")}, "grader's reference answer"),
        ]
    return []


@pytest.mark.parametrize("name", NAMES)
def test_each_named_mistake_gets_its_message(solved, name):
    """The table of wrong answers: each loses its own question with a message naming the
    mistake (or the package function it called), never a traceback of the check."""
    ns, tests = solved[name]
    table = _mistakes(name, ns)
    assert table
    for q, changes, phrase in table:
        trial = _apply(ns, changes)
        result = check(trial, tests, q)
        text = messages(result)
        if phrase is None:  # a package call that answers *another* question costs this one nothing
            assert result.passed_all, f"{name} {q}: {text}"
            continue
        assert not result.passed_all, f"{name} {q} accepts {sorted(changes)}"
        assert text.count("CheckFailed: ") == text.count("Test case failed"), text
        assert phrase in text, f"{name} {q} {sorted(changes)}: expected {phrase!r} in:\n{text}"


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="d_vocab must be a positive int"):
        grading.blank_model(d_vocab="5")
    with pytest.raises(grading.CheckFailed, match="string"):
        grading.check_close("1.0", 1.0, "accuracy")
    with pytest.raises(grading.CheckFailed, match="NaN"):
        grading.check_close(float("nan"), 1.0, "strength")
    text = grading.summary({"blank": lambda: ..., "missing": lambda: undefined_name,  # noqa: F821
                            "broken": lambda: 1 / 0})
    assert "not answered yet" in text and "not computed yet" in text
    assert "error: ZeroDivisionError" in text
