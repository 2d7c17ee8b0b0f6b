"""Applying an evaluator to whole NumPy images as users have them (NIfTI volumes, napari layers).

Handles what the tensor functions leave to the caller: intensity scaling to [-1, 1] by modality,
padding to a multiple of 4 (the evaluator downsamples twice), and running a 2D evaluator slice by
slice over a 3D stack (slices along the last axis, as NIfTI stores axial slices).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from imse_study.data.normalise import normalise
from imse_study.evaluator.imse import error_map, translate

ImageFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def to_unit_range(image: np.ndarray, modality: str) -> np.ndarray:
    """Leave an image already in [-1, 1] as it is; otherwise scale it by its modality's rule."""
    image = np.asarray(image, dtype=np.float32)
    if not np.isfinite(image).all():
        raise ValueError("the image holds NaN or inf values; fill or mask them first")
    if image.size == 0:
        raise ValueError("the image is empty")
    if image.min() >= -1.0 and image.max() <= 1.0:
        return image
    return normalise(image, "ct" if modality.lower() == "ct" else "mr")


def pad_to_multiple(x: torch.Tensor, multiple: int = 4) -> tuple[torch.Tensor, tuple[slice, ...]]:
    spatial = x.shape[2:]
    extra = [(-s) % multiple for s in spatial]
    pad: list[int] = []
    for e in reversed(extra):
        pad += [e // 2, e - e // 2]
    crop = tuple(slice(e // 2, e // 2 + s) for e, s in zip(extra, spatial))
    return (F.pad(x, pad, mode="replicate") if any(extra) else x), crop


@torch.no_grad()
def apply_evaluator(
    fn: ImageFn, model: torch.nn.Module, reference: np.ndarray, other: np.ndarray, model_dim: int, batch: int = 8
) -> np.ndarray:
    """Run ``fn(model, ref, other)`` (e.g. :func:`error_map`) on NumPy images in [-1, 1].

    Images are (*S) with len(S) == model_dim, or (H, W, N) stacks for a 2D model.
    """
    if reference.shape != other.shape:
        raise ValueError(f"the two images differ in shape {reference.shape} vs {other.shape}; "
                         "resample one onto the other's grid first")
    ref = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32))
    oth = torch.from_numpy(np.ascontiguousarray(other, dtype=np.float32))
    if ref.dim() == model_dim:
        batches = [(ref[None, None], oth[None, None])]
        stack = False
    elif model_dim == 2 and ref.dim() == 3:
        r, o = ref.movedim(-1, 0)[:, None], oth.movedim(-1, 0)[:, None]  # (N, 1, H, W)
        batches = [(r[i : i + batch], o[i : i + batch]) for i in range(0, r.shape[0], batch)]
        stack = True
    else:
        raise ValueError(f"a {model_dim}D evaluator cannot be applied to {ref.dim()}D images")
    outputs = []
    for r, o in batches:
        (rp, crop), (op, _) = pad_to_multiple(r), pad_to_multiple(o)
        outputs.append(fn(model, rp, op)[(slice(None), slice(None), *crop)])
    result = torch.cat(outputs)[:, 0]
    return (result.movedim(0, -1) if stack else result[0]).numpy()


def error_map_array(model: torch.nn.Module, reference: np.ndarray, other: np.ndarray, model_dim: int) -> np.ndarray:
    """Pixel-wise E(reference, other) for NumPy images in [-1, 1]."""
    return apply_evaluator(error_map, model, reference, other, model_dim)


def translate_array(model: torch.nn.Module, reference: np.ndarray, source: np.ndarray, model_dim: int) -> np.ndarray:
    """reference - E(reference, source) for NumPy images in [-1, 1] (section 4.4)."""
    return apply_evaluator(translate, model, reference, source, model_dim)
