"""Execute notebooks in place with nbclient (cwd = the notebook's folder), as the book build does.

Usage: python docs-dev/execute.py notebooks/01_worked_example.ipynb [...]
"""

import os
import pathlib
import sys

import nbformat
from nbclient import NotebookClient

# Committed outputs are what GitHub, Colab (before a cell runs) and the website show without a
# kernel: explorer cells then hold a static picture and a line saying how to run them live, not
# dead controls (see toymodel.views.widgets), and no widget state is saved.
os.environ.setdefault("TOYMODEL_STATIC_SITE", "1")

for path in map(pathlib.Path, sys.argv[1:]):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:  # execution metadata holds timestamps; drop it so diffs stay clean
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(nb, path)
    print("executed", path)
