"""Sphinx extension of the book's edition without solutions: drop the lessons' solution blocks.

A Jupyter Book local extension (``book/_ext``), switched on only by the edition's config that
``python -m tools.hide_solutions`` writes; the normal book keeps every solution. With
``hide_solutions: true`` sphinx-exercise drops the chapters' ``{solution}`` blocks, and this
extension drops each lesson's ``<details><summary>Solution</summary>...</details>`` block.
"""

from __future__ import annotations

import re

#: The opening of a lesson's solution block (markdown cells of notebooks/*.ipynb).
SUMMARY = re.compile(r"<summary>\s*Solution\s*</summary>", re.IGNORECASE)




def _strip_details_solutions(app, doctree):
    """Remove each run of sibling nodes from a ``<details>`` whose summary is "Solution" to the
    matching ``</details>`` (myst-parser splits such a block into raw HTML and markdown nodes)."""
    from docutils import nodes

    if not app.config.hide_solutions:
        return
    for start in list(doctree.findall(nodes.raw)):
        if start.parent is None or not SUMMARY.search(start.astext()):
            continue
        parent = start.parent
        i = parent.index(start)
        doomed = [start]
        if "</details>" not in start.astext():
            for sibling in parent.children[i + 1:]:
                doomed.append(sibling)
                if isinstance(sibling, nodes.raw) and "</details>" in sibling.astext():
                    break
        for node in doomed:
            parent.remove(node)


def setup(app):
    app.connect("doctree-read", _strip_details_solutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
