"""One head at a time, in a one-layer language model: which head does the work.

* :func:`head_lifts`       a skip-trigram's held-out lift
  (:func:`toymodel.text.findings.held_out_lift`) with and without its head, and
  :func:`carried_by_head` the rule that the head, not the rest of the model, makes the lift.
* :func:`factoring_bugs`   pairs of triples of one head with one source B, ``B … A1 -> C1`` and
  ``B … A2 -> C2``, that the text wants while it does not want ``B … A1 -> C2``: the head's QK and
  OV circuits are separate tables, so it raises that one too.
* :func:`logit_attribution` each head's share of the logit of the token that really comes next, at
  one position of a text (direct logit attribution), checked against the forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .findings import (
    SkipTrigram,
    _one_layer,
    full_ov,
    full_qk,
    held_out_lift,
    lift_ratio,
    windows_of,
)

__all__ = [
    "head_lifts",
    "carried_by_head",
    "FactoringBug",
    "factoring_bugs",
    "LogitAttribution",
    "logit_attribution",
]


def head_lifts(model, windows, triples, batch: int = 64) -> list[tuple[dict, dict]]:
    """For each triple, :func:`held_out_lift` on ``windows`` twice: with the model's probabilities
    from the model itself and from the model without the triple's head. Returns ``[(with_head,
    without_head)]``; the data keys of the two are the same.

    One pass of attention over ``windows`` serves every triple; only the positions whose token is
    some triple's ``a`` are unembedded, once for the whole model and once per head removed.
    """
    _one_layer(model)
    windows = np.asarray(windows, dtype=np.int64)
    if windows.ndim != 2:
        raise ValueError(f"windows must be [n, n_ctx], got shape {list(windows.shape)}")
    triples = list(triples)
    at = {}  # token a -> mask of its positions that have a next token
    for t in triples:
        if not isinstance(t, SkipTrigram):
            raise TypeError(f"triples must be SkipTrigrams, got {type(t).__name__}")
        if t.a not in at:
            m = np.zeros(windows.shape, dtype=bool)
            m[:, :-1] = windows[:, :-1] == t.a
            at[t.a] = m
    cols = sorted({t.c for t in triples})
    col = {c: k for k, c in enumerate(cols)}
    variants = sorted({(t.a, None) for t in triples} | {(t.a, t.head) for t in triples},
                      key=lambda v: (v[0], -1 if v[1] is None else v[1]))
    parts: dict = {v: [] for v in variants}
    attn = model.blocks[0].attn
    U, cols_t = model.W_U, torch.as_tensor(cols, dtype=torch.long)
    rows = np.nonzero(np.any([m.any(1) for m in at.values()], axis=0))[0] if at else []
    with torch.no_grad():
        for i in range(0, len(rows), batch):  # only the windows that hold some triple's a
            r = rows[i : i + batch]
            masks = {a: torch.as_tensor(m[r]) for a, m in at.items()}
            x = model.embed(torch.as_tensor(windows[r]))
            cache: dict = {}
            written, _ = attn(x, cache=cache)
            resid, z = x + written, cache["attn.hook_z"]
            for a, h in variants:
                m = masks[a]
                r = resid[m]
                if h is not None:
                    r = r - z[:, h][m] @ model.W_O[h]
                parts[(a, h)].append(torch.log_softmax(r @ U, -1)[:, cols_t])
    out = []
    for t in triples:  # the masks select positions in row-major order, in rows and batches alike
        pair = []
        for h in (None, t.head):
            lp = np.zeros(windows.shape, dtype=np.float32)
            got = parts[(t.a, h)]
            if got:
                lp[at[t.a]] = torch.cat(got)[:, col[t.c]].numpy()
            pair.append(held_out_lift(windows, {t.c: lp}, t))
        out.append(tuple(pair))
    return out


def carried_by_head(result: dict, without: dict, share: float = 0.5) -> bool:
    """The rule that head ``h`` carries a triple's lift: removing ``h`` takes away more than
    ``share`` of the lift above 1, ``lift_without - 1 < (1 - share) * (lift - 1)`` (lifts of
    :func:`~toymodel.text.findings.lift_ratio`; ``result`` and ``without`` as :func:`head_lifts`
    returns them)."""
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1, got {share!r}")
    lift, rest = lift_ratio(result), lift_ratio(without)
    return bool(lift > 1 and rest - 1 < (1 - share) * (lift - 1))


@dataclass(frozen=True)
class FactoringBug:
    """Two skip-trigrams of head ``head`` with the same source ``b`` that the text wants,
    ``b … a1 -> c1`` and ``b … a2 -> c2``, and the one it does not want, ``b … a1 -> c2``.

    The rates are measured in training text, at positions whose token is ``a1`` (or ``a2``) with
    ``b`` earlier in the window: ``rate_11`` how often ``c1`` comes next after ``a1``,
    ``rate_22`` how often ``c2`` comes next after ``a2``, ``rate_12`` how often ``c2`` comes next
    after ``a1``. ``n1``, ``n2``: the positions counted. ``qk_z``: the standardised QK scores of
    ``a1`` and of ``a2`` for ``b``; ``ov_z``: those of ``c1`` and ``c2`` in ``b``'s OV row.
    """

    head: int
    b: int
    a1: int
    c1: int
    a2: int
    c2: int
    rate_11: float
    rate_22: float
    rate_12: float
    n1: int
    n2: int
    qk_z: tuple
    ov_z: tuple

    def wanted(self) -> tuple[SkipTrigram, SkipTrigram]:
        """The two triples the text wants."""
        return (SkipTrigram(self.head, self.a1, self.b, self.c1, self.qk_z[0], self.ov_z[0]),
                SkipTrigram(self.head, self.a2, self.b, self.c2, self.qk_z[1], self.ov_z[1]))

    def unwanted(self) -> SkipTrigram:
        """``b … a1 -> c2``: what the factored circuits add to the wanted triples."""
        return SkipTrigram(self.head, self.a1, self.b, self.c2, self.qk_z[0], self.ov_z[1])


@torch.no_grad()
def factoring_bugs(model, train_ids, candidates, n_tokens: int = 300_000,
                   min_qk_z: float = 2.0, top_c: int = 6, min_n: int = 50,
                   min_rate: float = 0.05, max_cross: float = 0.005) -> list[FactoringBug]:
    """Pairs of skip-trigrams that the factored circuits tie together, found from the weights.

    For each head and each source ``b`` among ``candidates``: the destinations ``a`` that attend to
    ``b`` (QK score, standardised over ``a``'s row of the full QK circuit among the candidates, at
    least ``min_qk_z``) and the ``top_c`` outputs ``c`` that ``b``'s row of the full OV circuit
    raises most (among the candidates). The QK circuit cannot say which ``c`` goes with which
    ``a``: every ``a`` that attends to ``b`` receives the whole row. The training text (its first
    ``n_tokens`` ids) then says which pairs it wants: ``c1`` follows ``a1`` and ``c2`` follows
    ``a2`` (each at a rate of at least ``min_rate``, over at least ``min_n`` positions with ``b``
    earlier) while ``c2`` follows ``a1`` at a rate of at most ``max_cross``. The best pair of each
    (head, b), the one whose weaker wanted rate is highest, is kept. They are returned strongest
    first by the weights' own measure of the unwanted triple ``b … a1 -> c2``: the QK z-score of
    ``(a1, b)`` times the OV z-score of ``(b, c2)``.
    """
    _one_layer(model)
    cand = np.array(sorted({int(t) for t in np.asarray(candidates).ravel()}), dtype=np.int64)
    keep = torch.as_tensor(cand)
    windows = windows_of(np.asarray(train_ids)[:n_tokens], model.cfg.n_ctx)
    n_ctx = windows.shape[1]
    flat, nxt = windows[:, :-1].ravel(), windows[:, 1:].ravel()  # positions with a next token
    rows, cols = np.divmod(np.arange(flat.size), n_ctx - 1)
    order = np.argsort(flat, kind="stable")  # row-major positions of each token, grouped
    grouped = flat[order]

    def positions(t):
        lo, hi = np.searchsorted(grouped, [t, t + 1])
        return order[lo:hi]

    first_seen: dict = {}  # b -> [windows]: the column of b's first occurrence (n_ctx: none)

    def after_with_b_earlier(a, b):
        """The tokens that follow ``a`` at positions with ``b`` strictly earlier in the window."""
        if b not in first_seen:
            is_b = windows == b
            first_seen[b] = np.where(is_b.any(1), is_b.argmax(1), n_ctx)
        idx = positions(a)
        return nxt[idx[cols[idx] > first_seen[b][rows[idx]]]]

    qk, ov = full_qk(model).double(), full_ov(model).double()
    found = []
    for h in range(model.cfg.n_heads):
        q = qk[h][keep][:, keep]
        qz = ((q - q.mean(1, keepdim=True)) / q.std(1, keepdim=True)).numpy()
        o = ov[h][keep][:, keep]
        oz = ((o - o.mean(1, keepdim=True)) / o.std(1, keepdim=True)).numpy()
        for j, b in enumerate(cand):
            dests = [i for i in np.nonzero(qz[:, j] >= min_qk_z)[0] if i != j]
            if len(dests) < 2:
                continue
            outs = np.argsort(-oz[j], kind="stable")[:top_c]
            afters = {i: after_with_b_earlier(int(cand[i]), int(b)) for i in dests}
            counts = {i: len(afters[i]) for i in dests}
            use = [i for i in dests if counts[i] >= min_n]  # destinations with enough positions
            if len(use) < 2:
                continue
            # rate[k, m]: how often output outs[m] follows destination use[k] (with b earlier)
            rate = np.array([(afters[i][:, None] == cand[outs][None, :]).mean(0) for i in use])
            r11 = rate[:, None, :, None]  # [i1, i2, c1, c2]
            r22 = rate[None, :, None, :]
            r12 = rate[:, None, None, :]
            allowed = ((r11 >= min_rate) & (r22 >= min_rate) & (r12 <= max_cross)
                       & ~np.eye(len(use), dtype=bool)[:, :, None, None]
                       & ~np.eye(len(outs), dtype=bool)[None, None, :, :])
            if not allowed.any():
                continue
            score = np.where(allowed, np.minimum(r11, r22), -np.inf)
            # the first best in (i1, i2, c1, c2) order, the order a nested loop would meet it
            k1, k2, m1, m2 = np.unravel_index(int(np.argmax(score)), score.shape)
            rates = {use[k]: {int(outs[m]): float(rate[k, m]) for m in range(len(outs))}
                     for k in (k1, k2)}
            i1, c1, i2, c2 = use[k1], int(outs[m1]), use[k2], int(outs[m2])
            found.append(FactoringBug(
                h, int(b), int(cand[i1]), int(cand[c1]), int(cand[i2]), int(cand[c2]),
                round(rates[i1][c1], 4), round(rates[i2][c2], 4), round(rates[i1][c2], 4),
                counts[i1], counts[i2], (round(float(qz[i1, j]), 3), round(float(qz[i2, j]), 3)),
                (round(float(oz[j, c1]), 3), round(float(oz[j, c2]), 3))))
    found.sort(key=lambda f: -f.qk_z[0] * f.ov_z[1])
    return found


@dataclass(frozen=True)
class LogitAttribution:
    """Where the logit of the token that comes next at one position of a text comes from.

    All logits are centred (the mean over the vocabulary subtracted), since adding one number to
    every logit changes no probability. ``direct``: the direct path's share (token and position
    embedding through ``W_U``); ``heads`` ``[n_heads]``: each head's share, the sum over sources
    ``j`` of its attention ``A[h, pos, j]`` times what source ``j`` offers the target's logit;
    ``token_part`` ``[n_heads]``: the part of each head's share that comes through the full OV
    circuit's entry ``(W_E W_OV W_U)[t_j, target]`` of the source tokens (the rest comes from their
    positions); ``top_source`` ``[n_heads]``: the position that gives each head's share most;
    ``forward``: the centred logit of the forward pass, equal to ``direct + heads.sum()`` up to
    rounding; ``prob``: the model's probability of the target.
    """

    position: int
    target: int
    direct: float
    heads: np.ndarray
    token_part: np.ndarray
    top_source: np.ndarray
    forward: float
    prob: float


@torch.no_grad()
def logit_attribution(model, tokens, position: int) -> LogitAttribution:
    """Direct logit attribution at ``position`` of ``tokens`` (one window, ``[pos]``) for the token
    that really comes next, ``tokens[position + 1]``: how much the direct path and each head add
    to its centred logit. Computed from the circuits (the pattern times each source's row of the
    full OV circuit plus its position's offer), and checked here against the forward pass."""
    _one_layer(model)
    tokens = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be one window [pos], got shape {list(tokens.shape)}")
    n = len(tokens)
    if isinstance(position, bool) or not isinstance(position, (int, np.integer)) \
            or not 0 <= position < n - 1:
        raise ValueError(f"position must be in [0, {n - 2}] (it needs a next token), got "
                         f"{position!r}")
    p, target = int(position), int(tokens[position + 1])
    E, P, U = model.W_E.double(), model.W_pos.double(), model.W_U.double()
    u = U[:, target] - U.mean(1)  # the centred target column [d_model]
    _, pattern = model.run_with_pattern(tokens[None])
    A = pattern[0, :, p, : p + 1].double()  # [n_heads, sources up to p]
    src = tokens[: p + 1]
    W_OV = model.W_V.double() @ model.W_O.double()  # [n_heads, d_model, d_model]
    token_offer = (E[src] @ W_OV) @ u  # [n_heads, p + 1]: the full OV circuit's entries
    pos_offer = (P[: p + 1] @ W_OV) @ u
    heads = (A * (token_offer + pos_offer)).sum(-1)
    token_part = (A * token_offer).sum(-1)
    top_source = (A * (token_offer + pos_offer)).argmax(-1)
    direct = float((E[tokens[p]] + P[p]) @ u)
    logits = model(tokens[None])[0, p].double()
    forward = float(logits[target] - logits.mean())
    prob = float(torch.softmax(logits, -1)[target])
    return LogitAttribution(p, target, direct, heads.numpy(), token_part.numpy(),
                            top_source.numpy(), forward, prob)
