"""Checks of assignment 2 (build a head): a QK circuit that attends to the previous position, an OV
circuit that copies, and the full circuits and accuracy of the head the student built.

Shared helpers (messages, array comparison, small models) live in :mod:`toymodel.grading.core`.
"""

from __future__ import annotations

import numpy as np
import torch

from .core import (
    CheckFailed,
    _fail,
    _not_answered,
    as_array,
    blank_model,
    check_array,
    check_close,
    head_weights,
    random_tokens,
)
from .head_by_hand import check_full_ov, check_full_qk

__all__ = [
    "check_previous_token_qk",
    "check_copying_ov",
    "check_built_head",
    "check_model_full_qk",
    "check_model_full_ov",
    "check_prediction_accuracy",
    "accuracy_by_position",
    "check_strength_evidence",
]


def check_previous_token_qk(model, min_weight: float = 0.9):
    """Every position ``p >= 1`` must put at least ``min_weight`` on position ``p - 1``."""
    w = head_weights(model)
    if not np.any(w["W_Q"]) or not np.any(w["W_K"]):
        _fail("W_Q or W_K is still all zeros: set_qk has not set the head's QK weights.")
    tokens = random_tokens(model)
    with torch.no_grad():
        pattern = model.run_with_pattern(tokens.to(model.W_E.device))[1][:, 0].cpu().numpy()
    pos_qk = w["W_pos"] @ w["W_Q"] @ w["W_K"].T @ w["W_pos"].T
    for p in range(1, model.cfg.n_ctx):
        prev = pattern[:, p, p - 1]
        if prev.min() < min_weight:
            seq = int(prev.argmin())
            top = int(pattern[seq, p].argmax())
            msg = (f"destination position {p} puts weight {prev.min():.3f} on position {p - 1} "
                   f"(it needs at least {min_weight}); it attends most to position {top}.")
            if p + 1 < model.cfg.n_ctx and pos_qk[p].argmax() == p + 1:
                msg += (" Your QK circuit favours the *next* position (p + 1), which the causal "
                        "mask hides: the query side (W_Q) should read the destination's "
                        "position and the key side (W_K) the source's; are they swapped?")
            elif np.allclose(pos_qk, 0):
                msg += (" The position block of the QK circuit is zero: read the position "
                        "dimensions, where W_pos writes.")
            elif prev.min() > 0.3:
                msg += " The right position wins but not by enough: raise the strength."
            _fail(msg)


def check_copying_ov(model):
    """The full OV circuit must copy: each token's own logit is the largest in its row."""
    w = head_weights(model)
    full = w["W_E"] @ w["W_V"] @ w["W_O"] @ w["W_U"]
    if np.allclose(full, 0):
        _fail("the full OV circuit W_E W_V W_O W_U is zero: the head writes nothing W_U reads. "
              "Read the token block with W_V and write into the output block with W_O.")
    mine = np.diag(full)
    others = np.where(np.eye(len(full), dtype=bool), -np.inf, full).max(1)
    bad = np.flatnonzero(mine <= others + 1e-6)
    if bad.size:
        t = int(bad[0])
        _fail(f"attending to token {t} raises logit {int(full[t].argmax())} the most, not "
              f"logit {t}: in {bad.size} of {len(full)} rows of the full OV circuit the "
              "diagonal entry is not the largest.")


def check_built_head(set_qk, set_ov, d_vocab: int = 7, n_ctx: int = 9):
    """Run the student's ``set_qk(model)`` and ``set_ov(model)`` on a fresh :func:`blank_model`
    of the given sizes; the model must then predict the previous token everywhere."""
    for f, n in ((set_qk, "set_qk"), (set_ov, "set_ov")):
        if _not_answered(f) or not callable(f):
            _fail(f"{n} should be a function; define it with `def {n}(model, ...)`.")
    model = blank_model(d_vocab, n_ctx)
    try:
        set_qk(model)
        set_ov(model)
    except Exception as err:
        _fail(f"on a model with d_vocab={d_vocab}, n_ctx={n_ctx}: {type(err).__name__}: {err}")
    where = f"on a model with d_vocab={d_vocab} and n_ctx={n_ctx}: "
    try:
        check_previous_token_qk(model)
        check_copying_ov(model)
    except CheckFailed as err:
        _fail(where + str(err))
    tokens = random_tokens(model, 200, seed=5)
    with torch.no_grad():
        pred = model(tokens).argmax(-1)
    acc = float((pred[:, 1:] == tokens[:, :-1]).double().mean())
    if acc < 1:
        _fail(where + f"the previous token is predicted at only {acc:.1%} of positions.")


def check_model_full_qk(full_qk, model, name: str = "full_qk", embed: str = "W_E"):
    """``full_qk`` must be ``E W_Q W_K^T E^T`` with ``E`` = the model's ``W_E`` (or ``W_pos``)."""
    full_qk = as_array(full_qk, name)
    w = head_weights(model)
    check_full_qk(full_qk, w[embed], w["W_Q"], w["W_K"], name=name)


def check_model_full_ov(full_ov, model, name: str = "full_ov"):
    """``full_ov`` must be the model's ``W_E W_V W_O W_U`` (row = attended token)."""
    full_ov = as_array(full_ov, name)
    w = head_weights(model)
    check_full_ov(full_ov, w["W_E"], w["W_V"], w["W_O"], w["W_U"], name=name)


