"""The one-layer language model's findings, one function at a time: text order of a skip-trigram,
the confirmation rule and its p-value, the lift without a head, the factoring bug, and each head's
share of a logit. Small random models check the arithmetic against independent routes; the shipped
model checks what the lesson claims of it."""

import itertools
import math
import re

import numpy as np
import pytest
import torch

from toymodel.model import AttentionOnlyTransformer, ModelConfig
from toymodel.text import attribution as A
from toymodel.text import findings as F
from toymodel.text import lm
from toymodel.text import tokenizer as T


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = AttentionOnlyTransformer(ModelConfig(d_vocab=12, d_model=16, d_head=4, n_heads=3,
                                                 n_ctx=10, seed=5))
    with torch.no_grad():  # larger weights than the initialisation, so every head matters
        for p in model.parameters():
            p.mul_(3)
    return model


@pytest.fixture(scope="module")
def tiny_windows():
    return np.random.default_rng(1).integers(0, 12, (40, 10))


# --------------------------------------------------------------------------------------------
# Text order
# --------------------------------------------------------------------------------------------


def test_format_trigram_writes_the_earlier_token_first():
    strings = ["(", "·def", "self", "x"]
    tri = F.SkipTrigram(head=1, a=0, b=1, c=2, qk=0.0, ov=0.0)
    assert F.format_trigram(tri, strings) == "·def … ( -> self"
    assert F.format_trigram((0, 1, 2), strings) == "·def … ( -> self"  # (a, b, c) as the fields
    assert F.format_trigram((np.int64(3), 1, 2), strings) == "·def … x -> self"


@pytest.mark.parametrize("tri, strings, error", [
    ((0, 1), ["a", "b"], ValueError),
    ((0, 1, 5), ["a", "b", "c"], ValueError),
    ((0, -1, 2), ["a", "b", "c"], ValueError),
    ((0, 1.0, 2), ["a", "b", "c"], ValueError),
    ("abc", ["a", "b", "c"], TypeError),
    ((0, 1, 2), "abc", TypeError),
])
def test_format_trigram_rejects_bad_input(tri, strings, error):
    with pytest.raises(error, match="a, b, c|token id|strings|SkipTrigram"):
        F.format_trigram(tri, strings)


def test_the_shipped_model_reads_def_then_paren_then_self():
    """The lesson's and the paper's order on a real triple: after ``def`` earlier, ``(`` -> ``self``."""
    strings = T.token_strings(T.load_tokenizer())
    a, b, c = strings.index("("), strings.index("·def"), strings.index("self")
    assert F.format_trigram((a, b, c), strings) == "·def … ( -> self"


# --------------------------------------------------------------------------------------------
# The confirmation rule
# --------------------------------------------------------------------------------------------


def _fisher_brute(k1, n1, k0, n0):
    """P(at least k1 of the k1 + k0 hits among the n1 first positions), by counting subsets."""
    total, hits = n1 + n0, k1 + k0
    draws = list(itertools.combinations(range(total), hits))
    return sum(sum(1 for i in d if i < n1) >= k1 for d in draws) / len(draws)


def test_fisher_greater_is_the_hypergeometric_tail():
    # the lady tasting tea: 3 of 4 right in one group, 1 of 4 in the other: (16 + 1) / 70
    assert F.fisher_greater(3, 4, 1, 4) == pytest.approx(17 / 70, rel=1e-12)
    for k1, n1, k0, n0 in [(2, 5, 1, 6), (0, 4, 3, 5), (4, 4, 0, 6), (1, 3, 2, 7), (3, 6, 3, 6)]:
        assert F.fisher_greater(k1, n1, k0, n0) == pytest.approx(_fisher_brute(k1, n1, k0, n0),
                                                                 rel=1e-10)
    assert F.fisher_greater(0, 10, 0, 10) == 1.0  # nothing observed: no evidence
    assert F.fisher_greater(5, 5, 0, 0) == 1.0  # one group empty
    assert F.fisher_greater(300, 500, 50, 1600) < 1e-100  # a large effect, far in the tail


@pytest.mark.parametrize("args", [(-1, 4, 0, 4), (5, 4, 0, 4), (1.5, 4, 0, 4), (True, 4, 0, 4)])
def test_fisher_greater_rejects_bad_counts(args):
    with pytest.raises(ValueError, match="count"):
        F.fisher_greater(*args)


def _result(n1, k1, p1, n0, k0, p0):
    return {"n_with": n1, "n_without": n0, "model_p_with": p1, "model_p_without": p0,
            "data_p_with": k1 / n1, "data_p_without": k0 / n0}


