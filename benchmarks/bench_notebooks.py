"""Time each lesson executed top to bottom in a fresh kernel, as a student's runtime would.

Usage: python benchmarks/bench_notebooks.py [notebooks/NAME.ipynb ...]
Nothing is written back: the notebooks are executed in memory.
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def time_notebook(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main(argv):
    paths = [Path(p) for p in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        print(f"{path.name:32s} {time_notebook(path):6.1f} s (kernel start included)")


if __name__ == "__main__":
    main(sys.argv[1:])
