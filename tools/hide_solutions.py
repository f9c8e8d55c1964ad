"""Build the book with every solution hidden (an edition for a course), and check the result.

Readers of the normal book keep every solution: the chapters' ``{solution}`` blocks
(sphinx-exercise) and the lessons' ``<details><summary>Solution</summary>...</details>`` blocks.
An instructor who hands the lessons out as exercises builds this edition instead::

    python -m tools.hide_solutions            # -> _build/nosolutions/_build/html
    python -m tools.hide_solutions --no-execute   # reuse the notebooks' stored outputs (fast)

It writes ``_config.yml`` plus these overrides to ``<out>/_config.yml`` and builds from there:

* ``hide_solutions: true`` (sphinx-exercise drops every ``{solution}`` directive);
* the local extension ``book/_ext/hide_solutions.py``, which drops the lessons' solution
  ``<details>`` blocks;
* no copied sources (the page-source download would hand out the notebooks, solutions and
  all) and no launch buttons (they open the repository's notebooks, which hold the solutions).

Afterwards it scans every built file for solution text and exits non-zero if any is left.
Heavy imports (Sphinx, docutils, yaml) happen inside the functions, never at ``import toymodel``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

EXT_DIR = Path(__file__).resolve().parents[1] / "book" / "_ext"
sys.path.insert(0, str(EXT_DIR))
from hide_solutions import SUMMARY  # noqa: E402  (book/_ext/hide_solutions.py: the extension)

#: What betrays a solution in built HTML: sphinx-exercise's solution admonition, a lesson's
#: solution summary, or a copied notebook source.
LEAK_PATTERNS = {
    "sphinx-exercise solution": re.compile(r'class="[^"]*\bsolution\b[^"]*\badmonition\b'),
    "lesson <details> solution": SUMMARY,
    "copied notebook source": re.compile(r"_sources/.*\.ipynb"),
}


# --------------------------------------------------------------------------------------------
# The build and the leak scan
# --------------------------------------------------------------------------------------------


def edition_config(config_path: Path, execute: bool = True) -> dict:
    """The book's ``_config.yml`` with the overrides of the solution-free edition."""
    import yaml

    cfg = yaml.safe_load(Path(config_path).read_text()) or {}
    sphinx = cfg.setdefault("sphinx", {})
    extensions = sphinx.setdefault("extra_extensions", [])
    if "sphinx_exercise" not in extensions:
        extensions.append("sphinx_exercise")
    local = sphinx.setdefault("local_extensions", {})
    local["hide_solutions"] = str(EXT_DIR)  # absolute: the edition's config lives elsewhere
    local["toymodel_site"] = str(EXT_DIR)
    conf = sphinx.setdefault("config", {})
    conf["hide_solutions"] = True
    conf["html_copy_source"] = False
    conf["html_show_sourcelink"] = False
    cfg["launch_buttons"] = {"notebook_interface": "classic"}  # no Colab/Binder buttons
    html = cfg.setdefault("html", {})
    html["use_edit_page_button"] = False
    if not execute:
        cfg.setdefault("execute", {})["execute_notebooks"] = "off"
    cfg["title"] = f"{cfg.get('title', 'The book')} (edition without solutions)"
    return cfg


def find_leaks(html_dir: Path) -> list[str]:
    """``"path: what"`` for every built file that still holds solution text."""
    leaks = []
    for path in sorted(Path(html_dir).rglob("*")):
        if path.is_file() and path.suffix == ".ipynb":
            leaks.append(f"{path}: copied notebook source")
            continue
        if not path.is_file() or path.suffix not in {".html", ".js", ".txt"}:
            continue
        text = path.read_text(errors="replace")
        for what, pattern in LEAK_PATTERNS.items():
            if pattern.search(text):
                leaks.append(f"{path}: {what}")
    return leaks


def build(root: Path = Path("."), out: Path = Path("_build/nosolutions"), execute: bool = True,
          strict: bool = True) -> Path:
    """Write the edition's config, build the book, scan it; returns the HTML folder."""
    import yaml

    root, out = Path(root).resolve(), Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = out / "_config.yml"
    config.write_text(yaml.safe_dump(edition_config(root / "_config.yml", execute)))
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
           str(root), "--config", str(config), "--path-output", str(out), "--all"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True, cwd=root)
    html = out / "_build" / "html"
    leaks = find_leaks(html)
    if leaks:
        raise SystemExit("solution text left in the edition without solutions:\n"
                         + "\n".join(leaks))
    return html


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build the book without solutions.")
    parser.add_argument("--out", default="_build/nosolutions", help="output folder")
    parser.add_argument("--no-execute", action="store_true",
                        help="use the notebooks' stored outputs instead of re-executing them")
    args = parser.parse_args(argv)
    html = build(Path("."), Path(args.out), execute=not args.no_execute)
    print(f"edition without solutions: {html / 'index.html'} (no solution text found)")


if __name__ == "__main__":
    main()
