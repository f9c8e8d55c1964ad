"""Checks for the course assignments that say *what* is wrong, not just "assert failed".

One module per assignment, on a small shared core:

* :mod:`.core` -- :class:`CheckFailed`, :func:`check_array` (shapes, transposes, scale slips),
  :func:`check_value`, :func:`check_close`, :func:`check_function`, :func:`preview`,
  :func:`summary`, and the small models the checks build (:func:`random_model`, ...);
* :mod:`.own_work` -- answers come from the student: the package functions that compute what a
  question asks are watched, and :func:`check_own_work` (the first line of every check) fails a
  question whose answer calls one of them; it also names missing or unanswered inputs;
* :mod:`.head_by_hand` -- assignment 1, a head by hand;
* :mod:`.build_a_head` -- assignment 2, build a head;
* :mod:`.trained_model` -- assignment 3, read a trained model;
* :mod:`.composition` -- assignment 4, composition;
* :mod:`.language_model` -- assignment 5, a language model trained on real text;
* :mod:`._answers` -- the graders' reference answers (private: not exported here; a student's code
  that calls them scores nothing on that question).

Every check is importable from here (``from toymodel import grading; grading.check_pattern(...)``),
which is how the assignments call them. Every ``check_*`` returns ``None`` when the answer is
right and raises :class:`CheckFailed` (an ``AssertionError``) with a message a student can act on;
an unexpected error while checking becomes a :class:`CheckFailed` too (:func:`core.guarded`), so a
check never fails with its own traceback. The expected value is always computed from the student's
own inputs by the package's functions, so a notebook's checks hold no answer. May import: numpy,
torch and the science modules of :mod:`toymodel` (circuits, model, composition, induction,
text.findings); never the views.
"""

from . import own_work as _own_work
from .build_a_head import *  # noqa: F403
from .build_a_head import __all__ as _a2
from .composition import *  # noqa: F403
from .composition import __all__ as _a4
from .core import *  # noqa: F403
from .core import __all__ as _core
from .core import guarded as _guarded
from .head_by_hand import *  # noqa: F403
from .head_by_hand import __all__ as _a1
from .language_model import *  # noqa: F403
from .language_model import __all__ as _a5
from .own_work import check_own_work
from .trained_model import *  # noqa: F403
from .trained_model import __all__ as _a3

__all__ = [*_core, *_a1, *_a2, *_a3, *_a4, *_a5, "check_own_work"]

# A check never fails with its own traceback: every check_* exported here is guarded.
for _name in __all__:
    _value = globals()[_name]
    if _name.startswith("check_") and callable(_value) and not getattr(_value, "__guarded__", 0):
        globals()[_name] = _guarded(_value)
del _name, _value

_own_work.install()
