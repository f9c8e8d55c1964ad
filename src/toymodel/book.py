"""Glue numbers from a lesson into the book, with or without myst-nb installed.

In the book build (and in tests) ``myst_nb.glue`` records a value under a key that the chapters
quote with ``{glue:text}``. In Colab myst-nb is usually absent: then :func:`glue` only remembers the
value in :data:`GLUED` (and shows it when ``display=True``), so a lesson runs unchanged everywhere.
"""

from __future__ import annotations

GLUED: dict = {}


def glue(name: str, value, display: bool = False):
    """Record ``value`` under ``name`` for the book; returns ``value``.

    Store plain Python numbers (``float(x)``, ``int(x)``) or strings, so the book's format specs
    (``:.2f``) work: a NumPy scalar would print as ``np.float64(...)``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"glue name must be a Python identifier, got {name!r}")
    GLUED[name] = value
    try:
        from myst_nb import glue as _glue
    except ImportError:
        if display:
            from IPython.display import display as _display

            _display(value)
        return value
    _glue(name, value, display=display)
    return value
