"""Turn every master notebook in assignments/ into student and autograder versions (otter assign).

Usage (from the repository root, with the package importable)::

    python assignments/build.py [--out _build/assignments] [--run-tests] [NAME ...]

For each master ``assignments/<name>.ipynb`` it writes

* ``<out>/<name>/student/``     the notebook students get (``<name>.ipynb``, same file name as the
  master) and ``tests/`` with the *public* checks only;
* ``<out>/<name>/autograder/``  the solutions, every check (hidden ones too) and
  ``<name>-autograder_*.zip`` for ``otter run``: never publish this folder;
* ``<out>/publish/<name>/``     a copy of the student folder: the tree the assignments
  workflow pushes to the ``assignments`` branch, which the Colab links open.

Offline: no PDF, no export cell. ``--run-tests`` also runs the master's solutions against every
check (otter executes the autograder notebook; slower).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent


def masters(names=()) -> list[Path]:
    """The master notebooks ``assignments/a*.ipynb`` (all, or those named)."""
    found = sorted(HERE.glob("a[0-9]*_*.ipynb"))
    if names:
        found = [p for p in found if p.stem in names]
        missing = set(names) - {p.stem for p in found}
        if missing:
            raise SystemExit(f"no master notebook for {sorted(missing)} in {HERE}")
    return found


def build_one(master: Path, out: Path, run_tests: bool = False) -> Path:
    """Run ``otter assign`` on one master; returns ``<out>/<name>``."""
    from otter.assign import main as otter_assign  # heavy import (about 10 s): only here

    dest = out / master.stem
    if dest.exists():
        shutil.rmtree(dest)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):  # otter prints a points table; keep the log short
        otter_assign(str(master), str(dest), no_pdfs=True, no_run_tests=not run_tests)
    publish = out / "publish" / master.stem
    if publish.exists():
        shutil.rmtree(publish)
    shutil.copytree(dest / "student", publish)
    return dest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="assignment names (default: all)")
    parser.add_argument("--out", default="_build/assignments", help="output folder")
    parser.add_argument("--run-tests", action="store_true",
                        help="also run the solutions against every check")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for master in masters(args.names):
        dest = build_one(master, out, args.run_tests)
        print(f"{master.name}: student and autograder versions in {dest}")


if __name__ == "__main__":
    main()
