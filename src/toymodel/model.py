"""An attention-only transformer with one or more layers, small enough to read in one sitting.

The residual stream of a token at position ``p`` starts as ``W_E[token] + W_pos[p]``. Each of
``n_layers`` layers of ``n_heads`` attention heads reads the stream and adds its heads' outputs to
it, and the unembedding reads the logits off the result. There is no LayerNorm, no MLP and no
bias, so everything the model computes is a sum of products of its weight matrices (the closed
form of :meth:`AttentionOnlyTransformer.decompose` for one layer; the path expansion of
:mod:`toymodel.composition` for two).

Parameter names and shapes follow TransformerLens (row-vector convention, ``x @ W``):

* ``W_E``   ``[d_vocab, d_model]``           token embedding
* ``W_pos`` ``[n_ctx, d_model]``             learned positional embedding
* ``blocks[l].attn.W_Q``, ``.W_K``, ``.W_V`` ``[n_heads, d_model, d_head]`` (layer ``l``)
* ``blocks[l].attn.W_O``  ``[n_heads, d_head, d_model]``
* ``W_U``   ``[d_model, d_vocab]``           unembedding

Shortcuts, as in TransformerLens: ``model.W_Q`` (and ``W_K``, ``W_V``, ``W_O``, ``W_QK``, ``W_OV``)
stacks every layer, ``[n_layers, n_heads, ...]``. A one-layer model drops the layer axis, so
``model.W_Q`` is the layer's own parameter ``[n_heads, d_model, d_head]`` (and can be edited in
place), as the one-layer lessons use it; likewise :meth:`~AttentionOnlyTransformer.run_with_pattern`
returns ``[batch, head, dest, src]`` for one layer and ``[batch, layer, head, dest, src]`` for more.

Shape names used below: ``batch``, ``pos`` (sequence length, at most ``n_ctx``), ``head``,
``dest``/``src`` (destination and source positions of an attention pattern).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ._validate import check_positive_int

__all__ = ["ModelConfig", "AttentionOnlyTransformer", "Attention", "Block", "Decomposition"]

# "standard": W_pos is added to the residual stream once, with W_E. "shortformer": the residual
# stream carries tokens only, and W_pos is added to the input of every layer's queries and keys
# (never to values), as in TransformerLens' attention-only models (Press et al. 2021).
POSITIONAL = ("standard", "shortformer")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of an :class:`AttentionOnlyTransformer` and the seed of its initial weights."""

    d_vocab: int
    d_model: int = 32
    d_head: int = 16
    n_heads: int = 1
    n_ctx: int = 8
    seed: int = 0
    n_layers: int = 1
    # left out of the repr (and of to_dict when "standard"), so configs printed or saved before
    # the option existed read the same
    positional: str = field(default="standard", repr=False)

    def __post_init__(self):
        for name in ("d_vocab", "d_model", "d_head", "n_heads", "n_ctx", "n_layers"):
            check_positive_int(getattr(self, name), name)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.positional not in POSITIONAL:
            raise ValueError(f"positional must be one of {POSITIONAL}, got {self.positional!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["positional"] == "standard":  # files written before the option stay byte-identical
            del d["positional"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Build a config from a dict, rejecting unknown or missing keys with a ``ValueError``.

        ``n_layers`` may be absent (the one-layer checkpoints predate it); it then defaults to 1.
        """
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
    """The closed form of one forward pass of a one-layer model, every part a plain tensor.

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


def causal_softmax(scores: torch.Tensor, d_head: int) -> torch.Tensor:
    """Attention pattern from raw scores ``[..., dest, src]``: mask the future, scale, softmax.

    Future sources (``src > dest``) get ``-inf`` before the softmax, then every score is divided
    by ``sqrt(d_head)``; each row of the result sums to one over the sources it may see.
    """
    n = scores.shape[-1]
    future = torch.ones(n, n, dtype=torch.bool, device=scores.device).triu(1)
    scores = scores.masked_fill(future, float("-inf")) / math.sqrt(d_head)
    return torch.softmax(scores, dim=-1)


def _apply_hook(hook, value: torch.Tensor, what: str) -> torch.Tensor:
    if hook is None:
        return value
    new = hook(value)
    if not isinstance(new, torch.Tensor) or new.shape != value.shape:
        raise ValueError(f"{what} must return a tensor of shape {list(value.shape)}")
    return new


class Attention(nn.Module):
    """One layer of ``n_heads`` causal attention heads (TransformerLens names and shapes).

    Parameters: ``W_Q, W_K, W_V [n_heads, d_model, d_head]`` and ``W_O [n_heads, d_head,
    d_model]``, set by the model that owns the layer.
    """

    def __init__(self, W_Q, W_K, W_V, W_O):
        super().__init__()
        self.W_Q, self.W_K, self.W_V, self.W_O = (nn.Parameter(w) for w in (W_Q, W_K, W_V, W_O))

    @property
    def W_QK(self) -> torch.Tensor:
        """``W_Q @ W_K^T`` ``[head, d_model, d_model]``."""
        return self.W_Q @ self.W_K.transpose(-1, -2)

    @property
    def W_OV(self) -> torch.Tensor:
        """``W_V @ W_O`` ``[head, d_model, d_model]``."""
        return self.W_V @ self.W_O

    def forward(self, x, score_hook=None, z_hook=None, cache=None, prefix="attn", qk_pos=None):
        """What the layer adds to the residual stream ``x [batch, pos, d_model]``.

        Args:
            x: residual stream ``[batch, pos, d_model]``.
            score_hook: optional function of the raw scores ``[batch, head, dest, src]`` (before
                the mask and the ``1/sqrt(d_head)`` scale) that returns edited scores.
            z_hook: optional function of the heads' mixed values ``z = pattern @ (x W_V)``
                ``[batch, head, pos, d_head]`` that returns edited ones (zeroing ``z[:, h]``
                removes head ``h``'s output, since it writes ``z[:, h] @ W_O[h]``).
            cache: optional dict; ``prefix + ".hook_pattern"`` and ``".hook_z"`` are stored in it.
            qk_pos: optional ``[pos, d_model]`` added to ``x`` for the queries and keys only
                (shortformer positions).

        Returns:
            ``(out [batch, pos, d_model], pattern [batch, head, dest, src])``.
        """
        xqk = x if qk_pos is None else x + qk_pos
        q = torch.einsum("bpd,hde->bhpe", xqk, self.W_Q)  # [batch, head, pos, d_head]
        k = torch.einsum("bpd,hde->bhpe", xqk, self.W_K)
        v = torch.einsum("bpd,hde->bhpe", x, self.W_V)
        scores = _apply_hook(score_hook, q @ k.transpose(-1, -2), "score_hook")
        pattern = causal_softmax(scores, self.W_Q.shape[-1])  # [batch, head, dest, src]
        z = _apply_hook(z_hook, pattern @ v, "z_hook")  # [batch, head, pos, d_head]
        if cache is not None:
            cache[f"{prefix}.hook_pattern"] = pattern
            cache[f"{prefix}.hook_z"] = z
        return torch.einsum("bhpe,hed->bpd", z, self.W_O), pattern


class Block(nn.Module):
    """A residual block with attention only: ``x + attn(x)``."""

    def __init__(self, attn: Attention):
        super().__init__()
        self.attn = attn


class AttentionOnlyTransformer(nn.Module):
    """Attention layers between an embedding and an unembedding; causal; no LayerNorm or MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"cfg must be a ModelConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        g = torch.Generator().manual_seed(cfg.seed)
        V, D, H, Dh, C = cfg.d_vocab, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.n_ctx

        def init(*shape, fan_in):
            return torch.randn(*shape, generator=g) / math.sqrt(fan_in)

        # Drawn in this order (embeddings, then each layer's Q, K, V, O, then W_U), so a one-layer
        # config gets exactly the weights it got before the model had more than one layer.
        self.W_E = nn.Parameter(init(V, D, fan_in=D))
        self.W_pos = nn.Parameter(init(C, D, fan_in=D))
        self.blocks = nn.ModuleList(
            Block(
                Attention(
                    init(H, D, Dh, fan_in=D),
                    init(H, D, Dh, fan_in=D),
                    init(H, D, Dh, fan_in=D),
                    init(H, Dh, D, fan_in=Dh * H),
                )
            )
            for _ in range(cfg.n_layers)
        )
        self.W_U = nn.Parameter(init(D, V, fan_in=D))

    # ---------------------------------------------------------------------------------------
    # weights of every layer at once
    # ---------------------------------------------------------------------------------------

    def _stacked(self, name: str) -> torch.Tensor:
        if self.cfg.n_layers == 1:
            return getattr(self.blocks[0].attn, name)
        return torch.stack([getattr(b.attn, name) for b in self.blocks])

    @property
    def W_Q(self) -> torch.Tensor:
        """Query weights ``[head, d_model, d_head]`` (one layer) or ``[layer, head, ...]``."""
        return self._stacked("W_Q")

    @property
    def W_K(self) -> torch.Tensor:
        """Key weights ``[head, d_model, d_head]`` (one layer) or ``[layer, head, ...]``."""
        return self._stacked("W_K")

    @property
    def W_V(self) -> torch.Tensor:
        """Value weights ``[head, d_model, d_head]`` (one layer) or ``[layer, head, ...]``."""
        return self._stacked("W_V")

    @property
    def W_O(self) -> torch.Tensor:
        """Output weights ``[head, d_head, d_model]`` (one layer) or ``[layer, head, ...]``."""
        return self._stacked("W_O")

    @property
    def W_QK(self) -> torch.Tensor:
        """``W_Q @ W_K^T`` ``[head, d_model, d_model]`` (one layer) or ``[layer, head, ...]``."""
        return self.W_Q @ self.W_K.transpose(-1, -2)

    @property
    def W_OV(self) -> torch.Tensor:
        """``W_V @ W_O`` ``[head, d_model, d_model]`` (one layer) or ``[layer, head, ...]``."""
        return self.W_V @ self.W_O

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
        """``W_E[tokens] + W_pos[:pos]`` ``[batch, pos, d_model]`` for tokens ``[batch, pos]``
        (``W_E[tokens]`` alone with shortformer positions)."""
        tokens = self.check_tokens(tokens)
        x = nn.functional.embedding(tokens, self.W_E)
        if self.cfg.positional == "shortformer":
            return x
        return x + self.W_pos[: tokens.shape[1]]

    def _softmax(self, scores: torch.Tensor, score_hook=None) -> torch.Tensor:
        """Causal softmax of raw scores ``[batch, head, dest, src]`` scaled by ``1/sqrt(d_head)``.

        ``score_hook``, if given, maps the raw scores to new scores of the same shape first (an
        experiment may set some to ``-inf`` to forbid those sources).
        """
        return causal_softmax(_apply_hook(score_hook, scores, "score_hook"), self.cfg.d_head)

    def run_with_cache(self, tokens, score_hook=None, hooks=None) -> tuple[torch.Tensor, dict]:
        """Forward pass that also returns the intermediate tensors, by TransformerLens name.

        Args:
            tokens: integer ids ``[batch, pos]`` with ``pos <= n_ctx``.
            score_hook: optional function of the raw scores ``[batch, head, dest, src]`` applied
                in every layer (see :meth:`_softmax`).
            hooks: optional ``{name: function}`` for single layers, with names
                ``"blocks.{l}.attn.hook_attn_scores"`` (raw scores, applied after ``score_hook``)
                and ``"blocks.{l}.attn.hook_z"`` (``[batch, head, pos, d_head]``; TransformerLens
                puts ``pos`` before ``head``). Each function returns a tensor of the same shape.

        Returns:
            ``(logits [batch, pos, d_vocab], cache)`` with ``cache["blocks.{l}.hook_resid_pre"]``
            ``[batch, pos, d_model]``, ``"blocks.{l}.attn.hook_pattern"`` ``[batch, head, dest,
            src]``, ``"blocks.{l}.attn.hook_z"`` and ``"hook_resid_final"``.
        """
        cache: dict = {}
        logits = self._run(tokens, score_hook, hooks, cache)[0]
        return logits, cache

    def _run(self, tokens, score_hook=None, hooks=None, cache=None, unembed=True):
        hooks = dict(hooks or {})
        names = {f"blocks.{i}.attn.hook_{s}" for i in range(self.cfg.n_layers)
                 for s in ("attn_scores", "z")}
        unknown = sorted(set(hooks) - names)
        if unknown:
            raise ValueError(f"unknown hook names {unknown}; expected some of {sorted(names)}")
        x = self.embed(tokens)  # [batch, pos, d_model]
        qk_pos = self.W_pos[: x.shape[1]] if self.cfg.positional == "shortformer" else None
        patterns = []
        for layer, block in enumerate(self.blocks):
            prefix = f"blocks.{layer}"
            if cache is not None:
                cache[f"{prefix}.hook_resid_pre"] = x
            own = hooks.get(f"{prefix}.attn.hook_attn_scores")
            scores_hook = score_hook if own is None else (
                own if score_hook is None else (lambda s, a=score_hook, b=own: b(a(s))))
            out, pattern = block.attn(x, scores_hook, hooks.get(f"{prefix}.attn.hook_z"),
                                      cache, f"{prefix}.attn", qk_pos)
            x = x + out
            patterns.append(pattern)
        if cache is not None:
            cache["hook_resid_final"] = x
        return (x @ self.W_U if unembed else x), patterns

    def resid_final(self, tokens) -> torch.Tensor:
        """The residual stream after the last layer ``[batch, pos, d_model]``, before ``W_U``.

        ``resid_final(tokens) @ W_U`` is the forward pass; computing it without the unembedding
        lets a caller unembed only the positions it needs.
        """
        return self._run(tokens, unembed=False)[0]

    def run_with_pattern(self, tokens, score_hook=None, hooks=None):
        """Forward pass that also returns the attention pattern.

        Args:
            tokens: integer ids ``[batch, pos]`` with ``pos <= n_ctx``.
            score_hook: optional function of the raw scores ``[batch, head, dest, src]`` that
                returns edited scores (see :meth:`_softmax`), applied in every layer; None for
                the plain model.
            hooks: optional per-layer hooks, as in :meth:`run_with_cache`.

        Returns:
            ``(logits [batch, pos, d_vocab], pattern)``, the pattern ``[batch, head, dest, src]``
            for a one-layer model and ``[batch, layer, head, dest, src]`` otherwise.
        """
        logits, patterns = self._run(tokens, score_hook, hooks)
        if self.cfg.n_layers == 1:
            return logits, patterns[0]
        return logits, torch.stack(patterns, dim=1)

    def forward(self, tokens, score_hook=None, hooks=None) -> torch.Tensor:
        """Logits ``[batch, pos, d_vocab]`` for integer tokens ``[batch, pos]``."""
        return self._run(tokens, score_hook, hooks)[0]

    # ---------------------------------------------------------------------------------------
    # the closed form of a one-layer model, built from W_QK = W_Q W_K^T and W_OV = W_V W_O
    # ---------------------------------------------------------------------------------------

    def decompose(self, tokens, score_hook=None) -> Decomposition:
        """The forward pass of a one-layer model rewritten as a sum of paths.

        The pattern comes from ``x W_QK x^T`` and each head's output from ``pattern (x W_OV)``;
        ``decompose(t).logits`` equals ``forward(t)`` up to floating-point rounding. For more
        layers use :func:`toymodel.composition.path_expansion`.
        """
        if self.cfg.n_layers != 1:
            raise ValueError(
                f"decompose needs a one-layer model, this one has {self.cfg.n_layers} layers; "
                "use toymodel.composition.path_expansion"
            )
        if self.cfg.positional != "standard":
            raise ValueError("decompose needs standard positions (W_pos in the residual stream), "
                             f"this model's are {self.cfg.positional!r}")
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
