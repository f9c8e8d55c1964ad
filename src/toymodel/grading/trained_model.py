"""Checks of assignment 3 (read a trained model): the query's row of the full QK circuit, which key
wins, the copying score and OV top-1 of the full OV circuit.

Shared helpers (messages, array comparison, small models) live in :mod:`toymodel.grading.core`.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import circuits
from .core import (
    _fail,
    _not_answered,
    as_array,
    check_array,
    check_close,
    check_value,
    check_verdict,
    head_weights,
)

__all__ = [
    "query_row",
    "check_query_row",
    "check_winning_key",
    "key_token_score",
    "copying_score_of",
    "check_copying_score",
    "top1_of",
    "check_top1",
    "attention_on",
    "check_min_attention",
]


def query_row(model, query: int, n_numbers: int) -> np.ndarray:
    """The query token's row of the full QK circuit over the number tokens ``[n_numbers]``."""
    w = head_weights(model)
    return circuits.full_qk_circuit(w["W_E"], w["W_Q"], w["W_K"])[query, :n_numbers]


def check_query_row(row, model, query: int, n_numbers: int, name: str = "row"):
    """The query token's scores for every number token as a key (row of the full QK circuit)."""
    row = as_array(row, name)
    w = head_weights(model)
    full = circuits.full_qk_circuit(w["W_E"], w["W_Q"], w["W_K"])
    check_array(row, full[query, :n_numbers], name, mistakes=[
        ("is the query token's column of the full QK circuit: its scores as a key. The query "
         "(destination) is the row: full_qk[query, :n_numbers].", full[:n_numbers, query]),
        (f"includes the query token itself; keep the {n_numbers} number tokens only.",
         full[query]),
    ])


def key_token_score(model, query: int, n_numbers: int) -> np.ndarray:
    """The part of the query's score for a key that depends on the key's token ``[n_numbers]``.

    The query sits at the last position, so it is ``tok_tok[query, t] + pos_tok[last, t]``: the
    row of the full QK circuit plus ``W_pos[-1] W_Q W_K^T W_E^T`` (as in lesson 02).
    """
    w = head_weights(model)
    pos_tok = w["W_pos"][-1] @ w["W_Q"] @ w["W_K"].T @ w["W_E"].T
    return query_row(model, query, n_numbers) + pos_tok[:n_numbers]


def check_winning_key(key, model, keys, query: int, name: str = "winner"):
    """The key token (among ``keys``) with the highest token-dependent score for ``query``."""
    row = key_token_score(model, query, max(keys) + 1)
    right = int(keys[int(np.argmax(row[list(keys)]))])
    wrong = {}
    lowest = int(keys[int(np.argmin(row[list(keys)]))])
    if lowest != right:
        wrong[lowest] = "that key gets the *lowest* score; the highest score wins the softmax."
    if max(keys) != right:
        wrong[max(keys)] = ("that is the largest number, the answer of a max head; read the "
                            "query's row of the full QK circuit." + (
                                " It even gets the lowest score." if max(keys) == lowest else ""))
    check_value(key, right, name, wrong=wrong)


def copying_score_of(full_ov) -> float:
    """``sum(eig) / sum(|eig|)`` of a square matrix (the copying score of a full OV circuit)."""
    eig = np.linalg.eigvals(as_array(full_ov, "full_ov"))
    return float(eig.sum().real / np.abs(eig).sum())


def check_copying_score(value, full_ov, name: str = "copy_score"):
    eig = np.linalg.eigvals(as_array(full_ov, "full_ov"))
    right = float(eig.sum().real / np.abs(eig).sum())
    check_close(value, right, name, rtol=1e-4, wrong=[
        ("that uses |eigenvalues| on top too; the numerator is the plain sum of the "
         "eigenvalues (its real part), so the sign shows.", 1.0),
        ("that is the trace divided by the sum of the absolute values of the entries, not of "
         "the eigenvalues.", float(np.trace(as_array(full_ov, "full_ov"))
                                   / np.abs(as_array(full_ov, "full_ov")).sum())),
    ])


def top1_of(full_ov, n_numbers: int) -> float:
    """Fraction of the first ``n_numbers`` rows whose largest entry (among the first
    ``n_numbers`` columns) is on the diagonal."""
    m = as_array(full_ov, "full_ov")[:n_numbers, :n_numbers]
    return float((m.argmax(1) == np.arange(n_numbers)).mean())


def check_top1(value, full_ov, n_numbers: int, name: str = "top1"):
    m = as_array(full_ov, "full_ov")
    right = top1_of(m, n_numbers)
    wrong = [
        ("that takes the largest entry of each *column*; the row is the attended token, so "
         "look along each row.", top1_of(m.T, n_numbers)),
        ("that keeps the query token's row and column; use the number tokens only.",
         top1_of(m, len(m))),
    ]
    check_close(value, right, name, atol=1e-9, wrong=[w for w in wrong if w[1] != right])


# --------------------------------------------------------------------------------------------
# Inputs for hidden checks
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The open-ended question: does the query attend to the smallest number?
# --------------------------------------------------------------------------------------------


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


def check_min_attention(on_min, model, tokens, n_numbers: int, supports=None,
                        name: str = "on_min"):
    """The evidence of question 6: for each list of ``tokens`` ``[n, list_len + 1]`` (numbers, then
    the query token), the query's attention weight on the position of the list's smallest number
    ``[n]``; and, when given, ``supports``: whether that weight is above one half on average."""
    if _not_answered(tokens):
        _fail("my_lists is still `...`: build your test lists first.")
    t = as_array(tokens, "my_lists")
    if t.ndim != 2 or t.shape[1] != model.cfg.n_ctx:
        _fail(f"my_lists should be [n, {model.cfg.n_ctx}]: {model.cfg.n_ctx - 1} numbers and "
              f"the query token, got shape {t.shape}.")
    if t.shape[0] < 20:
        _fail(f"my_lists has {t.shape[0]} lists: use at least 20, or the mean says little.")
    if np.any(t != np.round(t)) or np.any(t[:, :-1] < 0) or np.any(t[:, :-1] >= n_numbers):
        _fail(f"the numbers of my_lists must be integers from 0 to {n_numbers - 1}.")
    if np.any(t[:, -1] != n_numbers):
        _fail(f"every list must end with the query token {n_numbers}.")
    tokens = torch.as_tensor(t.astype(np.int64))
    expected = attention_on(model, tokens)
    check_array(on_min, expected, name, mistakes=[
        ("is the weight on the *largest* number; the hypothesis is about the smallest.",
         attention_on(model, tokens, "max")),
        ("reads the first position's row: the query is the last position (row -1).",
         attention_on(model, tokens, dest=0)),
    ])
    if supports is not None:
        mean = float(expected.mean())
        check_verdict(supports, mean > 0.5, "supports",
                      f"the mean weight on the smallest number over your lists is {mean:.3g}.")
