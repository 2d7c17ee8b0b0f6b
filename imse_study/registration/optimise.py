"""Instance optimisation (Eq. 1): fit a displacement field to one image pair by gradient descent.

``phi = argmin_phi L_sim(M o phi, T) + lambda * ||grad phi||^2`` (Eq. 1 with the smoothness term of
Eq. 7), with any :mod:`~imse_study.losses.similarity` as ``L_sim`` (IMSE included, section
4.3). The result is a displacement ``(B, ndim, *S)`` in voxels (the package convention) such that
``imse_study.warp.warp(moving, displacement)`` approximates ``target``. Two modes:

``mode="paper"`` (section 4.3, the Table 4 setting)
    A dense displacement field initialised to zero at the image's resolution, Adam with a constant
    learning rate ``lr`` (1 in the paper), ``iterations`` steps (200), loss
    ``sim + smooth_weight * Eq. 7`` (the authors' ``Tra_Registration.py``). No affine stage, one
    resolution.

``mode="multires"`` (the default; the tool's registration)
    1. Affine stage (``affine=True``): ``x -> (I + A) x + t`` in normalised coordinates (each axis
       spans [-1, 1]), so ``affine_lr`` is a fraction of the half-size of the image per step,
       whatever the image size; optimised with Adam from the identity.
    2. Deformable stage over ``levels`` levels, coarse to fine: a grid of control displacements
       with spacing ``grid_spacing * 2 ** (levels - 1 - level)`` voxels, linearly interpolated to a
       dense field (a first-order B-spline free-form deformation: the coarse grid is the
       regulariser), added to the affine displacement. Between levels the control grid is
       interpolated onto the next, finer grid. The control values are in voxels of the full image,
       so no rescaling by 2 is needed between levels. ``grid_spacing=1`` makes the last level a
       free dense field. Each level also pays ``smooth_weight * Eq. 7`` on the dense field.
    The similarity is always evaluated at full resolution: only the transform is coarse. Image
    pyramids would feed a trained evaluator images at a scale it never saw (and sizes not
    divisible by 4), so the coarse-to-fine schedule is put into the transform instead.
    ``iterations`` is the total number of optimiser steps, split evenly over the stages (the
    affine stage, if any, and each level; the remainder goes to the last level). Within a stage the
    learning rate decays along a half cosine to a tenth of its start, so the last steps refine
    rather than jitter.

``callback(step, total, loss)`` is called after every step (``step`` counts from 1 to ``total``);
returning ``False`` stops the optimisation by raising :class:`RegistrationCancelled`. Nothing in
the optimisation is random (zero initialisation, full-image losses), so no seed is taken: the same
inputs give the same field on the same device.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from typing import Any

import torch
import torch.nn.functional as F

from imse_study.losses.regularisers import gradient_loss
from imse_study.losses.similarity import SimilarityLike, check_image_tensor, check_mask, resolve_similarity
from imse_study.warp import warp

__all__ = [
    "RegistrationCancelled",
    "RegistrationResult",
    "optimise",
    "optimise_field",
    "affine_to_displacement",
    "upsample_control_grid",
    "MODES",
    "DEFAULT_SMOOTH_WEIGHT",
]

MODES = ("multires", "paper")
# Eq. 7's weight. The paper does not give it; the authors' traditional-registration config
# (IMSE-3D-Full/Yaml/Tra_Reg.yaml: smooth_w 5, sim_w 1) uses 5 with the same gradient term
# (losses.regularisers.gradient_loss, voxel units). Measured on phantom pairs (benchmarks/probe_instance.py,
# multires, MIND and MI): 5 beat 1 by 0.02-0.08 brain Dice and 20 was no better.
DEFAULT_SMOOTH_WEIGHT = 5.0
DEFAULT_AFFINE_LR = 0.01
DEFAULT_GRID_SPACING = 4

Callback = Callable[[int, int, float], "bool | None"]


class RegistrationCancelled(RuntimeError):
    """Raised when the ``callback`` returns ``False`` (e.g. the napari plugin's cancel button)."""


@dataclass
class RegistrationResult:
    """What :func:`optimise` found: all tensors detached, on the inputs' device.

    ``displacement`` is the full transform (affine + deformable) in voxels; ``affine_displacement``
    its affine part (``None`` in paper mode or with ``affine=False``); ``warped`` is
    ``warp(moving, displacement)``; ``losses`` the total loss at every step; ``seconds`` the wall
    time.
    """

    displacement: torch.Tensor
    affine_displacement: torch.Tensor | None
    warped: torch.Tensor
    losses: list[float]
    seconds: float


# ----------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------


def _check_inputs(moving: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> None:
    """Raise a ValueError naming the problem: shapes, dtype, finiteness."""
    for name, x in (("moving", moving), ("target", target)):
        check_image_tensor(name, x)
        if min(x.shape[2:]) < 2:
            raise ValueError(f"{name} {tuple(x.shape)}: every spatial axis needs at least 2 voxels")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} holds NaN or inf values; fill or mask them first")
    if moving.shape != target.shape:
        raise ValueError(f"moving {tuple(moving.shape)} and target {tuple(target.shape)} differ in shape; "
                         "resample one onto the other's grid first")
    if moving.device != target.device:
        raise ValueError(f"moving is on {moving.device} and target on {target.device}: put both on one device")
    check_mask(mask, target)


def _check_settings(mode: str, iterations: int, lr: float, smooth_weight: float, levels: int,
                    affine: bool, grid_spacing: int) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if int(iterations) < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not smooth_weight >= 0:
        raise ValueError(f"smooth_weight must be >= 0, got {smooth_weight}")
    if mode == "multires":
        if int(levels) < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        if int(grid_spacing) < 1:
            raise ValueError(f"grid_spacing must be >= 1 voxel, got {grid_spacing}")
        if int(iterations) < int(levels) + int(affine):
            raise ValueError(f"iterations ({iterations}) must be at least the number of stages "
                             f"({int(levels) + int(affine)}: affine stage and levels)")


# ----------------------------------------------------------------------------------------------
# Transform models
# ----------------------------------------------------------------------------------------------


def _normalised_grid(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(ndim, *shape) coordinates, each axis from -1 to 1 (0 for an axis of length 1)."""
    axes = [torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype) if n > 1
            else torch.zeros(1, device=device, dtype=dtype) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)


def affine_to_displacement(matrix: torch.Tensor, translation: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Voxel displacement ``(B, ndim, *shape)`` of ``x -> (I + matrix) x + translation``.

    ``matrix`` (B, ndim, ndim) and ``translation`` (B, ndim) act on normalised coordinates (each
    axis spans [-1, 1]); the result is scaled by ``(n - 1) / 2`` per axis into voxels.
    """
    grid = _normalised_grid(shape, matrix.device, matrix.dtype).flatten(1)  # (ndim, N)
    u = torch.einsum("bij,jn->bin", matrix, grid) + translation[:, :, None]
    half = torch.tensor([(n - 1) / 2.0 for n in shape], device=matrix.device, dtype=matrix.dtype)
    return (u * half[None, :, None]).view(matrix.shape[0], len(shape), *shape)


def _interp_mode(ndim: int) -> str:
    return "bilinear" if ndim == 2 else "trilinear"


def upsample_control_grid(control: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Linearly interpolate control displacements ``(B, ndim, *G)`` to a dense ``(B, ndim, *shape)``.

    Corner control points sit on the corner voxels (``align_corners=True``); values are voxels of
    the full image, so they are not rescaled.
    """
    if tuple(control.shape[2:]) == tuple(shape):
        return control
    return F.interpolate(control, size=tuple(shape), mode=_interp_mode(len(shape)), align_corners=True)


def _grid_shape(shape: tuple[int, ...], spacing: int) -> tuple[int, ...]:
    """Control points for ``spacing`` voxels between them: at least 2 per axis, at most the image's."""
    return tuple(min(n, max(2, math.ceil((n - 1) / spacing) + 1)) for n in shape)


# ----------------------------------------------------------------------------------------------
# The optimisation loop
# ----------------------------------------------------------------------------------------------


class _Stepper:
    """Counts steps across stages, records losses, reports to the callback and the progress bar."""

    def __init__(self, total: int, callback: Callback | None, progress: bool) -> None:
        self.total, self.callback, self.step, self.losses = total, callback, 0, []
        self.bar = None
        if progress:
            from imse_study.progress import progress_bar

            self.bar = progress_bar(total=total, desc="registration", leave=False)

    def done(self, loss: float) -> None:
        self.step += 1
        self.losses.append(loss)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4g}")
        if self.callback is not None and self.callback(self.step, self.total, loss) is False:
            self.close()
            raise RegistrationCancelled(f"registration cancelled by the callback at step {self.step}/{self.total}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _run_stage(params: list[torch.Tensor], loss_fn: Callable[[], torch.Tensor], steps: int, lr: float,
               stepper: _Stepper, decay: bool) -> None:
    """``steps`` Adam steps on ``params``; with ``decay`` the rate falls along a half cosine to lr/10."""
    optimiser = torch.optim.Adam(params, lr=lr)
    for k in range(steps):
        if decay and steps > 1:
            factor = 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * k / (steps - 1)))
            for group in optimiser.param_groups:
                group["lr"] = lr * factor
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the registration loss became {float(loss)} at step {stepper.step + 1}; "
                                     "lower lr or check the images")
        loss.backward()
        optimiser.step()
        stepper.done(float(loss.detach()))


