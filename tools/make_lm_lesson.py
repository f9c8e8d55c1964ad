# ruff: noqa: E501 (the lesson's cell sources are kept as they read in the notebook)
"""Write notebooks/05_language_one_layer.ipynb (cells without outputs; run docs-dev/execute.py after)."""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from toymodel._repo import install_cell  # noqa: E402

CHECK = {"tags": ["nbval-check-output"]}
cells = []


def md(text):
    cells.append(nbformat.v4.new_markdown_cell(text.strip()))


def code(text, meta=None):
    cells.append(nbformat.v4.new_code_cell(text.strip(), metadata=dict(meta or {})))


md("""
# Lesson: a one-layer language model, read off its weights

Every model so far learned a task we made up. This one read real text: the documentation and
source code of a pinned release of Django (BSD licence), millions of tokens of English prose
and Python. It is a one-layer, attention-only transformer with several heads, trained by the book's
own code on a laptop-class CPU in minutes. We ask of it what Elhage et al. (2021) asked of theirs:
do its heads copy, what does its direct path know, and can we read skip-trigrams off its weights
and then catch them at work in text the model never saw?

**What you will learn**

- how to load the shipped language model and its byte-level BPE tokenizer, and show tokens readably;
- how to measure the copying score and eigenvalue spectrum of every head, and count the heads that copy;
- how to read which tokens a head's OV circuit promotes for a chosen source token;
- how to read the direct path as a bigram table and check it against the corpus' counts;
- how to read skip-trigrams "A ... B -> C" off the full QK and OV circuits, and test each one on
  held-out text against a baseline.
""")
code(install_cell())
code(
    """
import numpy as np
import matplotlib.pyplot as plt
import torch

from toymodel import glue
from toymodel.text import corpus, findings, lm
from toymodel.text import tokenizer as T

torch.set_num_threads(2)
RETRAIN = False  # True: retrain the model from scratch (minutes) and check that the findings come back

model = lm.load_lm("one_layer")
tok = T.load_tokenizer()
strings = T.token_strings(tok)
cfg = model.cfg
print(f"{cfg.n_layers} layer, {cfg.n_heads} heads, d_model {cfg.d_model}, d_head {cfg.d_head}, "
      f"context {cfg.n_ctx}, vocabulary {cfg.d_vocab}")
""",
    CHECK,
)
md("""
## The text and its tokens

The corpus is downloaded once with `pip download` (the pinned sdist, checked by its sha256) and
cached outside the repository. Documents are deduplicated across files and split by document: the
held-out part was never seen in training. A token is shown with `·` for a space and `⏎` for a newline.
""")
code(
    """
train_docs, held_docs = corpus.split(corpus.documents())
train_ids, held_ids = lm.token_ids("train", tok), lm.token_ids("held_out", tok)
print(f"{len(train_docs)} training documents, {len(held_docs)} held-out documents")
example = "    def get(self, request):\\n        return None\\n"
print(" | ".join(strings[i] for i in tok.encode(example).ids))
""",
    CHECK,
)
md("""
## Do the heads copy?

The copying score of a head is the sum of the eigenvalues of its full OV circuit divided by the sum
of their absolute values: near 1 when attending to a token raises that same token's logit.
""")
code(
    """
scores, eig = findings.copying_scores(model)
scores, eig = scores[0], eig[0]
n_copy = int((scores > 0).sum())
glue("lm1_n_heads", int(cfg.n_heads))
glue("lm1_n_copying", n_copy)
glue("lm1_best_copy", round(float(scores.max()), 2))
for h, s in enumerate(scores):
    print(f"head {h}: copying score {s:+.2f}")
print(f"{n_copy} of {cfg.n_heads} heads have a positive copying score")
""",
    CHECK,
)
code(
    """
fig, axes = plt.subplots(1, cfg.n_heads, figsize=(14, 2.2), sharex=True, sharey=True)
for h, ax in enumerate(axes):
    ax.axhline(0, color="0.8", lw=0.5)
    ax.axvline(0, color="0.8", lw=0.5)
    ax.scatter(eig[h].real, eig[h].imag, s=8)
    ax.set_title(f"head {h}", fontsize=9)
axes[0].set_ylabel("imaginary part")
fig.supxlabel("real part", fontsize=9)
plt.tight_layout()
plt.show()
""",
    {
        "mystnb": {
            "image": {
                "alt": "Eight small scatter plots, one per head, of the eigenvalues of the "
                "head's OV circuit in the complex plane; for the copying heads most "
                "points lie to the right of the vertical axis."
            }
        }
    },
)
md("""
## What does a head's OV circuit promote?

For a source token, the row of a head's full OV circuit says which logits rise when the head attends
to that token. Here are the tokens each head raises most, for a few common source tokens.
""")
code("""
for word in ["·import", "·self", "⏎⏎"]:
    src = strings.index(word)
    top = findings.ov_promotions(model, src, k=3)
    print(f"source {word}:")
    for h, row in enumerate(top):
        print(f"   head {h}: " + "  ".join(strings[j] for j in row))
""")
md("""
## The direct path is a bigram table

Without attention, the model's guess for the next token is the row of `W_E @ W_U` of the current
token. We compare its top guess with the corpus' counts of what really follows, for the most
frequent current tokens.
""")
code(
    """
counts = findings.bigram_counts(train_ids, cfg.d_vocab)
check = findings.bigram_check(model, counts, n_tokens=200, top=5)
glue("lm1_bigram_hit", round(100 * check["in_corpus_top"]))
glue("lm1_bigram_chance", round(100 * check["chance"]))
print(f"direct-path top guess among the corpus' 5 most frequent next tokens: "
      f"{100 * check['in_corpus_top']:.0f} % of the 200 most frequent tokens "
      f"(guessing by overall frequency: {100 * check['chance']:.0f} %)")
for a, b in list(zip(check["tokens"], check["direct_top1"]))[:8]:
    print(f"   {strings[a]:>8} -> {strings[b]}")
""",
    CHECK,
)
md("""
## Skip-trigrams, read off the weights and tested on held-out text

A one-layer head implements "when the destination token is A, attend to an earlier B, and raise C".
We read A and B from the full QK circuit, C from the full OV circuit, keep triples that occur in
training text, and then go to the held-out text: at every position whose token is A, we compare the
probability of C next when B occurs earlier in the context with the same A without B. The model's
probability is one measurement; how often C really follows is the other.
""")
code(
    """
eos = tok.token_to_id(T.EOS)
results = findings.lifts(model, train_ids, held_ids, exclude=[eos])
good = [(t, r) for t, r in results if findings.confirmed(r)]
glue("lm1_n_trigrams", len(results))
glue("lm1_n_confirmed", len(good))
print(f"{len(good)} of {len(results)} skip-trigrams read off the weights hold in held-out text")
""",
    CHECK,
)
code("""
print("head  A ... B -> C                   model p(C): with B / without   data: with B / without")
for t, r in good:
    name = f"{strings[t.a]} ... {strings[t.b]} -> {strings[t.c]}"
    print(f"{t.head:>4}  {name:<30}  {r['model_p_with']:.3f} / {r['model_p_without']:.3f}"
          f"           {r['data_p_with']:.3f} / {r['data_p_without']:.3f}")
""")
md("""
A held-out example for each confirmed triple: a stretch of held-out text where A is the current token
and B occurs earlier.
""")
code("""
windows = np.asarray(held_ids[: len(held_ids) // cfg.n_ctx * cfg.n_ctx]).reshape(-1, cfg.n_ctx)
for t, r in good[:4]:
    for w in windows:
        pos_a = np.nonzero(w[:-1] == t.a)[0]
        pos_b = np.nonzero(w == t.b)[0]
        hits = [p for p in pos_a if (pos_b < p).any()]
        if hits:
            p = hits[0]
            start = max(int(pos_b[pos_b < p][-1]), p - 12)
            print(f"head {t.head}: " + "".join(strings[i] for i in w[start:p + 2]))
            break
""")
md("""
## Where the heads look, on held-out text

Point at a token (or focus it and use the arrow keys) to see how much each earlier token receives
from it under the selected head; the grid of small patterns shows every head at once. Spaces show
as ␣ and newlines as ⏎. Look for heads that attend back to an earlier copy of the current token or
of a related one: those are the skip-trigrams' B tokens.
""")
code("""
from toymodel.views.attention import model_attention_view

passage = held_ids[1000:1048].astype(np.int64)
model_attention_view(model, passage, names=lambda i: tok.decode([i]),
                     title="one-layer language model, held-out text")
""")

