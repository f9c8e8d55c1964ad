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


def test_notation_keeps_the_reader_s_needs_and_leaves_the_translation_to_the_appendix():
    # issue 29, item 11: the full row/column dictionary is an appendix, not the first chapter
    import yaml

    notation, appendix = flat(page("notation")), flat(page("column_convention"))
    for kept in ("### Sizes", "### Weights", "## The two circuits of a head", "## End-to-end circuits",
                 "**the same matrices**", "**the transposes**", "{doc}`column_convention`"):
        assert kept in notation, kept
    for moved in ("(convention-translation)=", "(ov-transpose)=", "(mixed-conventions)=",
                  "| | This book (rows, `x @ W`) | Elhage et al. (columns, `W x`) |", "^\\text{col}"):
        assert moved not in notation and moved in appendix, moved
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    reference = next(p for p in toc["parts"] if p["caption"] == "Reference")
    assert {"file": "book/column_convention"} in reference["chapters"]


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


def test_the_ov_transpose_is_derived_in_the_appendix_only():
    pattern = re.compile(r"\(W_EW_VW_OW_U\)\^\\top|\(W_EW_\{OV\}W_U\)\^\\top")
    holders = [p.name for p in PAGES if pattern.search(_no_space(p.read_text(encoding="utf-8")))]
    assert holders == ["column_convention.md"], holders


def test_the_paris_france_question_is_asked_once():
    holders = [p.name for p in PAGES if "France" in p.read_text(encoding="utf-8")]
    assert holders == ["column_convention.md"], holders


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


# ---------------------------------------------------------------------------------------------
# Introduction: the roadmap follows _toc.yml (issue 22)
# ---------------------------------------------------------------------------------------------

REFERENCE_PARTS = {"Reference", "Teaching"}  # named in the intro's text, not in its numbered roadmap


def toc_chapters() -> list[tuple[str, str]]:
    """``(part caption, file)`` for every chapter of _toc.yml, in reading order."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [(part["caption"], ch["file"]) for part in toc["parts"] for ch in part["chapters"]]


def roadmap() -> list[str]:
    """The page each numbered item of the intro's roadmap links first, as a path from the root."""
    items = re.findall(r"^\d+\. \{doc\}`([^`]+)`", page("intro"), re.MULTILINE)
    return [str((BOOK / target).resolve().relative_to(ROOT)) for target in items]


def test_the_roadmap_lists_every_page_of_the_toc_in_its_order():
    expected = [f for caption, f in toc_chapters() if caption not in REFERENCE_PARTS]
    assert roadmap() == expected, (
        "book/intro.md's numbered roadmap must list the chapters and lessons of _toc.yml in order "
        f"(missing: {sorted(set(expected) - set(roadmap()))}, "
        f"not in the toc: {sorted(set(roadmap()) - set(expected))})")


def test_the_intro_names_the_reference_pages():
    intro = page("intro")
    for caption, f in toc_chapters():
        if caption in REFERENCE_PARTS:
            assert f"{{doc}}`{Path(f).name}`" in intro, f"intro.md does not link {f}"


def test_no_chapter_calls_itself_the_last_or_leaves_composition_for_later():
    assert "this last chapter" not in flat(page("why_it_matters"))
    assert "leaves for later" not in flat(page("side_by_side"))
    assert "{doc}`composition`" in page("side_by_side")


# ---------------------------------------------------------------------------------------------
# Copying score and composition baseline (issue 22, wrong items 1 and 2)
# ---------------------------------------------------------------------------------------------


def test_a_copying_score_of_one_does_not_mean_every_token_raises_its_own_logit():
    import nbformat
    import numpy as np

    from toymodel import circuits

    m = np.array([[-1.0, 3.0], [-3.0, 5.0]])  # the chapter's counterexample
    np.testing.assert_allclose(np.linalg.eigvals(m), [2, 2], atol=1e-6)
    eye = np.eye(2)
    assert circuits.copying_score(eye, eye, eye, m) == pytest.approx(1.0)  # W_E W_V W_O W_U = m
    assert m[0, 0] < 0  # attending to token 1 lowers token 1's logit
    assert r"\begin{pmatrix} -1 & 3 \\ -3 & 5 \end{pmatrix}" in page("ov_circuit")
    wrong = "attending to a token raises that token's own logit"
    lesson = nbformat.read(ROOT / "notebooks" / "07_at_scale.ipynb", as_version=4)
    text = flat(" ".join(c.source for c in lesson.cells if c.cell_type == "markdown"))
    assert wrong not in text and "positive real axis" in text
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):  # no lesson says it either
        nb = nbformat.read(path, as_version=4)
        text = flat(" ".join(c.source for c in nb.cells if c.cell_type == "markdown"))
        for claim in (wrong, "raises that same token's logit"):
            assert claim not in text, (path.name, claim)
    assert wrong not in flat(circuits.copying_score.__doc__)
    alts = " ".join(str(c.metadata.get("mystnb", {})) for c in lesson.cells)
    assert "raises it" not in alts


