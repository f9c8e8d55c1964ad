"""``toymodel.text.more_text``: the extra pinned training text of the plain-text search.

Nothing here downloads: the archives are small tarballs written by the test, so the checks cover
the sha256 pin, which members are read, the cleaning shared with Django's corpus, and the id cache.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile

import numpy as np
import pytest

from toymodel.text import corpus, more_text
from toymodel.text import tokenizer as T


def _tarball(path, files: dict[str, str]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


LONG = "def area(width, height):\n    return width * height\n" * 8


@pytest.fixture
def source(tmp_path, monkeypatch):
    monkeypatch.setenv("TOYMODEL_TEXT_CACHE", str(tmp_path))
    files = {
        "toy-1.0/toy/geometry.py": LONG,
        "toy-1.0/doc/guide.rst": "Areas\n=====\n\n" + "The area of a box is its width times height.\n" * 8,
        "toy-1.0/toy/copy.py": LONG + "\n\n",  # the same text up to whitespace: dropped
        "toy-1.0/toy/short.py": "x = 1\n",  # under MIN_CHARS: dropped
        "toy-1.0/data/edges.txt": "1 2\n" * 200,  # not .py, .rst or .md: not read
        "toy-1.0/setup.cfg": "[metadata]\nname = toy\n" * 20,
    }
    digest = _tarball(tmp_path / "toy-1.0.tar.gz", files)
    return more_text.Source("toy", "1.0", digest, "MIT")


def test_sources_are_pinned():
    assert [s.package for s in more_text.SOURCES] == ["sympy", "networkx"]
    for s in more_text.SOURCES:
        assert re.fullmatch(r"[0-9a-f]{64}", s.sha256), s
        assert s.archive == f"{s.package}-{s.version}.tar.gz" and "BSD" in s.licence


def test_documents_read_code_and_pages_cleaned_and_deduplicated(source):
    docs = more_text.documents(source)
    # geometry.py repeats copy.py, which comes first in path order and is kept
    assert [d.path for d in docs] == ["doc/guide.rst", "toy/copy.py"]
    assert all(len(d.text) >= corpus.MIN_CHARS and d.text.endswith("\n") for d in docs)


def test_a_wrong_checksum_is_refused(source):
    bad = more_text.Source(source.package, source.version, "0" * 64, source.licence)
    with pytest.raises(ValueError, match="expected 0000"):
        more_text.documents(bad)


def test_token_ids_are_every_document_then_end_of_text_and_cached(source, tmp_path):
    tok = T.load_tokenizer()
    ids = more_text.token_ids(tok, sources=(source,))
    docs = more_text.documents(source)
    assert ids.dtype == np.uint16
    assert ids.tolist() == T.encode(tok, [d.text for d in docs])
    assert (ids == tok.token_to_id(T.EOS)).sum() == len(docs)
    cached = list(tmp_path.glob("ids-more-*-toy-1.0.npy"))
    assert len(cached) == 1 and not list(tmp_path.glob("*.tmp.npy"))
    assert np.array_equal(np.load(cached[0]), ids)
    with pytest.raises(ValueError, match="at least one Source"):
        more_text.token_ids(tok, sources=())
