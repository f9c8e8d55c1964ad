"""The at-scale lesson's tools and its GPT-2 switch.

``toymodel.hf.load_language_model``: one loader for the book's language models and GPT-2;
``toymodel.experiments.head_stats``: the statistics of every head; and lesson 06 with
``REAL_GPT2 = True``, run offline on a small GPT-2.

Nothing is downloaded: GPT-2 is a small configuration with seeded random weights saved in a
temporary folder, and stands in for the real weights only in these tests.
"""

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from toymodel import circuits, experiments, hf
from toymodel.text import findings, lm

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "07_at_scale.ipynb"
SNIPPET = "    def get(self, request):\n        return self.render(request)\n"


@pytest.fixture(scope="module")
def one():
    return hf.load_language_model("one_layer")


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    pytest.importorskip("transformers")
    from toymodel import hf

    return hf.save_small_gpt2(tmp_path_factory.mktemp("gpt2") / "small", seed=0, n_layer=12,
                              n_head=12, n_embd=96, vocab_size=2000, n_positions=64)


def test_shipped_models_are_the_files_that_exist():
    names = hf.shipped_language_models()
    assert names[0] == "one_layer"
    assert names == [n for n in lm.CONFIGS if lm.lm_path(n).is_file()]


def test_book_model_loads_in_the_gpt2_layout(one):
    assert (one.n_layers, one.n_heads, one.d_head, one.d_vocab) == (1, 8, 16, 2048)
    assert one.weights["W_V"].dtype == torch.float64 and one.weights["W_V"].shape == (1, 8, 128, 16)
    assert not one.is_gpt2 and "ln_eps" not in one.weights
    assert len(one.token_names) == one.d_vocab and one.token_names[one.encode("·self")[0]]
    torch.testing.assert_close(one.weights["W_V"][0], one.model.W_V.double())


def test_the_weight_check_reproduces_the_book_model_and_catches_a_wrong_weight(one):
    tokens = torch.tensor([one.encode(SNIPPET)])
    assert hf.check_weights(one, tokens) < 1e-5
    saved = one.weights32["W_O"].clone()
    try:
        one.weights32["W_O"][0, 3] *= 1.5  # a wrong mapping of one head
        assert hf.check_weights(one, tokens) > 1e-2
    finally:
        one.weights32["W_O"].copy_(saved)


def test_the_weight_check_follows_shortformer_positions_into_queries_and_keys(tmp_path):
    """A model whose positions enter only the queries and keys (``positional="shortformer"``):
    the recomputed layers match only if ``W_pos_qk`` is added where the model adds it."""
    from toymodel.model import AttentionOnlyTransformer, ModelConfig

    cfg = ModelConfig(d_vocab=2048, d_model=32, d_head=8, n_heads=4, n_ctx=64, n_layers=2,
                      positional="shortformer")
    model = AttentionOnlyTransformer(cfg)
    with torch.no_grad():
        model.W_pos.mul_(20.0)  # positions that move the patterns
    path = lm.save_lm(model, lm.CONFIGS["two_layer_plain"], tmp_path / "short.safetensors")
    m = hf.load_language_model("two_layer_plain", path=path)
    assert "W_pos_qk" in m.weights32
    tokens = torch.tensor([m.encode(SNIPPET)])
    assert hf.check_weights(m, tokens) < 1e-5
    del m.weights32["W_pos_qk"]  # positions forgotten: the check must notice
    assert hf.check_weights(m, tokens) > 1e-3


def test_head_stats_equal_the_language_lesson_and_a_direct_computation(one):
    s = experiments.head_stats(one.weights)
    scores, _ = findings.copying_scores(one.model)  # lesson 05's own route
    np.testing.assert_allclose(s["copying"].numpy(), scores, atol=1e-9)
    w = one.weights
    for h in (0, 5):
        full = (w["W_E"] @ w["W_V"][0, h]) @ (w["W_O"][0, h] @ w["W_U"])  # [d_vocab, d_vocab]
        top1 = (full.argmax(1) == torch.arange(one.d_vocab)).double().mean()
        assert float(s["ov_top1"][0, h]) == pytest.approx(float(top1), abs=1e-12)
        P = w["W_pos"]
        table = (P @ w["W_Q"][0, h]) @ (P @ w["W_K"][0, h]).T
        table = table.masked_fill(torch.ones_like(table, dtype=torch.bool).triu(1), -float("inf"))
        best = table[1:].argmax(1)
        dest = torch.arange(1, P.shape[0])
        assert float(s["pos_self"][0, h]) == pytest.approx(float((best == dest).double().mean()))
        assert float(s["pos_prev"][0, h]) == pytest.approx(float((best == dest - 1).double().mean()))
    assert s["qk_self_z"].shape == (1, 8)


