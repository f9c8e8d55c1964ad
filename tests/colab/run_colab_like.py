"""Run every lesson the way Google Colab would, and compare its checked outputs with the committed ones.

    python tests/colab/run_colab_like.py [--notebooks notebooks/01_worked_example.ipynb ...]

1. Build a wheel of this checkout.
2. Make (or reuse) a virtual environment holding only what a Colab runtime has: a CPU torch, numpy,
   matplotlib, ipywidgets 7.7.1, ipykernel, nbclient and nbformat. It is cached in
   ``~/.cache/toymodel-colab/`` (or ``$TOYMODEL_COLAB_CACHE``) by a hash of that list, so only the
   first run pays for it.
3. For each variant -- B: the runtime lacks safetensors and tqdm; A: it has them -- copy each
   notebook under ``notebooks/`` alone into an empty folder, uninstall ``toymodel`` (and in B
   safetensors and tqdm), point the install cell at the wheel with ``TOYMODEL_INSTALL_SOURCE``,
   and execute it top to bottom (``tests/colab/execute.py`` inside the environment).
4. Fail if a cell errors, if an ``nbval-check-output`` cell prints anything other than the
   committed notebook, if an explorer cell shows no live widget, or if the install changed the
   runtime's torch, numpy, matplotlib or ipywidgets.

Only package registries are used (the pip configuration of the machine). A torch wheel with CUDA
is never fetched: a local ``torch-<version>+cpu`` wheel from pip's find-links is used when there
is one, and the run stops if the torch it got is not a CPU build.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# outside the checkout, so no build/ folder appears in it (ruff and Sphinx would see one)
WORK = Path(os.environ.get("TOYMODEL_COLAB_CACHE")
            or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "toymodel-colab")
TORCH_VERSION = os.environ.get("COLAB_TORCH_VERSION", "2.13.0")
RUNTIME = ["numpy", "matplotlib", "ipywidgets==7.7.1", "ipykernel", "nbclient", "nbformat"]
LIGHT = ["safetensors", "tqdm"]  # variant A has them before the install cell runs
KEPT = ["torch", "numpy", "matplotlib", "ipywidgets"]  # the install must leave these alone
# Colab ships these too; a lesson that imports one gets it added to the environment first
COLAB_ALSO_HAS = {"transformers": "transformers"}


def log(msg):
    print(f"[colab-like] {msg}", flush=True)


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def pip(venv: Path, *args):
    """Run pip in ``venv`` quietly; show its output only if it fails."""
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *map(str, args)],
                            text=True, capture_output=True)
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
        raise SystemExit(f"pip {' '.join(map(str, args[:2]))} failed in {venv}")


def local_torch_wheel() -> str | None:
    """A ``torch-<version>+cpu`` wheel in pip's find-links folders, if there is one."""
    links = os.environ.get("PIP_FIND_LINKS", "").split()
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], text=True,
                             capture_output=True).stdout
        links += [v.strip("'\"") for k, v in (ln.split("=", 1) for ln in out.splitlines()
                                              if "=" in ln) if k.endswith("find-links")]
    except OSError:
        pass
    for folder in links:
        folder = folder.removeprefix("file://")
        hits = sorted(glob.glob(os.path.join(folder, f"torch-{TORCH_VERSION}+cpu-*.whl")))
        if hits:
            return hits[-1]
    return None


def build_wheel() -> Path:
    """A wheel of the checkout, built from a copy (setuptools writes build/ and egg-info)."""
    dist = WORK / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    src = WORK / "src-copy"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                             str(dist), str(src)], text=True, capture_output=True)
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
        raise SystemExit("building the wheel failed")
    (wheel,) = dist.glob("toymodel-*.whl")
    return wheel


def runtime_venv() -> Path:
    """The cached Colab-like environment (created on first use)."""
    torch = local_torch_wheel() or f"torch=={TORCH_VERSION}"
    spec = [torch] + RUNTIME
    key = hashlib.sha256(json.dumps([sys.version_info[:2], spec]).encode()).hexdigest()[:12]
    venv = WORK / f"venv-{key}"
    stamp = venv / ".colab-ready"
    if stamp.is_file():
        log(f"reusing {venv}")
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    log(f"creating {venv}: {' '.join(Path(s).name for s in spec)}")
    run([sys.executable, "-m", "venv", venv])
    pip(venv, "install", "-q", *spec)
    cuda = subprocess.run([venv / "bin" / "python", "-c", "import torch; print(torch.version.cuda)"],
                          text=True, capture_output=True, check=True).stdout.strip()
    if cuda != "None":
        raise SystemExit(f"the environment got a CUDA torch ({cuda}); put a torch-{TORCH_VERSION}"
                         "+cpu wheel in pip's find-links")
    pip(venv, "uninstall", "-q", "-y", *LIGHT)  # in case something pulled them in
    stamp.write_text("\n".join(spec) + "\n")
    return venv


