"""Checks of assignment 3 (read a trained model): the query's row of the full QK circuit, which key
wins, the copying score and OV top-1 of the full OV circuit.

Shared helpers (messages, array comparison, small models) live in :mod:`toymodel.grading.core`.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import circuits
from ._answers import attention_on, copying_score_of, key_token_score, top1_of
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
    "check_query_row",
    "check_winning_key",
    "check_copying_score",
    "check_copying_sign",
    "check_top1",
    "check_min_attention",
]


def check_query_row(row, model, query: int, n_numbers: int, name: str = "row"):
    """The query token's scores for every number token as a key (row of the full QK circuit)."""
    if not hasattr(model, "cfg"):
        _fail(f"model should be the trained model from the top of the notebook, got "
              f"{type(model).__name__}: run the notebook from the top.")
    row = as_array(row, name)
    w = head_weights(model)
    full = circuits.full_qk_circuit(w["W_E"], w["W_Q"], w["W_K"])
    check_array(row, full[query, :n_numbers], name, mistakes=[
        ("is the query token's column of the full QK circuit: its scores as a key. The query "
         "(destination) is the row: full_qk[query, :n_numbers].", full[:n_numbers, query]),
        (f"includes the query token itself; keep the {n_numbers} number tokens only.",
         full[query]),
    ])


def _square(full_ov, name: str = "full_ov", question: str = "question 3") -> np.ndarray:
    m = as_array(full_ov, name)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        _fail(f"{name} (your answer to {question}) should be a square matrix [d_vocab, d_vocab], "
              f"got shape {m.shape}: fix {question} first; this check needs it.")
    return m


def check_winning_key(key, model, keys, query: int, name: str = "winner"):
    """The key token (among ``keys``) with the highest token-dependent score for ``query``."""
    keys = [int(k) for k in keys]
    row = key_token_score(model, query, max(keys) + 1)
    right = int(keys[int(np.argmax(row[keys]))])
    row_only = key_token_score(model, query, max(keys) + 1, with_position=False)
    by_row = int(keys[int(np.argmax(row_only[keys]))])
    wrong = {}
    lowest = int(keys[int(np.argmin(row[keys]))])
    if lowest != right:
        wrong[lowest] = "that key gets the *lowest* score; the highest score wins the softmax."
    if max(keys) != right:
        wrong[max(keys)] = ("that is the largest number, the answer of a max head; read the "
                            "query's row of the full QK circuit." + (
                                " It even gets the lowest score." if max(keys) == lowest else ""))
    if by_row != right:
        wrong[by_row] = ("that key wins on the query's row alone (question 1, tok_tok); the "
                         "query sits at the last position, so add the pos_tok term "
                         "W_pos[-1] W_Q W_K^T W_E^T before comparing." + (
                             " (It is also the largest number, the answer of a max head.)"
                             if by_row == max(keys) else ""))
    for i in range(len(keys)):
        if i not in keys and keys[i] == right:
            wrong.setdefault(i, f"that is the *position* of the winner in keys (keys[{i}]); "
                             "return the token itself, keys[i].")
    check_value(key, right, name, wrong=wrong)


def check_copying_score(value, full_ov, name: str = "copy_score"):
    m = _square(full_ov)
    right = copying_score_of(m)
    eig = np.linalg.eigvals(m)
    check_close(value, right, name, rtol=1e-4, wrong=[
        ("that uses |eigenvalues| on top too; the numerator is the plain sum of the "
         "eigenvalues (its real part), so the sign shows.", 1.0),
        ("that is the trace divided by the sum of the absolute values of the entries, not of "
         "the eigenvalues.", float(np.trace(m) / np.abs(m).sum())),
        ("that is the sum of the eigenvalues alone; divide it by the sum of their absolute "
         "values.", float(eig.sum().real)),
    ])


def check_copying_sign(sign, full_ov, name: str = "copying_sign"):
    """``+1`` when the full OV circuit's copying score is positive, ``-1`` otherwise."""
    m = _square(full_ov)
    right = 1 if copying_score_of(m) > 0 else -1
    check_value(sign, right, name, wrong={
        -right: "look at the sign of the copying score: positive means the head copies."})


def check_top1(value, full_ov, n_numbers: int, name: str = "top1"):
    m = _square(full_ov)
    right = top1_of(m, n_numbers)
    wrong = [
        ("that takes the largest entry of each *column*; the row is the attended token, so "
         "look along each row.", top1_of(m.T, n_numbers)),
        ("that keeps the query token's row and column; use the number tokens only.",
         top1_of(m, len(m))),
        (f"that is the *number* of numbers that are their own top logit; divide by "
         f"n_numbers = {n_numbers} for the fraction.", right * n_numbers),
    ]
    check_close(value, right, name, atol=1e-9, wrong=[w for w in wrong if w[1] != right])


# --------------------------------------------------------------------------------------------
# Inputs for hidden checks
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The open-ended question: does the query attend to the smallest number?
# --------------------------------------------------------------------------------------------


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