def _split(total: int, parts: int) -> list[int]:
    """``total`` steps over ``parts`` stages, evenly, the remainder to the last."""
    base = total // parts
    return [base] * (parts - 1) + [total - base * (parts - 1)]


def _paper(moving, target, sim, iterations, lr, smooth_weight, mask, stepper) -> tuple[torch.Tensor, None]:
    """Section 4.3: a dense field from zero, Adam, one resolution, constant lr."""
    shape = tuple(moving.shape[2:])
    field = torch.zeros(moving.shape[0], len(shape), *shape, device=moving.device, dtype=moving.dtype,
                        requires_grad=True)

    def loss_fn() -> torch.Tensor:
        return sim(warp(moving, field), target, mask) + smooth_weight * gradient_loss(field)

    _run_stage([field], loss_fn, iterations, lr, stepper, decay=False)
    return field.detach(), None


def _affine_stage(moving, target, sim, steps, affine_lr, mask, stepper) -> torch.Tensor:
    """Optimise ``(I + A) x + t`` in normalised coordinates; returns its voxel displacement."""
    batch, shape = moving.shape[0], tuple(moving.shape[2:])
    ndim = len(shape)
    matrix = torch.zeros(batch, ndim, ndim, device=moving.device, dtype=moving.dtype, requires_grad=True)
    shift = torch.zeros(batch, ndim, device=moving.device, dtype=moving.dtype, requires_grad=True)

    def loss_fn() -> torch.Tensor:
        return sim(warp(moving, affine_to_displacement(matrix, shift, shape)), target, mask)

    _run_stage([matrix, shift], loss_fn, steps, affine_lr, stepper, decay=True)
    with torch.no_grad():
        return affine_to_displacement(matrix, shift, shape)


