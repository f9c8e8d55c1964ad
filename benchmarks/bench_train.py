"""Time a from-scratch training run of the lesson's config (not a test).

    python benchmarks/bench_train.py [--task max] [--device cpu] [--repeats 3] [--threads N]

Prints torch's thread count, the steps, the wall-clock seconds of each run (training loop only,
no progress bar) and the held-out accuracy of the last run.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch

from toymodel.train import LESSON_CONFIGS, evaluate, train


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="max")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = LESSON_CONFIGS[args.task]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}")
    print(f"task {args.task}, device {args.device}, {cfg}")
    seconds = []
    for _ in range(args.repeats):
        model, history = train(args.task, cfg, device=args.device, progress=False)
        seconds.append(history.seconds)
        print(f"  {cfg.steps} steps in {history.seconds:.2f} s, final loss {history.loss[-1]:.4f}")
    acc = evaluate(model, args.task)
    print(f"median {statistics.median(seconds):.2f} s; held-out accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
