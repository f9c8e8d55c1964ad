"""Per-head statistics of a language model that the language lessons show and the tests check.

All matrices use the row convention. For a one-layer model ``model`` with ``n_heads`` heads:

* :func:`copying_scores`  the copying score of every head (``[n_heads]``) and the OV eigenvalues;
  :func:`ov_top1` how often a token's own logit tops its row of each head's full OV circuit.
* :func:`ov_promotions`   for a source token, the tokens each head's full OV circuit raises most.
* :func:`bigram_check`    the direct path ``W_E W_U`` read as a bigram table, against corpus counts.
* :func:`skip_trigrams`   "when the destination is A, the head attends to an earlier B and raises
  C", read off the full QK circuit ``(W_E + p) W_Q W_K^T (W_E + p)^T`` (``p`` the mean position)
  and the full OV circuit; :func:`format_trigram` writes one in text order, ``B … A -> C``.
* :func:`held_out_lift`   whether C becomes more likely in held-out text when A is the current token
  and B occurs earlier in the context, against the same A without B (model and data, with the
  data's one-sided Fisher exact p-value); :func:`confirmed` is the rule that calls a triple
  confirmed.

One head at a time (a triple's lift without its head, the factoring bug, each head's share of a
logit) is :mod:`toymodel.text.attribution`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..circuits import copying_score, ov_eigenvalues

__all__ = [
    "copying_scores",
    "ov_top1",
    "full_ov",
    "full_qk",
    "ov_promotions",
    "bigram_counts",
    "bigram_check",
    "SkipTrigram",
    "format_trigram",
    "cooccurrence",
    "skip_trigrams",
    "lifts",
    "fisher_greater",
    "confirmed",
    "held_out_lift",
    "held_out_logprobs",
    "windows_of",
    "lift_ratio",
]


def _one_layer(model):
    if model.cfg.n_layers != 1:
        raise ValueError(f"expected a one-layer model, got n_layers={model.cfg.n_layers}")


@torch.no_grad()
def copying_scores(model) -> tuple[np.ndarray, np.ndarray]:
    """``(scores [n_layers, n_heads], eigenvalues [n_layers, n_heads, d_head] complex)``."""
    W_V = model.W_V.detach().double()
    W_O = model.W_O.detach().double()
    if model.cfg.n_layers == 1:
        W_V, W_O = W_V[None], W_O[None]
    E, U = model.W_E.detach().double(), model.W_U.detach().double()
    scores = copying_score(E, W_V, W_O, U)
    eig = ov_eigenvalues(E, W_V, W_O, U)
    return np.asarray(scores), np.asarray(eig)


@torch.no_grad()
def ov_top1(model) -> np.ndarray:
    """``[n_heads]``: for each head of a one-layer model, the fraction of tokens whose own logit is
    the largest in their row of the full OV circuit (float64 weights)."""
    from ..circuits import ov_top1_accuracy

    _one_layer(model)
    E, U = model.W_E.detach().double(), model.W_U.detach().double()
    W_V, W_O = model.W_V.detach().double(), model.W_O.detach().double()
    return np.asarray(ov_top1_accuracy(E, W_V, W_O, U), dtype=np.float64)


@torch.no_grad()
def full_ov(model) -> torch.Tensor:
    """Full OV circuits ``[n_heads, d_vocab (source), d_vocab (output logit)]`` of a one-layer
    model."""
    _one_layer(model)
    return (model.W_E @ model.W_V) @ (model.W_O @ model.W_U)


@torch.no_grad()
def full_qk(model) -> torch.Tensor:
    """Full QK circuits ``[n_heads, d_vocab (destination), d_vocab (source)]`` with the mean
    position added."""
    _one_layer(model)
    x = model.W_E + model.W_pos.mean(0)
    return (x @ model.W_Q) @ (x @ model.W_K).transpose(-1, -2)


@torch.no_grad()
def ov_promotions(model, source: int, k: int = 5) -> list[list[int]]:
    """For each head, the ``k`` token ids whose logits attending to ``source`` raises most."""
    _one_layer(model)
    row = ((model.W_E[source] @ model.W_V)[:, None, :] @ (model.W_O @ model.W_U))[
        :, 0
    ]  # [n_heads, d_vocab]
    return row.topk(k, dim=-1).indices.tolist()


def bigram_counts(ids, d_vocab: int) -> np.ndarray:
    """``[d_vocab, d_vocab]`` counts of (token, next token) in ``ids``."""
    ids = np.asarray(ids, dtype=np.int64)
    flat = ids[:-1] * d_vocab + ids[1:]
    return np.bincount(flat, minlength=d_vocab * d_vocab).reshape(d_vocab, d_vocab)


@torch.no_grad()
def bigram_check(model, counts: np.ndarray, n_tokens: int = 200, top: int = 5) -> dict:
    """How well the direct path ``W_E W_U`` predicts the corpus' next token, on the most frequent
    tokens.

    Returns a dict: ``tokens`` (the ``n_tokens`` most frequent current tokens), ``direct_top1``
    (the direct path's top next token for each), ``in_corpus_top`` (fraction whose direct top-1 is
    among the corpus' ``top`` most frequent next tokens), ``chance`` (the same fraction for a token
    drawn by overall frequency), and ``spearman`` (median over the tokens of the rank correlation
    between direct logits and bigram counts over next tokens seen at least once).
    """
    from ..circuits import spearman

    direct = (model.W_E @ model.W_U).numpy()
    freq = counts.sum(1)
    tokens = np.argsort(-freq, kind="stable")[:n_tokens]
    top1 = direct[tokens].argmax(1)
    corpus_top = np.argsort(-counts[tokens], axis=1, kind="stable")[:, :top]
    hit = np.array([t in row for t, row in zip(top1, corpus_top, strict=True)])
    unigram = counts.sum(0) / counts.sum()
    chance = float(np.mean([unigram[row].sum() for row in corpus_top]))
    rhos = []
    for a in tokens:
        seen = counts[a] > 0
        if seen.sum() >= 5:
            rhos.append(spearman(direct[a, seen], np.log(counts[a, seen])))
    return {
        "tokens": tokens,
        "direct_top1": top1,
        "in_corpus_top": float(hit.mean()),
        "chance": chance,
        "spearman": float(np.median(rhos)),
    }


@dataclass(frozen=True)
class SkipTrigram:
    """Head ``head`` attends from destination ``a`` to source ``b`` and raises output ``c``."""

    head: int
    a: int
    b: int
    c: int
    qk: float  # QK score of (a, b) minus the mean of a's row, in units of the row's std
    ov: float  # OV logit of c from b minus the mean of b's row, in units of the row's std


def format_trigram(tri, strings) -> str:
    """A skip-trigram in text order, the earlier token first: ``"B … A -> C"``.

    ``tri`` is a :class:`SkipTrigram` (anything with token ids ``a``, ``b``, ``c``) or a tuple
    ``(a, b, c)`` in the same order as its fields: ``a`` the current (destination) token, ``b`` the
    earlier (source) token, ``c`` the token the head raises. ``strings`` gives each token id's
    readable string (:func:`toymodel.text.tokenizer.token_strings`). The arrow is ``->`` because the
    readable strings show a tab as ``→``. For example ``·def … ( -> self``: after ``def`` earlier
    on, the current token ``(`` is followed by ``self``.
    """
    if isinstance(tri, (tuple, list)):
        if len(tri) != 3:
            raise ValueError(f"a skip-trigram tuple must be (a, b, c), got {len(tri)} items: "
                             f"{tri!r}")
        a, b, c = tri
    elif all(hasattr(tri, k) for k in "abc"):
        a, b, c = tri.a, tri.b, tri.c
    else:
        raise TypeError(f"tri must be a SkipTrigram or a tuple (a, b, c), got {type(tri).__name__}")
    if isinstance(strings, str) or not hasattr(strings, "__getitem__"):
        raise TypeError("strings must be a list of token strings (tokenizer.token_strings(tok)), "
                        f"got {type(strings).__name__}")
    names = []
    for name, t in (("b", b), ("a", a), ("c", c)):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < len(strings):
            raise ValueError(f"{name} must be a token id in [0, {len(strings) - 1}], got {t!r}")
        names.append(strings[int(t)])
    return f"{names[0]} … {names[1]} -> {names[2]}"


def cooccurrence(ids, tokens, n_ctx: int) -> np.ndarray:
    """``[len(tokens), len(tokens)]``: how often token ``tokens[i]`` is current with ``tokens[j]``
    earlier.

    Counted over non-overlapping windows of ``n_ctx`` tokens of ``ids`` (positions with a next
    token).
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids) // n_ctx
    w = ids[: n * n_ctx].reshape(n, n_ctx)
    index = np.full(int(max(ids.max(), tokens.max())) + 1, -1)
    index[tokens] = np.arange(len(tokens))
    col = index[w]  # [n, n_ctx], -1 for other tokens
    onehot = np.zeros((n, n_ctx, len(tokens)), dtype=np.float32)
    ii, pp = np.nonzero(col >= 0)
    onehot[ii, pp, col[ii, pp]] = 1
    earlier = np.cumsum(onehot, axis=1) - onehot > 0
    a = onehot[:, :-1].reshape(-1, len(tokens))
    b = earlier[:, :-1].reshape(-1, len(tokens)).astype(np.float32)
    return (a.T @ b).astype(np.int64)


@torch.no_grad()
def skip_trigrams(
    model, frequent, support_ids, per_head: int = 2, min_support: int = 50, exclude=(),
    support=None,
) -> list[SkipTrigram]:
    """The strongest skip-trigrams of every head among ``frequent`` token ids.

    Each source ``b`` gets the frequent output ``c`` its OV circuit raises most (standardised over
    ``b``'s row, among the frequent tokens)
    and each destination ``a`` a standardised QK score for ``b`` (over ``a``'s row, among the
    frequent
    tokens). A triple's strength is the product of the two; a triple counts only when ``a`` is
    current
    with ``b`` earlier in at least ``min_support`` windows positions of ``support_ids`` (training
    text,
    never the held-out split), and ``a``, ``b`` are distinct and not in ``exclude``. Returns the
    ``per_head`` strongest triples of each head, with distinct sources. ``support``, if given, is
    :func:`cooccurrence` of ``support_ids`` over the kept tokens, computed already.
    """
    _one_layer(model)
    keep_np = np.array(
        [t for t in np.asarray(frequent) if int(t) not in set(exclude)], dtype=np.int64
    )
    if support is None:
        support = cooccurrence(support_ids, keep_np, model.cfg.n_ctx)
    elif np.shape(support) != (len(keep_np), len(keep_np)):
        raise ValueError(f"support must be [{len(keep_np)}, {len(keep_np)}] (cooccurrence over the "
                         f"kept tokens), got {list(np.shape(support))}")
    support = torch.as_tensor(np.asarray(support))
    keep = torch.as_tensor(keep_np)
    qk, ov = full_qk(model), full_ov(model)
    out = []
    for h in range(model.cfg.n_heads):
        q = qk[h][keep][:, keep]
        qz = (q - q.mean(1, keepdim=True)) / q.std(1, keepdim=True)
        o = ov[h][keep][:, keep]
        oz = (o - o.mean(1, keepdim=True)) / o.std(1, keepdim=True)
        c_best = keep[oz.argmax(1)]  # token ids
        strength = qz * oz.max(1).values[None, :]
        strength[support < min_support] = -float("inf")
        strength.fill_diagonal_(-float("inf"))
        order = torch.argsort(strength.flatten(), descending=True, stable=True)
        used = set()
        for flat in order.tolist():
            i, j = divmod(flat, len(keep))
            if not torch.isfinite(strength[i, j]) or len(used) >= per_head:
                break
            if j in used:
                continue
            used.add(j)
            out.append(
                SkipTrigram(
                    h,
                    int(keep[i]),
                    int(keep[j]),
                    int(c_best[j]),
                    round(float(qz[i, j]), 3),
                    round(float(oz[j].max()), 3),
                )
            )
    return out


@torch.no_grad()
def held_out_logprobs(model, ids, columns, batch: int = 64, at=None) -> tuple[np.ndarray, dict]:
    """Cut ``ids`` into non-overlapping windows ``[n, n_ctx]``; returns ``(windows, log-probs)``.

    ``log-probs`` maps each token id of ``columns`` to ``[n, n_ctx]``: the model's log-probability
    that this token comes next at each position. With ``at`` (token ids), only the positions whose
    token is one of them are unembedded, the rest hold NaN: the unembedding and its softmax over
    the whole vocabulary are most of the cost, and a lift reads only the positions of its ``a``.
    """
    columns = sorted({int(c) for c in columns})
    n_ctx = model.cfg.n_ctx
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids) // n_ctx
    windows = ids[: n * n_ctx].reshape(n, n_ctx)
    cols = torch.as_tensor(columns, dtype=torch.long)
    out = []
    for i in range(0, n, batch):
        w = torch.as_tensor(windows[i : i + batch])
        if at is None:
            out.append(torch.log_softmax(model(w), -1)[..., cols])
            continue
        resid = model.resid_final(w)  # [batch, n_ctx, d_model]
        mask = torch.as_tensor(np.isin(windows[i : i + batch], np.asarray(list(at))))
        part = torch.full((*w.shape, len(columns)), float("nan"))
        part[mask] = torch.log_softmax(resid[mask] @ model.W_U, -1)[:, cols]
        out.append(part)
    lp = torch.cat(out)
    return windows, {c: lp[..., k].numpy() for k, c in enumerate(columns)}


