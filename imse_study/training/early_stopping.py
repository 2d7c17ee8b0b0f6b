"""Early stopping on a validation column (lower is better): the best epoch and the plateau."""

from __future__ import annotations

import math
from dataclasses import dataclass


def best_epoch(history: list[dict], min_delta: float = 0.0, monitor: str = "val_l1") -> int:
    """The epoch of the best ``monitor`` value: the last one that beat every earlier best by more than
    ``min_delta`` (0 for an empty history)."""
    best, where = math.inf, 0
    for row in history:
        if row[monitor] < best - min_delta:
            best, where = row[monitor], row["epoch"]
    return where


def plateau_reached(history: list[dict], patience: int | None, min_delta: float = 0.0,
                    monitor: str = "val_l1") -> bool:
    """Early stopping: ``patience`` epochs have passed since the :func:`best_epoch` (never without ``patience``)."""
    if patience is None or not history:
        return False
    return history[-1]["epoch"] - best_epoch(history, min_delta, monitor) >= patience


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs; the
    best epoch's weights (``best.pt``) become the final model."""

    patience: int
    min_delta: float = 0.0
    monitor: str = "val_l1"

    def is_best(self, history: list[dict]) -> bool:
        """Is the last row of ``history`` the best so far?"""
        return best_epoch(history, self.min_delta, self.monitor) == history[-1]["epoch"]

    def reached(self, history: list[dict]) -> bool:
        """Has the run stopped improving?"""
        return plateau_reached(history, self.patience, self.min_delta, self.monitor)
