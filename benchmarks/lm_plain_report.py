"""The plain-text search's logs as one csv and one figure (the one writer of both).

    PYTHONPATH=src python benchmarks/lm_plain_report.py RUN [RUN ...]

Reads each run's log from its resumable checkpoint (``$TOYMODEL_TEXT_CACHE/runs/plain-RUN-state
.safetensors``, written by ``lm_plain_search.py``) and writes ``lm_plain_search.csv`` (every logged
step of every run) and ``lm_plain_search.png`` (the natural-text measures against tokens read).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from toymodel.text import corpus  # noqa: E402

FIELDS = ["run", "step", "tokens", "seconds", "train_loss", "held_out_loss", "text_loss", "icl",
          "text_prev", "continuation", "prev_token", "induction", "loss_first", "loss_second"]


def read_log(name: str) -> tuple[dict, list[dict]]:
    from safetensors import safe_open

    path = corpus.cache_dir() / "runs" / f"plain-{name}-state.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    return meta, json.loads(meta["log"])


def main(names):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for name in names:
        rows += [{"run": name, **{k: e.get(k) for k in FIELDS[1:]}} for e in read_log(name)[1]]
    with open(HERE / "lm_plain_search.csv", "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    panels = [("text_loss", "held-out loss (nats)"), ("icl", "late minus early loss (nats)"),
              ("text_prev", "best previous-token score (text)"),
              ("continuation", "best attention on earlier continuations (text)"),
              ("induction", "best induction score (random tokens)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for name in names:
            r = [x for x in rows if x["run"] == name and x[key] is not None]
            ax.plot([x["tokens"] / 1e6 for x in r], [x[key] for x in r], "o-", ms=2, label=name)
        ax.set_xscale("log")  # runs from a few million tokens to the blocking rule's 3e8
        ax.axvline(300, color="0.6", lw=0.8, ls=":")
        ax.set_xlabel("training tokens (millions, log scale)")
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "lm_plain_search.png", dpi=110)
    print(f"wrote {len(rows)} rows")


if __name__ == "__main__":
    main(sys.argv[1:])
