"""Where the book lives: the one place that names its repository, branch and website.

``python -m tools.set_repository URL BRANCH`` rewrites this file together with ``_config.yml``,
every notebook's install cell, Colab links and full site URLs (a fork runs it once); a test checks
that all of them agree with the values here.
"""

REPO_URL = "https://github.com/qk-ov-circuits/qk-ov-book"
BRANCH = "main"
SITE_URL = "https://qk-ov-circuits.github.io/qk-ov-book/"


def colab_url(path: str) -> str:
    """The Colab address that opens ``path`` (a notebook, relative to the repository root)."""
    owner_name = REPO_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_name}/blob/{BRANCH}/{path.lstrip('/')}"


#: The first code cell of every notebook. Colab lacks the package: it installs it from the
#: repository's branch (or from TOYMODEL_INSTALL_SOURCE, which the Colab-like CI run points at a
#: wheel), with the dependencies it lacks (safetensors, tqdm) and nothing the runtime already has.
INSTALL_CELL = '''\
try:
    import toymodel
except ImportError:  # e.g. in Colab: install the book's package (the runtime's torch stays)
    import os
    source = os.environ.get("TOYMODEL_INSTALL_SOURCE", "toymodel @ git+{url}@{branch}")
    %pip install -q "{{source}}"
    import toymodel'''


def install_cell(url: str | None = None, branch: str | None = None) -> str:
    """The install cell's source for ``url`` and ``branch`` (default: this file's setting)."""
    return INSTALL_CELL.format(url=url or REPO_URL, branch=branch or BRANCH)
