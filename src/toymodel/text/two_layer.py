"""What a two-layer language model shows: a previous-token head, an induction head, and the
K-composition that ties them (the measurements of lesson 05 and its tests).

For a two-layer :class:`~toymodel.model.AttentionOnlyTransformer` ``model`` (row convention):

* :func:`repeated_random`      ``EOS, r, r``: random tokens, then the same tokens again.
* :func:`text_previous_token`  each head's mean attention to the previous token on held-out text.
* :func:`copy_losses`          the next-token loss on the first and on the second copy.
* :func:`measure`              every score at once, a :class:`Induction` record.
* :func:`ablated`              the same measurements with one head's output replaced by its mean.
* :func:`training_probe`       the few numbers a training log records, to date the phase change.

The induction, duplicate-token and previous-token scores on ``EOS, r, r`` are those of
:func:`toymodel.induction.head_scores`; the K-composition scores and their random baseline are
those of :mod:`toymodel.composition`, so the synthetic lesson and this one measure the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..composition import (
    _check_model,
    ablation_hook,
    composition_baseline,
    composition_scores,
    mean_z,
)
from ..induction import EVAL_SEED, head_scores

__all__ = [
    "repeated_random",
    "text_previous_token",
    "copy_losses",
    "Induction",
    "measure",
    "ablated",
    "training_probe",
]


def _check(model):
    _check_model(model, n_layers=2)


def repeated_random(d_vocab: int, eos: int, half: int = 50, n: int = 32,
                    seed: int = EVAL_SEED) -> torch.Tensor:
    """``[n, 1 + 2 half]`` token ids: ``eos``, then ``half`` random tokens (never ``eos``), then the
    same ``half`` tokens again. Nothing in the first copy can be predicted; everything in the
    second can, by a model that looks back for the token after the current one's last use."""
    if not 0 <= eos < d_vocab:
        raise ValueError(f"eos must be a token id in [0, {d_vocab}), got {eos}")
    if half < 2:
        raise ValueError(f"half must be at least 2 tokens, got {half}")
    g = torch.Generator().manual_seed(seed)
    r = torch.randint(0, d_vocab - 1, (n, half), generator=g)
    r = r + (r >= eos).long()
    return torch.cat([torch.full((n, 1), eos), r, r], dim=1)


@torch.no_grad()
def text_previous_token(model, ids, n: int = 32, seed: int = 1234) -> np.ndarray:
    """``[n_layers, n_heads]``: mean attention from each position to the one before it, over ``n``
    windows of ``n_ctx`` held-out token ids ``ids`` (fixed by ``seed``)."""
    from .lm import sample_windows

    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    w = sample_windows(ids, n, model.cfg.n_ctx, torch.Generator().manual_seed(seed))
    _, pattern = model.run_with_pattern(w)
    p = torch.arange(1, model.cfg.n_ctx)
    return pattern[..., p, p - 1].mean((0, -1)).double().numpy()