def held_out_lift(windows: np.ndarray, logprobs: dict, tri: SkipTrigram) -> dict:
    """Probability of ``c`` next, where the current token is ``a``, with and without ``b`` earlier.

    Positions: every position of every window whose token is ``a`` and which has a next token in
    the window. "With": ``b`` occurs at an earlier position of the same window; "without": it does
    not. Returns, for each group, the count of positions (``n_with``, ``n_without``), the mean
    model probability of ``c`` (``model_p_*``), the observed rate of ``c`` next (``data_p_*``) and
    how often ``c`` came next (``k_*``); and ``p_value``, the one-sided Fisher exact p-value of the
    data (:func:`fisher_greater`): how surprising ``k_with`` would be if B earlier made no
    difference to how often C follows A.
    """
    n, n_ctx = windows.shape
    seen_b = np.cumsum(windows == tri.b, axis=1) - (windows == tri.b)  # b strictly earlier
    at_a = windows[:, :-1] == tri.a
    with_b = at_a & (seen_b[:, :-1] > 0)
    without_b = at_a & (seen_b[:, :-1] == 0)
    nxt = windows[:, 1:]
    p = np.exp(logprobs[tri.c][:, :-1])
    res = {}
    for name, mask in (("with", with_b), ("without", without_b)):
        k = int(mask.sum())
        res[f"n_{name}"] = k
        res[f"model_p_{name}"] = float(p[mask].mean()) if k else float("nan")
        res[f"data_p_{name}"] = float((nxt[mask] == tri.c).mean()) if k else float("nan")
        res[f"k_{name}"] = int((nxt[mask] == tri.c).sum())
    res["p_value"] = fisher_greater(res["k_with"], res["n_with"], res["k_without"],
                                    res["n_without"])
    return res


