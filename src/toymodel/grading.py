"""Checks for the course assignments that say *what* is wrong, not just "assert failed".

Every ``check_*`` function returns ``None`` when the answer is right and raises
:class:`CheckFailed` (an ``AssertionError``) with a message a student can act on otherwise:

* ``W_QK is still `...`: replace the `...` with your answer.``
* ``W_QK has shape (4, 4), expected (5, 5) ...``
* ``W_QK looks transposed: ... W_K W_Q^T instead of W_Q W_K^T ...``
* ``pattern is missing the 1/sqrt(d_head) scaling ...``
* ``pattern puts weight on future positions: apply the causal mask ...``

The expected value is always computed here, from the same inputs the student used, by the
package's own functions (:mod:`toymodel.circuits`), so a notebook's checks hold no answer. Known
mistakes are recognised by computing them too and comparing: each ``check_*`` names the ones it
knows. Entries off the diagonal are always compared (a diagonal-only check would pass a
transposed answer).

Arrays may be numpy arrays, torch tensors (detached and moved to the CPU) or nested lists; they
are compared as float64 with a tolerance suited to float32 arithmetic. Row-vector convention
throughout (``x @ W``), as in the book.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch

from . import circuits

__all__ = [
    "CheckFailed",
    "as_array",
    "check_array",
    "check_qk_circuit",
    "check_ov_circuit",
    "check_scores",
    "check_pattern",
    "check_head_output",
    "check_standard_route",
    "reference_pattern",
    "random_head",
    "head_weights",
    "blank_model",
    "random_model",
    "random_tokens",
    "random_matrix",
    "check_previous_token_qk",
    "check_copying_ov",
    "check_built_head",
    "check_model_full_qk",
    "check_model_full_ov",
    "check_prediction_accuracy",
    "query_row",
    "check_query_row",
    "check_winning_key",
    "key_token_score",
    "copying_score_of",
    "check_copying_score",
    "top1_of",
    "check_top1",
    "check_full_qk",
    "check_full_ov",
    "check_value",
    "check_close",
    "check_function",
    "two_layer_scores",
    "check_head_pattern",
    "previous_token_score_of",
    "check_previous_token_scores",
    "composition_score_of",
    "check_composition_score",
    "check_k_composition",
    "check_zero_head",
    "check_induction_accuracy",
    "check_ablated_accuracy",
    "preview",
    "summary",
]

RTOL = 1e-4
ATOL = 1e-5


class CheckFailed(AssertionError):
    """An answer did not pass a check; the message says what looks wrong."""


def _fail(message: str):
    raise CheckFailed(message)


def _not_answered(value) -> bool:
    return value is Ellipsis or (isinstance(value, (list, tuple)) and Ellipsis in value)


def as_array(value, name: str) -> np.ndarray:
    """``value`` as a float64 numpy array, or :class:`CheckFailed` saying why it cannot be one."""
    if _not_answered(value):
        _fail(f"{name} is still `...`: replace the `...` with your answer.")
    if value is None:
        _fail(f"{name} is None: did a function forget to `return` its result?")
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        _fail(f"{name} should be an array of numbers, got {type(value).__name__}: {value!r:.80}")
    if not np.all(np.isfinite(arr)):
        _fail(f"{name} contains NaN or infinite values.")
    return arr


def _close(a: np.ndarray, b: np.ndarray, rtol=RTOL, atol=ATOL) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def _scale_between(got: np.ndarray, expected: np.ndarray) -> float | None:
    """The factor ``c`` with ``got == c * expected``, if there is one (else None)."""
    if got.shape != expected.shape or not np.any(expected):
        return None
    c = float((got * expected).sum() / (expected * expected).sum())
    if c != 0 and _close(got, c * expected):
        return c
    return None


def check_array(value, expected, name: str, mistakes: Iterable[tuple[str, object]] = (),
                rtol: float = RTOL, atol: float = ATOL):
    """Compare an answer with the expected array and explain the difference.

    Args:
        value: the student's answer (array, tensor or nested list).
        expected: the right answer, any shape.
        name: how the message calls the answer (``"W_QK"``).
        mistakes: ``(description, wrong_array)`` pairs; when the answer equals one of them the
            message reads ``"{name} {description}"``. Checked in order, before the generic
            diagnoses (transposed, scaled, wrong sign, wrong entries).
        rtol, atol: tolerances of ``np.allclose``.
    """
    got = as_array(value, name)
    expected = as_array(expected, f"the expected {name}")
    if got.shape != expected.shape:
        msg = f"{name} has shape {got.shape}, expected {expected.shape}"
        if got.ndim == 2 and got.shape == expected.shape[::-1]:
            msg += " (rows and columns swapped: is it transposed?)"
        for description, wrong in mistakes:
            if np.shape(wrong) == got.shape and _close(got, as_array(wrong, name), rtol, atol):
                msg += f"; it {description}"
                break
        _fail(msg + ".")
    if _close(got, expected, rtol, atol):
        return
    for description, wrong in mistakes:
        if _close(got, as_array(wrong, name), rtol, atol):
            _fail(f"{name} {description}")
    if got.ndim >= 2 and got.shape[-1] == got.shape[-2] and _close(
        got, np.swapaxes(expected, -1, -2), rtol, atol
    ):
        _fail(f"{name} looks transposed: its rows and columns are swapped.")
    c = _scale_between(got, expected)
    if c is not None:
        if abs(c + 1) < 1e-6:
            _fail(f"{name} has the wrong sign everywhere.")
        _fail(f"{name} is off by a constant factor of about {c:.4g}.")
    wrong = ~np.isclose(got, expected, rtol=rtol, atol=atol)
    idx = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
    where = ", ".join(str(int(i)) for i in idx)
    _fail(
        f"{name} differs from the right answer in {int(wrong.sum())} of {wrong.size} entries; "
        f"the largest difference is at [{where}], where yours is {got[idx]:.4g}."
    )


# --------------------------------------------------------------------------------------------
# The pieces of one head
# --------------------------------------------------------------------------------------------


def check_qk_circuit(W_QK, W_Q, W_K, name: str = "W_QK"):
    """``W_QK`` must equal ``W_Q @ W_K.T`` ``[d_model, d_model]`` (query side first)."""
    W_QK = as_array(W_QK, name)
    W_Q, W_K = as_array(W_Q, "W_Q"), as_array(W_K, "W_K")
    check_array(W_QK, circuits.qk_circuit(W_Q, W_K), name, mistakes=[
        ("equals W_K W_Q^T, the transpose: the query side comes first, W_Q W_K^T "
         "(rows are query directions, columns key directions).", W_K @ W_Q.T),
        ("looks like W_Q^T W_K [d_head, d_head]; the QK circuit acts on the residual stream, "
         "so it is [d_model, d_model]: W_Q W_K^T.", W_Q.T @ W_K),
    ])


def check_ov_circuit(W_OV, W_V, W_O, name: str = "W_OV"):
    """``W_OV`` must equal ``W_V @ W_O`` ``[d_model, d_model]`` (value first, then output)."""
    W_OV = as_array(W_OV, name)
    W_V, W_O = as_array(W_V, "W_V"), as_array(W_O, "W_O")
    check_array(W_OV, circuits.ov_circuit(W_V, W_O), name, mistakes=[
        ("equals (W_V W_O)^T = W_O^T W_V^T, the transpose: with row vectors a source x writes "
         "x W_V W_O, so W_OV = W_V W_O.", (W_V @ W_O).T),
        ("looks like W_O W_V [d_head, d_head]; the OV circuit maps the residual stream to "
         "itself, [d_model, d_model]: W_V W_O.", W_O @ W_V),
    ])


def check_scores(scores, x, W_QK, name: str = "scores", d_head: int | None = None):
    """Raw scores ``x @ W_QK @ x.T`` ``[n_dest, n_src]``: row = destination (query)."""
    scores = as_array(scores, name)
    x, W_QK = as_array(x, "x"), as_array(W_QK, "W_QK")
    expected = x @ W_QK @ x.T
    mistakes = [("is transposed: row i should hold destination i's scores for every source j, "
                 "x_i W_QK x_j^T (you have x_j W_QK x_i^T).", expected.T)]
    if d_head:
        mistakes.append((f"is already divided by sqrt(d_head) = {math.sqrt(d_head):.4g}; this "
                         "question asks for the raw scores, before scaling.",
                         expected / math.sqrt(d_head)))
    check_array(scores, expected, name, mistakes=mistakes)


def _softmax(s, axis=-1):
    s = s - np.max(s, axis=axis, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=axis, keepdims=True)


def _masked(s, lower=False):
    n = s.shape[-1]
    hide = np.tril(np.ones((n, n), bool), -1) if lower else np.triu(np.ones((n, n), bool), 1)
    return np.where(hide, -np.inf, s)


def check_pattern(pattern, scores, d_head: int, causal: bool = True, name: str = "pattern"):
    """Softmax over sources of ``scores / sqrt(d_head)``, with a causal mask when ``causal``.

    Recognises: no mask, no scaling, neither, the mask on the wrong side, softmax over the wrong
    axis, and rows that do not sum to one.
    """
    got = as_array(pattern, name)
    scores = as_array(scores, "scores")
    r = math.sqrt(d_head)
    mask = _masked if causal else (lambda s, lower=False: s)
    expected = _softmax(mask(scores / r))
    mistakes = [
        (f"is missing the 1/sqrt(d_head) scaling: divide the scores by sqrt(d_head) = {r:.4g} "
         "before the softmax.", _softmax(mask(scores))),
        ("uses the softmax over the wrong axis: each row (one destination) must sum to 1 over "
         "its sources.", _softmax(mask(scores / r), axis=-2)),
        ("is transposed: row i is destination i, column j source j.",
         np.swapaxes(expected, -1, -2)),
    ]
    if causal:
        mistakes[1:1] = [
            ("has no causal mask: destination i may only attend to sources j <= i, so the "
             "scores above the diagonal must become -inf before the softmax.",
             _softmax(scores / r)),
            ("has neither the causal mask nor the 1/sqrt(d_head) scaling.", _softmax(scores)),
            ("masks the wrong side: hide the future (j > i, above the diagonal), not the past.",
             _softmax(_masked(scores / r, lower=True))),
        ]
    if got.shape == expected.shape and not _close(got, expected):
        if causal and np.any(np.abs(np.triu(got, 1)) > ATOL) and not any(
            _close(got, as_array(w, name)) for _, w in mistakes
        ):
            _fail(f"{name} puts weight on future positions (above the diagonal): apply the "
                  "causal mask before the softmax.")
        sums = got.sum(-1)
        if not np.allclose(sums, 1, atol=1e-4) and not any(
            _close(got, as_array(w, name)) for _, w in mistakes
        ):
            _fail(f"the rows of {name} should each sum to 1 (a softmax over sources); "
                  f"row sums are {np.round(sums, 4).tolist()}.")
    check_array(got, expected, name, mistakes=mistakes)


def reference_pattern(scores, d_head: int, causal: bool = True) -> np.ndarray:
    """The right pattern for raw ``scores`` ``[n_dest, n_src]`` (used by hidden checks)."""
    scores = as_array(scores, "scores")
    return circuits.attention_pattern(scores, int(d_head), causal=causal)


def check_standard_route(output, x, W_Q, W_K, W_V, W_O, name: str = "standard_output"):
    """The head's output the usual way: ``softmax(mask(q k^T / sqrt(d_head))) v W_O``."""
    output = as_array(output, name)
    x, W_Q, W_K, W_V, W_O = (as_array(a, n) for a, n in (
        (x, "x"), (W_Q, "W_Q"), (W_K, "W_K"), (W_V, "W_V"), (W_O, "W_O")))
    d_head = W_Q.shape[1]
    scores = (x @ W_Q) @ (x @ W_K).T
    values = x @ W_V @ W_O
    expected = reference_pattern(scores, d_head) @ values
    check_array(output, expected, name, mistakes=[
        (f"is missing the 1/sqrt(d_head) scaling (sqrt(d_head) = {math.sqrt(d_head):.4g}).",
         reference_pattern(scores * math.sqrt(d_head), d_head) @ values),
        ("has no causal mask: a destination may only attend to itself and earlier sources.",
         reference_pattern(scores, d_head, causal=False) @ values),
        ("uses the scores transposed, k q^T: row i must be destination i's query against "
         "every key.", reference_pattern(scores.T, d_head) @ values),
    ])