def test_head_stats_extremes_and_bad_input(one):
    s = experiments.head_stats(one.weights, top1_heads="extremes")
    assert int(torch.isfinite(s["ov_top1"]).sum()) == 2
    best = divmod(int(s["copying"].flatten().argmax()), 8)
    assert torch.isfinite(s["ov_top1"][best])
    with pytest.raises(ValueError, match="top1_heads"):
        experiments.head_stats(one.weights, top1_heads="some")
    with pytest.raises(ValueError, match="W_pos"):
        experiments.head_stats({k: v for k, v in one.weights.items() if k != "W_pos"})
    with pytest.raises(ValueError, match="n_layers, n_heads"):
        experiments.head_stats({**one.weights, "W_V": one.weights["W_V"][0]})
    with pytest.raises(ValueError, match="unknown model"):
        hf.load_language_model("three_layer")
    with pytest.raises(TypeError):
        hf.load_language_model(1)
    with pytest.raises(ValueError, match="positive integer"):
        experiments.random_heads_baseline(one.weights, n=0)


def test_random_heads_sit_near_zero_and_are_seeded(one):
    a = experiments.random_heads_baseline(one.weights, n=100, seed=3)
    b = experiments.random_heads_baseline(one.weights, n=100, seed=3)
    assert torch.equal(a, b) and a.shape == (100,)
    assert abs(float(a.mean())) < 0.05 and float(a.abs().max()) < 0.6
    assert float(experiments.head_stats(one.weights)["copying"].max()) > float(a.max())


def test_gpt2_goes_through_the_same_interface(gpt2_folder):
    g = hf.load_language_model("gpt2", path=gpt2_folder)
    assert g.is_gpt2 and (g.n_layers, g.n_heads, g.d_vocab) == (12, 12, 2000)
    tokens = torch.tensor([g.encode(SNIPPET)])
    assert 0 <= int(tokens.max()) < g.d_vocab
    assert hf.check_weights(g, tokens) < 1e-4
    s = experiments.head_stats(g.weights, top1_heads="extremes")
    direct = circuits.copying_score(g.weights["W_E"], g.weights["W_V"], g.weights["W_O"],
                                    g.weights["W_U"])
    torch.testing.assert_close(s["copying"], direct)
    assert s["pos_self"].shape == (12, 12)


def test_the_lesson_runs_with_the_gpt2_switch(gpt2_folder):
    """``REAL_GPT2 = True`` with the small GPT-2 standing in for the download: every cell runs,
    GPT-2 joins the book's models, and the literature and LayerNorm cells print their results."""
    from nbclient import NotebookClient

    nb = nbformat.read(str(LESSON), as_version=4)
    setup = next(c for c in nb.cells if c.get("id") == "g3-setup")
    assert "REAL_GPT2 = False" in setup.source
    setup.source = setup.source.replace("REAL_GPT2 = False", "REAL_GPT2 = True") + (
        "\n_load = hf.load_language_model\n"
        "hf.load_language_model = lambda name, path=None, device='cpu': _load(\n"
        f"    name, {str(gpt2_folder)!r} if name == 'gpt2' else path, device)\n")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(LESSON.parent)}}).execute()
    out = {c.get("id"): "".join(o.get("text", "") for o in c.get("outputs", []))
           for c in nb.cells if c.cell_type == "code"}
    assert "gpt2: a GPT-2 loaded from the folder" in out["g3-load"]
    assert "folded W_U = diag(g_f) W_E^T: True" in out["g3-load"]
    assert "gpt2: all 12 layer(s) reproduced" in out["g3-check"]
    assert "L10H7 (negative name mover, copy suppression)" in out["g3-lit"]
    assert "gpt2, head L" in out["g3-rows"]
    assert "same patterns and outputs: True" in out["g3-ln"]


def test_the_offline_lesson_prints_no_literature_comparison():
    nb = json.loads(LESSON.read_text(encoding="utf-8"))
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                   for o in c.get("outputs", []))
    assert "name mover" not in text and "random weights" not in text
    assert "one_layer: the book's one-layer language model" in text
    assert "no comparison with the literature" in text