def test_the_composition_baseline_depends_on_the_rank():
    import math

    from toymodel.composition import composition_baseline

    d = 32
    rank1 = composition_baseline(d, 1, n_samples=2000)
    full = composition_baseline(d, d, n_samples=200)
    for kind in "qkv":  # at rank 1 the mean |cos| of two random directions, ~ sqrt(2/(pi d))
        assert rank1[kind] == pytest.approx(math.sqrt(2 / (math.pi * d)), abs=0.015)
        assert full[kind] == pytest.approx(1 / math.sqrt(d), abs=0.005)
        assert rank1[kind] < full[kind] - 0.02
    text = flat(page("composition"))
    assert "whatever the rank" not in text.replace("squared* score is $1/d_\\text{model}$ whatever the rank", "")
    assert "as the rank grows" in text
    # issue 29, item 6: the rank-1 value the chapter quotes is the exact one, with its formula, and
    # the Monte Carlo baseline is called an estimate with a standard error, not a value
    assert "(rank1-baseline)=" in page("composition")
    assert r"\frac{\Gamma\!\big(\tfrac{d}{2}\big)}{\sqrt{\pi}\;\Gamma\!\big(\tfrac{d+1}{2}\big)}" in text
    assert "04_two_layers.ipynb::tl_baseline_rank1" in text and "standard error" in text
    from toymodel.composition import rank1_baseline
    assert rank1_baseline(d) == pytest.approx(math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d + 1) / 2)))


# ---------------------------------------------------------------------------------------------
# Loose statements made precise (issue 22)
# ---------------------------------------------------------------------------------------------


def test_the_layernorm_margin_says_the_sum_is_exact_only_before_the_block():
    text = flat(page("residual_stream"))
    assert "pre-LN" in text and "post-LN" in text


def test_induction_needs_a_previous_token_head_only_in_the_common_mechanism():
    entry = glossary_entry("induction head")
    assert "It needs the help of" not in entry
    assert "not the only possible one" in entry


def test_the_query_and_key_sides_read_their_own_subspaces():
    text = flat(page("two_jobs"))
    assert "attend on the basis of a 64-dimensional slice" not in text
    assert "up to 128 together" in text


def test_the_left_eigenvector_reading_is_called_a_heuristic_and_explained_by_the_trace():
    text = flat(page("ov_circuit"))
    assert "heuristic" in text and r"\sum_k \lambda_k = \sum_s M_{ss}" in text


def test_lesson_02b_says_negation_needs_the_self_block_to_find_the_minimum():
    import nbformat

    lesson = nbformat.read(ROOT / "notebooks" / "03_editing_circuits.ipynb", as_version=4)
    goals = flat(lesson.cells[0].source)
    assert "turns a max-finder into a min-finder." not in goals
    assert "blocks the query's attention to itself" in goals


def test_no_retraining_claim_of_bit_identity_beyond_one_cpu_type():
    import nbformat

    texts = [flat(p.read_text(encoding="utf-8")) for p in PAGES]
    texts.append(flat((ROOT / "README.md").read_text(encoding="utf-8")))
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        texts.append(flat(" ".join(c.source for c in nb.cells if c.cell_type == "markdown")))
    for text in texts:
        assert "bit for bit" not in text and "bit-for-bit" not in text


def test_lessons_name_what_they_build_on_instead_of_the_previous_lesson():
    import nbformat

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        text = flat(" ".join(c.source for c in nb.cells if c.cell_type == "markdown"))
        assert "the previous lesson" not in text, path.name  # its neighbour in _toc.yml may change
    lesson = nbformat.read(ROOT / "notebooks" / "07_at_scale.ipynb", as_version=4)
    assert "notebooks/02_one_layer_model.html" in lesson.cells[0].source


