"""Checkpoints: round trip, the shipped files, and every way a file can be wrong."""

import json

import pytest
import torch
from safetensors.torch import save_file

import toymodel
from toymodel import checkpoint
from toymodel.checkpoint import load_checkpoint, load_pretrained, save_checkpoint
from toymodel.model import AttentionOnlyTransformer, ModelConfig

CFG = ModelConfig(d_vocab=9, d_model=8, d_head=4, n_heads=2, n_ctx=5, seed=1)


def test_round_trip(tmp_path):
    model = AttentionOnlyTransformer(CFG)
    path = save_checkpoint(model, "first", tmp_path / "sub" / "m.safetensors")
    loaded, task = load_checkpoint(path)
    assert task == "first" and loaded.cfg == CFG and not loaded.training
    for (name, p), q in zip(model.named_parameters(), loaded.parameters(), strict=True):
        assert torch.equal(p, q), name
    tokens = torch.randint(0, 9, (2, 5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(tokens), loaded(tokens))


@pytest.mark.parametrize("task", ["max", "first"])
def test_shipped_checkpoints_load(task):
    model = toymodel.load_pretrained(task)
    assert model.cfg.d_vocab == 49 and model.cfg.n_ctx == 7
    assert len(checkpoint.pretrained_path(task).read_bytes()) < 1_000_000


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'sort'"):
        load_pretrained("sort")
    with pytest.raises(ValueError, match="unknown task 'sort'"):
        save_checkpoint(AttentionOnlyTransformer(CFG), "sort", "unused.safetensors")


def test_missing_file_names_path(tmp_path):
    path = tmp_path / "nothing.safetensors"
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        load_checkpoint(path)


def test_missing_shipped_file(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "pretrained_path", lambda task: tmp_path / "max.safetensors")
    with pytest.raises(FileNotFoundError, match="no shipped checkpoint for task 'max'"):
        load_pretrained("max")


def test_shipped_file_for_other_task(tmp_path, monkeypatch):
    path = save_checkpoint(AttentionOnlyTransformer(CFG), "first", tmp_path / "max.safetensors")
    monkeypatch.setattr(checkpoint, "pretrained_path", lambda task: path)
    with pytest.raises(ValueError, match="trained on task 'first', not 'max'"):
        load_pretrained("max")


def test_corrupt_file(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ValueError, match="not a valid safetensors checkpoint"):
        load_checkpoint(path)


def test_truncated_file(tmp_path):
    path = save_checkpoint(AttentionOnlyTransformer(CFG), "max", tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="not a valid safetensors checkpoint"):
        load_checkpoint(path)


def _write(path, tensors, config=None, fmt=checkpoint.FORMAT):
    config = CFG.to_dict() if config is None else config
    meta = {"format": fmt, "task": "max", "config": json.dumps(config)}
    save_file(tensors, str(path), metadata=meta)
    return path


def _tensors():
    model = AttentionOnlyTransformer(CFG)
    return {k: getattr(model, k).detach().clone() for k in checkpoint.PARAM_NAMES}


def test_mismatched_tensor_shape(tmp_path):
    tensors = _tensors()
    tensors["W_U"] = torch.zeros(8, 10)
    with pytest.raises(ValueError, match=r"W_U has shape \[8, 10\], but the stored config needs"):
        load_checkpoint(_write(tmp_path / "m.safetensors", tensors))


def test_missing_tensor(tmp_path):
    tensors = _tensors()
    del tensors["W_pos"]
    with pytest.raises(ValueError, match=r"missing tensors \['W_pos'\]"):
        load_checkpoint(_write(tmp_path / "m.safetensors", tensors))


def test_not_a_toymodel_file(tmp_path):
    with pytest.raises(ValueError, match="not a toymodel checkpoint"):
        load_checkpoint(_write(tmp_path / "m.safetensors", _tensors(), fmt="other"))


def test_bad_config_in_metadata(tmp_path):
    with pytest.raises(ValueError, match="unknown model config keys"):
        load_checkpoint(_write(tmp_path / "m.safetensors", _tensors(), {"d_mlp": 3}))
