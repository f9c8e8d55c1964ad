"""The shipped tokenizer loads offline and shows tokens readably; importing toymodel stays light."""

import subprocess
import sys

import pytest

from toymodel.text import tokenizer as T


def test_shipped_tokenizer_loads_offline_and_round_trips():
    tok = T.load_tokenizer()
    assert tok.get_vocab_size() == T.VOCAB_SIZE
    assert tok.token_to_id(T.EOS) is not None
    text = "def get(self, request):\n    return None\n"
    assert tok.decode(tok.encode(text).ids) == text
    assert len(tok.encode(text).ids) < len(text)  # merges happen


def test_readable_strings():
    assert T.readable(" a\n\tb") == "·a⏎→b"
    strings = T.token_strings(T.load_tokenizer())
    assert len(strings) == T.VOCAB_SIZE and all(" " not in s and "\n" not in s for s in strings)


def test_bad_inputs():
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        T.load_tokenizer("/nonexistent/tokenizer.json")
    with pytest.raises(ValueError, match="vocab_size"):
        T.train_tokenizer(["abc"], vocab_size=10)


def test_import_toymodel_does_not_import_tokenizers():
    code = "import sys, toymodel, toymodel.text; print('tokenizers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