def test_confirmed_needs_counts_a_model_lift_and_a_significant_data_lift():
    strong = _result(100, 20, 0.2, 400, 8, 0.02)  # p about 1e-10
    assert F.confirmed(strong) and F.confirmed(strong, n_tests=24)
    assert not F.confirmed({**strong, "model_p_with": 0.03})  # model lift below 2
    assert not F.confirmed(_result(29, 10, 0.2, 400, 8, 0.02))  # too few positions with B
    weak = _result(100, 3, 0.2, 400, 4, 0.02)  # 3 % against 1 %: p about 0.08
    p = F.fisher_greater(3, 100, 4, 400)
    assert 0.05 < p < 0.2 and not F.confirmed(weak)
    borderline = _result(100, 5, 0.2, 400, 4, 0.02)
    p = F.fisher_greater(5, 100, 4, 400)
    assert 0.05 / 24 < p < 0.05
    assert F.confirmed(borderline) and not F.confirmed(borderline, n_tests=24)  # Bonferroni
    # a result with its own p-value uses it
    assert not F.confirmed({**strong, "p_value": 0.5})


@pytest.mark.parametrize("kwargs", [{"n_tests": 0}, {"n_tests": 2.5}, {"alpha": 0}, {"alpha": 1.5}])
def test_confirmed_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match="n_tests|alpha"):
        F.confirmed(_result(100, 20, 0.2, 400, 8, 0.02), **kwargs)


def test_held_out_lift_counts_and_p_value(tiny, tiny_windows):
    tri = F.SkipTrigram(0, a=3, b=7, c=5, qk=0.0, ov=0.0)
    windows, lp = F.held_out_logprobs(tiny, tiny_windows.ravel(), [5])
    r = F.held_out_lift(windows, lp, tri)
    k_with = k_without = 0
    for w in windows:
        for p in range(len(w) - 1):
            if w[p] == 3 and w[p + 1] == 5:
                if (w[:p] == 7).any():
                    k_with += 1
                else:
                    k_without += 1
    assert (r["k_with"], r["k_without"]) == (k_with, k_without)
    assert r["p_value"] == F.fisher_greater(k_with, r["n_with"], k_without, r["n_without"])


# --------------------------------------------------------------------------------------------
# The lift without the head
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True])
def test_head_lifts_match_a_full_forward_pass_with_and_without_the_head(tiny, tiny_windows,
                                                                        sparse):
    if sparse:  # half the windows hold no 3 and no 9: head_lifts skips them
        tiny_windows = tiny_windows.copy()
        even = tiny_windows[::2]
        even[(even == 3) | (even == 9)] = 4
    tris = [F.SkipTrigram(1, a=3, b=7, c=5, qk=0.0, ov=0.0),
            F.SkipTrigram(2, a=3, b=1, c=0, qk=0.0, ov=0.0),
            F.SkipTrigram(0, a=9, b=2, c=5, qk=0.0, ov=0.0)]
    got = A.head_lifts(tiny, tiny_windows, tris, batch=7)
    for t, (w, wo) in zip(tris, got, strict=True):
        windows, lp = F.held_out_logprobs(tiny, tiny_windows.ravel(), [t.c])
        expected = F.held_out_lift(windows, lp, t)
        for k, v in expected.items():
            assert w[k] == pytest.approx(v, rel=1e-5, abs=1e-7, nan_ok=True), k

        def zero(z, h=t.head):
            z = z.clone()
            z[:, h] = 0
            return z

        with torch.no_grad():
            logits = tiny(torch.as_tensor(tiny_windows), hooks={"blocks.0.attn.hook_z": zero})
        lp0 = {t.c: torch.log_softmax(logits, -1)[..., t.c].numpy()}
        expected0 = F.held_out_lift(np.asarray(tiny_windows), lp0, t)
        for k, v in expected0.items():
            assert wo[k] == pytest.approx(v, rel=1e-5, abs=1e-7, nan_ok=True), k
        assert wo["model_p_with"] != pytest.approx(w["model_p_with"], rel=1e-3)  # the head mattered


def test_head_lifts_rejects_bad_input(tiny, tiny_windows):
    with pytest.raises(ValueError, match="n, n_ctx"):
        A.head_lifts(tiny, tiny_windows.ravel(), [])
    with pytest.raises(TypeError, match="SkipTrigram"):
        A.head_lifts(tiny, tiny_windows, [(3, 7, 5)])


def test_carried_by_head_is_half_of_the_lift_above_one():
    def r(p1, p0):
        return {"model_p_with": p1, "model_p_without": p0}

    assert A.carried_by_head(r(0.6, 0.1), r(0.2, 0.1))  # lift 6 -> 2: 1 of 5 left
    assert not A.carried_by_head(r(0.6, 0.1), r(0.4, 0.1))  # lift 6 -> 4: 3 of 5 left
    assert A.carried_by_head(r(0.6, 0.1), r(0.4, 0.1), share=0.25)
    assert not A.carried_by_head(r(0.1, 0.1), r(0.05, 0.1))  # no lift to carry
    with pytest.raises(ValueError, match="share"):
        A.carried_by_head(r(0.6, 0.1), r(0.2, 0.1), share=1)


