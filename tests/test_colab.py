"""Every lesson opens in Colab and installs the package without touching the runtime's torch."""

import json
import re
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def code_cells(path):
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def test_there_are_lessons():
    assert len(NOTEBOOKS) >= 2


def test_launch_buttons_point_at_this_repository_on_main():
    repo = CONFIG["repository"]
    assert repo["branch"] == "main"
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repo["url"]), repo["url"]
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_installs_the_package_only_when_missing(path):
    first = code_cells(path)[0]
    assert first.startswith("try:\n    import toymodel\nexcept ImportError:"), first
    pip = [line.strip() for line in first.splitlines() if "pip install" in line]
    assert len(pip) == 1, first
    line = pip[0]
    assert line.startswith("%pip install"), "use %pip so it installs into the kernel's environment"
    # a plain install: pip adds what is missing (safetensors, tqdm) and keeps what satisfies the
    # package's ranges (Colab's torch, numpy, matplotlib, ipywidgets 7.7.1)
    for flag in ("--no-deps", "-U", "--upgrade", "--force-reinstall", "--ignore-installed"):
        assert flag not in line.split(), line
    assert "TOYMODEL_INSTALL_SOURCE" in first
    assert f"toymodel @ git+{CONFIG['repository']['url']}@{CONFIG['repository']['branch']}" in first
    assert "==" not in first and "torch" not in line.replace("toymodel", "")


def test_package_ranges_keep_colabs_runtime():
    """Colab ships ipywidgets 7.7.1 and its own torch: the package's ranges must accept them."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = {re.split(r"[<>=!~ ]", d, maxsplit=1)[0]: d for d in deps}
    assert spec["ipywidgets"] == "ipywidgets>=7.7"
    assert spec["torch"] == "torch>=2.2"
    assert {"safetensors", "tqdm"} <= set(spec)
    assert not any("<" in d or "==" in d for d in deps)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_local_paths_or_hub_downloads(path):
    text = "\n".join(code_cells(path))
    assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text
    assert "from_pretrained(" not in text and "hf_hub_download" not in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_runs_on_gpu_or_cpu_without_edits(path):
    text = "\n".join(code_cells(path))
    assert ".cuda()" not in text and 'device="cuda"' not in text and "device='cuda'" not in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_renders_in_colab_too(path):
    """Block directives (``{admonition}``, ``{dropdown}``) show as raw text in Colab: use
    blockquotes and ``<details>`` instead, which both Colab and the book render."""
    cells = json.loads(path.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert not re.search(r"^\s*(```+|:::+)\s*\{", text, re.MULTILINE)
    assert text.count("<details>") == text.count("</details>")


def test_every_lesson_has_the_same_install_cell():
    """`make colab` runs the lessons without safetensors/tqdm preinstalled on lesson 02 only: that
    stands for every lesson because their install cells are the same."""
    firsts = {code_cells(p)[0] for p in NOTEBOOKS}
    assert len(NOTEBOOKS) >= 2 and len(firsts) == 1
