"""Rebuild benchmarks/lm_two_layer_search.csv and .png from the search runs' checkpoints.

    python benchmarks/lm_two_layer_report.py r2 r4 r6 r7

Each run's checkpoint (``~/.cache/toymodel-text/runs/search-NAME-state.safetensors``) carries its
log; the run's settings are given here by ``SETTINGS`` (the command lines of
lm_two_layer_search.md). The figure shows, against training tokens, the held-out loss and the best
previous-token (layer 0) and induction (layer 1) scores of every run.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from toymodel.text import corpus  # noqa: E402

SETTINGS = {  # n_ctx, d_model, heads, lr, batch, repeat fraction, repeat mode
    "r2": (128, 128, 8, 2e-3, 32, 0.5, "random"),
    "r3": (128, 64, 4, 3e-3, 32, 1.0, "random"),
    "r4": (128, 128, 8, 6e-3, 32, 1.0, "random"),
    "r5": (128, 64, 4, 1e-2, 32, 1.0, "random"),
    "r6": (128, 128, 8, 6e-3, 32, 1.0, "random_tokens"),
    "r7": (64, 64, 4, 1e-2, 64, 1.0, "random_tokens"),
}
FIELDS = ["run", "step", "tokens", "seconds", "train_loss", "held_out_loss", "prev_token",
          "induction", "loss_first", "loss_second", "n_ctx", "d_model", "heads", "lr", "batch",
          "repeat", "repeat_mode"]


def run_log(name: str) -> list[dict]:
    from safetensors import safe_open

    path = corpus.cache_dir() / "runs" / f"search-{name}-state.safetensors"
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["log"])


def main(names):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name in names:
        log = run_log(name)
        s = dict(zip(["n_ctx", "d_model", "heads", "lr", "batch", "repeat", "repeat_mode"],
                     SETTINGS[name], strict=True))
        rows += [{"run": name, **{k: e.get(k) for k in FIELDS if k in e}, **s} for e in log]
        t = [e["tokens"] / 1e6 for e in log]
        label = f"{name}: ctx {s['n_ctx']}, d {s['d_model']}, lr {s['lr']:g}, {s['repeat_mode']}"
        for ax, key in zip(axes, ["held_out_loss", "prev_token", "induction"], strict=True):
            ax.plot(t, [e[key] for e in log], "o-", ms=2, label=label)
    for ax, title in zip(axes, ["held-out loss (nats)", "best previous-token score (layer 0)",
                                "best induction score (layer 1)"], strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training tokens (millions)")
    axes[2].axhline(0.3, color="0.5", ls="--", lw=1)
    axes[2].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(ROOT / "benchmarks" / "lm_two_layer_search.png", dpi=110)
    with open(ROOT / "benchmarks" / "lm_two_layer_search.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} rows from {len(names)} runs")


if __name__ == "__main__":
    main(sys.argv[1:] or sorted(SETTINGS))
