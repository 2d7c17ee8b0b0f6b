"""Intensity scaling to [-1, 1], the range every model in the package works in.

MR has no absolute unit, so it is scaled per image between two percentiles of the image;
CT is in Hounsfield units, so it uses one fixed window for every image (air -1000 HU -> -1).
"""

from __future__ import annotations

import numpy as np

from imse_study.modalities import is_ct

MR_PERCENTILES = (0.5, 99.5)
CT_WINDOW_HU = (-1000.0, 1500.0)


def _to_unit_range(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        raise ValueError(
            f"cannot scale an image with range [{lo}, {hi}] to [-1, 1]: is the image empty or constant?"
        )
    out = (np.asarray(x, dtype=np.float32) - lo) / (hi - lo) * 2.0 - 1.0
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def normalise_mr(x: np.ndarray, percentiles: tuple[float, float] = MR_PERCENTILES) -> np.ndarray:
    """Map the ``percentiles`` of ``x`` to -1 and 1 and clip (per image)."""
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("the MR image holds NaN or inf values; mask or fill them before scaling")
    lo, hi = np.percentile(x, percentiles)
    return _to_unit_range(x, float(lo), float(hi))


def normalise_ct(hu: np.ndarray, window: tuple[float, float] = CT_WINDOW_HU) -> np.ndarray:
    """Map the fixed Hounsfield ``window`` to [-1, 1] and clip."""
    hu = np.asarray(hu, dtype=np.float32)
    if not np.all(np.isfinite(hu)):
        raise ValueError("the CT image holds NaN or inf values; mask or fill them before scaling")
    return _to_unit_range(hu, *window)


def normalise(x: np.ndarray, modality: str) -> np.ndarray:
    """Scale ``x`` by the rule for ``modality`` (``ct`` uses the HU window, anything else is MR)."""
    return normalise_ct(x) if is_ct(modality) else normalise_mr(x)
