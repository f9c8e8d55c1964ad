"""Answers come from the student: which of the package's functions compute what a question asks,
a record of the calls a student's code makes to them, and the check that reads it.

How it works. When :mod:`toymodel.grading` is imported (the first cell of every assignment does it),
:func:`install` wraps the package functions listed in :data:`WATCHED` (the science that computes
circuits, patterns, scores, and the graders' own references in :mod:`toymodel.grading._answers`)
in a thin wrapper. A call is *recorded* when it comes from a student's code, that is, when the
first frame above the call that does not belong to torch, numpy or a few standard helpers runs in
a notebook's namespace (``__name__ == "__main__"``); calls made by the package itself (a check, a
model's forward pass) and by the test files (their namespace has no ``__name__``) are not. The
record lives in the student's own namespace (``__toymodel_calls__``), so two notebooks run in one
process never mix, and it holds: the function called, the student functions on the stack (with
their code objects), and the names the top-level statement assigns.

:func:`check_own_work` (the first line of every check of a question) fails when a recorded call
to one of the question's forbidden functions came from the question's own functions or from a
statement assigning its answer, with the message the course uses: "write this yourself;
`toymodel.X` computes it and is there for checking later lessons". Calls to a function redefined
since are ignored (the record keeps the code object). A check that fails here scores no points:
every test case of the question begins with it.

:func:`check_own_work` also asks first whether each input the check reads exists and is answered,
and names the cause when not: an answer not computed yet (its cell did not run or raised an error),
an answer of an earlier question still missing, a given that did not run, `...` left in, ``None``.
"""

from __future__ import annotations

import ast
import functools
import importlib
import linecache
import sys
import types
from dataclasses import dataclass

from .core import _fail, _not_answered

__all__ = ["check_own_work", "RULES", "WATCHED", "install", "calls_of"]

#: The package functions whose calls from a student's code are recorded, by module.
WATCHED = {
    "toymodel.circuits": ("qk_circuit", "ov_circuit", "attention_scores", "attention_pattern",
                          "attention_output", "full_qk_circuit", "qk_circuit_terms",
                          "full_ov_circuit"),
    "toymodel.circuit_stats": ("ov_eigenvalues", "copying_score", "ov_top1_accuracy",
                               "qk_diagonal_stats"),
    "toymodel.composition": ("composition_score", "composition_scores", "k_composition_circuit",
                             "top1_accuracy", "ablation_hook"),
    "toymodel.induction": ("head_scores", "weight_detectors"),
    "toymodel.experiments": ("query_qk_row", "query_position_row", "circuit_stats",
                             "head_stats"),
    "toymodel.model": ("causal_softmax",),
    "toymodel.text.findings": ("copying_scores", "full_ov", "full_qk", "ov_promotions",
                               "skip_trigrams", "held_out_lift", "lifts", "confirmed"),
    "toymodel.grading._answers": None,  # every function: the graders' references
}

#: Methods watched on classes (``module:Class.method``).
WATCHED_METHODS = (("toymodel.model", "Attention", "forward"),)

_ANSWERS = "toymodel.grading._answers"
_CIRCUITS = "toymodel.circuits"


def _a(*names):
    return tuple(f"{_ANSWERS}.{n}" for n in names)


def _c(*names):
    return tuple(f"{_CIRCUITS}.{n}" for n in names)


@dataclass(frozen=True)
class Rule:
    """What one question asks the student to write: its ``functions`` and its answer ``names``,
    and the package functions that compute it (``forbidden``)."""

    functions: tuple = ()
    names: tuple = ()
    forbidden: tuple = ()


_PATTERN = _c("attention_pattern") + ("toymodel.model.causal_softmax",
                                      "toymodel.model.Attention.forward")

