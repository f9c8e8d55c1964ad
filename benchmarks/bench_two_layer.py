"""Time the two-layer induction model's training run from scratch (not a test).

    python benchmarks/bench_two_layer.py [--repeats 3] [--device cpu]

Training runs on one torch thread (as the package always trains it, for bit-reproducibility), so
a second core does not speed it up; the target is under a minute on 2 CPU cores. Prints the
wall-clock seconds of each run (training loop only), the final loss, whether every run gave the
same weights, and the induction accuracy of the last run.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch

from toymodel.induction import LESSON_CONFIG, induction_accuracy, train_induction


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {platform.machine()}, device {args.device}")
    print(f"{LESSON_CONFIG}")
    seconds, weights = [], []
    for _ in range(args.repeats):
        model, history = train_induction(LESSON_CONFIG, device=args.device, progress=False)
        seconds.append(history.seconds)
        weights.append([p.detach().cpu() for p in model.parameters()])
        print(f"  {LESSON_CONFIG.steps} steps in {history.seconds:.2f} s, "
              f"final loss {history.loss[-1]:.4f}")
    same = all(all(torch.equal(a, b) for a, b in zip(w, weights[0], strict=True))
               for w in weights)
    print(f"median {statistics.median(seconds):.2f} s; identical weights across runs: {same}; "
          f"induction accuracy {induction_accuracy(model.cpu()):.4f}")


if __name__ == "__main__":
    main()