def check_head_output(output, pattern, x, W_OV, name: str = "output"):
    """What the head writes: ``pattern @ (x @ W_OV)`` ``[n_dest, d_model]``."""
    output = as_array(output, name)
    pattern, x, W_OV = as_array(pattern, "pattern"), as_array(x, "x"), as_array(W_OV, "W_OV")
    expected = pattern @ (x @ W_OV)
    check_array(output, expected, name, mistakes=[
        ("uses the pattern transposed: destination i mixes sources with weights pattern[i, j], "
         "so the output is pattern @ (x W_OV).", pattern.T @ (x @ W_OV)),
        ("is x W_OV, what each source would write, before the pattern mixes the sources.",
         x @ W_OV),
        ("uses W_OV transposed: a source x writes x W_OV.", pattern @ (x @ W_OV.T)),
    ])


# --------------------------------------------------------------------------------------------
# End-to-end circuits of a model
# --------------------------------------------------------------------------------------------


def check_full_qk(full_qk, W_E, W_Q, W_K, name: str = "full_qk"):
    """Token-to-token QK circuit ``W_E W_Q W_K^T W_E^T``: row = query token, column = key."""
    full_qk = as_array(full_qk, name)
    W_E, W_Q, W_K = (as_array(a, n) for a, n in ((W_E, "W_E"), (W_Q, "W_Q"), (W_K, "W_K")))
    expected = circuits.full_qk_circuit(W_E, W_Q, W_K)
    check_array(full_qk, expected, name, mistakes=[
        ("is transposed: rows must be the query (destination) token and columns the key "
         "(source) token, W_E W_Q W_K^T W_E^T.", np.swapaxes(expected, -1, -2)),
    ])


