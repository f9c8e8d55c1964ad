"""Training: loss goes down, runs repeat exactly, the lesson config reaches the targets, CLI."""

import pytest
import torch

from toymodel.checkpoint import load_checkpoint
from toymodel.experiments import (
    agreement,
    block_query_self,
    circuit_stats,
    negate_qk,
    permute_outputs,
    random_permutation,
)
from toymodel.tasks import get_task
from toymodel.train import EVAL_SEED, LESSON_CONFIGS, TrainConfig, evaluate, main, train

SHORT = TrainConfig(d_model=16, d_head=8, steps=30, batch_size=128, seed=5)


def test_short_run_learns_and_repeats():
    a, hist = train("max", SHORT, progress=False)
    b, _ = train("max", SHORT, progress=False)
    assert len(hist.loss) == 30 and hist.seconds > 0
    assert sum(hist.loss[-5:]) < sum(hist.loss[:5])
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_lesson_config_from_scratch_meets_targets():
    model, hist = train("max", LESSON_CONFIGS["max"], progress=False)
    assert evaluate(model, "max", n=4000) >= 0.99
    stats = circuit_stats(model, get_task("max"))
    assert stats.qk_spearman >= 0.95
    assert stats.copying_score >= 0.9 and stats.ov_top1 >= 0.9
    # the independence experiments hold for the retrained model too
    task = get_task("max")
    tokens, targets = task.make_batch(2000, EVAL_SEED)
    perm = random_permutation(task.n_numbers, seed=0)
    assert agreement(permute_outputs(model, perm), tokens, perm[targets]) >= 0.95
    mins = tokens[:, :-1].min(dim=1).values
    assert agreement(negate_qk(model), tokens, mins, score_hook=block_query_self) >= 0.95


def test_evaluate_counts_hits_on_held_out_lists():
    model, _ = train("max", SHORT, progress=False)
    task = get_task("max")
    tokens, targets = task.make_batch(500, EVAL_SEED)
    with torch.no_grad():
        manual = (model(tokens)[:, -1].argmax(-1) == targets).double().mean().item()
    assert evaluate(model, "max", n=500) == manual
    assert not torch.equal(tokens, task.make_batch(500, SHORT.seed + 1)[0])  # not a training batch


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
