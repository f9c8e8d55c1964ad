"""The graders' reference answers: what the checks compare a student's answer with.

Private to the autograder: nothing here is exported by :mod:`toymodel.grading`, the notebooks never
name it, and a student's code that calls one of these functions scores no points on the question it
answers (:mod:`toymodel.grading.own_work` watches every function of this module). The checks of the
other modules call these functions from the package, and the tests build wrong answers with them.

Row-vector convention throughout; float64 numpy results.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import circuits
from .core import as_array, head_weights

__all__ = [
    "reference_pattern",
    "scaled_weights",
    "accuracy_by_position",
    "query_row",
    "key_token_score",
    "copying_score_of",
    "top1_of",
    "attention_on",
    "two_layer_scores",
    "previous_token_score_of",
    "composition_score_of",
    "offset_score_of",
    "layer_offset_scores",
    "side_removed_scores",
    "lm_full_qk",
    "lm_full_ov",
    "read_trigram_of",
    "lift_of",
    "raised_by",
    "LIFT_KEYS",
    "MIN_COUNT",
    "FACTOR",
]

# --------------------------------------------------------------------------------------------
# assignment 1
# --------------------------------------------------------------------------------------------


def reference_pattern(scores, d_head: int, causal: bool = True) -> np.ndarray:
    """The right pattern for raw ``scores`` ``[n_dest, n_src]``."""
    scores = as_array(scores, "scores")
    return circuits.attention_pattern(scores, int(d_head), causal=causal)


def scaled_weights(x, W_Q, W_K, dest: int, src: int, factors, causal: bool = True,
                   scale_keys: bool = False, root: bool = True) -> np.ndarray:
    """Destination ``dest``'s weight on source ``src`` when ``W_Q`` becomes ``c W_Q``, for each
    ``c`` in ``factors`` ``[len(factors)]`` (``scale_keys``: ``W_K`` scaled too, a known slip)."""
    x, W_Q, W_K = as_array(x, "x"), as_array(W_Q, "W_Q"), as_array(W_K, "W_K")
    d_head = W_Q.shape[1] if root else 1
    out = []
    for c in as_array(factors, "factors").ravel():
        k = c if scale_keys else 1.0
        scores = (x @ (c * W_Q)) @ (x @ (k * W_K)).T
        out.append(circuits.attention_pattern(scores, d_head, causal=causal)[dest, src])
    return np.asarray(out, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# assignment 2
# --------------------------------------------------------------------------------------------


def accuracy_by_position(set_qk, set_ov, strength: float, tokens, d_vocab: int, n_ctx: int,
                         offset: int = 1, first: int = 1) -> np.ndarray:
    """Previous-token accuracy at each position ``first .. n_ctx - 1`` ``[n_ctx - first]`` of a
    fresh blank model built by ``set_qk(model, strength)`` and ``set_ov(model)``
    (``offset=0``: compared with the current token, a known slip)."""
    from .core import blank_model

    model = blank_model(d_vocab, n_ctx)
    set_qk(model, strength)
    set_ov(model)
    tokens = torch.as_tensor(tokens)
    with torch.no_grad():
        pred = model(tokens).argmax(-1)
    p = torch.arange(max(first, offset), n_ctx)
    hit = (pred[:, p] == tokens[:, p - offset]).double().mean(0).numpy()
    return hit if first >= offset else np.concatenate([[np.nan], hit])


# --------------------------------------------------------------------------------------------
# assignment 3
# --------------------------------------------------------------------------------------------


def query_row(model, query: int, n_numbers: int) -> np.ndarray:
    """The query token's row of the full QK circuit over the number tokens ``[n_numbers]``."""
    w = head_weights(model)
    return circuits.full_qk_circuit(w["W_E"], w["W_Q"], w["W_K"])[query, :n_numbers]


def key_token_score(model, query: int, n_numbers: int, with_position: bool = True) -> np.ndarray:
    """The part of the query's score for a key that depends on the key's token ``[n_numbers]``:
    ``tok_tok[query, t] + pos_tok[last, t]`` (``with_position=False``: the first term only)."""
    w = head_weights(model)
    pos_tok = w["W_pos"][-1] @ w["W_Q"] @ w["W_K"].T @ w["W_E"].T
    return query_row(model, query, n_numbers) + (pos_tok[:n_numbers] if with_position else 0)


def copying_score_of(full_ov) -> float:
    """``sum(eig) / sum(|eig|)`` of a square matrix (the copying score of a full OV circuit)."""
    eig = np.linalg.eigvals(as_array(full_ov, "full_ov"))
    return float(eig.sum().real / np.abs(eig).sum())


def top1_of(full_ov, n_numbers: int) -> float:
    """Fraction of the first ``n_numbers`` rows whose largest entry (among the first
    ``n_numbers`` columns) is on the diagonal."""
    m = as_array(full_ov, "full_ov")[:n_numbers, :n_numbers]
    return float((m.argmax(1) == np.arange(len(m))).mean())


