"""Sequence tasks: format, answers, seeding, errors."""

import pytest
import torch

from toymodel.tasks import TASKS, Task, get_task, max_rule


@pytest.mark.parametrize("name", sorted(TASKS))
def test_batch_format(name):
    task = get_task(name)
    tokens, targets = task.make_batch(500, 0)
    assert tokens.shape == (500, task.n_ctx) and targets.shape == (500,)
    assert tokens.dtype == targets.dtype == torch.long
    assert torch.all(tokens[:, -1] == task.query_token)
    numbers = tokens[:, :-1]
    assert numbers.min() >= 0 and numbers.max() < task.n_numbers
    assert task.d_vocab == task.n_numbers + 1 and task.n_ctx == task.list_len + 1


def test_max_and_first_answers():
    tokens, targets = get_task("max").make_batch(200, 1)
    assert torch.equal(targets, tokens[:, :-1].max(1).values)
    tokens, targets = get_task("first").make_batch(200, 1)
    assert torch.equal(targets, tokens[:, 0])


def test_every_number_is_sometimes_the_max():
    task = get_task("max")
    _, targets = task.make_batch(20_000, 2)
    counts = torch.bincount(targets, minlength=task.n_numbers)
    assert counts.min() > 0.7 * 20_000 / task.n_numbers  # the maximum is uniform


def test_seeded_batches_repeat_and_differ():
    task = get_task("max")
    a, b = task.make_batch(64, 7), task.make_batch(64, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0])
    assert not torch.equal(a[0], task.make_batch(64, 8)[0])
    g = torch.Generator().manual_seed(7)
    assert not torch.equal(task.make_batch(64, g)[0], task.make_batch(64, g)[0])


def test_errors():
    with pytest.raises(ValueError, match=r"unknown task 'min'; choose one of \['first', 'max'\]"):
        get_task("min")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        get_task("max").make_batch(0, 0)
    with pytest.raises(TypeError, match="torch.Generator or a non-negative int seed"):
        get_task("max").make_batch(4, "seed")
    with pytest.raises(ValueError, match="list_len must be a positive integer"):
        Task("bad", n_numbers=5, list_len=0, rule=max_rule)