def lifts(
    model,
    train_ids,
    held_ids,
    exclude=(),
    n_frequent: int = 250,
    support_tokens: int = 300_000,
    held_tokens: int = 200_000,
    per_head: int = 3,
    support=None,
) -> list[tuple[SkipTrigram, dict]]:
    """Skip-trigrams read off the weights and their held-out measurement, as the lesson shows them.

    The ``n_frequent`` most frequent tokens of ``train_ids`` are the candidates; the support that a
    triple needs is counted in the first ``support_tokens`` training tokens; the lift is measured
    on the first ``held_tokens`` held-out tokens (``support``: that count, computed already, as
    :func:`skip_trigrams` takes it). Returns ``[(triple, held_out_lift dict)]``.
    """
    counts = np.bincount(np.asarray(train_ids, dtype=np.int64), minlength=model.cfg.d_vocab)
    frequent = np.argsort(-counts, kind="stable")[:n_frequent]
    tris = skip_trigrams(
        model, frequent, np.asarray(train_ids)[:support_tokens], per_head=per_head,
        exclude=exclude, support=support,
    )
    windows, lp = held_out_logprobs(model, np.asarray(held_ids)[:held_tokens], [t.c for t in tris],
                                    at={t.a for t in tris})
    return [(t, held_out_lift(windows, lp, t)) for t in tris]


