"""Training: loss goes down, runs repeat exactly, retraining gives the shipped checkpoints bit for
bit, held-out lists are new, the lesson config reaches the targets, CLI."""

import pytest
import torch

import toymodel
from toymodel.checkpoint import PARAM_NAMES, load_checkpoint
from toymodel.experiments import (
    agreement,
    block_query_self,
    circuit_stats,
    negate_qk,
    permute_outputs,
    random_permutation,
)
from toymodel.tasks import get_task
from toymodel.train import (
    EVAL_SEED,
    LESSON_CONFIGS,
    TrainConfig,
    evaluate,
    held_out,
    main,
    train,
    training_lists,
)

SHORT = TrainConfig(d_model=16, d_head=8, steps=30, batch_size=128, seed=5)


def test_short_run_learns_and_repeats():
    a, hist = train("max", SHORT, progress=False)
    b, _ = train("max", SHORT, progress=False)
    assert len(hist.loss) == 30 and hist.seconds > 0
    assert sum(hist.loss[-5:]) < sum(hist.loss[:5])
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.fixture(scope="module")
def retrained():
    """The lesson models trained from scratch, on a thread count other than training's own."""
    threads = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        return {t: train(t, LESSON_CONFIGS[t], progress=False)[0] for t in ("max", "first")}
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("task", ["max", "first"])
def test_retraining_gives_the_shipped_checkpoint_bit_for_bit(retrained, task):
    shipped = toymodel.load_pretrained(task)
    for name in PARAM_NAMES:
        assert torch.equal(getattr(retrained[task], name), getattr(shipped, name)), name


def test_training_restores_the_thread_setting():
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        train("max", TrainConfig(d_model=8, d_head=4, steps=2, batch_size=8), progress=False)
        assert torch.get_num_threads() == 3
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(threads)


def test_held_out_lists_are_not_training_lists():
    task = get_task("max")
    seen = {tuple(r) for r in training_lists(task)[:, : task.list_len].tolist()}
    assert len(training_lists(task)) == LESSON_CONFIGS["max"].steps * LESSON_CONFIGS["max"].batch_size
    data = held_out(task, n=3000)
    assert data.tokens.shape == (3000, task.n_ctx) and data.targets.shape == (3000,)
    assert not any(tuple(r) in seen for r in data.tokens[:, : task.list_len].tolist())
    assert torch.equal(data.targets, task.rule(data.tokens[:, : task.list_len]))
    assert (data.tokens[:, -1] == task.query_token).all()
    # a fresh seed alone repeats training lists: the held-out set had to drop some
    g = torch.Generator().manual_seed(EVAL_SEED)  # held_out draws batches of n from one generator
    raw = torch.cat([task.make_batch(3000, g)[0] for _ in range(2)])[: data.n_drawn]
    repeats = sum(tuple(r) in seen for r in raw[:, : task.list_len].tolist())
    assert data.n_seen == repeats > 0 and data.n_drawn - data.n_seen == 3000
    # the lists kept are exactly the unseen ones among those drawn, in order
    unseen = torch.tensor([tuple(r) not in seen for r in raw[:, : task.list_len].tolist()])
    assert torch.equal(data.tokens, raw[unseen])


def test_held_out_for_another_config():
    cfg = TrainConfig(steps=3, batch_size=64, seed=9)
    seen = {tuple(r) for r in training_lists("first", cfg)[:, :6].tolist()}
    data = held_out("first", n=500, seed=1, cfg=cfg)
    assert not any(tuple(r) in seen for r in data.tokens[:, :6].tolist())
    with pytest.raises(ValueError, match="n"):
        held_out("max", n=0)


def test_lesson_config_from_scratch_meets_targets(retrained):
    model = retrained["max"]
    assert evaluate(model, "max", n=4000) >= 0.99
    stats = circuit_stats(model, get_task("max"))
    assert stats.qk_spearman >= 0.95
    assert stats.copying_score >= 0.9 and stats.ov_top1 >= 0.9
    # the independence experiments hold for the retrained model too
    task = get_task("max")
    data = held_out(task, n=2000)
    tokens, targets = data.tokens, data.targets
    perm = random_permutation(task.n_numbers, seed=0)
    assert agreement(permute_outputs(model, perm), tokens, perm[targets]) >= 0.95
    mins = tokens[:, :-1].min(dim=1).values
    assert agreement(negate_qk(model), tokens, mins, score_hook=block_query_self) >= 0.95


def test_evaluate_counts_hits_on_held_out_lists():
    model, _ = train("max", SHORT, progress=False)
    task = get_task("max")
    data = held_out(task, n=500)
    with torch.no_grad():
        manual = (model(data.tokens)[:, -1].argmax(-1) == data.targets).double().mean().item()
    assert evaluate(model, "max", n=500) == manual


def test_cli_writes_loadable_checkpoint(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    main(["--task", "first", "--out", str(out), "--steps", "3", "--seed", "2"])
    model, task = load_checkpoint(out)
    assert task == "first" and model.cfg.seed == 2
    assert "held-out accuracy" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_request_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        train("max", SHORT, device="cuda", progress=False)


def test_lesson_retrain_cell_reproduces_the_shipped_model():
    """Lesson 02's ``RETRAIN = True`` path, run as written (imports cell, then the retrain cell)."""
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).parents[1] / "notebooks" / "02_one_layer_model.ipynb").read_text())
    source = {c.get("id"): "".join(c["source"]) for c in nb["cells"]}
    setup = source["bbc3c5c9"].replace("RETRAIN = False", "RETRAIN = True")
    assert "RETRAIN = True" in setup
    namespace = {"toymodel": toymodel}
    exec(setup, namespace)  # noqa: S102 - the lesson's own cells
    exec(source["3e3825ef"], namespace)  # noqa: S102 - the lesson's retrain cell
    shipped = toymodel.load_pretrained("max")
    for name in PARAM_NAMES:
        assert torch.equal(getattr(namespace["model"], name), getattr(shipped, name)), name