md("""
## Retrain from scratch (optional)

Set `RETRAIN = True` in the first code cell to train a fresh model with the shipped seed and config
(minutes on a CPU, far less on a GPU). Different hardware gives different bits; what should come
back is the findings: most heads copy, and several skip-trigrams hold in held-out text.
""")
code("""
if RETRAIN:
    fresh, log = lm.train_lm(lm.CONFIGS["one_layer"], train_ids, held_ids)
    fresh_scores, _ = findings.copying_scores(fresh)
    fresh_good = [t for t, r in findings.lifts(fresh, train_ids, held_ids, exclude=[eos])
                  if findings.confirmed(r)]
    print(f"retrained: {(fresh_scores > 0).sum()} copying heads, {len(fresh_good)} confirmed skip-trigrams")
else:
    print("RETRAIN is False: using the shipped weights")
""")
md("""
## Summary

- Most heads of the one-layer language model copy: their OV eigenvalues lie mostly on the positive
  side, as Elhage et al. report for their one-layer models.
- The direct path is a rough bigram table: its top guess is usually among the tokens that really follow.
- Skip-trigrams can be read off the full QK and OV circuits, and the ones we read raise the
  predicted token's probability in held-out text, in the model and in the data.

## Exercises

**Exercise 1** (difficulty 1/3, importance 3/3, about 10 minutes). Pick the head with the lowest
copying score. Which tokens does its OV circuit promote for the source `·self`? Is it a copying head
in disguise for some tokens?

**Exercise 2** (difficulty 2/3, importance 3/3, about 15 minutes). Take one confirmed skip-trigram
and change B to another frequent token of your choice. Measure with `findings.held_out_lift` whether
C still rises. What does that say about how specific the head's QK circuit is?

## Solutions
""")
code("""
worst = int(np.argmin(scores))
src = strings.index("·self")
print(f"head {worst} (copying score {scores[worst]:+.2f}) promotes from ·self:",
      " ".join(strings[j] for j in findings.ov_promotions(model, src, k=5)[worst]))
""")
code("""
from dataclasses import replace

t, _ = good[0]
other = replace(t, b=strings.index("·the"))
windows2, lp = findings.held_out_logprobs(model, held_ids[:200_000], [other.c])
print(findings.held_out_lift(windows2, lp, other))
""")

nb = nbformat.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbformat.write(nb, ROOT / "notebooks" / "05_language_one_layer.ipynb")
print("wrote notebooks/05_language_one_layer.ipynb")