def check_full_ov(full_ov, W_E, W_V, W_O, W_U, name: str = "full_ov"):
    """Token-to-logit OV circuit ``W_E W_V W_O W_U``: row = attended token, column = logit."""
    full_ov = as_array(full_ov, name)
    arrays = [as_array(a, n) for a, n in ((W_E, "W_E"), (W_V, "W_V"), (W_O, "W_O"),
                                          (W_U, "W_U"))]
    expected = circuits.full_ov_circuit(*arrays)
    check_array(full_ov, expected, name, mistakes=[
        ("is transposed: in the row convention rows are the attended (source) token and "
         "columns the output logit, W_E W_V W_O W_U (Elhage et al.'s column-convention matrix "
         "is the transpose).", np.swapaxes(expected, -1, -2)),
    ])


# --------------------------------------------------------------------------------------------
# A model's head: built by hand (assignment 2) or trained (assignment 3)
# --------------------------------------------------------------------------------------------


def head_weights(model, head: int = 0) -> dict:
    """One head's weights and the embeddings of a one-layer model, as float64 numpy arrays.

    Returns:
        ``{"W_E" [d_vocab, d_model], "W_pos" [n_ctx, d_model], "W_Q"/"W_K"/"W_V"
        [d_model, d_head], "W_O" [d_head, d_model], "W_U" [d_model, d_vocab]}``.
    """
    out = {}
    for k in ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_U"):
        w = getattr(model, k).detach().to("cpu", torch.float64).numpy()
        out[k] = w[head] if k in ("W_Q", "W_K", "W_V", "W_O") else w
    return out


