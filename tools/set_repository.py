"""Point the book at another repository (a fork) in one command, and check that all agree.

Usage, from the repository root::

    python -m tools.set_repository https://github.com/OWNER/NAME BRANCH [--site-url URL]
    python -m tools.set_repository --check

It rewrites ``src/toymodel/_repo.py`` (the one setting), ``_config.yml``'s ``repository``
block, the install cell (first code cell) of every notebook under ``notebooks/`` and
``assignments/`` from :func:`toymodel._repo.install_cell`, and, in those notebooks and in
``README.md`` and ``book/**/*.md``, every Colab link, full site URL and repository URL that used
the old setting. The site URL defaults to ``https://OWNER.github.io/NAME/`` (GitHub Pages).
``--check`` lists what disagrees with the setting and exits 1 if anything does.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from toymodel import _repo

NOTEBOOK_DIRS = ("notebooks", "assignments")
TEXT_GLOBS = ("README.md", "book/**/*.md")
_URL = re.compile(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?")


def notebooks(root: Path) -> list[Path]:
    """Every notebook under ``notebooks/`` and ``assignments/`` (not checkpoints or builds)."""
    found = []
    for folder in NOTEBOOK_DIRS:
        for path in sorted((root / folder).glob("**/*.ipynb")):
            parts = set(path.relative_to(root).parts)
            if not parts & {".ipynb_checkpoints", "_build", "build"}:
                found.append(path)
    return found


def _owner_name(url: str) -> tuple[str, str]:
    m = _URL.fullmatch(url)
    if not m:
        raise ValueError(f"repository URL must be https://github.com/OWNER/NAME, got {url!r}")
    return m.group(1), m.group(2)


def default_site_url(url: str) -> str:
    owner, name = _owner_name(url)
    return f"https://{owner.lower()}.github.io/{name}/"


def _colab_prefix(url: str, branch: str) -> str:
    """``https://colab.research.google.com/github/OWNER/NAME/blob/BRANCH/`` (no branch: up to
    ``blob/``)."""
    owner, name = _owner_name(url)
    base = f"https://colab.research.google.com/github/{owner}/{name}/blob/"
    return f"{base}{branch}/" if branch else base


def _read_nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_nb(path: Path, nb: dict):
    # the layout nbformat writes (so a rewrite changes only what it must)
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _set_source(cell, text: str):
    cell["source"] = text.splitlines(keepends=True)


def _output_texts(cell):
    """``(holder, key)`` of every text in the cell's outputs (streams and text/* or JSON data)."""
    for out in cell.get("outputs", []):
        if "text" in out:
            yield out, "text"
        for mime in out.get("data", {}):
            if mime.startswith("text/"):
                yield out["data"], mime


def _get(holder, key) -> str:
    value = holder[key]
    return "".join(value) if isinstance(value, list) else value


def _put(holder, key, text: str):
    holder[key] = text.splitlines(keepends=True) if isinstance(holder[key], list) else text


def _cell_texts(cell) -> list[str]:
    return [_source(cell)] + [_get(h, k) for h, k in _output_texts(cell)]


def _first_code_cell(nb: dict):
    return next((c for c in nb["cells"] if c["cell_type"] == "code"), None)


def is_install_cell(text: str) -> bool:
    return text.startswith("try:\n    import toymodel\nexcept ImportError:")


def _replacements(old: dict, new: dict) -> list[tuple[str, str]]:
    """Old -> new strings, longest first (a Colab link before the bare repository URL)."""
    pairs = [
        (_colab_prefix(old["url"], old["branch"]), _colab_prefix(new["url"], new["branch"])),
        # links to other branches (the assignments branch, say) keep their branch
        (_colab_prefix(old["url"], ""), _colab_prefix(new["url"], "")),
        (old["site"], new["site"]),
        (old["site"].rstrip("/"), new["site"].rstrip("/")),
        (f"git+{old['url']}@{old['branch']}", f"git+{new['url']}@{new['branch']}"),
        (old["url"], new["url"]),
    ]
    return [(a, b) for a, b in pairs if a != b]


def _replace_all(text: str, pairs) -> str:
    for a, b in pairs:
        text = text.replace(a, b)
    return text


def _rewrite_repo_py(path: Path, new: dict):
    text = path.read_text(encoding="utf-8")
    for name, value in (("REPO_URL", new["url"]), ("BRANCH", new["branch"]),
                        ("SITE_URL", new["site"])):
        text, n = re.subn(rf'^{name} = ".*"$', f'{name} = "{value}"', text, flags=re.MULTILINE)
        if n != 1:
            raise ValueError(f"{path}: expected one line '{name} = \"...\"'")
    path.write_text(text, encoding="utf-8")


def _rewrite_config(path: Path, new: dict, pairs):
    text = path.read_text(encoding="utf-8")
    block = re.search(r"^repository:\n((?:[ \t]+.*\n?)*)", text, flags=re.MULTILINE)
    if not block:
        raise ValueError(f"{path} has no 'repository:' block")
    body = block.group(1)
    body = re.sub(r"^(\s+url:\s*).*$", rf"\g<1>{new['url']}", body, count=1, flags=re.MULTILINE)
    body = re.sub(r"^(\s+branch:\s*).*$", rf"\g<1>{new['branch']}", body, count=1,
                  flags=re.MULTILINE)
    text = text[: block.start(1)] + body + text[block.end(1):]
    # anything else naming the old site (a base URL, for example)
    text = _replace_all(text, [(a, b) for a, b in pairs if "github.com" not in a])
    path.write_text(text, encoding="utf-8")


