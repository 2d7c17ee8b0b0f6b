"""A run's budget: overrides of a profile's training settings, the flags that reproduce them, and
the wall-clock limit (``--time-limit``) that ends a run at an epoch boundary."""

from __future__ import annotations

import time
from dataclasses import fields, replace


def with_budget(cfg, epochs: int | None = None, **overrides):
    """``cfg`` (a frozen training-budget dataclass of :mod:`imse_study.config`) with ``epochs`` epochs
    instead of the profile's and any other field replaced by ``overrides`` (``None`` values are
    ignored), e.g. ``lr`` or ``batch_size`` for a GPU-sized run. Unchanged when nothing is given."""
    changes = {k: v for k, v in {"epochs": epochs, **overrides}.items() if v is not None}
    unknown = sorted(set(changes) - {f.name for f in fields(cfg)})
    if unknown:
        raise ValueError(f"unknown training setting(s) {unknown}: choose from {[f.name for f in fields(cfg)]}")
    for key in ("epochs", "batch_size", "steps_per_epoch", "width", "n_blocks"):
        if key in changes and int(changes[key]) < 1:
            raise ValueError(f"{key} must be at least 1, not {changes[key]}")
    if "lr" in changes and not float(changes["lr"]) > 0:
        raise ValueError(f"lr must be positive, not {changes['lr']}")
    return replace(cfg, **changes) if changes else cfg


def budget_arguments(epochs: int | None = None, **overrides) -> list[str]:
    """The command-line flags (``--epochs 4 --lr 0.0005`` ...) that reproduce the given overrides."""
    flags = {"n_blocks": "--blocks"}
    args: list[str] = []
    for key, value in {"epochs": epochs, **overrides}.items():
        if value is not None:
            args += [flags.get(key, "--" + key.replace("_", "-")), str(value)]
    return args


def time_deadline(seconds: float | None, world: int = 1) -> float | None:
    """The ``time.perf_counter()`` moment a ``time_limit`` run stops (after the epoch it falls in).

    One process only: under torchrun the processes' clocks could disagree on the epoch to stop at.
    """
    if seconds is None:
        return None
    if not seconds > 0:
        raise ValueError(f"time_limit must be positive seconds, not {seconds}")
    if world > 1:
        raise ValueError("time_limit needs a single process; under torchrun give --epochs instead")
    return time.perf_counter() + float(seconds)


def time_is_up(deadline: float | None) -> bool:
    """Has the :func:`time_deadline` of a ``time_limit`` run passed (never, without one)?"""
    return deadline is not None and time.perf_counter() >= deadline
