"""Displacement-field metrics of the IMSE paper: ||grad phi||_2 (Tables 2, 3) and Jacobian checks.

Displacement fields are ``(B, ndim, *S)`` in voxels, channel ``i`` along spatial axis ``i``
(the package-wide convention, that of MONAI's ``Warp`` and of the IMSE authors' ``Transformer2D``);
numpy arrays or torch tensors (any device).
"""

from __future__ import annotations

import numpy as np
import torch

from imse_study.losses.regularisers import gradient_loss

ArrayLike = np.ndarray | torch.Tensor

__all__ = ["gradient_loss", "gradient_smoothness", "jacobian_determinant", "nonpositive_jacobian_fraction"]


def _as_displacement(u: ArrayLike, check_finite: bool = True) -> torch.Tensor:
    """Validate a ``(B, ndim, *S)`` displacement and return it as a floating torch tensor."""
    if isinstance(u, np.ndarray):
        u = torch.from_numpy(u)
    elif not isinstance(u, torch.Tensor):
        raise TypeError(f"displacement must be a numpy array or a torch tensor, got {type(u).__name__}")
    if u.ndim not in (4, 5):
        raise ValueError(
            f"displacement has shape {tuple(u.shape)}: expected (B, ndim, *S) with ndim = 2 or 3 spatial axes"
        )
    ndim = u.ndim - 2
    if u.shape[1] != ndim:
        raise ValueError(
            f"displacement has {u.shape[1]} channels for {ndim} spatial axes: channel i must be the "
            "displacement along spatial axis i"
        )
    if min(u.shape[2:]) < 2:
        raise ValueError(f"displacement has shape {tuple(u.shape)}: every spatial axis needs at least 2 voxels")
    if not torch.is_floating_point(u):
        u = u.to(torch.get_default_dtype())
    if check_finite and not bool(torch.isfinite(u).all()):
        raise ValueError("displacement holds NaN or inf values")
    return u


def gradient_smoothness(displacement: ArrayLike) -> float:
    """The paper's ||grad phi||_2 column (Tables 2-3): ``gradient_loss`` evaluated in float64.

    Displacement ``(B, ndim, *S)`` in voxels, no spacing (the paper reports it in voxel units).
    A constant field (a translation) scores 0; u = a * x_0 on component 0 scores a^2 / ndim^2
    (d_0 = a on 1 of ndim components, 0 elsewhere, then divided by ndim).
    """
    u = _as_displacement(displacement).detach().to(torch.float64)
    return float(gradient_loss(u))


def jacobian_determinant(displacement: ArrayLike) -> torch.Tensor:
    """det(I + grad u) of the map x -> x + u(x), shape ``(B, *S)``.

    Derivatives by ``torch.gradient``: central differences inside, one-sided at the border, voxel
    units. Values <= 0 mark folding (the map is not locally invertible). Differentiable for torch
    input; numpy input gives a tensor too.
    """
    u = _as_displacement(displacement)
    ndim = u.ndim - 2
    spatial = tuple(range(1, ndim + 1))
    # J[i][j] = delta_ij + d u_i / d x_j, each (B, *S)
    grads = [torch.gradient(u[:, i], dim=spatial) for i in range(ndim)]
    J = [[grads[i][j] + (1.0 if i == j else 0.0) for j in range(ndim)] for i in range(ndim)]
    if ndim == 2:
        return J[0][0] * J[1][1] - J[0][1] * J[1][0]
    return (
        J[0][0] * (J[1][1] * J[2][2] - J[1][2] * J[2][1])
        - J[0][1] * (J[1][0] * J[2][2] - J[1][2] * J[2][0])
        + J[0][2] * (J[1][0] * J[2][1] - J[1][1] * J[2][0])
    )


def nonpositive_jacobian_fraction(displacement: ArrayLike) -> float:
    """Fraction of voxels (over the whole batch) where ``jacobian_determinant`` is <= 0 (folding)."""
    with torch.no_grad():
        det = jacobian_determinant(displacement)
    return float((det <= 0).double().mean())


def log_jacobian_std(displacement: ArrayLike, floor: float = 1e-3) -> float:
    """Standard deviation of log det(I + grad u) over all voxels of the batch, the determinant
    clamped to ``floor`` where the map folds: 0 for a rigid or constant field, growing with local
    expansion and compression (a common label-free sanity check of a registration's field)."""
    with torch.no_grad():
        det = jacobian_determinant(displacement).to(torch.float64)
    return float(torch.log(det.clamp_min(floor)).std(unbiased=False))
