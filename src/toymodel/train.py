"""Seeded training of an :class:`~toymodel.model.AttentionOnlyTransformer` on a task.

The loss is the cross-entropy of the prediction at the query (last) position only. Batches come
from a generator seeded with ``seed``; held-out evaluation uses a different seed, so it sees
lists the model never trained on (up to chance repeats).

Command line::

    python -m toymodel.train --task max --out src/toymodel/data/max.safetensors
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .model import AttentionOnlyTransformer, ModelConfig
from .tasks import Task, as_generator, get_task

__all__ = ["TrainConfig", "LESSON_CONFIGS", "train", "evaluate", "predict", "main"]


@dataclass(frozen=True)
class TrainConfig:
    """Model sizes and optimiser settings of one training run."""

    d_model: int = 32
    d_head: int = 16
    n_heads: int = 1
    steps: int = 400
    batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 0.01
    seed: int = 0


#: The settings that made the shipped checkpoints (the lesson's seed included).
LESSON_CONFIGS: dict[str, TrainConfig] = {
    "max": TrainConfig(),
    "first": TrainConfig(),
}

EVAL_SEED = 12345  # held-out batches: a seed no training run uses


@dataclass
class History:
    """Loss per step, and the wall-clock seconds of the run."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _device(device) -> torch.device:
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available")
    return device


def train(task: Task | str = "max", cfg: TrainConfig | None = None, device="cpu", progress=True):
    """Train a fresh model on ``task``; returns ``(model, history)``.

    The initial weights come from ``cfg.seed`` and the training batches from ``cfg.seed + 1``,
    so two runs with the same config on the same device give the same weights.
    """
    task = get_task(task) if isinstance(task, str) else task
    cfg = cfg or LESSON_CONFIGS.get(task.name, TrainConfig())
    device = _device(device)
    model_cfg = ModelConfig(
        d_vocab=task.d_vocab,
        d_model=cfg.d_model,
        d_head=cfg.d_head,
        n_heads=cfg.n_heads,
        n_ctx=task.n_ctx,
        seed=cfg.seed,
    )
    model = AttentionOnlyTransformer(model_cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = as_generator(cfg.seed + 1)
    history = History()
    start = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc=f"train {task.name}", disable=not progress)
    for _ in bar:
        tokens, targets = task.make_batch(cfg.batch_size, g)
        logits = model(tokens.to(device))[:, -1]  # [batch, d_vocab]
        loss = torch.nn.functional.cross_entropy(logits, targets.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.loss.append(loss.item())
        bar.set_postfix(loss=f"{history.loss[-1]:.3f}", refresh=False)
    history.seconds = time.perf_counter() - start
    model.eval()
    return model, history


@torch.no_grad()
def predict(model: AttentionOnlyTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """Predicted answers ``[batch]`` (CPU): the argmax at the last position of ``tokens``."""
    return model(tokens)[:, -1].argmax(-1).cpu()


def evaluate(model, task: Task | str = "max", n: int = 10_000, seed: int = EVAL_SEED) -> float:
    """Accuracy at the query position on ``n`` fresh sequences drawn with ``seed``."""
    task = get_task(task) if isinstance(task, str) else task
    tokens, targets = task.make_batch(n, seed)
    return float((predict(model, tokens) == targets).double().mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train a one-layer attention-only model.")
    parser.add_argument("--task", default="max", help="task name (max or first)")
    parser.add_argument("--out", required=True, help="checkpoint path (.safetensors)")
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    parser.add_argument("--seed", type=int, default=None, help="seed of weights and batches")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)
    from .checkpoint import save_checkpoint

    task = get_task(args.task)
    cfg = LESSON_CONFIGS[task.name]
    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    cfg = TrainConfig(**{**cfg.__dict__, **overrides})
    model, history = train(task, cfg, device=args.device)
    acc = evaluate(model, task)
    save_checkpoint(model.cpu(), task.name, args.out)
    print(f"{task.name}: {cfg.steps} steps in {history.seconds:.1f} s, held-out accuracy {acc:.4f}")
    print(f"wrote {args.out}")
    return model


if __name__ == "__main__":
    main()
