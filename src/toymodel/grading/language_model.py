"""Checks of assignment 5 (a language model): the full QK and OV circuits of one head of the
one-layer language model, a skip-trigram read off them, its test on held-out text, and a
skip-trigram of the student's own.

Shared helpers (messages, array comparison, small models) live in :mod:`toymodel.grading.core`.
The held-out measurement follows :func:`toymodel.text.findings.held_out_lift`: at every position
whose token is ``A`` (and which has a next token in its window), "with" means ``B`` occurs at an
earlier position of the same window and "without" that it does not.
"""

from __future__ import annotations

import numpy as np
import torch

from .core import (
    _close,
    _fail,
    _not_answered,
    as_array,
    check_array,
    check_index,
    check_value,
    check_verdict,
)

__all__ = [
    "LIFT_KEYS",
    "lm_full_qk",
    "lm_full_ov",
    "check_lm_full_qk",
    "check_lm_full_ov",
    "read_trigram_of",
    "check_read_trigram",
    "lift_of",
    "check_lift",
    "raised_by",
    "check_raised",
    "check_own_trigram",
]

#: The keys of a held-out test's result, as :func:`toymodel.text.findings.held_out_lift` names them.
LIFT_KEYS = ("n_with", "n_without", "model_p_with", "model_p_without", "data_p_with",
             "data_p_without")

MIN_COUNT = 30  # positions needed with and without B (as findings.confirmed)
FACTOR = 2.0  # the model's probability of C with B must be at least this many times that without


def _weights(model, head: int):
    names = ("W_E", "W_pos", "W_U")
    out = {k: getattr(model, k).detach().to("cpu", torch.float64) for k in names}
    for k in ("W_Q", "W_K", "W_V", "W_O"):
        out[k] = getattr(model, k).detach().to("cpu", torch.float64)[head]
    return out


def lm_full_qk(model, head: int, position: str = "mean") -> np.ndarray:
    """Head ``head``'s full QK circuit ``[d_vocab (destination), d_vocab (source)]`` with the mean
    position added to every token (``position="none"``: tokens only; ``"first"``: position 0),
    as :func:`toymodel.text.findings.full_qk`."""
    w = _weights(model, head)
    x = w["W_E"] + {"mean": w["W_pos"].mean(0), "first": w["W_pos"][0],
                    "none": torch.zeros_like(w["W_pos"][0])}[position]
    return ((x @ w["W_Q"]) @ (x @ w["W_K"]).T).numpy()


def lm_full_ov(model, head: int) -> np.ndarray:
    """Head ``head``'s full OV circuit ``W_E W_V W_O W_U``: ``[d_vocab (source), d_vocab (logit)]``
    (row convention)."""
    w = _weights(model, head)
    return (w["W_E"] @ w["W_V"] @ w["W_O"] @ w["W_U"]).numpy()


def _head(model, head) -> int:
    if model.cfg.n_layers != 1:
        _fail(f"these checks are for a one-layer model, got n_layers={model.cfg.n_layers}.")
    return check_index(head, "head", 0, model.cfg.n_heads - 1)


def check_lm_full_qk(full_qk, model, head, name: str = "full_qk"):
    """``full_qk`` must be :func:`lm_full_qk` of ``model``'s head ``head``."""
    head = _head(model, head)
    expected = lm_full_qk(model, head)
    check_array(full_qk, expected, name, mistakes=[
        ("leaves out the positions: add the mean of W_pos to every token's embedding, on both "
         "sides, so the scores are those of a typical position.",
         lm_full_qk(model, head, "none")),
        ("adds W_pos[0], the first position only; use the mean over positions, W_pos.mean(0).",
         lm_full_qk(model, head, "first")),
        ("is transposed: rows are the destination (query) token, columns the source (key).",
         expected.T),
    ])


def check_lm_full_ov(full_ov, model, head, name: str = "full_ov"):
    """``full_ov`` must be :func:`lm_full_ov` of ``model``'s head ``head``."""
    head = _head(model, head)
    expected = lm_full_ov(model, head)
    other = (head + 1) % model.cfg.n_heads
    mistakes = [("is transposed: rows are the attended (source) token, columns the logit it "
                 "raises.", expected.T)]
    if other != head:
        mistakes.append((f"is the full OV circuit of head {other}, not of head {head}.",
                         lm_full_ov(model, other)))
    check_array(full_ov, expected, name, mistakes=mistakes)


# --------------------------------------------------------------------------------------------
# A skip-trigram read off the weights
# --------------------------------------------------------------------------------------------


def read_trigram_of(model, head: int, a: int, candidates) -> tuple[int, int]:
    """``(b, c)``: among ``candidates`` (other than ``a``), the source ``b`` with the highest score
    in ``a``'s row of the full QK circuit, and the candidate ``c`` that ``b``'s row of the full OV
    circuit raises most."""
    keep = np.array([int(t) for t in np.asarray(candidates).ravel() if int(t) != int(a)])
    b = int(keep[np.argmax(lm_full_qk(model, head)[a, keep])])
    full = np.asarray(candidates).ravel().astype(np.int64)
    c = int(full[np.argmax(lm_full_ov(model, head)[b, full])])
    return b, c


