"""Image-similarity metrics of the IMSE paper's Table 5: NMAE, PSNR and SSIM of a translation.

Images are in [-1, 1], so every metric uses the intensity range ``DATA_RANGE = 2``:

* NMAE: ``mean|prediction - truth| / 2``, the mean absolute error normalised by the range;
* PSNR: scikit-image's ``peak_signal_noise_ratio(truth, prediction, data_range=2)``, in dB;
* SSIM: scikit-image's ``structural_similarity(truth, prediction, data_range=2)`` (default
  7-voxel window, Gaussian weights off), over the whole image, background included.

An exact prediction (``prediction == truth`` everywhere, mean squared error 0) has PSNR ``+inf``:
the limit of ``10 log10(range^2 / MSE)``, reported as such rather than as an arbitrary cap so that
no finite score can be mistaken for a perfect one. It is returned without scikit-image's
divide-by-zero warning; a summary over items must decide how to average it (a mean that includes
it is ``inf``). NMAE is then 0 and SSIM 1.

Inputs may be numpy arrays or torch tensors (any device); values are computed in float64.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ArrayLike = np.ndarray | torch.Tensor

DATA_RANGE = 2.0  # images in [-1, 1]

__all__ = ["DATA_RANGE", "image_quality", "image_quality_per_item"]


def _float64(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _same_shape(prediction: np.ndarray, truth: np.ndarray) -> None:
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction {prediction.shape} and truth {truth.shape} must have the same shape")


def image_quality(prediction: ArrayLike, truth: ArrayLike) -> dict[str, float]:
    """NMAE, PSNR (dB) and SSIM of one image ``(*S)`` (2D or 3D) against its ground truth.

    PSNR is ``inf`` for an exact prediction (see the module docstring).
    """
    p, t = _float64(prediction), _float64(truth)
    _same_shape(p, t)
    exact = bool(np.array_equal(p, t))
    return {
        "nmae": float(np.abs(p - t).mean() / DATA_RANGE),
        "psnr": float("inf") if exact else float(peak_signal_noise_ratio(t, p, data_range=DATA_RANGE)),
        "ssim": float(structural_similarity(t, p, data_range=DATA_RANGE)),
    }


def image_quality_per_item(prediction: ArrayLike, truth: ArrayLike) -> dict[str, np.ndarray]:
    """:func:`image_quality` of each item of a batch ``(N, *S)`` or ``(N, 1, *S)``: arrays of length N."""
    p, t = _float64(prediction), _float64(truth)
    _same_shape(p, t)
    if p.ndim >= 4 and p.shape[1] == 1:  # (N, 1, *S) -> (N, *S)
        p, t = p[:, 0], t[:, 0]
    scores = [image_quality(pi, ti) for pi, ti in zip(p, t)]
    return {k: np.array([s[k] for s in scores], dtype=np.float64) for k in ("nmae", "psnr", "ssim")}
