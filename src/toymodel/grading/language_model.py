"""Checks of assignment 5 (a language model): the full QK and OV circuits of one head of the
one-layer language model, a skip-trigram read off them, its test on held-out text, and a
skip-trigram of the student's own.

Skip-trigrams are written in text order, ``A ... B -> C``: ``A`` the earlier token (the source the
head attends to), ``B`` the current token (the destination), ``C`` the token predicted next, as in
Elhage et al. and ``book/one_layer_model.md`` (``def ... ( -> self``). The held-out measurement
follows :func:`toymodel.text.findings.held_out_lift`: at every position whose token is ``B`` (and
which has a next token in its window), "with" means ``A`` occurs at an earlier position of the same
window and "without" that it does not. The references live in :mod:`._answers`.
"""

from __future__ import annotations

import numpy as np

from ._answers import (
    FACTOR,
    LIFT_KEYS,
    MIN_COUNT,
    lift_of,
    lm_full_ov,
    lm_full_qk,
    raised_by,
    read_trigram_of,
)
from .core import (
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
    "check_lm_full_qk",
    "check_lm_full_ov",
    "check_read_trigram",
    "check_lift",
    "check_raised",
    "check_own_trigram",
    "format_trigram",
]


def format_trigram(strings, a: int, b: int, c: int) -> str:
    """``"A ... B -> C"`` in text order (earlier token first) from readable token strings."""
    return f"{strings[int(a)]} ... {strings[int(b)]} -> {strings[int(c)]}"


def _head(model, head) -> int:
    if _not_answered(model) or not hasattr(model, "cfg"):
        _fail(f"model should be the language model loaded at the top of the notebook, got "
              f"{type(model).__name__}: run the notebook from the top.")
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
        ("adds the mean position on the query side only; add W_pos.mean(0) to the keys' "
         "embeddings too.", lm_full_qk(model, head, side="query")),
        ("adds the mean position on the key side only; add W_pos.mean(0) to the queries' "
         "embeddings too.", lm_full_qk(model, head, side="key")),
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
# A skip-trigram read off the weights (text order: A earlier, B current, C next)
# --------------------------------------------------------------------------------------------


def _token(value, name: str, V: int, candidates=None) -> int:
    """A token id in ``[0, V)``; names an index into the candidate list where a token id was
    expected."""
    if _not_answered(value):
        _fail(f"{name} is still `...`: replace the `...` with your answer.")
    if value is None:
        _fail(f"{name} is None: the function that computes it returns nothing.")
    return check_index(value, name, 0, V - 1)


def check_read_trigram(a, c, model, head, b, candidates):
    """``a`` and ``c`` read off the weights for the current token ``b`` (see
    :func:`._answers.read_trigram_of`), with the usual slips named."""
    head = _head(model, head)
    b = int(b)
    V = model.cfg.d_vocab
    right_a, right_c = read_trigram_of(model, head, b, candidates)
    full = np.asarray(candidates).ravel().astype(np.int64)
    keep = np.array([int(t) for t in full if int(t) != b])
    qk, ov = lm_full_qk(model, head), lm_full_ov(model, head)
    wrong_a = {
        int(keep[np.argmax(qk[keep, b])]): "that token gives B the highest score when B is the "
        "*source* (B's column); read B's row, full_qk[b, candidates]: B is the current token, "
        "the destination.",
        int(keep[np.argmin(qk[b, keep])]): "that is the lowest score in B's row; the highest "
        "wins.",
    }
    if int(full[np.argmax(qk[b, full])]) == b:
        wrong_a[b] = "that is B itself; leave B out of the candidates for A."
    _check_token(a, right_a, keep, "a", V, wrong_a)
    wrong_c = {
        int(full[np.argmax(ov[full, right_a])]): "that token's row raises A's logit the most "
        "(A's column); read A's row, full_ov[a, candidates]: A is the token attended to.",
        int(full[np.argmax(ov[b, full])]): "that is what attending to B would raise; the head "
        "attends from B to A, so read A's row.",
    }
    _check_token(c, right_c, full, "c", V, wrong_c)


def _check_token(got, right: int, candidates: np.ndarray, name: str, V: int, wrong: dict):
    """Check a token id chosen among ``candidates``; ``wrong`` maps named mistakes to messages,
    and the answer's index in the candidate list (a position, not a token id) is one of them."""
    i = int(np.flatnonzero(candidates == right)[0])
    wrong.setdefault(i, f"that is the *position* of the answer in the candidate list "
                     f"(index {i}), not a token id: map it back, candidates[index].")
    wrong.pop(right, None)
    _token(got, name, V)
    check_value(int(got) if isinstance(got, (np.integer, int)) else got, right, name, wrong=wrong)