def check_read_trigram(b, c, model, head, a, candidates):
    """``b`` and ``c`` of :func:`read_trigram_of`, with the usual slips named."""
    head = _head(model, head)
    a = int(a)
    right_b, right_c = read_trigram_of(model, head, a, candidates)
    keep = np.array([int(t) for t in np.asarray(candidates).ravel() if int(t) != a])
    qk, ov = lm_full_qk(model, head), lm_full_ov(model, head)
    wrong_b = {
        int(keep[np.argmax(qk[keep, a])]): "that token gives A the highest score as a "
        "*destination* (A's column); read A's row, full_qk[a, candidates]: A is the destination.",
        int(keep[np.argmin(qk[a, keep])]): "that is the lowest score in A's row; the highest wins.",
    }
    if np.isin(a, candidates):
        with_a = np.asarray(candidates).ravel().astype(np.int64)
        if int(with_a[np.argmax(qk[a, with_a])]) == a:
            wrong_b[a] = "that is A itself; leave A out of the candidates for B."
    wrong_b.pop(right_b, None)
    check_value(b, right_b, "b", wrong=wrong_b)
    full = np.asarray(candidates).ravel().astype(np.int64)
    wrong_c = {
        int(full[np.argmax(ov[full, right_b])]): "that token's row raises B's logit the most "
        "(B's column); read B's row, full_ov[b, candidates]: B is the token attended to.",
        int(full[np.argmax(ov[a, full])]): "that is what attending to A would raise; the head "
        "attends to B, so read B's row.",
    }
    wrong_c.pop(right_c, None)
    check_value(c, right_c, "c", wrong=wrong_c)


# --------------------------------------------------------------------------------------------
# The test on held-out text
# --------------------------------------------------------------------------------------------


def lift_of(windows, prob_c, a: int, b: int, c: int, slip: str = "") -> dict:
    """The held-out test of ``A ... B -> C`` (keys :data:`LIFT_KEYS`) on ``windows`` ``[n, n_ctx]``
    of token ids, where ``prob_c`` ``[n, n_ctx]`` is the model's probability that ``c`` comes next
    at each position. ``slip`` computes a known wrong version: ``"anywhere"`` (B anywhere in the
    window), ``"late"`` (the probability one position late), ``"here"`` (the observed rate of C
    at A's own position), ``"swap"`` (with and without exchanged)."""
    w = np.asarray(windows, dtype=np.int64)
    p = np.asarray(prob_c, dtype=np.float64)
    is_b = w == b
    seen = (np.cumsum(is_b, axis=1) - is_b) > 0
    if slip == "anywhere":
        seen = np.repeat(is_b.any(1, keepdims=True), w.shape[1], axis=1)
    at_a = w[:, :-1] == a
    groups = {"with": at_a & seen[:, :-1], "without": at_a & ~seen[:, :-1]}
    if slip == "swap":
        groups = {"with": groups["without"], "without": groups["with"]}
    probs = p[:, 1:] if slip == "late" else p[:, :-1]
    observed = w[:, :-1] if slip == "here" else w[:, 1:]
    out = {}
    for g, mask in groups.items():
        k = int(mask.sum())
        out[f"n_{g}"] = k
        out[f"model_p_{g}"] = float(probs[mask].mean()) if k else float("nan")
        out[f"data_p_{g}"] = float((observed[mask] == c).mean()) if k else float("nan")
    return {k: out[k] for k in LIFT_KEYS}


def _as_lift(result, name: str) -> np.ndarray:
    if _not_answered(result) or result is None:
        as_array(result, name)  # the usual message for `...` and None
    if not isinstance(result, dict):
        _fail(f"{name} should be a dict with the keys {', '.join(LIFT_KEYS)}; got "
              f"{type(result).__name__}.")
    missing = [k for k in LIFT_KEYS if k not in result]
    if missing:
        _fail(f"{name} lacks the keys {', '.join(missing)}.")
    for k in LIFT_KEYS:
        if _not_answered(result[k]):
            _fail(f"{name}[{k!r}] is still `...`.")
    return np.array([float(as_array(result[k], f"{name}[{k!r}]")) for k in LIFT_KEYS])


def _need_windows(windows, prob_c, a, b, c):
    if windows is None or _not_answered(prob_c) or any(_not_answered(t) for t in (a, b, c)):
        _fail("the skip-trigram is not read yet: answer question 3 first (b and c), then "
              "next_token_probs(c) gives the windows and the probabilities.")


