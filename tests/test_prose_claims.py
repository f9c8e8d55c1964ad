"""Statements in the book's prose that were once wrong, loose or repeated, held in place.

Each test pins one correction of issue 12 (the wording a reviewer found wrong must not come back,
and the corrected statement must still be there), or one "say it once" rule: a point made in
full on one page and linked from the others.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PAGES = sorted(BOOK.glob("*.md"))


def page(name: str) -> str:
    return (BOOK / f"{name}.md").read_text(encoding="utf-8")


def flat(text: str) -> str:
    """Text with runs of whitespace collapsed, so phrases match across line breaks."""
    return " ".join(text.split())


def glossary_entry(term: str) -> str:
    """The definition of ``term`` in book/glossary.md (its indented lines), flattened."""
    lines = page("glossary").split("\n")
    start = lines.index(term)
    body = []
    for line in lines[start + 1:]:
        if line and not line[0].isspace():
            break
        body.append(line)
    return flat("\n".join(body))


def section(text: str, heading: str) -> str:
    """From the heading line ``heading`` to the next heading of any level, flattened."""
    m = re.search(rf"^#+ {re.escape(heading)}\s*$(.*?)(?=^#+ |\Z)", text, re.MULTILINE | re.DOTALL)
    assert m, f"no heading {heading!r}"
    return flat(m.group(1))


def block(text: str, label: str) -> str:
    """The body of the exercise or solution whose ``:label:`` (or target) is ``label``."""
    m = re.search(rf"```\{{(?:exercise|solution)\}}[^\n]*{re.escape(label)}[^\n]*\n(.*?)^```",
                  text, re.MULTILINE | re.DOTALL)
    if m is None:
        m = re.search(rf"```\{{exercise\}}\n:label: {re.escape(label)}\n(.*?)^```", text,
                      re.MULTILINE | re.DOTALL)
    assert m, f"no exercise or solution {label!r}"
    return flat(m.group(1))


# ---------------------------------------------------------------------------------------------
# Glossary
# ---------------------------------------------------------------------------------------------


def test_copying_score_entry_does_not_equate_the_score_with_copying_each_token():
    entry = glossary_entry("copying score")
    assert "promotes that same token" not in entry
    assert "complex" in entry and "modulus" in entry
    assert "left eigenvector" in entry
    assert "top-1" in entry  # says what the score does not measure, and what does


def test_attention_pattern_entry_mentions_the_causal_mask():
    entry = glossary_entry("attention pattern")
    assert "causal mask" in entry and "softmax" in entry


# ---------------------------------------------------------------------------------------------
# Notation: the end-to-end circuits
# ---------------------------------------------------------------------------------------------


def test_notation_does_not_give_the_full_qk_circuit_an_unembedding():
    text = flat(page("notation"))
    assert "embedding before and the unembedding after turns the circuits" not in text
    intro = text[text.index("## End-to-end circuits"):text.index("In the **full QK** matrix")]
    assert "embedding on **both** sides" in intro and "no unembedding" in intro
    full_qk = re.search(r"\\text\{full QK\} = ([^,]*),", intro)
    assert full_qk and "W_U" not in full_qk.group(1)


# ---------------------------------------------------------------------------------------------
# QK circuit: SVD wording and the previous-token test
# ---------------------------------------------------------------------------------------------


def test_qk_svd_says_outer_product_and_nonnegative_singular_values():
    text = section(page("qk_circuit"), "A bilinear form")
    assert "outer product" in text
    assert r"\ge 0" in text


@pytest.mark.parametrize("p", PAGES, ids=[p.name for p in PAGES])
def test_no_page_tests_previous_token_heads_by_raw_entries_below_the_diagonal(p):
    text = flat(p.read_text(encoding="utf-8"))
    assert "just below the diagonal" not in text, f"{p.name}: the raw table is not the test"


def test_previous_token_test_is_scale_mask_softmax_then_weight_on_previous():
    text = flat(page("qk_circuit"))
    target = text.index("(previous-token-test)=")
    para = text[target:target + 900]
    for step in ("divide it by", "mask", "softmax", "j = i - 1"):
        assert step in para, step
    for name in ("side_by_side", "why_it_matters"):
        assert "<previous-token-test>" in page(name), f"{name} should link to the test"


# ---------------------------------------------------------------------------------------------
# OV circuit: copying score
# ---------------------------------------------------------------------------------------------


def test_ov_chapter_explains_complex_eigenvalues_and_left_eigenvectors():
    text = section(page("ov_circuit"), "Copying")
    assert "complex" in text and "modulus" in text
    assert "**left** eigenvectors" in text and r"v M = \lambda v" in text


# ---------------------------------------------------------------------------------------------
# Comparing QK and OV
# ---------------------------------------------------------------------------------------------


def test_layernorm_is_described_as_centring_and_dividing_by_the_standard_deviation():
    for p in PAGES:
        text = flat(p.read_text(encoding="utf-8"))
        assert not re.search(r"divid\w* [^.]{0,40}by its (own )?norm", text), p.name
        assert "enters the score twice" not in text, p.name
    text = flat(page("side_by_side"))
    assert "standard deviation" in text and "**two** such scales" in text
    assert "inverse temperature" in text


def test_uniform_pattern_solution_states_how_positions_are_counted():
    text = block(page("side_by_side"), "side-by-side-zero-qk")
    assert "1/(i+1)" in text and "Counting positions from 0" in text


def test_side_by_side_drops_the_unsupported_and_contradictory_lines():
    text = flat(page("side_by_side"))
    assert "surprise is almost always" not in text
    assert "useless pattern achieves nothing" not in text


# ---------------------------------------------------------------------------------------------
# One-layer model: skip-trigram bugs and the paper's formula
# ---------------------------------------------------------------------------------------------


def test_skip_trigram_bug_is_blamed_on_the_factorization_not_on_rank():
    text = section(page("one_layer_model"), "Skip-trigrams")
    assert "not as a list, so it cannot choose" not in text
    assert "factorization itself" in text
    assert "row $b$ of the OV table" in text and "not on $a$" in text
    assert "Rank plays no part" in text


def test_one_layer_model_shows_the_papers_whole_formula():
    text = flat(page("one_layer_model"))
    assert r"\mathrm{Id} \otimes W_U W_E" in text
    assert r"A^h \otimes \big(W_U W^h_{OV} W_E\big)" in text
    assert r"\operatorname{softmax}^{*}" in text and "causal mask" in text


# ---------------------------------------------------------------------------------------------
# Why it matters: the duplicate-token head
# ---------------------------------------------------------------------------------------------


def test_duplicate_token_solution_needs_a_contrast_not_a_constant_offer():
    text = block(page("why_it_matters"), "why-it-matters-claims")
    assert "roughly the same vector for every token" not in text
    assert "sum to one" in text or r"\sum_j \alpha_{ij} = 1" in text
    assert "**default** source" in text and "**difference**" in text
    assert r"W_{\text{pos}} W_{OV}" in text


# ---------------------------------------------------------------------------------------------
# Say each thing once
# ---------------------------------------------------------------------------------------------


def _no_space(text: str) -> str:
    text = re.sub(r"\\(?:big|Big|left|right)\b", "", text)
    return re.sub(r"\\[,;!]|\s+", "", text)


def test_the_ov_transpose_is_derived_on_the_notation_page_only():
    pattern = re.compile(r"\(W_EW_VW_OW_U\)\^\\top|\(W_EW_\{OV\}W_U\)\^\\top")
    holders = [p.name for p in PAGES if pattern.search(_no_space(p.read_text(encoding="utf-8")))]
    assert holders == ["notation.md"], holders


def test_the_paris_france_question_is_asked_once():
    holders = [p.name for p in PAGES if "France" in p.read_text(encoding="utf-8")]
    assert holders == ["notation.md"], holders


# ---------------------------------------------------------------------------------------------
# Corrections of the source article are checkable
# ---------------------------------------------------------------------------------------------


def test_every_mention_of_the_source_article_cites_it():
    bib = (BOOK / "references.bib").read_text(encoding="utf-8")
    assert "@misc{lmi_qk_ov_circuits," in bib and "learnmechinterp.com" in bib
    missing = []
    for p in PAGES:
        for para in re.split(r"\n\s*\n", p.read_text(encoding="utf-8")):
            if "article this book grew from" in flat(para) and "lmi_qk_ov_circuits" not in para:
                missing.append(f"{p.name}: {flat(para)[:80]}")
    assert not missing, "mentions of the source article without a citation:\n" + "\n".join(missing)
