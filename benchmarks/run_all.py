"""Run every benchmark and write benchmarks/RESULTS.md (and the summary table in README.md).

    python benchmarks/run_all.py                      # everything (about 15-40 min on 2 cores)
    python benchmarks/run_all.py --quick              # fewer heads and runs, extrapolated
    python benchmarks/run_all.py --tl-python benchmarks/.venv/bin/python

Measures, on this machine: the time to build the whole book from a clean checkout (``git
archive HEAD``); each lesson executed top to bottom in a fresh kernel; the time to train the
lesson model until its held-out accuracy reaches 99%; and, at GPT-2 Small's shape with random
weights, the time and peak memory of copying scores and OV top-1 for all 144 heads, next to
TransformerLens' ``FactoredMatrix`` route in the same run (see ``bench_gpt2_circuits.py``).
Times are medians of several runs. Benchmarks are never tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_gpt2_circuits as gpt2  # noqa: E402

START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, torch CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}, {gpu}; Python "
            f"{platform.python_version()}, torch {torch.__version__}")


MAX_LOAD = 1.0  # a 1-minute load average above this means another job shares the cores


def load_1min() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def book_build(repeats: int) -> list[float]:
    """Build the book from ``git archive HEAD`` (a clean checkout), ``repeats`` times."""
    jb = Path(sys.executable).with_name("jupyter-book")
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            env = dict(os.environ, PYTHONPATH=str(Path(tmp) / "src"),
                       PATH=str(jb.parent) + os.pathsep + os.environ["PATH"])
            start = time.perf_counter()
            out = subprocess.run([str(jb), "build", tmp, "-W", "-n", "--keep-going"], env=env,
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stdout[-3000:], out.stderr[-3000:], file=sys.stderr)
                raise RuntimeError("the book build failed (see above)")
            times.append(time.perf_counter() - start)
    return times


def lessons(repeats: int) -> dict[str, list[float]]:
    from bench_notebooks import time_notebook

    out = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        try:
            out[path.name] = [time_notebook(path) for _ in range(repeats)]
        except Exception as err:  # a lesson that fails is reported, not timed
            print(f"{path.name} failed: {err}", file=sys.stderr)
            out[path.name] = []
    return out


def train_to_99(repeats: int, step: int = 25, target: float = 0.99):
    """Fewest steps (on a grid) whose run reaches ``target`` held-out accuracy, and its times.

    The learning rate is constant and the batches come from a seed, so a run of N steps is the
    first N steps of any longer run: the grid search finds when the lesson run crosses 99%.
    """
    from dataclasses import replace

    from toymodel.train import LESSON_CONFIGS, evaluate, train

    cfg = LESSON_CONFIGS["max"]
    for steps in range(step, cfg.steps + 1, step):
        model, _ = train("max", replace(cfg, steps=steps), progress=False)
        acc = evaluate(model, "max")
        if acc >= target:
            break
    times = [train("max", replace(cfg, steps=steps), progress=False)[1].seconds
             for _ in range(repeats)]
    return steps, acc, times


def med(xs) -> float:
    return statistics.median(xs)


def gpt2_rows(args) -> list[str]:
    tl = args.tl_python
    nice = args.nice
    heads_tl = args.tl_heads
    rows = []
    toy = gpt2.run_route("copying-toymodel", 144, 3 if args.quick else 5, nice=nice)
    ref = gpt2.run_route("copying-tl", heads_tl, args.tl_repeats, python=tl, nice=nice)
    ref_s = ref["median_s"] * 144 / heads_tl
    agree = max(abs(a - b) for a, b in zip(toy["result"], ref["result"], strict=False))
    rows.append(
        f"| copying scores, 144 heads | {toy['median_s']:.2f} s ({toy['repeats']} runs) | "
        f"{toy['peak_mb'] / 1024:.2f} GB | {ref_s:.1f} s ({ref['repeats']} runs"
        f"{'' if heads_tl == 144 else f', {heads_tl} heads x {144 // heads_tl}'}) | "
        f"{ref['peak_mb'] / 1024:.2f} GB | {ref_s / toy['median_s']:.0f}x | "
        f"largest difference {agree:.1e}; input checks {toy['check_s']:.3f} s "
        f"({toy['check_s'] / toy['median_s']:.1%} of the call) |")
    top_heads = args.top1_heads
    top = gpt2.run_route("top1-toymodel", top_heads, 1, nice=nice)
    top_s = top["median_s"] * 144 / top_heads
    copy_heads = args.top1_heads
    copyhead = gpt2.run_route("top1-toymodel-copyhead", copy_heads, 1, nice=nice)
    copy_s = copyhead["median_s"] * 144 / copy_heads
    copy_ext = "" if copy_heads == 144 else f" (extrapolated from {copy_heads} heads)"
    blocked_rows = 2048
    blocked = gpt2.run_route("top1-blocked-tl", 2, 1, rows=blocked_rows, python=tl, nice=nice)
    blocked_s = blocked["median_s"] * 144 / 2 * gpt2.D_VOCAB / blocked_rows
    ext = "" if top_heads == 144 else f" (extrapolated from {top_heads} heads)"
    rows.append(
        f"| OV top-1, 144 heads, random weights | {top_s / 60:.1f} min{ext} | "
        f"{top['peak_mb'] / 1024:.2f} GB | {blocked_s / 60:.0f} min (extrapolated from "
        f"{blocked_rows} rows of 2 heads) | {blocked['peak_mb'] / 1024:.2f} GB | "
        f"{blocked_s / top_s:.0f}x | row blocks of the full matrix, 1024 rows at a time |")
    rows.append(
        f"| OV top-1, 144 copying heads (W_O = W_V.T, W_U = W_E.T) | {copy_s / 60:.1f} min"
        f"{copy_ext} | {copyhead['peak_mb'] / 1024:.2f} GB | as above | | "
        f"{blocked_s / copy_s:.0f}x | nearly every row is a hit |")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer heads and runs")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["book", "lessons", "train", "gpt2"])
    parser.add_argument("--tl-python", default=None,
                        help="python with transformer_lens installed (default: this one)")
    parser.add_argument("--tl-heads", type=int, default=144,
                        help="heads for the TransformerLens copying route (fewer: extrapolated)")
    parser.add_argument("--tl-repeats", type=int, default=3)
    parser.add_argument("--top1-heads", type=int, default=144,
                        help="heads for toymodel's OV top-1 (fewer: extrapolated)")
    parser.add_argument("--nice", type=int, default=0, help="niceness of the GPT-2 runs")
    parser.add_argument("--allow-busy", action="store_true",
                        help=f"run even if the load average is above {MAX_LOAD} (flagged)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--note", default="", help="a line about the machine's state")
    args = parser.parse_args(argv)
    if args.quick:
        args.top1_heads = min(args.top1_heads, 4)
        args.tl_heads, args.tl_repeats = min(args.tl_heads, 24), 1
    repeats = 1 if args.quick else 3
    load_before = load()
    busy = load_1min() > MAX_LOAD
    if busy and not args.allow_busy:
        raise SystemExit(f"load average {load_before} is above {MAX_LOAD}: another job shares the "
                         "cores and the times would be wrong; wait, or pass --allow-busy")
    lines = ["| what | median | runs (s) |", "|---|---|---|"]
    if "book" not in args.skip:
        try:
            t = book_build(1)
            lines.append(f"| build the book from a clean checkout (with execution) | "
                         f"{med(t):.0f} s | " + ", ".join(f"{x:.0f}" for x in t) + " |")
        except RuntimeError as err:  # report it, and go on with the other benchmarks
            lines.append(f"| build the book from a clean checkout | {err} | |")
    if "lessons" not in args.skip:
        for name, t in lessons(repeats).items():
            lines.append(f"| execute `{name}` (fresh kernel) | "
                         + (f"{med(t):.1f} s | " if t else "failed to execute | ")
                         + ", ".join(f"{x:.1f}" for x in t) + " |")
    if "train" not in args.skip:
        steps, acc, t = train_to_99(repeats)
        lines.append(f"| train the lesson model to {acc:.2%} held-out accuracy ({steps} steps, "
                     f"first multiple of 25 reaching 99%) | {med(t):.2f} s | "
                     + ", ".join(f"{x:.2f}" for x in t) + " |")
    gpt2_table = []
    if "gpt2" not in args.skip:
        gpt2_table = ["| GPT-2 Small shape | toymodel | peak memory | TransformerLens route | "
                      "peak memory | speed-up | note |", "|---|---|---|---|---|---|---|",
                      *gpt2_rows(args)]
        import torch

        if not torch.cuda.is_available():
            gpt2_table.append("| on a GPU | not measured: no GPU on this machine | | | | | |")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    after = load()  # includes the benchmarks' own load (up to the machine's core count)
    header = [
        f"Measured {stamp} on {machine()}.",
        f"Load average (1/5/15 min) before: {load_before}; after: {after} (the benchmarks' own "
        "load included)."
        + (" **The machine was busy before the run (1-minute load above "
           f"{MAX_LOAD}): these times are upper bounds.**" if busy else
           " The machine was idle before the run (1-minute load below "
           f"{MAX_LOAD}) and nothing else ran during it.")
        + (f" {args.note}" if args.note else ""),
    ]
    table = "\n".join(lines + [""] + gpt2_table)
    text = "\n".join([
        "# Benchmark results", "",
        "Written by `python benchmarks/" + Path(__file__).name + " "
        + shlex.join(argv if argv is not None else sys.argv[1:]) + "`; do not edit by hand.", "",
        *header, "",
        table, "",
        "Peak memory is the whole process's (Python, torch and the 0.3 GB of GPT-2-sized "
        "random weights included). The TransformerLens route computes, per head, "
        "`FactoredMatrix(W_E @ W_V, W_O @ W_U).eigenvalues`; toymodel forms `W_U @ W_E` once "
        "and the `[d_head, d_head]` products of all heads from it. OV top-1 in toymodel stops "
        "each row once its answer is known (see `FactoredMatrix.row_argmax_is_diagonal`), so "
        "its time depends on the weights: random heads lose early, heads that copy need more "
        "of each row. The row-block route computes every entry (about 2.3e13 multiply-adds "
        "for 144 heads).", "",
    ])
    Path(args.out).write_text(text)
    readme = ROOT / "README.md"
    body = readme.read_text()
    if START in body and END in body:
        before, rest = body.split(START, 1)
        after = rest.split(END, 1)[1]
        quoted = "\n".join(["", *header, "", table, ""])
        readme.write_text(before + START + quoted + END + after)
    print(text)


if __name__ == "__main__":
    main()
