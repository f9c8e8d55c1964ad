"""Input checks shared by every public function.

Every function in :mod:`toymodel` accepts numpy arrays and torch tensors alike and returns the
same kind it was given. The checks here turn bad input into a ``TypeError`` or ``ValueError``
whose message names the argument, the expected shape (with its named dimensions) and what
was actually passed, instead of a bare numpy or torch traceback deep inside a matmul.

Shapes are written as space-separated dimension names, for example ``"d_model d_head"``.
A name ending in ``?`` is an optional leading dimension (``"n_heads? d_model d_head"`` accepts
one head ``[d_model, d_head]`` or all heads ``[n_heads, d_model, d_head]``); several optional
names are filled from the right (``"n_layers? n_heads? d_model d_head"`` also accepts
``[n_layers, n_heads, d_model, d_head]``). A leading ``...`` accepts any leading dimensions.
A :class:`Shapes` object remembers the size each name got, so two arguments that must agree
(``W_Q`` and ``W_K`` share ``d_model`` and ``d_head``) are checked against each other.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch


def is_torch(x) -> bool:
    return isinstance(x, torch.Tensor)


def _describe(x) -> str:
    if is_torch(x):
        return f"torch tensor of shape {list(x.shape)} and dtype {x.dtype}"
    if isinstance(x, np.ndarray):
        return f"numpy array of shape {list(x.shape)} and dtype {x.dtype}"
    return f"{type(x).__name__}"


def to_array(x, name: str, check_finite: bool = True):
    """Return ``x`` as a float numpy array or a float torch tensor, checking it is numeric.

    Lists and tuples of numbers become numpy arrays. Integer and boolean inputs become floats
    (float64 for numpy, the default torch float dtype for torch). Strings, objects, complex
    numbers and ``None`` raise ``TypeError``; NaN or infinite entries raise ``ValueError`` (unless
    ``check_finite`` is False: a caller that checks a product of ``x`` instead, which any NaN or
    infinity in ``x`` reaches, and calls ``to_array`` again when that product is not finite).
    """
    if is_torch(x):
        if x.is_complex():
            raise TypeError(f"{name} must be a real-valued tensor, got {_describe(x)}")
        if not x.is_floating_point():
            x = x.to(torch.get_default_dtype())
        if check_finite and not _all_finite(x):
            raise ValueError(f"{name} contains NaN or infinite values; expected finite numbers")
        return x
    if isinstance(x, (list, tuple)) or isinstance(x, numbers.Number):
        try:
            x = np.asarray(x)
        except ValueError as err:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular array of numbers: {err}") from None
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {_describe(x)}")
    if x.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (float, int or bool), got dtype {x.dtype}"
        )
    x = x.astype(np.float64) if x.dtype.kind != "f" else x
    if check_finite and not _all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values; expected finite numbers")
    return x


def _all_finite(x) -> bool:
    """True when every entry is finite, in one cheap pass for large inputs.

    NaN and infinities propagate through a sum, so a finite sum proves every entry is finite;
    only when the sum is not finite (a bad entry, or an overflow) are the entries checked one by
    one. A sum is a single read of the data with no temporary array (``isfinite(x).all()`` writes
    a boolean array as large as ``x`` first), which keeps the check a small fraction of a
    GPT-2-sized call.
    """
    if is_torch(x):
        with torch.no_grad():
            if x.numel() > 4096 and bool(torch.isfinite(x.sum())):
                return True
            return bool(torch.isfinite(x).all())
    if x.size > 4096:
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(x.sum()):
                return True
    return bool(np.all(np.isfinite(x)))


class Shapes:
    """Check arguments against named shapes, remembering what each dimension name is bound to.

    >>> s = Shapes()
    >>> W_Q = s(np.zeros((4, 2)), "W_Q", "d_model d_head")
    >>> W_K = s(np.zeros((4, 3)), "W_K", "d_model d_head")
    Traceback (most recent call last):
    ...
    ValueError: W_K must have shape [d_model, d_head] = [4, 2], got shape [4, 3] (d_head is 2 ...
    """

    def __init__(self, **known: int):
        self.sizes: dict[str, int] = dict(known)
        self.source: dict[str, str] = {k: "the model" for k in known}
        self.kind: str | None = None
        self.first: str | None = None

    def __call__(self, x, name: str, dims: str, check_finite: bool = True):
        x = to_array(x, name, check_finite)
        kind = "torch" if is_torch(x) else "numpy"
        if self.kind is None:
            self.kind, self.first = kind, name
        elif kind != self.kind:
            raise TypeError(
                f"{name} is a {kind} {'tensor' if kind == 'torch' else 'array'} but "
                f"{self.first} is {self.kind}: pass all inputs as numpy arrays or all as "
                "torch tensors"
            )
        names = dims.split()
        if names[0] == "...":  # any number of leading (batch) dimensions, not checked
            names = names[1:]
            if x.ndim < len(names):
                raise ValueError(
                    f"{name} must have shape [..., {', '.join(names)}], got a rank-{x.ndim} "
                    f"input of shape {list(x.shape)}"
                )
            shape = list(x.shape[x.ndim - len(names):])
            self._bind(name, names, shape, list(x.shape))
            return x
        optional = [n for n in names if n.endswith("?")]
        required = [n for n in names if not n.endswith("?")]
        n_opt = x.ndim - len(required)
        if 0 <= n_opt <= len(optional):
            # optional leading dimensions are filled from the right: with "n_layers? n_heads?",
            # a rank-3 input is [n_heads, ...] and a rank-4 one [n_layers, n_heads, ...]
            used = [n.rstrip("?") for n in optional[len(optional) - n_opt:]] + required
        else:
            raise ValueError(
                f"{name} must have shape {self._expected(names)}, got a rank-{x.ndim} input of "
                f"shape {list(x.shape)}"
            )
        self._bind(name, used, list(x.shape), list(x.shape))
        return x

    def _bind(self, name, used, shape, full_shape):
        x_shape = full_shape
        for dim, size in zip(used, shape, strict=True):
            if dim.isdigit():
                if size != int(dim):
                    raise ValueError(
                        f"{name} must have shape {self._expected(used)}, got shape {x_shape}"
                    )
                continue
            if size == 0:
                raise ValueError(f"{name} has an empty dimension {dim}: got shape {x_shape}")
            if dim in self.sizes and self.sizes[dim] != size:
                raise ValueError(
                    f"{name} must have shape {self._expected(used)} = "
                    f"{[self.sizes.get(d, '?') for d in used]}, got shape {x_shape} "
                    f"({dim} is {self.sizes[dim]} from {self.source[dim]})"
                )
            self.sizes.setdefault(dim, size)
            self.source.setdefault(dim, name)

    def _expected(self, names) -> str:
        optional = [n.rstrip("?") for n in names if n.endswith("?")]
        required = [n for n in names if not n.endswith("?")]
        if not optional:
            return "[" + ", ".join(required) + "]"
        if len(optional) == 1:
            return "[" + ", ".join(optional + required) + "] (leading dimension optional)"
        shapes = ["[" + ", ".join(optional[i:] + required) + "]" for i in range(len(optional) + 1)]
        first = shapes[-2]  # one optional dimension, e.g. [n_heads, d_model, d_head]
        others = " or ".join(x for x in shapes[::-1] if x != first)
        return f"{first} (leading dimensions optional: also {others})"


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# ---------------------------------------------------------------- shapes shared by the circuits


def _T(x):
    """Transpose the last two dimensions (numpy or torch)."""
    return x.transpose(-1, -2) if is_torch(x) else np.swapaxes(x, -1, -2)


# --------------------------------------------------------------------------------------------
# The two circuits of one head (or of every head at once)
# --------------------------------------------------------------------------------------------


def _same_rank(a, a_name, b, b_name):
    if a.ndim != b.ndim:
        raise ValueError(
            f"{a_name} has shape {list(a.shape)} and {b_name} has shape {list(b.shape)}: pass both "
            "for one head or both with a leading n_heads dimension"
        )


# --------------------------------------------------------------------------------------------
# The standard computation: scores, pattern, output
# --------------------------------------------------------------------------------------------


def _ov_shapes(W_E, W_V, W_O, W_U, check_finite: bool = True):
    s = Shapes()
    W_V = s(W_V, "W_V", "n_layers? n_heads? d_model d_head")
    W_O = s(W_O, "W_O", "n_layers? n_heads? d_head d_model")
    _same_rank(W_V, "W_V", W_O, "W_O")
    W_E = s(W_E, "W_E", "d_vocab d_model", check_finite)
    W_U = s(W_U, "W_U", "d_model d_vocab", check_finite)
    return W_E, W_V, W_O, W_U


def _concat_heads(W_in, W_out):
    """Heads of ``W_in [..., H, d_model, d_head]`` side by side: ``[..., d_model, H*d_head]``.

    ``W_out [..., H, d_head, d_model]`` is stacked to ``[..., H*d_head, d_model]``, so that
    ``W_in @ W_out`` is the sum over heads of each head's ``W_in[h] @ W_out[h]``. One head (rank 2)
    is returned as it is; with ``[n_layers, n_heads, ...]`` the heads of each layer are combined.
    """
    if W_in.ndim == 2:
        return W_in, W_out
    *lead, n_heads, d_model, d_head = W_in.shape
    W_in = W_in.transpose(-3, -2) if is_torch(W_in) else np.swapaxes(W_in, -3, -2)
    W_in = W_in.reshape(*lead, d_model, n_heads * d_head)
    return W_in, W_out.reshape(*lead, n_heads * d_head, W_out.shape[-1])
