"""The two-layer measurements (toymodel.text.two_layer) on small models, and their errors."""

import numpy as np
import pytest
import torch

from toymodel.model import AttentionOnlyTransformer, ModelConfig
from toymodel.text import two_layer


@pytest.fixture(scope="module")
def tiny():
    return AttentionOnlyTransformer(
        ModelConfig(d_vocab=40, d_model=16, d_head=4, n_heads=3, n_ctx=32, n_layers=2, seed=1))


def test_repeated_random_is_eos_then_two_equal_copies_without_eos():
    x = two_layer.repeated_random(40, eos=7, half=10, n=5, seed=3)
    assert x.shape == (5, 21) and (x[:, 0] == 7).all() and (x[:, 1:] != 7).all()
    assert torch.equal(x[:, 1:11], x[:, 11:])
    assert torch.equal(x, two_layer.repeated_random(40, eos=7, half=10, n=5, seed=3))
    with pytest.raises(ValueError, match="eos"):
        two_layer.repeated_random(40, eos=40)
    with pytest.raises(ValueError, match="half"):
        two_layer.repeated_random(40, eos=0, half=1)


def test_measure_shapes_and_the_heads_it_picks(tiny):
    x = two_layer.repeated_random(40, eos=0, half=12, n=4)
    m = two_layer.measure(tiny, x)
    assert m.previous_token.shape == m.induction.shape == (2, 3)
    assert m.k_composition.shape == (3, 3) and m.loss.shape == (24,)
    assert m.prev_head == int(np.argmax(m.previous_token[0]))
    assert m.ind_head == int(np.argmax(m.induction[1]))
    first, second = two_layer.copy_losses(torch.as_tensor(m.loss), 12)
    assert (first, second) == pytest.approx((m.loss_first, m.loss_second), rel=1e-6)
    assert 0 < m.k_baseline < 1


def test_mean_ablation_of_a_layer0_head_changes_layer1_patterns(tiny):
    x = two_layer.repeated_random(40, eos=0, half=12, n=4)
    base = two_layer.measure(tiny, x)
    out = two_layer.ablated(tiny, x, layer=0, head=1)
    assert out["induction"].shape == (3,)
    assert not np.allclose(out["induction"], base.induction[1])
    with pytest.raises(ValueError, match="no head 0.3"):
        two_layer.ablated(tiny, x, layer=0, head=3)


def test_errors_name_what_was_expected(tiny):
    one = AttentionOnlyTransformer(ModelConfig(d_vocab=40, d_model=16, d_head=4, n_heads=3,
                                               n_ctx=32, n_layers=1))
    x = two_layer.repeated_random(40, eos=0, half=12, n=2)
    with pytest.raises(ValueError, match="2 layers, got 1"):
        two_layer.measure(one, x)
    with pytest.raises(TypeError, match="AttentionOnlyTransformer"):
        two_layer.measure("model", x)
    with pytest.raises(ValueError, match=r"shape \[24\]"):
        two_layer.copy_losses(torch.zeros(10), 12)



