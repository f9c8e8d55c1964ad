"""Experiments on a trained one-layer model: edit one circuit, watch the other stay put.

Every edit works on a deep copy, so the model passed in is never changed.

* :func:`permute_outputs` relabels the outputs of the OV circuit (columns of ``W_U``) with a
  permutation of the number tokens. The QK circuit never reads ``W_U``, so every attention pattern
  stays exactly the same while the predictions follow the permutation.
* :func:`negate_qk` negates ``W_Q``, hence ``W_QK``: the head now prefers the keys it used to
  avoid. With :func:`block_query_self` (the query may not attend to itself, which the trained head
  never does anyway) it looks for the smallest number, and the untouched OV circuit copies it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from . import circuits
from .model import AttentionOnlyTransformer
from .tasks import Task

__all__ = [
    "permute_outputs",
    "negate_qk",
    "block_query_self",
    "random_permutation",
    "query_qk_row",
    "query_position_row",
    "CircuitStats",
    "circuit_stats",
    "direct_path_accuracy",
    "agreement",
]


def _check_model(model):
    if not isinstance(model, AttentionOnlyTransformer):
        raise TypeError(f"model must be an AttentionOnlyTransformer, got {type(model).__name__}")


def random_permutation(n: int, seed: int = 0) -> torch.Tensor:
    """A seeded random permutation of ``0 .. n-1`` with no fixed point ``[n]``."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.arange(n)
    while n > 1 and bool((perm == torch.arange(n)).any()):
        perm = torch.randperm(n, generator=g)
    return perm


def permute_outputs(model: AttentionOnlyTransformer, perm) -> AttentionOnlyTransformer:
    """A copy whose unembedding sends what used to be the logit of number ``i`` to ``perm[i]``.

    Args:
        model: a trained model.
        perm: a permutation ``[n]`` of the first ``n`` token ids (the number tokens); the other
            columns of ``W_U`` are left alone.

    Returns:
        a new model with ``W_U[:, perm[i]] = old W_U[:, i]`` for ``i < n``.
    """
    _check_model(model)
    perm = torch.as_tensor(perm)
    n = perm.numel()
    if perm.ndim != 1 or n > model.cfg.d_vocab:
        raise ValueError(f"perm must be 1-d with at most d_vocab = {model.cfg.d_vocab} entries")
    if not torch.equal(perm.sort().values, torch.arange(n)):
        raise ValueError(f"perm must be a permutation of 0 .. {n - 1}, got {perm.tolist()}")
    new = copy.deepcopy(model)
    with torch.no_grad():
        new.W_U[:, perm.to(new.W_U.device)] = model.W_U[:, :n]
    return new


def negate_qk(model: AttentionOnlyTransformer) -> AttentionOnlyTransformer:
    """A copy with ``W_Q`` negated, so every head's ``W_QK`` (and every score) changes sign."""
    _check_model(model)
    new = copy.deepcopy(model)
    with torch.no_grad():
        new.W_Q.neg_()
    return new


def block_query_self(scores: torch.Tensor) -> torch.Tensor:
    """Score hook: the last position may not attend to itself (``[batch, head, dest, src]``)."""
    scores = scores.clone()
    scores[..., -1, -1] = float("-inf")
    return scores


def query_qk_row(model: AttentionOnlyTransformer, task: Task) -> torch.Tensor:
    """The score the query gives each token as a key, ``[head, d_vocab]`` (on the CPU).

    The query sits at the last position, so its residual is ``W_E[query] + W_pos[-1]``; the row is
    ``tok_tok[query] + pos_tok[-1]`` of :func:`toymodel.circuits.qk_circuit_terms` (the terms that
    do not depend on the key's token are left out: they shift every key the same way).
    """
    _check_model(model)
    p = {k: getattr(model, k).detach().cpu() for k in ("W_E", "W_pos", "W_Q", "W_K")}
    terms = circuits.qk_circuit_terms(p["W_E"], p["W_pos"], p["W_Q"], p["W_K"])
    return terms["tok_tok"][:, task.query_token] + terms["pos_tok"][:, task.n_ctx - 1]


def query_position_row(model: AttentionOnlyTransformer, task: Task) -> torch.Tensor:
    """The part of the query's score that depends on the key's position, ``[head, list_len]``.

    ``tok_pos[query] + pos_pos[-1]`` over the positions of the list (on the CPU).
    """
    _check_model(model)
    p = {k: getattr(model, k).detach().cpu() for k in ("W_E", "W_pos", "W_Q", "W_K")}
    terms = circuits.qk_circuit_terms(p["W_E"], p["W_pos"], p["W_Q"], p["W_K"])
    row = terms["tok_pos"][:, task.query_token] + terms["pos_pos"][:, task.n_ctx - 1]
    return row[:, : task.list_len]


@dataclass(frozen=True)
class CircuitStats:
    """The checked numbers of the one-layer lesson (heads summed where there are several)."""

    qk_spearman: float  # rank correlation of the query's QK row over numbers with the number
    copying_score: float  # of the full OV circuit restricted to number tokens
    ov_top1: float  # fraction of numbers whose own logit tops their full-OV row


def circuit_stats(model: AttentionOnlyTransformer, task: Task) -> CircuitStats:
    """QK and OV statistics of the model, all computed in float64 on the CPU.

    With several heads the QK rows are summed (a rough picture) and the OV circuits are combined
    (``combine_heads=True``). Both are restricted to the number tokens ``0 .. n_numbers - 1``.
    """
    _check_model(model)
    n = task.n_numbers
    p = {k: getattr(model, k).detach().cpu().double() for k in ("W_E", "W_V", "W_O", "W_U")}
    W_E, W_U = p["W_E"][:n], p["W_U"][:, :n]
    row = query_qk_row(model, task).sum(0)[:n]
    return CircuitStats(
        qk_spearman=circuits.spearman(row, torch.arange(n)),
        copying_score=circuits.copying_score(W_E, p["W_V"], p["W_O"], W_U, combine_heads=True),
        ov_top1=circuits.ov_top1_accuracy(W_E, p["W_V"], p["W_O"], W_U, combine_heads=True),
    )


def direct_path_accuracy(model: AttentionOnlyTransformer, tokens, targets) -> float:
    """Accuracy at the last position of the direct path ``(W_E[tok] + W_pos[pos]) @ W_U`` alone."""
    _check_model(model)
    with torch.no_grad():
        logits = model.decompose(tokens).direct_logits[:, -1]
    return float((logits.argmax(-1).cpu() == targets).double().mean())


def agreement(model, tokens, answers, score_hook=None) -> float:
    """Fraction of rows whose prediction at the last position equals ``answers`` ``[batch]``."""
    with torch.no_grad():
        pred = model(tokens, score_hook)[:, -1].argmax(-1).cpu()
    return float((pred == answers).double().mean())
