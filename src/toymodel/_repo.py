"""Where the book lives: the one place that names its repository, branch and website.

``python -m toymodel.set_repository URL BRANCH`` rewrites this file together with ``_config.yml``,
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