def blank_model(d_vocab: int = 5, n_ctx: int = 6):
    """A one-layer, one-head model with fixed embeddings and an all-zero head (assignment 2).

    The residual stream has ``d_model = 2 * d_vocab + n_ctx`` dimensions in three blocks:
    token identity in ``[0, d_vocab)`` (``W_E`` is one-hot there), position in
    ``[d_vocab, d_vocab + n_ctx)`` (``W_pos`` is one-hot there), and an output block
    ``[d_vocab + n_ctx, 2 * d_vocab + n_ctx)`` that ``W_U`` reads (one-hot). Nothing but the
    head writes into the output block, so the logits are exactly what the head writes.
    ``d_head = max(d_vocab, n_ctx)``.
    """
    from .model import AttentionOnlyTransformer, ModelConfig

    V, C = int(d_vocab), int(n_ctx)
    cfg = ModelConfig(d_vocab=V, d_model=2 * V + C, d_head=max(V, C), n_heads=1, n_ctx=C)
    model = AttentionOnlyTransformer(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.W_E[:, :V] = torch.eye(V)
        model.W_pos[:, V:V + C] = torch.eye(C)
        model.W_U[V + C:, :] = torch.eye(V)
    return model


def random_model(seed: int, d_vocab: int = 9, n_ctx: int = 6, d_model: int = 8,
                 d_head: int = 4, n_heads: int = 1, n_layers: int = 1):
    """A randomly initialised model, one layer and one head unless told (for hidden checks)."""
    from .model import AttentionOnlyTransformer, ModelConfig

    cfg = ModelConfig(d_vocab=d_vocab, d_model=d_model, d_head=d_head, n_ctx=n_ctx, seed=seed,
                      n_heads=n_heads, n_layers=n_layers)
    return AttentionOnlyTransformer(cfg)


def random_tokens(model, n: int = 64, seed: int = 0) -> torch.Tensor:
    """``[n, n_ctx]`` random token ids for ``model`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.cfg.d_vocab, (n, model.cfg.n_ctx), generator=g)


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


def random_matrix(seed: int, n: int = 7) -> np.ndarray:
    """A random ``[n, n]`` matrix with a positive diagonal bias (for hidden checks)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n)) + 1.5 * np.eye(n)


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


