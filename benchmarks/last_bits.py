"""Which settings move the last bits of results computed from the shipped language models.

    python benchmarks/last_bits.py            # prints one JSON line; run it under each setting:
    for e in "" OMP_NUM_THREADS=1 MKL_CBWR=COMPATIBLE MKL_CBWR=AVX2 ATEN_CPU_CAPABILITY=default \
             TOYMODEL_WEIGHT_JITTER=1e-7; do env $e python benchmarks/last_bits.py; done

Per model: the highest copying score and the lowest QK self z-score (float64 statistics of the
stored weights, what lesson 07 glued unrounded before issue 28), the highest random-head copying
score, and the sum of a float32 forward pass's logits. docs-dev/KERNEL_SPREAD.md records the result.
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from toymodel import experiments, hf  # noqa: E402


@torch.no_grad()
def main():
    out = {}
    for name in hf.shipped_language_models():
        m = hf.load_language_model(name)
        s = experiments.head_stats(m.weights, top1_heads="all")
        base = experiments.random_heads_baseline(m.weights, n=200, seed=0)
        x = torch.arange(64)[None] % m.d_vocab
        out[name] = [repr(float(s["copying"].max())), repr(float(s["qk_self_z"].min())),
                     repr(float(base.max())), repr(float(m.model(x).double().sum()))]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