def _multires(moving, target, sim, iterations, lr, smooth_weight, levels, affine, affine_lr, grid_spacing,
              mask, stepper) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Affine stage (optional), then control grids coarse to fine (module docstring)."""
    batch, shape = moving.shape[0], tuple(moving.shape[2:])
    steps = _split(iterations, levels + int(affine))
    base = torch.zeros(batch, len(shape), *shape, device=moving.device, dtype=moving.dtype)
    affine_field = None
    if affine:
        affine_field = _affine_stage(moving, target, sim, steps.pop(0), affine_lr, mask, stepper)
        base = affine_field
    control = None
    for level in range(levels):
        grid = _grid_shape(shape, grid_spacing * 2 ** (levels - 1 - level))
        if control is None:
            start = torch.zeros(batch, len(shape), *grid, device=moving.device, dtype=moving.dtype)
        else:
            start = F.interpolate(control, size=grid, mode=_interp_mode(len(shape)), align_corners=True)
        control = start.detach().clone().requires_grad_(True)

        def loss_fn(control: torch.Tensor = control) -> torch.Tensor:
            dense = upsample_control_grid(control, shape)
            return sim(warp(moving, base + dense), target, mask) + smooth_weight * gradient_loss(dense)

        _run_stage([control], loss_fn, steps[level], lr, stepper, decay=True)
    with torch.no_grad():
        return base + upsample_control_grid(control.detach(), shape), affine_field


def optimise(
    moving: torch.Tensor,
    target: torch.Tensor,
    similarity: str | SimilarityLike,
    iterations: int = 200,
    lr: float = 1.0,
    smooth_weight: float = DEFAULT_SMOOTH_WEIGHT,
    mode: str = "multires",
    levels: int = 3,
    affine: bool = True,
    mask: torch.Tensor | None = None,
    progress: bool = False,
    callback: Callback | None = None,
    affine_lr: float = DEFAULT_AFFINE_LR,
    grid_spacing: int = DEFAULT_GRID_SPACING,
) -> RegistrationResult:
    """Register ``moving`` to ``target`` (both ``(B, 1, *S)``, 2D or 3D) by Eq. 1; see the module docstring.

    ``similarity``: a :class:`~imse_study.losses.similarity.Similarity`, any callable
    ``(warped, target, mask) -> loss``, or a name for :func:`~imse_study.losses.similarity.similarity`
    with default options. ``lr`` is the deformable stage's Adam rate in voxels per step;
    ``affine_lr`` the affine stage's (normalised units); ``levels``, ``affine``, ``grid_spacing``
    apply to ``mode="multires"`` only. ``mask`` restricts the similarity to a region of the target.
    Runs on the inputs' device (a similarity that is an ``nn.Module`` is moved there); every sample of
    the batch gets its own transform.
    """
    _check_inputs(moving, target, mask)
    _check_settings(mode, iterations, lr, smooth_weight, levels, affine, grid_spacing)
    sim = resolve_similarity(similarity)
    if isinstance(sim, torch.nn.Module):  # its networks (an evaluator, a translator) go where the images are
        sim.to(moving.device)
    moving, target = moving.detach(), target.detach()
    mask = None if mask is None else mask.detach().to(moving.device)
    stepper = _Stepper(int(iterations), callback, progress)
    start = time.perf_counter()
    try:
        with torch.enable_grad():
            if mode == "paper":
                field, affine_field = _paper(moving, target, sim, int(iterations), lr, smooth_weight, mask, stepper)
            else:
                field, affine_field = _multires(moving, target, sim, int(iterations), lr, smooth_weight,
                                                int(levels), bool(affine), affine_lr, int(grid_spacing), mask,
                                                stepper)
    finally:
        stepper.close()
    with torch.no_grad():
        warped = warp(moving, field)
    return RegistrationResult(field, affine_field, warped, stepper.losses, time.perf_counter() - start)


def optimise_field(
    moving: torch.Tensor,
    target: torch.Tensor,
    similarity: str | SimilarityLike,
    iterations: int = 200,
    lr: float = 1.0,
    smooth_weight: float = DEFAULT_SMOOTH_WEIGHT,
    **options: Any,
) -> torch.Tensor:
    """Eq. 1: the displacement ``(B, ndim, *S)`` in voxels with ``warp(moving, it) ~ target``.

    The same as :func:`optimise` (whose keyword ``options`` it accepts: mode, levels, affine, mask,
    progress, callback, ...) but returns the displacement only.
    """
    return optimise(moving, target, similarity, iterations=iterations, lr=lr, smooth_weight=smooth_weight,
                    **options).displacement