#: ``{assignment: {question: Rule}}`` for every auto-graded question of the five assignments.
RULES = {
    "a1": {
        "q1": Rule(("qk_circuit",), ("W_QK",), _c("qk_circuit", "full_qk_circuit",
                                                  "qk_circuit_terms")),
        "q2": Rule(("ov_circuit",), ("W_OV",), _c("ov_circuit", "full_ov_circuit")),
        "q3": Rule(("scores_from_circuit",), ("scores",), _c("attention_scores")),
        "q4": Rule(("causal_pattern",), ("pattern",), _PATTERN + _a("reference_pattern")),
        "q5": Rule(("head_output",), ("output",), _c("attention_output")),
        "q6": Rule(("standard_route",), ("standard_output", "max_difference"),
                   _c("attention_output", "attention_scores") + _PATTERN
                   + _a("reference_pattern")),
        "q7": Rule(("weight_vs_scale",), ("evidence", "weight_rises"),
                   _PATTERN + _a("scaled_weights", "reference_pattern")),
    },
    "a2": {
        "q1": Rule(("set_qk",), ()),
        "q2": Rule(("token_qk", "position_qk"), ("tok_qk", "pos_qk"),
                   _c("full_qk_circuit", "qk_circuit_terms")),
        "q3": Rule(("set_ov",), ()),
        "q4": Rule(("full_ov",), ("ov",), _c("full_ov_circuit")
                   + ("toymodel.text.findings.full_ov",)),
        "q5": Rule((), ("accuracy",), ("toymodel.experiments.circuit_stats",)),
        "q6": Rule(("accuracy_by_position",), ("evidence", "weakest_position", "enough"),
                   _a("accuracy_by_position")),
    },
    "a3": {
        "q1": Rule(("query_row",), ("row",), ("toymodel.experiments.query_qk_row",)
                   + _a("query_row", "key_token_score")),
        "q2": Rule(("winning_key",), ("winner",), _a("key_token_score", "query_row")),
        "q3": Rule(("full_ov_circuit",), ("full_ov",), _c("full_ov_circuit")
                   + ("toymodel.text.findings.full_ov",)),
        "q4": Rule(("copying_score",), ("copy_score", "copying_sign"),
                   _c("copying_score", "ov_eigenvalues")
                   + ("toymodel.circuit_stats.copying_score",
                      "toymodel.circuit_stats.ov_eigenvalues",
                      "toymodel.text.findings.copying_scores",
                      "toymodel.experiments.circuit_stats",
                      "toymodel.experiments.head_stats") + _a("copying_score_of")),
        "q5": Rule(("top1",), ("ov_top1",), ("toymodel.circuit_stats.ov_top1_accuracy",
                                             "toymodel.composition.top1_accuracy",
                                             "toymodel.experiments.circuit_stats",
                                             "toymodel.experiments.head_stats") + _a("top1_of")),
        "q6": Rule(("attention_on_min",), ("on_min", "supports"), _a("attention_on")),
    },
    "a4": {
        "q1": Rule(("head_pattern",), ("pattern",), _PATTERN + _a("reference_pattern",
                                                                  "two_layer_scores")),
        "q2": Rule(("previous_token_score",), ("prev_scores", "prev_head"),
                   ("toymodel.induction.head_scores", "toymodel.induction.weight_detectors")
                   + _a("previous_token_score_of")),
        "q3": Rule(("composition_score",), ("k_comp",),
                   ("toymodel.composition.composition_score",
                    "toymodel.composition.composition_scores",
                    "toymodel.composition.k_composition_circuit") + _a("composition_score_of")),
        "q4": Rule(("zero_head",), ("clean_accuracy", "ablated_accuracy"),
                   ("toymodel.composition.ablation_hook",)),
        "q5": Rule(("induction_score",), ("ind_scores", "control_scores", "induction_heads"),
                   ("toymodel.induction.head_scores", "toymodel.induction.weight_detectors")
                   + _a("offset_score_of", "layer_offset_scores")),
        "q6": Rule(("side_removed",), ("k_removed", "q_removed", "reads_through"),
                   _a("side_removed_scores", "offset_score_of", "layer_offset_scores")
                   + ("toymodel.induction.head_scores",)),
    },
    "a5": {
        "q1": Rule(("full_qk_of",), ("full_qk",), _c("full_qk_circuit", "qk_circuit_terms")
                   + ("toymodel.text.findings.full_qk",) + _a("lm_full_qk")),
        "q2": Rule(("full_ov_of",), ("full_ov",), _c("full_ov_circuit")
                   + ("toymodel.text.findings.full_ov",) + _a("lm_full_ov")),
        "q3": Rule(("read_trigram",), ("a", "c"),
                   ("toymodel.text.findings.skip_trigrams", "toymodel.text.findings.lifts",
                    "toymodel.text.findings.ov_promotions") + _a("read_trigram_of")),
        "q4": Rule(("held_out_test",), ("lift", "raised"),
                   ("toymodel.text.findings.held_out_lift", "toymodel.text.findings.lifts",
                    "toymodel.text.findings.confirmed") + _a("lift_of", "raised_by")),
        "q5": Rule((), ("my_trigram", "my_lift", "my_raised"),
                   ("toymodel.text.findings.held_out_lift", "toymodel.text.findings.lifts",
                    "toymodel.text.findings.confirmed") + _a("lift_of", "raised_by",
                                                             "read_trigram_of")),
    },
}

