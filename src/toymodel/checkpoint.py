"""Save and load models as safetensors files (weights only, never pickle).

The file holds the seven weight matrices under their TransformerLens names and, in the
safetensors metadata (a dict of strings), the model config as JSON, the task name and a format
version. :func:`load_pretrained` reads the checkpoints shipped inside the package
(``toymodel/data/<task>.safetensors``) with :mod:`importlib.resources`, so it works from a wheel,
an editable install or Colab alike.
"""

from __future__ import annotations

import json
import os
import zlib
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .model import AttentionOnlyTransformer, ModelConfig
from .tasks import get_task

__all__ = ["save_checkpoint", "load_checkpoint", "load_pretrained", "pretrained_path"]

FORMAT = "toymodel-aot-1"
# A test setting, never set by a reader: when this environment variable holds a relative size
# (make jitter uses 1e-7, about one float32 rounding unit), every float tensor read from a shipped
# file is multiplied by ``1 + size * N(0, 1)`` (seeded by the tensor's name). It moves the last
# bits of every result the way another CPU's kernels do, so an output that prints more digits
# than the models can promise changes and fails nbval (docs-dev/KERNEL_SPREAD.md).
JITTER_ENV = "TOYMODEL_WEIGHT_JITTER"
PARAM_NAMES = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_U")
LAYER_PARAMS = ("W_Q", "W_K", "W_V", "W_O")  # one per layer: stacked ``[layer, ...]`` in a file


def save_checkpoint(model: AttentionOnlyTransformer, task: str, path) -> Path:
    """Write ``model``'s weights and config (plus the task name) to ``path`` (.safetensors)."""
    if not isinstance(model, AttentionOnlyTransformer):
        raise TypeError(f"model must be an AttentionOnlyTransformer, got {type(model).__name__}")
    get_task(task)  # unknown task names fail here, not when loading
    path = Path(path)
    tensors = {k: getattr(model, k).detach().cpu().contiguous() for k in PARAM_NAMES}
    metadata = {"format": FORMAT, "task": task, "config": json.dumps(model.cfg.to_dict())}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_checkpoint(path, device=None) -> tuple[AttentionOnlyTransformer, str]:
    """Read a checkpoint written by :func:`save_checkpoint`; returns ``(model, task_name)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a valid toymodel safetensors checkpoint, or its tensors do not
            match the stored config.
    """
    path = Path(path)
    tensors, metadata = read_checkpoint_file(path, FORMAT, "toymodel checkpoint")
    try:
        cfg = ModelConfig.from_dict(json.loads(metadata["config"]))
        task = metadata["task"]
    except (KeyError, json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{path} has a bad config in its metadata: {err}") from None
    model = AttentionOnlyTransformer(cfg)
    _load_weights(model, tensors, path)
    if device is not None:
        model = model.to(device)
    return model.eval(), task


def read_checkpoint_file(path: Path, fmt: str, what: str) -> tuple[dict, dict]:
    """Tensors and metadata of a safetensors file whose metadata says ``format == fmt``.

    Raises FileNotFoundError when there is no file, ValueError (naming ``what`` was expected) when
    it is not a valid safetensors file or has another format. Never unpickles anything.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a valid safetensors checkpoint: {err}") from None
    if metadata.get("format") != fmt:
        raise ValueError(f"{path} is not a {what} (format {metadata.get('format')!r})")
    return (_jitter(tensors) if _shipped(path) else tensors), metadata


def _shipped(path: Path) -> bool:
    """Whether ``path`` is one of the files shipped in ``toymodel/data/`` (the jitter's scope: a
    file a test has just written reads back unchanged)."""
    data = Path(str(resources.files("toymodel") / "data")).resolve()
    return Path(path).resolve().is_relative_to(data)


def _jitter(tensors: dict) -> dict:
    """``tensors`` unchanged, or perturbed as :data:`JITTER_ENV` asks (a test setting)."""
    raw = os.environ.get(JITTER_ENV, "")
    if not raw:
        return tensors
    try:
        size = float(raw)
    except ValueError:
        raise ValueError(
            f"{JITTER_ENV} must be a relative size such as 1e-7, got {raw!r}") from None
    if not 0 <= size < 1e-3:
        raise ValueError(f"{JITTER_ENV} must lie in [0, 1e-3), got {size}")
    out = {}
    for name, t in tensors.items():
        if t.is_floating_point():
            g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            noise = torch.randn(t.shape, generator=g, dtype=torch.float64)
            t = (t.double() * (1 + size * noise)).to(t.dtype)
        out[name] = t
    return out


def _load_weights(model: AttentionOnlyTransformer, tensors: dict, path: Path):
    missing = [k for k in PARAM_NAMES if k not in tensors]
    extra = sorted(set(tensors) - set(PARAM_NAMES))
    if missing or extra:
        raise ValueError(f"{path}: missing tensors {missing}, unexpected tensors {extra}")
    with torch.no_grad():
        for name in PARAM_NAMES:
            param, value = getattr(model, name), tensors[name]
            if value.shape != param.shape:
                raise ValueError(
                    f"{path}: tensor {name} has shape {list(value.shape)}, but the stored config "
                    f"needs {list(param.shape)}"
                )
            if name in LAYER_PARAMS and model.cfg.n_layers > 1:
                # ``model.W_Q`` is then a stacked copy: write each layer's own parameter
                for block, v in zip(model.blocks, value, strict=True):
                    getattr(block.attn, name).copy_(v)
            else:
                param.copy_(value)


def pretrained_path(task: str = "max"):
    """Where the checkpoint shipped for ``task`` lives (an importlib.resources Traversable)."""
    get_task(task)
    return resources.files("toymodel") / "data" / f"{task}.safetensors"


def load_pretrained(task: str = "max", device=None) -> AttentionOnlyTransformer:
    """The model trained on ``task`` that ships with the package, in eval mode.

    Args:
        task: a task name of :data:`toymodel.tasks.TASKS` (``"max"`` or ``"first"``).
        device: where to put the weights (default: the CPU).
    """
    ref = pretrained_path(task)
    with resources.as_file(ref) as path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no shipped checkpoint for task {task!r} at {path}")
        model, stored = load_checkpoint(path, device=device)
    if stored != task:
        raise ValueError(f"checkpoint {path} was trained on task {stored!r}, not {task!r}")
    return model
