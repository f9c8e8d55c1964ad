"""Attention-only language models on the real-text corpus: configs, seeded resumable training,
weights.

The models are :class:`toymodel.model.AttentionOnlyTransformer` (row convention, TransformerLens
names). Training samples windows of ``n_ctx + 1`` tokens at random offsets of the training token
stream (a seeded generator), predicts every next token, and uses AdamW with a linear warm-up and
a cosine decay. Every ``save_every`` steps it writes a resumable checkpoint (weights, AdamW moments,
the generator state; safetensors, never pickle) to the cache directory, so a long run killed midway
continues with :func:`train_lm` on the same config. Shipped weights live in ``toymodel/data/`` as
``lm_<name>.safetensors`` and load offline with :func:`load_lm`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..checkpoint import PARAM_NAMES, _load_weights, read_checkpoint_file
from ..model import AttentionOnlyTransformer, ModelConfig

__all__ = [
    "LMConfig",
    "CONFIGS",
    "token_ids",
    "train_lm",
    "load_lm",
    "lm_path",
    "save_lm",
    "held_out_loss",
    "sample_windows",
    "repeat_passages",
    "lm_weights",
]

FORMAT = "toymodel-lm-1"


@dataclass(frozen=True)
class LMConfig:
    """A language model and how it is trained. ``model`` holds the sizes (``d_vocab`` from the
    tokenizer)."""

    name: str
    model: ModelConfig
    steps: int = 6000
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 200
    seed: int = 0
    save_every: int = 500
    eval_every: int = 250
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for k in ("steps", "batch", "warmup", "save_every", "eval_every"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{k} must be a positive integer, got {v!r}")
        if not (isinstance(self.lr, float) and self.lr > 0):
            raise ValueError(f"lr must be a positive float, got {self.lr!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LMConfig:
        d = dict(d)
        d["model"] = ModelConfig.from_dict(d["model"])
        return cls(**d)


PLAIN_STEPS = 40_000  # the plain-text models' steps, of 4 windows of 128 tokens (20.5 M tokens)
# the plain-text recipe: nothing planted, no decay, the sdists of more_text.SOURCES
_PLAIN_EXTRA = {"repeat_fraction": 0.0, "schedule": "constant",
                "more_text": ["sympy==1.13.3", "networkx==3.4.2"]}

CONFIGS = {
    "one_layer": LMConfig(
        "one_layer",
        ModelConfig(d_vocab=2048, d_model=128, d_head=16, n_heads=8, n_ctx=128, seed=0, n_layers=1),
        steps=2500,
        batch=16,
        lr=3e-3,
        warmup=100,
    ),
    # Every training window holds a passage of random tokens pasted twice at random places
    # (repeat_passages, "random_tokens"): text alone did not form an induction head within a CPU
    # budget (benchmarks/lm_two_layer_search.md has every setting tried and its curves).
    "two_layer": LMConfig(
        "two_layer",
        ModelConfig(d_vocab=2048, d_model=64, d_head=16, n_heads=4, n_ctx=64, seed=0, n_layers=2),
        steps=3000,
        batch=64,
        lr=1e-2,
        warmup=100,
        save_every=250,
        extra={"repeat_fraction": 1.0, "repeat_mode": "random_tokens"},
    ),
    # Plain text, nothing planted: run w256 of the plain-text search (issue 31,
    # benchmarks/lm_two_layer_search.md): Django's training text and the pinned sdists of
    # toymodel.text.more_text, positions added to the queries and keys only ("shortformer"), the
    # learning rate constant after the warm-up.
    "two_layer_plain": LMConfig(
        "two_layer_plain",
        ModelConfig(d_vocab=2048, d_model=256, d_head=32, n_heads=8, n_ctx=128, seed=0, n_layers=2,
                    positional="shortformer"),
        steps=PLAIN_STEPS,
        batch=4,
        lr=2e-3,
        warmup=500,
        save_every=1000,
        eval_every=1000,
        extra=dict(_PLAIN_EXTRA),
    ),
    # The same recipe with one layer (run o256): the comparison the two-layer model's loss and
    # in-context gain are held to, trained on the same text for the same number of tokens.
    "one_layer_plain": LMConfig(
        "one_layer_plain",
        ModelConfig(d_vocab=2048, d_model=256, d_head=32, n_heads=8, n_ctx=128, seed=0, n_layers=1,
                    positional="shortformer"),
        steps=PLAIN_STEPS,
        batch=4,
        lr=2e-3,
        warmup=500,
        save_every=1000,
        eval_every=1000,
        extra=dict(_PLAIN_EXTRA),
    ),
}


def token_ids(which: str = "train", tok=None) -> np.ndarray:
    """Token ids of the ``"train"`` or ``"held_out"`` split (uint16), cached outside the
    repository."""
    from . import corpus, tokenizer

    if which not in ("train", "held_out"):
        raise ValueError(f"which must be 'train' or 'held_out', got {which!r}")
    tok = tokenizer.load_tokenizer() if tok is None else tok

    def texts():
        train, held = corpus.split(corpus.documents())
        return [d.text for d in (train if which == "train" else held)]

    return cached_ids(f"ids-{corpus.VERSION}", which, tok, texts)


def cached_ids(prefix: str, suffix: str, tok, texts) -> np.ndarray:
    """Token ids (uint16) of the documents ``texts()`` returns, cached in the corpus cache under
    ``{prefix}-{tokenizer hash}-{suffix}.npy``; ``texts`` is called only when the cache is empty."""
    from . import corpus, tokenizer

    key = __import__("hashlib").sha256(tok.to_str().encode()).hexdigest()[:12]
    path = corpus.cache_dir() / f"{prefix}-{key}-{suffix}.npy"
    if path.is_file():
        return np.load(path)
    ids = np.asarray(tokenizer.encode(tok, texts()), dtype=np.uint16)
    # written under a name of this process's own, then renamed: a reader (another test worker)
    # sees the whole file or none
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, ids)
    os.replace(tmp, path)
    return ids


def sample_windows(ids: torch.Tensor, n: int, length: int, g: torch.Generator) -> torch.Tensor:
    """``n`` windows ``[n, length]`` of ``ids`` at random offsets drawn from ``g``."""
    if ids.numel() <= length:
        raise ValueError(f"need more than {length} tokens, got {ids.numel()}")
    starts = torch.randint(0, ids.numel() - length, (n,), generator=g)
    return ids[starts[:, None] + torch.arange(length)]


def repeat_passages(w: torch.Tensor, k: int, g: torch.Generator, mode: str = "half",
                    d_vocab: int | None = None) -> None:
    """Make the first ``k`` rows of the windows ``w`` ``[n, length]`` repeat a passage, in place.

    ``"half"``: the second half copies the first. ``"random"``: a passage of random length
    (``length // 8`` to ``length // 2`` tokens) at a random start is copied to a random later place,
    so where the copy sits says nothing about where its source is: only its content does.
    ``"random_tokens"``: the same, but the passage is first replaced by random token ids below
    ``d_vocab`` (a search setting: text with a random passage pasted twice into it).
    """
    n, length = w.shape
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and {n} rows, got {k}")
    if mode == "half":
        half = length // 2
        w[:k, half : 2 * half] = w[:k, :half]
        return
    if mode not in ("random", "random_tokens"):
        raise ValueError(f"repeat mode must be 'half', 'random' or 'random_tokens', got {mode!r}")
    if mode == "random_tokens" and not d_vocab:
        raise ValueError("repeat mode 'random_tokens' needs d_vocab")
    for row in range(k):
        size = int(torch.randint(max(2, length // 8), length // 2 + 1, (1,), generator=g))
        src = int(torch.randint(0, length - 2 * size + 1, (1,), generator=g))
        dst = int(torch.randint(src + size, length - size + 1, (1,), generator=g))
        if mode == "random_tokens":
            w[row, src : src + size] = torch.randint(0, d_vocab, (size,), generator=g)
        w[row, dst : dst + size] = w[row, src : src + size].clone()


def _lr(cfg: LMConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.extra.get("schedule") == "constant":  # no decay before a phase change can happen
        return cfg.lr
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


@torch.no_grad()
def held_out_loss(model: AttentionOnlyTransformer, ids, n: int = 64, seed: int = 1234) -> float:
    """Mean next-token loss (nats) on ``n`` fixed windows of held-out ids."""
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    g = torch.Generator().manual_seed(seed)
    w = sample_windows(ids, n, model.cfg.n_ctx + 1, g)
    logits = model(w[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1)).item()


def _state_path(cfg: LMConfig, run_dir: Path) -> Path:
    return run_dir / f"{cfg.name}-state.safetensors"


def _save_state(path, model, opt, g, step, log):
    # named_parameters, not PARAM_NAMES: with two or more layers ``model.W_Q`` is a stacked copy,
    # so writing into it (or keying AdamW's state by it) would silently miss the real parameters
    tensors = {}
    for name, p in model.named_parameters():
        tensors[f"model.{name}"] = p.detach().contiguous()
        st = opt.state.get(p, {})
        if st:
            tensors[f"m.{name}"] = st["exp_avg"].contiguous()
            tensors[f"v.{name}"] = st["exp_avg_sq"].contiguous()
            tensors[f"t.{name}"] = torch.as_tensor(st["step"]).reshape(1).float()
    tensors["gen"] = g.get_state()
    tmp = Path(str(path) + ".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(step), "log": json.dumps(log)})
    tmp.replace(path)


def _load_state(path, model, opt, g):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    t = load_file(str(path))
    params = dict(model.named_parameters())
    missing = [n for n in params if f"model.{n}" not in t]
    if missing:
        raise ValueError(f"{path}: not a resumable state of this model (missing {missing}); "
                         "delete it to start the run afresh")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(t[f"model.{name}"])
    for name, p in params.items():
        if f"m.{name}" in t:
            opt.state[p] = {
                "step": t[f"t.{name}"][0].clone(),
                "exp_avg": t[f"m.{name}"],
                "exp_avg_sq": t[f"v.{name}"],
            }
    g.set_state(t["gen"])
    return int(meta["step"]), json.loads(meta["log"])


@contextlib.contextmanager
def _threads(n):
    old, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(n)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old)
        torch.use_deterministic_algorithms(det)


def train_lm(
    cfg: LMConfig,
    train_ids,
    held_ids=None,
    run_dir=None,
    resume: bool = True,
    progress: bool = True,
    threads: int = 2,
    callback=None,
    stop_at: int | None = None,
):
    """Train ``cfg`` on ``train_ids``; returns ``(model, log)``.

    ``log`` is a list of dicts (``step``, ``tokens``, ``train_loss``, ``held_out_loss``, ``seconds``
    and whatever ``callback(model, step)`` returns). With ``run_dir`` a checkpoint is written every
    ``cfg.save_every`` steps and a run with the same ``cfg.name`` resumes from it when ``resume``;
    ``stop_at`` ends this call at that step (checkpointed), keeping the schedule of ``cfg.steps``.
    """
    from tqdm.auto import tqdm

    if not isinstance(cfg, LMConfig):
        raise TypeError(f"cfg must be an LMConfig, got {type(cfg).__name__}")
    ids = torch.as_tensor(np.asarray(train_ids, dtype=np.int64))
    if ids.max().item() >= cfg.model.d_vocab:
        raise ValueError(
            f"token id {ids.max().item()} is out of range for d_vocab {cfg.model.d_vocab}"
        )
    with _threads(threads):
        model = AttentionOnlyTransformer(cfg.model)
        opt = torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99)
        )
        g = torch.Generator().manual_seed(cfg.seed)
        step, log = 0, []
        state = _state_path(cfg, Path(run_dir)) if run_dir is not None else None
        if state is not None:
            state.parent.mkdir(parents=True, exist_ok=True)
            if resume and state.is_file():
                step, log = _load_state(state, model, opt, g)
        t0 = time.perf_counter() - (log[-1]["seconds"] if log else 0.0)
        bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc=cfg.name)
        running = None
        end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        while step < end:
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step)
            w = sample_windows(ids, cfg.batch, cfg.model.n_ctx + 1, g)
            k = round(cfg.batch * float(cfg.extra.get("repeat_fraction", 0.0)))
            if k:  # text that recurs inside one context
                repeat_passages(w, k, g, mode=cfg.extra.get("repeat_mode", "half"),
                                d_vocab=cfg.model.d_vocab)
            logits = model(w[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            bar.update(1)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                entry = {
                    "step": step,
                    "tokens": step * cfg.batch * cfg.model.n_ctx,
                    "train_loss": round(running, 4),
                    "seconds": round(time.perf_counter() - t0, 1),
                }
                if held_ids is not None:
                    entry["held_out_loss"] = round(held_out_loss(model, held_ids), 4)
                if callback is not None:
                    entry.update(callback(model, step) or {})
                log.append(entry)
                bar.set_postfix(loss=f"{running:.3f}")
            if state is not None and (step % cfg.save_every == 0 or step in (cfg.steps, end)):
                _save_state(state, model, opt, g, step, log)
        bar.close()
    return model.eval(), log


def lm_path(name: str = "one_layer"):
    """Where the shipped weights of model ``name`` live (an importlib.resources Traversable)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown language model {name!r}; expected one of {sorted(CONFIGS)}")
    return resources.files("toymodel") / "data" / f"lm_{name}.safetensors"


def save_lm(model: AttentionOnlyTransformer, cfg: LMConfig, path, log=None) -> Path:
    """Write ``model`` (weights and configs, plus a short training log) as safetensors."""
    path = Path(path)
    tensors = {k: getattr(model, k).detach().cpu().contiguous() for k in PARAM_NAMES}
    meta = {
        "format": FORMAT,
        "config": json.dumps(model.cfg.to_dict()),
        "lm_config": json.dumps(cfg.to_dict()),
        "log": json.dumps(log or []),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def load_lm(name: str = "one_layer", path=None, with_log: bool = False):
    """The shipped language model ``name`` (or the file at ``path``), in eval mode; offline."""
    if path is None:
        with resources.as_file(lm_path(name)) as p:
            return load_lm(path=p, with_log=with_log)
    path = Path(path)
    tensors, meta = read_checkpoint_file(path, FORMAT, "toymodel language-model file")
    model = AttentionOnlyTransformer(ModelConfig.from_dict(json.loads(meta["config"])))
    _load_weights(model, tensors, path)
    model.eval()
    return (model, json.loads(meta.get("log", "[]"))) if with_log else model


@torch.no_grad()
def lm_weights(model: AttentionOnlyTransformer) -> dict:
    """The weights of a book language model in the dict layout of :func:`toymodel.hf.gpt2_weights`.

    So the at-scale statistics run unchanged on it: ``W_E [d_vocab, d_model]``, ``W_pos``,
    ``W_Q, W_K, W_V [n_layers, n_heads, d_model, d_head]``, ``W_O [n_layers, n_heads, d_head,
    d_model]``, ``W_U [d_model, d_vocab]``, and zero biases ``b_Q, b_K, b_V [n_layers, n_heads,
    d_head]``, ``b_O [n_layers, d_model]``, ``b_U [d_vocab]`` (the model has no biases and no
    LayerNorm, so nothing is folded). A model with shortformer positions also has ``W_pos_qk``
    (the same ``W_pos``), which :func:`toymodel.hf.attention_block` adds to the input of the
    queries and keys only. The model's score scale is ``1/sqrt(d_head)``, as the book's
    :func:`toymodel.circuits.attention_pattern` assumes.
    """
    if not isinstance(model, AttentionOnlyTransformer):
        raise TypeError(f"model must be an AttentionOnlyTransformer, got {type(model).__name__}")
    c = model.cfg
    out = {}
    for name in ("W_Q", "W_K", "W_V", "W_O"):
        w = getattr(model, name).detach().clone()
        out[name] = w[None] if c.n_layers == 1 else w
    for name in ("b_Q", "b_K", "b_V"):
        out[name] = torch.zeros(c.n_layers, c.n_heads, c.d_head)
    out["b_O"] = torch.zeros(c.n_layers, c.d_model)
    out["W_E"] = model.W_E.detach().clone()
    out["W_pos"] = model.W_pos.detach().clone()
    if c.positional == "shortformer":  # positions enter the queries and keys, not the stream
        out["W_pos_qk"] = out["W_pos"]
    out["W_U"] = model.W_U.detach().clone()
    out["b_U"] = torch.zeros(c.d_vocab)
    return out
