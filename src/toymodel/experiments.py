"""Experiments on a trained one-layer model: edit one circuit, watch the other stay put.

Every edit works on a deep copy, so the model passed in is never changed. Some outcomes hold by
construction, for any weights; the others are predictions of the circuit story that could fail.

* :func:`permute_outputs` relabels the unembedding: it permutes the number columns of ``W_U``.
  That edits the end-to-end OV table ``W_E W_OV W_U`` *and* the direct path ``W_E W_U``, while
  ``W_OV = W_V W_O`` itself is untouched. Both outcomes hold by construction, for any model,
  trained or not: the attention pattern cannot change (one layer's scores never read ``W_U``), and
  every prediction that is a number ``i`` becomes ``perm[i]`` (the logits are the old ones with
  their columns relabelled).
* :func:`truncate_ov` edits ``W_V`` and ``W_O`` themselves: each head's ``W_OV`` becomes its best
  approximation of a given rank. The pattern stays put by construction, but how accurate the model
  stays is not forced by algebra; the circuit story predicts it from the OV table alone.
* :func:`negate_qk` negates ``W_Q``, hence ``W_QK``: the head now prefers the keys it used to
  avoid. With :func:`block_query_self` (the query may not attend to itself, which the trained head
  never does anyway) it looks for the smallest number, and the untouched OV circuit copies it.

Measurements of every head of a language model at once (the at-scale lesson), from weights in the
layout of :func:`toymodel.hf.gpt2_weights`:

* :func:`head_stats` copying score, OV top-1, the token QK diagonal z-score and where the
  positional QK circuit points, for every head of every layer.
* :func:`random_heads_baseline` copying scores of random ``W_V``, ``W_O`` on a model's own
  embedding and unembedding: what a head that learned nothing scores.
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
    "truncate_ov",
    "negate_qk",
    "block_query_self",
    "random_permutation",
    "query_qk_row",
    "query_position_row",
    "RankPoint",
    "ov_rank_sweep",
    "CircuitStats",
    "circuit_stats",
    "direct_path_accuracy",
    "agreement",
    "head_stats",
    "random_heads_baseline",
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

    This edits ``W_U`` only: the end-to-end OV table ``W_E W_V W_O W_U`` and the direct path
    ``W_E W_U`` both get their columns relabelled, and ``W_OV = W_V W_O`` is unchanged. For any
    model, every logit vector is the old one relabelled, so a prediction ``i < n`` becomes
    ``perm[i]`` and the patterns stay the same: these outcomes test the code, not the model.

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


def truncate_ov(model: AttentionOnlyTransformer, rank: int) -> AttentionOnlyTransformer:
    """A copy whose heads keep only the best rank-``rank`` part of their OV circuits.

    For each head, ``W_OV = W_V W_O`` ``[d_model, d_model]`` is split by SVD, ``U S V^T``, and
    the new factors are ``W_V = U_r S_r`` ``[d_model, d_head]`` and ``W_O = V_r^T``
    ``[d_head, d_model]`` (zero-padded from ``rank`` to ``d_head`` columns and rows), so the new
    ``W_V W_O`` is the closest matrix of rank ``rank`` to the old one (Eckart-Young). ``W_Q``,
    ``W_K``, ``W_E``, ``W_pos`` and ``W_U`` are untouched, hence the patterns and the direct path.

    Args:
        model: a model.
        rank: an int from 0 to ``d_head`` (``d_head`` keeps the circuit as it is, up to rounding).
    """
    _check_model(model)
    d_head = model.cfg.d_head
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank <= d_head:
        raise ValueError(f"rank must be an int from 0 to d_head = {d_head}, got {rank!r}")
    new = copy.deepcopy(model)
    with torch.no_grad():
        for h in range(model.cfg.n_heads):
            W_OV = model.W_V[h].double() @ model.W_O[h].double()  # [d_model, d_model]
            U, S, Vh = torch.linalg.svd(W_OV)
            W_V = torch.zeros_like(model.W_V[h], dtype=torch.float64)
            W_O = torch.zeros_like(model.W_O[h], dtype=torch.float64)
            W_V[:, :rank] = U[:, :rank] * S[:rank]
            W_O[:rank] = Vh[:rank]
            new.W_V[h] = W_V.to(new.W_V.dtype)
            new.W_O[h] = W_O.to(new.W_O.dtype)
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
class RankPoint:
    """One rank of :func:`ov_rank_sweep`."""

    rank: int
    ov_top1: float  # read off the weights: numbers whose own logit tops their full-OV row
    accuracy: float  # measured: the truncated model's accuracy on the given lists


def ov_rank_sweep(model, task: Task, tokens, targets, ranks=None) -> list[RankPoint]:
    """OV top-1 accuracy and model accuracy of ``truncate_ov(model, rank)`` for each rank.

    The first number comes from the weights alone (no list is run); the second from running the
    truncated model on ``tokens`` ``[batch, n_ctx]`` against ``targets`` ``[batch]``. The circuit
    story predicts the second from the first; algebra does not force them to agree.
    """
    _check_model(model)
    ranks = range(model.cfg.d_head + 1) if ranks is None else ranks
    points = []
    for rank in ranks:
        cut = truncate_ov(model, rank)
        stats = circuit_stats(cut, task)
        points.append(RankPoint(rank, stats.ov_top1, agreement(cut, tokens, targets)))
    return points


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


@torch.no_grad()
def head_stats(w: dict, top1_heads="all", n_pos: int | None = None) -> dict:
    """Weights-only statistics of every head, each ``[n_layers, n_heads]`` float64.

    Args:
        w: weights in the layout of :func:`toymodel.hf.gpt2_weights` (float64 recommended).
        top1_heads: ``"all"``, ``"extremes"`` (the heads with the highest and the lowest
            copying score) or a list of ``(layer, head)`` for which to compute OV top-1 (it
            costs ``d_vocab^2 d_head`` per head at worst; the others get NaN).
        n_pos: positions of the positional QK table (default: all of ``W_pos``).

    Returns:
        dict with ``"copying"`` (copying score), ``"ov_top1"`` (fraction of tokens whose own
        logit tops their row of the full OV circuit), ``"qk_self_z"`` (a token's QK score for
        itself minus the mean score, in standard deviations of the full QK circuit), and, from
        the positional QK table ``(W_pos W_Q + b_Q)(W_pos W_K + b_K)^T`` with sources up to the
        destination: ``"pos_self"`` and ``"pos_prev"``, the fractions of destinations ``p >= 1``
        whose best source is ``p`` itself and ``p - 1``.
    """
    for key in ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_U"):
        if key not in w:
            raise ValueError(f"weights need {key!r} (the layout of hf.gpt2_weights)")
    W_V = w["W_V"]
    if W_V.ndim != 4:
        raise ValueError(f"W_V must be [n_layers, n_heads, d_model, d_head], got {list(W_V.shape)}")
    L, H = W_V.shape[:2]
    E, U = w["W_E"], w["W_U"]
    out = {"copying": circuits.copying_score(E, W_V, w["W_O"], U)}
    if top1_heads == "all":
        out["ov_top1"] = circuits.ov_top1_accuracy(E, W_V, w["W_O"], U)
    else:
        if top1_heads == "extremes":
            order = torch.as_tensor(out["copying"]).flatten().argsort(descending=True)
            top1_heads = [divmod(int(order[0]), H), divmod(int(order[-1]), H)]
        elif isinstance(top1_heads, str):
            raise ValueError(f"top1_heads must be 'all', 'extremes' or a list of (layer, head), "
                             f"got {top1_heads!r}")
        top1 = torch.full((L, H), float("nan"), dtype=torch.float64)
        for layer, head in top1_heads:
            top1[layer, head] = circuits.ov_top1_accuracy(E, W_V[layer, head],
                                                          w["W_O"][layer, head], U)
        out["ov_top1"] = top1
    out["qk_self_z"] = circuits.qk_diagonal_stats(E, w["W_Q"], w["W_K"])["diag_zscore"]
    P = w["W_pos"] if n_pos is None else w["W_pos"][:n_pos]
    n = P.shape[0]
    future = torch.ones(n, n, dtype=torch.bool, device=P.device).triu(1)
    dest = torch.arange(1, n, device=P.device)
    pos_self = torch.empty(L, H, dtype=torch.float64)
    pos_prev = torch.empty(L, H, dtype=torch.float64)
    zeros = torch.zeros(L, H, W_V.shape[-1], dtype=P.dtype, device=P.device)
    b_Q, b_K = w.get("b_Q", zeros), w.get("b_K", zeros)
    for layer in range(L):
        q = P @ w["W_Q"][layer] + b_Q[layer][:, None]  # [n_heads, n, d_head]
        k = P @ w["W_K"][layer] + b_K[layer][:, None]
        best = (q @ k.transpose(-1, -2)).masked_fill(future, float("-inf"))[:, 1:].argmax(-1)
        pos_self[layer] = (best == dest).double().mean(-1).cpu()
        pos_prev[layer] = (best == dest - 1).double().mean(-1).cpu()
    out["pos_self"], out["pos_prev"] = pos_self, pos_prev
    return {k: torch.as_tensor(v, dtype=torch.float64).cpu() for k, v in out.items()}


@torch.no_grad()
def random_heads_baseline(w: dict, n: int = 200, seed: int = 0) -> torch.Tensor:
    """Copying scores ``[n]`` of heads with Gaussian random ``W_V``, ``W_O`` (of the model's
    ``d_model``, ``d_head``) on the model's own ``W_E`` and ``W_U``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    d_model, d_head = w["W_V"].shape[-2:]
    g = torch.Generator().manual_seed(seed)
    rand_V = torch.randn(n, d_model, d_head, generator=g, dtype=torch.float64)
    rand_O = torch.randn(n, d_head, d_model, generator=g, dtype=torch.float64)
    E, U = w["W_E"].double().cpu(), w["W_U"].double().cpu()
    return circuits.copying_score(E, rand_V, rand_O, U)
