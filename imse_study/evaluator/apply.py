"""Applying an evaluator to whole NumPy images as users have them (NIfTI volumes, napari layers).

Handles what the tensor functions leave to the caller: intensity scaling to [-1, 1] by modality
(with a check that the image looks like its modality), padding to a multiple of 4 (the evaluator
downsamples twice; :func:`imse_study.nets.pad_to_multiple`), and, given the images' affine, their
geometry: the images are rearranged into the layout the evaluator was trained in (a 2D evaluator
slices a stack across its through-plane axis and a volume along its axial axis, whatever the storage
order; see :mod:`imse_study.data.geometry`), resampled to the evaluator's training spacing (in-plane
only for a 2D evaluator), and the result is brought back to the input grid. Without an affine the
arrays are used as they are, and a 2D evaluator runs over a 3D stack along its last axis (how NIfTI
stores the package's 2D stacks).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from imse_study.data.geometry import Layout, resize, slice_axis, working_grid
from imse_study.modalities import is_ct, kind_of
from imse_study.data.normalise import normalise
from imse_study.evaluator.use import error_map, translate
from imse_study.nets.padding import pad_to_multiple

ImageFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]

# An image within this much of [-1, 1] is taken as already scaled (and clipped): resampling and
# warping overshoot by rounding (e.g. -1.0000001), which must not be read as Hounsfield units.
UNIT_TOLERANCE = 0.01
# Hounsfield units: air is -1000, so a CT has voxels far below any MR image's range; bone is above 300.
HU_AIR_BELOW = -500.0
HU_BONE_ABOVE = 300.0


class IntensityWarning(UserWarning):
    """An image's intensities do not look like the modality it is said to be."""


def is_unit_range(image: np.ndarray) -> bool:
    """Whether ``image`` is already scaled to [-1, 1] (within ``UNIT_TOLERANCE``)."""
    return float(image.min()) >= -1.0 - UNIT_TOLERANCE and float(image.max()) <= 1.0 + UNIT_TOLERANCE


def modality_mismatch(image: np.ndarray, modality: str) -> str | None:
    """Why the raw intensities of ``image`` do not look like ``modality``, or None when they do.

    A CT in Hounsfield units has air (below -500 in its lowest percent) and bone (above 300); an
    MR image has no such strongly negative range. Images already in [-1, 1] carry no unit and are
    not judged.
    """
    image = np.asarray(image)
    if image.size == 0 or is_unit_range(image):
        return None
    low, high = float(np.percentile(image, 1.0)), float(image.max())
    hu_like = low <= HU_AIR_BELOW
    if is_ct(modality):
        if hu_like and high >= HU_BONE_ABOVE:
            return None
        return (f"does not look like a CT in Hounsfield units (no air near -1000 and bone above {HU_BONE_ABOVE:g}; "
                f"its range is {float(image.min()):.4g} to {high:.4g})")
    if hu_like:
        return (f"does not look like an MR image ({modality}): it has Hounsfield-like values "
                f"down to {float(image.min()):.4g}; is it a CT?")
    return None


def to_unit_range(image: np.ndarray, modality: str, name: str = "the image") -> np.ndarray:
    """``image`` scaled to [-1, 1] by its modality's rule, or clipped if it is already there.

    An image within ``UNIT_TOLERANCE`` of [-1, 1] is taken as already scaled (the package's own
    outputs, e.g. ``warped.nii.gz``); otherwise CT is windowed in Hounsfield units and anything else
    scaled between percentiles (:func:`imse_study.data.normalise.normalise`). An image whose raw
    intensities do not look like ``modality`` (:func:`modality_mismatch`) gets an
    :class:`IntensityWarning` naming it.
    """
    image = np.asarray(image, dtype=np.float32)
    if not np.isfinite(image).all():
        raise ValueError(f"{name} holds NaN or inf values; fill or mask them first")
    if image.size == 0:
        raise ValueError(f"{name} is empty")
    if is_unit_range(image):
        return np.clip(image, -1.0, 1.0)
    problem = modality_mismatch(image, modality)
    if problem is not None:
        warnings.warn(f"{name} {problem}", IntensityWarning, stacklevel=2)
    return normalise(image, kind_of(modality))


def _check_pair(reference: np.ndarray, other: np.ndarray) -> None:
    if np.shape(reference) != np.shape(other):
        raise ValueError(f"the two images differ in shape {np.shape(reference)} vs {np.shape(other)}; "
                         "resample one onto the other's grid first")


