"""Grade a class offline with otter and write one gradebook.

Usage (from the repository root, after ``make assignments``)::

    python -m tools.grade_class SUBMISSIONS_DIR --out DIR [--assignments _build/assignments]
                                [--cache DIR] [--timeout 900] [--jobs 4]

``SUBMISSIONS_DIR`` holds one folder per assignment, named like it (``a1_head_by_hand``, ...), with
one notebook per student: ``<student>.ipynb``, or ``<student>/<anything>.ipynb`` (a learning
platform's export). For every submission the tool

* copies it to ``DIR/<assignment>/<student>/<assignment>.ipynb`` (the name otter knows it by),
* runs ``otter run`` with the assignment's autograder zip (offline: the package and otter are
  installed here), and keeps that folder's ``results.json`` and a readable ``feedback.txt`` (the
  score and every failed check's message, per question) to return to the student,

writes ``DIR/<assignment>/written_<question>.md`` (every student's answer to a question graded by
hand, one after another, to read in bulk), and writes ``DIR/gradebook.csv``: one row per student,
a column per auto-graded question (its
maximum in the header), the automatic total of each assignment, and an empty column for each
question graded by hand (``... written``, its maximum in the header) for the instructor to fill.

Assignment 5 reads the pinned corpus: it is downloaded once (``pip download``, sha256-checked) and
its token ids cached in ``--cache`` (default ``$TOYMODEL_TEXT_CACHE`` or ``~/.cache/toymodel-text``)
before any submission runs; every run reads that cache, so grading itself needs no network.

Run it in a container or a throwaway machine: it executes the students' code.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MASTERS = ROOT / "assignments"
NEEDS_CORPUS = ("a5_language_model",)


def questions(name: str) -> list[tuple[str, float, bool]]:
    """``[(question, points, manual)]`` of an assignment, in order, from its master notebook."""
    cells = json.loads((MASTERS / f"{name}.ipynb").read_text())["cells"]
    out = []
    for cell in cells:
        src = "".join(cell["source"])
        if cell["cell_type"] == "raw" and src.startswith("# BEGIN QUESTION"):
            q = re.search(r"name:\s*(\w+)", src).group(1)
            points = float(re.search(r"points:\s*([\d.]+)", src).group(1))
            out.append((q, points, bool(re.search(r"manual:\s*true", src))))
    return out


def submissions(folder: Path) -> list[tuple[str, Path]]:
    """``[(student, notebook)]`` in an assignment's folder of submissions, sorted by student."""
    found = {}
    for nb in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts:
            continue
        rel = nb.relative_to(folder)
        student = rel.parts[0] if len(rel.parts) > 1 else nb.stem
        if student in found:
            raise SystemExit(f"two notebooks for {student} in {folder}: {found[student]} and {nb}")
        found[student] = nb
    return sorted(found.items())


def autograder_zip(assignments: Path, name: str) -> Path:
    zips = sorted((assignments / name / "autograder").glob(f"{name}-autograder_*.zip"))
    if not zips:
        raise SystemExit(f"no autograder zip for {name} in {assignments}: run `make assignments` "
                         "(or pass --assignments)")
    return zips[-1]


