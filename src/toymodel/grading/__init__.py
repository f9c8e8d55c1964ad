"""Checks for the course assignments that say *what* is wrong, not just "assert failed".

One module per assignment, on a small shared core:

* :mod:`.core` -- :class:`CheckFailed`, :func:`check_array` (shapes, transposes, scale slips),
  :func:`check_value`, :func:`check_close`, :func:`check_function`, :func:`preview`,
  :func:`summary`, and the small models the checks build (:func:`random_model`, ...);
* :mod:`.head_by_hand` -- assignment 1, a head by hand;
* :mod:`.build_a_head` -- assignment 2, build a head;
* :mod:`.trained_model` -- assignment 3, read a trained model;
* :mod:`.composition` -- assignment 4, composition;
* :mod:`.language_model` -- assignment 5, a language model trained on real text.

Every check is importable from here (``from toymodel import grading; grading.check_pattern(...)``),
which is how the assignments call them. Every ``check_*`` returns ``None`` when the answer is
right and raises :class:`CheckFailed` (an ``AssertionError``) with a message a student can act on.
The expected value is always computed from the student's own inputs by the package's functions,
so a notebook's checks hold no answer. May import: numpy, torch and the science modules of
:mod:`toymodel` (circuits, model, composition, induction, text.findings); never the views.
"""

from .build_a_head import *  # noqa: F403
from .build_a_head import __all__ as _a2
from .composition import *  # noqa: F403
from .composition import __all__ as _a4
from .core import *  # noqa: F403
from .core import __all__ as _core
from .head_by_hand import *  # noqa: F403
from .head_by_hand import __all__ as _a1
from .language_model import *  # noqa: F403
from .language_model import __all__ as _a5
from .trained_model import *  # noqa: F403
from .trained_model import __all__ as _a3

__all__ = [*_core, *_a1, *_a2, *_a3, *_a4, *_a5]
