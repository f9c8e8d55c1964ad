"""docs-dev/ARCHITECTURE.md names every module of the package, the build and the tools, and only
modules that exist; no module is over 500 lines; no folder holds more than about 15 modules."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP = (ROOT / "docs-dev" / "ARCHITECTURE.md").read_text()
ROOMS = ["src/toymodel", "book/_ext", "tools"]


def modules() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for room in ROOMS for p in (ROOT / room).rglob("*.py")
            if "__pycache__" not in p.parts}


def test_the_map_names_every_module_and_only_modules_that_exist():
    named = set(re.findall(r"`((?:src/toymodel|book/_ext|tools)/[\w/]+\.py)`", MAP))
    assert named - modules() == set(), "named in the map but missing"
    assert modules() - named == set(), "modules the map does not name"


def test_no_module_over_500_lines():
    long = {m: n for m in modules() if (n := len((ROOT / m).read_text().splitlines())) > 500}
    assert long == {}


def test_no_folder_holds_more_than_about_15_modules():
    folders = {}
    for m in modules():
        folders.setdefault(str(Path(m).parent), []).append(m)
    assert max(len(v) for v in folders.values()) <= 17, {k: len(v) for k, v in folders.items()}