# --------------------------------------------------------------------------------------------
# The test on held-out text
# --------------------------------------------------------------------------------------------


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
    out = []
    for k in LIFT_KEYS:
        v = result[k]
        if isinstance(v, (str, bytes)):
            _fail(f"{name}[{k!r}] should be a number, got the string {v!r:.30}.")
        arr = np.asarray(v.detach() if hasattr(v, "detach") else v, dtype=np.float64) \
            if not isinstance(v, (dict, list, tuple)) else None
        if arr is None or arr.shape != ():
            _fail(f"{name}[{k!r}] should be one number, got {type(v).__name__}"
                  + (f" of shape {arr.shape}" if arr is not None else "") + ".")
        if np.isnan(arr) and not k.startswith("n_"):
            out.append(float("nan"))
            continue
        out.append(float(as_array(v, f"{name}[{k!r}]")))
    return np.array(out)


def _need_windows(windows, prob_c, a, b, c):
    for value, what in ((a, "a"), (c, "c")):
        if _not_answered(value) or value is None:
            _fail(f"{what} (question 3) is not read yet: answer question 3 first; then "
                  "next_token_probs(c) gives the windows and the probabilities.")
    if _not_answered(b) or b is None:
        _fail("the current token B is missing: run the notebook from the top.")
    if windows is None or _not_answered(windows) or _not_answered(prob_c) or prob_c is None:
        _fail("windows and prob_c are missing: run the cell `windows, prob_c = "
              "next_token_probs(c)` after answering question 3.")
    w, p = np.asarray(windows), as_array(prob_c, "prob_c")
    if w.ndim != 2 or p.shape != w.shape:
        _fail(f"windows {w.shape} and prob_c {p.shape} should both be [n, n_ctx]: run "
              "`windows, prob_c = next_token_probs(c)` again.")


def check_lift(result, windows, prob_c, a, b, c, name: str = "lift"):
    """``result`` must be the held-out test of ``A ... B -> C`` on these windows."""
    got = _as_lift(result, name)
    _need_windows(windows, prob_c, a, b, c)
    a, b, c = int(a), int(b), int(c)
    expected = lift_of(windows, prob_c, a, b, c)
    if expected["n_with"] == 0 or expected["n_without"] == 0:
        _fail(f"B never occurs {'with' if expected['n_with'] == 0 else 'without'} A earlier in "
              "these windows: the test needs both groups (choose more frequent tokens).")
    vec = np.array([expected[k] for k in LIFT_KEYS])
    messages = {
        "anywhere": "counts A anywhere in the window, also after B; A must come *earlier* than "
                    "the position of B.",
        "late": "reads the model's probability one position late: prob_c[:, p] at B's own "
                "position p is already the probability that C comes next, at p + 1.",
        "here": "counts how often the token *at* B's position is C; the observed next token is "
                "windows[:, p + 1].",
        "swap": "has the groups swapped: \"with\" means A occurs earlier than B.",
        "roles": "exchanges A and B: in text order A is the earlier token and B the current "
                 "one, so look at the positions holding B and ask whether A came before.",
        "count": "holds counts of C in data_p_with / data_p_without; the question asks for "
                 "how often (the fraction of the group's positions).",
    }
    def same(x, y):
        return x.shape == y.shape and bool(np.allclose(x, y, rtol=1e-4, atol=1e-6,
                                                       equal_nan=True))

    if same(got, vec):
        return
    for slip, message in messages.items():
        wrong = lift_of(windows, prob_c, a, b, c, slip)
        if same(got, np.array([wrong[k] for k in LIFT_KEYS])):
            _fail(f"{name} {message}")
    bad = [(k, g) for k, g, e in zip(LIFT_KEYS, got, vec, strict=True)
           if not np.isclose(g, e, rtol=1e-4, atol=1e-6)]
    _fail(f"{name}: {', '.join(k for k, _ in bad)} {'is' if len(bad) == 1 else 'are'} not right "
          f"(yours: {', '.join(f'{g:.4g}' for _, g in bad)}).")