def versions(venv: Path) -> dict:
    code = ("import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
            + repr(KEPT) + "}))")
    out = subprocess.run([venv / "bin" / "python", "-c", code], text=True, capture_output=True,
                         check=True)
    return json.loads(out.stdout)


def installed(venv: Path, name: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is None)"
    return subprocess.run([venv / "bin" / "python", "-c", code]).returncode == 0


def add_colab_extras(venv: Path, notebook: Path):
    """Install the Colab-shipped packages (``COLAB_ALSO_HAS``) that ``notebook`` imports."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for module, package in COLAB_ALSO_HAS.items():
        if re.search(rf"^\s*(import|from) {module}\b", code, re.MULTILINE) and not installed(
                venv, module):
            log(f"adding {package} (Colab has it) for {notebook.name}")
            pip(venv, "install", "-q", package)


def run_notebook(venv: Path, wheel: Path, notebook: Path, variant: str) -> list[str]:
    """Execute one notebook alone in an empty folder; returns the problems found."""
    add_colab_extras(venv, notebook)
    pip(venv, "uninstall", "-q", "-y", "toymodel", *(LIGHT if variant == "B" else []))
    before = versions(venv)
    with tempfile.TemporaryDirectory(prefix="colab-") as tmp:
        copy = Path(tmp) / notebook.name
        shutil.copy(notebook, copy)
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "TOYMODEL_STATIC_SITE", "VIRTUAL_ENV")}
        env["TOYMODEL_INSTALL_SOURCE"] = str(wheel)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        result = subprocess.run(
            [venv / "bin" / "python", ROOT / "tests" / "colab" / "execute.py", copy, notebook],
            cwd=tmp, env=env, text=True, capture_output=True)
    blocks = ("\n" + result.stdout).split("\nPROBLEM ")[1:]
    problems = ["PROBLEM " + b.split("\nexecuted ")[0] for b in blocks]
    summary = [ln for ln in result.stdout.splitlines() if ln.startswith("executed ")]
    if summary:
        log("  " + summary[-1])
    if result.returncode != 0 and not problems:
        problems.append(f"PROBLEM executor failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    after = versions(venv)
    if after != before:
        problems.append(f"PROBLEM the install changed the runtime: {before} -> {after}")
    for name in ["toymodel"] + LIGHT:
        if not installed(venv, name):
            problems.append(f"PROBLEM {name} is missing after the install cell ran")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", nargs="*", type=Path,
                        default=sorted((ROOT / "notebooks").glob("*.ipynb")))
    parser.add_argument("--variants", default="BA", help="which variants to run (default BA)")
    parser.add_argument("--b-notebooks", nargs="*", type=Path, default=None,
                        help="run variant B on these notebooks only (every lesson's install cell is "
                             "the same, tests/test_colab.py checks it; default: all of --notebooks)")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    # one run at a time per cache: runs share the environment and uninstall packages in it
    with open(WORK / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another run using {WORK}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _run(args)


def _run(args) -> int:
    start = time.monotonic()
    wheel = build_wheel()
    log(f"built {wheel.name} in {time.monotonic() - start:.0f} s")
    venv = runtime_venv()
    log(f"environment ready after {time.monotonic() - start:.0f} s: {versions(venv)}")
    failures = passed = 0
    for variant in args.variants:
        if variant == "A":
            pip(venv, "install", "-q", *LIGHT)
        chosen = args.notebooks if variant == "A" or args.b_notebooks is None else args.b_notebooks
        for notebook in chosen:
            t = time.monotonic()
            problems = run_notebook(venv, wheel, notebook.resolve(), variant)
            what = "with" if variant == "A" else "without"
            status = "ok" if not problems else "FAILED"
            log(f"{status:6s} {notebook.name} ({what} safetensors/tqdm) in "
                f"{time.monotonic() - t:.0f} s")
            for p in problems:
                print("   ", p.removeprefix("PROBLEM "))
            failures += bool(problems)
            passed += not problems
    pip(venv, "uninstall", "-q", "-y", "toymodel", *LIGHT)
    log(f"total {time.monotonic() - start:.0f} s")
    print(f"colab-like: {passed} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
