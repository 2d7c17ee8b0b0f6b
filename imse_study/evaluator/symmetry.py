"""Test-time flip averaging of an evaluator: ``E`` averaged over mirror images of its input pair.

A trained evaluator is only approximately equivariant to mirroring: its pooling and up-sampling
layers can leave it a small directional bias, so that the minimum of ``mean |E(x, warp(y, s))|``
over shifts ``s`` of an ALIGNED pair sits a fraction of a pixel off ``s = 0`` in one consistent
direction (measured with ``benchmarks/imse_shift_bias.py``). Mirroring both images turns that bias
around, so averaging ``flip(E(flip(x), flip(y)))`` with ``E(x, y)`` cancels it to first order while
leaving a true misalignment's prediction unchanged (Eq. 5's label ``x2 - x1`` mirrors with the
images). ``"point"`` mirrors every axis at once (one extra pass: a constant bias vector reverses);
``"axes"`` averages all ``2**dim`` combinations of axis mirrors.
"""

from __future__ import annotations

from itertools import combinations

import torch
from torch import nn

from imse_study.training import unwrap

FLIPS = ("none", "point", "axes")


def flip_groups(dim: int, flips: str) -> list[tuple[int, ...]]:
    """The tensor dims mirrored by each pass (``()`` is the plain pass) for ``dim`` spatial axes."""
    if flips not in FLIPS:
        raise ValueError(f"flips must be one of {FLIPS}, not {flips!r}")
    axes = tuple(range(2, 2 + dim))
    if flips == "none":
        return [()]
    if flips == "point":
        return [(), axes]
    return [c for k in range(dim + 1) for c in combinations(axes, k)]


class FlipAveraged(nn.Module):
    """``E(reference, other)`` averaged over the mirror images of :func:`flip_groups` (same shape out)."""

    def __init__(self, evaluator: nn.Module, flips: str = "point") -> None:
        super().__init__()
        self.evaluator = evaluator
        self.flips = flips
        inner = unwrap(evaluator)
        self.dim = getattr(inner, "dim", None)
        if hasattr(inner, "meta"):
            self.meta = inner.meta
        flip_groups(self.dim or 2, flips)  # validates ``flips``

    def forward(self, reference: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        groups = flip_groups(reference.dim() - 2, self.flips)
        total = 0
        for dims in groups:
            if dims:
                total = total + torch.flip(self.evaluator(torch.flip(reference, dims), torch.flip(other, dims)), dims)
            else:
                total = total + self.evaluator(reference, other)
        return total / len(groups)
