"""A task that needs induction, a two-layer model trained on it, and head detectors.

**The task.** A sequence starts with a beginning-of-sequence token ``BOS`` (id ``n_tokens``).
Somewhere after it a run of ``L`` random tokens appears twice in a row (``L`` drawn from
``[min_len, max_len]``, the run's start drawn at random too); every other position holds a random
token, and no token appears twice in a row's sequence except through the repeat. The loss scores
the next-token prediction at each position of the second copy except its last, so the model
must predict the second copy from the first: at a token ``A`` it looks back for the earlier
``A`` and predicts the token that followed it. Because the run's length and start vary, no fixed
positional offset solves the task; a one-layer model cannot do it, a two-layer model learns
**induction**: a previous-token head in layer 0 writes "my previous token was A" into every
position, and an induction head in layer 1 whose query is "A" finds the key that says so.

**The detectors** read attention patterns (scaled, causally masked, softmaxed rows) on
sequences ``BOS, r, r`` where ``r`` is a run of distinct random tokens:

* previous-token score: the mean weight of destination ``p`` on source ``p - 1``;
* duplicate-token score: the mean weight of a second-copy position on the same token's first copy;
* induction score: the mean weight of a second-copy position on the token *after* the first copy.

:func:`weight_detectors` gives the matching statements from the weights alone.

Command line (writes the shipped checkpoint)::

    python -m toymodel.induction --out src/toymodel/data/induction.safetensors
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from . import circuits
from ._validate import check_positive_int
from .checkpoint import read_checkpoint_file
from .model import AttentionOnlyTransformer, ModelConfig
from .tasks import as_generator
from .train import History, _device, _reproducible

__all__ = [
    "InductionTask",
    "TASK",
    "InductionConfig",
    "LESSON_CONFIG",
    "EVAL_SEED",
    "train_induction",
    "repeated_tokens",
    "induction_accuracy",
    "second_copy_accuracy",
    "HeadScores",
    "head_scores",
    "weight_detectors",
    "save_induction_checkpoint",
    "load_induction_checkpoint",
    "load_induction_model",
    "main",
]

EVAL_SEED = 12345  # detector and accuracy sequences: a seed no training run uses


@dataclass(frozen=True)
class InductionTask:
    """Random runs repeated once, after a ``BOS`` token (see the module docstring).

    Attributes:
        n_tokens: the random tokens are ids ``0 .. n_tokens - 1``; ``BOS`` is ``n_tokens``.
        n_ctx: sequence length, ``BOS`` included.
        min_len, max_len: the repeated run's length is drawn from ``[min_len, max_len]``.
    """

    n_tokens: int = 48
    n_ctx: int = 24
    min_len: int = 4
    max_len: int = 11

    def __post_init__(self):
        for name in ("n_tokens", "n_ctx", "min_len", "max_len"):
            check_positive_int(getattr(self, name), name)
        if not 2 <= self.min_len <= self.max_len:
            raise ValueError(f"need 2 <= min_len <= max_len, got {self.min_len}, {self.max_len}")
        if 1 + 2 * self.max_len > self.n_ctx:
            raise ValueError(f"two runs of max_len = {self.max_len} and BOS need n_ctx >= "
                             f"{1 + 2 * self.max_len}, got {self.n_ctx}")
        if self.n_tokens < self.n_ctx - 1 - self.max_len:
            raise ValueError(f"n_tokens = {self.n_tokens} is too small for distinct tokens")

    @property
    def bos(self) -> int:
        return self.n_tokens

    @property
    def d_vocab(self) -> int:
        return self.n_tokens + 1

    def make_batch(self, batch_size: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample training sequences on the CPU.

        Args:
            batch_size: number of sequences.
            generator: a ``torch.Generator``, an int seed, or None (seed 0).

        Returns:
            ``(tokens [batch, n_ctx], scored [batch, n_ctx])``: ``scored[b, p]`` is True where the
            prediction at position ``p`` (of ``tokens[b, p + 1]``) counts in the loss.
        """
        batch_size = check_positive_int(batch_size, "batch_size")
        g = as_generator(generator)
        C = self.n_ctx
        L = torch.randint(self.min_len, self.max_len + 1, (batch_size, 1), generator=g)
        k = (torch.rand(batch_size, 1, generator=g) * (C - 2 * L)).long()  # in [0, C-1-2L]
        perm = torch.rand(batch_size, self.n_tokens, generator=g).argsort(-1)  # distinct tokens
        i = torch.arange(C - 1)[None]
        # body[i] = filler perm[L + i] before the run, the run perm[:L] twice, filler after
        j = torch.where(i < k, L + i, torch.where(
            i < k + L, i - k, torch.where(i < k + 2 * L, i - k - L, i - L)))
        body = torch.gather(perm, 1, j)
        tokens = torch.cat([torch.full((batch_size, 1), self.bos), body], dim=1)
        p = torch.arange(C)[None]
        second = 1 + k + L  # position of the second copy's first token
        return tokens, (p >= second) & (p <= second + L - 2)


