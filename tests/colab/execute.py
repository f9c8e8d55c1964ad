"""Inside the Colab-like environment: execute a copied notebook, compare its checked outputs.

    python execute.py COPY.ipynb COMMITTED.ipynb

Prints one ``PROBLEM ...`` line per difference and exits 1 if there is any. Compared, for every
cell tagged ``nbval-check-output``: its outputs, by nbval's rule (``checked_outputs.py``: printed
text, results and HTML; not images, and not glue records, since Colab has no myst-nb). An explorer cell (one that calls
``*_explorer()``) must show a live widget. A view cell (one that calls ``attention_view(`` or ``model_attention_view(``) must show the attention view as
a self-contained HTML output (its script and style inline, nothing fetched from another host).
"""

import sys
from pathlib import Path

import nbformat
from checked_outputs import GLUE, checked_differences, count_checked
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def view_problems(cell) -> list[str]:
    """What is wrong with an attention view cell's output (nothing, when it rendered offline)."""
    html = "".join("".join(o.get("data", {}).get("text/html", ""))
                   for o in cell.get("outputs", []))
    if 'class="tmav"' not in html or "<script>" not in html:
        return [f"cell {cell.get('id')}: no attention view among its outputs"]
    outside = [s for s in ("<script src", "src=", "http:", "https:", "//unpkg", "<link")
               if s in html.lower()]
    return [f"cell {cell.get('id')}: the attention view is not self-contained: {outside}"] if outside else []


def main(copy: str, committed: str) -> int:
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(nb, timeout=180, kernel_name="python3",  # a cell past 3 min is a hang
                            resources={"metadata": {"path": str(Path(copy).parent)}})
    problems, explorers, views = [], 0, 0
    try:
        client.execute()
    except CellExecutionError as err:
        problems.append(f"a cell raised: {str(err)[-2000:]}")
    committed_cells = nbformat.read(committed, as_version=4).cells
    problems += checked_differences(nb.cells, committed_cells, ignore=GLUE)  # no myst-nb in Colab
    checked = count_checked(nb.cells)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cid = cell.get("id")
        explorers += "_explorer()" in cell.source
        if "_explorer()" in cell.source and not any(
                "application/vnd.jupyter.widget-view+json" in o.get("data", {})
                for o in cell.get("outputs", [])):
            problems.append(f"cell {cid}: the explorer showed no live widget: "
                            f"{[o.get('data', o) for o in cell.get('outputs', [])]}"[:2000])
        if "attention_view(" in cell.source:
            views += 1
            problems += view_problems(cell)
    for p in problems:
        print("PROBLEM", p.replace("\n", "\n    "))
    print(f"executed {Path(copy).name}: {checked} checked cells, {explorers} explorer(s), {views} view(s), "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
