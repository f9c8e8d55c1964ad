"""The book's own checks, run without building it.

(a) every glue reference in the pages names a notebook that exists and a key it really glues, with
    a format spec that myst-nb can apply to the glued value;
(b) no number typed by hand in the prose of book/*.md (computed numbers must be glued);
(c) every page starts with a title heading;
(d) the table of contents and the files on disk agree;
(e) every {term} used is defined in the glossary.

Glued keys are read from the notebooks' stored outputs (myst-nb's ``glue`` writes a display output
whose metadata is ``{"scrapbook": {"name": KEY, "mime_prefix": ...}}``): first from the committed
notebook, then from the executed copy of the last book build (``_build/jupyter_execute``) if it is
newer than the source, and only if a key is still missing, by executing the notebook with nbclient.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = ROOT / "notebooks"
BUILD_EXEC = ROOT / "_build" / "jupyter_execute"

PAGES = sorted(BOOK.glob("*.md"))
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _ids(paths):
    return [p.name for p in paths]


def test_there_is_something_to_check():
    assert PAGES, "no book/*.md pages found"
    assert (BOOK / "intro.md").exists()


# ============================================================================================
# Reading pages: front matter, fences, roles
# ============================================================================================

FENCE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,}|:{3,})\s*(?P<info>.*)$")
OPTION_LINE = re.compile(r"^\s*:[\w-]+:(\s|$)")
# Directives whose body is code, math or machine input, never prose.
NON_PROSE_DIRECTIVES = {
    "code", "code-block", "code-cell", "sourcecode", "literalinclude", "math", "raw",
    "bibliography", "toctree", "tableofcontents", "glue", "glue:any", "glue:figure", "glue:math",
    "glue:md", "image", "figure", "csv-table", "eval-rst",
}


def _blank(text: str) -> str:
    """Replace every character but newlines by a space (keeps line numbers and columns)."""
    return re.sub(r"[^\n]", " ", text)


def strip_front_matter(text: str) -> str:
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            stop = text.find("\n", end + 4)
            stop = len(text) if stop == -1 else stop
            return _blank(text[:stop]) + text[stop:]
    return text


def strip_fences(text: str) -> str:
    """Blank code blocks and non-prose directives; keep the bodies of prose directives.

    Backtick, tilde and colon fences may nest; a fence closes on a line holding only the same
    character, at least as many times. Option lines (``:alt: ...``) and fence lines are blanked.
    """
    lines = text.split("\n")
    out = []
    stack: list[tuple[str, bool]] = []  # (fence, is_prose)
    at_block_start = False
    for line in lines:
        stripped = line.strip()
        if stack:
            fence, prose = stack[-1]
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                stack.pop()
                out.append("")
                at_block_start = False
                continue
        m = FENCE_OPEN.match(line)
        opens = m is not None and (not stack or stack[-1][1])
        if opens:
            fence, info = m.group("fence"), m.group("info").strip()
            if fence[0] == ":" and not info.startswith("{"):
                opens = False  # a line of colons that is not a directive
        if opens:
            name = re.match(r"\{([^}]*)\}", info)
            is_prose = bool(name) and name.group(1) not in NON_PROSE_DIRECTIVES
            stack.append((fence, is_prose))
            out.append("")
            at_block_start = True
            continue
        if stack and not stack[-1][1]:
            out.append(_blank(line))
            continue
        if stack and at_block_start and OPTION_LINE.match(line):
            out.append(_blank(line))
            continue
        at_block_start = False
        out.append(line)
    return "\n".join(out)


ROLE = re.compile(r"\{[\w:.+-]+\}`[^`]*`")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
DISPLAY_MATH = re.compile(r"\$\$.*?\$\$", re.DOTALL)
ENV_MATH = re.compile(r"\\begin\{([a-zA-Z*]+)\}.*?\\end\{\1\}", re.DOTALL)
INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(?:\\\$|[^$\n]|\n(?!\s*\n))+?\$")
URL = re.compile(r"<?https?://[^\s)>\]]+>?")
LINK_TARGET = re.compile(r"\]\([^)]*\)")
LABEL = re.compile(r"^\s*\([\w:.-]+\)=\s*$", re.MULTILINE)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
HTML_TAG = re.compile(r"<[^>\n]+>")


def prose_only(text: str) -> str:
    """The page with everything that is not prose blanked out, line numbers preserved."""
    text = strip_front_matter(text)
    text = strip_fences(text)
    for pattern in (HTML_COMMENT, ROLE, INLINE_CODE, DISPLAY_MATH, ENV_MATH, INLINE_MATH, URL,
                    LINK_TARGET, LABEL, HTML_TAG):
        text = pattern.sub(lambda m: _blank(m.group(0)), text)
    return text


# ============================================================================================
# (b) No number typed by hand
# ============================================================================================

HAND_NUMBER = re.compile(
    r"(?<![\w.])\d+\.\d+(?:[eE][-+]?\d+)?(?!\.?\w)"  # 0.92, 3.5e-3 (not 1.0.4, not 1.x)
    r"|(?<![\w.])\d+(?:\.\d+)?\s*(?:%|percent\b)"  # 92%, 92 percent
    r"|(?<![\w.])\d+[eE][-+]?\d+(?!\w)"  # 3e-3
)
# Decimal-looking strings that are names, not results. Blanked before the scan.
ALLOWED = [
    re.compile(p)
    for p in (
        r"CC BY \d+\.\d+",
        r"(?:Jupyter Book|Python|PyTorch|torch|NumPy|numpy|Sphinx|TransformerLens|myst-nb|MyST)"
        r" \d+(?:\.\d+)*(?:\.x)?",
        r"GPT-\d+(?:\.\d+)?",
    )
]


def hand_typed_numbers(text: str) -> list[tuple[int, str]]:
    """``(line, match)`` for every decimal number or percentage left in the prose of ``text``."""
    prose = prose_only(text)
    for pattern in ALLOWED:
        prose = pattern.sub(lambda m: _blank(m.group(0)), prose)
    found = []
    for m in HAND_NUMBER.finditer(prose):
        found.append((prose.count("\n", 0, m.start()) + 1, m.group(0).strip()))
    return found


def test_scanner_catches_hand_typed_numbers_and_ignores_the_rest():
    text = "\n".join(
        [
            "---",
            "title: 0.5 in front matter",
            "---",
            "# A title",
            "The head attends with weight 0.92 to B.",  # line 5: caught
            "It pays 92% of its attention, or 92 percent.",  # line 6: two catches
            "The answer ends a sentence: 0.75.",  # line 7: caught
            "Math is fine: $0.5$ and $$e = 1.5$$ and {math}`0.25`.",
            "Glued: {glue:text}`../notebooks/01_x.ipynb::we_alpha_AB:.2f` and {cite:p}`a2021`.",
            "Inline code `lr = 0.003` and a URL https://example.org/v1.5/page are fine.",
            "Jupyter Book 1.x, version 1.0.4, GPT-2 and GPT-3, and 12 heads are fine.",
            "```python",
            "x = 0.5  # code",
            "```",
            ":::{dropdown} Pause",
            ":class: 50%",
            "Inside a dropdown 3.14 is prose.",  # line 17: caught
            ":::",
            "A learning rate of 3e-3.",  # line 19: caught
        ]
    )
    found = hand_typed_numbers(text)
    assert found == [
        (5, "0.92"), (6, "92%"), (6, "92 percent"), (7, "0.75"), (17, "3.14"), (19, "3e-3")
    ], found


def test_scanner_keeps_line_numbers_through_blocks():
    text = "# T\n\n$$\na\n$$\n\n```{glossary}\nterm\n  defined as 0.5 here\n```\n"
    assert hand_typed_numbers(text) == [(9, "0.5")]


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_no_hand_typed_numbers_in_prose(page):
    found = hand_typed_numbers(page.read_text(encoding="utf-8"))
    listing = "\n".join(f"{_rel(page)}:{line}: {number}" for line, number in found)
    assert not found, (
        "numbers typed by hand in prose (glue them from a notebook, or put them in math or "
        f"code if they are definitions):\n{listing}"
    )


MATH_DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+")


def decimals_in_math(text: str) -> list[tuple[int, str]]:
    """``(line, match)`` for decimals inside math: a computed value typed into a formula.

    Definitions in math use integers and symbols (``x_A = (1, 0, 1, -1)``, ``1/\\sqrt{d}``); a
    decimal there is almost always a result that should be glued into the prose next to it.
    """
    text = strip_fences(strip_front_matter(text))
    text = INLINE_CODE.sub(lambda m: _blank(m.group(0)), text)
    found = []
    for pattern in (DISPLAY_MATH, ENV_MATH, INLINE_MATH):
        for m in pattern.finditer(text):
            for d in MATH_DECIMAL.finditer(m.group(0)):
                found.append((text.count("\n", 0, m.start() + d.start()) + 1, d.group(0)))
            text = text[: m.start()] + _blank(m.group(0)) + text[m.end():]
    return sorted(set(found))


def test_math_scanner():
    text = "# T\n\nWeights $0.08$ and\n$$\n\\alpha = 0.9241\n$$\nbut $x = (1, 0, 1, -1)$ and `0.5`.\n"
    assert decimals_in_math(text) == [(3, "0.08"), (5, "0.9241")]


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_no_computed_decimals_in_math(page):
    found = decimals_in_math(page.read_text(encoding="utf-8"))
    listing = "\n".join(f"{_rel(page)}:{line}: {number}" for line, number in found)
    assert not found, f"decimals typed into math (glue the value into the prose instead):\n{listing}"


# ============================================================================================
# (c) Titles
# ============================================================================================


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_page_starts_with_a_title(page):
    text = strip_front_matter(page.read_text(encoding="utf-8"))
    text = HTML_COMMENT.sub("", text)
    lines = [ln for ln in text.split("\n") if ln.strip() and not LABEL.match(ln)]
    assert lines, f"{_rel(page)} is empty"
    assert re.match(r"^# \S", lines[0]), f"{_rel(page)} must start with '# Title', got {lines[0]!r}"


# ============================================================================================
# (d) Table of contents
# ============================================================================================


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return files


def _resolve(entry: str) -> Path | None:
    for suffix in ("", ".md", ".ipynb"):
        path = ROOT / (entry + suffix)
        if path.is_file():
            return path
    return None


def test_every_toc_entry_exists():
    missing = [entry for entry in _toc_files() if _resolve(entry) is None]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_page_and_notebook_is_in_the_toc():
    listed = {_resolve(entry) for entry in _toc_files()}
    absent = [_rel(p) for p in [*PAGES, *NOTEBOOK_FILES] if p not in listed]
    assert not absent, f"not in _toc.yml (so not in the book): {absent}"


def test_toc_has_no_duplicates():
    files = _toc_files()
    assert len(files) == len(set(files)), f"_toc.yml lists a file twice: {files}"


# ============================================================================================
# (a) Glue references
# ============================================================================================

GLUE_ROLE = re.compile(r"\{glue(?::(?:text|any|md|math|figure))?\}`(?P<arg>[^`]+)`")
GLUE_DIRECTIVE = re.compile(
    r"^\s*(?:`{3,}|:{3,})\{glue(?::(?:any|figure|math|md))?\}\s+(?P<arg>\S+)", re.MULTILINE
)


def glue_references(text: str) -> list[tuple[int, str, str | None, str, str | None]]:
    """``(line, kind, document, key, format)`` for every glue role and directive in ``text``.

    Parsed as myst-nb does: for a role, the format spec follows the *last* colon and the document
    precedes ``::``; ``document`` is None for a bare key.
    """
    refs = []
    for m in GLUE_ROLE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        arg = m.group("arg")
        parts = arg.rsplit(":", 1)
        key, fmt = (parts[0], parts[1]) if len(parts) == 2 else (parts[0], None)
        doc, _, key = key.rpartition("::") if "::" in key else (None, None, key)
        refs.append((line, "role", doc, key, fmt))
    for m in GLUE_DIRECTIVE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        doc, _, key = m.group("arg").rpartition("::")
        refs.append((line, "directive", doc or None, key, None))
    return refs


def test_glue_reference_parser():
    text = (
        "a {glue:text}`../notebooks/01_x.ipynb::we_alpha_AB:.2f` b\n"
        "{glue}`../notebooks/02_y.ipynb::m_seed:d` and {glue:text}`plain_key`\n"
        "```{glue:figure} ../notebooks/02_y.ipynb::fig_key\n:name: f\n```\n"
    )
    assert glue_references(text) == [
        (1, "role", "../notebooks/01_x.ipynb", "we_alpha_AB", ".2f"),
        (2, "role", "../notebooks/02_y.ipynb", "m_seed", "d"),
        (2, "role", None, "plain_key", None),
        (3, "directive", "../notebooks/02_y.ipynb", "fig_key", None),
    ]
    # myst-nb splits at the last colon, so a path form without a format spec is no cross-page
    # reference at all: the parser reports the mangled key, which the page test then rejects.
    assert glue_references("{glue:text}`../n.ipynb::k`")[0][2:4] == (None, "../n.ipynb:")


def _glued_outputs(nb: dict) -> dict[str, dict]:
    found = {}
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook")
            if isinstance(scrap, dict) and "name" in scrap:
                prefix = scrap.get("mime_prefix", "")
                data = {k[len(prefix):]: v for k, v in output.get("data", {}).items()}
                found[scrap["name"]] = data
    return found


@functools.cache
def _stored_glue(notebook: Path) -> dict[str, dict]:
    """Keys glued in the committed outputs, plus those of a build copy newer than the source."""
    glued = _glued_outputs(json.loads(notebook.read_text(encoding="utf-8")))
    built = BUILD_EXEC / notebook.relative_to(ROOT)
    if built.is_file() and built.stat().st_mtime >= notebook.stat().st_mtime:
        glued = {**_glued_outputs(json.loads(built.read_text(encoding="utf-8"))), **glued}
    return glued


@functools.cache
def _executed_glue(notebook: Path) -> dict[str, dict]:
    """Execute a copy of ``notebook`` (in its own folder, as the book build does) and read its glue."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(str(notebook), as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / notebook.parent.name
        shutil.copytree(notebook.parent, workdir)
        client = nbclient.NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
        )
        client.execute()
    return _glued_outputs(json.loads(nbformat.writes(nb)))