# --------------------------------------------------------------------------------------------
# Direct logit attribution
# --------------------------------------------------------------------------------------------


def test_logit_attribution_adds_up_and_matches_the_decomposition(tiny, tiny_windows):
    w = tiny_windows[3]
    with torch.no_grad():
        dec = tiny.decompose(torch.as_tensor(w)[None])
    for p in (0, 4, 8):
        at = A.logit_attribution(tiny, w, p)
        target = int(w[p + 1])
        assert at.target == target and at.position == p
        assert at.direct + at.heads.sum() == pytest.approx(at.forward, abs=1e-4)
        # the same shares through the model's own decomposition into paths
        head_logits = dec.head_logits[0, :, p].double()
        expected = head_logits[:, target] - head_logits.mean(-1)
        np.testing.assert_allclose(at.heads, expected.numpy(), atol=1e-4)
        direct = dec.direct_logits[0, p].double()
        assert at.direct == pytest.approx(float(direct[target] - direct.mean()), abs=1e-4)
        assert 0 < at.prob < 1 and at.top_source.shape == (tiny.cfg.n_heads,)
        assert (at.top_source <= p).all()
    # source 0 alone at position 0: the whole share is that source's, token part plus position part
    at = A.logit_attribution(tiny, w, 0)
    assert (at.top_source == 0).all()


@pytest.mark.parametrize("tokens, position", [(np.zeros((2, 5), int), 0), (np.zeros(5, int), 4),
                                              (np.zeros(5, int), -1), (np.zeros(5, int), 1.0)])
def test_logit_attribution_rejects_bad_input(tiny, tokens, position):
    with pytest.raises(ValueError, match="tokens|position"):
        A.logit_attribution(tiny, tokens, position)


def test_ov_top1_of_each_head(tiny):
    from toymodel.circuits import ov_top1_accuracy

    top1 = F.ov_top1(tiny)
    assert top1.shape == (tiny.cfg.n_heads,)
    for h in range(tiny.cfg.n_heads):
        full = (tiny.W_E @ tiny.W_V[h] @ tiny.W_O[h] @ tiny.W_U).detach().double()
        own = float((full.argmax(1) == torch.arange(full.shape[0])).double().mean())
        assert top1[h] == pytest.approx(own)
    assert top1 == pytest.approx(np.asarray(ov_top1_accuracy(
        tiny.W_E.detach().double(), tiny.W_V.detach().double(), tiny.W_O.detach().double(),
        tiny.W_U.detach().double())))


# --------------------------------------------------------------------------------------------
# The shipped model: a factoring bug, found from the weights and checked in the text
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one():
    return lm.load_lm("one_layer")


@pytest.fixture(scope="module")
def candidates(corpus_ids):
    tok, train, _ = corpus_ids
    counts = np.bincount(np.asarray(train, dtype=np.int64), minlength=2048)
    eos = tok.token_to_id(T.EOS)
    return np.array([t for t in np.argsort(-counts, kind="stable")[:250] if t != eos])


def _rate(windows, a, b, c):
    """How often c follows a when b occurs earlier in the window (loops, independent of F)."""
    k = n = 0
    for w in windows:
        seen = False
        for p in range(len(w) - 1):
            if w[p] == a and seen:
                n += 1
                k += int(w[p + 1] == c)
            seen = seen or w[p] == b
    return k, n


