"""What the lessons' explorers show, as plain functions of their inputs (no widgets, no plots).

The live widgets (:mod:`toymodel.views.widgets`), their static pictures and the website's
figures all draw what these functions return, so a number cannot differ between them. Every
quantity comes from the package's own functions; this module only picks and labels them.

* :func:`worked_example_view` -- lesson 01: the 4-dimensional head on embeddings ``x_A, x_B`` of
  your choice, with any score scale and with or without the causal mask.
* :func:`head_view` -- lessons 02 and 03: the trained one-layer model (or one of its edited copies:
  ``W_U`` relabelled, ``W_OV`` truncated to a low rank, ``W_Q`` negated) on a list of numbers:
  attention pattern, the query's QK scores, each source's OV contribution to the logits, and the
  prediction.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import torch

from .. import experiments, worked_example
from ..checkpoint import load_pretrained
from ..model import AttentionOnlyTransformer
from ..tasks import Task, get_task

__all__ = [
    "WorkedExampleView",
    "worked_example_view",
    "VARIANTS",
    "RELABELLED",
    "TRUNCATED",
    "default_ov_rank",
    "HeadView",
    "head_view",
    "parse_numbers",
    "example_lists",
]


# --------------------------------------------------------------------------------------------
# Lesson 01: the worked example
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkedExampleView:
    """The worked example for one setting of the explorer (rows and columns: tokens A, B).

    Attributes:
        x: embeddings ``[2, d_model]`` (row 0 is A).
        scale: factor applied to the raw scores; ``default_scale`` is ``1/sqrt(d_head)``.
        causal: whether the causal mask is on.
        scores, scaled_scores, pattern: ``[n_dest, n_src]``.
        output: what the head writes for A and B, the standard way ``[2, d_model]``.
        scores_circuit: ``x W_QK x^T`` ``[2, 2]``; output_circuit: ``pattern (x W_OV)``.
        max_abs_diff: largest difference between the standard and the circuit route (scores and
            outputs together).
    """

    x: np.ndarray
    scale: float
    default_scale: float
    causal: bool
    scores: np.ndarray
    scaled_scores: np.ndarray
    pattern: np.ndarray
    output: np.ndarray
    scores_circuit: np.ndarray
    output_circuit: np.ndarray
    max_abs_diff: float
    tokens: tuple = worked_example.TOKENS

    def lines(self) -> list[str]:
        """The numbers as short lines of text, the way the explorer prints them."""
        fmt = worked_example.format_vector
        return [
            f"x_A = {fmt(self.x[0], 2)}   x_B = {fmt(self.x[1], 2)}",
            f"raw scores, A's row (A, B): {fmt(self.scores[0], 3)};  B's row: "
            f"{fmt(self.scores[1], 3)}",
            f"scaled by {self.scale:.3g}: A's row {fmt(self.scaled_scores[0], 3)};  B's row "
            f"{fmt(self.scaled_scores[1], 3)}",
            f"pattern: A -> A {self.pattern[0, 0]:.4f}, A -> B {self.pattern[0, 1]:.4f};  "
            f"B -> A {self.pattern[1, 0]:.4f}, B -> B {self.pattern[1, 1]:.4f}"
            + ("  (causal mask on)" if self.causal else ""),
            f"output of A: {fmt(self.output[0], 3)}",
            f"circuit route (x W_QK x^T and pattern x W_OV) vs standard route: largest "
            f"difference {self.max_abs_diff:.1e}",
        ]


def worked_example_view(x_A=None, x_B=None, scale=None, causal: bool = False):
    """The worked example with the explorer's settings.

    Args:
        x_A, x_B: embeddings ``[d_model]`` of A and B (defaults: the lesson's).
        scale: factor on the raw scores before the softmax (default ``1/sqrt(d_head)``).
        causal: apply the causal mask (A then sees only itself).

    Returns:
        a :class:`WorkedExampleView`; at the defaults its pattern's first row is about
        ``(0.08, 0.92)``, as in the lesson.
    """
    x = worked_example.X.copy()
    for row, given, name in ((0, x_A, "x_A"), (1, x_B, "x_B")):
        if given is not None:
            vec = np.asarray(given, dtype=np.float64)
            if vec.shape != x[row].shape:
                raise ValueError(f"{name} must have shape [d_model] = [{x.shape[1]}], got "
                                 f"shape {list(vec.shape)}")
            x[row] = vec
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be True or False, got {causal!r}")
    ex = worked_example.run(causal=causal, x=x, scale=scale)
    default_scale = 1 / ex.d_head**0.5
    diff = max(float(np.abs(ex.scores_circuit - ex.scores).max()),
               float(np.abs(ex.output_circuit - ex.output).max()))
    return WorkedExampleView(
        x=ex.x, scale=default_scale if scale is None else float(scale),
        default_scale=default_scale, causal=causal, scores=ex.scores,
        scaled_scores=ex.scaled_scores, pattern=ex.pattern, output=ex.output,
        scores_circuit=ex.scores_circuit, output_circuit=ex.output_circuit, max_abs_diff=diff,
    )


# --------------------------------------------------------------------------------------------
# Lesson 02: the trained one-layer model and its edited copies
# --------------------------------------------------------------------------------------------

#: The variant that relabels the unembedding; its prediction follows by construction.
RELABELLED = "W_U relabelled (by construction)"
#: The variant that edits W_V and W_O themselves (an OV edit whose outcome is not forced).
TRUNCATED = "W_OV truncated (W_V, W_O edited)"

#: The models the head explorer switches between: name -> what was changed.
VARIANTS = {
    "trained": "the trained model, as shipped",
    RELABELLED: "W_U's number columns permuted by a fixed permutation (experiments."
                "permute_outputs); W_OV = W_V W_O is untouched, the OV table W_E W_OV W_U and "
                "the direct path W_E W_U both get their columns relabelled, so every prediction "
                "i becomes perm[i] for any model",
    TRUNCATED: "W_V and W_O rewritten to keep only the best rank-r part of W_OV = W_V W_O "
               "(experiments.truncate_ov); W_Q, W_K, W_E, W_pos and W_U are untouched, so the "
               "pattern and the direct path are too",
    "QK negated": "W_Q negated, so every score changes sign",
    "QK negated, self blocked": "W_Q negated, and the query may not attend to itself",
}


@dataclass(frozen=True, eq=False)
class Subject:
    """What an explorer looks at: a task and the shipped model trained on it.

    Resolved once, at the edge (:func:`subject`, called by the widget), and passed down as an
    object, so no function below looks the task name up again.
    """

    task: Task
    model: AttentionOnlyTransformer


@functools.cache
def subject(task_name: str = "max") -> Subject:
    """The task called ``task_name`` and its shipped model (loaded once per process)."""
    return Subject(get_task(task_name), load_pretrained(task_name))


def default_ov_rank(subj: Subject | None = None) -> int:
    """The rank the explorer's truncated variant starts at: an eighth of ``d_head`` (at least 1),
    low enough that the OV contributions visibly change and most answers go wrong (the
    lesson's rank sweep shows how the accuracy recovers as the rank grows)."""
    subj = subject() if subj is None else subj
    return max(1, subj.model.cfg.d_head // 8)


@functools.cache
def _variant(name: str, subj: Subject, rank: int | None = None):
    """``(model, score_hook, permutation or None)`` for a variant (built once, on the CPU)."""
    if name not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {name!r}")
    model, task = subj.model, subj.task
    if name == RELABELLED:
        perm = experiments.random_permutation(task.n_numbers, seed=0)
        return experiments.permute_outputs(model, perm), None, perm
    if name == TRUNCATED:
        return experiments.truncate_ov(model, rank), None, None
    if name == "QK negated":
        return experiments.negate_qk(model), None, None
    if name == "QK negated, self blocked":
        return experiments.negate_qk(model), experiments.block_query_self, None
    return model, None, None


@dataclass(frozen=True)
class HeadView:
    """One list through one variant of the trained model (head 0; the lesson's model has one).

    Attributes:
        variant: a key of :data:`VARIANTS`.
        tokens: the input ``[n_ctx]``: the numbers, then the query token.
        labels: a label per position (the number, or ``"q"`` for the query).
        pattern: attention pattern ``[dest, src]``; ``pattern[-1]`` is the query's row.
        query_scores: the query's raw scores for each key of this list ``[src]`` (after any score
            hook; a blocked key shows ``-inf``).
        qk_row: the query's score for every number as a key, from the circuit alone
            (:func:`toymodel.experiments.query_qk_row`) ``[n_numbers]``.
        ov_per_source: what each source would add to each logit with attention weight 1,
            ``x_src W_OV W_U`` ``[src, d_vocab]`` (the OV circuit's side alone).
        ov_contributions: what each source adds to each logit at the query, its attention
            weight times ``ov_per_source`` ``[src, d_vocab]``.
        direct_logits: the direct path at the query ``[d_vocab]``.
        logits: the model's logits at the query ``[d_vocab]`` (the forward pass); they equal
            ``direct_logits + ov_contributions.sum(0)`` up to rounding.
        prediction: the token with the largest logit (the query token if the model says that).
        expected: what the variant should answer if the circuits' story holds (max, perm[max],
            min; for the truncated OV the trained answer, max, which truncation may break) and a
            description of it.
        rank: the rank kept in ``W_OV`` (the truncated variant only; None otherwise).
    """

    variant: str
    tokens: list
    labels: list
    pattern: np.ndarray
    query_scores: np.ndarray
    qk_row: np.ndarray
    ov_per_source: np.ndarray
    ov_contributions: np.ndarray
    direct_logits: np.ndarray
    logits: np.ndarray
    prediction: int
    expected: int
    expected_rule: str
    rank: int | None = None

    @property
    def description(self) -> str:
        """What the variant changed (with the rank filled in for the truncated one)."""
        text = VARIANTS[self.variant]
        return text if self.rank is None else text.replace("rank-r", f"rank-{self.rank}")

    def changes_from(self, other: HeadView) -> dict:
        """Largest absolute change of each quantity from ``other`` (the same list, another
        variant): ``{"attention": ..., "qk_row": ..., "ov_per_source": ..., "logits": ...}``."""
        if self.tokens != other.tokens:
            raise ValueError("compare views of the same list")
        return {
            "attention": float(np.abs(self.pattern - other.pattern).max()),
            "qk_row": float(np.abs(self.qk_row - other.qk_row).max()),
            "ov_per_source": float(np.abs(self.ov_per_source - other.ov_per_source).max()),
            "logits": float(np.abs(self.logits - other.logits).max()),
        }

    def lines(self, baseline: HeadView | None = None) -> list[str]:
        """Short lines of text; with ``baseline`` (the trained model on the same list) one more
        line says which quantities the edit moved."""
        numbers = self.tokens[:-1]
        top = int(np.argmax(self.pattern[-1]))
        said = "the query token" if self.prediction == self.tokens[-1] else self.prediction
        out = [
            f"{self.variant}: {self.description}",
            f"list {numbers}; the query attends most to position {top} "
            f"({self.labels[top]}) with weight {self.pattern[-1, top]:.3f}",
            f"prediction: {said}; {self.expected_rule} is {self.expected}"
            + (" (match)" if self.prediction == self.expected else " (no match)"),
        ]
        if baseline is not None and baseline.variant != self.variant:
            c = self.changes_from(baseline)
            out.append(
                f"largest change from the {baseline.variant} model: "
                f"attention {c['attention']:.3g}, "
                f"QK row {c['qk_row']:.3g}, OV per source {c['ov_per_source']:.3g}, "
                f"logits {c['logits']:.3g}"
            )
        return out


def parse_numbers(text, task: Task | None = None) -> list[int]:
    """Read a list of numbers typed as ``"3, 17, 42 8 25 11"`` (commas or spaces).

    Raises:
        ValueError: not whole numbers, not exactly ``list_len`` of them, or out of range; the
            message says what is expected.
    """
    task = subject().task if task is None else task
    if not isinstance(text, str):
        text = " ".join(str(t) for t in text)
    parts = [p for p in re.split(r"[\s,;]+", text.strip().strip("[]()")) if p]
    if not all(re.fullmatch(r"\d+", p) for p in parts):
        raise ValueError(f"type {task.list_len} whole numbers from 0 to {task.n_numbers - 1}, "
                         f"separated by commas or spaces; got {text!r}")
    numbers = [int(p) for p in parts]
    if len(numbers) != task.list_len:
        raise ValueError(f"the model reads lists of exactly {task.list_len} numbers; got "
                         f"{len(numbers)}")
    bad = [n for n in numbers if n >= task.n_numbers]
    if bad:
        raise ValueError(f"numbers must lie in 0..{task.n_numbers - 1}; got {bad}")
    return numbers


def example_lists(n: int = 3, seed: int = 10, task: Task | None = None) -> list[list[int]]:
    """``n`` lists drawn like the lesson's examples (same seed: the same lists)."""
    task = subject().task if task is None else task
    tokens, _ = task.make_batch(n, generator=seed)
    return [row[:-1] for row in tokens.tolist()]


def head_view(numbers, variant: str = "trained", subj: Subject | None = None,
              rank: int | None = None) -> HeadView:
    """Run one list through a variant of the shipped model and collect what the explorer shows.

    Args:
        numbers: ``list_len`` ints (or a string for :func:`parse_numbers`).
        variant: a key of :data:`VARIANTS`.
        subj: the task and shipped model (default: :func:`subject` ``("max")``).
        rank: the rank kept in ``W_OV`` for the truncated variant (default
            :func:`default_ov_rank`); must be None for the other variants.

    Returns:
        a :class:`HeadView` (numpy arrays, float64).
    """
    subj = subject() if subj is None else subj
    task = subj.task
    numbers = parse_numbers(numbers, task)
    if variant == TRUNCATED:
        rank = default_ov_rank(subj) if rank is None else rank
    elif rank is not None:
        raise ValueError(f"rank applies to the {TRUNCATED!r} variant only, got rank={rank!r} "
                         f"with variant {variant!r}")
    model, hook, perm = _variant(variant, subj, rank)
    tokens = torch.tensor([numbers + [task.query_token]])
    seen = {}

    def keep(scores):  # [batch, head, dest, src]
        scores = hook(scores) if hook is not None else scores
        seen["scores"] = scores
        return scores

    n = task.n_numbers
    with torch.no_grad():
        logits = model(tokens)[0, -1] if hook is None else model(tokens, hook)[0, -1]
        parts = model.decompose(tokens, keep)
        query = parts.pattern[0, 0, -1]  # [src]
        per_source = parts.embed[0] @ model.W_OV[0] @ model.W_U  # [src, d_vocab]
        contributions = query[:, None] * per_source
    qk_row = experiments.query_qk_row(model, task)[0, :n]
    answers = {"trained": ("the largest number", max(numbers)),
               RELABELLED: ("perm[largest number]", int(perm[max(numbers)]) if perm is not None
                            else None),
               TRUNCATED: ("the largest number", max(numbers)),
               "QK negated": ("the smallest number", min(numbers)),
               "QK negated, self blocked": ("the smallest number", min(numbers))}
    rule, expected = answers[variant]
    np_ = lambda t: t.detach().cpu().to(torch.float64).numpy()  # noqa: E731
    logits = np_(logits)
    return HeadView(
        variant=variant, tokens=tokens[0].tolist(),
        labels=[str(t) for t in numbers] + ["q"],
        pattern=np_(parts.pattern[0, 0]), query_scores=np_(seen["scores"][0, 0, -1]),
        qk_row=np_(qk_row), ov_per_source=np_(per_source), ov_contributions=np_(contributions),
        direct_logits=np_(parts.direct_logits[0, -1]), logits=logits,
        prediction=int(np.argmax(logits)), expected=expected, expected_rule=rule, rank=rank,
    )
