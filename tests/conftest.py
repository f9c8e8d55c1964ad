"""Fixtures shared by the test files."""

import pytest


@pytest.fixture(scope="session")
def corpus_ids():
    """``(tokenizer, train ids, held-out ids)`` of the pinned corpus; skips only when the package
    index that serves the corpus cannot be reached."""
    from toymodel.text import corpus, lm
    from toymodel.text import tokenizer as T

    try:
        corpus.fetch_archive()
    except RuntimeError as err:  # no package index here
        pytest.skip(f"corpus not reachable: {err}")
    tok = T.load_tokenizer()
    return tok, lm.token_ids("train", tok), lm.token_ids("held_out", tok)