TASK = InductionTask()


def repeated_tokens(n: int, half_len: int | None = None, seed: int = EVAL_SEED,
                    task: InductionTask = TASK) -> torch.Tensor:
    """Sequences ``BOS, r, r`` with ``r`` a run of ``half_len`` distinct random tokens.

    Args:
        n: number of sequences.
        half_len: the run's length (default ``task.max_len``).
        seed: the generator's seed.

    Returns:
        tokens ``[n, 1 + 2 * half_len]``.
    """
    n = check_positive_int(n, "n")
    half_len = task.max_len if half_len is None else check_positive_int(half_len, "half_len")
    if half_len > task.n_tokens or 1 + 2 * half_len > task.n_ctx:
        raise ValueError(f"half_len must be at most {min(task.n_tokens, (task.n_ctx - 1) // 2)}")
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, task.n_tokens, generator=g).argsort(-1)[:, :half_len]
    return torch.cat([torch.full((n, 1), task.bos), r, r], dim=1)


@dataclass(frozen=True)
class InductionConfig:
    """Model sizes and optimiser settings of one training run."""

    d_model: int = 32
    d_head: int = 4
    n_heads: int = 2
    n_layers: int = 2
    steps: int = 800
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 0.01
    seed: int = 0


#: The settings that made the shipped checkpoint.
LESSON_CONFIG = InductionConfig()


def _loss(model, tokens, scored) -> torch.Tensor:
    logits = model(tokens)[:, :-1]  # [batch, pos - 1, d_vocab]
    keep = scored[:, :-1]
    return torch.nn.functional.cross_entropy(logits[keep], tokens[:, 1:][keep])


def train_induction(cfg: InductionConfig = LESSON_CONFIG, task: InductionTask = TASK,
                    device="cpu", progress: bool = True):
    """Train a fresh model on the induction task; returns ``(model, history)``.

    Initial weights come from ``cfg.seed`` and batches from ``cfg.seed + 1``. On the CPU the run
    uses one thread and deterministic algorithms (as :func:`toymodel.train.train` does), so two runs
    on one machine give the same weights bit for bit. Another kind of CPU selects other kernels and
    trains other weights (up to 15% apart, relative: ``docs-dev/KERNEL_SPREAD.md``) that form the
    same circuit: the accuracy and the head scores agree to two decimals. On a GPU likewise.
    """
    if not isinstance(cfg, InductionConfig):
        raise TypeError(f"cfg must be an InductionConfig, got {type(cfg).__name__}")
    device = _device(device)
    model_cfg = ModelConfig(d_vocab=task.d_vocab, d_model=cfg.d_model, d_head=cfg.d_head,
                            n_heads=cfg.n_heads, n_ctx=task.n_ctx, seed=cfg.seed,
                            n_layers=cfg.n_layers)
    history = History()
    with _reproducible(device):  # one CPU thread, deterministic algorithms
        model = AttentionOnlyTransformer(model_cfg).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        g = as_generator(cfg.seed + 1)
        start = time.perf_counter()
        bar = tqdm(range(cfg.steps), desc="train induction", disable=not progress)
        for _ in bar:
            tokens, scored = task.make_batch(cfg.batch_size, g)
            loss = _loss(model, tokens.to(device), scored.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.loss.append(loss.item())
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}", refresh=False)
        history.seconds = time.perf_counter() - start
    return model.eval(), history