def test_the_at_scale_lesson_says_raw_w_u_is_tied_and_folded_w_u_is_not():
    import nbformat

    lesson = nbformat.read(ROOT / "notebooks" / "07_at_scale.ipynb", as_version=4)
    cells = {c.id: c.source for c in lesson.cells}
    assert "the raw $W_U$ equals $W_E^\\top$" in flat(cells["g3-model-md"])
    assert "diag(g_f) W_E^T" in cells["g3-load"] and "assert torch.allclose" in cells["g3-load"]


def test_assignment_3_counts_the_position_token_term_in_a_keys_score():
    import numpy as np

    from toymodel import grading
    from toymodel.grading import _answers  # the graders' references, private since issue 30

    m = grading.random_model(seed=22, d_vocab=9)
    w = grading.head_weights(m)
    pos_tok = w["W_pos"][-1] @ w["W_Q"] @ w["W_K"].T @ w["W_E"].T
    np.testing.assert_allclose(_answers.key_token_score(m, 8, 8),
                               _answers.query_row(m, 8, 8) + pos_tok[:8])


# ---------------------------------------------------------------------------------------------
# Issue 22, pedagogy 1: say each thing once. One home per point, every other page links to it.
# ---------------------------------------------------------------------------------------------


def lesson_markdown(stem: str) -> str:
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    return flat(" ".join(c.source for c in nb.cells if c.cell_type == "markdown"))


LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


def holders(pattern: re.Pattern, *, lessons: bool = True) -> list[str]:
    """The pages (and, with ``lessons``, the lessons' markdown) whose flattened text matches."""
    found = [p.name for p in PAGES if pattern.search(flat(p.read_text(encoding="utf-8")))]
    if lessons:
        found += [f"{s}.ipynb" for s in LESSONS if pattern.search(lesson_markdown(s))]
    return found


def labelled_heading(text: str, label: str) -> str:
    """The heading (or first line) directly under the MyST target ``(label)=``."""
    m = re.search(rf"^\({re.escape(label)}\)=\s*\n(.+)$", text, re.MULTILINE)
    assert m, f"no target ({label})="
    return m.group(1)


def test_the_layernorm_caveat_has_one_home_and_the_others_link_to_it():
    assert labelled_heading(page("side_by_side"), "layernorm-caveat") == "## What LayerNorm changes"
    home = section(page("side_by_side"), "What LayerNorm changes")
    assert "standard deviation" in home and "**two** such scales" in home
    assert "inverse temperature" in home and "final LayerNorm" in home
    # the mechanism (centre, divide by the standard deviation, fold the gain) is told there only
    mechanism = re.compile(r"subtracts (?:each|the|its) [^.]{0,40}mean|divides? by (?:its|that "
                           r"position's) standard deviation|inverse temperature|can be folded into")
    assert holders(mechanism) == ["side_by_side.md"], holders(mechanism)
    for name in ("residual_stream", "one_layer_model"):
        assert "<layernorm-caveat>`" in flat(page(name)), f"{name} should link to the caveat"
    assert "side_by_side.html#layernorm-caveat" in lesson_markdown("04_two_layers")


def test_the_one_layer_closed_form_is_derived_in_its_chapter_only():
    assert labelled_heading(page("one_layer_model"), "closed-form") == "## The closed form"
    derivation = re.compile(r"T\(X\) \\;=\\; X")  # the displayed equation, not the recaps
    assert holders(derivation, lessons=False) == ["one_layer_model.md"]
    assert "<closed-form>`" in flat(page("two_jobs")), "two_jobs should point forward to it"
    assert "<closed-form>`" in flat(page("why_it_matters"))


def test_why_relabelling_w_u_is_forced_is_argued_in_the_one_layer_chapter_only():
    text = page("one_layer_model")
    assert labelled_heading(text, "relabel-by-construction") == "## An edit whose outcome is forced"
    home = section(text, "An edit whose outcome is forced")
    for point in ("touches $W_U$ and nothing else", "never contain $W_U$", "by construction",
                  "for any weights"):
        assert point in home, point
    argument = re.compile(r"(?:every|each) logit vector is (?:then )?the old one")
    assert holders(argument, lessons=False) == ["one_layer_model.md"], holders(argument, lessons=False)
    assert "Be precise about what" not in flat(page("why_it_matters"))
    assert "<relabel-by-construction>`" in section(page("why_it_matters"),
                                                   "Testing the claims by editing one circuit")