#: Where each answer comes from, for messages about inputs: ``{assignment: {name: question}}``.
OWNERS = {asg: {n: q for q, r in rules.items() for n in (*r.functions, *r.names)}
          for asg, rules in RULES.items()}

#: Answers for which None is a possible answer (a2 q6: no strength in the list suffices).
NONE_IS_AN_ANSWER = frozenset({"enough"})

_KEY = "__toymodel_calls__"
_LIBRARY = ("torch", "numpy", "functools", "contextlib", "builtins", "threading", "typing")
_INSTALLED = False


def _student_frame(frame):
    """The first frame at or above ``frame`` that is not library code, if it runs in a
    notebook's namespace (else None)."""
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if name == "__main__":
            return frame
        if not (isinstance(name, str) and name.split(".")[0] in _LIBRARY):
            return None
        frame = frame.f_back
    return None


_TARGETS: dict = {}


def _assigned(filename: str, lineno: int) -> tuple:
    """The names assigned by the top-level statement of ``filename`` that holds ``lineno``."""
    key = (filename, lineno)
    if key in _TARGETS:
        return _TARGETS[key]
    names: list = []
    try:
        tree = ast.parse("".join(linecache.getlines(filename)))
        for stmt in tree.body:
            if stmt.lineno <= lineno <= (stmt.end_lineno or stmt.lineno):
                for node in ast.walk(stmt):
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                        names.append(node.id)
                break
    except (SyntaxError, ValueError):
        pass
    _TARGETS[key] = tuple(names)
    return _TARGETS[key]


def _note(qualname: str):
    """Record a call to ``qualname`` if a student's code made it."""
    frame = _student_frame(sys._getframe(2))
    if frame is None:
        return
    chain, top = [], frame
    f, ns = frame, frame.f_globals
    while f is not None:  # the frames of this notebook's namespace (not a launcher's __main__)
        if f.f_globals is ns:
            if f.f_code.co_name != "<module>":
                chain.append((f.f_code.co_name, f.f_code))
            top = f
        f = f.f_back
    targets = _assigned(top.f_code.co_filename, top.f_lineno) if top.f_code.co_name == "<module>" \
        else ()
    line = linecache.getline(top.f_code.co_filename, top.f_lineno).strip()
    record = (qualname, tuple(chain), targets, line)
    log = frame.f_globals.setdefault(_KEY, [])
    if record not in log[-50:]:
        log.append(record)


def _wrap(fn, qualname: str):
    if getattr(fn, "__toymodel_watched__", None):
        return fn

    @functools.wraps(fn)
    def watched(*args, **kwargs):
        _note(qualname)
        return fn(*args, **kwargs)

    watched.__toymodel_watched__ = qualname
    return watched


def install():
    """Wrap every function of :data:`WATCHED` (once), everywhere the package binds it."""
    global _INSTALLED
    if _INSTALLED:
        return
    originals = {}
    for modname, names in WATCHED.items():
        module = importlib.import_module(modname)
        if names is None:
            names = [n for n in getattr(module, "__all__", ())
                     if isinstance(getattr(module, n), types.FunctionType)]
        for n in names:
            fn = getattr(module, n)
            if isinstance(fn, types.FunctionType) and not getattr(fn, "__toymodel_watched__",
                                                                  None):
                originals[id(fn)] = (fn, _wrap(fn, f"{modname}.{n}"))
    for modname, cls, meth in WATCHED_METHODS:
        klass = getattr(importlib.import_module(modname), cls)
        fn = getattr(klass, meth)
        if not getattr(fn, "__toymodel_watched__", None):
            setattr(klass, meth, _wrap(fn, f"{modname}.{cls}.{meth}"))
    for modname, module in list(sys.modules.items()):
        if not (modname == "toymodel" or modname.startswith("toymodel.")) or module is None:
            continue
        for attr, value in list(vars(module).items()):
            hit = originals.get(id(value))
            if hit is not None and hit[0] is value:
                setattr(module, attr, hit[1])
    _INSTALLED = True


def calls_of(env) -> list:
    """The recorded calls of a namespace: ``[(function, [(student function, code)], assigned
    names, source line)]``."""
    return list(env.get(_KEY, ())) if isinstance(env, dict) else []