# ---------------------------------------------------------------------------------------------
# The shipped two-layer language model: issue 24's bar, on the weights as shipped
# (benchmarks/check_two_layer.py asks the same of a search run)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    from toymodel.text import lm
    from toymodel.text import tokenizer as T

    model, log = lm.load_lm("two_layer", with_log=True)
    eos = T.load_tokenizer().token_to_id(T.EOS)
    half = min(50, (model.cfg.n_ctx - 1) // 2)
    rep = two_layer.repeated_random(model.cfg.d_vocab, eos, half=half, n=32)
    return model, log, rep, two_layer.measure(model, rep)


def test_shipped_file_holds_the_config_that_made_it():
    import json
    from importlib import resources

    from safetensors import safe_open

    from toymodel.text import lm

    with resources.as_file(lm.lm_path("two_layer")) as p, safe_open(str(p), "pt") as f:
        stored = json.loads(f.metadata()["lm_config"])
        size = p.stat().st_size
    assert lm.LMConfig.from_dict(stored) == lm.CONFIGS["two_layer"]
    with resources.as_file(lm.lm_path("one_layer")) as q:
        assert size + q.stat().st_size < 20e6  # the language models together


def test_a_layer1_head_is_an_induction_head_and_the_second_copy_is_easy(shipped):
    _, _, _, m = shipped
    assert m.induction[1].max() >= 0.3, m.induction
    assert m.loss_second <= m.loss_first - 1.0, (m.loss_first, m.loss_second)
    assert m.induction[0].max() < 0.1  # layer 0 cannot: it sees only tokens and positions


def test_the_induction_head_k_composes_with_the_previous_token_head(shipped):
    _, _, _, m = shipped
    a = int(m.previous_token[0].argmax())
    assert m.previous_token[0, a] > 0.3
    assert m.k_composition[a, m.ind_head] > m.k_baseline
    assert int(m.k_composition[:, m.ind_head].argmax()) == a


def test_ablating_the_previous_token_head_removes_induction(shipped):
    model, _, rep, m = shipped
    a = int(m.previous_token[0].argmax())
    out = two_layer.ablated(model, rep, layer=0, head=a)
    assert out["induction"][m.ind_head] < 0.5 * m.induction[1, m.ind_head]
    assert out["loss_second"] > m.loss_second + 1.0
    others = [two_layer.ablated(model, rep, layer=0, head=h)["loss_second"]
              for h in range(model.cfg.n_heads) if h != a]
    assert max(others) < out["loss_second"]  # no other layer-0 head matters as much


def test_the_log_dates_the_phase_change(shipped):
    _, log, _, m = shipped
    ind = [e["induction"] for e in log]
    assert ind[0] < 0.1 and max(ind) >= 0.3
    assert ind[-1] == pytest.approx(float(m.induction[1].max()), abs=0.02)


# ---------------------------------------------------------------------------------------------
# Plain text (issue 31): the card of natural-text measurements, its bars, and the shipped model
# trained with nothing planted
# ---------------------------------------------------------------------------------------------


def test_natural_text_card_measures_every_head_and_picks_the_best_candidate(tiny):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 40, (4000,), generator=g).numpy()
    w = two_layer.text_windows(ids, n=50, length=32)
    card = two_layer.natural_text_card(tiny, w, ids, eos=0)
    assert card.by_position.shape == (31,) and card.loss == pytest.approx(card.by_position.mean(),
                                                                          rel=1e-5)
    assert card.prev.shape == card.continuation.shape == card.induction.shape == (3,)
    assert card.head == int(np.argmax(np.minimum(card.continuation, card.induction)))
    assert set(card.ablation) == {"at_targets", "elsewhere", "n_targets"}
    s, h = card.summary(), card.head
    assert (s["prev"], s["cont"], s["ind"]) == (card.prev.max(), card.continuation[h],
                                                card.induction[h])
    assert s["cont_max"] >= s["cont"] and s["ind_max"] >= s["ind"] and s["loss"] == card.loss
    assert s["abl_targets"] == card.ablation["at_targets"] and len(s) == 9
    one = two_layer.position_losses(tiny, w) + 1.0  # a baseline one nat worse everywhere
    verdicts = two_layer.bar_verdicts(card, one)
    assert len(verdicts) == len(two_layer.BARS) + 1
    loss_row = verdicts[3]
    assert loss_row[1] == card.loss and loss_row[3] is True  # lower than a baseline 1 nat worse
    assert verdicts[0][3] == (card.prev.max() >= two_layer.BARS["prev"])
    icl_row = verdicts[4]  # the baseline's late-minus-early equals the card's: no 0.1 gain
    assert icl_row[3] is False and icl_row[1] == pytest.approx(card.icl)
    table = two_layer.format_verdicts(verdicts).splitlines()
    assert len(table) == len(verdicts)
    assert "holds" in table[3] and "not met" in table[4] and f"{card.loss:5.2f}" in table[3]


