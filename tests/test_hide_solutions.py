"""The book's edition without solutions (toymodel.hide_solutions, `make book-nosolutions`).

The whole book is built once with every solution hidden (the notebooks' stored outputs are reused,
so nothing re-executes: about half a minute) and every built file is scanned for solution text.
A build already made by `make book-nosolutions` in _build/nosolutions is reused when it is newer
than every source.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from toymodel import hide_solutions as hs

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "_config.yml", ROOT / "_toc.yml", *ROOT.glob("book/*.md"),
           *ROOT.glob("notebooks/*.ipynb"), Path(hs.__file__)]


def _fresh(html: Path) -> bool:
    index = html / "index.html"
    return index.is_file() and index.stat().st_mtime > max(p.stat().st_mtime for p in SOURCES)


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    existing = ROOT / "_build" / "nosolutions" / "_build" / "html"
    if _fresh(existing):
        return existing
    return hs.build(ROOT, tmp_path_factory.mktemp("nosolutions"), execute=False)


PHRASE = re.compile(r"\b(?:[A-Za-z]{2,} ){4}[A-Za-z]{2,}\b")


def _solution_phrases() -> list[str]:
    """From each solution of the normal book, a run of five plain words (no math or markup)."""
    blocks = []
    for page in sorted(ROOT.glob("book/*.md")):
        blocks += re.findall(r"```\{solution\}[^\n]*\n(.*?)```", page.read_text(), re.S)
    for nb in sorted(ROOT.glob("notebooks/*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            blocks += re.findall(r"</summary>(.*?)</details>", "".join(cell["source"]), re.S)
    phrases = []
    for block in blocks:
        block = re.sub(r"(?m)^:.*$", "", block)  # directive options (:class: dropdown)
        for segment in re.split(r"\$[^$]*\$|`[^`]*`|\{[^}]*\}|\([^)]*\)|[*_\"]", block):
            m = PHRASE.search(" ".join(segment.split()))
            if m:
                phrases.append(m.group(0))
                break
    return phrases


def test_edition_has_no_solution_text(edition):
    assert (edition / "book" / "qk_circuit.html").is_file()
    assert hs.find_leaks(edition) == []
    # the exercises are still there, their solutions are not
    page = (edition / "book" / "qk_circuit.html").read_text()
    assert 'class="exercise' in page
    phrases = _solution_phrases()
    assert len(phrases) >= 10
    built = " ".join(p.read_text(errors="replace") for p in edition.rglob("*.html"))
    built = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", built)).split())
    for phrase in phrases:
        assert phrase not in built, f"solution text {phrase!r} is in the edition"
    lesson = (edition / "notebooks" / "01_worked_example.html").read_text()
    assert "Exercise 1." in lesson and "Exercise 3." in lesson


def test_scanner_finds_each_kind_of_leak(tmp_path):
    (tmp_path / "a.html").write_text('<div class="solution dropdown admonition" id="s">x</div>')
    (tmp_path / "b.html").write_text("<details>\n<summary>Solution</summary>\n<p>x</p>")
    (tmp_path / "_sources").mkdir()
    (tmp_path / "_sources" / "n.ipynb").write_text("{}")
    (tmp_path / "c.html").write_text('<div class="exercise admonition">fine</div>')
    leaks = hs.find_leaks(tmp_path)
    assert len(leaks) == 3
    assert not any("c.html" in leak for leak in leaks)


def test_edition_config_overrides():
    cfg = hs.edition_config(ROOT / "_config.yml", execute=False)
    assert cfg["sphinx"]["config"]["hide_solutions"] is True
    assert cfg["sphinx"]["config"]["html_copy_source"] is False
    assert "toymodel.hide_solutions" in cfg["sphinx"]["extra_extensions"]
    assert "sphinx_exercise" in cfg["sphinx"]["extra_extensions"]
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert "colab_url" not in cfg["launch_buttons"]