def _glue_data(notebook: Path, key: str) -> dict | None:
    data = _stored_glue(notebook).get(key)
    if data is None:
        data = _executed_glue(notebook).get(key)
    return data


def _sources_with_glue():
    """(source file, text, folder that relative paths start from, notebook it belongs to)."""
    items = [(p, p.read_text(encoding="utf-8"), p.parent, None) for p in PAGES]
    for nb_path in NOTEBOOK_FILES:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        md = "\n".join(
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb.get("cells", [])
            if c.get("cell_type") == "markdown"
        )
        items.append((nb_path, md, nb_path.parent, nb_path))
    return items


SOURCES = _sources_with_glue()


@pytest.mark.parametrize("source", SOURCES, ids=[_rel(s[0]) for s in SOURCES])
def test_glue_references_resolve(source):
    from myst_nb.core.variables import format_plain_text

    path, text, base, own_notebook = source
    problems = []
    for line, kind, doc, key, fmt in glue_references(prose_code_free(text)):
        where = f"{_rel(path)}:{line}"
        if doc is None:
            if own_notebook is None:
                problems.append(
                    f"{where}: glue {kind} {key!r} names no notebook; write "
                    "`../notebooks/NB.ipynb::key:FORMAT` (the format spec is required by myst-nb "
                    "for a cross-page reference; use :s for text)"
                )
                continue
            notebook = own_notebook
        else:
            notebook = (base / doc).resolve()
            if not notebook.is_file():
                problems.append(f"{where}: glue {kind} names {doc}, which does not exist")
                continue
        data = _glue_data(notebook, key)
        if data is None:
            problems.append(f"{where}: {notebook.name} never glues {key!r}")
            continue
        if kind == "role" and fmt is not None:
            plain = data.get("text/plain")
            if plain is None:
                problems.append(f"{where}: {key!r} has no text/plain output to format")
                continue
            try:
                format_plain_text(plain, fmt)
            except Exception as err:  # noqa: BLE001 - report any formatting failure
                problems.append(f"{where}: {key!r} = {plain!r} cannot be formatted with "
                                f"{fmt!r}: {err}")
    assert not problems, "\n".join(problems)


