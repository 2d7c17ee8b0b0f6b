"""Reference rows from established tools: ANTs SyN (antspyx) and elastix (itk-elastix), both with MI.

The IMSE paper compares only learned similarity terms; these two classical, mutual-information driven
registrations are our extra reference rows. Both tools are optional dependencies (``pip install
antspyx itk-elastix``); they are imported on first use and a missing one raises ``ImportError``
naming the package.

Inputs and outputs
------------------
``moving`` and ``target`` are one image each, 2D ``(H, W)`` or 3D ``(D, H, W)``, as numpy arrays or
torch tensors ``(*S)`` or ``(1, 1, *S)`` (intensities in [-1, 1] in this package, any finite range is
accepted). ``spacing`` is the voxel size in mm per array axis (default 1). Each image is min-max
scaled to [0, 1] before it reaches a tool: mutual information does not change under that (the
histogram bins follow each image's own range), and it keeps ANTs' centre-of-mass initialisation
well defined (a [-1, 1] image with a -1 background has a near-zero, sign-changing "mass").

The result is converted to the package's convention (:mod:`imse_study.warp`): a displacement
``(1, ndim, *S)`` in VOXELS, channel ``i`` along array axis ``i``, such that
``warp(moving, displacement)[p] = moving[p + displacement(p)]`` reproduces the tool's own resampled
moving image. How: both tools get images with origin 0, identity direction and the given spacing;
each tool then writes out its own dense deformation field on the target grid (ANTs:
``ants.apply_transforms(..., compose=...)``, the composite of every stage, initial transform
included; elastix: ``itk.transformix_deformation_field``). That field is ``T(x) - x`` in physical
units, where ``T`` maps a target-space point ``x`` to the moving-space point that is sampled there.
It is divided by the spacing per axis; its vector components are put in array-axis order (antspyx
arrays are indexed in ITK's (x, y, z) order, the same as ours one to one; itk arrays are indexed
(z, y, x), so the components are reversed). The tests check the conversion against each tool's
own warped image in 2D and 3D and against known translations.

Both tools pad with 0 (= the image minimum after scaling, i.e. the background) outside the moving
image; :func:`imse_study.warp.warp` pads with the border value. ``ExternalResult.warped`` is
``warp(moving, displacement)`` (bilinear, border), the tool's own image is kept in
``ExternalResult.tool_warped`` (mapped back to the input's intensity range).

Reproducibility: a fixed seed is passed to each tool. ANTs reads a random seed of 0 as "seed from the
clock", so ``seed=k`` is passed to ANTs as ``--random-seed k+1``; elastix gets ``RandomSeed k``.
Results are reproducible for a given seed and number of threads (multi-threaded sums may round
differently with another thread count). ``threads`` sets the number of ITK threads: for elastix
through ``itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads`` for the duration of the call
(itk-elastix's own ``number_of_threads`` argument segfaults above 1 thread with the multi-metric
B-spline map: ITKElastix issues #160 and #295); for ANTs (a separate ITK inside antspyx) through
``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` during the call, which that library may read only once per
process, so set it on the first call (or in the environment) to be sure.
"""

from __future__ import annotations

import inspect

import contextlib
import math
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from imse_study.warp import warp

__all__ = [
    "METHODS",
    "ExternalResult",
    "ants_parameters",
    "ants_register",
    "elastix_parameter_maps",
    "elastix_register",
    "register_external",
]

METHODS = ("ants", "elastix")
_LOCK = threading.Lock()  # the tools' seeds / thread counts are process-global settings


