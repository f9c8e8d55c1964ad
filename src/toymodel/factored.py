"""A matrix kept as the product of two thin factors, ``A @ B``, and never multiplied out.

End-to-end circuits are products of thin matrices: the full OV circuit of one head is
``(W_E W_V) @ (W_O W_U)``, a ``[d_vocab, d_vocab]`` matrix of rank at most ``d_head``. At GPT-2
Small's size that matrix has billions of entries, but its factors have only
``2 * d_vocab * d_head``.
:class:`FactoredMatrix` holds ``A [..., m, k]`` and ``B [..., k, n]`` and computes what we need
from the factors:

* eigenvalues: ``AB`` and ``BA [k, k]`` have the same non-zero eigenvalues;
* singular values: with ``A = Q_A R_A`` and ``B.T = Q_B R_B``, ``AB = Q_A (R_A R_B.T) Q_B.T``
  has the singular values of the ``[k, k]`` matrix ``R_A R_B.T``;
* Frobenius norm: ``||AB||^2 = trace(A.T A B B.T)``, from two ``[k, k]`` Gram matrices (``||AB||``
  is *not* ``||BA||`` in general);
* trace and diagonal: ``(AB)_ii = sum_k A_ik B_ki``;
* rows, and the top-k entries of every row, in blocks of rows small enough to fit in memory.

This is the teaching counterpart of TransformerLens' ``FactoredMatrix`` (same idea, a few names
alike). Leading dimensions (heads, layers) broadcast like ``@``. numpy in, numpy out; torch in,
torch out, on the factors' device.
"""

from __future__ import annotations

import numpy as np
import torch

from ._validate import Shapes, check_positive_int, is_torch

__all__ = ["FactoredMatrix"]


def _T(x):
    return x.transpose(-1, -2) if is_torch(x) else np.swapaxes(x, -1, -2)


