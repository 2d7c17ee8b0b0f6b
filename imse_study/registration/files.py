"""Registering a user's NIfTI files (``imse-study register MOVING TARGET -o OUT``).

Loads both images (scaled to [-1, 1] by modality unless they already are), resamples the moving
image into the target's physical space when the two grids differ (through both affines, as ANTs and
elastix do; labels with nearest neighbour), runs classic optimisation (Eq. 1, multi-resolution by
default) with any similarity, and writes, all on the target's grid and with its affine, the warped
image (clipped to [-1, 1]), the displacement (voxels of the target grid, last axis = component along
each array axis), the warped labels when a moving label map is given, and ``summary.json``
(settings, seconds, Dice before/after when both label maps are given).

One rule decides 2D or 3D for every similarity (:func:`imse_study.data.geometry.registration_plan`):
a stack of 2D slices (few slices, or slices at least twice as far apart as the in-plane voxels) is
registered slice by slice and never moved through-plane, a volume in 3D; ``dim`` overrides it. An
evaluator (``imse``, ``imse_robust``) must have the plan's dimension, and works at the spacing it was
trained at: the images are resampled to it (in-plane for 2D) and the displacement brought back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imse_study.data.geometry import (
    Layout,
    RegistrationPlan,
    registration_plan,
    resample_onto,
    resize,
    same_grid,
    working_grid,
)
from imse_study.data.io import load_labels, load_nifti, save_nifti
from imse_study.evaluator.apply import to_unit_range
from imse_study.metrics import dice
from imse_study.nets.padding import pad_to_multiple
from imse_study.registration.optimise import optimise
from imse_study.losses.similarity import EVALUATOR_SIMILARITIES
from imse_study.losses.similarity import similarity as make_similarity
from imse_study.training import atomic_write_json
from imse_study.warp import warp

MULTIPLE = 8  # pad image sides to a multiple of 8 (the evaluator needs 4, the pyramid likes 8)
Callback = Callable[[int, int, float], "bool | None"]


def _register(moving: np.ndarray, target: np.ndarray, sim, **kw) -> np.ndarray:
    """Displacement (ndim, *S) in voxels for one pair of arrays."""
    m, crop = pad_to_multiple(torch.from_numpy(np.ascontiguousarray(moving))[None, None], MULTIPLE)
    t, _ = pad_to_multiple(torch.from_numpy(np.ascontiguousarray(target))[None, None], MULTIPLE)
    result = optimise(m, t, sim, **kw)
    return result.displacement[(0, slice(None), *crop)].numpy()


def _resize_field(field: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A displacement (ndim, *S) in voxels on a grid of the same field of view and ``shape``."""
    if tuple(field.shape[1:]) == tuple(shape):
        return field
    scale = [n / s for n, s in zip(shape, field.shape[1:])]  # voxels of the new grid per old voxel
    return np.stack([resize(component, shape) * scale[k] for k, component in enumerate(field)])


def register_arrays(
    moving: np.ndarray, target: np.ndarray, affine: np.ndarray, sim, plan: RegistrationPlan,
    working_spacing: Sequence[float] | None = None, progress: bool = False, callback: Callback | None = None,
    **options: Any,
) -> np.ndarray:
    """The displacement ``(ndim, *S)`` (voxels, along the input's array axes) that registers ``moving``
    to ``target``, two images in [-1, 1] on one grid (voxel -> mm ``affine``), as ``plan`` says.

    A 2D plan on a 3D image registers each slice across ``plan.slice_axis`` on its own and leaves the
    through-plane component zero. The images are registered in the package's (S, P, R) layout (exact
    flips and swaps) at ``working_spacing`` (mm per registered axis, e.g. an evaluator's training
    spacing) when given. ``progress`` shows one tqdm bar ("slice k/n"); ``callback(step, total,
    loss)`` counts steps over all slices and may return False to cancel. ``options`` go to
    :func:`~imse_study.registration.optimise.optimise` (iterations, mode, smooth_weight, ...).
    """
    if moving.shape != target.shape:
        raise ValueError(f"moving {moving.shape} and target {target.shape} must share one grid; resample first")
    layout, shape = registration_grid(target.shape, affine, plan, working_spacing)
    mov, tgt = layout.to(moving.astype(np.float32)), layout.to(target.astype(np.float32))
    canonical = tgt.shape
    mov, tgt = resize(mov, shape), resize(tgt, shape)
    pairs = [(mov[k], tgt[k]) for k in range(shape[0])] if plan.dim == 2 else [(mov, tgt)]
    iterations = int(options.get("iterations", 200))
    total = iterations * len(pairs)
    bar = None
    if progress:
        from imse_study.progress import progress_bar

        bar = progress_bar(total=total, desc="registration 3D" if plan.dim == 3 else f"slice 1/{len(pairs)}", leave=False)
    fields = []
    try:
        for k, (m, t) in enumerate(pairs):
            if bar is not None and plan.dim == 2:
                bar.set_description(f"slice {k + 1}/{len(pairs)}")

            def step(done: int, _total: int, loss: float, offset: int = k * iterations) -> bool | None:
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                return None if callback is None else callback(offset + done, total, loss)

            fields.append(_register(m, t, sim, progress=False, callback=step, **options))
    finally:
        if bar is not None:
            bar.close()
    if plan.dim == 2:  # (2, n, H, W) in-plane; zero through-plane component first
        in_plane = np.stack(fields, 1)
        field = np.concatenate([np.zeros_like(in_plane[:1]), in_plane], 0)
    else:
        field = fields[0]
    return layout.field_back(_resize_field(field, canonical))