def check_lift(result, windows, prob_c, a, b, c, name: str = "lift"):
    """``result`` must be :func:`lift_of` for ``A ... B -> C`` on these windows."""
    got = _as_lift(result, name)
    _need_windows(windows, prob_c, a, b, c)
    expected = lift_of(windows, prob_c, a, b, c)
    if expected["n_with"] == 0 or expected["n_without"] == 0:
        _fail(f"A never occurs {'with' if expected['n_with'] == 0 else 'without'} B earlier in "
              "these windows: the test needs both groups (choose more frequent tokens).")
    vec = np.array([expected[k] for k in LIFT_KEYS])
    messages = {
        "anywhere": "counts B anywhere in the window, also after A; B must come *earlier* than "
                    "the position of A.",
        "late": "reads the model's probability one position late: prob_c[:, p] at A's own "
                "position p is already the probability that C comes next, at p + 1.",
        "here": "counts how often the token *at* A's position is C; the observed next token is "
                "windows[:, p + 1].",
        "swap": "has the groups swapped: \"with\" means B occurs earlier than A.",
    }
    if _close(got, vec):
        return
    for slip, message in messages.items():
        wrong = lift_of(windows, prob_c, a, b, c, slip)
        if _close(got, np.array([wrong[k] for k in LIFT_KEYS])):
            _fail(f"{name} {message}")
    bad = [(k, g) for k, g, e in zip(LIFT_KEYS, got, vec, strict=True)
           if not np.isclose(g, e, rtol=1e-4, atol=1e-6)]
    _fail(f"{name}: {', '.join(k for k, _ in bad)} {'is' if len(bad) == 1 else 'are'} not right "
          f"(yours: {', '.join(f'{g:.4g}' for _, g in bad)}).")


def raised_by(result: dict) -> bool:
    """The assignment's rule (as :func:`toymodel.text.findings.confirmed`): enough positions in
    both groups, the model's probability of C at least :data:`FACTOR` times higher with B, and C
    observed more often with B."""
    return (result["n_with"] >= MIN_COUNT and result["n_without"] >= MIN_COUNT
            and result["model_p_with"] >= FACTOR * result["model_p_without"]
            and result["data_p_with"] > result["data_p_without"])


def check_raised(raised, windows, prob_c, a, b, c, name: str = "raised"):
    """The conclusion drawn from :func:`lift_of`: ``raised`` must be :func:`raised_by` of it."""
    if _not_answered(raised):
        _fail(f"{name} is still `...`: set it to True or False from your evidence.")
    _need_windows(windows, prob_c, a, b, c)
    r = lift_of(windows, prob_c, a, b, c)
    check_verdict(raised, raised_by(r), name, (
        f"A occurs {r['n_with']} times with B earlier and {r['n_without']} times without; the "
        f"model gives C {r['model_p_with']:.3g} with B and {r['model_p_without']:.3g} without; "
        f"C follows {r['data_p_with']:.3g} of the time with B and {r['data_p_without']:.3g} "
        "without."))


def check_own_trigram(trigram, result, raised, model, held_ids, candidates, given=(),
                      name: str = "my_trigram"):
    """The open-ended question: the student's own ``(head, a, b, c)``, read off the weights, its
    held-out test ``result`` and the conclusion ``raised``.

    Requires: four token ids and a head in range; a triple other than ``given`` (the one of
    question 3); ``b`` above the mean of ``a``'s QK row and ``c`` above the mean of ``b``'s OV row
    over ``candidates`` (something the weights suggest); at least :data:`MIN_COUNT` held-out
    positions with and without ``b``; then ``result`` is the right measurement and ``raised``
    follows from it.
    """
    from ..text.findings import held_out_logprobs

    if _not_answered(trigram):
        _fail(f"{name} is still `...`: choose a head and three tokens (head, a, b, c).")
    if not isinstance(trigram, (tuple, list)) or len(trigram) != 4:
        _fail(f"{name} should be a tuple (head, a, b, c), got {trigram!r:.80}.")
    head = _head(model, trigram[0])
    V = model.cfg.d_vocab
    a, b, c = (check_index(t, f"{name}[{i + 1}]", 0, V - 1) for i, t in enumerate(trigram[1:]))
    if a == b:
        _fail(f"{name}: A and B are the same token; a skip-trigram needs an earlier B other "
              "than A.")
    if tuple(int(t) for t in given) == (head, a, b, c):
        _fail(f"{name} is the skip-trigram of question 3: read one of your own.")
    cand = np.asarray(candidates).ravel().astype(np.int64)
    qk_row, ov_row = lm_full_qk(model, head)[a], lm_full_ov(model, head)[b]
    if qk_row[b] <= qk_row[cand].mean():
        _fail(f"in head {head}'s full QK circuit, B gets a score below the mean of A's row over "
              "the candidates: the weights do not suggest that A attends to B. Read B off A's row.")
    if ov_row[c] <= ov_row[cand].mean():
        _fail(f"in head {head}'s full OV circuit, attending to B raises C less than the average "
              "candidate: the weights do not suggest that B raises C. Read C off B's row.")
    windows, lp = held_out_logprobs(model, held_ids, [c])
    expected = lift_of(windows, np.exp(lp[c]), a, b, c)
    for g in ("with", "without"):
        if expected[f"n_{g}"] < MIN_COUNT:
            _fail(f"A occurs only {expected[f'n_{g}']} times {g} B earlier in the held-out text "
                  f"(at least {MIN_COUNT} are needed for evidence): choose more frequent tokens.")
    check_lift(result, windows, np.exp(lp[c]), a, b, c, name="my_lift")
    check_raised(raised, windows, np.exp(lp[c]), a, b, c, name="my_raised")