def prose_code_free(text: str) -> str:
    """Text with code blocks blanked (a glue role shown inside a code block is not a reference)."""
    return strip_fences(strip_front_matter(text))


# ============================================================================================
# (e) Glossary terms
# ============================================================================================


def glossary_terms() -> set[str]:
    path = BOOK / "glossary.md"
    if not path.exists():
        return set()
    text = path.read_text(encoding="utf-8")
    terms = set()
    for block in re.finditer(r"^(`{3,}|:{3,})\{glossary\}[^\n]*\n(.*?)^\1\s*$", text,
                             re.MULTILINE | re.DOTALL):
        for line in block.group(2).split("\n"):
            if line.strip() and not line[0].isspace() and not OPTION_LINE.match(line):
                terms.add(line.strip().lower())
    return terms


TERM_ROLE = re.compile(r"\{term\}`(?P<arg>[^`]+)`")


def term_targets(text: str) -> list[tuple[int, str]]:
    out = []
    for m in TERM_ROLE.finditer(text):
        arg = " ".join(m.group("arg").split())
        target = re.search(r"<([^>]+)>\s*$", arg)
        out.append((text.count("\n", 0, m.start()) + 1, (target.group(1) if target else arg)))
    return out


def test_glossary_defines_the_terms_the_chapters_rely_on():
    required = {
        "attention pattern", "copying head", "copying score", "destination token", "direct path",
        "end-to-end circuit", "induction head", "low-rank factorization", "ov circuit",
        "previous-token head", "qk circuit", "residual stream", "source token",
    }
    missing = required - glossary_terms()
    assert not missing, f"book/glossary.md does not define {sorted(missing)}"


