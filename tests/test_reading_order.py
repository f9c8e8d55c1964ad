"""A reader never meets a lesson's number before meeting the lesson's example.

The chapters quote numbers computed in the lessons (myst-nb ``glue``). A number such as the worked
example's score of A for B means nothing to a reader who has not yet been shown the example. So
for every page of the book, in the reading order of ``_toc.yml``, and for every notebook whose glued
keys the page quotes, the reader must already have **met** that notebook's example, which means:

1. the notebook comes earlier in ``_toc.yml`` than the page (the reader has worked through it); or
2. the page contains a **setup block** for the notebook before its first quote of it: a MyST label
   ``(setup:<notebook stem>)=`` directly followed by a section heading, whose section introduces
   the example in words, and the page links to the notebook (``{doc}`` or a URL) before that first
   quote. The label is the author's promise that the section restates the setup; the test checks
   that the promise comes first.

Reading order is ``root`` first, then every ``file`` entry depth first, as Jupyter Book numbers
them. Notebooks quoting their own keys are exempt (they compute them in front of the reader).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

GLUE_REF = re.compile(
    r"\{glue(?::\w+)?\}`(?P<doc>[^`:]*\.ipynb)::(?P<key>[^`:]+)(?::[^`]*)?`"
    r"|^\s*(?:`{3,}|:{3,})\{glue(?::\w+)?\}\s+(?P<ddoc>\S+\.ipynb)::(?P<dkey>\S+)",
    re.MULTILINE,
)
HEADING = re.compile(r"^#{1,6} \S")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def reading_order(toc: dict) -> list[str]:
    """The toc's files in reading order (root first, then depth first), as written in the toc."""
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                if key in node:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return files


def _resolve(entry: str, root: Path) -> Path | None:
    for suffix in ("", ".md", ".ipynb"):
        path = root / (entry + suffix)
        if path.is_file():
            return path
    return None


def page_text(path: Path) -> str:
    """A page's markdown; for a notebook, its markdown cells joined in order."""
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        return "\n".join(
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb.get("cells", [])
            if c.get("cell_type") == "markdown"
        )
    return path.read_text(encoding="utf-8")


def _without_code(text: str) -> str:
    """Blank fenced code blocks (a glue role shown as code is not a quote); keeps offsets.

    Directive fences (```{name}) nest and keep their bodies; any other fence is code.
    """
    out: list[str] = []
    stack: list[tuple[str, bool]] = []  # (fence, is_code)
    for line in text.split("\n"):
        m = FENCE.match(line)
        in_code = any(code for _, code in stack)
        stripped = line.strip()
        if m and stack and set(stripped) == {stack[-1][0][0]} and len(stripped) >= len(stack[-1][0]):
            stack.pop()
            out.append(" " * len(line) if in_code else line)
        elif m and not in_code:
            stack.append((m.group(1), not stripped[len(m.group(1)):].startswith("{")))
            out.append(" " * len(line) if stack[-1][1] else line)
        else:
            out.append(" " * len(line) if in_code else line)
    return "\n".join(out)


def quotes(text: str, base: Path) -> dict[Path, tuple[int, str]]:
    """``{notebook: (offset, key)}``: the first glued key the text quotes from each notebook."""
    first: dict[Path, tuple[int, str]] = {}
    for m in GLUE_REF.finditer(_without_code(text)):
        doc, key = (m.group("doc"), m.group("key")) if m.group("doc") else (m.group("ddoc"),
                                                                             m.group("dkey"))
        notebook = (base / doc).resolve()
        if notebook not in first:
            first[notebook] = (m.start(), key)
    return first


def setup_block_offset(text: str, notebook: Path) -> int | None:
    """Offset of a ``(setup:<stem>)=`` label that is followed by a heading, or None."""
    label = re.compile(rf"^\(setup:{re.escape(notebook.stem)}\)=\s*$", re.MULTILINE)
    for m in label.finditer(text):
        rest = [ln for ln in text[m.end():].split("\n") if ln.strip()]
        if rest and HEADING.match(rest[0]):
            return m.start()
    return None


def links_to(text: str, notebook: Path, base: Path) -> list[int]:
    """Offsets where the text links to ``notebook`` by {doc} or by a URL naming its stem."""
    offsets = []
    for m in re.finditer(r"\{doc\}`(?:[^`<]*<)?(?P<target>[^`>]+)>?`", text):
        if (base / m.group("target")).resolve().with_suffix(".ipynb") == notebook:
            offsets.append(m.start())
    for m in re.finditer(rf"https?://\S*/{re.escape(notebook.stem)}\.(?:html|ipynb)", text):
        offsets.append(m.start())
    return offsets


def reading_order_problems(toc: dict, root: Path) -> list[str]:
    """Every place where a page quotes a notebook's number before the reader has met it."""
    order = [(entry, _resolve(entry, root)) for entry in reading_order(toc)]
    position = {path.resolve(): i for i, (_, path) in enumerate(order) if path is not None}
    problems = []
    for i, (entry, path) in enumerate(order):
        if path is None:
            continue
        text = page_text(path)
        for notebook, (offset, key) in quotes(text, path.parent).items():
            if notebook == path.resolve():
                continue
            where = f"{entry} quotes {notebook.name}::{key}"
            if notebook not in position:
                problems.append(f"{where}, but that notebook is not in _toc.yml")
                continue
            if position[notebook] < i:
                continue  # the reader has worked through the lesson already
            setup = setup_block_offset(text, notebook)
            if setup is not None and setup < offset:
                if any(o < offset for o in links_to(text, notebook, path.parent)):
                    continue
                problems.append(f"{where}: its setup block comes first, but the page does not "
                                f"link to the notebook before the quote")
                continue
            problems.append(
                f"{where} before the reader has met that example: move the notebook earlier in "
                f"_toc.yml, or restate its setup in a section labelled "
                f"'(setup:{notebook.stem})=' above the first quote"
            )
    return problems


