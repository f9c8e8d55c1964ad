"""What a two-layer language model shows: a previous-token head, an induction head, and the
K-composition that ties them (the measurements of lesson 05 and its tests).

For a two-layer :class:`~toymodel.model.AttentionOnlyTransformer` ``model`` (row convention):

* :func:`repeated_random`      ``EOS, r, r``: random tokens, then the same tokens again.
* :func:`text_previous_token`  each head's mean attention to the previous token on held-out text.
* :func:`copy_losses`          the next-token loss on the first and on the second copy.
* :func:`measure`              every score at once, a :class:`Induction` record.
* :func:`ablated`              the same measurements with one head's output replaced by its mean.
* :func:`training_probe`       the few numbers a training log records, to date the phase change.
* :func:`natural_text_card`    every plain-text measurement at once (issue 31), a :class:`TextCard`;
  :func:`bar_verdicts` holds it against :data:`BARS`, :func:`format_verdicts` prints that.
* :func:`predicted_emergence`  the training tokens by which a scaling law expects induction heads.

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
    "BARS",
    "TextCard",
    "natural_text_card",
    "bar_verdicts",
    "format_verdicts",
    "LAW_T",
    "predicted_emergence",
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
    try:  # what measure() computes, without the composition scores the log does not keep
        tokens = repeated_random(model.cfg.d_vocab, eos, half=half)
        logits, pattern = _run(model, tokens)
        s = head_scores(pattern)
        first, second = copy_losses(_losses(logits, tokens), half)
    finally:
        model.train(was_training)
    return {"prev_token": round(float(s.previous_token[0].max()), 4),
            "induction": round(float(s.induction[1].max()), 4),
            "loss_first": round(first, 4),
            "loss_second": round(second, 4)}


# ---------------------------------------------------------------------------------------------
# induction on natural text (issue 31): what the model does with plain held-out windows
# ---------------------------------------------------------------------------------------------

TEXT_WINDOWS = 200  # the outside measurement: 200 held-out windows of 64 tokens
TEXT_LENGTH = 64


def text_windows(ids, n: int = TEXT_WINDOWS, length: int = TEXT_LENGTH,
                 seed: int = 1234) -> torch.Tensor:
    """``[n, length]`` windows of the token ids ``ids`` at offsets fixed by ``seed``."""
    from .lm import sample_windows

    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    return sample_windows(ids, n, length, torch.Generator().manual_seed(seed))


def continuation_sources(w: torch.Tensor) -> torch.Tensor:
    """``[n, dest, src]`` bool: ``src`` follows an earlier occurrence of the token at ``dest``.

    For windows ``w`` ``[n, length]``, ``True`` where ``w[src - 1] == w[dest]`` and
    ``src - 1 < dest - 1`` (the earlier occurrence and the token after it both lie before
    ``dest``): the positions an induction head at ``dest`` attends to.
    """
    n, length = w.shape
    same = w[:, :, None] == w[:, None, :]  # [n, dest, j]
    j = torch.arange(length)
    same &= j[None, None, :] < (j[None, :, None] - 1)
    out = torch.zeros_like(same)
    out[:, :, 1:] = same[:, :, :-1]
    return out


def continuation_targets(w: torch.Tensor) -> torch.Tensor:
    """``[n, length - 1]`` bool: the next token after position ``p`` repeats the token that
    followed an earlier occurrence of ``w[p]`` (what an induction head predicts right)."""
    src = continuation_sources(w)[:, :-1, :]  # dest p < length - 1
    nxt = w[:, 1:]  # [n, p]: the token to predict at p
    hit = (w[:, None, :] == nxt[:, :, None]) & src  # w[src] == w[p + 1]
    return hit.any(-1)


@torch.no_grad()
def continuation_attention(model, w: torch.Tensor) -> np.ndarray:
    """``[n_layers, n_heads]``: mean attention, over positions whose token occurred earlier in
    the window (and was followed by something before it), on the tokens that followed those
    earlier occurrences."""
    src = continuation_sources(w)
    keep = src.any(-1)  # [n, dest]
    if not keep.any():
        raise ValueError("no token recurs in these windows")
    _, pattern = model.run_with_pattern(w)
    if pattern.ndim == 4:
        pattern = pattern[:, None]
    on = (pattern * src[:, None, None].to(pattern.dtype)).sum(-1)  # [n, layer, head, dest]
    k = keep[:, None, None, :].to(on.dtype)
    return ((on * k).sum((0, -1)) / k.sum((0, -1))).double().numpy()


@torch.no_grad()
def position_losses(model, w: torch.Tensor, hooks=None, chunk: int = 200) -> torch.Tensor:
    """``[n, length - 1]`` next-token losses of ``model`` on windows ``w``, ``chunk`` windows at a
    time (the logits of a thousand windows over a vocabulary of thousands fill half a gigabyte)."""
    out = []
    for i in range(0, len(w), chunk):
        x = w[i : i + chunk]
        logits = model(x, hooks=hooks)[:, :-1]
        flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                               reduction="none")
        out.append(flat.view(len(x), -1))
    return torch.cat(out)


def icl_score(losses: torch.Tensor) -> float:
    """Late minus early loss: the mean over the last 8 positions minus that over positions 8-15
    of ``[n, length - 1]`` per-position losses (negative: later tokens are predicted better)."""
    return float(losses[:, -8:].mean() - losses[:, 8:16].mean())


def text_probe(model, held_ids, eos: int) -> dict:
    """The natural-text numbers a training log records: held-out loss and in-context-learning
    score on 200 windows of 64 tokens, the best previous-token head of layer 0 on held-out text,
    the best continuation attention of a layer-1 head, and the induction score on repeated
    random tokens (:func:`training_probe`). A one-layer model (the comparison trained the same
    way) logs the loss and the in-context-learning score only."""
    was_training = model.training
    model.eval()
    try:
        w = text_windows(held_ids, length=min(TEXT_LENGTH, model.cfg.n_ctx))
        losses = position_losses(model, w)
        if model.cfg.n_layers == 1:
            return {"text_loss": round(float(losses.mean()), 4), "icl": round(icl_score(losses), 4)}
        cont = continuation_attention(model, w)
        prev = text_previous_token(model, held_ids)
        out = {"text_loss": round(float(losses.mean()), 4), "icl": round(icl_score(losses), 4),
               "text_prev": round(float(prev[0].max()), 4),
               "continuation": round(float(cont[-1].max()), 4)}
    finally:
        model.train(was_training)
    out.update(training_probe(model, eos))
    return out


@torch.no_grad()
def text_ablation(model, w: torch.Tensor, layer: int, head: int, base=None) -> dict:
    """How much mean-ablating head ``layer.head`` raises the loss on plain windows ``w``.

    Returns ``{"at_targets", "elsewhere", "n_targets"}``: the mean loss rise (nats) at the
    positions whose next token repeats what followed an earlier occurrence of the current token
    (:func:`continuation_targets`, where an induction head would be right) and at every other
    position, and how many target positions there were. ``base``: the model's own
    :func:`position_losses` on ``w``, when the caller has them already.
    """
    _check(model)
    if base is not None and tuple(base.shape) != (w.shape[0], w.shape[1] - 1):
        raise ValueError(f"base must be the position losses [{w.shape[0]}, {w.shape[1] - 1}] of "
                         f"these windows, got shape {list(base.shape)}")
    if not 0 <= layer < model.cfg.n_layers or not 0 <= head < model.cfg.n_heads:
        raise ValueError(f"no head {layer}.{head}: the model has {model.cfg.n_layers} layers of "
                         f"{model.cfg.n_heads} heads")
    hook = ablation_hook(head, "mean", mean_z(model, layer, w))
    base = position_losses(model, w) if base is None else base
    rise = position_losses(model, w, hooks={f"blocks.{layer}.attn.hook_z": hook}) - base
    t = continuation_targets(w)
    if not t.any() or t.all():
        raise ValueError("the windows need positions both with and without a repeated continuation")
    return {"at_targets": float(rise[t].mean()), "elsewhere": float(rise[~t].mean()),
            "n_targets": int(t.sum())}


# What issue 31 asks of a two-layer model of plain text before the book says it reproduces the
# papers' induction heads (each measured on held-out text as :func:`natural_text_card` does).
BARS = {
    "prev": 0.4,  # a layer-0 head's attention to the previous token
    "induction": 0.3,  # one layer-1 head: induction score on repeated random tokens ...
    "continuation": 0.3,  # ... and attention on earlier continuations in plain text
    "icl_gain": 0.1,  # late-minus-early loss at least this much below the one-layer model's
    "ablation": 0.3,  # mean-ablating that head costs this much where copying is right
}


#: The constant of Aoyama, Wilcox & Schneider's (2025) law: induction heads emerge after about
#: ``LAW_T * sqrt(B * C)`` training tokens, B sequences of C tokens per batch.
LAW_T = 10 ** 5.7


def predicted_emergence(batch: int, n_ctx: int) -> float:
    """Training tokens by which Aoyama et al.'s law expects induction heads, for ``batch``
    sequences of ``n_ctx`` tokens per step (an order of magnitude, not a promise)."""
    if int(batch) < 1 or int(n_ctx) < 1:
        raise ValueError(f"expected a positive batch size and context length, got {batch}, {n_ctx}")
    return LAW_T * float(np.sqrt(int(batch) * int(n_ctx)))


@dataclass
class TextCard:
    """A two-layer language model measured on plain held-out text (:func:`natural_text_card`).

    ``by_position`` is the mean loss at each position ``[length - 1]``; ``prev`` the layer-0 heads'
    previous-token scores on text ``[n_heads]``; ``continuation`` and ``induction`` the layer-1
    heads' attention on earlier continuations in text and induction scores on repeated random
    tokens ``[n_heads]``; ``head`` the layer-1 head whose lower of the two is highest, and
    ``ablation`` what mean-ablating it costs (:func:`text_ablation`).
    """

    loss: float
    icl: float
    by_position: np.ndarray
    prev: np.ndarray
    continuation: np.ndarray
    induction: np.ndarray
    head: int
    ablation: dict

    def summary(self) -> dict:
        """The card's scalar measures by name (what lesson 06 glues, each prefixed ``lm2p_``):
        loss and in-context-learning score, the best previous-token score, the chosen head's
        continuation attention and induction score beside the best of any layer-1 head, and what
        ablating that head costs where copying is right and elsewhere."""
        h = self.head
        return {"loss": float(self.loss), "icl": float(self.icl), "prev": float(self.prev.max()),
                "cont": float(self.continuation[h]), "cont_max": float(self.continuation.max()),
                "ind": float(self.induction[h]), "ind_max": float(self.induction.max()),
                "abl_targets": float(self.ablation["at_targets"]),
                "abl_elsewhere": float(self.ablation["elsewhere"])}


def natural_text_card(model, w: torch.Tensor, held_ids, eos: int) -> TextCard:
    """Every natural-text measurement of issue 31 for a two-layer ``model`` on windows ``w``
    (``[n, length]`` held-out token ids, :func:`text_windows`); ``held_ids`` give the text for the
    previous-token score, ``eos`` starts the repeated random tokens."""
    _check(model)  # a two-layer AttentionOnlyTransformer
    losses = position_losses(model, w)
    cont = continuation_attention(model, w)[1]
    half = min(50, (model.cfg.n_ctx - 1) // 2)
    _, pattern = _run(model, repeated_random(model.cfg.d_vocab, eos, half=half))
    ind = head_scores(pattern).induction[1].numpy()  # as measure() scores it
    head = int(np.argmax(np.minimum(cont, ind)))
    return TextCard(loss=float(losses.mean()), icl=icl_score(losses),
                    by_position=losses.mean(0).numpy(),
                    prev=text_previous_token(model, held_ids)[0], continuation=cont,
                    induction=np.asarray(ind, dtype=np.float64), head=head,
                    ablation=text_ablation(model, w, layer=1, head=head, base=losses))


def bar_verdicts(card: TextCard, one_layer_losses: torch.Tensor) -> list[tuple]:
    """``[(what, value, the bar, holds)]`` for each of :data:`BARS`, the one-layer model's
    per-position losses on the same windows giving the loss and in-context-learning baselines."""
    one_loss, one_icl = float(one_layer_losses.mean()), icl_score(one_layer_losses)
    h, a = card.head, card.ablation
    return [
        ("best layer-0 previous-token score (text)", float(card.prev.max()),
         f">= {BARS['prev']}", float(card.prev.max()) >= BARS["prev"]),
        (f"head 1.{h}: induction score (random tokens)", float(card.induction[h]),
         f">= {BARS['induction']}", float(card.induction[h]) >= BARS["induction"]),
        (f"head 1.{h}: attention on earlier continuations", float(card.continuation[h]),
         f">= {BARS['continuation']}", float(card.continuation[h]) >= BARS["continuation"]),
        ("held-out loss (nats)", card.loss, f"< {one_loss:.2f} (one layer)", card.loss < one_loss),
        ("late minus early loss (nats)", card.icl,
         f"<= {one_icl - BARS['icl_gain']:.2f} (one layer {one_icl:.2f} - {BARS['icl_gain']})",
         card.icl <= one_icl - BARS["icl_gain"]),
        (f"ablating head 1.{h}: loss rise where copying is right", a["at_targets"],
         f">= {BARS['ablation']} and > {a['elsewhere']:.2f} elsewhere",
         a["at_targets"] >= BARS["ablation"] and a["at_targets"] > a["elsewhere"]),
    ]


def format_verdicts(verdicts: list[tuple]) -> str:
    """The rows of :func:`bar_verdicts` as a small table: what, value, holds or not, the bar."""
    return "\n".join(f"  {what:52s} {value:5.2f}  {'holds' if holds else 'not met':7s}  bar {bar}"
                     for what, value, bar, holds in verdicts)
