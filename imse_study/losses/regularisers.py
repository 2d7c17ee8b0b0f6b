"""Regularisers of the displacement field: the smoothness term of Eq. 7.

:func:`gradient_loss` is the ``lambda * ||grad phi||^2`` term that VoxelMorph training (Eq. 6-7,
:mod:`imse_study.registration.learned`) and classic optimisation (Eq. 1,
:mod:`imse_study.registration.optimise`) add to the similarity; :func:`imse_study.metrics.gradient_smoothness`
reports it in float64 as the paper's ``||grad phi||_2`` column.
"""

from __future__ import annotations

import torch

__all__ = ["gradient_loss"]


def _check_displacement(u: torch.Tensor) -> torch.Tensor:
    """``u`` if it is a floating ``(B, ndim, *S)`` tensor with 2 or 3 spatial axes of >= 2 voxels (ints become
    floats); a one-line ValueError otherwise. Values are not checked: a NaN propagates, as in any torch loss."""
    if not isinstance(u, torch.Tensor):
        raise TypeError(f"displacement must be a torch tensor, got {type(u).__name__}")
    if u.ndim not in (4, 5):
        raise ValueError(
            f"displacement has shape {tuple(u.shape)}: expected (B, ndim, *S) with ndim = 2 or 3 spatial axes")
    if u.shape[1] != u.ndim - 2:
        raise ValueError(f"displacement has {u.shape[1]} channels for {u.ndim - 2} spatial axes: channel i must be "
                         "the displacement along spatial axis i")
    if min(u.shape[2:]) < 2:
        raise ValueError(f"displacement has shape {tuple(u.shape)}: every spatial axis needs at least 2 voxels")
    return u if torch.is_floating_point(u) else u.to(torch.get_default_dtype())


def gradient_loss(displacement: torch.Tensor) -> torch.Tensor:
    """Differentiable smoothness term of Eq. 7, ||grad phi||^2, as a scalar tensor.

    With forward differences d_a = u[x + e_a] - u[x] along each spatial axis a (voxels), this is
    ``sum_a mean(d_a^2) / ndim`` where each mean runs over batch, all ``ndim`` components and all
    voxels where d_a is defined: VoxelMorph's ``Grad('l2')`` (``loss_mult=None``), which the IMSE
    authors' ``smooth_loss`` follows. (Their code divides by 3 in 2D too, so their 2D values are
    2/3 of this; in 3D they are equal.)
    """
    u = _check_displacement(displacement)
    terms = [torch.diff(u, dim=axis).pow(2).mean() for axis in range(2, u.ndim)]
    return torch.stack(terms).sum() / len(terms)