@torch.no_grad()
def induction_accuracy(model: AttentionOnlyTransformer, n: int = 2000, seed: int = EVAL_SEED,
                       hooks=None, tokens=None) -> float:
    """Top-1 accuracy on the second copy of ``BOS, r, r`` (every position that has a next token).

    Args:
        model: a trained model.
        n, seed: how many sequences of :func:`repeated_tokens` to draw, and from which seed.
        hooks: optional hooks passed to the forward pass (see :meth:`run_with_cache`).
        tokens: optional ``[batch, 1 + 2 L]`` sequences to use instead.
    """
    tokens = repeated_tokens(n, seed=seed) if tokens is None else tokens
    return second_copy_accuracy(model(tokens, hooks=hooks), tokens)


def second_copy_accuracy(logits: torch.Tensor, tokens: torch.Tensor) -> float:
    """Top-1 accuracy of ``logits [batch, 1 + 2 L, d_vocab]`` on the second copy of ``BOS, r, r``.

    Scores the predictions at positions ``L + 1 .. 2 L - 1`` (of the tokens at ``L + 2 .. 2 L``):
    every position of the second copy that has a next token.
    """
    if tokens.ndim != 2 or logits.shape[:2] != tokens.shape or tokens.shape[1] % 2 == 0:
        raise ValueError(f"need logits [batch, 1 + 2 L, d_vocab] and tokens [batch, 1 + 2 L], "
                         f"got {list(logits.shape)} and {list(tokens.shape)}")
    L = (tokens.shape[1] - 1) // 2
    pred = logits[:, L + 1:2 * L].argmax(-1).cpu()
    return float((pred == tokens[:, L + 2:].cpu()).double().mean())


@dataclass
class HeadScores:
    """Attention-pattern scores ``[layer, head]`` of every head (each a mean weight in [0, 1])."""

    previous_token: torch.Tensor
    duplicate_token: torch.Tensor
    induction: torch.Tensor


def head_scores(pattern: torch.Tensor) -> HeadScores:
    """Detector scores from the patterns of ``BOS, r, r`` sequences.

    Args:
        pattern: ``[batch, layer, head, dest, src]`` on sequences of length ``1 + 2 L`` made by
            :func:`repeated_tokens` (``run_with_pattern`` of a model with two or more layers).

    Returns:
        :class:`HeadScores`: previous-token over every destination ``p >= 1`` (source ``p - 1``);
        duplicate-token and induction over the second copy ``p = L + 1 .. 2 L`` (sources
        ``p - L`` and ``p - L + 1``).
    """
    if not isinstance(pattern, torch.Tensor) or pattern.ndim != 5:
        raise ValueError("pattern must be a tensor [batch, layer, head, dest, src], got "
                         f"{getattr(pattern, 'shape', type(pattern).__name__)}")
    n = pattern.shape[-1]
    if pattern.shape[-2] != n or n % 2 == 0 or n < 3:
        raise ValueError(
            f"pattern must be square over 1 + 2 L positions, got {list(pattern.shape)}")
    L = (n - 1) // 2
    p = torch.arange(1, n)
    q = torch.arange(L + 1, 2 * L + 1)
    pat = pattern.detach().cpu().double()
    return HeadScores(
        previous_token=pat[..., p, p - 1].mean((0, -1)),
        duplicate_token=pat[..., q, q - L].mean((0, -1)),
        induction=pat[..., q, q - L + 1].mean((0, -1)),
    )


