"""Write notebooks/01_worked_example.ipynb from the cells below (then execute it in place).

The notebook is the source readers see; this script only keeps its cells reviewable as Python.
Run: python docs-dev/make_nb01.py && python docs-dev/execute.py notebooks/01_worked_example.ipynb
"""

import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
CHECK = "# NBVAL_CHECK_OUTPUT\n"

cells = [
    md(r"""# Lesson: a worked example, one head and two tokens

Four matrices, two tokens, four dimensions: small enough to check every number by hand, and enough
to see the whole story of this book. We run one attention head the way a transformer runs it, then
run it again through its two circuits, and watch the two computations agree to the last digit.

**What you will learn**

- how queries, keys, raw scores, scaled scores and the softmax turn two embeddings into an
  attention pattern;
- how the pattern mixes value vectors into the head's output;
- how the **QK circuit** $W_{QK} = W_Q W_K^\top$ gives the same scores without ever forming a query
  or a key, and the **OV circuit** $W_{OV} = W_V W_O$ gives the same output without forming a value;
- where the article this example comes from rounds too early, and what happens with a causal mask.

We write vectors as **rows** and multiply on the right ($x W$), as TransformerLens does; the
{doc}`../book/notation` page has the details. Every number below is computed by the `toymodel`
package, and the book's chapters quote them from this notebook.

> Running this in Colab? Use the rocket button at the top of the page. The first cell installs
> the book's small package and leaves the runtime's own PyTorch alone."""),
    code("""try:
    import toymodel
except ImportError:  # e.g. on Colab: install the book's package, keeping the runtime's torch
    %pip install -q --no-deps "toymodel @ git+https://github.com/qk-ov-circuits/qk-ov-book"
    import toymodel"""),
    code("""import numpy as np

from toymodel import glue
from toymodel.plotting import worked_example_figure
from toymodel.worked_example import format_vector, rounded_output, run

np.set_printoptions(precision=4, suppress=True)"""),
    md(r"""## The setup

The model has one layer, one attention head, no MLP and no layer normalisation, and
$d_\text{model} = d_\text{head} = 4$. The input is two tokens, **A** and **B**, with embeddings

$$
x_A = (1,\ 0,\ 1,\ -1), \qquad x_B = (0,\ 1,\ -1,\ 1).
$$

The weights are chosen to be easy to follow rather than learned:

- $W_Q = I$ and $W_O = I$, so the query is the embedding and the output is the value;
- $W_K$ is the permutation that exchanges coordinates 1 and 2 and, separately, 3 and 4;
- $W_V$ is the permutation that exchanges coordinates 2 and 3.

Multiplying a row on the right by a permutation matrix rearranges its entries. `run()` computes
everything at once and returns one object holding every intermediate quantity."""),
    code(CHECK + """ex = run()
print("x (rows A, B):\\n", ex.x)
print("W_K:\\n", ex.W_K)
print("W_V:\\n", ex.W_V)"""),
    md(r"""## Step 1: queries and keys

Each token asks a question with its query $q = x W_Q$ and advertises itself with its key
$k = x W_K$. Because $W_Q$ is the identity, the queries are the embeddings. The keys are the
embeddings with coordinates exchanged in pairs, and here that turns A's embedding into B's and back."""),
    code(CHECK + """print("queries q = x W_Q:\\n", ex.q)
print("keys    k = x W_K:\\n", ex.k)
np.testing.assert_array_equal(ex.k[0], ex.x[1])  # k_A = x_B
np.testing.assert_array_equal(ex.k[1], ex.x[0])  # k_B = x_A"""),
    md(r"""## Step 2: scores, then scaling

The raw score of a destination token $i$ for a source token $j$ is the dot product $q_i \cdot k_j$.
Rows of the score matrix are destinations, columns are sources. The head divides every score by
$\sqrt{d_\text{head}}$ before the softmax so that the scores do not grow with the head's width."""),
    code(CHECK + """print("raw scores q k^T (rows: destination A, B; columns: source A, B):\\n", ex.scores)
print("sqrt(d_head) =", ex.d_head ** 0.5)
print("scaled scores:\\n", ex.scaled_scores)
np.testing.assert_array_equal(ex.scores, [[-2, 3], [3, -2]])
np.testing.assert_array_equal(ex.scaled_scores, [[-1, 1.5], [1.5, -1]])"""),
    md(r"""A's query lines up badly with its own key (score $-2$) and well with B's (score $3$).

## Step 3: the softmax

The softmax turns each row of scaled scores into weights that are positive and sum to one. For
A's row the exact weights are

$$
\alpha_{AA} = \frac{e^{-1}}{e^{-1} + e^{1.5}} = \frac{1}{1 + e^{2.5}}, \qquad
\alpha_{AB} = \frac{e^{1.5}}{e^{-1} + e^{1.5}} = \frac{1}{1 + e^{-2.5}}.
$$

Only the difference of the two scores, $2.5$, matters: adding the same number to a whole row
changes nothing after the softmax."""),
    code(CHECK + """print("attention pattern (rows: destination, columns: source):\\n", ex.pattern)
print(f"A -> A: {ex.weight('A', 'A'):.4f}   A -> B: {ex.weight('A', 'B'):.4f}")
np.testing.assert_allclose(ex.weight("A", "A"), 1 / (1 + np.exp(2.5)), rtol=1e-12)
np.testing.assert_allclose(ex.pattern.sum(axis=1), 1.0)"""),
    md(r"""To two decimals, A puts $0.08$ of its attention on itself and $0.92$ on B. Keep the four
decimals: the next step shows why.

## Step 4: values and the output

Each source token offers a value $v = x W_V$, and the destination receives the weighted sum of the
values, passed through $W_O$:

$$
\text{out}_A = \alpha_{AA}\, v_A W_O + \alpha_{AB}\, v_B W_O .
$$"""),
    code(CHECK + """print("values v = x W_V:\\n", ex.v)
print("exact output of A:           ", format_vector(ex.output[0]))
print("output from rounded weights: ", format_vector(rounded_output(ex, decimals=2)[0]))
np.testing.assert_allclose(ex.output[0], [0.0759, -0.8483, 0.9241, 0.8483], atol=1e-4)"""),
    md(r"""```{admonition} Where the article rounds
:class: warning
The article this example is based on reports the output of A as $(0.08, -0.84, 0.92, 0.84)$.
That is what you get by rounding the weights to $0.08$ and $0.92$ first and mixing the values
afterwards. Mixing with the exact weights and rounding at the end gives
$(0.076, -0.848, 0.924, 0.848)$. The gap is small here, but rounding before a weighted sum is a
habit that hides real differences in larger models: round only what you print.
```

## Token B's side, and the missing causal mask

The article follows token A only. B's query is $x_B$, and the keys are the same as before, so B's
scores are A's with the columns exchanged: B, too, looks mostly at the *other* token.

Notice also that nothing stops A from looking at B, although B comes after it. A language model
trained to predict the next token applies a **causal mask**: a token may only attend to itself
and to earlier tokens. The article's example has no mask. With one, A has a single token to look
at and its pattern is forced."""),
    code(CHECK + """print(f"B -> A: {ex.weight('B', 'A'):.4f}   B -> B: {ex.weight('B', 'B'):.4f}")
print("exact output of B:", format_vector(ex.output[1]))
masked = run(causal=True)
print("causal pattern:\\n", masked.pattern)
print("output of A with a causal mask:", format_vector(masked.output[0]))
np.testing.assert_allclose(masked.pattern[0], [1.0, 0.0])
np.testing.assert_allclose(masked.pattern[1], ex.pattern[1])"""),
    md(r"""With the mask, A can only attend to itself, so it copies its own value $v_A = (1, 1, 0, -1)$.
B's row is unchanged, because B already came last.

## The same scores from the QK circuit

Now forget queries and keys. The score is $q_i \cdot k_j = (x_i W_Q)(x_j W_K)^\top
= x_i\, (W_Q W_K^\top)\, x_j^\top$, so one matrix, the QK circuit $W_{QK} = W_Q W_K^\top$,
decides every score. Here $W_Q = I$, so $W_{QK} = W_K^\top$, and because this permutation is
its own transpose, $W_{QK} = W_K$."""),
    code(CHECK + """print("W_QK = W_Q W_K^T:\\n", ex.W_QK)
e_AB = ex.x[0] @ ex.W_QK @ ex.x[1]
print("e_AB = x_A W_QK x_B^T =", e_AB)
np.testing.assert_array_equal(ex.W_QK, ex.W_K)
np.testing.assert_array_equal(ex.W_K, ex.W_K.T)
np.testing.assert_array_equal(ex.scores_circuit, ex.scores)"""),
    md(r"""One bilinear form, $x_A W_{QK} x_B^\top = 3$, the same score as before.

## The same output from the OV circuit

The output has the same kind of shortcut. The head writes $\alpha_{ij}\, (x_j W_V) W_O =
\alpha_{ij}\, x_j (W_V W_O)$, so the OV circuit $W_{OV} = W_V W_O$ says what any source
token contributes, before the pattern weights it. Here $W_O = I$, so $W_{OV} = W_V$."""),
    code(CHECK + """print("W_OV = W_V W_O:\\n", ex.W_OV)
print("x_B W_OV =", ex.x[1] @ ex.W_OV, "   v_B =", ex.v[1])
max_abs_diff = float(np.abs(ex.output_circuit - ex.output).max())
print("largest difference between the two computations of the output:", max_abs_diff)
np.testing.assert_array_equal(ex.x[1] @ ex.W_OV, ex.v[1])
assert max_abs_diff < 1e-12"""),
    md(r"""## Pictures of the head

The three panels show what the head does on this input (the pattern) and the two matrices that
define it for *every* input: the QK circuit decides where each token looks, and the OV circuit
decides what it carries back."""),
    code("""fig = worked_example_figure(ex)"""),
    md(r"""The pattern is nearly anti-diagonal: each token looks at the other one. $W_{QK}$ pairs
coordinate 1 with 2 and 3 with 4, which is exactly how A's query and B's key line up. $W_{OV}$
is a permutation too, so this head moves information without mixing it.

## Numbers the book quotes

The chapters quote these values by name (with myst-nb `glue`), so the text cannot drift from
the computation above."""),
    code("""glue("we_d_model", int(ex.x.shape[1]))
glue("we_d_head", ex.d_head)
glue("we_sqrt_d_head", float(ex.d_head ** 0.5))
for dest in "AB":
    for src in "AB":
        glue(f"we_score_{dest}{src}", int(ex.score(dest, src)))
        glue(f"we_alpha_{dest}{src}", ex.weight(dest, src))
glue("we_scaled_AA", float(ex.scaled_scores[0, 0]))
glue("we_scaled_AB", float(ex.scaled_scores[0, 1]))
glue("we_out_A", format_vector(ex.output[0]))
glue("we_out_A_seed", format_vector(rounded_output(ex, decimals=2)[0]))
glue("we_out_A_causal", format_vector(masked.output[0]))
glue("we_e_AB_circuit", int(e_AB))
glue("we_max_abs_diff", max_abs_diff);"""),
    md(r"""## Summary

- The standard computation goes embeddings → queries and keys → scores → scaling → softmax →
  weighted values → output.
- The circuit view needs only two matrices: $W_{QK}$ gives every score as $x_i W_{QK} x_j^\top$,
  and $W_{OV}$ gives every source's contribution as $x_j W_{OV}$. Both views agree exactly.
- The article rounds the weights before mixing the values; the exact output of A is
  $(0.076, -0.848, 0.924, 0.848)$. It also uses no causal mask: with one, A can only copy itself.

## Exercises

**Exercise 1.** Replace $W_V$ by the identity and keep everything else. What is the output of A?
Which circuit changed, and did the pattern move?

<details>
<summary>Solution</summary>

Now $W_{OV} = I$, so each source contributes its embedding. The QK circuit is untouched, so the
pattern is the same, and $\text{out}_A = \alpha_{AA}\, x_A + \alpha_{AB}\, x_B
\approx (0.076, 0.924, -0.848, 0.848)$. In code: `ex.pattern[0] @ ex.x`. Changing the OV
circuit changed *what* was moved and left *where* it was looked for alone.
</details>

**Exercise 2.** Multiply $W_Q$ by $2$ and divide $W_K$ by $2$. What happens to the queries, the
keys, the scores and $W_{QK}$?

<details>
<summary>Solution</summary>

Every query doubles and every key halves, but each score $q_i \cdot k_j$ is unchanged, and so is
$W_{QK} = (2 W_Q)(W_K / 2)^\top = W_Q W_K^\top$. The individual matrices are not identifiable
from the head's behaviour; only their product is. This is one reason to study circuits rather
than single weight matrices. (The same holds for $W_V$ and $W_O$.)
</details>

**Exercise 3.** Without running code: what pattern would the head produce if $W_K$ were the
identity? Check your answer with `toymodel.circuits`.

<details>
<summary>Solution</summary>

With $W_Q = W_K = I$ the score is $x_i \cdot x_j$: A with itself gives $1 + 0 + 1 + 1 = 3$, A with
B gives $0 + 0 - 1 - 1 = -2$. The pattern flips: each token now looks mostly at itself, with
weight $1/(1 + e^{-2.5})$. Check with
`circuits.attention_pattern(circuits.attention_scores(ex.x, np.eye(4), np.eye(4)), 4)`.
</details>"""),
]

nb = nbf.v4.new_notebook()
nb.cells = cells
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nbf.write(nb, "notebooks/01_worked_example.ipynb")
print("wrote notebooks/01_worked_example.ipynb")