def preload_corpus(env: dict) -> None:
    """Download the pinned corpus once and cache its token ids (assignment 5 reads them)."""
    code = ("from toymodel.text import lm\n"
            "for which in ('train', 'held_out'):\n"
            "    print(which, len(lm.token_ids(which)))\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def grade_one(zip_path: Path, notebook: Path, dest: Path, env: dict, timeout: int) -> dict:
    """``otter run`` on one submission into ``dest``; returns ``{question: (score, messages)}``
    (empty when otter produced no results: the notebook could not be read or run)."""
    dest.mkdir(parents=True, exist_ok=True)
    results = dest / "results.json"
    if results.exists():
        results.unlink()
    cmd = [sys.executable, "-m", "otter", "run", "-a", str(zip_path), "-o", str(dest),
           str(notebook)]
    log = dest / "otter.log"
    try:
        proc = subprocess.run(cmd, cwd=dest, env=env, capture_output=True, text=True,
                              timeout=timeout)
        log.write_text(proc.stdout + proc.stderr)
    except subprocess.TimeoutExpired as err:
        log.write_text(f"timed out after {timeout} s\n{err.stdout or ''}{err.stderr or ''}")
        return {}
    if not results.exists():
        return {}
    data = json.loads(results.read_text())
    out = {}
    for test in data.get("tests", []):
        if "score" not in test:
            continue
        out[test["name"]] = (float(test["score"]), str(test.get("output", "")))
    return out


def feedback(name: str, student: str, scores: dict, qs) -> str:
    lines = [f"{name}: {student}", ""]
    if not scores:
        lines.append("The notebook could not be graded (it did not run to the end, or is not "
                     "this assignment's notebook). See otter.log.")
    for q, points, manual in qs:
        if manual:
            lines.append(f"{q}: graded by hand (out of {points:g})")
            continue
        score, text = scores.get(q, (0.0, "not graded"))
        lines.append(f"{q}: {score:g} / {points:g}")
        for block in text.split("❌ Test case failed")[1:]:
            msg = [ln.strip() for ln in block.splitlines()
                   if re.match(r"\s*\w*(Error|Exception|Failed): ", ln)]
            if msg:
                lines.append("    " + msg[0])
    return "\n".join(lines) + "\n"


def written_answer(notebook: Path, question: str) -> str:
    """The student's answer to a question graded by hand: the markdown cells after its prompt
    (``## Question N``), up to the next code cell or heading."""
    number = question.removeprefix("q")
    try:
        cells = json.loads(notebook.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return "(the notebook could not be read)"
    out, inside = [], False
    for cell in cells:
        src = "".join(cell.get("source", ""))
        if cell.get("cell_type") == "markdown" and src.startswith(f"## Question {number}:"):
            inside = True
            continue
        if inside:
            if cell.get("cell_type") != "markdown" or src.lstrip().startswith("#"):
                break
            out.append(src.strip())
    text = "\n\n".join(t for t in out if t)
    return text or "(no answer)"


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, help="one folder per assignment")
    parser.add_argument("--out", type=Path, required=True, help="where results and the CSV go")
    parser.add_argument("--assignments", type=Path, default=ROOT / "_build" / "assignments",
                        help="the output of `make assignments` (autograder zips)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="corpus cache for assignment 5 (default $TOYMODEL_TEXT_CACHE)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per submission")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                        help="submissions graded at once (default: the CPUs, at most 4)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")

    names = sorted(p.name for p in args.submissions.iterdir()
                   if p.is_dir() and (MASTERS / f"{p.name}.ipynb").is_file())
    if not names:
        raise SystemExit(f"no assignment folders in {args.submissions} (expected folders named "
                         "like the masters, e.g. a1_head_by_hand)")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")] if p)}
    if args.cache is not None:
        env["TOYMODEL_TEXT_CACHE"] = str(args.cache.resolve())
    if any(n in NEEDS_CORPUS for n in names):
        preload_corpus(env)

    # every submission graded first (``--jobs`` at once, each otter run in its own folder), then
    # the gradebook assembled in a fixed order
    jobs = []
    for name in names:
        zip_path = autograder_zip(args.assignments.resolve(), name)
        for student, nb in submissions(args.submissions / name):
            dest = out / name / student
            dest.mkdir(parents=True, exist_ok=True)
            copy = dest / f"{name}.ipynb"
            shutil.copyfile(nb, copy)
            jobs.append((name, student, zip_path, copy, dest))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        graded = list(pool.map(lambda j: grade_one(j[2], j[3], j[4], env, args.timeout), jobs))
    scores_of = {(j[0], j[1]): scores for j, scores in zip(jobs, graded, strict=True)}

    header, rows = ["student"], {}
    for name in names:
        qs = questions(name)
        auto = [(q, p) for q, p, manual in qs if not manual]
        header += [f"{name} {q} (/{p:g})" for q, p in auto]
        header.append(f"{name} automatic total (/{sum(p for _, p in auto):g})")
        header += [f"{name} {q} written (/{p:g})" for q, p, manual in qs if manual]
        for student, _ in submissions(args.submissions / name):
            dest = out / name / student
            scores = scores_of[(name, student)]
            (dest / "feedback.txt").write_text(feedback(name, student, scores, qs))
            row = rows.setdefault(student, {"student": student})
            for q, p in auto:
                row[f"{name} {q} (/{p:g})"] = f"{scores.get(q, (0.0, ''))[0]:g}"
            row[f"{name} automatic total (/{sum(p for _, p in auto):g})"] = \
                f"{sum(scores.get(q, (0.0, ''))[0] for q, _ in auto):g}"
            print(f"{name} {student}: {row[header[-1 - sum(m for *_, m in qs)]]} automatic")
        for q, points, manual in qs:  # every student's written answer, one file per question
            if manual:
                blocks = [f"# {name} {q}: written answers (out of {points:g})", ""]
                for student, _ in submissions(args.submissions / name):
                    nb = out / name / student / f"{name}.ipynb"
                    blocks += [f"## {student}", "", written_answer(nb, q), ""]
                (out / name / f"written_{q}.md").write_text("\n".join(blocks))
    path = out / "gradebook.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, restval="")
        writer.writeheader()
        for student in sorted(rows):
            writer.writerow(rows[student])
    print(f"gradebook: {path}")
    return path


if __name__ == "__main__":
    main()
