"""The inverse of a displacement field, by fixed-point iteration.

Written by hand: ITK's ``InvertDisplacementFieldImageFilter`` (the same fixed-point scheme) works on
ITK images on the CPU and is no dependency of this package; this one works on torch fields
``(B, ndim, *S)`` in voxels, batched, on any device, with :func:`~imse_study.warp.warp`'s convention.
"""

from __future__ import annotations

import torch

from imse_study.warp import warp

__all__ = ["invert_displacement"]


def invert_displacement(displacement: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """The displacement ``v`` with ``warp(warp(x, u), v) ~ x`` for ``u = displacement``.

    ``warp(warp(x, u), v)[p] = x[p + v(p) + u(p + v(p))]``, so ``v(p) = -u(p + v(p))``: solved by
    fixed-point iteration from ``v = -u`` (it converges for fields whose Jacobian stays well away
    from folding, as the paper's random transforms do).
    """
    if not isinstance(displacement, torch.Tensor) or displacement.ndim not in (4, 5) \
            or displacement.shape[1] != displacement.ndim - 2:
        raise ValueError("displacement must be a tensor (B, ndim, *S) with ndim 2 or 3, got "
                         f"{tuple(displacement.shape) if isinstance(displacement, torch.Tensor) else type(displacement).__name__}")
    u = displacement.detach()
    v = -u
    for _ in range(int(iterations)):
        v = -warp(u, v, mode="bilinear", padding_mode="border")
    return v
