"""The shared core of the assignments' checks: messages, array comparison, small models.

What every assignment's checks (the other modules of :mod:`toymodel.grading`) build on.

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

__all__ = [
    "CheckFailed",
    "as_array",
    "check_array",
    "head_weights",
    "blank_model",
    "random_model",
    "random_tokens",
    "random_matrix",
    "check_value",
    "check_close",
    "check_function",
    "check_verdict",
    "check_index",
    "preview",
    "summary",
    "guarded",
]

RTOL = 1e-4
ATOL = 1e-5


class CheckFailed(AssertionError):
    """An answer did not pass a check; the message says what looks wrong."""


def _fail(message: str):
    raise CheckFailed(message)


def _not_answered(value) -> bool:
    return value is Ellipsis or (isinstance(value, (list, tuple))
                                  and any(v is Ellipsis for v in value))


def as_array(value, name: str) -> np.ndarray:
    """``value`` as a float64 numpy array, or :class:`CheckFailed` saying why it cannot be one."""
    if _not_answered(value):
        _fail(f"{name} is still `...`: replace the `...` with your answer.")
    if value is None:
        _fail(f"{name} is None: the function that computes it returns nothing (end it with "
              "`return` and the result), or it was set to None.")
    if isinstance(value, (str, bytes)):
        _fail(f"{name} should be a number or an array of numbers, got the string {value!r:.40}: "
              "compute it rather than typing it, and leave out the quotes.")
    if isinstance(value, dict):
        _fail(f"{name} should be an array of numbers, got a dict with the keys "
              f"{', '.join(map(str, list(value)[:6]))}.")
    if callable(value) and not isinstance(value, (np.ndarray, torch.Tensor)):
        _fail(f"{name} is a function, not its result: call it, e.g. `{name} = f(...)`.")
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            value = value.real
        value = value.detach().to("cpu", torch.float64).numpy()
    if isinstance(value, np.ndarray) and value.dtype.kind in "USO":
        flat = value.ravel()
        if value.dtype.kind in "US" or any(isinstance(v, (str, bytes)) for v in flat[:50]):
            _fail(f"{name} holds strings ({value.dtype}), not numbers: compute the numbers "
                  "rather than typing them.")
    if isinstance(value, (list, tuple)) and any(isinstance(v, (str, bytes)) for v in value):
        _fail(f"{name} holds strings, not numbers: compute the numbers rather than typing them.")
    if np.iscomplexobj(value):
        c = np.asarray(value)
        if np.any(np.abs(c.imag) > 1e-9 * (1 + np.abs(c.real))):
            _fail(f"{name} is complex; take the real part (`.real`) where the question says so.")
        value = c.real
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        ragged = "inhomogeneous" in str(err) or "sequence" in str(err)
        _fail(f"{name} should be an array of numbers, got {type(value).__name__}"
              + (" with rows of different lengths." if ragged else f": {value!r:.80}"))
    except Exception:  # noqa: BLE001 - e.g. a tensor that needs grad, an object array
        _fail(f"{name} should be an array of numbers, got {type(value).__name__}: {value!r:.80}")
    if not np.all(np.isfinite(arr)):
        bad = int((~np.isfinite(arr)).sum())
        _fail(f"{name} contains NaN or infinite values ({bad} of {arr.size} entries): look for a "
              "division by zero, a softmax of a row that is -inf everywhere, or NaN in an input.")
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


def _size(value, name: str) -> int:
    """A positive int size (numpy and 0-d tensor ints accepted), or a TypeError/ValueError that
    names what was expected."""
    if isinstance(value, (np.integer, torch.Tensor)) and np.size(value) == 1:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}: {value!r:.40}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def blank_model(d_vocab: int = 5, n_ctx: int = 6):
    """A one-layer, one-head model with fixed embeddings and an all-zero head (assignment 2).

    The residual stream has ``d_model = 2 * d_vocab + n_ctx`` dimensions in three blocks:
    token identity in ``[0, d_vocab)`` (``W_E`` is one-hot there), position in
    ``[d_vocab, d_vocab + n_ctx)`` (``W_pos`` is one-hot there), and an output block
    ``[d_vocab + n_ctx, 2 * d_vocab + n_ctx)`` that ``W_U`` reads (one-hot). Nothing but the
    head writes into the output block, so the logits are exactly what the head writes.
    ``d_head = max(d_vocab, n_ctx)``.
    """
    from ..model import AttentionOnlyTransformer, ModelConfig

    V, C = _size(d_vocab, "d_vocab"), _size(n_ctx, "n_ctx")
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
    from ..model import AttentionOnlyTransformer, ModelConfig

    cfg = ModelConfig(d_vocab=d_vocab, d_model=d_model, d_head=d_head, n_ctx=n_ctx, seed=seed,
                      n_heads=n_heads, n_layers=n_layers)
    return AttentionOnlyTransformer(cfg)


def random_tokens(model, n: int = 64, seed: int = 0) -> torch.Tensor:
    """``[n, n_ctx]`` random token ids for ``model`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.cfg.d_vocab, (n, model.cfg.n_ctx), generator=g)


def random_matrix(seed: int, n: int = 7) -> np.ndarray:
    """A random ``[n, n]`` matrix with a positive diagonal bias (for hidden checks)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n)) + 1.5 * np.eye(n)


def _softmax(s, axis=-1):
    s = s - np.max(s, axis=axis, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=axis, keepdims=True)


def _masked(s, lower=False):
    n = s.shape[-1]
    hide = np.tril(np.ones((n, n), bool), -1) if lower else np.triu(np.ones((n, n), bool), 1)
    return np.where(hide, -np.inf, s)



def check_value(value, expected, name: str, wrong: dict | None = None):
    """An exact answer (an int token id, a sign, a string); ``wrong`` maps known wrong answers
    to the message explaining them."""
    if _not_answered(value):
        _fail(f"{name} is still `...`: replace the `...` with your answer.")
    if value is None:
        _fail(f"{name} is None: the function that computes it returns nothing (end it with "
              "`return` and the result).")
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(expected, int) and not isinstance(expected, bool):
        if isinstance(value, (str, bytes)):
            _fail(f"{name} should be an int, got the string {value!r:.40}: compute it rather "
                  "than typing it.")
        if isinstance(value, (list, tuple, np.ndarray, torch.Tensor)):
            _fail(f"{name} should be one int, got {type(value).__name__} of size "
                  f"{np.size(value)}.")
        if isinstance(value, float) and value != int(value):
            _fail(f"{name} should be an int, got {value!r}.")
    if value == expected and type(value) is not bool:
        return
    for w, message in (wrong or {}).items():
        if value == w:
            _fail(f"{name} = {value!r} is not right: {message}")
    _fail(f"{name} = {value!r} is not right.")


def guarded(check: Callable) -> Callable:
    """A check that never fails with its own traceback: an unexpected error while checking
    becomes a :class:`CheckFailed` that describes the inputs it got."""
    import functools

    @functools.wraps(check)
    def run(*args, **kwargs):
        try:
            return check(*args, **kwargs)
        except CheckFailed:
            raise
        except Exception as err:  # noqa: BLE001 - the point: name it instead of a traceback
            got = ", ".join(_describe_arg(a) for a in args[:4])
            _fail(f"{check.__name__} could not check your answer ({type(err).__name__}: "
                  f"{str(err)[:120]}). An input is not what the question asks for: it got "
                  f"{got}. Check the shapes and types of your answers to this question and "
                  "the earlier ones it uses.")

    run.__guarded__ = True
    return run


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
        from .own_work import scan_current

        scan_current(func)  # the call may have asked the package for the answer
        try:
            check(result, *args)
        except CheckFailed as err:
            _fail(f"{name}({shapes}): {err}")


def check_verdict(verdict, expected: bool, name: str, evidence: str):
    """A yes/no conclusion drawn from evidence: ``verdict`` must be the bool ``expected``.

    ``evidence`` says in words what the evidence shows (computed from the student's own numbers),
    so the message points at the numbers rather than at the answer.
    """
    if _not_answered(verdict):
        _fail(f"{name} is still `...`: set it to True or False from your evidence.")
    if isinstance(verdict, (np.bool_, torch.Tensor)) and np.size(verdict) == 1:
        verdict = bool(verdict)
    if not isinstance(verdict, bool):
        _fail(f"{name} should be True or False, got {type(verdict).__name__}: {verdict!r:.60}.")
    if verdict != expected:
        _fail(f"{name} = {verdict} does not follow from your evidence: {evidence}")


def check_index(value, name: str, low: int, high: int, why: str = "") -> int:
    """An integer choice in ``[low, high]`` (a position, a head, a token id); returns it."""
    if _not_answered(value):
        _fail(f"{name} is still `...`: choose a value.")
    if isinstance(value, (np.integer, torch.Tensor)) and np.size(value) == 1:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(f"{name} should be an int, got {type(value).__name__}: {value!r:.60}.")
    if not low <= value <= high:
        _fail(f"{name} = {value} is out of range: choose from {low} to {high}{why}.")
    return value


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


class _Blank(Exception):
    """An entry of :func:`summary` still ``...``."""


def summary(values: dict) -> str:
    """A small table of an assignment's results; unanswered entries say so.

    Args:
        values: ``{label: value}``; a value is a number, an array, or a zero-argument function
            computing one. An entry still ``...`` shows as ``not answered yet``, one whose name
            does not exist as ``not computed yet (...)``, and any other error by its type.

    Returns:
        The table as text (also printed).
    """
    lines = []
    width = max(len(k) for k in values)
    for label, value in values.items():
        try:
            value = value() if callable(value) else value
            if _not_answered(value):
                raise _Blank
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            if isinstance(value, float):
                text = f"{value:.4f}"
            elif isinstance(value, np.ndarray):
                text = np.array2string(np.round(value, 4), separator=", ")
            else:
                text = str(value)
        except _Blank:
            text = "not answered yet"
        except NameError as err:  # a name its cell never defined: not run, or it raised
            text = f"not computed yet ({err.args[0] if err.args else err})"
        except Exception as err:  # noqa: BLE001 - say what broke instead of hiding it
            text = f"error: {type(err).__name__}: {str(err)[:60]}"
        lines.append(f"{label:<{width}}  {text}")
    text = "\n".join(lines)
    print(text)
    return text