def test_the_ov_transpose_warning_has_its_home_in_the_appendix():
    assert labelled_heading(page("column_convention"), "ov-transpose").startswith(
        "**The OV circuit comes out transposed.**")
    reading = re.compile(r"row is the output logit and the column the attended token")
    assert holders(reading) == ["column_convention.md"], holders(reading)
    for name in ("ov_circuit", "composition"):
        assert "<ov-transpose>`" in flat(page(name)), f"{name} should link to the warning"
    # the OV chapter's warning box is one sentence and a link, not a second derivation
    box = re.search(r"```\{admonition\} Check the convention before you read a row\n(.*?)```",
                    page("ov_circuit"), re.DOTALL)
    assert box and flat(box.group(1)).count(". ") == 0 and "<ov-transpose>`" in box.group(1)


# ---------------------------------------------------------------------------------------------
# Issue 29, item 10: four more points said once. Each has one home, under a label; every other
# place says it in a sentence at most and links the home (pages by {ref}, lessons by the site URL).
# ---------------------------------------------------------------------------------------------

# Places whose files belong to other authors of issue 29; they apply the one-sentence replacement
# listed in the issue in their own branches. Each entry is checked to be still needed: once a place
# is done, its entry fails the test and must be removed from this set.
AWAITING: set = set()  # every place now says each point once (issue 29, item 10)
SITE_BOOK = "https://qk-ov-circuits.github.io/qk-ov-book/book/"


def done(point: str, place: str, ok: bool, why: str) -> None:
    """Assert ``ok`` for a place, or, for a place still awaiting its owner, that it is not yet ok."""
    if (point, place) in AWAITING:
        assert not ok, f"{place} now says {point!r} once: remove it from AWAITING"
    else:
        assert ok, f"{place}: {why}"


def text_of(place: str) -> str:
    return lesson_markdown(place[:-6]) if place.endswith(".ipynb") else flat(page(place[:-3]))


def without_section(text: str, heading: str) -> str:
    """``text`` (flattened) with the section under ``heading`` cut out."""
    home = section(text, heading)
    return re.sub(rf"#+ {re.escape(heading)}", " ", flat(text).replace(home, " "))


def test_a_copying_score_near_one_is_qualified_in_the_ov_chapter_only():
    home_text = page("ov_circuit")
    ok = "(copying-score-caveat)=" in home_text and labelled_heading(
        home_text, "copying-score-caveat").startswith("A score of $1$ does not mean")
    done("copying", "ov_circuit.md", ok, "the caveat should sit under (copying-score-caveat)=")
    # the counterexample (a score of 1 whose head lowers a token's own logit) is told at home only
    counterexample = re.compile(r"(?:matrix|example) with (?:a )?score (?:of )?\$?1\$?")
    for place in ("glossary.md", "language_models.md", "05_language_one_layer.ipynb",
                  "07_at_scale.ipynb"):
        text = text_of(place)
        if place == "glossary.md":
            text = glossary_entry("copying score")
        link = ("ov_circuit.html#copying-score-caveat" if place.endswith(".ipynb")
                else "<copying-score-caveat>`")
        done("copying", place, link in text and not counterexample.search(text),
             "one sentence and a link to the caveat, not the counterexample again")


def test_relabelling_w_u_is_called_forced_with_a_link_and_argued_at_home_only():
    bullet = re.search(r"- \*\*Relabel the unembedding[^\n]*(?:\n  [^\n]*)*", page("why_it_matters"))
    assert bullet and "<relabel-by-construction>`" in bullet.group(0)
    assert flat(bullet.group(0)).count(". ") <= 1, "the bullet should be a sentence and a link"
    # the check's numbers are the lesson's; the chapter no longer walks through them
    assert "m_perm_follow" not in page("why_it_matters")
    argument = re.compile(r"(?:every|each) logit vector is (?:then )?the old one|edits the "
                          r"end-to-end OV table and the direct path")
    lesson = text_of("03_editing_circuits.ipynb")
    done("relabel", "03_editing_circuits.ipynb",
         "one_layer_model.html#relabel-by-construction" in lesson and not argument.search(lesson),
         "say that the outcome is forced and link the chapter, without the argument")