def check_raised(raised, lift, name: str = "raised", lift_name: str = "lift"):
    """The conclusion drawn from the student's own ``lift``: ``raised`` must follow from it by the
    rule of the question (at least :data:`MIN_COUNT` positions in each group, the model's
    probability of C at least :data:`FACTOR` times higher with A, and C observed more often with
    A). Quotes the student's numbers; whether ``lift`` itself is right is the other check's job."""
    if _not_answered(raised):
        _fail(f"{name} is still `...`: set it to True or False from your evidence.")
    if _not_answered(lift) or lift is None or not isinstance(lift, dict):
        _fail(f"{name} is judged on your {lift_name}, which is not a finished dict yet: "
              "compute it first.")
    got = dict(zip(LIFT_KEYS, _as_lift(lift, lift_name), strict=True))
    if any(np.isnan(v) for v in got.values()):
        _fail(f"your {lift_name} has NaN in it (a group with no positions): choose tokens that "
              "occur with and without A.")
    r = got
    check_verdict(raised, raised_by(r), name, (
        f"in your {lift_name}, B occurs {int(r['n_with'])} times with A earlier and "
        f"{int(r['n_without'])} times without (the rule needs {MIN_COUNT} each); the model gives C "
        f"{r['model_p_with']:.3g} with A and {r['model_p_without']:.3g} without (it needs "
        f"{FACTOR:g} times); C follows {r['data_p_with']:.3g} of the time with A and "
        f"{r['data_p_without']:.3g} without."))


def check_own_trigram(trigram, result, raised, model, held_ids, candidates, given=None,
                      name: str = "my_trigram"):
    """The open-ended question: the student's own ``(head, a, b, c)`` in text order (``a`` the
    earlier token, ``b`` the current one, ``c`` the next), read off the weights, its held-out
    test ``result`` and the conclusion ``raised``.

    Requires: a head in range and three token ids; a triple other than ``given`` (the one of
    question 3; ``given=(head, b)`` computes it); ``a`` above the mean of ``b``'s QK row and ``c``
    above the mean of ``a``'s OV row over ``candidates`` (something the weights suggest); at least
    :data:`MIN_COUNT` held-out positions with and without ``a``; then ``result`` is the right
    measurement and ``raised`` follows from it.
    """
    from ..text.findings import held_out_logprobs

    if _not_answered(trigram) or trigram is None:
        _fail(f"{name} is still `...`: choose a head and three tokens (head, a, b, c).")
    if not isinstance(trigram, (tuple, list)) or len(trigram) != 4:
        _fail(f"{name} should be a tuple (head, a, b, c), got {trigram!r:.80}.")
    if any(_not_answered(t) for t in trigram):
        _fail(f"{name} still holds `...`: choose my_head, my_a, my_b and my_c.")
    head = _head(model, trigram[0])
    V = model.cfg.d_vocab
    a, b, c = (check_index(t, f"{name}[{i + 1}]", 0, V - 1) for i, t in enumerate(trigram[1:]))
    if a == b:
        _fail(f"{name}: A and B are the same token; a skip-trigram needs an earlier A other "
              "than the current B.")
    if given is not None and len(given) == 2:
        ga, gc = read_trigram_of(model, int(given[0]), int(given[1]), candidates)
        given = (int(given[0]), ga, int(given[1]), gc)
    if given is not None and tuple(int(t) for t in given) == (head, a, b, c):
        _fail(f"{name} is the skip-trigram of question 3: read one of your own.")
    cand = np.asarray(candidates).ravel().astype(np.int64)
    qk_row, ov_row = lm_full_qk(model, head)[b], lm_full_ov(model, head)[a]
    if qk_row[a] <= qk_row[cand].mean():
        hint = ""
        if lm_full_qk(model, head)[a, b] > lm_full_qk(model, head)[a, cand].mean():
            hint = (" (A's row does favour B: the roles are exchanged. In text order A is the "
                    "earlier token and B the current one.)")
        _fail(f"in head {head}'s full QK circuit, A gets a score below the mean of B's row over "
              "the candidates: the weights do not suggest that the current token B attends to "
              f"A. Read A off B's row.{hint}")
    if ov_row[c] <= ov_row[cand].mean():
        _fail(f"in head {head}'s full OV circuit, attending to A raises C less than the average "
              "candidate: the weights do not suggest that A raises C. Read C off A's row.")
    windows, lp = held_out_logprobs(model, held_ids, [c])
    expected = lift_of(windows, np.exp(lp[c]), a, b, c)
    for g in ("with", "without"):
        if expected[f"n_{g}"] < MIN_COUNT:
            _fail(f"B occurs only {expected[f'n_{g}']} times {g} A earlier in the held-out text "
                  f"(at least {MIN_COUNT} are needed for evidence): choose more frequent tokens.")
    check_lift(result, windows, np.exp(lp[c]), a, b, c, name="my_lift")
    check_raised(raised, result, name="my_raised", lift_name="my_lift")
