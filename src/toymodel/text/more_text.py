"""More pinned training text for the plain-text search (issue 31): the source and documentation of
two more pure-Python projects, so that a long run reads new windows instead of Django again.

Each source is an sdist from PyPI, fetched with ``pip download --no-deps --no-binary :all:`` (the
way :mod:`toymodel.text.corpus` fetches Django) into the same cache and checked against its
sha256. Only training text comes from here: the held-out windows every measure uses stay Django's
held-out documents, so runs with and without this text are measured on the same windows. No text
is committed; nothing here is shipped with a model unless a model's metadata names it.

Documents: every ``*.py`` file and every ``*.rst`` / ``*.md`` page of the sdist, cleaned and
deduplicated as :func:`toymodel.text.corpus.documents` does (same :data:`~corpus.MIN_CHARS`, same
sketches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import corpus

__all__ = ["Source", "SOURCES", "documents", "token_ids"]


@dataclass(frozen=True)
class Source:
    """One pinned sdist: ``pip download {package}=={version}``, checked against ``sha256``."""

    package: str
    version: str
    sha256: str
    licence: str

    @property
    def archive(self) -> str:
        return f"{self.package}-{self.version}.tar.gz"


SOURCES = (
    Source("sympy", "1.13.3", "b27fd2c6530e0ab39e275fc9b683895367e51d5da91baa8d3d64db2565fec4d9",
           "BSD-3-Clause (SymPy Development Team)"),
    Source("networkx", "3.4.2", "307c3669428c5362aab27c8a1260aa8f47c4e91d3891f48be0141738d8d053e1",
           "BSD-3-Clause (NetworkX Developers)"),
)


def _wanted(name: str) -> bool:
    return name.endswith((".py", ".rst", ".md")) and "/" in name


def documents(source: Source, limit: int | None = None) -> list[corpus.Document]:
    """The cleaned, deduplicated documents of one source, in path order."""
    path = corpus.fetch_archive(package=source.package, version=source.version,
                                sha256=source.sha256)
    return corpus.documents(path, limit=limit, wanted=_wanted)


def token_ids(tok, sources=SOURCES) -> np.ndarray:
    """Token ids (uint16) of every document of ``sources``, each followed by the end-of-text token,
    cached beside the corpus like :func:`toymodel.text.lm.token_ids`."""
    from .lm import cached_ids

    if not sources:
        raise ValueError("sources must name at least one Source")
    names = "+".join(f"{s.package}-{s.version}" for s in sources)
    return cached_ids("ids-more", names, tok,
                      lambda: [d.text for s in sources for d in documents(s)])