def random_head(seed: int, d_model: int = 6, d_head: int = 3, n_pos: int = 4):
    """A random head and input for hidden checks: other sizes, so a transposed answer shows.

    Returns:
        a namespace with ``x [n_pos, d_model]``, ``W_Q, W_K, W_V [d_model, d_head]``,
        ``W_O [d_head, d_model]`` (float64 numpy arrays) and ``d_head``.
    """
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)

    def m(*shape):
        return rng.normal(size=shape).round(1)

    return SimpleNamespace(x=m(n_pos, d_model), W_Q=m(d_model, d_head), W_K=m(d_model, d_head),
                           W_V=m(d_model, d_head), W_O=m(d_head, d_model), d_head=d_head)


# --------------------------------------------------------------------------------------------
# Two layers: detectors, composition, ablation (assignment 4)
# --------------------------------------------------------------------------------------------


def two_layer_scores(model, resid, layer: int, head: int) -> np.ndarray:
    """Raw scores ``(resid W_Q) (resid W_K)^T`` of one head ``[batch, dest, src]`` (float64)."""
    x = as_array(resid, "resid")
    attn = model.blocks[layer].attn
    W_Q = attn.W_Q[head].detach().to("cpu", torch.float64).numpy()
    W_K = attn.W_K[head].detach().to("cpu", torch.float64).numpy()
    return (x @ W_Q) @ np.swapaxes(x @ W_K, -1, -2)


