"""Seeded training of an :class:`~toymodel.model.AttentionOnlyTransformer` on a task.

The loss is the cross-entropy of the prediction at the query (last) position only. Batches come
from a generator seeded with ``seed + 1``. A different seed alone does not make the held-out
lists new: small lists repeat (there is only one list whose maximum is 0), so :func:`held_out`
replays the training batches and drops every list that training saw.

Training on the CPU is deterministic on one machine: :func:`train` runs it on one thread with
deterministic algorithms, because a matrix product split over more threads adds its terms in
another order and the weights drift apart by float rounding (on 8 threads the lesson's model
ends about 2e-2 away from the 1-thread one). Across machines only the behaviour is reproduced:
another kind of CPU selects other vectorised kernels, and its retrained weights lie up to a few
1e-2 from the shipped checkpoints, with the same accuracy and statistics
(``docs-dev/KERNEL_SPREAD.md``, measured by ``benchmarks/kernel_spread.py``). Bit-identical
weights come back only on the kind of CPU that made the checkpoint.

Command line::

    python -m toymodel.train --task max --out src/toymodel/data/max.safetensors
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ._validate import check_positive_int
from .model import AttentionOnlyTransformer, ModelConfig
from .tasks import Task, as_generator, get_task

__all__ = [
    "TrainConfig",
    "LESSON_CONFIGS",
    "train",
    "training_lists",
    "held_out",
    "HeldOut",
    "evaluate",
    "predict",
    "main",
]


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

EVAL_SEED = 12345  # held-out batches: a seed no training run uses (seen lists are dropped)


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


@contextlib.contextmanager
def _reproducible(device: torch.device):
    """One CPU thread and deterministic algorithms for the duration (restored afterwards)."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if device.type == "cpu":
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def train(task: Task | str = "max", cfg: TrainConfig | None = None, device="cpu", progress=True):
    """Train a fresh model on ``task``; returns ``(model, history)``.

    The initial weights come from ``cfg.seed`` and the training batches from ``cfg.seed + 1``.
    On the CPU the run uses one thread and deterministic algorithms, so two runs on one machine give
    the same weights bit for bit. Another kind of CPU (AVX2, AVX-512, ARM) selects other kernels:
    its weights differ in the last digits, and a few hundred steps magnify that to about 1e-2, while
    the accuracy and the circuit statistics stay the same (``docs-dev/KERNEL_SPREAD.md``).
    """
    task = get_task(task) if isinstance(task, str) else task
    device = _device(device)
    with _reproducible(device):
        return _train(task, cfg, device, progress)


def _train(task: Task, cfg: TrainConfig | None, device: torch.device, progress: bool):
    cfg = cfg or LESSON_CONFIGS.get(task.name, TrainConfig())
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


def _list_codes(tokens: torch.Tensor, task: Task) -> torch.Tensor:
    """One integer per list (its numbers as digits in base ``n_numbers``), ``[batch]``."""
    numbers = tokens[:, : task.list_len].long()
    codes = torch.zeros(len(numbers), dtype=torch.long)
    for j in range(task.list_len):
        codes = codes * task.n_numbers + numbers[:, j]
    return codes


def training_lists(task: Task | str = "max", cfg: TrainConfig | None = None) -> torch.Tensor:
    """Every list a training run with ``cfg`` sees, ``[steps * batch_size, n_ctx]`` tokens.

    Replays the batch generator of :func:`train` (seed ``cfg.seed + 1``) without training.
    """
    task = get_task(task) if isinstance(task, str) else task
    cfg = cfg or LESSON_CONFIGS.get(task.name, TrainConfig())
    g = as_generator(cfg.seed + 1)
    return torch.cat([task.make_batch(cfg.batch_size, g)[0] for _ in range(cfg.steps)])


@dataclass(frozen=True)
class HeldOut:
    """Held-out lists no training list equals, and how many drawn lists were dropped to get them.

    Attributes:
        tokens: ``[n, n_ctx]`` sequences (numbers then the query token).
        targets: ``[n]`` answers.
        n_drawn: how many lists were drawn with the seed to keep ``n`` of them.
        n_seen: how many of the drawn lists occur among the training lists (dropped).
    """

    tokens: torch.Tensor
    targets: torch.Tensor
    n_drawn: int
    n_seen: int


def held_out(
    task: Task | str = "max", n: int = 10_000, seed: int = EVAL_SEED, cfg: TrainConfig | None = None
) -> HeldOut:
    """``n`` lists drawn with ``seed`` that are not among the training lists of ``cfg``.

    Lists are drawn in batches of ``n`` from one generator; a list that training saw (compared
    number by number with :func:`training_lists`) is dropped, and drawing goes on until ``n``
    new lists are kept. Repeats among the kept lists are allowed (they are new to the model).
    The dropped lists are mostly short-range ones (small maxima), which training saw many times.
    """
    task = get_task(task) if isinstance(task, str) else task
    n = check_positive_int(n, "n")
    seen = _list_codes(training_lists(task, cfg), task).unique()
    g = as_generator(seed)
    drawn, is_new = [], []
    while sum(int(m.sum()) for m in is_new) < n:
        tokens, targets = task.make_batch(n, g)
        drawn.append((tokens, targets))
        is_new.append(~torch.isin(_list_codes(tokens, task), seen))
    tokens = torch.cat([t for t, _ in drawn])
    targets = torch.cat([a for _, a in drawn])
    new = torch.cat(is_new)
    n_drawn = int(new.nonzero()[n - 1]) + 1  # drawn up to and including the n-th new list
    return HeldOut(tokens[new][:n], targets[new][:n], n_drawn, n_drawn - n)


def evaluate(model, task: Task | str = "max", n: int = 10_000, seed: int = EVAL_SEED,
             cfg: TrainConfig | None = None) -> float:
    """Accuracy at the query position on the ``n`` held-out lists of :func:`held_out`."""
    data = held_out(task, n, seed, cfg)
    return float((predict(model, data.tokens) == data.targets).double().mean())


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
