"""Maintainer scripts, run from the repository root; none of them ships in the package's wheel.

* ``python -m tools.set_repository URL BRANCH`` -- move every link and install cell to a fork;
* ``python -m tools.diagrams book/figures`` -- redraw the book's circuit diagrams and logo;
* ``python -m tools.hide_solutions`` -- build the book with every solution hidden, for a course.

May import :mod:`toymodel` and the book's build tools (Sphinx, Jupyter Book, PyYAML).
"""