def attention_on(model, tokens, which: str = "min", dest: int = -1) -> np.ndarray:
    """Weight that position ``dest`` (the query, last) puts on the position(s) holding the
    smallest (``which="min"``) or largest (``"max"``) number of each list ``[n]``."""
    tokens = torch.as_tensor(tokens)
    with torch.no_grad():
        pattern = model.run_with_pattern(tokens)[1][:, 0].double().numpy()  # [n, dest, src]
    numbers = tokens[:, :-1].numpy()
    target = numbers.min(1) if which == "min" else numbers.max(1)
    hold = numbers == target[:, None]
    return (pattern[:, dest, :-1] * hold).sum(1)


# --------------------------------------------------------------------------------------------
# assignment 4
# --------------------------------------------------------------------------------------------


def two_layer_scores(model, resid, layer: int, head: int, resid_k=None) -> np.ndarray:
    """Raw scores ``(resid W_Q) (resid_k W_K)^T`` of one head ``[batch, dest, src]`` (float64;
    ``resid_k`` defaults to ``resid``)."""
    x = as_array(resid, "resid")
    xk = x if resid_k is None else as_array(resid_k, "resid_k")
    attn = model.blocks[layer].attn
    W_Q = attn.W_Q[head].detach().to("cpu", torch.float64).numpy()
    W_K = attn.W_K[head].detach().to("cpu", torch.float64).numpy()
    return (x @ W_Q) @ np.swapaxes(xk @ W_K, -1, -2)


def previous_token_score_of(pattern) -> float:
    """Mean weight of destination ``p`` on source ``p - 1`` over ``p >= 1`` and the batch."""
    pat = as_array(pattern, "pattern")
    p = np.arange(1, pat.shape[-1])
    return float(pat[..., p, p - 1].mean())


def composition_score_of(W_A, W_B) -> float:
    """``||W_A W_B||_F / (||W_A||_F ||W_B||_F)`` of two matrices (float64)."""
    A, B = as_array(W_A, "W_A"), as_array(W_B, "W_B")
    return float(np.linalg.norm(A @ B) / (np.linalg.norm(A) * np.linalg.norm(B)))


def offset_score_of(pattern, shift: int = 1) -> float:
    """Mean weight of the second-copy positions ``q = L + 1 .. 2 L`` of ``BOS, r, r`` patterns
    ``[batch, dest, src]`` on source ``q - L + shift`` (``shift=1``: the induction score, the
    token after the first copy; ``0``: the duplicate token)."""
    from .core import _fail

    pat = as_array(pattern, "pattern")
    n = pat.shape[-1]
    if n % 2 == 0 or n < 3 or pat.ndim < 2 or pat.shape[-2] != n:
        _fail(f"the pattern should be square over 1 + 2 L positions, got shape {pat.shape}.")
    L = (n - 1) // 2
    q = np.arange(L + 1, 2 * L + 1)
    src = q - L + shift
    keep = (src >= 0) & (src <= q)
    return float(pat[..., q[keep], src[keep]].mean())


def layer_offset_scores(model, tokens, layer: int = 1, shift: int = 1,
                        everywhere: bool = False) -> np.ndarray:
    """:func:`offset_score_of` of every head of ``layer`` on ``tokens`` ``[n_heads]``
    (``everywhere``: averaged over every destination with that source, a known slip)."""
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.as_tensor(tokens))
    pats = cache[f"blocks.{layer}.attn.hook_pattern"].detach().to("cpu", torch.float64).numpy()
    if everywhere:
        L = (pats.shape[-1] - 1) // 2
        p = np.arange(L, pats.shape[-1])
        return pats[..., p, p - L + shift].mean((0, -1))
    return np.array([offset_score_of(pats[:, h], shift) for h in range(model.cfg.n_heads)])


def side_removed_scores(model, tokens, head: int, side: str, layer: int = 0,
                        shift: int = 1) -> np.ndarray:
    """Induction scores ``[n_heads]`` of the heads of layer ``layer + 1`` when head ``head`` of
    layer ``layer``'s write is removed from their keys only (``side="k"``), their queries only
    (``"q"``), or neither (``"none"``).

    The write of a head is ``z[:, head] @ W_O[head]`` ``[batch, pos, d_model]``; the later layer
    reads ``resid - write`` on the chosen side and ``resid`` on the other.
    """
    tokens = torch.as_tensor(tokens)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    z = cache[f"blocks.{layer}.attn.hook_z"].detach().to("cpu", torch.float64).numpy()
    W_O = model.blocks[layer].attn.W_O[head].detach().to("cpu", torch.float64).numpy()
    write = z[:, head] @ W_O
    resid = cache[f"blocks.{layer + 1}.hook_resid_pre"].detach().to("cpu", torch.float64).numpy()
    q_side = resid - write if side == "q" else resid
    k_side = resid - write if side == "k" else resid
    d = model.cfg.d_head
    out = []
    for h in range(model.cfg.n_heads):
        s = two_layer_scores(model, q_side, layer + 1, h, resid_k=k_side)
        out.append(offset_score_of(reference_pattern(s, d), shift))
    return np.array(out)


# --------------------------------------------------------------------------------------------
# assignment 5 (skip-trigrams in text order: A the earlier token, B the current one, C next)
# --------------------------------------------------------------------------------------------