# --------------------------------------------------------------------------------------------
# The book itself
# --------------------------------------------------------------------------------------------


def _toc() -> dict:
    return yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))


def test_no_page_quotes_a_lesson_before_the_reader_meets_it():
    problems = reading_order_problems(_toc(), ROOT)
    assert not problems, "\n".join(problems)


def test_the_worked_example_comes_before_the_chapters_that_quote_it():
    order = [_resolve(e, ROOT) for e in reading_order(_toc())]
    order = [p.resolve() for p in order if p is not None]
    worked = (ROOT / "notebooks" / "01_worked_example.ipynb").resolve()
    quoting = [p for p in order
               if p != worked and worked in quotes(page_text(p), p.parent)]
    assert quoting, "no page quotes the worked example: this test no longer guards anything"
    late = [p.name for p in quoting if order.index(p) < order.index(worked)]
    assert not late, f"pages quoting the worked example before it: {late}"


# --------------------------------------------------------------------------------------------
# The checker, on a small made-up book
# --------------------------------------------------------------------------------------------


def _book(tmp_path: Path, pages: dict[str, str]) -> Path:
    (tmp_path / "book").mkdir()
    (tmp_path / "notebooks").mkdir()
    nb = {"cells": [{"cell_type": "markdown", "source": ["# Lesson\n"]}], "metadata": {},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "notebooks" / "01_ex.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    for name, text in pages.items():
        (tmp_path / "book" / f"{name}.md").write_text(text, encoding="utf-8")
    return tmp_path


QUOTE = "The score is {glue:text}`../notebooks/01_ex.ipynb::we_score_AB:d`.\n"


def _toc_of(*entries: str) -> dict:
    return {"format": "jb-book", "root": "book/intro",
            "parts": [{"caption": "c", "chapters": [{"file": e} for e in entries]}]}


def test_checker_flags_a_quote_before_the_lesson(tmp_path):
    root = _book(tmp_path, {"intro": "# Intro\n", "early": "# Early\n\n" + QUOTE})
    problems = reading_order_problems(_toc_of("book/early", "notebooks/01_ex"), root)
    assert len(problems) == 1 and "book/early quotes 01_ex.ipynb::we_score_AB" in problems[0]


def test_checker_accepts_a_quote_after_the_lesson(tmp_path):
    root = _book(tmp_path, {"intro": "# Intro\n", "late": "# Late\n\n" + QUOTE})
    assert reading_order_problems(_toc_of("notebooks/01_ex", "book/late"), root) == []


def test_checker_accepts_a_setup_block_above_the_first_quote(tmp_path):
    setup = ("# Early\n\n(setup:01_ex)=\n## The example\n\nTwo tokens A and B, as in "
             "{doc}`../notebooks/01_ex`.\n\n")
    root = _book(tmp_path, {"intro": "# Intro\n", "early": setup + QUOTE})
    assert reading_order_problems(_toc_of("book/early", "notebooks/01_ex"), root) == []


def test_checker_rejects_a_setup_block_after_the_quote_or_without_heading(tmp_path):
    after = "# Early\n\n" + QUOTE + "\n(setup:01_ex)=\n## The example\n\n{doc}`../notebooks/01_ex`\n"
    bare = "# Early\n\n(setup:01_ex)=\nsome text {doc}`../notebooks/01_ex`\n\n" + QUOTE
    unlinked = "# Early\n\n(setup:01_ex)=\n## The example\n\nTwo tokens.\n\n" + QUOTE
    root = _book(tmp_path, {"intro": "# Intro\n", "after": after, "bare": bare,
                            "unlinked": unlinked})
    toc = _toc_of("book/after", "book/bare", "book/unlinked", "notebooks/01_ex")
    problems = reading_order_problems(toc, root)
    assert [p.split(" quotes")[0] for p in problems] == ["book/after", "book/bare", "book/unlinked"]
    assert "does not link" in problems[2]


def test_checker_ignores_quotes_shown_as_code(tmp_path):
    code = "# Early\n\n```md\n" + QUOTE + "```\n"
    root = _book(tmp_path, {"intro": "# Intro\n", "early": code})
    assert reading_order_problems(_toc_of("book/early", "notebooks/01_ex"), root) == []


def test_reading_order_is_root_then_depth_first():
    toc = _toc_of("a", "b")
    assert reading_order(toc) == ["book/intro", "a", "b"]
    toc["parts"][0]["chapters"][0]["sections"] = [{"file": "a1"}]
    assert reading_order(toc) == ["book/intro", "a", "a1", "b"]


def test_checker_sees_glue_directives(tmp_path):
    figure = "# Early\n\n```{glue:figure} ../notebooks/01_ex.ipynb::fig_pattern\n:name: f\n```\n"
    root = _book(tmp_path, {"intro": "# Intro\n", "early": figure})
    problems = reading_order_problems(_toc_of("book/early", "notebooks/01_ex"), root)
    assert len(problems) == 1 and "01_ex.ipynb::fig_pattern" in problems[0]
