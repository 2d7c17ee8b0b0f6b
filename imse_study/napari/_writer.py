"""napari writers: image and labels layers to NIfTI through :func:`imse_study.data.io.save_nifti`.

The affine is the one the reader stored in ``metadata["affine"]`` when it fits the layer, else one
built from the layer's scale in the package's array convention (see ``_common.default_affine``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imse_study.data.io import save_nifti, spacing_of
from imse_study.napari._common import default_affine


def _affine(data: np.ndarray, meta: dict) -> np.ndarray:
    affine = (meta.get("metadata") or {}).get("affine")
    scale = meta.get("scale") or [1.0] * data.ndim
    if affine is not None:
        affine = np.asarray(affine, dtype=np.float64)
        if affine.shape == (4, 4) and np.allclose(spacing_of(affine, data.ndim), list(scale)[-data.ndim:], rtol=1e-4):
            return affine
    return default_affine(scale, data.ndim)


def _write(path: str, data: Any, meta: dict, labels: bool) -> list[str]:
    if meta.get("rgb"):
        raise ValueError("RGB layers cannot be written as NIfTI by imse-study; convert to a grey image first")
    data = np.asarray(data)
    if data.ndim not in (2, 3):
        raise ValueError(f"only 2D and 3D layers can be written as NIfTI, this one has shape {data.shape}")
    if not str(path).lower().endswith((".nii", ".nii.gz")):
        path = f"{path}.nii.gz"
    return [str(save_nifti(path, data, _affine(data, meta), labels=labels))]


def write_image(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer for Image layers (float32 NIfTI)."""
    return _write(path, data, meta, labels=False)


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer for Labels layers (compact integer NIfTI with the label intent)."""
    return _write(path, data, meta, labels=True)