#: The keys of a held-out test's result.
LIFT_KEYS = ("n_with", "n_without", "model_p_with", "model_p_without", "data_p_with",
             "data_p_without")
MIN_COUNT = 30  # positions needed with and without A (findings.confirmed's min_n)
FACTOR = 2.0  # the model's probability of C with A must be at least this many times that without


def _lm_weights(model, head: int):
    out = {k: getattr(model, k).detach().to("cpu", torch.float64) for k in ("W_E", "W_pos", "W_U")}
    for k in ("W_Q", "W_K", "W_V", "W_O"):
        out[k] = getattr(model, k).detach().to("cpu", torch.float64)[head]
    return out


def lm_full_qk(model, head: int, position: str = "mean", side: str = "both") -> np.ndarray:
    """Head ``head``'s full QK circuit ``[d_vocab (destination), d_vocab (source)]`` with the mean
    position added to every token (``position="none"``: tokens only; ``"first"``: position 0;
    ``side="query"``/``"key"``: the position added on that side only, a known slip)."""
    w = _lm_weights(model, head)
    p = {"mean": w["W_pos"].mean(0), "first": w["W_pos"][0],
         "none": torch.zeros_like(w["W_pos"][0])}[position]
    xq = w["W_E"] + (p if side in ("both", "query") else 0)
    xk = w["W_E"] + (p if side in ("both", "key") else 0)
    return ((xq @ w["W_Q"]) @ (xk @ w["W_K"]).T).numpy()


def lm_full_ov(model, head: int) -> np.ndarray:
    """Head ``head``'s full OV circuit ``W_E W_V W_O W_U`` ``[d_vocab (source), d_vocab
    (logit)]``."""
    w = _lm_weights(model, head)
    return (w["W_E"] @ w["W_V"] @ w["W_O"] @ w["W_U"]).numpy()


def read_trigram_of(model, head: int, b: int, candidates) -> tuple[int, int]:
    """``(a, c)``: among ``candidates`` (other than ``b``), the earlier token ``a`` with the
    highest score in the current token ``b``'s row of the full QK circuit, and the candidate
    ``c`` that ``a``'s row of the full OV circuit raises most."""
    keep = np.array([int(t) for t in np.asarray(candidates).ravel() if int(t) != int(b)])
    a = int(keep[np.argmax(lm_full_qk(model, head)[int(b), keep])])
    full = np.asarray(candidates).ravel().astype(np.int64)
    c = int(full[np.argmax(lm_full_ov(model, head)[a, full])])
    return a, c


def lift_of(windows, prob_c, a: int, b: int, c: int, slip: str = "") -> dict:
    """The held-out test of ``A ... B -> C`` (keys :data:`LIFT_KEYS`) on ``windows`` ``[n, n_ctx]``
    of token ids, where ``prob_c`` ``[n, n_ctx]`` is the model's probability that ``c`` comes next
    at each position: at every position whose token is ``b`` (with a next token in its window),
    "with" means ``a`` occurs at an earlier position of the window. ``slip`` computes a known
    wrong version: ``"anywhere"`` (A anywhere in the window), ``"late"`` (the probability one
    position late), ``"here"`` (the observed rate of C at B's own position), ``"swap"`` (with and
    without exchanged), ``"roles"`` (A and B exchanged), ``"count"`` (counts of C, not rates)."""
    w = np.asarray(windows, dtype=np.int64)
    p = np.asarray(prob_c, dtype=np.float64)
    if slip == "roles":
        a, b = b, a
    is_a = w == a
    seen = (np.cumsum(is_a, axis=1) - is_a) > 0
    if slip == "anywhere":
        seen = np.repeat(is_a.any(1, keepdims=True), w.shape[1], axis=1)
    at_b = w[:, :-1] == b
    groups = {"with": at_b & seen[:, :-1], "without": at_b & ~seen[:, :-1]}
    if slip == "swap":
        groups = {"with": groups["without"], "without": groups["with"]}
    probs = p[:, 1:] if slip == "late" else p[:, :-1]
    observed = w[:, :-1] if slip == "here" else w[:, 1:]
    out = {}
    for g, mask in groups.items():
        k = int(mask.sum())
        out[f"n_{g}"] = k
        out[f"model_p_{g}"] = float(probs[mask].mean()) if k else float("nan")
        hits = observed[mask] == c
        out[f"data_p_{g}"] = (float(hits.sum()) if slip == "count"
                              else float(hits.mean()) if k else float("nan"))
    return {k: out[k] for k in LIFT_KEYS}


def raised_by(result: dict) -> bool:
    """The assignment's rule, simpler than lesson 05's :func:`toymodel.text.findings.confirmed`
    (which adds a one-sided Fisher test on the data with a Bonferroni correction): enough positions
    in both groups, the model's probability of C at least :data:`FACTOR` times higher with A, and C
    observed more often with A."""
    return bool(result["n_with"] >= MIN_COUNT and result["n_without"] >= MIN_COUNT
                and result["model_p_with"] >= FACTOR * result["model_p_without"]
                and result["data_p_with"] > result["data_p_without"])
