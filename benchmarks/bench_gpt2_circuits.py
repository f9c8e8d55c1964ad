"""Copying scores and OV top-1 of all heads at GPT-2 Small's shape: toymodel and TransformerLens.

    python benchmarks/bench_gpt2_circuits.py copying [--repeats 5] [--heads 144]
    python benchmarks/bench_gpt2_circuits.py top1 [--heads 4] [--rows 4096]

Weights are random (seeded), float32, with GPT-2 Small's shapes: ``W_E [50257, 768]``,
``W_U [768, 50257]``, ``W_V [12, 12, 768, 64]``, ``W_O [12, 12, 64, 768]``. Each route runs in its
own subprocess, so that its peak memory (``ru_maxrss``) is its own; times are medians of repeated
runs inside that process. The TransformerLens route is what its users write: per head,
``FactoredMatrix(W_E @ W_V, W_O @ W_U).eigenvalues`` (TransformerLens 4.3's ``FactoredMatrix``
module, imported without the rest of the package; see ``benchmarks/requirements.txt``).

With ``--heads H`` fewer than 144, each route runs on the first H heads and the table gives the
measured time scaled by 144 / H (marked as extrapolated). ``top1 --rows R`` likewise times R rows
of each head and scales by 50257 / R. Prints one JSON object per route.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_LAYERS, N_HEADS, D_MODEL, D_HEAD, D_VOCAB = 12, 12, 768, 64, 50257


def weights(n_heads_total: int, seed: int = 0, copying: bool = False):
    """Random GPT-2-shaped weights, the first ``n_heads_total`` heads as ``[L, H, ...]``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    W_E = torch.randn(D_VOCAB, D_MODEL, generator=g) * 0.1
    W_U = torch.randn(D_MODEL, D_VOCAB, generator=g) * 0.1
    W_V = torch.randn(N_LAYERS * N_HEADS, D_MODEL, D_HEAD, generator=g) * 0.05
    W_O = torch.randn(N_LAYERS * N_HEADS, D_HEAD, D_MODEL, generator=g) * 0.05
    if copying:  # the slowest case for top-1: W_U = W_E.T, W_O = W_V.T (most rows are hits)
        W_U = W_E.T.contiguous()
        W_O = W_V.transpose(-1, -2).contiguous()
    W_V, W_O = W_V[:n_heads_total], W_O[:n_heads_total]
    if n_heads_total % N_HEADS == 0:
        W_V = W_V.reshape(-1, N_HEADS, D_MODEL, D_HEAD)
        W_O = W_O.reshape(-1, N_HEADS, D_HEAD, D_MODEL)
    return W_E, W_V, W_O, W_U


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_tl_factored():
    """TransformerLens' FactoredMatrix class, without importing the whole package."""
    import importlib.util
    import types

    if "transformer_lens.FactoredMatrix" in sys.modules:
        return sys.modules["transformer_lens.FactoredMatrix"].FactoredMatrix
    spec = importlib.util.find_spec("transformer_lens")
    if spec is None:
        raise ImportError("transformer_lens is not installed: see benchmarks/requirements.txt")
    base = os.path.dirname(spec.origin)
    for name, sub in (("transformer_lens", ""), ("transformer_lens.utilities", "utilities")):
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(base, sub)]
        sys.modules.setdefault(name, module)
    from transformer_lens.FactoredMatrix import FactoredMatrix

    return FactoredMatrix


def worker(route: str, heads: int, repeats: int, rows: int, threads: int | None):
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    if "tl" in route:
        load_tl_factored()  # import outside the timed runs
    W_E, W_V, W_O, W_U = weights(heads, copying=route.endswith("copyhead"))
    base = rss_mb()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = ROUTES[route](W_E, W_V, W_O, W_U, rows)
        times.append(time.perf_counter() - start)
    check_s = None
    if route == "copying-toymodel":  # what the input checks (shapes, NaN) cost of this call
        from toymodel._validate import _all_finite
        from toymodel.circuits import _ov_shapes

        shared = W_U @ W_E
        checks = []
        for _ in range(repeats):  # shapes of all four, NaN in W_V, W_O and in W_U @ W_E
            start = time.perf_counter()
            _ov_shapes(W_E, W_V, W_O, W_U, check_finite=False)
            _all_finite(shared)
            checks.append(time.perf_counter() - start)
        check_s = statistics.median(checks)
    return {
        "route": route, "heads": heads, "rows": rows, "repeats": repeats, "check_s": check_s,
        "threads": torch.get_num_threads(), "seconds": times,
        "median_s": statistics.median(times), "peak_mb": peak_mb(), "weights_mb": base,
        "result": [float(x) for x in torch.as_tensor(result).flatten()[:144]],
    }