@dataclass(frozen=True)
class ExternalResult:
    """One registration by an external tool.

    Attributes:
        displacement: ``(1, ndim, *S)`` float32, voxels, channel ``i`` along array axis ``i``.
        warped: ``warp(moving, displacement)`` ``(1, 1, *S)``, bilinear with border padding, in the
            input's intensity units.
        seconds: wall-clock seconds of the whole call (image set-up, the tool's registration, its
            deformation-field output and the conversion), not counting the import of the tool.
        method: ``"ants"`` or ``"elastix"``.
        tool_warped: the tool's own resampled moving image ``(1, 1, *S)`` (linear interpolation,
            0-padding outside the moving image, i.e. the moving image's minimum), input units.
        parameters: every setting passed to the tool (see :func:`ants_parameters`,
            :func:`elastix_parameter_maps`), for the provenance of a results table.
    """

    displacement: torch.Tensor
    warped: torch.Tensor
    seconds: float
    method: str = ""
    tool_warped: torch.Tensor | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------


def _as_array(x, what: str) -> np.ndarray:
    """One image ``(*S)`` as float64 numpy; ``(1, 1, *S)`` tensors/arrays are squeezed."""
    if isinstance(x, torch.Tensor):
        arr = x.detach().cpu().to(torch.float64).numpy()
    elif isinstance(x, np.ndarray):
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"{what} must hold real numbers, got dtype {x.dtype}")
        arr = x.astype(np.float64)
    else:
        raise TypeError(f"{what} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if arr.ndim in (4, 5):
        if arr.shape[0] != 1 or arr.shape[1] != 1:
            raise ValueError(
                f"{what} must be one image, (*S) or (1, 1, *S) with 2 or 3 spatial axes; got shape "
                f"{tuple(arr.shape)} (batches and channels are not supported: register one pair "
                f"at a time)"
            )
        arr = arr[0, 0]
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{what} must be 2D (H, W) or 3D (D, H, W), or (1, 1, *S); got shape {tuple(arr.shape)}"
        )
    if min(arr.shape) < 8:
        raise ValueError(f"{what} is too small for a multi-resolution registration: {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{what} has {bad} NaN or infinite values; replace them before registering")
    if float(arr.max() - arr.min()) <= 0:
        raise ValueError(f"{what} is constant: there is nothing to register (no contrast for MI)")
    return arr


def _check_inputs(moving, target, spacing) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    mov = _as_array(moving, "moving")
    tgt = _as_array(target, "target")
    if mov.shape != tgt.shape:
        raise ValueError(
            f"moving {mov.shape} and target {tgt.shape} must have the same shape (resample one "
            f"onto the other's grid first)"
        )
    ndim = mov.ndim
    if spacing is None:
        sp = (1.0,) * ndim
    else:
        if isinstance(spacing, (int, float)):
            spacing = (spacing,) * ndim
        sp = tuple(float(s) for s in spacing)
        if len(sp) != ndim or not all(math.isfinite(s) and s > 0 for s in sp):
            raise ValueError(
                f"spacing must be {ndim} positive finite numbers (mm per array axis), got {spacing!r}"
            )
    return mov, tgt, sp


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_threads(threads: int | None) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    return int(threads)