def check_head_pattern(pattern, model, resid, layer: int, head: int, name: str = "pattern"):
    """One head's pattern ``[batch, dest, src]`` from the stream ``resid [batch, pos, d_model]``
    that its layer reads: scaled, causally masked, softmaxed rows (see :func:`check_pattern`)."""
    scores = two_layer_scores(model, resid, layer, head)
    check_pattern(pattern, scores, model.cfg.d_head, name=name)


def previous_token_score_of(pattern) -> float:
    """Mean weight of destination ``p`` on source ``p - 1`` over ``p >= 1`` and the batch."""
    pat = as_array(pattern, "pattern")
    p = np.arange(1, pat.shape[-1])
    return float(pat[..., p, p - 1].mean())


def check_previous_token_scores(scores, model, tokens, layer: int = 0, name: str = "prev_scores"):
    """Previous-token score ``[n_heads]`` of every head of ``layer`` on ``tokens``, from the
    model's own (right) patterns; recognises scores of unmasked or unsoftmaxed patterns and
    the wrong diagonal."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    resid = cache[f"blocks.{layer}.hook_resid_pre"].detach().to("cpu", torch.float64).numpy()
    pats = cache[f"blocks.{layer}.attn.hook_pattern"].detach().to("cpu", torch.float64).numpy()
    heads = range(model.cfg.n_heads)
    raw = [two_layer_scores(model, resid, layer, h) for h in heads]
    d = model.cfg.d_head

    def of(f):
        return np.array([f(r, h) for h, r in enumerate(raw)])

    n = pats.shape[-1]
    diag = np.arange(n)
    check_array(scores, [previous_token_score_of(pats[:, h]) for h in heads], name, mistakes=[
        ("comes from a pattern without the causal mask: fix head_pattern (question 1) first.",
         of(lambda r, h: previous_token_score_of(_softmax(r / math.sqrt(d))))),
        ("comes from the raw scores, not a pattern: scale, mask and softmax them first.",
         of(lambda r, h: previous_token_score_of(r))),
        ("reads the diagonal (source p, the token itself), not source p - 1.",
         np.array([pats[:, h][..., diag, diag].mean() for h in heads])),
        ("reads source p + 1, above the diagonal; the previous token is p - 1.",
         np.array([pats[:, h][..., diag[:-1], diag[:-1] + 1].mean() for h in heads])),
        ("averages over every destination including position 0, which has no previous token: "
         "use p = 1 .. n - 1.",
         np.array([previous_token_score_of(pats[:, h]) * (n - 1) / n for h in heads])),
    ])


def composition_score_of(W_A, W_B) -> float:
    """``||W_A W_B||_F / (||W_A||_F ||W_B||_F)`` of two matrices (float64)."""
    A, B = as_array(W_A, "W_A"), as_array(W_B, "W_B")
    return float(np.linalg.norm(A @ B) / (np.linalg.norm(A) * np.linalg.norm(B)))


def check_composition_score(value, W_A, W_B, name: str = "score"):
    """The composition score of the product ``W_A W_B`` (in this order)."""
    A, B = as_array(W_A, "W_A"), as_array(W_B, "W_B")
    wrong = [("the product is in the wrong order: W_B W_A instead of W_A W_B.",
              composition_score_of(B, A))] if B.shape[1] == A.shape[0] else []
    check_close(value, composition_score_of(A, B), name, wrong=wrong + [
        ("divide ||W_A W_B||_F by the product of the two norms ||W_A||_F ||W_B||_F.",
         float(np.linalg.norm(A @ B))),
        ("use the Frobenius norm (the root of the sum of squared entries), not the largest "
         "singular value.",
         float(np.linalg.norm(A @ B, 2) / (np.linalg.norm(A, 2) * np.linalg.norm(B, 2)))),
    ])


def check_k_composition(k_comp, model, name: str = "k_comp"):
    """K-composition scores ``[head_a of layer 0, head_b of layer 1]``: the score of
    ``W_QK^{1,b} (W_OV^{0,a})^T``. Recognises the reversed product and the Q- and V-scores."""
    from .composition import composition_scores

    def mats(layer, name_):
        a = model.blocks[layer].attn
        f = {k: getattr(a, k).detach().to("cpu", torch.float64).numpy()
             for k in ("W_Q", "W_K", "W_V", "W_O")}
        return f["W_Q"] @ np.swapaxes(f["W_K"], -1, -2) if name_ == "QK" else f["W_V"] @ f["W_O"]

    ov0, qk1 = mats(0, "OV"), mats(1, "QK")
    heads = range(model.cfg.n_heads)
    reversed_ = np.array([[composition_score_of(ov0[a].T, qk1[b]) for b in heads] for a in heads])
    scores = {k: v.numpy() for k, v in composition_scores(model).items()}
    check_array(k_comp, scores["k"], name, mistakes=[
        ("multiplies in the wrong order: (W_OV^A)^T W_QK^B instead of W_QK^B (W_OV^A)^T (the "
         "layer-0 write enters the key side, on the right).", reversed_),
        ("holds the Q-composition scores (W_OV^A W_QK^B): the query side, not the key side.",
         scores["q"]),
        ("holds the V-composition scores (W_OV^A W_OV^B): the value side, not the key side.",
         scores["v"]),
        ("is transposed: rows are the layer-0 heads (a), columns the layer-1 heads (b).",
         scores["k"].T),
    ])


def check_zero_head(hook, head: int, seed: int = 0):
    """``hook`` (from ``zero_head(head)``) must zero ``z[:, head]`` and keep the other heads."""
    if not callable(hook):
        _fail(f"zero_head({head}) should return a function z -> z, got {type(hook).__name__}.")
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(3, max(3, head + 2), 5, 4, generator=g)
    expected = z.clone()
    expected[:, head] = 0
    out = hook(z.clone())
    if out is None:
        _fail(f"the function zero_head({head}) returns None: `return` the edited z.")
    check_array(out, expected, f"zero_head({head})(z)", mistakes=[
        ("zeroes the wrong axis: z is [batch, head, pos, d_head], so zero z[:, head].",
         z.clone().index_fill_(0, torch.tensor([min(head, 2)]), 0)),
        ("zeroes every head: only head `head` should go.", torch.zeros_like(z)),
        ("leaves z unchanged.", z),
    ])


def check_induction_accuracy(value, model, name: str = "clean_accuracy"):
    """Induction accuracy of ``model`` on the default sequences of ``induction_accuracy``."""
    from .induction import induction_accuracy

    check_close(value, induction_accuracy(model), name, rtol=1e-6, atol=1e-9)


def check_ablated_accuracy(value, model, head: int, layer: int = 0,
                           name: str = "ablated_accuracy"):
    """Induction accuracy of ``model`` with ``head`` of ``layer`` zero-ablated."""
    from .composition import ablation_hook
    from .induction import induction_accuracy

    def acc(h, layer_):
        return induction_accuracy(model, hooks={f"blocks.{layer_}.attn.hook_z": ablation_hook(h)})

    wrong = [("is the accuracy without any ablation: pass the hook to the forward pass.",
              induction_accuracy(model))]
    wrong += [(f"ablates head {h}, not the previous-token head {head}.", acc(h, layer))
              for h in range(model.cfg.n_heads) if h != head]
    wrong += [(f"ablates head {head} of layer {1 - layer}, not of layer {layer}.",
               acc(head, 1 - layer))] if model.cfg.n_layers == 2 else []
    check_close(value, acc(head, layer), name, rtol=1e-6, atol=1e-9, wrong=wrong)


# --------------------------------------------------------------------------------------------
# Single values and functions
# --------------------------------------------------------------------------------------------


def check_value(value, expected, name: str, wrong: dict | None = None):
    """An exact answer (an int token id, a sign, a string); ``wrong`` maps known wrong answers
    to the message explaining them."""
    if _not_answered(value):
        _fail(f"{name} is still `...`: replace the `...` with your answer.")
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if value == expected and type(value) is not bool:
        return
    for w, message in (wrong or {}).items():
        if value == w:
            _fail(f"{name} = {value!r} is not right: {message}")
    _fail(f"{name} = {value!r} is not right.")


def check_close(value, expected: float, name: str, rtol: float = 1e-3, atol: float = 1e-6,
                wrong: Iterable[tuple[str, float]] = ()):
    """A real number, compared with a tolerance; ``wrong`` lists ``(message, wrong_value)``."""
    got = as_array(value, name)
    if got.shape != ():
        _fail(f"{name} should be a single number, got an array of shape {got.shape}.")
    got = float(got)
    if math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
        return
    for message, w in wrong:
        if math.isclose(got, w, rel_tol=rtol, abs_tol=atol):
            _fail(f"{name} = {got:.4g} is not right: {message}")
    _fail(f"{name} = {got:.4g} is not right.")


def check_function(func, name: str, cases: Iterable[tuple], check: Callable):
    """Call the student's ``func`` on each tuple of arguments and pass the result to ``check``.

    ``check(result, *args)`` raises :class:`CheckFailed`; its message is prefixed with the call
    that failed, so a hidden check on new inputs still says which input went wrong.
    """
    if _not_answered(func) or not callable(func):
        _fail(f"{name} should be a function; define it with `def {name}(...)`.")
    for args in cases:
        shapes = ", ".join(_describe_arg(a) for a in args)
        try:
            result = func(*args)
        except CheckFailed:
            raise
        except Exception as err:  # the student's code raised: say on which input
            _fail(f"{name}({shapes}) raised {type(err).__name__}: {err}")
        if _not_answered(result):
            _fail(f"{name}({shapes}) returns `...`: replace the `...` in its body.")
        try:
            check(result, *args)
        except CheckFailed as err:
            _fail(f"{name}({shapes}): {err}")


def _describe_arg(a) -> str:
    """A short description of an argument for messages: a shape, a model's sizes or a value."""
    if hasattr(a, "shape"):
        return f"[{', '.join(map(str, np.shape(a)))}]"
    cfg = getattr(a, "cfg", None)
    if cfg is not None:
        return f"<model d_vocab={cfg.d_vocab} n_ctx={cfg.n_ctx}>"
    text = repr(a)
    return text if len(text) <= 40 else type(a).__name__