def _count(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"{name} must be a non-negative integer count, got {v!r}")
    return int(v)


def fisher_greater(k_with: int, n_with: int, k_without: int, n_without: int) -> float:
    """One-sided Fisher exact p-value that C follows A more often with B earlier than without.

    ``k_with`` of ``n_with`` positions with B earlier were followed by C, ``k_without`` of
    ``n_without`` without. The null hypothesis: B makes no difference, so the ``k_with +
    k_without`` positions followed by C are a random draw of the ``n_with + n_without``
    positions. The p-value is the chance under the null that at least ``k_with`` of them fall among
    the positions with B (a hypergeometric tail); 1.0 when either group is empty.
    """
    k1, n1 = _count("k_with", k_with), _count("n_with", n_with)
    k0, n0 = _count("k_without", k_without), _count("n_without", n_without)
    if k1 > n1 or k0 > n0:
        raise ValueError(f"a count of C exceeds its positions: {k1} of {n1}, {k0} of {n0}")
    if n1 == 0 or n0 == 0:
        return 1.0
    total, hits = n1 + n0, k1 + k0

    def log_choose(n, k):
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    logs = [log_choose(hits, x) + log_choose(total - hits, n1 - x) - log_choose(total, n1)
            for x in range(k1, min(hits, n1) + 1)]
    if not logs:
        return 0.0
    top = max(logs)
    return float(min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs)))


