"""toymodel.glue records values for the book, with or without myst-nb."""

import sys

import pytest

import toymodel
from toymodel import book


def test_glue_records_and_returns_value():
    assert toymodel.glue("test_value_x", 0.25) == 0.25
    assert book.GLUED["test_value_x"] == 0.25


def test_glue_without_myst_nb(monkeypatch):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import now raises ImportError
    assert toymodel.glue("test_value_y", 3) == 3
    assert book.GLUED["test_value_y"] == 3


@pytest.mark.parametrize("name", ["", "two words", "1abc", None])
def test_glue_rejects_bad_names(name):
    with pytest.raises(ValueError, match="glue name must be a Python identifier"):
        toymodel.glue(name, 1.0)