class FactoredMatrix:
    """The matrix ``A @ B`` stored as ``A [..., m, k]`` and ``B [..., k, n]``.

    Args:
        A: left factor ``[..., m, k]`` (numpy array or torch tensor).
        B: right factor ``[..., k, n]``, same kind as ``A``; leading dimensions broadcast.

    >>> M = FactoredMatrix(np.ones((5, 2)), np.ones((2, 4)))
    >>> M.shape, M.mdim
    ((5, 4), 2)
    """

    __array_ufunc__ = None  # so that ``ndarray @ FactoredMatrix`` calls our ``__rmatmul__``

    def __init__(self, A, B):
        s = Shapes()
        A = s(A, "A", "... m k")
        B = s(B, "B", "... k n")
        self.A, self.B = A, B

    # ---------------------------------------------------------------------- shape and form
    @property
    def is_torch(self) -> bool:
        return is_torch(self.A)

    @property
    def batch_shape(self) -> tuple:
        """The broadcast leading dimensions (``()`` for a single matrix)."""
        return tuple(np.broadcast_shapes(tuple(self.A.shape[:-2]), tuple(self.B.shape[:-2])))

    @property
    def shape(self) -> tuple:
        """``(*batch, m, n)``: the shape of the matrix ``A @ B`` would have."""
        return self.batch_shape + (self.A.shape[-2], self.B.shape[-1])

    @property
    def ldim(self) -> int:
        return self.A.shape[-2]

    @property
    def rdim(self) -> int:
        return self.B.shape[-1]

    @property
    def mdim(self) -> int:
        """The inner dimension ``k`` (an upper bound on the rank)."""
        return self.A.shape[-1]

    def __repr__(self) -> str:
        return f"FactoredMatrix(shape={self.shape}, mdim={self.mdim})"

    @property
    def AB(self):
        """The materialised matrix ``[..., m, n]`` (only for small ``m, n``)."""
        return self.A @ self.B

    @property
    def BA(self):
        """The small product ``B @ A`` ``[..., k, k]`` (needs ``m == n``)."""
        self._need_square("BA")
        return self.B @ self.A

    @property
    def T(self) -> FactoredMatrix:
        """The transpose ``B.T @ A.T``, still factored: ``[..., n, m]``."""
        return FactoredMatrix(_T(self.B), _T(self.A))

    def _need_square(self, what: str):
        if self.ldim != self.rdim:
            raise ValueError(f"{what} needs a square matrix, got shape {list(self.shape)}")

    # ---------------------------------------------------------------------- composition
    def __matmul__(self, other) -> FactoredMatrix:
        """``self @ other`` for a matrix ``[..., n, p]`` or a :class:`FactoredMatrix`.

        The result keeps whichever inner dimension is smaller.
        """
        if isinstance(other, FactoredMatrix):
            middle = self.B @ other.A  # [..., k1, k2]
            if self.mdim <= other.mdim:
                return FactoredMatrix(self.A, middle @ other.B)
            return FactoredMatrix(self.A @ middle, other.B)
        other = self._like(other, "other")
        if other.shape[-2] != self.rdim:
            raise ValueError(
                f"cannot multiply {list(self.shape)} by {list(other.shape)}: expected "
                f"[..., {self.rdim}, p]"
            )
        return FactoredMatrix(self.A, self.B @ other)

    def __rmatmul__(self, other) -> FactoredMatrix:
        """``other @ self`` for a matrix ``[..., p, m]``."""
        other = self._like(other, "other")
        if other.shape[-1] != self.ldim:
            raise ValueError(
                f"cannot multiply {list(other.shape)} by {list(self.shape)}: expected "
                f"[..., p, {self.ldim}]"
            )
        return FactoredMatrix(other @ self.A, self.B)

    def _like(self, x, name):
        s = Shapes()
        s(self.A, "A", "... m k")
        return s(x, name, "... r c")

    # ---------------------------------------------------------------------- spectra and norms
    def eigenvalues(self):
        """The ``k`` eigenvalues of ``B @ A``: complex ``[..., k]``.

        They are all the non-zero eigenvalues of ``A @ B`` (``[m, m]``, needs ``m == n``); the
        other ``m - k`` eigenvalues of ``A @ B`` are zero. Torch factors are decomposed in
        float64 (on their device) and the result is cast back to the factors' precision.
        """
        small = self.BA
        if self.is_torch:
            with torch.no_grad():
                eig = torch.linalg.eigvals(small.detach().to(torch.float64))
            return eig.to(torch.complex128 if small.dtype == torch.float64 else torch.complex64)
        return np.linalg.eigvals(small)

    def svdvals(self):
        """The ``min(m, n, k)`` largest singular values of ``A @ B``, descending: ``[..., r]``.

        Computed from QR factors of ``A`` and ``B.T`` (``O((m + n) k^2)``), never from ``A @ B``.
        """
        if self.is_torch:
            ra = torch.linalg.qr(self.A, mode="r").R
            rb = torch.linalg.qr(_T(self.B), mode="r").R
            return torch.linalg.svdvals(ra @ _T(rb))
        ra = np.linalg.qr(self.A, mode="r")
        rb = np.linalg.qr(_T(self.B), mode="r")
        return np.linalg.svd(ra @ _T(rb), compute_uv=False)

    def norm(self):
        """Frobenius norm ``sqrt(sum((A @ B)**2))``: a float, or ``[...]`` for a batch.

        Uses ``trace((A.T A)(B B.T))`` with two ``[k, k]`` Gram matrices.
        """
        gram_a = _T(self.A) @ self.A
        gram_b = self.B @ _T(self.B)
        sq = (gram_a * gram_b).sum((-1, -2))
        sq = sq.clamp(min=0) if self.is_torch else np.maximum(sq, 0)
        out = sq.sqrt() if self.is_torch else np.sqrt(sq)
        return _scalar(out)

    def trace(self):
        """``trace(A @ B) = sum_ik A_ik B_ki`` (square only): a float, or ``[...]``."""
        return _scalar(self.diagonal().sum(-1))

    def diagonal(self):
        """The diagonal of ``A @ B`` (square only): ``[..., m]``."""
        self._need_square("the diagonal")
        return (self.A * _T(self.B)).sum(-1)

    # ---------------------------------------------------------------------- rows
    def rows(self, index):
        """Chosen rows of ``A @ B``: ``index`` is a sequence of row ids; returns ``[..., r, n]``."""
        idx = self._index(index)
        return self.A[..., idx, :] @ self.B

    def _index(self, index):
        idx = np.asarray(index.cpu() if is_torch(index) else index)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise ValueError(f"index must be a 1-d sequence of row ids, got {index!r}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.ldim):
            raise ValueError(f"row ids must lie in [0, {self.ldim - 1}], got {index!r}")
        return torch.as_tensor(idx, device=self.A.device) if self.is_torch else idx

    def topk(self, k: int, rows=None, block_rows: int = 1024, largest: bool = True):
        """The ``k`` largest (or smallest) entries of each row, ``block_rows`` rows at a time.

        Memory stays at one ``[..., block_rows, n]`` block, whatever ``m`` is.

        Args:
            k: entries per row (a positive int, at most ``n``).
            rows: optional row ids (default: every row).
            block_rows: rows per block (a positive int).
            largest: False for the smallest entries.

        Returns:
            ``(values, indices)``, each ``[..., r, k]``, sorted from the most extreme.
        """
        k = check_positive_int(k, "k")
        block_rows = check_positive_int(block_rows, "block_rows")
        if k > self.rdim:
            raise ValueError(f"k must be at most the number of columns {self.rdim}, got {k}")
        A = self.A if rows is None else self.A[..., self._index(rows), :]
        values, indices = [], []
        for start in range(0, A.shape[-2], block_rows):
            block = A[..., start:start + block_rows, :] @ self.B
            v, i = _topk(block, k, largest)
            values.append(v)
            indices.append(i)
        if self.is_torch:
            return torch.cat(values, -2), torch.cat(indices, -2)
        return np.concatenate(values, -2), np.concatenate(indices, -2)

    def row_argmax_is_diagonal(self, rows=None, block_rows: int = 2048, block_cols: int = 4096,
                               progress=None):
        """For each chosen row ``i`` of the square matrix ``A @ B``: is column ``i`` its argmax?

        Exactly what ``(A @ B)[i].argmax() == i`` gives (ties go to the lower column index, as
        ``argmax`` does), without forming ``A @ B``: memory stays at one ``[block_rows,
        block_cols]`` tile. Columns are visited in order of decreasing norm ``||B[:, j]||``, and a
        row stops as soon as its answer is known: "no" when some column beats its own entry,
        "yes" when the Cauchy-Schwarz bound ``|A[i] . B[:, j]| <= ||A[i]|| ||B[:, j]||`` shows
        that no remaining column can reach it. The worst case (every row's own entry is its
        maximum, by a small margin) costs the full ``m * n * k`` multiply-adds; rows that lose
        early cost a small part of it.

        Args:
            rows: optional row ids (default: every row).
            block_rows, block_cols: tile size (positive ints).
            progress: a ``tqdm``-like callable wrapping the loop over batch entries, or None.

        Returns:
            bool ``[..., r]`` (numpy or torch, as the factors).
        """
        self._need_square("row_argmax_is_diagonal")
        block_rows = check_positive_int(block_rows, "block_rows")
        block_cols = check_positive_int(block_cols, "block_cols")
        A, B = _broadcast_factors(self.A, self.B)
        batch = A.shape[:-2]
        own = np.arange(self.ldim) if rows is None else np.asarray(self._index(rows).tolist())
        tA = _as_torch(A).reshape((-1,) + tuple(A.shape[-2:]))
        tB = _as_torch(B).reshape((-1,) + tuple(B.shape[-2:]))
        own_t = torch.as_tensor(own, dtype=torch.long, device=tA.device)
        batches = range(tA.shape[0])
        out = []
        for b in progress(batches) if progress is not None else batches:
            out.append(_argmax_is_own(tA[b], tB[b], own_t, block_rows, block_cols))
        result = torch.stack(out).reshape(tuple(batch) + (len(own),))
        return result if self.is_torch else result.cpu().numpy()


def _broadcast_factors(A, B):
    batch = np.broadcast_shapes(tuple(A.shape[:-2]), tuple(B.shape[:-2]))
    if is_torch(A):
        return (A.expand(batch + tuple(A.shape[-2:])), B.expand(batch + tuple(B.shape[-2:])))
    return (np.broadcast_to(A, batch + A.shape[-2:]), np.broadcast_to(B, batch + B.shape[-2:]))


def _as_torch(x):
    if is_torch(x):
        return x.detach()
    return torch.from_numpy(np.array(x) if not x.flags.writeable else np.ascontiguousarray(x))


@torch.no_grad()
def _argmax_is_own(A, B, own, block_rows: int, block_cols: int):
    """``(A[own] @ B).argmax(-1) == own`` for 2-d ``A [m, k]``, ``B [k, n]``; bool ``[r]``."""
    col_norm = B.norm(dim=0)
    order = torch.argsort(col_norm, descending=True)
    B_sorted, norm_sorted = B[:, order].contiguous(), col_norm[order]
    where = torch.empty_like(order)
    where[order] = torch.arange(len(order), device=order.device)  # column -> sorted position
    n = B.shape[1]
    every_row = len(own) == A.shape[0] and bool(
        (own == torch.arange(len(own), device=own.device)).all())
    A_own = A if every_row else A[own]  # [r, k]
    mine_all = (A_own * (B.T if every_row else B.T[own])).sum(-1)  # each row's own entry
    norm_all = A_own.norm(dim=1)
    pos_all = where[own]
    result = torch.empty(len(own), dtype=torch.bool, device=A.device)
    for start in range(0, len(own), block_rows):
        stop = min(start + block_rows, len(own))
        left, mine = A_own[start:stop], mine_all[start:stop]
        row_norm, own_pos = norm_all[start:stop], pos_all[start:stop]
        alive = torch.arange(stop - start, device=A.device)
        won = torch.zeros(stop - start, dtype=torch.bool, device=A.device)
        c0, width = 0, min(256, block_cols)  # narrow first tiles: most losers lose early
        while c0 < n and alive.numel():
            # no remaining column can reach these rows' own entries: their argmax is their own
            safe = row_norm[alive] * norm_sorted[c0] * (1 + 1e-5) < mine[alive]
            if bool(safe.any()):
                won[alive[safe]] = True
                alive = alive[~safe]
                if alive.numel() == 0:
                    break
            c1 = min(c0 + width, n)
            rows = left if alive.numel() == stop - start else left[alive]
            tile = rows @ B_sorted[:, c0:c1]  # [a, c]
            pos = own_pos[alive] - c0  # own column's place in this tile
            inside = (pos >= 0) & (pos < c1 - c0)
            if bool(inside.any()):
                tile[inside.nonzero()[:, 0], pos[inside]] = -torch.inf
            best = tile.amax(-1)
            m = mine[alive]
            beaten = best > m
            tied = (best == m).nonzero()[:, 0]
            if tied.numel():  # argmax takes the lowest index among equal entries
                lower = order[c0:c1][None] < (own[start:stop][alive[tied]])[:, None]
                beaten[tied] = ((tile[tied] == m[tied, None]) & lower).any(-1)
            alive = alive[~beaten]
            c0, width = c1, min(2 * width, block_cols)
        won[alive] = True
        result[start:stop] = won
    return result


def _topk(block, k: int, largest: bool):
    if is_torch(block):
        out = torch.topk(block, k, dim=-1, largest=largest, sorted=True)
        return out.values, out.indices
    key = -block if largest else block
    part = np.argpartition(key, k - 1, axis=-1)[..., :k]
    order = np.take_along_axis(key, part, -1).argsort(-1, kind="stable")
    idx = np.take_along_axis(part, order, -1)
    return np.take_along_axis(block, idx, -1), idx


def _scalar(x):
    if is_torch(x):
        return float(x) if x.ndim == 0 else x
    return float(x) if np.ndim(x) == 0 else x