def confirmed(result: dict, min_n: int = 30, factor: float = 2.0, alpha: float = 0.05,
              n_tests: int = 1) -> bool:
    """The rule that calls a skip-trigram confirmed in held-out text (``result`` from
    :func:`held_out_lift`):

    * A occurs at least ``min_n`` times with B earlier and ``min_n`` times without;
    * the model gives C at least ``factor`` times the probability with B than without;
    * the data agree beyond chance: the one-sided Fisher exact p-value (:func:`fisher_greater`,
      against "B earlier makes no difference to how often C follows A") is below
      ``alpha / n_tests``, a Bonferroni correction for the ``n_tests`` triples tested together.

    A ``result`` without ``p_value`` (the six keys of a held-out test alone) gets it from its rates
    and counts.
    """
    if isinstance(n_tests, bool) or not isinstance(n_tests, (int, np.integer)) or n_tests < 1:
        raise ValueError(f"n_tests must be a positive integer, got {n_tests!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    if result["n_with"] < min_n or result["n_without"] < min_n:
        return False
    p = result.get("p_value")
    if p is None:
        ks = [round(result[f"data_p_{g}"] * result[f"n_{g}"]) for g in ("with", "without")]
        p = fisher_greater(ks[0], result["n_with"], ks[1], result["n_without"])
    return bool(result["model_p_with"] >= factor * result["model_p_without"]
                and p < alpha / n_tests)


def windows_of(ids, n_ctx: int) -> np.ndarray:
    """``ids`` cut into non-overlapping windows ``[n, n_ctx]`` (int64), the last partial one
    dropped, as :func:`held_out_logprobs` cuts them."""
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids) // n_ctx
    if n == 0:
        raise ValueError(f"need at least n_ctx = {n_ctx} token ids, got {len(ids)}")
    return ids[: n * n_ctx].reshape(n, n_ctx)


def lift_ratio(result: dict) -> float:
    """The model's lift of a held-out test: ``model_p_with / model_p_without``."""
    return float(result["model_p_with"] / result["model_p_without"])
