"""The weight jitter of ``make jitter`` (issue 28): a test setting that moves the last bits.

``TOYMODEL_WEIGHT_JITTER=1e-7`` multiplies every float tensor read from a shipped file by
``1 + 1e-7 * N(0, 1)``, seeded by the tensor's name: about one float32 rounding unit, the size of
the difference another CPU's kernels make (docs-dev/KERNEL_SPREAD.md).
"""

from __future__ import annotations

import os

import pytest
import torch

from toymodel import checkpoint, load_pretrained
from toymodel.checkpoint import JITTER_ENV, _jitter

W = {"W": torch.linspace(-1, 1, 10_000, dtype=torch.float32), "ids": torch.arange(5)}


def test_no_setting_no_change(monkeypatch):
    monkeypatch.delenv(JITTER_ENV, raising=False)
    assert _jitter(W) is W


def test_jitter_moves_about_one_rounding_unit(monkeypatch):
    monkeypatch.setenv(JITTER_ENV, "1e-7")
    out = _jitter(W)
    rel = ((out["W"] - W["W"]).abs() / W["W"].abs().clamp_min(1e-30)).max().item()
    changed = (out["W"] != W["W"]).float().mean().item()
    assert 0 < rel < 1e-6  # a few float32 units at most
    assert 0.2 < changed < 0.9  # many weights move, not all
    assert torch.equal(out["ids"], W["ids"])  # integers untouched
    assert torch.equal(_jitter(W)["W"], out["W"])  # seeded: the same every time


@pytest.mark.parametrize("bad", ["small", "-1e-7", "0.5"])
def test_bad_setting_is_named(monkeypatch, bad):
    monkeypatch.setenv(JITTER_ENV, bad)
    with pytest.raises(ValueError, match=JITTER_ENV):
        _jitter(W)


@pytest.mark.skipif(not os.environ.get(JITTER_ENV), reason="runs in make jitter")
def test_the_jitter_pass_took_effect(monkeypatch):
    jittered = load_pretrained("max").W_E.detach().clone()
    monkeypatch.delenv(JITTER_ENV)
    plain = load_pretrained("max").W_E.detach()
    assert not torch.equal(jittered, plain)
    assert torch.allclose(jittered, plain, rtol=1e-6, atol=0)
    assert checkpoint.JITTER_ENV == "TOYMODEL_WEIGHT_JITTER"


def test_only_shipped_files_are_jittered(monkeypatch, tmp_path):
    from toymodel.checkpoint import FORMAT, read_checkpoint_file, save_checkpoint

    monkeypatch.setenv(JITTER_ENV, "1e-7")
    model = load_pretrained("max")  # jittered: a shipped file
    path = save_checkpoint(model, "max", tmp_path / "m.safetensors")
    tensors, _ = read_checkpoint_file(path, FORMAT, "checkpoint")
    assert torch.equal(tensors["W_E"], model.W_E.detach())  # a file of the test's own: untouched