def test_predicted_emergence_is_the_law_and_refuses_empty_batches():
    # Aoyama et al. (2025): about 10^5.7 * sqrt(B*C) tokens; B*C = 1024 gives about 16 M
    assert two_layer.predicted_emergence(8, 128) == pytest.approx(16.04e6, rel=1e-3)
    assert two_layer.predicted_emergence(64, 64) == pytest.approx(
        2 * two_layer.predicted_emergence(8, 128))
    with pytest.raises(ValueError, match="positive batch size and context length"):
        two_layer.predicted_emergence(0, 128)


def test_natural_text_card_needs_two_layers():
    one = AttentionOnlyTransformer(ModelConfig(d_vocab=40, d_model=16, d_head=4, n_heads=3,
                                               n_ctx=32, n_layers=1))
    w = two_layer.text_windows(np.arange(1, 40).repeat(20), n=4, length=16)
    with pytest.raises(ValueError, match="2 layers, got 1"):
        two_layer.natural_text_card(one, w, np.arange(1, 40).repeat(20), eos=0)


def test_shipped_plain_text_model_has_nothing_planted():
    """The file's metadata says how it was made: repeat fraction 0, positions added to the
    queries and keys only (said in the file's config, so an outside forward pass can follow it),
    the recipe of lm.CONFIGS, and a log that ends where the file was taken."""
    import json
    from importlib import resources

    from safetensors import safe_open

    from toymodel.text import lm, more_text

    with resources.as_file(lm.lm_path("two_layer_plain")) as p, safe_open(str(p), "pt") as f:
        meta = f.metadata()
        shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    cfg = lm.LMConfig.from_dict(json.loads(meta["lm_config"]))
    assert cfg == lm.CONFIGS["two_layer_plain"]
    assert cfg.extra["repeat_fraction"] == 0.0 and "repeat_mode" not in cfg.extra
    assert json.loads(meta["config"])["positional"] == "shortformer"
    assert cfg.extra["more_text"] == [f"{s.package}=={s.version}" for s in more_text.SOURCES]
    assert shapes["W_Q"] == [2, 8, 256, 32] and shapes["W_O"] == [2, 8, 32, 256]
    assert shapes["W_E"] == [2048, 256] and shapes["W_U"] == [256, 2048]
    assert shapes["W_pos"] == [128, 256]
    log = json.loads(meta["log"])
    assert log[-1]["step"] == cfg.steps == lm.PLAIN_STEPS
    assert all(e["tokens"] == e["step"] * cfg.batch * cfg.model.n_ctx for e in log)
    assert [e["step"] for e in log] == sorted({e["step"] for e in log})
    for key in ("text_loss", "icl", "text_prev", "continuation", "induction", "prev_token"):
        assert all(key in e for e in log), key


def test_shipped_plain_one_layer_model_is_the_same_recipe_with_one_layer():
    """The comparison of the plain-text two-layer model: the same text, sizes, positions,
    schedule and number of tokens, one layer, nothing planted; its log holds the loss and the
    in-context-learning score on the same held-out windows."""
    import dataclasses
    import json
    from importlib import resources

    from safetensors import safe_open

    from toymodel.text import lm

    with resources.as_file(lm.lm_path("one_layer_plain")) as p, safe_open(str(p), "pt") as f:
        meta = f.metadata()
        shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    cfg = lm.LMConfig.from_dict(json.loads(meta["lm_config"]))
    two = lm.CONFIGS["two_layer_plain"]
    assert cfg == lm.CONFIGS["one_layer_plain"]
    assert dataclasses.replace(cfg, name=two.name,
                               model=dataclasses.replace(cfg.model, n_layers=2)) == two
    assert json.loads(meta["config"])["positional"] == "shortformer"
    assert shapes["W_Q"] == [8, 256, 32] and shapes["W_E"] == [2048, 256]
    log = json.loads(meta["log"])
    assert log[-1]["step"] == cfg.steps and log[-1]["tokens"] == cfg.steps * cfg.batch * cfg.model.n_ctx
    assert all("text_loss" in e and "icl" in e for e in log)