def check_prediction_accuracy(accuracy, model, tokens, name: str = "accuracy"):
    """Fraction of positions ``1..`` whose prediction is the previous token, on ``tokens``."""
    with torch.no_grad():
        pred = model(tokens.to(model.W_E.device)).argmax(-1).cpu()
    right = float((pred[:, 1:] == tokens[:, :-1]).double().mean())
    check_close(accuracy, right, name, atol=1e-9, wrong=[
        ("it compares with the current token; the job is the previous one.",
         float((pred[:, 1:] == tokens[:, 1:]).double().mean())),
        ("it includes position 0, which has no previous token.",
         float((pred[:, :-1] == tokens[:, :-1]).double().mean())),
    ])
    if right < 1:
        _fail(f"{name} is computed correctly, but the model is right on only {right:.1%} of "
              "positions: fix the head (questions 1 and 3) first.")


# --------------------------------------------------------------------------------------------
# The open-ended question: how strong must the QK circuit be?
# --------------------------------------------------------------------------------------------


def accuracy_by_position(set_qk, set_ov, strength: float, tokens, d_vocab: int, n_ctx: int,
                         offset: int = 1, first: int = 1) -> np.ndarray:
    """Previous-token accuracy at each position ``first .. n_ctx - 1`` ``[n_ctx - first]`` of a
    fresh :func:`blank_model` built by ``set_qk(model, strength)`` and ``set_ov(model)``
    (``offset=0``: compared with the current token, a known slip)."""
    model = blank_model(d_vocab, n_ctx)
    set_qk(model, strength)
    set_ov(model)
    tokens = torch.as_tensor(tokens)
    with torch.no_grad():
        pred = model(tokens).argmax(-1)
    p = torch.arange(max(first, offset), n_ctx)
    hit = (pred[:, p] == tokens[:, p - offset]).double().mean(0).numpy()
    return hit if first >= offset else np.concatenate([[np.nan], hit])


def check_strength_evidence(evidence, set_qk, set_ov, strengths, tokens, d_vocab: int,
                            n_ctx: int, weakest_position=None, enough=None,
                            name: str = "evidence"):
    """The evidence of question 6: ``[len(strengths), n_ctx - 1]``, row ``i`` the previous-token
    accuracy at positions ``1 .. n_ctx - 1`` of a model built with ``strengths[i]``; and, when
    given, the conclusions ``weakest_position`` (the position with the lowest accuracy at the
    smallest strength) and ``enough`` (the smallest strength at which every position is right,
    or None if none is)."""
    for f, n in ((set_qk, "set_qk"), (set_ov, "set_ov")):
        if _not_answered(f) or not callable(f):
            _fail(f"{n} should be a function: answer questions 1 and 3 first.")
    s = as_array(strengths, "strengths").ravel()
    if s.size < 3 or np.any(np.diff(s) <= 0):
        _fail("strengths should be at least three numbers in increasing order.")
    rows = [accuracy_by_position(set_qk, set_ov, float(v), tokens, d_vocab, n_ctx) for v in s]
    expected = np.array(rows)
    got = as_array(evidence, name)
    if got.shape == (s.size, n_ctx):
        _fail(f"{name} has shape {got.shape}, expected {expected.shape}: leave out position 0, "
              "which has no previous token.")
    current = np.array([accuracy_by_position(set_qk, set_ov, float(v), tokens, d_vocab, n_ctx,
                                             offset=0) for v in s])
    check_array(got, expected, name, mistakes=[
        ("compares each prediction with the current token; the job is the previous one.",
         current),
        ("is transposed: one row per strength, one column per position 1 .. n_ctx - 1.",
         expected.T),
        ("holds the fraction of wrong predictions; the question asks for the accuracy.",
         1 - expected),
    ])
    if weakest_position is not None:
        low = expected[0]
        worst = [int(p) + 1 for p in np.flatnonzero(low == low.min())]
        if _not_answered(weakest_position):
            _fail("weakest_position is still `...`: read it off the first row of your evidence.")
        if weakest_position not in worst:
            _fail(f"weakest_position = {weakest_position!r} does not follow from your evidence: "
                  f"at strength {s[0]:.3g} (the first row) the lowest accuracy is "
                  f"{low.min():.3g}, and position {weakest_position!r} does not have it; "
                  "column k of the evidence is position k + 1.")
    if enough is not None or weakest_position is not None:
        full = [float(v) for v, row in zip(s, expected, strict=True) if row.min() == 1.0]
        right = full[0] if full else None
        if _not_answered(enough):
            _fail("enough is still `...`: the smallest of your strengths at which every "
                  "position is right (None if none is).")
        if right is None:
            if enough is not None:
                _fail(f"enough = {enough!r}, but at none of your strengths is every position "
                      "right: set it to None, or extend the strengths.")
        else:
            try:
                same = enough is not None and bool(np.isclose(float(enough), right))
            except (TypeError, ValueError):
                same = False
            if not same:
                _fail(f"enough = {enough!r} does not follow from your evidence: it should be "
                      "the strength of the first row (the smallest strength) whose accuracies "
                      "are all 1.")
