"""Rebuild the shipped language models: tokenizer, token ids, seeded training, safetensors.

    python tools/build_lm.py [--models one_layer two_layer two_layer_plain] [--steps N]
                             [--no-tokenizer] [--fresh] [--from-state PATH]

Downloads the pinned corpus (pip, sha256-checked) into the cache, and the pinned sdists of
``toymodel.text.more_text`` for a recipe that names them, trains the byte-level BPE on Django's
training split (written to src/toymodel/data/lm_tokenizer.json), then trains each model (resumable:
a killed run continues from its last checkpoint unless --fresh) and writes
src/toymodel/data/lm_<name>.safetensors. Prints how long each part took.

A two-layer model trained on plain text (``repeat_fraction`` 0) logs what issue 31 asks of a run
(:func:`toymodel.text.two_layer.text_probe`), as the plain-text search does; ``--from-state``
starts it from a resumable state of the same recipe (a search run's checkpoint, for example
``~/.cache/toymodel-text/runs/plain-w256-state.safetensors``) instead of from step 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from toymodel.text import corpus, lm, more_text, tokenizer, two_layer  # noqa: E402


def _probe(model, step, eos):
    return two_layer.training_probe(model, eos)


def _text_probe(model, step, held_ids, eos):
    return two_layer.text_probe(model, held_ids, eos)


def _start_from(state: Path, cfg: lm.LMConfig, run_dir: Path) -> None:
    """Copy a resumable state into ``run_dir`` under ``cfg``'s name, if it is not past the end."""
    from safetensors import safe_open

    with safe_open(str(state), "pt") as f:
        step = int(f.metadata()["step"])
    if step > cfg.steps:
        raise SystemExit(f"{state} is at step {step}, past {cfg.name}'s {cfg.steps} steps: a later "
                         "state cannot give the shipped model back")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(state, run_dir / f"{cfg.name}-state.safetensors")
    print(f"{cfg.name}: starting from {state} (step {step})", flush=True)


def recipe_ids(cfg: lm.LMConfig, tok, train_ids):
    """The training ids of ``cfg``: Django's, then, if the recipe names ``more_text``, the
    pinned sdists of :mod:`toymodel.text.more_text` (downloaded and sha256-checked once)."""
    wanted = cfg.extra.get("more_text")
    if not wanted:
        return train_ids
    pinned = [f"{s.package}=={s.version}" for s in more_text.SOURCES]
    if list(wanted) != pinned:
        raise SystemExit(f"{cfg.name} was trained on {wanted}, but toymodel.text.more_text pins "
                         f"{pinned}: the recipe cannot be rebuilt from this checkout")
    extra = more_text.token_ids(tok)
    print(f"{cfg.name}: {len(extra):,} more training tokens from {', '.join(pinned)}", flush=True)
    return np.concatenate([train_ids, extra])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["one_layer"], choices=sorted(lm.CONFIGS))
    ap.add_argument("--steps", type=int, default=None, help="override the config's number of steps")
    ap.add_argument("--no-tokenizer", action="store_true", help="keep the shipped tokenizer.json")
    ap.add_argument("--fresh", action="store_true", help="ignore saved training checkpoints")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--from-state", type=Path, default=None,
                    help="a resumable state of the same recipe to start the (one) model from")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = ROOT / "src" / "toymodel" / "data"
    t0 = time.perf_counter()
    train_docs, held_docs = corpus.split(corpus.documents())
    print(
        f"corpus: {len(train_docs)} training and {len(held_docs)} held-out documents "
        f"({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    if not args.no_tokenizer:
        t = time.perf_counter()
        tok = tokenizer.train_tokenizer(d.text for d in train_docs)
        tok.save(str(data / tokenizer.FILE))
        print(
            f"tokenizer: {tok.get_vocab_size()} tokens ({time.perf_counter() - t:.0f} s)",
            flush=True,
        )
    tok = tokenizer.load_tokenizer(data / tokenizer.FILE)
    train_ids, held_ids = lm.token_ids("train", tok), lm.token_ids("held_out", tok)
    print(f"tokens: {len(train_ids):,} training, {len(held_ids):,} held out", flush=True)
    for name in args.models:
        cfg = lm.CONFIGS[name]
        if args.steps is not None:
            cfg = dataclasses.replace(cfg, steps=args.steps)
        t = time.perf_counter()
        ids = recipe_ids(cfg, tok, train_ids)
        probe, eos = None, tok.token_to_id(tokenizer.EOS)
        if cfg.extra.get("repeat_fraction") == 0.0:  # plain text, one or two layers
            probe = functools.partial(_text_probe, held_ids=held_ids, eos=eos)  # issue 31's log
        elif cfg.model.n_layers == 2:  # the log dates the induction phase change
            probe = functools.partial(_probe, eos=eos)
        if args.from_state is not None:
            if len(args.models) != 1:
                raise SystemExit("--from-state needs exactly one model in --models")
            _start_from(args.from_state, cfg, corpus.cache_dir() / "runs")

        model, log = lm.train_lm(
            cfg,
            ids,
            held_ids,
            run_dir=corpus.cache_dir() / "runs",
            resume=not args.fresh,
            threads=args.threads,
            callback=probe,
        )
        lm.save_lm(model, cfg, data / f"lm_{name}.safetensors", log=log)
        print(
            f"{name}: held-out loss {log[-1].get('held_out_loss')} after {cfg.steps} steps "
            f"({time.perf_counter() - t:.0f} s this run, {log[-1]['seconds']:.0f} s of training)",
            flush=True,
        )
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
