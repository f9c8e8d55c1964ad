"""A one-layer, attention-only transformer, small enough to read in one sitting.

The residual stream of a token at position ``p`` starts as ``W_E[token] + W_pos[p]``. One layer of
``n_heads`` attention heads adds its outputs, and the unembedding reads the logits off the result.
There is no LayerNorm, no MLP and no bias, so everything the model computes is a sum of products of
its weight matrices (the closed form of :meth:`AttentionOnlyTransformer.decompose`).

Parameter names and shapes follow TransformerLens (row-vector convention, ``x @ W``):

* ``W_E``   ``[d_vocab, d_model]``           token embedding
* ``W_pos`` ``[n_ctx, d_model]``             learned positional embedding
* ``W_Q``, ``W_K``, ``W_V`` ``[n_heads, d_model, d_head]``
* ``W_O``   ``[n_heads, d_head, d_model]``
* ``W_U``   ``[d_model, d_vocab]``           unembedding

Shape names used below: ``batch``, ``pos`` (sequence length, at most ``n_ctx``), ``head``,
``dest``/``src`` (destination and source positions of an attention pattern).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ._validate import check_positive_int

__all__ = ["ModelConfig", "AttentionOnlyTransformer", "Decomposition"]


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of an :class:`AttentionOnlyTransformer` and the seed of its initial weights."""

    d_vocab: int
    d_model: int = 32
    d_head: int = 16
    n_heads: int = 1
    n_ctx: int = 8
    seed: int = 0

    def __post_init__(self):
        for name in ("d_vocab", "d_model", "d_head", "n_heads", "n_ctx"):
            check_positive_int(getattr(self, name), name)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Build a config from a dict, rejecting unknown or missing keys with a ``ValueError``."""
        if not isinstance(d, dict):
            raise TypeError(f"a model config must be a dict, got {type(d).__name__}")
        fields = set(cls.__dataclass_fields__)
        unknown = set(d) - fields
        if unknown:
            raise ValueError(
                f"unknown model config keys {sorted(unknown)}; expected {sorted(fields)}"
            )
        try:
            return cls(**d)
        except TypeError as err:  # a required key is missing
            raise ValueError(f"bad model config {d!r}: {err}") from None


@dataclass
class Decomposition:
    """The closed form of one forward pass, every part a plain tensor.

    Attributes:
        embed: ``W_E[tokens] + W_pos[:pos]`` ``[batch, pos, d_model]``.
        pattern: attention pattern ``[batch, head, dest, src]``.
        heads: what each head writes, ``pattern^h @ (embed @ W_OV^h)``
            ``[batch, head, pos, d_model]``.
        direct_logits: the direct path ``embed @ W_U`` ``[batch, pos, d_vocab]``.
        head_logits: each head's path ``heads @ W_U`` ``[batch, head, pos, d_vocab]``.
    """

    embed: torch.Tensor
    pattern: torch.Tensor
    heads: torch.Tensor
    direct_logits: torch.Tensor
    head_logits: torch.Tensor

    @property
    def residual(self) -> torch.Tensor:
        """Final residual stream ``embed + sum_h heads[:, h]`` ``[batch, pos, d_model]``."""
        return self.embed + self.heads.sum(1)

    @property
    def logits(self) -> torch.Tensor:
        """``direct_logits + sum_h head_logits[:, h]`` ``[batch, pos, d_vocab]``."""
        return self.direct_logits + self.head_logits.sum(1)


class AttentionOnlyTransformer(nn.Module):
    """One attention layer between an embedding and an unembedding; causal; no LayerNorm or MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"cfg must be a ModelConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        g = torch.Generator().manual_seed(cfg.seed)
        V, D, H, Dh, C = cfg.d_vocab, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.n_ctx

        def init(*shape, fan_in):
            return nn.Parameter(torch.randn(*shape, generator=g) / math.sqrt(fan_in))

        self.W_E = init(V, D, fan_in=D)
        self.W_pos = init(C, D, fan_in=D)
        self.W_Q = init(H, D, Dh, fan_in=D)
        self.W_K = init(H, D, Dh, fan_in=D)
        self.W_V = init(H, D, Dh, fan_in=D)
        self.W_O = init(H, Dh, D, fan_in=Dh * H)
        self.W_U = init(D, V, fan_in=D)

    # ---------------------------------------------------------------------------------------
    # the standard computation
    # ---------------------------------------------------------------------------------------

    def check_tokens(self, tokens) -> torch.Tensor:
        """Validate token ids ``[batch, pos]`` and move them to the parameters' device."""
        if not isinstance(tokens, torch.Tensor):
            raise TypeError(
                f"tokens must be a torch tensor of integer ids, got {type(tokens).__name__}"
            )
        if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
            raise TypeError(
                f"tokens must have an integer dtype (e.g. torch.long), got {tokens.dtype}"
            )
        if tokens.ndim != 2:
            raise ValueError(
                f"tokens must have shape [batch, pos], got a rank-{tokens.ndim} tensor of shape "
                f"{list(tokens.shape)}"
            )
        batch, pos = tokens.shape
        if batch == 0 or pos == 0:
            raise ValueError(f"tokens must be non-empty, got shape {list(tokens.shape)}")
        if pos > self.cfg.n_ctx:
            raise ValueError(f"sequence length {pos} is longer than n_ctx = {self.cfg.n_ctx}")
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= self.cfg.d_vocab:
            raise ValueError(
                f"token ids must lie in [0, {self.cfg.d_vocab}) (d_vocab = {self.cfg.d_vocab}), "
                f"got ids from {lo} to {hi}"
            )
        return tokens.to(self.W_E.device, torch.long)

    def embed(self, tokens) -> torch.Tensor:
        """``W_E[tokens] + W_pos[:pos]`` ``[batch, pos, d_model]`` for tokens ``[batch, pos]``."""
        tokens = self.check_tokens(tokens)
        return nn.functional.embedding(tokens, self.W_E) + self.W_pos[: tokens.shape[1]]

    def _softmax(self, scores: torch.Tensor, score_hook=None) -> torch.Tensor:
        """Causal softmax of raw scores ``[batch, head, dest, src]`` scaled by ``1/sqrt(d_head)``.

        ``score_hook``, if given, maps the raw scores to new scores of the same shape first (an
        experiment may set some to ``-inf`` to forbid those sources).
        """
        if score_hook is not None:
            new = score_hook(scores)
            if not isinstance(new, torch.Tensor) or new.shape != scores.shape:
                raise ValueError(f"score_hook must return a tensor of shape {list(scores.shape)}")
            scores = new
        n = scores.shape[-1]
        future = torch.ones(n, n, dtype=torch.bool, device=scores.device).triu(1)
        scores = scores.masked_fill(future, float("-inf")) / math.sqrt(self.cfg.d_head)
        return torch.softmax(scores, dim=-1)

    def run_with_pattern(self, tokens, score_hook=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward pass that also returns the attention pattern.

        Args:
            tokens: integer ids ``[batch, pos]`` with ``pos <= n_ctx``.
            score_hook: optional function of the raw scores ``[batch, head, dest, src]`` that
                returns edited scores (see :meth:`_softmax`); None for the plain model.

        Returns:
            ``(logits [batch, pos, d_vocab], pattern [batch, head, dest, src])``.
        """
        x = self.embed(tokens)  # [batch, pos, d_model]
        q = torch.einsum("bpd,hde->bhpe", x, self.W_Q)  # [batch, head, pos, d_head]
        k = torch.einsum("bpd,hde->bhpe", x, self.W_K)
        v = torch.einsum("bpd,hde->bhpe", x, self.W_V)
        pattern = self._softmax(q @ k.transpose(-1, -2), score_hook)  # [batch, head, dest, src]
        z = pattern @ v  # [batch, head, pos, d_head]
        resid = x + torch.einsum("bhpe,hed->bpd", z, self.W_O)
        return resid @ self.W_U, pattern

    def forward(self, tokens, score_hook=None) -> torch.Tensor:
        """Logits ``[batch, pos, d_vocab]`` for integer tokens ``[batch, pos]``."""
        return self.run_with_pattern(tokens, score_hook)[0]

    # ---------------------------------------------------------------------------------------
    # the closed form, built from the circuits W_QK = W_Q W_K^T and W_OV = W_V W_O
    # ---------------------------------------------------------------------------------------

    @property
    def W_QK(self) -> torch.Tensor:
        """``W_Q @ W_K^T`` ``[head, d_model, d_model]``."""
        return self.W_Q @ self.W_K.transpose(-1, -2)

    @property
    def W_OV(self) -> torch.Tensor:
        """``W_V @ W_O`` ``[head, d_model, d_model]``."""
        return self.W_V @ self.W_O

    def decompose(self, tokens, score_hook=None) -> Decomposition:
        """The forward pass rewritten as a sum of paths (see :class:`Decomposition`).

        The pattern comes from ``x W_QK x^T`` and each head's output from ``pattern (x W_OV)``;
        ``decompose(t).logits`` equals ``forward(t)`` up to floating-point rounding.
        """
        x = self.embed(tokens)  # [batch, pos, d_model]
        xh = x.unsqueeze(1)  # [batch, 1, pos, d_model]
        scores = xh @ self.W_QK @ xh.transpose(-1, -2)  # [batch, head, dest, src]
        pattern = self._softmax(scores, score_hook)  # [batch, head, dest, src]
        heads = pattern @ (xh @ self.W_OV)  # [batch, head, pos, d_model]
        return Decomposition(
            embed=x,
            pattern=pattern,
            heads=heads,
            direct_logits=x @ self.W_U,
            head_logits=heads @ self.W_U,
        )

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.cfg.to_dict().items())
