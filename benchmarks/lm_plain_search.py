"""Resumable search for a two-layer language model whose induction head forms on plain text.

    python benchmarks/lm_plain_search.py NAME [--d-model 64] [--heads 4] [--n-ctx 128]
        [--batch 8] [--lr 1e-3] [--steps 100000] [--positional shortformer]
        [--schedule constant] [--layers 2] [--threads 1] [--stop-at STEP]

Nothing is planted: every window is plain Django text (repeat fraction 0), or with ``--more-text``
plain text of Django and two more pinned sdists (``toymodel.text.more_text``), tokenised with the
shipped tokenizer (or ``--vocab N``, a BPE of N tokens trained on Django's training documents).
The run checkpoints to ``$TOYMODEL_TEXT_CACHE/runs`` every ``--every`` steps and the same command
resumes it (``--stop-at`` ends this call early, keeping the schedule). Each
log entry records what issue 31 asks of a run (``toymodel.text.two_layer.text_probe``): the
held-out loss and in-context-learning score (last 8 positions minus positions 8-15) on 200
held-out windows of 64 tokens, the best previous-token score of a layer-0 head on held-out text,
the best layer-1 head's attention to the tokens that followed earlier occurrences of the current
token, and the induction score and copy losses on repeated random tokens.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from toymodel.model import ModelConfig  # noqa: E402
from toymodel.text import corpus, lm, more_text, two_layer  # noqa: E402
from toymodel.text import tokenizer as T  # noqa: E402


def config(a, d_vocab: int) -> lm.LMConfig:
    return lm.LMConfig(
        f"plain-{a.name}",
        ModelConfig(d_vocab=d_vocab, d_model=a.d_model, d_head=a.d_model // a.heads,
                    n_heads=a.heads, n_ctx=a.n_ctx, seed=a.seed, n_layers=a.layers,
                    positional=a.positional),
        steps=a.steps, batch=a.batch, lr=a.lr, warmup=a.warmup, save_every=a.every,
        eval_every=a.every, seed=a.seed,
        extra={"repeat_fraction": 0.0, "schedule": a.schedule,
               **({"more_text": [f"{x.package}=={x.version}" for x in more_text.SOURCES]}
                  if a.more_text else {})})


def own_tokenizer(size: int):
    """A BPE of ``size`` tokens trained on the training documents, cached beside the corpus."""
    path = corpus.cache_dir() / f"tokenizer-{corpus.VERSION}-{size}.json"
    if not path.is_file():
        train, _ = corpus.split(corpus.documents())
        T.train_tokenizer([d.text for d in train], vocab_size=size).save(str(path))
    return T.load_tokenizer(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--n-ctx", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--positional", choices=["standard", "shortformer"], default="shortformer")
    ap.add_argument("--schedule", choices=["cosine", "constant"], default="constant")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stop-at", type=int, default=None)
    ap.add_argument("--vocab", type=int, default=None,
                    help="train a byte-level BPE of this size on the training documents (cached) "
                         "instead of the shipped 2,048-token one")
    ap.add_argument("--more-text", action="store_true",
                    help="train on Django's training documents and the sdists of "
                         "toymodel.text.more_text (about 6 times more text); held-out windows "
                         "stay Django's")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    tok = T.load_tokenizer() if a.vocab is None else own_tokenizer(a.vocab)
    eos = tok.token_to_id(T.EOS)
    train_ids, held_ids = lm.token_ids("train", tok), lm.token_ids("held_out", tok)
    if a.more_text:
        train_ids = np.concatenate([train_ids, more_text.token_ids(tok)])
    cfg = config(a, tok.get_vocab_size())

    def callback(model, step):  # a one-layer run logs the loss and in-context score only
        return two_layer.text_probe(model, held_ids, eos)

    end = a.steps if a.stop_at is None else min(a.stop_at, a.steps)
    done = 0
    while done < end:  # chunks that each end at a checkpoint, printing the latest log entry
        done = min(end, done + 10 * a.every)
        model, log = lm.train_lm(cfg, train_ids, held_ids, run_dir=corpus.cache_dir() / "runs",
                                 threads=a.threads, callback=callback, stop_at=done,
                                 progress=False)
        for entry in log:
            if entry["step"] > done - 10 * a.every:
                print(entry, flush=True)


if __name__ == "__main__":
    main()
