"""Resumable search for a two-layer attention-only language model that forms an induction head.

    python benchmarks/lm_two_layer_search.py NAME [--n-ctx 256] [--lr 1e-3] [--batch 16]
        [--steps 4000] [--repeat 0.5] [--d-model 128] [--heads 8]

Each run trains on the shipped tokenizer's ids of the Django corpus (toymodel.text) and checkpoints
to the cache every 250 steps; the same command resumes it. Every 250 steps it records the train and
held-out loss, the best previous-token score of a layer-0 head, the best induction score of a
layer-1 head on repeated random tokens, and the loss on the first and second copy, in the log the
checkpoint carries; benchmarks/lm_two_layer_report.py turns the logs of several runs into
lm_two_layer_search.csv and .png (one writer, so runs side by side cannot overwrite each other's
rows), and benchmarks/check_two_layer.py applies the full bar. Target: induction score >= 0.3
and second copy at least 1 nat below the first.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from toymodel.model import ModelConfig  # noqa: E402
from toymodel.text import corpus, lm, two_layer  # noqa: E402
from toymodel.text import tokenizer as T  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("--n-ctx", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--repeat", type=float, default=0.5)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--repeat-mode", choices=["half", "random", "random_tokens"], default="half")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    tok = T.load_tokenizer()
    eos = tok.token_to_id(T.EOS)
    train_ids, held_ids = lm.token_ids("train", tok), lm.token_ids("held_out", tok)
    cfg = lm.LMConfig(
        f"search-{a.name}",
        ModelConfig(d_vocab=tok.get_vocab_size(), d_model=a.d_model, d_head=a.d_model // a.heads,
                    n_heads=a.heads, n_ctx=a.n_ctx, seed=0, n_layers=2),
        steps=a.steps, batch=a.batch, lr=a.lr, warmup=a.warmup, save_every=250, eval_every=250,
        extra={"repeat_fraction": a.repeat, "repeat_mode": a.repeat_mode})

    def callback(model, step):
        return two_layer.training_probe(model, eos)

    # train in chunks of 250 steps, each ending at a checkpoint, printing the latest log entry
    done = 0
    while done < a.steps:
        done = min(a.steps, done + 250)
        chunk = dataclasses.replace(cfg, steps=a.steps)
        model, log = lm.train_lm(chunk, train_ids, held_ids, run_dir=corpus.cache_dir() / "runs",
                                 threads=a.threads, callback=callback, stop_at=done)
        print(log[-1], flush=True)


if __name__ == "__main__":
    main()