def _losses(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``[pos - 1]``: the loss of predicting token ``p + 1`` at position ``p``, batch mean."""
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none").mean(0)


def copy_losses(per_position: torch.Tensor, half: int) -> tuple[float, float]:
    """Mean loss on the first copy (predicting its tokens 2 .. half) and on the second copy
    (predicting every one of its tokens), from the ``[2 half]`` per-position losses of
    ``EOS, r, r``."""
    if per_position.shape != (2 * half,):
        raise ValueError(f"per_position must have shape [{2 * half}], got "
                         f"{list(per_position.shape)}")
    return float(per_position[1:half].mean()), float(per_position[half:].mean())


@dataclass
class Induction:
    """The two-layer measurements (numpy arrays; heads on the last axis).

    Attributes:
        previous_token: ``[n_layers, n_heads]`` on ``EOS, r, r`` (destination ``p``, source
            ``p - 1``).
        text_previous_token: ``[n_layers, n_heads]`` on held-out text, or ``None``.
        induction: ``[n_layers, n_heads]`` on the second copy (source: the token after the
            current token's first occurrence).
        duplicate_token: ``[n_layers, n_heads]`` (source: the current token's first occurrence).
        loss: ``[2 half]`` per-position loss; ``loss_first`` and ``loss_second`` its two means.
        k_composition: ``[n_heads (layer 0), n_heads (layer 1)]``; ``k_baseline`` random level.
        prev_head, ind_head: the best previous-token head of layer 0 and induction head of layer 1.
    """

    previous_token: np.ndarray
    text_previous_token: np.ndarray | None
    induction: np.ndarray
    duplicate_token: np.ndarray
    loss: np.ndarray
    loss_first: float
    loss_second: float
    k_composition: np.ndarray
    k_baseline: float
    prev_head: int
    ind_head: int


@torch.no_grad()
def _run(model, tokens, hooks=None):
    logits, cache = model.run_with_cache(tokens, hooks=hooks)
    pattern = torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"]
                           for layer in range(model.cfg.n_layers)], dim=1)
    return logits, pattern


def measure(model, tokens: torch.Tensor, held_ids=None) -> Induction:
    """Every score of :class:`Induction` for ``model`` on ``tokens`` (:func:`repeated_random`)."""
    _check(model)
    half = (tokens.shape[1] - 1) // 2
    logits, pattern = _run(model, tokens)
    s = head_scores(pattern)
    loss = _losses(logits, tokens)
    first, second = copy_losses(loss, half)
    prev = s.previous_token.numpy()
    text_prev = None if held_ids is None else text_previous_token(model, held_ids)
    chooser = prev if text_prev is None else text_prev
    k = composition_scores(model)["k"].numpy()
    return Induction(
        previous_token=prev,
        text_previous_token=text_prev,
        induction=s.induction.numpy(),
        duplicate_token=s.duplicate_token.numpy(),
        loss=loss.double().numpy(),
        loss_first=first,
        loss_second=second,
        k_composition=k,
        k_baseline=composition_baseline(model.cfg.d_model, model.cfg.d_head)["k"],
        prev_head=int(chooser[0].argmax()),
        ind_head=int(s.induction[1].argmax()),
    )


def ablated(model, tokens: torch.Tensor, layer: int, head: int) -> dict:
    """Mean-ablate one head (its output becomes its average over ``tokens`` at each position) and
    measure again: ``{"induction": [n_heads] of layer 1, "loss_first", "loss_second"}``."""
    _check(model)
    if not 0 <= layer < model.cfg.n_layers or not 0 <= head < model.cfg.n_heads:
        raise ValueError(f"no head {layer}.{head}: the model has {model.cfg.n_layers} layers of "
                         f"{model.cfg.n_heads} heads")
    half = (tokens.shape[1] - 1) // 2
    hook = ablation_hook(head, "mean", mean_z(model, layer, tokens))
    logits, pattern = _run(model, tokens, hooks={f"blocks.{layer}.attn.hook_z": hook})
    first, second = copy_losses(_losses(logits, tokens), half)
    return {"induction": head_scores(pattern).induction[1].numpy(),
            "loss_first": first, "loss_second": second}


def training_probe(model, eos: int) -> dict:
    """What the training log of a two-layer model records every few hundred steps: the best
    previous-token score of a layer-0 head and the best induction score of a layer-1 head on
    ``EOS, r, r`` (50 random tokens, or fewer in a short context), and the mean loss on each
    copy."""
    half = min(50, (model.cfg.n_ctx - 1) // 2)
    was_training = model.training
    model.eval()
    try:
        m = measure(model, repeated_random(model.cfg.d_vocab, eos, half=half))
    finally:
        model.train(was_training)
    return {"prev_token": round(float(m.previous_token[0].max()), 4),
            "induction": round(float(m.induction[1].max()), 4),
            "loss_first": round(m.loss_first, 4),
            "loss_second": round(m.loss_second, 4)}
