"""The QA score of one pair from its error map (paper section 4.5), for NumPy arrays.

The same number as :func:`imse_study.evaluator.use.spatial_error_score` (one minus the mean |E|
divided by its largest value, over the union of the two images' foregrounds), computed from an
error map already brought back to the target's grid, so the map is not computed twice.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from imse_study.evaluator.model import OUTPUT_SCALE

FOREGROUND = -0.9  # images in [-1, 1]: air sits at -1 (as evaluator.use.foreground_mask)


def joint_foreground(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Voxels brighter than air in either image (images in [-1, 1])."""
    return (np.asarray(a) > FOREGROUND) | (np.asarray(b) > FOREGROUND)


def score_of(error: np.ndarray, foreground: np.ndarray) -> float:
    """``1 - mean |E| / OUTPUT_SCALE`` inside ``foreground`` (over the whole image if it is empty)."""
    magnitude = np.abs(np.asarray(error, dtype=np.float64)) / OUTPUT_SCALE
    mask = np.asarray(foreground, dtype=bool)
    return float(1.0 - (magnitude[mask].mean() if mask.any() else magnitude.mean()))


INTERIOR_MM = 12.0  # the interior score leaves out this much of the head's rim
STATISTICS = ("foreground", "interior")


def interior(foreground: np.ndarray, spacing: tuple[float, ...], slice_axis: int | None = None,
             depth_mm: float = INTERIOR_MM) -> np.ndarray:
    """The part of ``foreground`` deeper than ``depth_mm`` from its edge (scipy's Euclidean distance
    transform in mm); with ``slice_axis`` (a 2D evaluator over a stack) slice by slice, in-plane."""
    foreground = np.asarray(foreground, dtype=bool)
    if slice_axis is None:
        return ndi.distance_transform_edt(foreground, sampling=spacing) > depth_mm
    plane = tuple(s for axis, s in enumerate(spacing) if axis != slice_axis)
    moved = np.moveaxis(foreground, slice_axis, 0)
    deep = np.stack([ndi.distance_transform_edt(s, sampling=plane) > depth_mm for s in moved])
    return np.moveaxis(deep, 0, slice_axis)


def scores_of(error: np.ndarray, foreground: np.ndarray, spacing: tuple[float, ...],
              slice_axis: int | None = None) -> dict[str, float]:
    """The score over the joint foreground (the paper's) and over its interior (the head's rim left
    out, where an evaluator's error on aligned images tends to be largest); the interior falls back
    to the whole foreground when it is empty."""
    deep = interior(foreground, spacing, slice_axis)
    return {"foreground": score_of(error, foreground),
            "interior": score_of(error, deep if deep.any() else foreground)}


NMI_BINS = 32


def nmi(reference: np.ndarray, moved: np.ndarray, bins: int = NMI_BINS) -> float:
    """Normalised mutual information (Studholme; scikit-image, ``bins`` bins), the usual label-free
    comparison score: higher = better aligned (1 for independent images, 2 for identical ones)."""
    from skimage.metrics import normalized_mutual_information

    return float(normalized_mutual_information(np.asarray(reference), np.asarray(moved), bins=bins))
