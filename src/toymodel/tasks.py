"""Sequence tasks generated on the fly from a seed (nothing to download).

Every task uses the same format: ``list_len`` numbers drawn from ``[0, n_numbers)``, then one
query token (id ``n_numbers``). The model must predict the answer at the query (last) position.

* ``"max"``: the answer is the largest number of the list.
* ``"first"``: the answer is the first number of the list (a job for position, not value).

So ``d_vocab = n_numbers + 1`` and ``n_ctx = list_len + 1``. Lists are drawn so that their
maximum is uniform on ``[0, n_numbers)``: pick the maximum ``m``, fill the list with numbers drawn
uniformly from ``[0, m]``, and put ``m`` itself at a random position. Every number is then the
answer of as many lists as any other, the small ones included (with uniform lists of 6 numbers
from 48 a maximum below 24 turns up in about one list in 64, and a model would barely learn to
rank small numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._validate import check_positive_int

__all__ = ["Task", "TASKS", "get_task", "max_rule", "first_rule"]


def max_rule(numbers: torch.Tensor) -> torch.Tensor:
    """The largest number of each list: ``[batch, list_len] -> [batch]``."""
    return numbers.max(dim=1).values


def first_rule(numbers: torch.Tensor) -> torch.Tensor:
    """The first number of each list: ``[batch, list_len] -> [batch]``."""
    return numbers[:, 0]


@dataclass(frozen=True)
class Task:
    """A list-then-query task.

    Attributes:
        name: the registry name.
        n_numbers: numbers are token ids ``0 .. n_numbers - 1``.
        list_len: how many numbers precede the query token.
        rule: maps the numbers ``[batch, list_len]`` to the answers ``[batch]``.
    """

    name: str
    n_numbers: int
    list_len: int
    rule: Callable[[torch.Tensor], torch.Tensor]

    def __post_init__(self):
        check_positive_int(self.n_numbers, "n_numbers")
        check_positive_int(self.list_len, "list_len")

    @property
    def query_token(self) -> int:
        return self.n_numbers

    @property
    def d_vocab(self) -> int:
        return self.n_numbers + 1

    @property
    def n_ctx(self) -> int:
        return self.list_len + 1

    def make_batch(self, batch_size: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample a batch on the CPU.

        Args:
            batch_size: number of sequences (positive int).
            generator: a ``torch.Generator``, an int seed, or None (a fresh generator seeded 0).

        Returns:
            ``(tokens [batch, n_ctx], targets [batch])``, both ``torch.long``; the last token of
            every row is the query token.
        """
        batch_size = check_positive_int(batch_size, "batch_size")
        g = as_generator(generator)
        top = torch.randint(0, self.n_numbers, (batch_size, 1), generator=g)
        u = torch.rand(batch_size, self.list_len, generator=g)
        numbers = (u * (top + 1)).long().clamp(max=top)  # uniform on [0, top]
        where = torch.randint(0, self.list_len, (batch_size, 1), generator=g)
        numbers = numbers.scatter(1, where, top)  # top is the maximum, at a random position
        query = torch.full((batch_size, 1), self.query_token, dtype=torch.long)
        return torch.cat([numbers, query], dim=1), self.rule(numbers)


def as_generator(generator) -> torch.Generator:
    """A CPU ``torch.Generator`` from a generator, an int seed, or None (seed 0)."""
    if isinstance(generator, torch.Generator):
        return generator
    if generator is None:
        generator = 0
    if isinstance(generator, bool) or not isinstance(generator, int) or generator < 0:
        raise TypeError(
            f"generator must be a torch.Generator or a non-negative int seed, got {generator!r}"
        )
    return torch.Generator().manual_seed(generator)


TASKS: dict[str, Task] = {
    "max": Task("max", n_numbers=48, list_len=6, rule=max_rule),
    "first": Task("first", n_numbers=48, list_len=6, rule=first_rule),
}


def get_task(name: str) -> Task:
    """The registered task called ``name`` (``"max"`` or ``"first"``)."""
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]