def _unit(arr: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Min-max scale to [0, 1] float32; returns the scaled image, its minimum and its range."""
    lo, hi = float(arr.min()), float(arr.max())
    return ((arr - lo) / (hi - lo)).astype(np.float32), lo, hi - lo


def _finish(method: str, mov: np.ndarray, disp: np.ndarray, tool_img: np.ndarray, lo: float,
            rng: float, seconds: float, parameters: dict) -> ExternalResult:
    d = torch.from_numpy(np.ascontiguousarray(disp, dtype=np.float32))[None]
    m = torch.from_numpy(mov.astype(np.float32))[None, None]
    tool = torch.from_numpy((tool_img.astype(np.float64) * rng + lo).astype(np.float32))[None, None]
    warped = warp(m, d, mode="bilinear", padding_mode="border")
    return ExternalResult(displacement=d, warped=warped, seconds=seconds, method=method,
                          tool_warped=tool, parameters=parameters)


@contextlib.contextmanager
def _env(**values: str | None):
    """Set environment variables for the duration of a block, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is not None:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------------------------
# ANTs
# ----------------------------------------------------------------------------------------------


def _import_ants():
    try:
        import ants
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("ants_register needs antspyx: pip install antspyx") from err
    return ants


def ants_parameters(
    type_of_transform: str = "SyN",
    metric: str = "mattes",
    bins: int = 32,
    reg_iterations: Sequence[int] = (40, 20, 0),
    grad_step: float = 0.2,
    flow_sigma: float = 3.0,
    total_sigma: float = 0.0,
    aff_random_sampling_rate: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """The antsRegistration settings that :func:`ants_register` uses, as a dict of strings.

    For ``type_of_transform="SyN"`` these are exactly the stages antspyx 0.6.3 builds for its "SyN"
    preset (its affine-stage iterations, shrink factors and smoothing are fixed by the preset; the
    ``aff_iterations``/``aff_shrink_factors``/``aff_smoothing_sigmas`` arguments of
    ``ants.registration`` are ignored by it). For another type the preset named is used and only
    the arguments given here are recorded.
    """
    n = len(reg_iterations)
    syn_shrink = "x".join(str(2 ** (n - 1 - i)) for i in range(n))
    syn_smooth = "x".join(str(n - 1 - i) for i in range(n))
    common = {
        "tool": "antspyx antsRegistration",
        "type_of_transform": type_of_transform,
        "random_seed": str(seed + 1),
        "use_histogram_matching": "0",
        "collapse_output_transforms": "1",
        "float": "1",
        "interpolation_of_warped_output": "Linear",
    }
    if type_of_transform != "SyN":
        common.update(metric=metric, bins=str(bins), reg_iterations="x".join(map(str, reg_iterations)))
        return common
    common.update({
        "initial_moving_transform": "[fixed,moving,1] (align the centres of mass)",
        "stage1_transform": "Affine[0.25]",
        "stage1_metric": f"{metric}[fixed,moving,1,{bins},regular,{aff_random_sampling_rate}]",
        "stage1_convergence": "[2100x1200x1200x0,1e-6,10]",
        "stage1_shrink_factors": "4x2x2x1",
        "stage1_smoothing_sigmas": "3x2x1x0 (voxels)",
        "stage2_transform": f"SyN[{grad_step},{flow_sigma},{total_sigma}]",
        "stage2_metric": f"{metric}[fixed,moving,1,{bins}] (dense sampling)",
        "stage2_convergence": f"[{'x'.join(map(str, reg_iterations))},1e-7,8]",
        "stage2_shrink_factors": syn_shrink,
        "stage2_smoothing_sigmas": f"{syn_smooth} (voxels)",
    })
    return common


def _ants_run(moving, target, spacing, *, type_of_transform, metric, bins, reg_iterations,
              grad_step, flow_sigma, total_sigma, aff_random_sampling_rate, seed,
              threads) -> ExternalResult:
    ants = _import_ants()
    mov, tgt, sp = _check_inputs(moving, target, spacing)
    seed = _check_seed(seed)
    threads = _check_threads(threads)
    if bins < 2 or not reg_iterations or any(int(i) < 0 for i in reg_iterations):
        raise ValueError("bins must be >= 2 and reg_iterations a non-empty list of counts >= 0")
    ndim = mov.ndim
    params = ants_parameters(type_of_transform, metric, bins, tuple(reg_iterations), grad_step,
                             flow_sigma, total_sigma, aff_random_sampling_rate, seed)
    start = time.perf_counter()
    mov_u, lo, rng = _unit(mov)
    tgt_u, _, _ = _unit(tgt)
    geometry = {"origin": (0.0,) * ndim, "spacing": sp, "direction": np.eye(ndim)}
    # antspyx arrays are indexed in ITK (x, y, z) order: array axis i is ITK axis i, no transpose.
    fixed_img = ants.from_numpy(tgt_u, **geometry)
    moving_img = ants.from_numpy(mov_u, **geometry)
    env = {"ANTS_RANDOM_SEED": str(seed + 1),
           "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": None if threads is None else str(threads)}
    with _LOCK, _env(**env), tempfile.TemporaryDirectory(prefix="imse_ants_") as tmp:
        config = getattr(ants, "config", None)
        old_seed = getattr(config, "_random_seed", None)
        if config is not None and hasattr(config, "_random_seed"):
            config._random_seed = seed + 1  # antspyx then passes --random-seed to antsRegistration
        try:
            reg = ants.registration(
                fixed=fixed_img, moving=moving_img, type_of_transform=type_of_transform,
                outprefix=os.path.join(tmp, "reg_"), aff_metric=metric, aff_sampling=int(bins),
                aff_random_sampling_rate=aff_random_sampling_rate, syn_metric=metric,
                syn_sampling=int(bins), reg_iterations=tuple(int(i) for i in reg_iterations),
                grad_step=grad_step, flow_sigma=flow_sigma, total_sigma=total_sigma,
                use_legacy_histogram_matching=False, verbose=False,
            )
        finally:
            if config is not None and hasattr(config, "_random_seed"):
                config._random_seed = old_seed
        # The composite of every stage as one displacement field on the fixed grid:
        # T(x) = x + u(x), physical units, components in ITK (x, y, z) = our array-axis order.
        comp = ants.apply_transforms(fixed=fixed_img, moving=moving_img,
                                     transformlist=reg["fwdtransforms"],
                                     compose=os.path.join(tmp, "comp_"))
        field_img = ants.image_read(comp)
        u = np.asarray(field_img.numpy(), dtype=np.float64)  # (*S, ndim)
        tool_img = np.asarray(reg["warpedmovout"].numpy(), dtype=np.float64)
    if u.shape != (*mov.shape, ndim):
        raise RuntimeError(f"unexpected ANTs deformation field of shape {u.shape} for {mov.shape}")
    disp = np.stack([u[..., i] / sp[i] for i in range(ndim)], axis=0)
    seconds = time.perf_counter() - start
    return _finish("ants", mov, disp, tool_img, lo, rng, seconds, params)


def ants_register(
    moving,
    target,
    spacing: Sequence[float] | None = None,
    *,
    type_of_transform: str = "SyN",
    metric: str = "mattes",
    bins: int = 32,
    reg_iterations: Sequence[int] = (40, 20, 0),
    grad_step: float = 0.2,
    flow_sigma: float = 3.0,
    total_sigma: float = 0.0,
    aff_random_sampling_rate: float = 0.2,
    seed: int = 0,
    threads: int | None = None,
) -> torch.Tensor:
    """Register ``moving`` to ``target`` with ANTs SyN driven by Mattes mutual information.

    Returns the displacement ``(1, ndim, *S)`` in voxels (module docstring). Calls
    ``ants.registration(fixed=target, moving=moving, type_of_transform="SyN", aff_metric="mattes",
    syn_metric="mattes", aff_sampling=32, syn_sampling=32, reg_iterations=(40, 20, 0),
    grad_step=0.2, flow_sigma=3, total_sigma=0, aff_random_sampling_rate=0.2,
    use_legacy_histogram_matching=False)`` (antspyx 0.6.3), which runs exactly::

        antsRegistration --dimensionality <2|3> --float 1
          --initial-moving-transform [fixed,moving,1]          # centres of mass aligned
          --metric mattes[fixed,moving,1,32,regular,0.2]       # MI, 32 bins, 20% regular sampling
          --transform Affine[0.25]
          --convergence [2100x1200x1200x0,1e-6,10]             # 4 levels, the last with 0 iterations
          --shrink-factors 4x2x2x1 --smoothing-sigmas 3x2x1x0  # sigmas in voxels
          --metric mattes[fixed,moving,1,32]                   # MI, 32 bins, every voxel
          --transform SyN[0.2,3,0]                             # gradient step 0.2, update-field
                                                               # sigma 3, total-field sigma 0 (vox^2)
          --convergence [40x20x0,1e-7,8]                       # 3 levels, full res. 0 iterations
          --shrink-factors 4x2x1 --smoothing-sigmas 2x1x0
          --use-histogram-matching 0 --collapse-output-transforms 1
          --random-seed <seed + 1>

    The affine stage's iterations, shrink factors and sigmas are fixed by antspyx's "SyN" preset;
    ``reg_iterations`` sets the SyN levels (their shrink factors are ``2**(n-1-i)`` and sigmas
    ``n-1-i`` voxels for ``n`` levels). ``metric`` and ``bins`` apply to both stages. The antspyx
    defaults are kept because they are what a user of "SyN" gets; note that with
    ``reg_iterations=(40, 20, 0)`` the deformable stage does not iterate at full resolution (pass
    e.g. ``(100, 70, 50)`` for a finer warp). Another ``type_of_transform`` (e.g. ``"SyNOnly"``,
    ``"Affine"``) uses that antspyx preset with the same metric and bins.
    """
    return _ants_run(moving, target, spacing, type_of_transform=type_of_transform, metric=metric,
                     bins=bins, reg_iterations=reg_iterations, grad_step=grad_step,
                     flow_sigma=flow_sigma, total_sigma=total_sigma,
                     aff_random_sampling_rate=aff_random_sampling_rate, seed=seed,
                     threads=threads).displacement


# ----------------------------------------------------------------------------------------------
# elastix
# ----------------------------------------------------------------------------------------------


def _import_itk():
    try:
        import itk
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("elastix_register needs itk-elastix: pip install itk-elastix") from err
    if not hasattr(itk, "elastix_registration_method"):  # pragma: no cover - itk without elastix
        raise ImportError("elastix_register needs itk-elastix: pip install itk-elastix")
    return itk


# Every value that elastix_parameter_maps changes or states explicitly on top of elastix'
# default "affine" and "bspline" maps (itk.ParameterObject.GetDefaultParameterMap).
def _elastix_changes(seed: int, grid_spacing_mm: float | None, bending_weight: float,
                     bins: int, max_iterations: int | None) -> tuple[dict, dict]:
    affine = {
        "Metric": ["AdvancedMattesMutualInformation"],
        "NumberOfHistogramBins": [str(bins)],
        "RandomSeed": [str(seed)],
        "FinalBSplineInterpolationOrder": ["1"],
        "ResultImagePixelType": ["float"],
    }
    bspline = {
        "Metric": ["AdvancedMattesMutualInformation", "TransformBendingEnergyPenalty"],
        "Metric0Weight": ["1.0"],
        "Metric1Weight": [repr(float(bending_weight))],
        "NumberOfHistogramBins": [str(bins)],
        "RandomSeed": [str(seed)],
        "FinalBSplineInterpolationOrder": ["1"],
        "ResultImagePixelType": ["float"],
    }
    if grid_spacing_mm is not None:
        bspline["FinalGridSpacingInPhysicalUnits"] = [repr(float(grid_spacing_mm))]
    if max_iterations is not None:
        affine["MaximumNumberOfIterations"] = [str(int(max_iterations))]
        bspline["MaximumNumberOfIterations"] = [str(int(max_iterations))]
    return affine, bspline


def elastix_parameter_maps(seed: int = 0, grid_spacing_mm: float | None = None,
                           bending_weight: float = 1.0, bins: int = 32,
                           max_iterations: int | None = None) -> list[dict[str, list[str]]]:
    """The two elastix parameter maps :func:`elastix_register` runs, as plain dicts (all values).

    Built from ``itk.ParameterObject.GetDefaultParameterMap("affine")`` and ``("bspline")`` with
    the changes listed in :func:`elastix_register`.
    """
    itk = _import_itk()
    obj = itk.ParameterObject.New()
    affine_changes, bspline_changes = _elastix_changes(seed, grid_spacing_mm, bending_weight, bins,
                                                       max_iterations)
    maps = []
    for name, changes in (("affine", affine_changes), ("bspline", bspline_changes)):
        base = {k: list(v) for k, v in dict(obj.GetDefaultParameterMap(name)).items()}
        base.update(changes)
        maps.append(base)
    return maps


def _elastix_run(moving, target, spacing, *, seed, threads, grid_spacing_mm, bending_weight,
                 bins, max_iterations) -> ExternalResult:
    itk = _import_itk()
    mov, tgt, sp = _check_inputs(moving, target, spacing)
    seed = _check_seed(seed)
    threads = _check_threads(threads)
    if (bins < 2 or bending_weight < 0 or (grid_spacing_mm is not None and not grid_spacing_mm > 0)
            or (max_iterations is not None and max_iterations < 1)):
        raise ValueError("bins must be >= 2, bending_weight >= 0, grid_spacing_mm > 0 and "
                         "max_iterations >= 1")
    ndim = mov.ndim
    maps = elastix_parameter_maps(seed, grid_spacing_mm, bending_weight, bins, max_iterations)
    start = time.perf_counter()
    mov_u, lo, rng = _unit(mov)
    tgt_u, _, _ = _unit(tgt)

    def image(a: np.ndarray):
        # itk arrays are indexed (z, y, x): ITK axis k is array axis ndim-1-k.
        img = itk.GetImageFromArray(np.ascontiguousarray(a, dtype=np.float32))
        img.SetSpacing(tuple(float(s) for s in sp[::-1]))
        img.SetOrigin((0.0,) * ndim)
        return img  # direction: identity (GetImageFromArray's default)

    fixed_img, moving_img = image(tgt_u), image(mov_u)
    obj = itk.ParameterObject.New()
    for m in maps:
        obj.AddParameterMap(m)
    threader = itk.MultiThreaderBase
    with _LOCK:
        # Not elastix_registration_method(number_of_threads=n): with n > 1 it segfaults on the
        # multi-metric B-spline map (ITKElastix issues #160, #295; reproduced with 0.25.4). The
        # global ITK default is set for the call instead and restored after it.
        old_threads = threader.GetGlobalDefaultNumberOfThreads()
        if threads is not None:
            threader.SetGlobalDefaultNumberOfThreads(threads)
        try:
            result_img, transform_params = itk.elastix_registration_method(
                fixed_img, moving_img, parameter_object=obj, log_to_console=False)
            # T(x) - x on the fixed grid, physical units, components in ITK (x, y, z) order.
            # transformix writes deformationField.nii to its output directory ("." unless set).
            with tempfile.TemporaryDirectory(prefix="imse_transformix_") as tmp:
                field_img = itk.transformix_deformation_field(
                    moving_img, transform_params, output_directory=tmp, log_to_console=False)
                u = np.array(itk.GetArrayFromImage(field_img), dtype=np.float64)  # (*S, ndim)
        finally:
            threader.SetGlobalDefaultNumberOfThreads(old_threads)
    tool_img = np.asarray(itk.GetArrayFromImage(result_img), dtype=np.float64)
    if u.shape != (*mov.shape, ndim):
        raise RuntimeError(f"unexpected elastix deformation field {u.shape} for {mov.shape}")
    disp = np.stack([u[..., ndim - 1 - i] / sp[i] for i in range(ndim)], axis=0)
    seconds = time.perf_counter() - start
    params = {"tool": "itk-elastix", "threads": threads, "affine": maps[0], "bspline": maps[1]}
    return _finish("elastix", mov, disp, tool_img, lo, rng, seconds, params)


def elastix_register(
    moving,
    target,
    spacing: Sequence[float] | None = None,
    *,
    seed: int = 0,
    threads: int | None = None,
    grid_spacing_mm: float | None = None,
    bending_weight: float = 1.0,
    bins: int = 32,
    max_iterations: int | None = None,
) -> torch.Tensor:
    """Register ``moving`` to ``target`` with elastix: affine, then B-spline, both Mattes MI.

    Returns the displacement ``(1, ndim, *S)`` in voxels (module docstring). The parameter maps are
    elastix' defaults (``itk.ParameterObject.GetDefaultParameterMap("affine")`` and
    ``("bspline")``, itk-elastix 0.25.4) with these values set explicitly (everything else default):

    * both maps: ``Metric`` as below, ``NumberOfHistogramBins 32`` (the metric's default, stated),
      ``RandomSeed <seed>``, ``FinalBSplineInterpolationOrder 1`` (the tool's own output image is
      linearly interpolated, like :func:`imse_study.warp.warp`; default 3; the registration itself
      does not use it), ``ResultImagePixelType float``;
    * affine: ``Metric AdvancedMattesMutualInformation`` (the default, stated);
    * bspline: ``Metric AdvancedMattesMutualInformation TransformBendingEnergyPenalty`` with
      ``Metric0Weight 1.0``, ``Metric1Weight <bending_weight>`` (both 1.0 by default: the default
      map's own regularised MI), and ``FinalGridSpacingInPhysicalUnits`` = ``grid_spacing_mm`` when
      given, else the default 10 (mm when ``spacing`` is in mm; 5 voxels at 2 mm);
    * ``MaximumNumberOfIterations`` = ``max_iterations`` in both maps when given (else the
      default 256 per resolution; the tests use fewer for speed).

    The defaults these keep, for the record: 4 resolutions each (``FixedSmoothingImagePyramid`` /
    ``MovingSmoothingImagePyramid``), ``AdaptiveStochasticGradientDescent`` with
    ``AutomaticParameterEstimation true``, ``MaximumNumberOfIterations 256`` per resolution,
    ``ImageSampler RandomCoordinate`` with ``NumberOfSpatialSamples 2048``,
    ``NewSamplesEveryIteration true``, ``Interpolator LinearInterpolator``, ``DefaultPixelValue 0``; the affine map has
    ``AutomaticScalesEstimation true`` and no initial transform; the B-spline grid schedule is
    ``GridSpacingSchedule 2.83 2 1.41 1`` (multiples of the final spacing per resolution).
    :func:`elastix_parameter_maps` returns the complete maps.
    """
    return _elastix_run(moving, target, spacing, seed=seed, threads=threads,
                        grid_spacing_mm=grid_spacing_mm, bending_weight=bending_weight,
                        bins=bins, max_iterations=max_iterations).displacement


# ----------------------------------------------------------------------------------------------
# One entry point for the evaluation table
# ----------------------------------------------------------------------------------------------


def register_external(method: str, moving, target, spacing: Sequence[float] | None = None,
                      **kw) -> ExternalResult:
    """Register with ``method`` (``"ants"`` or ``"elastix"``) and time it.

    ``kw`` are the keyword arguments of :func:`ants_register` or :func:`elastix_register`. Returns
    an :class:`ExternalResult` (displacement, our ``warp`` of ``moving``, seconds, the tool's own
    warped image, the parameters used).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    register = ants_register if method == "ants" else elastix_register
    _import_ants() if method == "ants" else _import_itk()  # an import is not part of the timing
    options = {name: p.default for name, p in inspect.signature(register).parameters.items()
               if p.kind is inspect.Parameter.KEYWORD_ONLY}
    unknown = set(kw) - set(options)
    if unknown:
        raise TypeError(f"unknown {method} option(s) {sorted(unknown)}: use {sorted(options)}")
    run = _ants_run if method == "ants" else _elastix_run
    return run(moving, target, spacing, **{**options, **kw})
