"""Checks of assignment 2 (build a head): a QK circuit that attends to the previous position, an OV
circuit that copies, and the full circuits and accuracy of the head the student built.

Shared helpers (messages, array comparison, small models) live in :mod:`toymodel.grading.core`.
"""

from __future__ import annotations

import numpy as np
import torch

from ._answers import accuracy_by_position
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
    "check_set_qk",
    "check_set_ov",
    "check_strength_evidence",
]


def _model_arg(model, what: str = "model"):
    if _not_answered(model) or model is None or not hasattr(model, "cfg"):
        _fail(f"{what} should be the model from the top of the notebook (grading.blank_model), "
              f"got {type(model).__name__}: run the notebook from the top.")


def check_previous_token_qk(model, min_weight: float = 0.9):
    """Every position ``p >= 1`` must put at least ``min_weight`` on position ``p - 1``."""
    _model_arg(model)
    w = head_weights(model)
    for k in ("W_Q", "W_K"):
        if not np.all(np.isfinite(w[k])):
            _fail(f"{k} contains NaN or infinite values: is `strength` NaN or infinite? Use a "
                  "finite number such as the default 20.0.")
    if not np.any(w["W_Q"]) or not np.any(w["W_K"]):
        _fail("W_Q or W_K is still all zeros: set_qk has not set the head's QK weights.")
    tokens = random_tokens(model)
    with torch.no_grad():
        pattern = model.run_with_pattern(tokens.to(model.W_E.device))[1][:, 0].cpu().numpy()
    if not np.all(np.isfinite(pattern)):
        _fail("the attention pattern contains NaN: a weight of the head is too large or NaN.")
    pos_qk = w["W_pos"] @ w["W_Q"] @ w["W_K"].T @ w["W_pos"].T
    for p in range(1, model.cfg.n_ctx):
        prev = pattern[:, p, p - 1]
        if not prev.min() >= min_weight:
            seq = int(prev.argmin())
            top = int(pattern[seq, p].argmax())
            msg = (f"destination position {p} puts weight {prev.min():.3f} on position {p - 1} "
                   f"(it needs at least {min_weight}); it attends most to position {top}.")
            if top == p and pos_qk[p].argmax() == p:
                msg += (" Your QK circuit puts the largest score on the diagonal (each position "
                        "attends to itself): the key of position p - 1, not of p, should match "
                        "the query of position p; shift the key side by one.")
            elif p + 1 < model.cfg.n_ctx and pos_qk[p].argmax() == p + 1:
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
    _model_arg(model)
    w = head_weights(model)
    full = w["W_E"] @ w["W_V"] @ w["W_O"] @ w["W_U"]
    if not np.all(np.isfinite(full)):
        _fail("the full OV circuit contains NaN or infinite values: check the numbers set_ov "
              "writes into W_V and W_O.")
    if np.allclose(full, 0):
        _fail("the full OV circuit W_E W_V W_O W_U is zero: the head writes nothing W_U reads. "
              "Read the token block with W_V and write into the output block with W_O.")
    mine = np.diag(full)
    others = np.where(np.eye(len(full), dtype=bool), -np.inf, full).max(1)
    bad = np.flatnonzero(mine <= others + 1e-6)
    lowest = np.where(np.eye(len(full), dtype=bool), np.inf, full).min(1)
    if bad.size and np.all(mine < lowest - 1e-6):
        _fail(f"the diagonal of the full OV circuit is the *smallest* entry of every row (token "
              f"0: {mine[0]:.3g}): the head suppresses the attended token instead of copying "
              "it. A sign is wrong: W_O (or W_V) should write +1, not -1.")
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
    check_set_qk(set_qk, d_vocab, n_ctx)
    check_set_ov(set_ov, d_vocab, n_ctx)
    model = blank_model(d_vocab, n_ctx)
    set_qk(model)
    set_ov(model)
    where = f"on a model with d_vocab={d_vocab} and n_ctx={n_ctx}: "
    tokens = random_tokens(model, 200, seed=5)
    with torch.no_grad():
        pred = model(tokens).argmax(-1)
    acc = float((pred[:, 1:] == tokens[:, :-1]).double().mean())
    if acc < 1:
        _fail(where + f"the previous token is predicted at only {acc:.1%} of positions.")