def test_the_critique_of_the_source_article_has_one_home():
    text = page("qk_circuit")
    heading = "Where the worked example's source goes wrong"
    assert labelled_heading(text, "seed-article") == f"## {heading}"
    home = section(text, heading)
    for point in ("**No causal mask.**", "we_out_A_causal", "**Rounding in the middle.**",
                  "we_out_A_seed", "round only what you print", "**Two conventions at once.**",
                  r"$W_E^\top W_{QK} W_E$", "lmi_qk_ov_circuits"):
        assert point in home, point
    moral = re.compile(r"round only what you print|keep intermediate quantities exact")
    # pages: every other paragraph about the article links the home, and none repeats the moral
    for p in PAGES:
        body = without_section(p.read_text(encoding="utf-8"), heading) if p.stem == "qk_circuit" \
            else p.read_text(encoding="utf-8")
        paragraphs = [flat(x) for x in re.split(r"\n\s*\n", body) if "article this book grew from" in flat(x)]
        ok = all("<seed-article>`" in x for x in paragraphs) and not moral.search(flat(body))
        ok = ok and (p.stem == "qk_circuit" or "we_out_A_seed" not in body)
        done("seed", p.name, ok, "one sentence and a link to the critique, not the critique again")
    lesson = text_of("01_worked_example.ipynb")
    done("seed", "01_worked_example.ipynb",
         "qk_circuit.html#seed-article" in lesson and not moral.search(lesson),
         "the lesson computes the two outputs and links the critique")


def test_the_layernorm_caveat_is_linked_not_retold():
    side = page("side_by_side")
    rest = without_section(side, "What LayerNorm changes")
    mentions = [x for x in re.split(r"(?<=\.) ", rest) if "LayerNorm" in x]
    learn = [x for x in mentions if x.startswith("- What LayerNorm")]  # the chapter's learning goal
    assert len(mentions) - len(learn) == 1, mentions  # the list of ties, one sentence with the link
    assert all("<layernorm-caveat>`" in x for x in mentions if x not in learn)
    # the stream stays a sum under pre-LN: told in the residual-stream chapter, linked from the home
    assert "{doc}`residual_stream`" in section(side, "What LayerNorm changes")
    assert "still a sum" not in section(side, "What LayerNorm changes")
    # the two-layer lesson and the one-layer chapter say it in a sentence with the link
    assert "side_by_side.html#layernorm-caveat" in lesson_markdown("04_two_layers")
    one_layer = flat(page("one_layer_model"))
    done("layernorm", "one_layer_model.md", "divides each position's vector" not in one_layer
         and "<layernorm-caveat>`" in one_layer, "one sentence and the link, not the mechanism")
    at_scale = lesson_markdown("07_at_scale")
    done("layernorm", "07_at_scale.ipynb", "side_by_side.html#layernorm-caveat" in at_scale,
         "the folding section should link the caveat for what folding cannot remove")


# ---------------------------------------------------------------------------------------------
# Issue 22, pedagogy 2 and 3: code early; each interactive figure in the chapter that discusses it
# ---------------------------------------------------------------------------------------------

FRONT_MATTER = "---\njupytext:\n"


def code_cells(text: str) -> list[str]:
    return re.findall(r"^```\{code-cell\} ipython3\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("name, call, label", [
    ("two_jobs", "webfigs.worked_example_figure()", "worked-example-figure"),
    ("one_layer_model", "webfigs.trained_model_figure()", "trained-model-figure"),
])
def test_each_interactive_figure_sits_in_its_chapter_once(name, call, label):
    text = page(name)
    assert text.startswith(FRONT_MATTER), f"{name}.md must be a MyST notebook to draw the figure"
    assert any(call in cell for cell in code_cells(text)), f"{name}.md does not draw {call}"
    assert f"({label})=" in text
    others = [p.name for p in PAGES if p.stem != name and call in p.read_text(encoding="utf-8")]
    assert others == [], f"{call} is drawn on other pages too: {others}"
    assert f"<{label}>`" in page("interactive"), f"the index page does not link {label}"


def test_the_interactive_page_is_only_an_index():
    text = page("interactive")
    assert not text.startswith(FRONT_MATTER) and code_cells(text) == []
    assert "{doc}`two_jobs`" in text and "{doc}`one_layer_model`" in text


def test_code_appears_in_the_first_chapter_and_the_roadmap_says_so():
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    first = toc["parts"][0]["chapters"][0]["file"]
    text = (ROOT / f"{first}.md").read_text(encoding="utf-8")
    assert text.startswith(FRONT_MATTER) and code_cells(text), f"{first} runs no code"
    cell = code_cells(text)[0]
    assert "print(" in cell and "assert " in cell  # shows an output and checks it
    intro = flat(page("intro"))
    assert "Code comes early." in intro and "first notebook to run yourself" in intro
