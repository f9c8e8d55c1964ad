"""The repository URL and branch live in src/toymodel/_repo.py; everything else agrees with it,
and ``python -m tools.set_repository URL BRANCH`` moves all of it to a fork at once."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tools import set_repository
from toymodel import _repo

ROOT = Path(__file__).resolve().parents[1]
FORK = "https://github.com/a-student/my-qk-book"


def test_everything_agrees_with_the_setting():
    assert set_repository.check(ROOT) == []


def test_the_setting_matches_the_config():
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert (repo["url"], repo["branch"]) == (_repo.REPO_URL, _repo.BRANCH)
    assert set_repository.read_setting(ROOT) == {
        "url": _repo.REPO_URL, "branch": _repo.BRANCH, "site": _repo.SITE_URL}


def test_every_notebook_is_found_and_starts_with_the_install_cell():
    found = set_repository.notebooks(ROOT)
    expected = sorted(p for d in ("notebooks", "assignments") for p in (ROOT / d).glob("**/*.ipynb")
                      if ".ipynb_checkpoints" not in p.parts)
    assert sorted(found) == expected and len(found) >= 2
    for path in found:
        cells = json.loads(path.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert "".join(code[0]["source"]) == _repo.install_cell(), path


def test_colab_url():
    assert _repo.colab_url("notebooks/01_worked_example.ipynb") == (
        f"https://colab.research.google.com/github/{_repo.REPO_URL.split('github.com/')[1]}"
        f"/blob/{_repo.BRANCH}/notebooks/01_worked_example.ipynb")


@pytest.fixture
def copy(tmp_path):
    """The files the script rewrites, copied, plus a notebook with links in its markdown."""
    for rel in ("_config.yml", "README.md", "src/toymodel/_repo.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    for path in set_repository.notebooks(ROOT):
        rel = path.relative_to(ROOT)
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tmp_path / rel)
    nb = json.loads((ROOT / "notebooks/01_worked_example.ipynb").read_text())
    links = (f"See [the QK chapter]({_repo.SITE_URL}book/qk_circuit.html) or "
             f"[run it]({_repo.colab_url('assignments/hw.ipynb')}) or [the student version]"
             f"({_repo.colab_url('hw.ipynb').replace('/blob/main/', '/blob/assignments/')}).\n")
    nb["cells"].insert(0, {"cell_type": "markdown", "id": "links01", "metadata": {},
                           "source": [links]})
    (tmp_path / "assignments").mkdir(exist_ok=True)
    (tmp_path / "assignments/hw.ipynb").write_text(json.dumps(nb, indent=1))
    (tmp_path / "book").mkdir(exist_ok=True)
    (tmp_path / "book/intro.md").write_text(f"# Intro\n\n[Open in Colab]({_repo.colab_url('x.ipynb')})\n")
    return tmp_path


def test_set_repository_moves_everything_to_a_fork_and_back(copy):
    assert set_repository.check(copy) == []
    assert set_repository.main(["--root", str(copy), FORK, "dev"]) == 0
    assert set_repository.check(copy) == []
    assert set_repository.read_setting(copy) == {
        "url": FORK, "branch": "dev", "site": "https://a-student.github.io/my-qk-book/"}
    config = yaml.safe_load((copy / "_config.yml").read_text())
    assert config["repository"]["url"] == FORK and config["repository"]["branch"] == "dev"
    hw = (copy / "assignments/hw.ipynb").read_text()
    assert "https://a-student.github.io/my-qk-book/book/qk_circuit.html" in hw
    assert "colab.research.google.com/github/a-student/my-qk-book/blob/dev/assignments/hw" in hw
    assert "colab.research.google.com/github/a-student/my-qk-book/blob/assignments/hw" in hw
    assert f"git+{FORK}@dev" in hw and "qk-ov-circuits" not in hw
    for path in set_repository.notebooks(copy):
        cells = json.loads(path.read_text())["cells"]
        first = next(c for c in cells if c["cell_type"] == "code")
        assert "".join(first["source"]) == _repo.install_cell(FORK, "dev")
    assert "blob/dev/x.ipynb" in (copy / "book/intro.md").read_text()
    # and back: byte for byte what it was
    assert set_repository.main(["--root", str(copy), _repo.REPO_URL, _repo.BRANCH]) == 0
    for rel in ("_config.yml", "src/toymodel/_repo.py", "notebooks/01_worked_example.ipynb"):
        assert (copy / rel).read_text() == (ROOT / rel).read_text(), rel


def test_check_reports_a_stray_link(copy):
    path = copy / "notebooks/01_worked_example.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][0]["source"] = ["See https://someone.github.io/other/book/x.html\n"]
    path.write_text(json.dumps(nb))
    problems = set_repository.check(copy)
    assert len(problems) == 1 and "someone.github.io" in problems[0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="https://github.com/OWNER/NAME"):
        set_repository.set_repository(ROOT, "https://gitlab.com/x/y", "main")
    with pytest.raises(SystemExit):
        set_repository.main(["--root", str(ROOT), FORK])  # no branch