def copying_toymodel(W_E, W_V, W_O, W_U, rows):
    from toymodel.circuits import copying_score

    return copying_score(W_E, W_V, W_O, W_U)


def copying_tl(W_E, W_V, W_O, W_U, rows):
    FactoredMatrix = load_tl_factored()
    scores = []
    for W_v, W_o in zip(W_V.reshape(-1, D_MODEL, D_HEAD), W_O.reshape(-1, D_HEAD, D_MODEL),
                        strict=True):
        eig = FactoredMatrix(W_E @ W_v, W_o @ W_U).eigenvalues
        scores.append((eig.sum().real / eig.abs().sum()).item())
    return scores


def top1_toymodel(W_E, W_V, W_O, W_U, rows):
    from toymodel.circuits import ov_top1_accuracy

    if rows >= D_VOCAB:
        return ov_top1_accuracy(W_E, W_V, W_O, W_U, progress=False)
    # time `rows` rows of each head: the same code path with a token subset for the rows only
    import torch

    from toymodel.factored import FactoredMatrix

    out = []
    for W_v, W_o in zip(W_V.reshape(-1, D_MODEL, D_HEAD), W_O.reshape(-1, D_HEAD, D_MODEL),
                        strict=True):
        hits = FactoredMatrix(W_E @ W_v, W_o @ W_U).row_argmax_is_diagonal(rows=range(rows))
        out.append(float(hits.float().mean()))
    return torch.tensor(out)


def top1_blocked(W_E, W_V, W_O, W_U, rows, block=1024):
    """The plain way with a factored matrix: row blocks of ``(W_E W_V)[rows] @ (W_O W_U)``."""
    import torch

    FactoredMatrix = load_tl_factored()
    out = []
    for W_v, W_o in zip(W_V.reshape(-1, D_MODEL, D_HEAD), W_O.reshape(-1, D_HEAD, D_MODEL),
                        strict=True):
        M = FactoredMatrix(W_E @ W_v, W_o @ W_U)
        hits = 0
        for start in range(0, min(rows, D_VOCAB), block):
            stop = min(start + block, rows, D_VOCAB)
            rows_ab = M.A[start:stop] @ M.B  # what M[start:stop].AB computes
            hits += int((rows_ab.argmax(-1) == torch.arange(start, stop)).sum())
        out.append(hits / min(rows, D_VOCAB))
    return torch.tensor(out)


ROUTES = {
    "copying-toymodel": copying_toymodel,
    "copying-tl": copying_tl,
    "top1-toymodel": top1_toymodel,
    "top1-toymodel-copyhead": top1_toymodel,
    "top1-blocked-tl": top1_blocked,
}


def run_route(route, heads, repeats, rows=D_VOCAB, threads=None, python=None, nice=0):
    """Run one route in a fresh subprocess; returns its JSON record."""
    cmd = [python or sys.executable, __file__, "--worker", route, "--heads", str(heads),
           "--repeats", str(repeats), "--rows", str(rows)]
    if threads:
        cmd += ["--threads", str(threads)]
    if nice:
        cmd = ["nice", "-n", str(nice)] + cmd
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get(
        "PYTHONPATH", ""))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{route} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", choices=["copying", "top1"], default="copying")
    parser.add_argument("--worker", choices=sorted(ROUTES))
    parser.add_argument("--heads", type=int, default=144)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=D_VOCAB)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tl-python", default=None,
                        help="python of the venv that has transformer_lens (default: this one)")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.heads, args.repeats, args.rows, args.threads)))
        return
    if args.what == "copying":
        routes = [("copying-toymodel", None), ("copying-tl", args.tl_python)]
    else:
        routes = [("top1-toymodel", None), ("top1-toymodel-copyhead", None),
                  ("top1-blocked-tl", args.tl_python)]
    for route, python in routes:
        print(json.dumps(run_route(route, args.heads, args.repeats, args.rows, args.threads,
                                   python)))


if __name__ == "__main__":
    main()