def preview(value, rows: int | None = None, cols: int | None = None):
    """Print an answer rounded (its first ``rows`` x ``cols`` block), or say it is not answered.

    Lets a notebook show an answer without failing while the answer is still ``...``.
    """
    if _not_answered(value) or value is None:
        print("not answered yet")
        return
    arr = as_array(value, "value")
    if arr.ndim >= 1 and rows is not None:
        arr = arr[:rows]
    if arr.ndim >= 2 and cols is not None:
        arr = arr[:, :cols]
    print(np.array2string(np.round(arr, 3), separator=" ", suppress_small=True))


def summary(values: dict) -> str:
    """A small table of an assignment's results; unanswered entries say so.

    Args:
        values: ``{label: value}``; a value is a number, an array, or a zero-argument function
            computing one (a function that fails shows as ``not answered yet``).

    Returns:
        The table as text (also printed).
    """
    lines = []
    width = max(len(k) for k in values)
    for label, value in values.items():
        try:
            value = value() if callable(value) else value
            if _not_answered(value):
                raise ValueError
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            if isinstance(value, float):
                text = f"{value:.4f}"
            elif isinstance(value, np.ndarray):
                text = np.array2string(np.round(value, 4), separator=", ")
            else:
                text = str(value)
        except Exception:  # anything unanswered or broken
            text = "not answered yet"
        lines.append(f"{label:<{width}}  {text}")
    text = "\n".join(lines)
    print(text)
    return text
