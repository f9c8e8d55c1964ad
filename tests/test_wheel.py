"""The wheel a student installs holds the package and its data, and none of the book's build or
repository tooling (issue 23): no Sphinx extension, no solution-hiding build, no repository rewriter,
no diagram script, no myst-nb entry point."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(out)], check=True, cwd=out)
    (path,) = out.glob("toymodel-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_holds_the_package_and_its_data_only(wheel):
    names = wheel.namelist()
    assert all(n.startswith(("toymodel/", "toymodel-")) for n in names), names
    modules = {n for n in names if n.endswith(".py")}
    for needed in ("toymodel/circuits.py", "toymodel/views/widgets.py", "toymodel/grading/core.py",
                   "toymodel/data/max.safetensors"):
        assert needed in names or needed in modules, needed
    for tooling in ("sphinxext", "toymodel_site", "hide_solutions", "set_repository", "diagrams"):
        assert not any(tooling in n for n in names), tooling


def test_wheel_metadata_has_no_myst_nb_entry_point(wheel):
    meta = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = "".join(wheel.read(n).decode() for n in meta)
    assert "myst_nb" not in text and "mime_renderers" not in text


def test_every_package_folder_says_what_lives_there(wheel):
    inits = [n for n in wheel.namelist() if n.endswith("__init__.py")]
    assert len(inits) >= 3
    for n in inits:
        text = wheel.read(n).decode().lstrip()
        assert text.startswith('"""') and "import" in text.split('"""')[1], n


def test_import_toymodel_imports_nothing_heavy():
    code = ("import sys, toymodel; heavy = [m for m in ('torch', 'matplotlib', 'ipywidgets', "
            "'plotly', 'transformers', 'sphinx') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
