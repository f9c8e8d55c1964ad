"""The book's edition without solutions (tools/hide_solutions.py, `make book-nosolutions`).

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

from tools import hide_solutions as hs

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "_config.yml", ROOT / "_toc.yml", *ROOT.glob("book/*.md"),
           *ROOT.glob("notebooks/*.ipynb"), Path(hs.__file__), ROOT / "book" / "_ext" / "hide_solutions.py"]


def _fresh(html: Path) -> bool:
    index = html / "index.html"
    return index.is_file() and index.stat().st_mtime > max(p.stat().st_mtime for p in SOURCES)


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    existing = ROOT / "_build" / "nosolutions" / "_build" / "html"
    if _fresh(existing):
        return existing
    return hs.build(ROOT, tmp_path_factory.mktemp("nosolutions"), execute=False)


WORD = re.compile(r"^[A-Za-z]{2,}$")
SOLUTION_BLOCKS = (re.compile(r"```\{solution\}[^\n]*\n(.*?)```", re.S),
                   re.compile(r"<summary>\s*Solution\s*</summary>(.*?)</details>", re.S))


def _sources() -> list[str]:
    texts = [p.read_text() for p in sorted(ROOT.glob("book/*.md"))]
    for nb in sorted(ROOT.glob("notebooks/*.ipynb")):
        texts += ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"]]
    return texts


def _solution_phrases() -> list[str]:
    """From each solution of the normal book, six plain words in a row that appear nowhere in the
    sources outside the solutions (so finding them in the edition means a solution leaked)."""
    texts = _sources()
    blocks = [b for t in texts for pattern in SOLUTION_BLOCKS for b in pattern.findall(t)]
    outside = " ".join(t for t in texts for pattern in SOLUTION_BLOCKS
                       for t in [pattern.sub(" ", t)])
    outside = " ".join(outside.split())
    phrases = []
    for block in blocks:
        block = re.sub(r"(?m)^:.*$", "", block)  # directive options (:class: dropdown)
        found = None
        for segment in re.split(r"\$[^$]*\$|`[^`]*`|\{[^}]*\}|\([^)]*\)|[*_\"]", block):
            words = segment.split()
            for k in range(len(words) - 5):
                window = words[k:k + 6]
                phrase = " ".join(window)
                if all(WORD.match(w) for w in window) and phrase not in outside:
                    found = phrase
                    break
            if found:
                break
        if found:
            phrases.append(found)
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
    local = cfg["sphinx"]["local_extensions"]
    assert local["hide_solutions"] == local["toymodel_site"] == str(ROOT / "book" / "_ext")
    assert "sphinx_exercise" in cfg["sphinx"]["extra_extensions"]
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert "colab_url" not in cfg["launch_buttons"]
