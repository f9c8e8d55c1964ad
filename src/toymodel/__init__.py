"""toymodel: the small package behind the executable book on QK and OV circuits.

Row-vector convention throughout (``x @ W``); shapes are given in every docstring. The map of the
whole repository (package, lessons, chapters, build) is ``docs-dev/ARCHITECTURE.md``.

The science (imports numpy and torch only):

* :mod:`toymodel.circuits` -- QK and OV circuits, attention scores and patterns, full circuits;
* :mod:`toymodel.circuit_stats` -- their statistics: eigenvalues, copying score, OV top-1;
* :mod:`toymodel.factored` -- a product ``A @ B`` kept as its factors (eigenvalues, norms, rows);
* :mod:`toymodel.composition` -- Q/K/V composition, path expansion, ablations and OV edits;
* :mod:`toymodel.conventions` -- the column-vector convention of Elhage et al., for comparison.

Models and what they learn:

* :mod:`toymodel.model` -- an attention-only transformer (one layer or more), TransformerLens names;
* :mod:`toymodel.train` -- the seeded training loop and its command line;
* :mod:`toymodel.checkpoint` -- safetensors checkpoints and the shipped trained models (``data/``);
* :mod:`toymodel.tasks` -- sequence tasks made from a seed (max of a list, copy the first token);
* :mod:`toymodel.induction` -- a task that needs induction, the two-layer model, head detectors;
* :mod:`toymodel.hf` -- a ``transformers`` GPT-2 with the book's names (imported lazily), and one
  loader for it and the book's language models.

The lessons' subjects and tools:

* :mod:`toymodel.worked_example` -- the 4-dimensional worked example, every quantity in one object;
* :mod:`toymodel.experiments` -- edit one circuit of a trained model and measure the other; the
  statistics of every head of a language model;
* :mod:`toymodel.views` -- figures, explorers (widgets) and the website's plotly figures;
* :mod:`toymodel.grading` -- the assignments' checks: a shared core and one module per assignment;
* :mod:`toymodel.book` -- :func:`glue`, which works with or without myst-nb.

Private: ``_validate`` (input checks and shapes shared by all), ``_repo`` (the repository
setting that install cells and Colab links are made from).

The book's build (Sphinx extension, solution-free edition) lives in ``book/_ext/`` and the
maintainer scripts in ``tools/``: neither ships in the wheel. ``import toymodel`` imports nothing
heavy (no torch until a module that needs it is imported).
"""

from .book import glue

__version__ = "0.1.0"

__all__ = ["glue", "load_pretrained", "__version__"]


def load_pretrained(task: str = "max", device=None):
    """Load the checkpoint shipped for ``task`` (see :mod:`toymodel.checkpoint`)."""
    from .checkpoint import load_pretrained as _load

    return _load(task, device=device)