def _question_label(q: str) -> str:
    return f"question {q[1:]}" if q.startswith("q") and q[1:].isdigit() else q


def _describe_missing(name: str, asg: str, question: str, env: dict) -> str | None:
    """Why input ``name`` cannot be checked yet, or None when it is there and answered."""
    owner = OWNERS.get(asg, {}).get(name)
    mine = owner == question
    where = "" if mine or owner is None else f" ({_question_label(owner)})"
    if name not in env:
        if mine:
            return (f"`{name}` does not exist yet: the cell that computes it has not run, or it "
                    "raised an error. Run it and fix the first error it shows.")
        if owner is not None:
            return (f"`{name}`{where} does not exist yet: answer {_question_label(owner)} first "
                    f"(its cell has not run, or raised an error).")
        return (f"`{name}` does not exist: a cell given at the top of the notebook did not run "
                "or raised an error. Run the notebook from the top and fix the first error.")
    value = env[name]
    if _not_answered(value):
        if mine:
            return f"`{name}` is still `...`: replace the `...` with your answer."
        if owner is not None:
            return (f"`{name}`{where} is still `...`: answer {_question_label(owner)} first; "
                    "this check uses it.")
    if value is None and owner is not None and name not in NONE_IS_AN_ANSWER:
        if name in RULES[asg][owner].functions:
            return f"`{name}`{where} is None: define it with `def {name}(...)`."
        return (f"`{name}`{where} is None: the function that computes it returns nothing; end "
                "it with `return` and the result.")
    return None


def check_own_work(env, assignment: str, question: str, needs=None):
    """The first line of every check of ``question``: its inputs exist and are answered, and its
    answer does not come from a package function that computes it.

    Args:
        env: the notebook's namespace (otter passes it to a test's ``env`` argument).
        assignment: ``"a1"`` .. ``"a5"``.
        question: ``"q1"`` ...
        needs: the names the check reads; by default the parameters of the test function that
            calls this one (``grading`` and ``env`` left out).
    """
    RULES[assignment][question]  # a KeyError names an unknown question early
    if not isinstance(env, dict):
        _fail("the check did not get the notebook's namespace (env); run it with grader.check.")
    if needs is None:
        code = sys._getframe(1).f_code
        needs = code.co_varnames[:code.co_argcount]
    owners = OWNERS.get(assignment, {})
    needs = sorted(needs, key=lambda n: owners.get(n) == question)  # earlier inputs first
    for name in needs:
        if name in ("grading", "env") or isinstance(env.get(name), types.ModuleType):
            continue
        why = _describe_missing(name, assignment, question, env)
        if why:
            _fail(why)
    _CONTEXT.update(env=env, assignment=assignment, question=question)
    _scan_calls(env, assignment, question)


#: The question whose check runs now (set by :func:`check_own_work`), so that the functions a
#: check then calls (:func:`toymodel.grading.check_function`) are held to the same rule.
_CONTEXT: dict = {}


def scan_current(func=None):
    """Apply the current question's rule to the calls recorded so far, after a check has run the
    student's ``func`` on new inputs (only when ``func`` lives in the namespace being checked)."""
    if _CONTEXT and getattr(func, "__globals__", None) is _CONTEXT["env"]:
        _scan_calls(_CONTEXT["env"], _CONTEXT["assignment"], _CONTEXT["question"])


def _scan_calls(env, assignment: str, question: str):
    rule = RULES[assignment][question]
    for qualname, chain, targets, line in calls_of(env):
        if qualname not in rule.forbidden:
            continue
        stale = any(isinstance(env.get(n), types.FunctionType) and env[n].__code__ is not code
                    for n, code in chain)
        if stale:
            continue
        in_function = [n for n, _ in chain if n in rule.functions]
        in_answer = [n for n in targets if n in rule.names]
        if not (in_function or in_answer):
            continue
        where = (f"your `{in_function[0]}` calls it" if in_function
                 else f"your line `{line[:70]}` calls it")
        short = qualname.removeprefix("toymodel.")
        if qualname.startswith(_ANSWERS):
            what = f"`toymodel.grading._answers.{qualname.rsplit('.', 1)[1]}` is the grader's " \
                   "reference answer"
        else:
            what = (f"`toymodel.{short}` computes it and is there for checking later lessons")
        _fail(f"{_question_label(question)}: write this yourself; {what} ({where}). If you "
              "have removed that call since, restart the kernel and run every cell again.")
check_own_work.__guarded__ = True  # it reads its caller's frame: never wrap it