def registration_grid(shape: Sequence[int], affine: np.ndarray, plan: RegistrationPlan,
                      working_spacing: Sequence[float] | None = None) -> tuple[Layout, tuple[int, ...]]:
    """The layout an image of ``shape`` is registered in as ``plan`` says (the sliced axis first), and
    its shape there at ``working_spacing``; a 2D plan registers ``shape[1:]`` slices."""
    first = plan.slice_axis if plan.slicewise else (2 if len(shape) == 2 else None)
    return working_grid(shape, affine, first, plan.dim, working_spacing)


def _on_target_grid(path: str | Path, shape: tuple[int, ...], affine: np.ndarray, notes: list[str],
                    what: str) -> np.ndarray:
    """A label map on the target grid (nearest neighbour through both affines if it is elsewhere)."""
    labels, labels_affine = load_labels(path)
    if same_grid(labels.shape, labels_affine, shape, affine):
        return labels
    notes.append(f"{what} resampled onto the target grid (nearest neighbour)")
    return resample_onto(labels, labels_affine, shape, affine, labels=True)


def register_files(
    moving_path: str | Path, target_path: str | Path, out: str | Path, similarity: str = "mi",
    evaluator: str | None = None, moving_modality: str = "mr", target_modality: str = "mr",
    moving_labels: str | Path | None = None, target_labels: str | Path | None = None,
    iterations: int = 200, mode: str = "multires", smooth_weight: float | None = None, progress: bool = True,
    precision: str = "float32", dim: int | None = None, flips: str = "none",
) -> dict[str, Any]:
    """Register ``moving_path`` onto ``target_path``; write the results into folder ``out``.

    ``dim`` (2, 3 or None: decide from the target's header) follows
    :func:`~imse_study.data.geometry.registration_plan`. ``precision="bfloat16"`` runs the IMSE
    evaluator under autocast (about 2x faster on CPUs with AMX or AVX-512 BF16, same Dice in
    ``benchmarks/run.py``); ``flips="point"`` averages it over mirror images of the pair
    (:mod:`imse_study.evaluator.symmetry`: no sub-pixel direction bias, 2x the cost); other
    similarities ignore both."""
    moving, moving_affine, _ = load_nifti(moving_path)
    target, affine, _ = load_nifti(target_path)
    if moving.ndim != target.ndim:
        raise ValueError(f"{moving_path} is {moving.ndim}D and {target_path} {target.ndim}D; give two 2D or two 3D images")
    moving = to_unit_range(moving, moving_modality, name=str(moving_path))
    target = to_unit_range(target, target_modality, name=str(target_path))
    notes: list[str] = []
    resampled = not same_grid(moving.shape, moving_affine, target.shape, affine)
    if resampled:
        moving = resample_onto(moving, moving_affine, target.shape, affine, cval=-1.0)
        notes.append(f"moving image resampled onto the target grid {target.shape} (linear, through both affines)")
    plan = registration_plan(target.shape, affine, dim)
    options: dict[str, Any] = {}
    working_spacing = None
    if similarity in EVALUATOR_SIMILARITIES:
        from imse_study.evaluator.checkpoint import evaluator_spacing
        from imse_study.evaluator.pretrained import load_any

        if evaluator is None:
            raise ValueError(f"--similarity {similarity} needs --evaluator (a shipped name such as phantom-t1-2d, "
                             "or a .pt file)")
        model, meta = load_any(evaluator)
        if meta.dim != plan.dim:
            raise ValueError(f"the evaluator {evaluator} is {meta.dim}D but this pair is registered in {plan.dim}D "
                             f"({plan.reason}); pass --dim {meta.dim} or a {plan.dim}D evaluator")
        options = {"evaluator": model, "evaluator_modality": meta.modality}
        if similarity == "imse":
            options["precision"], options["flips"] = precision, flips
        working_spacing = evaluator_spacing(meta)
    sim = make_similarity(similarity, moving_modality=moving_modality, target_modality=target_modality, **options)
    kw: dict[str, Any] = {"iterations": iterations, "mode": mode}
    if smooth_weight is not None:
        kw["smooth_weight"] = smooth_weight

    start = time.perf_counter()
    displacement = register_arrays(moving, target, affine, sim, plan, working_spacing, progress=progress, **kw)
    seconds = time.perf_counter() - start

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    field = torch.from_numpy(np.ascontiguousarray(displacement))[None]
    warped = warp(torch.from_numpy(moving)[None, None], field)[0, 0].numpy()
    save_nifti(out / "warped.nii.gz", np.clip(warped, -1.0, 1.0), affine)
    save_nifti(out / "displacement.nii.gz", np.moveaxis(displacement, 0, -1), affine)
    summary: dict[str, Any] = {
        "moving": str(moving_path), "target": str(target_path), "similarity": similarity, "evaluator": evaluator,
        "mode": mode, "iterations": iterations, "dim": plan.dim, "slicewise": plan.slicewise,
        "slice_axis": plan.slice_axis, "registration": plan.reason, "moving_resampled": resampled,
        "working_spacing_mm": None if working_spacing is None else list(working_spacing),
        "seconds": round(seconds, 2),
        "displacement_units": "voxels of the target grid; last axis = component along array axes 0, 1[, 2]",
    }
    if similarity == "imse":
        summary["flips"] = flips
    if moving_labels is not None:
        labels = _on_target_grid(moving_labels, target.shape, affine, notes, "moving labels")
        moved = warp(torch.from_numpy(labels.astype(np.float32))[None, None], field, mode="nearest")[0, 0]
        save_nifti(out / "warped_labels.nii.gz", moved.numpy().astype(labels.dtype), affine, labels=True)
        if target_labels is not None:
            truth = _on_target_grid(target_labels, target.shape, affine, notes, "target labels")
            summary["dice_before"] = dice(labels, truth)["mean"]
            summary["dice_after"] = dice(moved.numpy().round().astype(truth.dtype), truth)["mean"]
    summary["notes"] = notes
    summary["files"] = sorted(p.name for p in out.iterdir() if p.name.endswith(".nii.gz")) + ["summary.json"]
    atomic_write_json(summary, out / "summary.json")
    return summary