#: The sizes of the notebook's model: a function that works there only has them typed in.
NOTEBOOK_SIZES = (5, 6)


def _run_setter(setter, name: str, d_vocab: int, n_ctx: int):
    """A fresh blank model of these sizes with ``setter`` applied, or a message naming why not."""
    if _not_answered(setter) or not callable(setter):
        _fail(f"{name} should be a function; define it with `def {name}(model, ...)`.")
    model = blank_model(d_vocab, n_ctx)
    try:
        setter(model)
    except Exception as err:  # noqa: BLE001 - the student's code raised: say so, and where
        hint = ""
        if isinstance(err, IndexError) and (d_vocab, n_ctx) != NOTEBOOK_SIZES:
            hint = (" It indexes past the model's size: read the sizes from the model, "
                    "`V, C = model.cfg.d_vocab, model.cfg.n_ctx`, instead of typing numbers.")
        _fail(f"{name}(model) on a model with d_vocab={d_vocab}, n_ctx={n_ctx} raised "
              f"{type(err).__name__}: {err}.{hint}")
    return model


def _hard_coded(setter, name: str, check, d_vocab: int, n_ctx: int, err: CheckFailed):
    """Re-raise ``err``, naming hard-coded sizes when ``setter`` passes on the notebook's model."""
    if (d_vocab, n_ctx) != NOTEBOOK_SIZES:
        try:
            check(_run_setter(setter, name, *NOTEBOOK_SIZES))
        except CheckFailed:
            pass
        else:
            _fail(f"{name} works on the notebook's model (d_vocab=5, n_ctx=6) but not on one "
                  f"with d_vocab={d_vocab}, n_ctx={n_ctx}: it has the notebook's sizes typed in. "
                  "Read them from the model, `V, C = model.cfg.d_vocab, model.cfg.n_ctx`. "
                  f"(On the other model: {err})")
    _fail(f"on a model with d_vocab={d_vocab} and n_ctx={n_ctx}: {err}")


def check_set_qk(set_qk, d_vocab: int = 4, n_ctx: int = 9):
    """``set_qk(model)`` on a fresh blank model of other sizes must make every position attend to
    the previous one; names sizes typed in rather than read from ``model.cfg``."""
    model = _run_setter(set_qk, "set_qk", d_vocab, n_ctx)
    try:
        check_previous_token_qk(model)
    except CheckFailed as err:
        _hard_coded(set_qk, "set_qk", check_previous_token_qk, d_vocab, n_ctx, err)


def check_set_ov(set_ov, d_vocab: int = 8, n_ctx: int = 3):
    """``set_ov(model)`` on a fresh blank model of other sizes must copy (see
    :func:`check_copying_ov`); names sizes typed in rather than read from ``model.cfg``."""
    model = _run_setter(set_ov, "set_ov", d_vocab, n_ctx)
    try:
        check_copying_ov(model)
    except CheckFailed as err:
        _hard_coded(set_ov, "set_ov", check_copying_ov, d_vocab, n_ctx, err)


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
    _model_arg(model)
    with torch.no_grad():
        pred = model(tokens.to(model.W_E.device)).argmax(-1).cpu()
    right = float((pred[:, 1:] == tokens[:, :-1]).double().mean())
    check_close(accuracy, right, name, atol=1e-9, wrong=[
        ("it compares with the current token; the job is the previous one.",
         float((pred[:, 1:] == tokens[:, 1:]).double().mean())),
        ("it includes position 0, which has no previous token.",
         float((pred[:, :-1] == tokens[:, :-1]).double().mean())),
        (f"that is the *number* of right positions ({int(round(right * tokens[:, 1:].numel()))} "
         f"of {tokens[:, 1:].numel()}); the accuracy is the fraction, so divide by the count "
         "(or take the mean).", right * tokens[:, 1:].numel()),
    ])
    if right < 1:
        _fail(f"{name} is computed correctly, but the model is right on only {right:.1%} of "
              "positions: fix the head (questions 1 and 3) first.")


# --------------------------------------------------------------------------------------------
# The open-ended question: how strong must the QK circuit be?
# --------------------------------------------------------------------------------------------


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
