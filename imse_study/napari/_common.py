"""Small helpers shared by the reader, the writer and the widgets (no Qt here)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from imse_study.data.phantom import MODALITIES
from imse_study.modalities import name_tokens

_MODALITY_TOKENS = name_tokens()  # t1, T1w, ... -> t1
_LABEL_NAME = re.compile(r"(seg|label|mask|parc|aseg)", re.IGNORECASE)
MAX_LABEL_VALUES = 256  # an integer file with at most this many distinct values opens as labels


def infer_modality(name: str) -> str | None:
    """The modality a layer or file name speaks of (``t1``, ``t2``, ``pd``, ``ct``), or None.

    Looks for a whole token (``sub-1_T1w``, ``phantom ct``, ``moving t1 (sub-3000)``), so that
    ``ct`` inside another word (``subject``) does not count.
    """
    found = {_MODALITY_TOKENS[t] for t in re.split(r"[^a-z0-9]+", str(name).lower()) if t in _MODALITY_TOKENS}
    return found.pop() if len(found) == 1 else None


def looks_like_labels_name(path: str | Path) -> bool:
    """File names such as ``*seg*``, ``*label*`` hold label maps."""
    return bool(_LABEL_NAME.search(Path(path).name))


def default_affine(scale, ndim: int) -> np.ndarray:
    """voxel -> mm affine for a layer with no stored affine, in the package's array convention.

    3D arrays are (z, y, x) with axes pointing S, P, R (``imse_study.data.io.ARRAY_AXCODES``); 2D
    arrays are (rows, columns) pointing P, R, as the phantom's axial slices. With it, the reader's
    reorientation leaves a written layer as it was.
    """
    s = [float(v) for v in scale][-ndim:]
    a = np.eye(4)
    if ndim == 3:
        a[:3, :3] = [[0, 0, s[2]], [0, -s[1], 0], [s[0], 0, 0]]
    elif ndim == 2:
        a[:3, :3] = [[0, s[1], 0], [-s[0], 0, 0], [0, 0, 1.0]]
    else:
        raise ValueError(f"only 2D and 3D layers can be written as NIfTI, not {ndim}D")
    return a


def layer_affine(layer) -> np.ndarray:
    """voxel -> mm affine of an image or label layer: the one the reader stored (``metadata["affine"]``)
    while it still matches the layer's scale, else :func:`default_affine` of the scale."""
    from imse_study.data.io import spacing_of

    scale = [float(v) for v in layer.scale]
    stored = (getattr(layer, "metadata", None) or {}).get("affine")
    if stored is not None:
        stored = np.asarray(stored, dtype=np.float64)
        if stored.shape == (4, 4) and np.allclose(spacing_of(stored, layer.ndim), scale, rtol=1e-4):
            return stored
    return default_affine(scale, layer.ndim)


__all__ = ["MAX_LABEL_VALUES", "MODALITIES", "default_affine", "infer_modality", "layer_affine",
           "looks_like_labels_name"]