@torch.no_grad()
def weight_detectors(model: AttentionOnlyTransformer, task: InductionTask = TASK) -> dict:
    """What each head's weights say, without running the model, ``{name: tensor}``.

    * ``"previous_token"``: fraction of destinations ``p >= 1`` whose best allowed source under
      the positional QK circuit ``W_pos W_QK W_pos^T`` (sources ``<= p``) is ``p - 1``.
    * ``"duplicate_token"``: fraction of random tokens whose own column is the largest of their
      row of the token QK circuit ``W_E W_QK W_E^T`` (rows and columns: the random tokens).
    * ``"copying"``: fraction of random tokens whose own logit tops their row of the full OV
      circuit ``W_E W_OV W_U`` (an induction head must copy what it finds).
    * ``"copying_combined"`` ``[layer]``: the same for the sum of a layer's full OV circuits
      (what the layer's heads copy together when they attend to the same source).

    All computed in float64 on the CPU.
    """
    W = {k: getattr(model, k).detach().cpu().double() for k in ("W_E", "W_pos", "W_U")}
    W_QK = _stack(model, "W_QK")  # [layer, head, d_model, d_model]
    W_E = W["W_E"][: task.n_tokens]
    pos = W["W_pos"] @ W_QK @ W["W_pos"].T  # [layer, head, dest, src]
    n = pos.shape[-1]
    pos = pos.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    prev = (pos[..., 1:, :].argmax(-1) == torch.arange(n - 1)).double().mean(-1)
    tok = W_E @ W_QK @ W_E.T  # [layer, head, token, token]
    dup = (tok.argmax(-1) == torch.arange(task.n_tokens)).double().mean(-1)
    W_V, W_O = _stack(model, "W_V"), _stack(model, "W_O")
    n_layers, n_heads = W_V.shape[:2]
    W_U = W["W_U"][:, : task.n_tokens]
    copying = circuits.ov_top1_accuracy(W_E, W_V.flatten(0, 1), W_O.flatten(0, 1),
                                        W_U).view(n_layers, n_heads)
    combined = torch.tensor([circuits.ov_top1_accuracy(W_E, W_V[i], W_O[i], W_U,
                                                       combine_heads=True)
                             for i in range(n_layers)], dtype=torch.float64)
    return {"previous_token": prev, "duplicate_token": dup, "copying": copying,
            "copying_combined": combined}


def _stack(model: AttentionOnlyTransformer, name: str) -> torch.Tensor:
    """``[layer, head, ...]`` float64 CPU copy of a weight, for any number of layers."""
    return torch.stack([getattr(b.attn, name).detach().cpu().double() for b in model.blocks])


# ------------------------------------------------------------------------------------------------
# checkpoints: safetensors with TransformerLens parameter names
# ------------------------------------------------------------------------------------------------

FORMAT = "toymodel-aot-layers-1"


def save_induction_checkpoint(model: AttentionOnlyTransformer, path,
                              task: InductionTask = TASK) -> Path:
    """Write weights (``W_E``, ``W_pos``, ``blocks.{l}.attn.W_Q`` ..., ``W_U``) and configs."""
    if not isinstance(model, AttentionOnlyTransformer):
        raise TypeError(f"model must be an AttentionOnlyTransformer, got {type(model).__name__}")
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "task": "induction", "config": json.dumps(model.cfg.to_dict()),
                "task_config": json.dumps(asdict(task))}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_induction_checkpoint(path, device=None) -> tuple[AttentionOnlyTransformer, InductionTask]:
    """Read a checkpoint of :func:`save_induction_checkpoint`; returns ``(model, task)``."""
    path = Path(path)
    tensors, metadata = read_checkpoint_file(path, FORMAT, "toymodel n-layer checkpoint")
    try:
        cfg = ModelConfig.from_dict(json.loads(metadata["config"]))
        task = InductionTask(**json.loads(metadata["task_config"]))
    except (KeyError, json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{path} has a bad config in its metadata: {err}") from None
    model = AttentionOnlyTransformer(cfg)
    want = {k: list(v.shape) for k, v in model.state_dict().items()}
    got = {k: list(v.shape) for k, v in tensors.items()}
    if want != got:
        raise ValueError(f"{path}: tensors {got} do not match the stored config {want}")
    model.load_state_dict(tensors)
    if device is not None:
        model = model.to(device)
    return model.eval(), task


def load_induction_model(device=None) -> AttentionOnlyTransformer:
    """The two-layer model trained on :data:`TASK` that ships with the package, in eval mode."""
    ref = resources.files("toymodel") / "data" / "induction.safetensors"
    with resources.as_file(ref) as path:
        return load_induction_checkpoint(path, device=device)[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the two-layer induction model.")
    parser.add_argument("--out", required=True, help="checkpoint path (.safetensors)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)
    model, history = train_induction(LESSON_CONFIG, device=args.device)
    acc = induction_accuracy(model)
    save_induction_checkpoint(model.cpu(), args.out)
    print(f"induction: {LESSON_CONFIG.steps} steps in {history.seconds:.1f} s, "
          f"accuracy on repeated runs {acc:.4f}")
    print(f"wrote {args.out}")
    return model


if __name__ == "__main__":
    main()
