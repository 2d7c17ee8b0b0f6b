"""Seeding: initial weights from the run's seed, and one random generator per training step.

Each step draws its randomness from a generator seeded by (seed, rank, step), so a run resumed from
its last checkpoint continues exactly as if it had not stopped, and no step depends on how many
random numbers an earlier one drew.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The random generator of one training step of process ``rank``."""
    state = np.random.SeedSequence([seed, rank, step]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def seeded_init(seed: int, build: Callable[[], T]) -> T:
    """Build a model with its initial weights drawn from ``seed``, leaving global RNG state alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
