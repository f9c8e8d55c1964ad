"""How a head of a later layer reads what a head of an earlier layer wrote.

A head in layer 0 writes ``x W_OV^A`` into the residual stream; a head in layer 1 reads the
stream three ways, so the write can reach it three ways (row-vector convention, ``x @ W``):

* **Q-composition**: through the query side, scores ``(x W_OV^A) W_QK^B k^T``: ``W_OV^A W_QK^B``;
* **K-composition**: through the key side, scores ``q W_QK^B (x W_OV^A)^T``: ``W_QK^B (W_OV^A)^T``;
* **V-composition**: through the value side, output ``(x W_OV^A) W_OV^B``: ``W_OV^A W_OV^B``.

The composition score of a product ``W_A W_B`` is ``||W_A W_B||_F / (||W_A||_F ||W_B||_F)``
(Elhage et al., 2021): 1 when ``W_A``'s outputs lie where ``W_B`` reads most, near 0 when the two
barely overlap. :func:`composition_baseline` gives what random matrices of the same shapes and
ranks score, the level a score must clear to mean anything. For random matrices whose
distribution does not change under rotation the mean squared score is ``1 / d_model`` whatever
the rank; the mean score is smaller at low rank and tends to ``1 / sqrt(d_model)`` as the rank
grows. At rank 1 it is known exactly (:func:`rank1_baseline`): the mean ``|cos|`` of the angle
between two random directions, ``Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))``, about
``sqrt(2 / (pi d_model))``. At higher rank :func:`composition_baseline` estimates it by Monte Carlo,
and :func:`composition_baseline_samples` returns the draws, for the estimate's spread.

The module also holds the **K-composition full circuit** of an induction head
(:func:`k_composition_circuit`), the **path expansion** of a two-layer model into direct,
single-head and virtual-head terms (:func:`path_expansion`), and the **interventions** of the
lesson: ablating a head (:func:`ablation_hook`) and editing one head's OV circuit while leaving
its QK circuit alone (:func:`scale_ov`).

All weights are taken at small size as plain ``[d_model, d_model]`` matrices.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from ._validate import check_positive_int
from .model import AttentionOnlyTransformer

__all__ = [
    "composition_score",
    "composition_scores",
    "composition_baseline",
    "composition_baseline_samples",
    "rank1_baseline",
    "k_composition_circuit",
    "top1_accuracy",
    "PathExpansion",
    "path_expansion",
    "ablation_hook",
    "mean_z",
    "scale_ov",
]

KINDS = ("q", "k", "v")


def _check_model(model, n_layers=None):
    if not isinstance(model, AttentionOnlyTransformer):
        raise TypeError(f"model must be an AttentionOnlyTransformer, got {type(model).__name__}")
    if n_layers is not None and model.cfg.n_layers != n_layers:
        raise ValueError(f"needs a model with {n_layers} layers, got {model.cfg.n_layers}")


def _layer(model, layer: int, name: str) -> torch.Tensor:
    """``[head, ...]`` float64 CPU copy of one layer's ``W_QK``, ``W_OV``, ``W_Q`` ...

    The circuits are multiplied out in float64 from the float32 factors.
    """
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(model.blocks):
        raise ValueError(f"layer must be an int in [0, {len(model.blocks)}), got {layer!r}")
    attn = model.blocks[layer].attn
    w = {k: getattr(attn, k).detach().cpu().double() for k in ("W_Q", "W_K", "W_V", "W_O")}
    if name == "W_QK":
        return w["W_Q"] @ w["W_K"].transpose(-1, -2)
    if name == "W_OV":
        return w["W_V"] @ w["W_O"]
    return w[name]


def composition_score(W_A: torch.Tensor, W_B: torch.Tensor) -> torch.Tensor:
    """``||W_A W_B||_F / (||W_A||_F ||W_B||_F)`` over the last two dimensions.

    Args:
        W_A: ``[..., d, d]``, the left factor of the product.
        W_B: ``[..., d, d]``, the right factor; leading dimensions broadcast.

    Returns:
        the scores ``[...]`` (a 0-d tensor for two matrices), each in ``[0, 1]``.
    """
    for name, w in (("W_A", W_A), ("W_B", W_B)):
        if not isinstance(w, torch.Tensor) or w.ndim < 2:
            raise ValueError(f"{name} must be a tensor [..., d, d], got "
                             f"{getattr(w, 'shape', type(w).__name__)}")
    if W_A.shape[-1] != W_B.shape[-2]:
        raise ValueError(f"W_A [..., {W_A.shape[-2]}, {W_A.shape[-1]}] cannot multiply W_B "
                         f"[..., {W_B.shape[-2]}, {W_B.shape[-1]}]")
    fro = torch.linalg.matrix_norm
    return fro(W_A @ W_B) / (fro(W_A) * fro(W_B))


def _pair(kind: str, ov_a: torch.Tensor, qk_b: torch.Tensor, ov_b: torch.Tensor):
    """The two factors ``(W_A, W_B)`` of one composition kind (leading dimensions broadcast)."""
    if kind == "q":  # scores (x W_OV^A) W_QK^B k^T
        return ov_a, qk_b
    if kind == "k":  # scores q W_QK^B (x W_OV^A)^T
        return qk_b, ov_a.transpose(-1, -2)
    if kind == "v":  # output (x W_OV^A) W_OV^B
        return ov_a, ov_b
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def composition_scores(model: AttentionOnlyTransformer, earlier: int = 0,
                       later: int = 1) -> dict[str, torch.Tensor]:
    """Q-, K- and V-composition scores of every pair of heads in two layers.

    Returns:
        ``{"q": ..., "k": ..., "v": ...}``, each ``[head_earlier, head_later]`` (float64): entry
        ``(a, b)`` scores how much head ``b`` of layer ``later`` reads what head ``a`` of layer
        ``earlier`` writes.
    """
    _check_model(model)
    if not earlier < later:
        raise ValueError(f"earlier must come before later, got {earlier} and {later}")
    ov_a, qk_b, ov_b = (_layer(model, earlier, "W_OV"), _layer(model, later, "W_QK"),
                        _layer(model, later, "W_OV"))
    pairs = (ov_a[:, None], qk_b[None], ov_b[None])  # earlier heads on axis 0, later on axis 1
    return {kind: composition_score(*_pair(kind, *pairs)) for kind in KINDS}


def composition_baseline_samples(d_model: int, d_head: int, n_samples: int = 1000,
                                 seed: int = 0) -> dict[str, torch.Tensor]:
    """Composition scores of ``n_samples`` random pairs of matrices of the model's shapes and ranks.

    Each ``W_OV = V O`` and ``W_QK = Q K^T`` is built from Gaussian factors ``[d_model, d_head]``
    and ``[d_head, d_model]``, as in a freshly initialised model; the score's scale does not
    depend on the factors' variance.

    Returns:
        ``{"q": scores, "k": scores, "v": scores}``, each float64 ``[n_samples]``, drawn from
        ``seed``: their mean is :func:`composition_baseline`, and their standard deviation divided
        by ``sqrt(n_samples)`` is that mean's standard error.
    """
    d_model, d_head = check_positive_int(d_model, "d_model"), check_positive_int(d_head, "d_head")
    n = check_positive_int(n_samples, "n_samples")
    g = torch.Generator().manual_seed(seed)

    def low_rank():
        f = torch.randn(2, n, d_model, d_head, generator=g, dtype=torch.float64)
        return f[0] @ f[1].transpose(-1, -2)  # [n, d_model, d_model], rank d_head

    ov_a, qk_b, ov_b = low_rank(), low_rank(), low_rank()
    return {kind: composition_score(*_pair(kind, ov_a, qk_b, ov_b)) for kind in KINDS}


def composition_baseline(d_model: int, d_head: int, n_samples: int = 1000,
                         seed: int = 0) -> dict[str, float]:
    """Mean composition score of random matrices of the model's shapes and ranks (Monte Carlo).

    The mean of :func:`composition_baseline_samples` (same arguments). At ``d_head = 1`` the exact
    value is :func:`rank1_baseline`.

    Returns:
        ``{"q": mean, "k": mean, "v": mean}`` over ``n_samples`` draws from ``seed``.
    """
    samples = composition_baseline_samples(d_model, d_head, n_samples, seed)
    return {kind: float(scores.mean()) for kind, scores in samples.items()}


def rank1_baseline(d_model: int) -> float:
    """Exact mean composition score of random rank-1 matrices, of any kind (Q, K or V).

    With ``W_A = a b^T`` and ``W_B = c d^T``, ``||W_A W_B||_F = |b . c| ||a|| ||d||``, so the score
    is ``|cos|`` of the angle between ``b`` and ``c``: two independent Gaussian, hence uniformly
    oriented, directions in ``d_model`` dimensions. Its mean is
    ``Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))`` with ``d = d_model``, which is
    ``sqrt(2 / (pi d)) (1 + O(1/d))``.
    """
    d = check_positive_int(d_model, "d_model")
    return math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)


def k_composition_circuit(model: AttentionOnlyTransformer, prev_head: int, ind_head: int,
                          tokens=None) -> torch.Tensor:
    """Token-level K-composition circuit ``W_E W_QK^ind (W_E W_OV^prev)^T`` ``[query, key]``.

    Entry ``(i, j)`` is the score the induction head (``ind_head`` of layer 1) gives a key
    position whose previous token was ``j``, when its query token is ``i``, through what the
    previous-token head (``prev_head`` of layer 0) copied there. An induction head wants the
    diagonal: a key whose previous token equals its own token.

    Args:
        tokens: optional 1-d token ids; rows and columns are restricted to them.

    Returns:
        ``[n, n]`` float64 on the CPU (``n = d_vocab``, or ``len(tokens)``).
    """
    _check_model(model, 2)
    W_E = model.W_E.detach().cpu().double()
    if tokens is not None:
        W_E = W_E[torch.as_tensor(tokens, dtype=torch.long)]
    qk, ov = _layer(model, 1, "W_QK"), _layer(model, 0, "W_OV")
    for name, h in (("prev_head", prev_head), ("ind_head", ind_head)):
        if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h < model.cfg.n_heads:
            raise ValueError(f"{name} must be an int in [0, {model.cfg.n_heads}), got {h!r}")
    return W_E @ qk[ind_head] @ (W_E @ ov[prev_head]).T


def top1_accuracy(matrix: torch.Tensor) -> float:
    """Fraction of rows of a square ``[n, n]`` matrix whose largest entry is on the diagonal."""
    if (not isinstance(matrix, torch.Tensor) or matrix.ndim != 2
            or matrix.shape[0] != matrix.shape[1]):
        raise ValueError(f"matrix must be square [n, n], got {getattr(matrix, 'shape', matrix)}")
    own = torch.arange(matrix.shape[0], device=matrix.device)
    return float((matrix.argmax(-1) == own).double().mean())


@dataclass
class PathExpansion:
    """The logits of a two-layer attention-only model as a sum of paths.

    With the attention patterns ``A^{l,h}`` of the actual forward pass held fixed and ``x`` the
    embedding ``W_E[tokens] + W_pos``:

    Attributes:
        direct: ``x W_U`` ``[batch, pos, d_vocab]``.
        layer0: ``A^{0,h} x W_OV^{0,h} W_U`` ``[batch, head, pos, d_vocab]``.
        layer1: ``A^{1,h} x W_OV^{1,h} W_U``, layer-1 heads reading the embedding directly.
        virtual: ``A^{1,b} A^{0,a} x W_OV^{0,a} W_OV^{1,b} W_U`` ``[batch, head_a, head_b, pos,
            d_vocab]``: the virtual head made of head ``a`` then head ``b`` (V-composition).
    """

    direct: torch.Tensor
    layer0: torch.Tensor
    layer1: torch.Tensor
    virtual: torch.Tensor

    @property
    def logits(self) -> torch.Tensor:
        """The sum of every term ``[batch, pos, d_vocab]``."""
        return (self.direct + self.layer0.sum(1) + self.layer1.sum(1)
                + self.virtual.sum((1, 2)))


@torch.no_grad()
def path_expansion(model: AttentionOnlyTransformer, tokens) -> PathExpansion:
    """Split the logits of a two-layer model on ``tokens [batch, pos]`` into paths.

    The sum of the terms equals ``model(tokens)`` up to floating-point rounding (see
    :class:`PathExpansion`); the patterns come from ``model.run_with_pattern``.
    """
    _check_model(model, 2)
    x = model.embed(tokens)  # [batch, pos, d_model]
    _, pattern = model.run_with_pattern(tokens)  # [batch, layer, head, dest, src]
    A0, A1 = pattern[:, 0], pattern[:, 1]  # [batch, head, dest, src]
    ov0, ov1 = model.blocks[0].attn.W_OV, model.blocks[1].attn.W_OV  # [head, d_model, d_model]
    W_U = model.W_U
    xh = x[:, None]  # [batch, 1, pos, d_model]
    heads0 = A0 @ (xh @ ov0)  # [batch, head, pos, d_model]: what layer-0 heads write
    heads1 = A1 @ (xh @ ov1)
    # virtual head (a, b): A1[b] @ (heads0[a] @ ov1[b])
    virt = A1[:, None] @ (heads0[:, :, None] @ ov1)  # [batch, head_a, head_b, pos, d_model]
    return PathExpansion(direct=x @ W_U, layer0=heads0 @ W_U, layer1=heads1 @ W_U,
                         virtual=virt @ W_U)


def mean_z(model: AttentionOnlyTransformer, layer: int, tokens) -> torch.Tensor:
    """Mean over the batch of ``z`` of every head of ``layer``: ``[head, pos, d_head]``.

    The reference for a mean ablation: each position keeps its average, only the part that
    depends on this sequence's tokens goes.
    """
    _check_model(model)
    _layer(model, layer, "W_Q")  # validates layer
    cache: dict = {}
    with torch.no_grad():  # the residual stream is not unembedded: only z is needed
        model._run(torch.as_tensor(tokens), cache=cache, unembed=False)
    return cache[f"blocks.{layer}.attn.hook_z"].mean(0)


def ablation_hook(head: int, mode: str = "zero", mean: torch.Tensor | None = None):
    """A ``hook_z`` function that removes one head's output.

    Args:
        head: the head's index in its layer.
        mode: ``"zero"`` (``z[:, head] = 0``, the head writes nothing) or ``"mean"`` (``z[:, head]``
            becomes ``mean[head]``, its average over a reference batch, from :func:`mean_z`).
        mean: ``[head, pos, d_head]``, needed for ``"mean"``.

    Returns:
        a function ``z [batch, head, pos, d_head] -> z``, for
        ``hooks={"blocks.{l}.attn.hook_z": f}``.
    """
    if isinstance(head, bool) or not isinstance(head, int) or head < 0:
        raise ValueError(f"head must be a non-negative int, got {head!r}")
    if mode not in ("zero", "mean"):
        raise ValueError(f"mode must be 'zero' or 'mean', got {mode!r}")
    if mode == "mean" and not isinstance(mean, torch.Tensor):
        raise ValueError("a mean ablation needs mean = mean_z(model, layer, tokens)")

    def hook(z: torch.Tensor) -> torch.Tensor:
        if head >= z.shape[1]:
            raise ValueError(f"head {head} does not exist: the layer has {z.shape[1]} heads")
        z = z.clone()
        if mode == "zero":
            z[:, head] = 0
        else:
            z[:, head] = mean[head, : z.shape[2]].to(z)
        return z

    return hook


def scale_ov(model: AttentionOnlyTransformer, layer: int, head: int,
             factor: float) -> AttentionOnlyTransformer:
    """A copy with one head's OV circuit multiplied by ``factor`` (its ``W_O`` scaled).

    The head's QK circuit (``W_Q``, ``W_K``) is untouched, so in layer 0 its attention pattern
    stays exactly the same; only what it writes changes. ``factor = -1`` negates ``W_OV``.
    """
    _check_model(model)
    _layer(model, layer, "W_O")
    if isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < model.cfg.n_heads:
        raise ValueError(f"head must be an int in [0, {model.cfg.n_heads}), got {head!r}")
    new = copy.deepcopy(model)
    with torch.no_grad():
        new.blocks[layer].attn.W_O[head] *= float(factor)
    return new
