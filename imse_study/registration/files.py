"""Registering a user's NIfTI files (``imse-study register MOVING TARGET -o OUT``).

Loads both images (scaled to [-1, 1] by modality unless they already are), runs classic
optimisation (Eq. 1, multi-resolution by default) with any similarity, and writes the warped image,
the displacement (voxels, last axis = component along each array axis), the warped labels when a
moving label map is given, and ``summary.json`` (settings, seconds, Dice before/after when both label
maps are given). A 2D evaluator on 3D stacks registers slice by slice along the last axis.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imse_study.data.io import load_labels, load_nifti, save_nifti
from imse_study.evaluator.apply import pad_to_multiple, to_unit_range
from imse_study.metrics import dice
from imse_study.registration.instance import optimise
from imse_study.registration.similarity import EVALUATOR_SIMILARITIES
from imse_study.registration.similarity import similarity as make_similarity
from imse_study.training import atomic_write_json
from imse_study.warp import warp

MULTIPLE = 8  # pad image sides to a multiple of 8 (the evaluator needs 4, the pyramid likes 8)


def _register(moving: np.ndarray, target: np.ndarray, sim, **kw) -> tuple[np.ndarray, float]:
    """Displacement (ndim, *S) for one pair of arrays, and the seconds it took."""
    m, crop = pad_to_multiple(torch.from_numpy(moving)[None, None], MULTIPLE)
    t, _ = pad_to_multiple(torch.from_numpy(target)[None, None], MULTIPLE)
    result = optimise(m, t, sim, **kw)
    return result.displacement[(0, slice(None), *crop)].numpy(), result.seconds


def register_files(
    moving_path: str | Path, target_path: str | Path, out: str | Path, similarity: str = "mi",
    evaluator: str | None = None, moving_modality: str = "mr", target_modality: str = "mr",
    moving_labels: str | Path | None = None, target_labels: str | Path | None = None,
    iterations: int = 200, mode: str = "multires", smooth_weight: float | None = None, progress: bool = True,
    precision: str = "float32",
) -> dict[str, Any]:
    """Register ``moving_path`` onto ``target_path``; write the results into folder ``out``.

    ``precision="bfloat16"`` runs the IMSE evaluator under autocast (about 2x faster on CPUs with
    AMX or AVX-512 BF16, same Dice in ``benchmarks/run.py``); other similarities ignore it."""
    moving, _, _ = load_nifti(moving_path)
    target, affine, spacing = load_nifti(target_path)
    if moving.shape != target.shape:
        raise ValueError(f"{moving_path} {moving.shape} and {target_path} {target.shape} differ in shape; "
                         "resample the moving image onto the target grid first")
    moving = to_unit_range(moving, moving_modality)
    target = to_unit_range(target, target_modality)
    options: dict[str, Any] = {}
    slicewise = False
    if similarity in EVALUATOR_SIMILARITIES:
        from imse_study.evaluator.pretrained import load_any

        if evaluator is None:
            raise ValueError(f"--similarity {similarity} needs --evaluator (a shipped name such as phantom-t1-2d, "
                             "or a .pt file)")
        model, meta = load_any(evaluator)
        options = {"evaluator": model, "evaluator_modality": meta.modality}
        if similarity == "imse":
            options["precision"] = precision
        slicewise = meta.dim == 2 and moving.ndim == 3
    sim = make_similarity(similarity, moving_modality=moving_modality, target_modality=target_modality, **options)
    kw: dict[str, Any] = {"iterations": iterations, "mode": mode, "progress": progress}
    if smooth_weight is not None:
        kw["smooth_weight"] = smooth_weight

    start = time.perf_counter()
    if slicewise:
        fields = [_register(moving[..., k], target[..., k], sim, **kw)[0] for k in range(moving.shape[-1])]
        displacement = np.stack(fields, -1)  # (2, H, W, N): in-plane components
        displacement = np.concatenate([displacement, np.zeros_like(displacement[:1])], 0)
    else:
        displacement, _ = _register(moving, target, sim, **kw)
    seconds = time.perf_counter() - start

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    field = torch.from_numpy(displacement)[None]
    warped = warp(torch.from_numpy(moving)[None, None], field)[0, 0].numpy()
    save_nifti(out / "warped.nii.gz", warped, affine)
    save_nifti(out / "displacement.nii.gz", np.moveaxis(displacement, 0, -1), affine)
    summary: dict[str, Any] = {
        "moving": str(moving_path), "target": str(target_path), "similarity": similarity, "evaluator": evaluator,
        "mode": mode, "iterations": iterations, "slicewise": slicewise, "seconds": round(seconds, 2),
        "displacement_units": "voxels; last axis = component along array axes 0, 1[, 2]",
    }
    if moving_labels is not None:
        labels, _ = load_labels(moving_labels)
        moved = warp(torch.from_numpy(labels.astype(np.float32))[None, None], field, mode="nearest")[0, 0]
        save_nifti(out / "warped_labels.nii.gz", moved.numpy().astype(labels.dtype), affine, labels=True)
        if target_labels is not None:
            truth, _ = load_labels(target_labels)
            summary["dice_before"] = dice(labels, truth)["mean"]
            summary["dice_after"] = dice(moved.numpy().round().astype(truth.dtype), truth)["mean"]
    atomic_write_json(summary, out / "summary.json")
    return summary


def summary_text(summary: dict[str, Any]) -> str:
    """One line for the terminal."""
    text = f"registered with {summary['similarity']} in {summary['seconds']:.1f} s"
    if "dice_after" in summary:
        text += f"; Dice {summary['dice_before']:.3f} -> {summary['dice_after']:.3f}"
    return text + " " + json.dumps({k: summary[k] for k in ("mode", "iterations", "slicewise")})