@pytest.mark.parametrize("source", SOURCES, ids=[_rel(s[0]) for s in SOURCES])
def test_every_term_is_in_the_glossary(source):
    path, text, _, _ = source
    defined = glossary_terms()
    unknown = [
        f"{_rel(path)}:{line}: {term!r}"
        for line, term in term_targets(prose_code_free(text))
        if term.lower() not in defined
    ]
    assert not unknown, "terms not defined in book/glossary.md:\n" + "\n".join(unknown)


# ============================================================================================
# (f) Notebook markdown: no hand-typed numbers, nothing Colab cannot render, alt text on figures
# ============================================================================================


def _markdown_cells(notebook: Path) -> list[tuple[str, str]]:
    """``(cell id, source)`` of every markdown cell of ``notebook``."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return [
        (cell.get("id", f"#{i}"), "".join(cell["source"]))
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "markdown"
    ]


@pytest.mark.parametrize("notebook", NOTEBOOK_FILES, ids=_ids(NOTEBOOK_FILES))
def test_no_hand_typed_numbers_in_notebook_markdown(notebook):
    """The chapters' rule, with the same allowances, for every notebook's markdown."""
    found = []
    for cell_id, text in _markdown_cells(notebook):
        found += [(cell_id, line, n, "prose") for line, n in hand_typed_numbers(text)]
        found += [(cell_id, line, n, "math") for line, n in decimals_in_math(text)]
    listing = "\n".join(
        f"{_rel(notebook)} cell {cid} line {line}: {number} ({where})"
        for cid, line, number, where in found
    )
    assert not found, (
        "numbers typed by hand in notebook markdown (print them from the code next to the text, "
        f"or assert them in a checked cell and refer to the output):\n{listing}"
    )


MYST_ROLE = re.compile(r"\{[A-Za-z][\w:.+-]*\}`")
MYST_DIRECTIVE = re.compile(r"^\s*(?:`{3,}|~{3,}|:{3,})\s*\{", re.MULTILINE)
MYST_TARGET = re.compile(r"^\s*\([\w:.-]+\)=\s*$", re.MULTILINE)
PLAIN_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(?!\s*\{).*?^\1\2\s*$", re.MULTILINE | re.DOTALL)
BOOK_ONLY_UI = re.compile(r"rocket|launch button|top of (?:the|this) page", re.IGNORECASE)


def colab_unrenderable(text: str) -> list[str]:
    """MyST-only syntax (roles, directives, targets) and book-only UI words in ``text``.

    Colab and plain Jupyter render CommonMark with math: ``{doc}`x``` stays raw text there.
    Plain code fences and math are skipped (braces in LaTeX are not roles).
    """
    text = PLAIN_FENCE.sub(lambda m: _blank(m.group(0)), text)
    for pattern in (DISPLAY_MATH, ENV_MATH, INLINE_MATH):
        text = pattern.sub(lambda m: _blank(m.group(0)), text)
    found = [f"role {m.group(0)}" for m in MYST_ROLE.finditer(text)]
    found += [f"directive {m.group(0).strip()}" for m in MYST_DIRECTIVE.finditer(text)]
    found += [f"target {m.group(0).strip()}" for m in MYST_TARGET.finditer(text)]
    found += [f"book-only wording {m.group(0)!r}" for m in BOOK_ONLY_UI.finditer(text)]
    return found


def test_colab_scanner():
    text = (
        "See {doc}`../book/notation` and {term}`OV circuit`.\n"
        "Math $\\frac{1}{2}$ and $$\\text{out}_A$$ are fine, `{doc}` in code too? no: see below.\n"
        "```python\nx = {'a': 1}  # {doc}`not prose`\n```\n"
        ":::{note}\nhi\n:::\n"
        "```{margin}\nside\n```\n"
        "(my-label)=\n"
        "Use the rocket button at the top of the page.\n"
    )
    found = colab_unrenderable(text)
    assert found[:2] == ["role {doc}`", "role {term}`"]
    assert "directive :::{" in found and "directive ```{" in found
    assert "target (my-label)=" in found
    assert any("rocket" in f for f in found) and any("top of the page" in f for f in found)
    assert colab_unrenderable("[notation](https://example.org/book/notation.html), $x_{ij}$\n") == []


@pytest.mark.parametrize("notebook", NOTEBOOK_FILES, ids=_ids(NOTEBOOK_FILES))
def test_notebook_markdown_renders_in_colab(notebook):
    found = [
        f"{_rel(notebook)} cell {cid}: {what}"
        for cid, text in _markdown_cells(notebook)
        for what in colab_unrenderable(text)
    ]
    assert not found, (
        "notebook markdown that Colab and plain Jupyter cannot render (use plain Markdown, and "
        "full URLs of the published site for links to book pages):\n" + "\n".join(found)
    )


IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


def _image_cells_without_alt(nb: dict) -> list[str]:
    missing = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        shows_image = any(
            mime in output.get("data", {})
            for output in cell.get("outputs", [])
            if "scrapbook" not in output.get("metadata", {})  # glued figures are placed by pages
            for mime in IMAGE_MIMES
        )
        alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")
        if shows_image and not (isinstance(alt, str) and len(alt.split()) >= 5):
            missing.append(cell.get("id", f"#{i}"))
    return missing


def test_alt_text_checker():
    png = {"output_type": "display_data", "data": {"image/png": "x"}, "metadata": {}}
    nb = {"cells": [
        {"cell_type": "code", "id": "a", "metadata": {}, "outputs": [png]},
        {"cell_type": "code", "id": "b", "outputs": [png],
         "metadata": {"mystnb": {"image": {"alt": "A heatmap with a bright diagonal."}}}},
        {"cell_type": "code", "id": "c", "metadata": {}, "outputs": []},
        {"cell_type": "code", "id": "d", "metadata": {"mystnb": {"image": {"alt": "plot"}}},
         "outputs": [png]},
    ]}
    assert _image_cells_without_alt(nb) == ["a", "d"]


@pytest.mark.parametrize("notebook", NOTEBOOK_FILES, ids=_ids(NOTEBOOK_FILES))
def test_every_figure_cell_has_alt_text(notebook):
    missing = _image_cells_without_alt(json.loads(notebook.read_text(encoding="utf-8")))
    assert not missing, (
        f"{_rel(notebook)}: cells {missing} show an image but have no alt text; add cell metadata "
        '{"mystnb": {"image": {"alt": "what the figure shows"}}}'
    )
