"""Where a registered pair disagrees: regions of large |E| in the evaluator's error map.

Two readings of the same map:

* without labels, the connected areas (scipy's ``ndimage.label``) where the smoothed |E| exceeds
  :data:`REGION_ERROR`, largest total error first;
* with a label map of the target, every label's mean |E|, worst first, a label flagged when its
  mean exceeds :data:`LABEL_ERROR`.

Sizes and centres are physical (mm, from the target's affine), so a region can be found in any
viewer. Thresholds are in the units of E (images scaled to [-1, 1]; |E| <= 2).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

REGION_ERROR = 0.25  # |E| above this (after smoothing) belongs to a region
LABEL_ERROR = 0.15  # a label whose mean |E| exceeds this is flagged
SMOOTH_VOXELS = 1.0  # Gaussian sigma that keeps isolated noisy voxels out of the regions
MIN_VOXELS = 9  # smaller connected areas are noise, not a misregistered structure
MAX_REGIONS = 10


def _voxel_size(affine: np.ndarray, ndim: int) -> float:
    """mm^ndim of one voxel (area in 2D, volume in 3D) from the affine's first ``ndim`` columns."""
    columns = np.asarray(affine, dtype=np.float64)[:3, :ndim]
    if ndim == 3:
        return float(abs(np.linalg.det(columns)))
    return float(np.linalg.norm(np.cross(columns[:, 0], columns[:, 1])))


def _centroid_mm(mask: np.ndarray, affine: np.ndarray) -> list[float]:
    index = np.argwhere(mask).mean(axis=0)
    point = np.zeros(4)
    point[: index.size], point[3] = index, 1.0
    return [round(float(v), 2) for v in (np.asarray(affine) @ point)[:3]]


def _describe(mask: np.ndarray, error: np.ndarray, affine: np.ndarray, unit: str, size: float) -> dict:
    voxels = int(mask.sum())
    return {"voxels": voxels, unit: round(voxels * size, 2), "mean_error": round(float(error[mask].mean()), 4),
            "centroid_mm": _centroid_mm(mask, affine)}


def error_regions(error: np.ndarray, foreground: np.ndarray, affine: np.ndarray,
                  threshold: float = REGION_ERROR) -> tuple[list[dict], np.ndarray]:
    """Connected areas of large |E| inside ``foreground``, most total error first (at most
    :data:`MAX_REGIONS`): a list of dicts (``id``, ``voxels``, ``mm2``/``mm3``, ``mean_error``,
    ``centroid_mm``) and a label map of them (0 elsewhere, ``id`` inside)."""
    magnitude = np.abs(np.asarray(error, dtype=np.float32))
    smooth = ndi.gaussian_filter(magnitude, SMOOTH_VOXELS)
    components, count = ndi.label((smooth > threshold) & np.asarray(foreground, dtype=bool))
    unit, size = ("mm3", _voxel_size(affine, 3)) if error.ndim == 3 else ("mm2", _voxel_size(affine, 2))
    if count == 0:
        return [], np.zeros(error.shape, dtype=np.int32)
    index = np.arange(1, count + 1)
    voxels = ndi.sum_labels(np.ones_like(magnitude), components, index)
    totals = ndi.sum_labels(magnitude, components, index)
    keep = [k for k in np.argsort(-totals) if voxels[k] >= MIN_VOXELS][:MAX_REGIONS]
    regions, region_map = [], np.zeros(error.shape, dtype=np.int32)
    for rank, k in enumerate(keep, start=1):
        mask = components == index[k]
        region_map[mask] = rank
        regions.append({"id": rank, **_describe(mask, magnitude, affine, unit, size)})
    return regions, region_map


def label_regions(error: np.ndarray, labels: np.ndarray, affine: np.ndarray, names: dict[int, str] | None = None,
                  threshold: float = LABEL_ERROR) -> tuple[list[dict], np.ndarray]:
    """Every nonzero label of ``labels`` (on the error map's grid) with its mean |E|, worst first,
    ``flagged`` when above ``threshold``; and the label map of the flagged ones."""
    magnitude = np.abs(np.asarray(error, dtype=np.float32))
    labels = np.asarray(labels)
    if labels.shape != magnitude.shape:
        raise ValueError(f"the label map {labels.shape} is not on the error map's grid {magnitude.shape}")
    unit, size = ("mm3", _voxel_size(affine, 3)) if error.ndim == 3 else ("mm2", _voxel_size(affine, 2))
    regions, flagged = [], np.zeros(labels.shape, dtype=np.int32)
    for value in (int(v) for v in np.unique(labels) if v != 0):
        mask = labels == value
        region = {"label": value, **_describe(mask, magnitude, affine, unit, size)}
        if names and value in names:
            region["name"] = names[value]
        region["flagged"] = bool(region["mean_error"] > threshold)
        if region["flagged"]:
            flagged[mask] = value
        regions.append(region)
    regions.sort(key=lambda r: -r["mean_error"])
    return regions, flagged