def test_factoring_bugs_of_the_shipped_model(one, corpus_ids, candidates):
    _, train, held = corpus_ids
    bugs = A.factoring_bugs(one, train, candidates)
    assert len(bugs) >= 10
    strengths = [b.qk_z[0] * b.ov_z[1] for b in bugs]
    assert strengths == sorted(strengths, reverse=True)
    windows = F.windows_of(np.asarray(train)[:300_000], one.cfg.n_ctx)
    qk, ov = F.full_qk(one).double(), F.full_ov(one).double()
    keep = torch.as_tensor(np.sort(candidates))
    for bug in bugs[:3]:
        # the weights: both destinations attend to b, b's OV row raises both outputs
        q = qk[bug.head][keep][:, keep]
        qz = (q - q.mean(1, keepdim=True)) / q.std(1, keepdim=True)
        col = int((keep == bug.b).nonzero())
        for a, z in zip((bug.a1, bug.a2), bug.qk_z, strict=True):
            row = int((keep == a).nonzero())
            assert float(qz[row, col]) == pytest.approx(z, abs=1e-3) and z >= 2
        o = ov[bug.head][bug.b][keep]
        top = set(keep[o.argsort(descending=True)[:6]].tolist())
        assert {bug.c1, bug.c2} <= top
        # the training text: the two wanted pairs, and not the crossed one
        k11, n1 = _rate(windows, bug.a1, bug.b, bug.c1)
        k22, n2 = _rate(windows, bug.a2, bug.b, bug.c2)
        k12, _ = _rate(windows, bug.a1, bug.b, bug.c2)
        assert (n1, n2) == (bug.n1, bug.n2)
        assert k11 / n1 == pytest.approx(bug.rate_11, abs=1e-4) and bug.rate_11 >= 0.05
        assert k22 / n2 == pytest.approx(bug.rate_22, abs=1e-4) and bug.rate_22 >= 0.05
        assert k12 / n1 == pytest.approx(bug.rate_12, abs=1e-4) and bug.rate_12 <= 0.005
    # what the lesson says of the first: on held-out text the head raises the unwanted output
    # where B came earlier, and the data never put it there
    bad = bugs[0].unwanted()
    (w, wo), = A.head_lifts(one, F.windows_of(np.asarray(held)[:200_000], one.cfg.n_ctx), [bad])
    assert w["k_with"] == 0 and w["n_with"] >= 30
    assert w["model_p_with"] > 2 * max(wo["model_p_with"], w["model_p_without"])


def test_the_selection_rule_in_a_few_lines_is_the_package_rule(one, corpus_ids, candidates):
    """The lesson's readable version of the rule finds each head's strongest triple."""
    _, train, _ = corpus_ids
    support = F.cooccurrence(np.asarray(train)[:300_000], candidates, one.cfg.n_ctx)
    ref = F.skip_trigrams(one, candidates, None, per_head=1, support=support)
    assert ref == F.skip_trigrams(one, candidates, np.asarray(train)[:300_000], per_head=1)
    for h in range(one.cfg.n_heads):
        qk = F.full_qk(one)[h][candidates][:, candidates]
        ov = F.full_ov(one)[h][candidates][:, candidates]
        qz = (qk - qk.mean(1, keepdim=True)) / qk.std(1, keepdim=True)
        oz = (ov - ov.mean(1, keepdim=True)) / ov.std(1, keepdim=True)
        strength = qz * oz.max(1).values
        strength[torch.as_tensor(support) < 50] = -math.inf
        strength.fill_diagonal_(-math.inf)
        i, j = divmod(int(strength.argmax()), len(candidates))
        mine = (h, int(candidates[i]), int(candidates[j]), int(candidates[int(oz[j].argmax())]))
        assert mine == next((t.head, t.a, t.b, t.c) for t in ref if t.head == h)
    with pytest.raises(ValueError, match="support"):
        F.skip_trigrams(one, candidates, None, support=support[:5])


# --------------------------------------------------------------------------------------------
# Text order in the lesson's printed output and in the book's prose
# --------------------------------------------------------------------------------------------

REVERSED = re.compile(r"\bA\s*(?:\.\.\.|…|\\ldots|\\dots)\s*B\b")


def test_lesson_05_prints_skip_trigrams_in_text_order():
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks"
                     / "05_language_one_layer.ipynb").read_text(encoding="utf-8"))
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                      for o in c.get("outputs", []))
    markdown = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "·import … ⏎ -> from" in printed  # import earlier, then a newline: from
    assert "⏎ ... ·import" not in printed and " ... " not in printed  # the old order and marks
    assert "B … A -> C" in markdown and not REVERSED.search(markdown)


def test_the_books_pages_write_skip_trigrams_in_text_order():
    """The one-layer pages write the earlier token first (instructor.md follows assignment 5)."""
    from pathlib import Path

    book = Path(__file__).resolve().parents[1] / "book"
    for name in ("language_models.md", "one_layer_model.md", "ov_circuit.md", "glossary.md"):
        text = (book / name).read_text(encoding="utf-8")
        assert not REVERSED.search(text), name
    assert "`B … A -> C`" in (book / "language_models.md").read_text(encoding="utf-8")


def test_held_out_logprobs_at_unembeds_only_those_positions(tiny, tiny_windows):
    windows, full = F.held_out_logprobs(tiny, tiny_windows.ravel(), [5, 2])
    _, part = F.held_out_logprobs(tiny, tiny_windows.ravel(), [5, 2], at={3})
    at_a = windows == 3
    assert at_a.any() and (~at_a).any()
    for c in (5, 2):
        np.testing.assert_allclose(part[c][at_a], full[c][at_a], rtol=1e-5, atol=1e-6)
        assert np.isnan(part[c][~at_a]).all()
    tri = F.SkipTrigram(0, a=3, b=7, c=5, qk=0.0, ov=0.0)
    a, b = F.held_out_lift(windows, full, tri), F.held_out_lift(windows, part, tri)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-5, nan_ok=True), k
