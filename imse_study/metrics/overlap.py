"""Overlap metrics of the IMSE paper (Tables 2, 3): Dice and HD95 of label maps.

Inputs may be numpy arrays or torch tensors (any device; metric values come back as Python floats).

Label maps are integer arrays of shape ``(*S)`` or ``(B, 1, *S)`` with 2 or 3 spatial axes. Float
arrays are accepted when every value is a whole number (a label map warped with nearest-neighbour
interpolation comes back as floats); a fractional value means linear interpolation was used by
mistake and raises ``ValueError``. A 3-axis array is always read as one 3D volume ``(D, H, W)``.

Per-label results are dicts keyed by the label value (``int``), or by name when ``label_names``
(``{name: value}``) is given, plus ``"mean"`` over the labels that have a value. Build tidy-table
columns by prefixing, e.g. ``{f"dice_{k}": v for k, v in dice(...).items()}`` -> ``dice_csf``.

NaN rules (a NaN is "undefined", never "bad"; it is left out of ``"mean"``):
- Dice: NaN for a label absent from both maps (nothing to overlap).
- HD95: NaN for a label absent from either map (no surface to measure a distance to). Dice is 0
  when a label is present in only one map, so such a failure still shows in Dice.
- With a batch ``B > 1`` each image is scored on its own and a label's value is the mean over the
  images where it is defined; ``"mean"`` is NaN when no label has a value.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from monai.metrics import compute_hausdorff_distance


ArrayLike = np.ndarray | torch.Tensor
Key = int | str

__all__ = ["dice", "hd95"]


# ----------------------------------------------------------------------------------------------
# Label maps
# ----------------------------------------------------------------------------------------------


def _to_numpy(x: ArrayLike, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{what} must be a numpy array or a torch tensor, got {type(x).__name__}")


def _as_label_batch(x: ArrayLike, what: str) -> np.ndarray:
    """Validate a label map and return it as int64 of shape ``(B, *S)``."""
    a = _to_numpy(x, what)
    if a.ndim in (2, 3):
        a = a[None]
    elif a.ndim in (4, 5):
        if a.shape[1] != 1:
            raise ValueError(
                f"{what} has shape {a.shape}: a batched label map must be (B, 1, *S) with one channel "
                "holding integer labels (not one-hot)"
            )
        a = a[:, 0]
    else:
        raise ValueError(f"{what} has shape {a.shape}: expected (*S) or (B, 1, *S) with 2 or 3 spatial axes")
    if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64, copy=False)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{what} has dtype {a.dtype}: label maps must hold integers")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} holds NaN or inf values")
    if not np.array_equal(a, np.round(a)):
        raise ValueError(
            f"{what} holds non-integer values (e.g. {a[a != np.round(a)].flat[0]}): "
            "warp label maps with nearest-neighbour interpolation, not linear"
        )
    return a.astype(np.int64)


def _label_pair(pred: ArrayLike, true: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = _as_label_batch(pred, "pred_labels")
    t = _as_label_batch(true, "true_labels")
    if p.shape != t.shape:
        raise ValueError(f"label maps differ in shape: pred {p.shape} vs true {t.shape}")
    return p, t


def _resolve_labels(
    p: np.ndarray,
    t: np.ndarray,
    labels: Iterable[int] | None,
    label_names: Mapping[str, int] | None,
) -> list[tuple[Key, int]]:
    """The (key, label value) pairs to score, in output order."""
    names: dict[int, str] = {}
    if label_names is not None:
        for name, value in label_names.items():
            value = int(value)
            if value in names:
                raise ValueError(f"label_names maps both {names[value]!r} and {name!r} to label {value}")
            names[value] = str(name)
    if labels is not None:
        values = [int(v) for v in labels]
        if len(set(values)) != len(values):
            raise ValueError(f"labels has duplicates: {values}")
    elif label_names is not None:
        values = list(names)
    else:
        values = sorted(int(v) for v in np.union1d(np.unique(p), np.unique(t)) if v != 0)
    if label_names is not None:
        missing = [v for v in values if v not in names]
        if missing:
            raise ValueError(f"labels {missing} have no name in label_names")
        return [(names[v], v) for v in values]
    return [(v, v) for v in values]


def _nanmean(values: Iterable[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _summarise(keys: list[tuple[Key, int]], per_image: np.ndarray) -> dict[Key, float]:
    """``per_image`` is (B, L): mean over images per label (NaN-skipping), then ``"mean"`` over labels."""
    out: dict[Key, float] = {key: _nanmean(per_image[:, i]) for i, (key, _) in enumerate(keys)}
    out["mean"] = _nanmean(out.values())
    return out


def dice(
    pred_labels: ArrayLike,
    true_labels: ArrayLike,
    labels: Iterable[int] | None = None,
    label_names: Mapping[str, int] | None = None,
) -> dict[Key, float]:
    """Dice overlap 2|P∩T| / (|P| + |T|) per label and their mean (paper, Table 2 "Dice").

    ``labels=None`` scores every non-zero label present in either map (or every label of
    ``label_names`` when given). A label absent from both maps gets NaN and is left out of the mean.

    Computed directly from voxel counts rather than with MONAI's ``DiceMetric``: it is exact
    (no smoothing epsilon), needs no one-hot copy per label, and defines the both-empty case as
    NaN. Wherever a label is in at least one map it equals ``DiceMetric(include_background=True,
    ignore_empty=False)`` on one-hot input (checked in the tests).
    """
    p, t = _label_pair(pred_labels, true_labels)
    keys = _resolve_labels(p, t, labels, label_names)
    per_image = np.full((p.shape[0], len(keys)), np.nan)
    for b in range(p.shape[0]):
        for i, (_, value) in enumerate(keys):
            pm, tm = p[b] == value, t[b] == value
            total = int(pm.sum()) + int(tm.sum())
            if total:
                per_image[b, i] = 2.0 * int(np.logical_and(pm, tm).sum()) / total
    return _summarise(keys, per_image)


def _check_spacing(spacing: float | Sequence[float] | None, ndim: int) -> list[float]:
    if spacing is None:
        return [1.0] * ndim
    arr = np.asarray(spacing, dtype=float)
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    if arr.shape != (ndim,):
        raise ValueError(
            f"spacing {spacing!r} does not fit {ndim} spatial axes: give one number per array axis, or one in all"
        )
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError(f"spacing must be positive and finite, got {spacing!r}")
    return arr.tolist()


def hd95(
    pred_labels: ArrayLike,
    true_labels: ArrayLike,
    spacing: float | Sequence[float] | None = None,
    labels: Iterable[int] | None = None,
    label_names: Mapping[str, int] | None = None,
) -> dict[Key, float]:
    """95th-percentile symmetric Hausdorff distance per label and mean (paper, Table 2 "HD95").

    In physical units: ``spacing`` gives the voxel size along each array axis (one number per
    spatial axis, or one number for isotropic voxels; ``None`` means 1, i.e. voxels). Computed by
    ``monai.metrics.compute_hausdorff_distance(percentile=95)`` on the one-hot masks: the larger of
    the two directed 95th percentiles of edge-to-edge Euclidean distances. A label absent from
    either map gets NaN (no surface to measure to; MONAI would warn and return NaN or inf depending
    on the version) and is left out of the mean. The IMSE authors used medpy's ``hd95`` in voxels.
    """
    p, t = _label_pair(pred_labels, true_labels)
    sp = _check_spacing(spacing, p.ndim - 1)
    keys = _resolve_labels(p, t, labels, label_names)
    per_image = np.full((p.shape[0], len(keys)), np.nan)
    for b in range(p.shape[0]):
        both = [i for i, (_, v) in enumerate(keys) if (p[b] == v).any() and (t[b] == v).any()]
        if not both:
            continue
        values = [keys[i][1] for i in both]
        yp = torch.from_numpy(np.stack([p[b] == v for v in values])[None])
        yt = torch.from_numpy(np.stack([t[b] == v for v in values])[None])
        with warnings.catch_warnings():
            # MONAI 1.5-1.6 warn about their own internal use of a deprecated argument.
            warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
            hd = compute_hausdorff_distance(yp, yt, include_background=True, percentile=95, spacing=sp)
        per_image[b, both] = hd[0].double().cpu().numpy()
    return _summarise(keys, per_image)
