"""Checks of assignment 4 (composition): patterns of a two-layer model, previous-token scores,
composition scores, K-composition, a zero-ablation hook and accuracies with a head ablated.

Shared helpers (messages, array comparison, small models) live in :mod:`toymodel.grading.core`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._answers import (
    composition_score_of,
    layer_offset_scores,
    offset_score_of,
    previous_token_score_of,
    side_removed_scores,
    two_layer_scores,
)
from .core import (
    _fail,
    _not_answered,
    _softmax,
    as_array,
    check_array,
    check_close,
    check_function,
    check_value,
)
from .head_by_hand import check_pattern

__all__ = [
    "check_head_pattern",
    "check_previous_token_score",
    "check_previous_token_scores",
    "check_prev_head",
    "check_composition_score",
    "check_k_composition",
    "check_zero_head",
    "check_induction_accuracy",
    "check_ablated_accuracy",
    "check_induction_score",
    "check_induction_evidence",
    "check_side_removed",
    "check_side_evidence",
    "repeated_sequences",
    "check_side_function",
]


def check_head_pattern(pattern, model, resid, layer: int, head: int, name: str = "pattern"):
    """One head's pattern ``[batch, dest, src]`` from the stream ``resid [batch, pos, d_model]``
    that its layer reads: scaled, causally masked, softmaxed rows (see :func:`check_pattern`)."""
    _need_model(model)
    x = as_array(resid, "resid")
    if x.ndim != 3 or x.shape[-1] != model.cfg.d_model:
        _fail(f"resid should be [batch, pos, d_model={model.cfg.d_model}], got shape {x.shape}.")
    scores = two_layer_scores(model, x, layer, head)
    check_pattern(pattern, scores, model.cfg.d_head, name=name)


def _need_model(model):
    if _not_answered(model) or not hasattr(model, "blocks"):
        _fail(f"model should be the two-layer model loaded at the top of the notebook, got "
              f"{type(model).__name__}: run the notebook from the top.")


def _prev_mistakes(pat) -> list:
    n = pat.shape[-1]
    d = np.arange(n)
    return [
        ("reads the diagonal (source p, the token itself), not the previous-token stripe, source "
         "p - 1.", float(pat[..., d, d].mean())),
        ("reads source p + 1, above the diagonal; the previous token is p - 1.",
         float(pat[..., d[:-1], d[:-1] + 1].mean())),
        ("averages over every destination including position 0, which has no previous token: "
         "use p = 1 .. n - 1.", previous_token_score_of(pat) * (n - 1) / n),
        ("reads source p - 2: one position too far back.",
         float(pat[..., d[2:], d[2:] - 2].mean()) if n > 2 else float("nan")),
    ]


def check_previous_token_score(value, pattern, name: str = "score"):
    """The previous-token score of one pattern ``[batch, dest, src]``: the mean weight of
    destination ``p`` on ``p - 1`` over ``p >= 1`` and the batch."""
    pat = as_array(pattern, "pattern")
    check_close(value, previous_token_score_of(pat), name,
                wrong=[(m, w) for m, w in _prev_mistakes(pat) if np.isfinite(w)])


def check_prev_head(prev_head, model, tokens, name: str = "prev_head"):
    """The layer-0 head with the highest previous-token score on ``tokens``."""
    _need_model(model)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.as_tensor(tokens))
    pats = cache["blocks.0.attn.hook_pattern"].detach().to("cpu", torch.float64).numpy()
    scores = [previous_token_score_of(pats[:, h]) for h in range(model.cfg.n_heads)]
    right = int(np.argmax(scores))
    check_value(prev_head, right, name, wrong={
        h: f"head {h} scores {scores[h]:.3g}; take the head whose previous-token score is the "
           "highest." for h in range(model.cfg.n_heads) if h != right})


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

    per_head = [_prev_mistakes(pats[:, h]) for h in heads]
    named = [(per_head[0][i][0], np.array([m[i][1] for m in per_head]))
             for i in range(len(per_head[0]))]
    check_array(scores, [previous_token_score_of(pats[:, h]) for h in heads], name, mistakes=[
        ("comes from a pattern without the causal mask: fix head_pattern (question 1) first.",
         of(lambda r, h: previous_token_score_of(_softmax(r / math.sqrt(d))))),
        ("comes from the raw scores, not a pattern: scale, mask and softmax them first.",
         of(lambda r, h: previous_token_score_of(r))),
        *[(m, w) for m, w in named if np.all(np.isfinite(w))],
    ])


def check_composition_score(value, W_A, W_B, name: str = "score"):
    """The composition score of the product ``W_A W_B`` (in this order)."""
    A, B = as_array(W_A, "W_A"), as_array(W_B, "W_B")
    wrong = [("the product is in the wrong order: W_B W_A instead of W_A W_B.",
              composition_score_of(B, A))] if B.shape[1] == A.shape[0] else []
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
        _fail(f"the two matrices should multiply, W_A [n, m] and W_B [m, k]; got {A.shape} and "
              f"{B.shape}.")
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
    from ..composition import composition_scores

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
        ("leaves out the transpose of W_OV: the layer-0 write enters the key side as "
         "(x W_OV^A)^T, so the product is W_QK^B (W_OV^A)^T, not W_QK^B W_OV^A.",
         np.array([[composition_score_of(qk1[b], ov0[a]) for b in heads] for a in heads])),
    ])


def check_zero_head(hook, head: int, seed: int = 0):
    """``hook`` (from ``zero_head(head)``) must zero ``z[:, head]`` and keep the other heads."""
    if _not_answered(hook) or not callable(hook):
        _fail(f"zero_head({head}) should return a function z -> z, got {type(hook).__name__}.")
    g = torch.Generator().manual_seed(seed)
    n = max(3, head + 2)
    z = torch.randn(n + 2, n, n + 1, n + 3, generator=g)  # [batch, head, pos, d_head]
    expected = z.clone()
    expected[:, head] = 0

    def zeroed(index):
        w = z.clone()
        w[index] = 0
        return w

    try:
        out = hook(z.clone())
    except Exception as err:  # noqa: BLE001 - the student's hook raised: say so
        _fail(f"zero_head({head})(z) raised {type(err).__name__}: {err} (z is a tensor "
              "[batch, head, pos, d_head]).")
    if out is None:
        _fail(f"the function zero_head({head}) returns None: `return` the edited z.")
    check_array(out, expected, f"zero_head({head})(z)", mistakes=[
        ("zeroes the wrong axis: z is [batch, head, pos, d_head] and z[head] is one *sequence* "
         "of the batch; zero z[:, head].", zeroed((head,))),
        ("zeroes the wrong axis: z[:, :, head] is a *position*; z is [batch, head, pos, "
         "d_head], so zero z[:, head].", zeroed((slice(None), slice(None), head))),
        ("zeroes the wrong axis: z[..., head] is a dimension of d_head in every head; zero "
         "z[:, head].", zeroed((Ellipsis, head))),
        ("zeroes every head: only head `head` should go.", torch.zeros_like(z)),
        ("leaves z unchanged.", z),
    ])


def check_induction_accuracy(value, model, name: str = "clean_accuracy"):
    """Induction accuracy of ``model`` on the default sequences of ``induction_accuracy``."""
    from ..induction import induction_accuracy

    check_close(value, induction_accuracy(model), name, rtol=1e-6, atol=1e-9)


def check_ablated_accuracy(value, model, tokens=None, zero_head=None, head: int | None = None,
                           layer: int = 0, name: str = "ablated_accuracy"):
    """Induction accuracy of ``model`` with the previous-token head of ``layer`` (found on
    ``tokens``, or ``head``) zero-ablated. When ``zero_head`` is given, the hook it builds is
    checked first, so a hook that zeroes the wrong axis is named as such."""
    from ..composition import ablation_hook
    from ..induction import induction_accuracy

    _need_model(model)
    if head is None:
        with torch.no_grad():
            _, cache = model.run_with_cache(torch.as_tensor(tokens))
        pats = cache[f"blocks.{layer}.attn.hook_pattern"].detach().to("cpu", torch.float64)
        head = int(np.argmax([previous_token_score_of(pats[:, h].numpy())
                              for h in range(model.cfg.n_heads)]))
    if zero_head is not None:
        if _not_answered(zero_head) or not callable(zero_head):
            _fail("zero_head should be a function; define it with `def zero_head(head):`.")
        check_zero_head(zero_head(head), head)

    def acc(h, layer_):
        return induction_accuracy(model, hooks={f"blocks.{layer_}.attn.hook_z": ablation_hook(h)})

    clean = induction_accuracy(model)
    wrong = [(f"is the accuracy without any ablation ({clean:.4g}): pass the hook to "
              "induction_accuracy, hooks={\"blocks.0.attn.hook_z\": zero_head(prev_head)}.", clean)]
    wrong += [(f"ablates head {h}, not the previous-token head {head}.", acc(h, layer))
              for h in range(model.cfg.n_heads) if h != head]
    wrong += [(f"has the hook on layer {1 - layer} (blocks.{1 - layer}.attn.hook_z); the "
               f"previous-token head is in layer {layer}.", acc(head, 1 - layer))
              ] if model.cfg.n_layers == 2 else []
    check_close(value, acc(head, layer), name, rtol=1e-6, atol=1e-9, wrong=wrong)


# --------------------------------------------------------------------------------------------
# Single values and functions
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The open-ended question: which layer-1 heads are induction heads?
# --------------------------------------------------------------------------------------------


def check_induction_score(value, pattern, name: str = "score"):
    """The induction score of one pattern ``[batch, dest, src]`` of ``BOS, r, r`` sequences."""
    pat = as_array(pattern, "pattern")
    n = pat.shape[-1]
    L = (n - 1) // 2
    wrong = [
        ("that reads the duplicate token, q - L (the same token's first copy), not the token "
         "after it, q - L + 1.", offset_score_of(pat, 0)),
        ("that reads q - L + 2: one position past the token after the first copy (off by "
         "one).", offset_score_of(pat, 2)),
        ("that reads q - 1, the previous token: the previous-token score.",
         offset_score_of(pat, 1 - L)),
    ]
    check_close(value, offset_score_of(pat), name, wrong=wrong)


def check_induction_evidence(ind_scores, control_scores, model, tokens, control,
                             induction_heads=None):
    """The evidence of question 5: the induction score of every layer-1 head on the repeated
    ``tokens`` and on the ``control`` sequences (no repeat), each ``[n_heads]``; and, when given,
    ``induction_heads``: the heads whose score on ``tokens`` is more than twice their control
    score."""
    _need_model(model)
    for seqs, what in ((tokens, "tokens"), (control, "control")):
        if _not_answered(seqs) or seqs is None:
            _fail(f"{what} is missing: run the cell that builds it.")
    right = layer_offset_scores(model, tokens)
    base = layer_offset_scores(model, control)
    for got, expected, seqs, name in ((ind_scores, right, tokens, "ind_scores"),
                                      (control_scores, base, control, "control_scores")):
        other = base if name == "ind_scores" else right
        check_array(got, expected, name, mistakes=[
            ("reads source q - L, the same token's first copy (a duplicate-token score); the "
             "induction score reads the token after it, q - L + 1.",
             layer_offset_scores(model, seqs, shift=0)),
            ("reads source q - L + 2, one past the token after the first copy (off by one): "
             "the induction score reads q - L + 1.", layer_offset_scores(model, seqs, shift=2)),
            ("reads source q - 1, the previous token: that is the previous-token score.",
             layer_offset_scores(model, seqs, shift=1 - _run_len(seqs))),
            ("comes from layer 0: the induction heads are in layer 1.",
             layer_offset_scores(model, seqs, layer=0)),
            ("averages over every destination from position L on; use the second copy only, "
             "q = L + 1 .. 2 L.", layer_offset_scores(model, seqs, everywhere=True)),
            ("holds the scores of the other set of sequences: "
             + ("ind_scores come from tokens, control_scores from control."), other),
        ])
    if induction_heads is not None:
        if induction_heads is Ellipsis:
            _fail("induction_heads is still `...`: list the heads your evidence picks.")
        try:
            chosen = sorted(int(h) for h in induction_heads)
        except TypeError:
            _fail(f"induction_heads should be a list of head indices, got {induction_heads!r:.60}.")
        picked = [h for h in range(len(right)) if right[h] > 2 * base[h]]
        if chosen != picked:
            _fail(f"induction_heads = {chosen} does not follow from your evidence: compare each "
                  "head's score on tokens with twice its control score (" + ", ".join(
                      f"head {h}: {right[h]:.3g} against {base[h]:.3g}"
                      for h in range(len(right))) + ").")


def _run_len(tokens) -> int:
    """The run length ``L`` of ``BOS, r, r`` sequences ``[batch, 1 + 2 L]``."""
    return (np.shape(tokens)[-1] - 1) // 2


# --------------------------------------------------------------------------------------------
# Which side reads the previous-token head: keys or queries? (a question lesson 04 leaves open)
# --------------------------------------------------------------------------------------------


def repeated_sequences(model, n: int = 16, seed: int = 0) -> torch.Tensor:
    """``n`` sequences ``BOS, r, r`` ``[n, n_ctx]`` for any model (odd ``n_ctx``): token 0 as BOS
    and a run of distinct tokens ``1 .. d_vocab - 1`` written twice (for hidden checks)."""
    L = (model.cfg.n_ctx - 1) // 2
    g = torch.Generator().manual_seed(seed)
    runs = torch.rand(n, model.cfg.d_vocab - 1, generator=g).argsort(-1)[:, :L] + 1
    return torch.cat([torch.zeros(n, 1, dtype=torch.long), runs, runs], dim=1)


def check_side_removed(result, model, tokens, head, side, name: str = "scores"):
    """Induction scores ``[n_heads]`` of layer 1 with head ``head`` of layer 0 removed from the
    keys only (``side="k"``) or the queries only (``"q"``); names the usual slips."""
    _need_model(model)
    if side not in ("k", "q"):
        _fail(f"side should be \"k\" or \"q\", got {side!r}.")
    other = "q" if side == "k" else "k"
    expected = side_removed_scores(model, tokens, head, side)

    def both():
        with torch.no_grad():
            _, cache = model.run_with_cache(torch.as_tensor(tokens))
        z = cache["blocks.0.attn.hook_z"].detach().to("cpu", torch.float64).numpy()
        W_O = model.blocks[0].attn.W_O[head].detach().to("cpu", torch.float64).numpy()
        resid = cache["blocks.1.hook_resid_pre"].detach().to("cpu", torch.float64).numpy()
        x = resid - z[:, head] @ W_O
        from ._answers import reference_pattern
        return np.array([offset_score_of(reference_pattern(two_layer_scores(model, x, 1, h),
                                                           model.cfg.d_head))
                         for h in range(model.cfg.n_heads)])

    check_array(result, expected, name, mistakes=[
        (f"removes the write from the {'queries' if side == 'k' else 'keys'}; side=\"{side}\" "
         f"means the {'keys' if side == 'k' else 'queries'} (the other side reads the full "
         "stream).", side_removed_scores(model, tokens, head, other)),
        ("removes the write from both sides (the whole stream): keep the full stream on the "
         "other side.", both()),
        ("removes nothing: these are the induction scores of the intact model. Subtract the "
         "head's write, z[:, head] @ W_O[head], on one side.",
         side_removed_scores(model, tokens, head, "none")),
        (f"removes the write of another head; the previous-token head is {head}.",
         side_removed_scores(model, tokens, 1 - head if model.cfg.n_heads == 2 else
                             (head + 1) % model.cfg.n_heads, side)),
    ])


def check_side_evidence(k_removed, q_removed, reads_through, model, tokens, head):
    """The evidence of the key-or-query question: ``k_removed`` and ``q_removed`` (see
    :func:`check_side_removed`) and the conclusion ``reads_through``: ``"k"`` when removing the
    write from the keys lowers the mean induction score more than removing it from the queries,
    else ``"q"``."""
    check_side_removed(k_removed, model, tokens, head, "k", name="k_removed")
    check_side_removed(q_removed, model, tokens, head, "q", name="q_removed")
    k, q = float(np.mean(as_array(k_removed, "k_removed"))), float(np.mean(
        as_array(q_removed, "q_removed")))
    right = "k" if k < q else "q"
    if _not_answered(reads_through):
        _fail("reads_through is still `...`: set it to \"k\" or \"q\" from your evidence.")
    if reads_through not in ("k", "q"):
        _fail(f"reads_through should be the string \"k\" or \"q\", got {reads_through!r:.40}.")
    if reads_through != right:
        _fail(f"reads_through = {reads_through!r} does not follow from your evidence: the mean "
              f"induction score is {k:.3g} with the write removed from the keys and {q:.3g} "
              "from the queries; the side whose removal hurts more is the one that reads it.")


def check_side_function(side_removed, model=None, seed: int = 48):
    """Hidden check: the student's ``side_removed(model, tokens, head, side)`` on a random
    two-layer model and, when given, on the notebook's model with another head."""
    from .core import random_model

    m = random_model(seed=seed, d_vocab=11, n_ctx=9, d_model=10, d_head=3, n_heads=2,
                     n_layers=2)
    t = repeated_sequences(m, 12, seed)
    cases = [(m, t, 1, "k"), (m, t, 0, "q")]
    check_function(side_removed, "side_removed", cases,
                   lambda r, mm, tt, h, sd: check_side_removed(r, mm, tt, h, sd))
