"""napari reader for NIfTI (.nii, .nii.gz) through :mod:`imse_study.data.io` (nibabel).

3D volumes are reoriented (whole-voxel flips and swaps, never resampled) to the package's array
layout (z, y, x) = (S, P, R), so that napari's slider runs through axial slices; 2D images are kept
as they are. The voxel spacing becomes the layer's ``scale`` and the affine is kept in the layer's
``metadata["affine"]`` for the writer. Integer files with few distinct values, or files named like
``*seg*`` / ``*label*``, open as Labels layers.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from imse_study.data.io import (
    ARRAY_AXCODES,
    NIFTI_SUFFIXES,
    load_labels,
    load_nifti,
    reorient,
    spacing_of,
)
from imse_study.napari._common import MAX_LABEL_VALUES, looks_like_labels_name


def _is_nifti(path) -> bool:
    return isinstance(path, (str, Path)) and str(path).lower().endswith(NIFTI_SUFFIXES)


def get_reader(path):
    """npe2 reader hook: a reader function for NIfTI paths (or a list of them), else None."""
    paths = path if isinstance(path, (list, tuple)) else [path]
    if not paths or not all(_is_nifti(p) for p in paths):
        return None
    return read_nifti


def _integer_labels(path: Path) -> bool:
    img = nib.load(str(path))
    if not np.issubdtype(img.get_data_dtype(), np.integer):
        return False
    data = np.asanyarray(img.dataobj)
    return np.unique(data).size <= MAX_LABEL_VALUES


def _stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_one(path) -> tuple:
    """One NIfTI file as napari ``(data, kwargs, layer_type)``."""
    path = Path(path)
    as_labels = looks_like_labels_name(path) or _integer_labels(path)
    layer_type = "image"
    if as_labels:
        try:
            data, affine = load_labels(path)
            layer_type = "labels"
        except ValueError:  # named like a label map but holds intensities
            as_labels = False
    if not as_labels:
        data, affine, _ = load_nifti(path)
    if data.ndim == 3:
        data, affine = reorient(data, affine, ARRAY_AXCODES)
    scale = spacing_of(affine, data.ndim)
    kwargs = {
        "name": _stem(path),
        "scale": scale,
        "metadata": {"affine": np.asarray(affine), "source_path": str(path)},
    }
    if layer_type == "image":
        lo, hi = float(np.min(data)), float(np.max(data))
        kwargs["contrast_limits"] = (lo, hi if hi > lo else lo + 1.0)
    return data, kwargs, layer_type


def read_nifti(path) -> list[tuple]:
    """Reader function: every path given becomes one layer."""
    paths = path if isinstance(path, (list, tuple)) else [path]
    return [read_one(p) for p in paths]