def read_setting(root) -> dict:
    """``{"url", "branch", "site"}`` as written in ``root/src/toymodel/_repo.py``."""
    text = (Path(root) / "src" / "toymodel" / "_repo.py").read_text(encoding="utf-8")
    found = {}
    for key, name in (("url", "REPO_URL"), ("branch", "BRANCH"), ("site", "SITE_URL")):
        m = re.search(rf'^{name} = "(.*)"$', text, flags=re.MULTILINE)
        if not m:
            raise ValueError(f"{root}/src/toymodel/_repo.py has no line '{name} = \"...\"'")
        found[key] = m.group(1)
    return found


def set_repository(root, url: str, branch: str, site_url: str | None = None) -> list[Path]:
    """Rewrite every place that names the repository; returns the files changed."""
    root = Path(root)
    _owner_name(url)
    if not re.fullmatch(r"[\w./-]+", branch):
        raise ValueError(f"branch must be a git branch name, got {branch!r}")
    site = site_url or default_site_url(url)
    if not site.endswith("/"):
        site += "/"
    old = read_setting(root)
    new = {"url": url.rstrip("/").removesuffix(".git"), "branch": branch, "site": site}
    pairs = _replacements(old, new)
    changed = []

    def track(path, before):
        if path.read_text(encoding="utf-8") != before:
            changed.append(path)

    repo_py = root / "src" / "toymodel" / "_repo.py"
    before = repo_py.read_text(encoding="utf-8")
    _rewrite_repo_py(repo_py, new)
    track(repo_py, before)
    config = root / "_config.yml"
    before = config.read_text(encoding="utf-8")
    _rewrite_config(config, new, pairs)
    track(config, before)
    cell = install_cell(new["url"], new["branch"])
    for path in notebooks(root):
        before = path.read_text(encoding="utf-8")
        nb = _read_nb(path)
        for c in nb["cells"]:
            _set_source(c, _replace_all(_source(c), pairs))
            for holder, key in _output_texts(c):
                _put(holder, key, _replace_all(_get(holder, key), pairs))
        first = _first_code_cell(nb)
        if first is not None and is_install_cell(_source(first)):
            _set_source(first, cell)
        _write_nb(path, nb)
        track(path, before)
    for pattern in TEXT_GLOBS:
        for path in sorted(root.glob(pattern)):
            before = path.read_text(encoding="utf-8")
            path.write_text(_replace_all(before, pairs), encoding="utf-8")
            track(path, before)
    return changed


def install_cell(url: str | None = None, branch: str | None = None) -> str:
    """The first code cell of every notebook (see :func:`toymodel._repo.install_cell`)."""
    return _repo.install_cell(url, branch)


def check(root) -> list[str]:
    """What under ``root`` disagrees with its setting in ``src/toymodel/_repo.py`` (empty when
    all agree)."""
    import yaml

    root = Path(root)
    setting = read_setting(root)
    url, branch, site = setting["url"], setting["branch"], setting["site"]
    problems = []
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    repo = config.get("repository", {})
    if repo.get("url") != url or repo.get("branch") != branch:
        problems.append(f"_config.yml repository is {repo.get('url')}@{repo.get('branch')}, "
                        f"not {url}@{branch}")
    colab = _colab_prefix(url, "")  # any branch of this repository (assignments, say)
    cell = install_cell(url, branch)
    texts = {}
    for path in notebooks(root):
        rel = path.relative_to(root)
        nb = _read_nb(path)
        first = _first_code_cell(nb)
        if first is None or _source(first) != cell:
            problems.append(f"{rel}: the first code cell is not the install cell of the template")
        texts[rel] = "\n".join(t for c in nb["cells"] for t in _cell_texts(c))
    for pattern in TEXT_GLOBS:
        for path in sorted(root.glob(pattern)):
            texts[path.relative_to(root)] = path.read_text(encoding="utf-8")
    for rel, text in texts.items():
        for link in re.findall(r"https://colab\.research\.google\.com/github/[^\s)\"'>]+", text):
            if not link.startswith(colab):
                problems.append(f"{rel}: Colab link {link} does not start with {colab}")
        for link in re.findall(r"https://[\w.-]+\.github\.io/[^\s)\"'>]*", text):
            if not link.startswith(site):
                problems.append(f"{rel}: site URL {link} does not start with {site}")
        for m in re.finditer(r"git\+(https://github\.com/[^\s\"'@]+)(@[\w./-]+)?", text):
            if m.group(1) != url or m.group(2) not in (None, f"@{branch}"):
                problems.append(f"{rel}: install source {m.group(0)} is not git+{url}@{branch}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.set_repository",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", help="https://github.com/OWNER/NAME")
    parser.add_argument("branch", nargs="?", help="the branch Colab and the install cell use")
    parser.add_argument("--site-url", help="the published book (default: GitHub Pages)")
    parser.add_argument("--root", default=".", help="the repository root (default: .)")
    parser.add_argument("--check", action="store_true", help="only check, change nothing")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not (root / "_config.yml").is_file():
        parser.error(f"{root.resolve()} has no _config.yml: run from the repository root")
    if not args.check:
        if not args.url or not args.branch:
            parser.error("give the repository URL and the branch (or --check)")
        for path in set_repository(root, args.url, args.branch, args.site_url):
            print("rewrote", path.relative_to(root))
    problems = check(root)
    for p in problems:
        print("disagrees:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