@torch.no_grad()
def _run(fn: ImageFn, model: torch.nn.Module, reference: np.ndarray, other: np.ndarray, model_dim: int,
         batch: int, axis: int) -> np.ndarray:
    """``fn`` on arrays as they are: whole images, or a 2D model over a 3D stack along ``axis``."""
    ref = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32))
    oth = torch.from_numpy(np.ascontiguousarray(other, dtype=np.float32))
    if ref.dim() == model_dim:
        batches = [(ref[None, None], oth[None, None])]
        stack = False
    elif model_dim == 2 and ref.dim() == 3:
        r, o = ref.movedim(axis, 0)[:, None], oth.movedim(axis, 0)[:, None]  # (N, 1, H, W)
        batches = [(r[i : i + batch], o[i : i + batch]) for i in range(0, r.shape[0], batch)]
        stack = True
    else:
        raise ValueError(f"a {model_dim}D evaluator cannot be applied to {ref.dim()}D images")
    outputs = []
    for r, o in batches:
        (rp, crop), (op, _) = pad_to_multiple(r), pad_to_multiple(o)
        outputs.append(fn(model, rp, op)[(slice(None), slice(None), *crop)])
    result = torch.cat(outputs)[:, 0]
    return (result.movedim(0, axis) if stack else result[0]).numpy()


def apply_evaluator(
    fn: ImageFn, model: torch.nn.Module, reference: np.ndarray, other: np.ndarray, model_dim: int, batch: int = 8,
    *, affine: np.ndarray | None = None, evaluator_spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """Run ``fn(model, ref, other)`` (e.g. :func:`error_map`) on NumPy images in [-1, 1] of one grid.

    With ``affine`` (the images' 4x4 voxel -> mm matrix): the geometry of the module docstring, and
    with ``evaluator_spacing`` (mm per array axis the evaluator was trained at, see
    :func:`imse_study.evaluator.checkpoint.evaluator_spacing`) the images are resampled to it and
    the result back. Without ``affine``: images are (*S) with len(S) == model_dim, or (H, W, N)
    stacks for a 2D model. The result has the inputs' shape.
    """
    _check_pair(reference, other)
    if affine is None:
        if evaluator_spacing is not None:
            raise ValueError("evaluator_spacing needs the images' affine (their spacing and orientation)")
        return _run(fn, model, reference, other, model_dim, batch, axis=-1)
    reference = np.asarray(reference, dtype=np.float32)
    layout, shape = evaluator_grid(reference.shape, affine, model_dim, evaluator_spacing)
    ref, oth = layout.to(reference), layout.to(np.asarray(other, dtype=np.float32))
    out = _run(fn, model, resize(ref, shape), resize(oth, shape), model_dim, batch, axis=0)
    return layout.back(resize(out, ref.shape))


def evaluator_grid(shape: Sequence[int], affine: np.ndarray, model_dim: int,
                   evaluator_spacing: Sequence[float] | None = None) -> tuple[Layout, tuple[int, ...]]:
    """How a ``model_dim``-D evaluator reads images of ``shape`` (voxel -> mm ``affine``): their
    :class:`~imse_study.data.geometry.Layout` and their shape in it at ``evaluator_spacing`` (a 2D
    evaluator then reads ``shape[1:]`` slices)."""
    if len(shape) not in (2, 3) or len(shape) < model_dim:
        raise ValueError(f"a {model_dim}D evaluator cannot be applied to {len(shape)}D images")
    first = None if model_dim == 3 else (slice_axis(shape, affine) if len(shape) == 3 else 2)
    wanted = None if evaluator_spacing is None else tuple(evaluator_spacing)
    if wanted is not None and len(wanted) != model_dim:
        raise ValueError(f"a {model_dim}D evaluator needs {model_dim} spacings, got {wanted}")
    return working_grid(shape, affine, first, model_dim, wanted)


def error_map_array(model: torch.nn.Module, reference: np.ndarray, other: np.ndarray, model_dim: int, *,
                    affine: np.ndarray | None = None,
                    evaluator_spacing: Sequence[float] | None = None) -> np.ndarray:
    """Pixel-wise E(reference, other) for NumPy images in [-1, 1]; geometry as :func:`apply_evaluator`."""
    return apply_evaluator(error_map, model, reference, other, model_dim, affine=affine,
                           evaluator_spacing=evaluator_spacing)


def translate_array(model: torch.nn.Module, reference: np.ndarray, source: np.ndarray, model_dim: int, *,
                    affine: np.ndarray | None = None,
                    evaluator_spacing: Sequence[float] | None = None) -> np.ndarray:
    """reference - E(reference, source) for NumPy images in [-1, 1] (section 4.4); geometry as
    :func:`apply_evaluator`."""
    return apply_evaluator(translate, model, reference, source, model_dim, affine=affine,
                           evaluator_spacing=evaluator_spacing)
