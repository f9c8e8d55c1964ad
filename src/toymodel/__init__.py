"""toymodel: the small package behind the executable book on QK and OV circuits.

Row-vector convention throughout (``x @ W``); shapes are given in every docstring.

Modules, one idea each:

* :mod:`toymodel.circuits` -- QK and OV circuits, attention scores and patterns, end-to-end circuits
  and their statistics (copying score, OV top-1 accuracy).
* :mod:`toymodel.factored` -- a product ``A @ B`` kept as its factors (eigenvalues, norms, rows).
* :mod:`toymodel.worked_example` -- the 4-dimensional worked example, every quantity in one object.
* :mod:`toymodel.model` -- an attention-only transformer (one layer or more), TransformerLens names.
* :mod:`toymodel.tasks` -- sequence tasks made from a seed (max of a list, copy the first token).
* :mod:`toymodel.train` -- the seeded training loop and its command line.
* :mod:`toymodel.checkpoint` -- safetensors checkpoints and the shipped trained models.
* :mod:`toymodel.induction` -- a task that needs induction, the two-layer model, head detectors.
* :mod:`toymodel.composition` -- Q/K/V-composition scores, the K-composition circuit, the path
  expansion of a two-layer model, ablations and OV edits.
* :mod:`toymodel.experiments` -- edit one circuit of a trained model and measure the other.
* :mod:`toymodel.hf` -- a ``transformers`` GPT-2 with the book's names (imported lazily).
* :mod:`toymodel.conventions` -- the column-vector convention of Elhage et al., for comparison.
* :mod:`toymodel.plotting`, :mod:`toymodel.plotting_model` -- heatmaps and plots in one style.
* :mod:`toymodel.diagrams` -- the book's circuit diagrams (``python -m toymodel.diagrams DIR``).
* :mod:`toymodel.book` -- :func:`glue`, which works with or without myst-nb.
* :mod:`toymodel.explore` -- what the lessons' explorers show, as plain functions of their inputs.
* :mod:`toymodel.widgets` -- the live explorers (ipywidgets 7.7 and 8), or a static picture on the
  website.
* :mod:`toymodel.grading` -- checks for the course assignments, with messages saying what is wrong.
* :mod:`toymodel.webfigs` -- plotly figures with sliders for the static website (needs plotly).
* :mod:`toymodel.sphinxext` -- the book build's Sphinx extension: offline assets, plotly outputs.
* :mod:`toymodel.hide_solutions` -- the book built with every solution hidden, for a course.
"""

from .book import glue

__version__ = "0.1.0"

__all__ = ["glue", "load_pretrained", "__version__"]


def load_pretrained(task: str = "max", device=None):
    """Load the checkpoint shipped for ``task`` (see :mod:`toymodel.checkpoint`)."""
    from .checkpoint import load_pretrained as _load

    return _load(task, device=device)