_FILE_MEANING = {
    "warped.nii.gz": "the moving image on the target grid, in [-1, 1]",
    "displacement.nii.gz": "the displacement, voxels of the target grid (last axis: component per array axis)",
    "warped_labels.nii.gz": "the moving labels warped (nearest neighbour)",
    "summary.json": "settings, seconds, Dice and notes",
}


def summary_text(summary: dict[str, Any], folder: str | Path | None = None) -> str:
    """What the terminal shows: how the pair was registered (2D or 3D, and why), with what, how long,
    the resampling notes, Dice before -> after (mean over labels) and every file written in ``folder``."""
    settings = f"{summary['mode']}, {summary['iterations']} iterations"
    if summary.get("evaluator"):
        settings = f"evaluator {summary['evaluator']}, " + settings
    lines = [f"registered with {summary['similarity']} ({settings}) in {summary['registration']}: "
             f"{summary['seconds']:.1f} s"]
    if summary.get("working_spacing_mm"):
        lines.append("  at the evaluator's training spacing "
                     + " x ".join(f"{s:.3g}" for s in summary["working_spacing_mm"]) + " mm")
    lines += [f"  note: {note}" for note in summary.get("notes", [])]
    if "dice_after" in summary:
        lines.append(f"Dice (mean over labels) {summary['dice_before']:.3f} -> {summary['dice_after']:.3f} "
                     f"({summary['dice_after'] - summary['dice_before']:+.3f})")
    else:
        need = "--target-labels" if "warped_labels.nii.gz" in summary.get("files", []) else "--moving-labels and --target-labels"
        lines.append(f"Dice: not measured (give {need})")
    files = summary.get("files") or []
    if files:
        lines.append("files written" + (f" in {folder}:" if folder is not None else ":"))
        width = max(len(name) for name in files)
        lines += [f"  {name.ljust(width)}  {_FILE_MEANING.get(name, '')}".rstrip() for name in files]
    return "\n".join(lines)
