"""The real-text corpus: the documentation and source of a pinned Django release.

Source: the sdist ``Django==5.1.4`` from PyPI, fetched with ``pip download --no-deps --no-binary
:all:``
and checked against :data:`SHA256`. Licence: BSD 3-Clause (``LICENSE`` in the sdist; a few files
derived
from CPython are under the PSF licence, ``LICENSE.python``). Both allow training on the text and
shipping
weights derived from it, with the copyright notice kept (see ``toymodel/data/LM_DATA.md``). Nobody
on
this project wrote the text. No corpus text is committed to the repository: the archive, the cleaned
documents and the token ids live in a cache directory, ``$TOYMODEL_TEXT_CACHE`` or
``~/.cache/toymodel-text``.

Documents: every ``docs/**/*.txt`` file (English prose in reStructuredText) and every
``django/**/*.py``
file outside locale folders and migrations. Cleaning: decode UTF-8, normalise line endings, strip
trailing
spaces, drop documents under :data:`MIN_CHARS`. Duplicates: exact duplicates (after whitespace
normalisation) and near-duplicates (same bottom-k sketch of their set of lines) are dropped,
keeping the
first in path order, so text repeats inside a document but rarely across documents. Split: a
document
is held out when the sha256 of its path falls in the last :data:`HELD_OUT_PERCENT` percent.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PACKAGE",
    "VERSION",
    "SHA256",
    "Document",
    "cache_dir",
    "fetch_archive",
    "documents",
    "split",
    "LICENCE",
]

PACKAGE = "Django"
VERSION = "5.1.4"
ARCHIVE = f"Django-{VERSION}.tar.gz"
SHA256 = "de450c09e91879fa5a307f696e57c851955c910a438a35e6b4c895e86bedc82a"
LICENCE = "BSD-3-Clause (Django Software Foundation and contributors); parts PSF-2.0"
MIN_CHARS = 200
HELD_OUT_PERCENT = 10
SKETCH_K = 8


@dataclass(frozen=True)
class Document:
    """One cleaned text file of the corpus: its path inside the sdist and its text."""

    path: str
    text: str

    @property
    def held_out(self) -> bool:
        return _is_held_out(self.path)


def cache_dir() -> Path:
    """Where downloads and token ids are cached (``$TOYMODEL_TEXT_CACHE`` or
    ``~/.cache/toymodel-text``)."""
    root = os.environ.get("TOYMODEL_TEXT_CACHE") or Path.home() / ".cache" / "toymodel-text"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_archive(dest: Path | None = None, package: str = PACKAGE, version: str = VERSION,
                  sha256: str = SHA256) -> Path:
    """The pinned sdist (Django unless told otherwise), downloaded with pip on first use and
    sha256-checked every time.

    Raises:
        RuntimeError: pip could not download it (no access to the package index).
        ValueError: the file's sha256 is not ``sha256`` (:data:`SHA256` for Django).
    """
    dest = Path(dest) if dest is not None else cache_dir()
    archive = f"{package}-{version}.tar.gz"
    path = dest / archive
    if not path.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        # pip downloads into a folder of this process's own and the file is renamed into place,
        # so two processes (test workers) fetching at once never see half a file
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"{package}=={version}",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--no-build-isolation",
                "-d",
                tmp,
                "-q",
            ]
            # pip prepares the metadata of an sdist; keep the download only.
            proc = subprocess.run(cmd, capture_output=True, text=True)
            got = Path(tmp) / archive
            if got.is_file():
                os.replace(got, path)
        if not path.is_file():
            raise RuntimeError(
                f"could not download {package}=={version} with pip:\n{proc.stderr[-2000:]}"
            )
    digest = _sha256(path)
    if digest != sha256:
        raise ValueError(
            f"{path} has sha256 {digest}, expected {sha256}; delete it and fetch again"
        )
    return path


def _wanted(name: str) -> bool:
    parts = name.split("/")[1:]  # drop "Django-5.1.4/"
    if not parts:
        return False
    if parts[0] == "docs" and name.endswith(".txt"):
        return True
    return (
        parts[0] == "django"
        and name.endswith(".py")
        and "locale" not in parts
        and "migrations" not in parts
    )


def _clean(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n")).strip("\n") + "\n"
    return text if len(text) >= MIN_CHARS else None


def _sketch(text: str) -> tuple:
    lines = {line.strip() for line in text.split("\n") if len(line.strip()) > 3}
    hashes = sorted(
        int.from_bytes(hashlib.blake2b(x.encode(), digest_size=8).digest(), "big") for x in lines
    )
    return tuple(hashes[:SKETCH_K])


def _is_held_out(path: str) -> bool:
    return int(hashlib.sha256(path.encode()).hexdigest(), 16) % 100 >= 100 - HELD_OUT_PERCENT


def documents(archive: Path | None = None, limit: int | None = None,
              wanted=None) -> list[Document]:
    """The cleaned, deduplicated documents of the corpus, in path order (``limit``: the first
    few; ``wanted``: which member names of another archive to read, Django's rule by default)."""
    archive = fetch_archive() if archive is None else Path(archive)
    wanted = _wanted if wanted is None else wanted
    found = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.isfile() and wanted(member.name):
                text = _clean(tar.extractfile(member).read())
                if text is not None:
                    found.append(Document(member.name.split("/", 1)[1], text))
    found.sort(key=lambda d: d.path)
    seen_exact, seen_sketch, docs = set(), set(), []
    for doc in found:
        exact = hashlib.sha256(" ".join(doc.text.split()).encode()).hexdigest()
        sketch = _sketch(doc.text)
        if exact in seen_exact or (len(sketch) == SKETCH_K and sketch in seen_sketch):
            continue
        seen_exact.add(exact)
        seen_sketch.add(sketch)
        docs.append(doc)
        if limit is not None and len(docs) >= limit:
            break
    return docs


def split(docs: list[Document]) -> tuple[list[Document], list[Document]]:
    """``(train, held_out)``: the split is by document, fixed by each document's path."""
    train = [d for d in docs if not d.held_out]
    held = [d for d in docs if d.held_out]
    return train, held
