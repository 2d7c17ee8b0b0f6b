"""Spatial error against Dice (paper section 4.5, Figures 7 and 8).

The paper asks whether a label-free error score can tell how well two images of different
modalities are aligned. It moves test images by many random transforms, scores each pair with

* IMSE: the mean of |E(x, y)| over the joint foreground of the two images, and
* CycleGAN / RegGAN: translate the moving image y into x's modality with the generator G, then the
  mean of |G(y) - x| over the same region,

and correlates each score with the Dice of the moved labels against the true labels. (The paper
reports ``1 - normalised mean |E|``, a decreasing affine function of our error score: it flips the
sign of every correlation and changes nothing else. Here the error itself is kept, so a good score
correlates *negatively* with Dice.)

Everything here is a function of tensors or arrays; nothing reads files or draws:

* :func:`misaligned_set` builds the transformed test pairs at graded strengths (the paper's random
  affine + elastic displacement, :func:`imse_study.augment.random_spatial_displacement`, scaled by
  a factor per pair) with their labels and Dice;
* :func:`imse_error_maps`, :func:`translator_error_maps` and :func:`masked_mean_abs` give the
  error maps and per-pair scores;
* :func:`correlation_ci` (Pearson and Spearman with 95 % confidence intervals; Fisher z or a paired
  bootstrap) and :func:`correlation_table` turn a tidy table of scores into the Figure 8 numbers;
  :func:`correlation_difference` bootstraps the difference of two methods' correlations on the
  same pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats

from imse_study.augment import random_spatial_displacement
from imse_study.evaluator.use import error_map, foreground_mask
from imse_study.metrics import dice
from imse_study.warp import warp

__all__ = [
    "CORRELATION_METHODS",
    "MisalignedSet",
    "correlation_ci",
    "correlation_difference",
    "correlation_table",
    "error_scores",
    "imse_error_maps",
    "masked_mean_abs",
    "misaligned_set",
    "translator_error_maps",
]

CORRELATION_METHODS = ("pearson", "spearman")
MIN_PAIRS = 4  # Fisher z needs n > 3


# --------------------------------------------------------------------------------------------
# Test pairs at graded misalignment


@dataclass
class MisalignedSet:
    """Test pairs for Figure 8: a fixed reference x and a moved image y of the other modality.

    ``reference`` (P, 1, *S) is the evaluator-modality image, untouched; ``moved`` (P, 1, *S) the
    other modality's image of the same slice warped by ``field`` (P, dim, *S, voxels), which is the
    paper's random displacement times ``strength``; ``moved_labels`` / ``labels`` (P, *S) the
    labels warped the same way and the true ones; ``dice`` (P,) the mean Dice over the labels
    present; ``items`` (P,) the test item each pair comes from.
    """

    reference: torch.Tensor
    moved: torch.Tensor
    labels: torch.Tensor
    moved_labels: torch.Tensor
    field: torch.Tensor
    items: np.ndarray
    strength: np.ndarray
    dice: np.ndarray

    def __len__(self) -> int:
        return int(self.items.shape[0])

    def frame(self) -> pd.DataFrame:
        """One row per pair: ``pair``, ``item``, ``strength``, ``dice``, ``max_displacement`` (voxels)."""
        mag = self.field.pow(2).sum(1).sqrt().flatten(1).amax(1).numpy()
        return pd.DataFrame({"pair": np.arange(len(self)), "item": self.items, "strength": self.strength,
                             "dice": self.dice, "max_displacement": mag})


def _check_images(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() not in (4, 5) or x.shape[1] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor (N, 1, H, W) or (N, 1, D, H, W), got {shape}")


def misaligned_set(reference: torch.Tensor, other: torch.Tensor, labels: torch.Tensor | np.ndarray,
                   n_pairs: int = 200, max_strength: float = 1.5, seed: int = 0,
                   strengths: Iterable[float] | None = None, **displacement_kwargs) -> MisalignedSet:
    """``n_pairs`` pairs (section 4.5, Figure 8): test item ``i % N``, the other image moved by the
    paper's random displacement scaled by a strength drawn uniformly in ``[0, max_strength]``.

    ``reference`` and ``other`` are aligned (N, 1, *S) images, ``labels`` (N, *S) their shared label
    map. ``strengths`` (one per pair) overrides the random draw. ``displacement_kwargs`` go to
    :func:`~imse_study.augment.random_spatial_displacement` (rotation, translation, elastic ...).
    Seeded: the same arguments give the same pairs.
    """
    _check_images("reference", reference)
    _check_images("other", other)
    labels = torch.as_tensor(np.asarray(labels)) if not isinstance(labels, torch.Tensor) else labels
    if reference.shape != other.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and other {tuple(other.shape)} must have the same shape")
    if tuple(labels.shape) != (reference.shape[0], *reference.shape[2:]):
        raise ValueError(f"labels {tuple(labels.shape)} must be (N, *S) = {(reference.shape[0], *reference.shape[2:])}")
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    if not (math.isfinite(max_strength) and max_strength >= 0):
        raise ValueError(f"max_strength must be a finite number >= 0, got {max_strength}")
    rng = np.random.default_rng(seed)
    if strengths is None:
        strength = rng.uniform(0.0, max_strength, n_pairs)
    else:
        strength = np.asarray(list(strengths), dtype=np.float64)
        if strength.shape != (n_pairs,) or not np.all(np.isfinite(strength)) or np.any(strength < 0):
            raise ValueError(f"strengths must be {n_pairs} finite numbers >= 0")
    n = reference.shape[0]
    items = np.arange(n_pairs) % n
    g = torch.Generator().manual_seed(int(seed))
    shape = tuple(reference.shape[2:])
    field = random_spatial_displacement(shape, n_pairs, generator=g, **displacement_kwargs)
    field = field * torch.as_tensor(strength, dtype=field.dtype).view(-1, *([1] * (field.dim() - 1)))
    idx = torch.as_tensor(items)
    moved = warp(other[idx], field)
    lab = labels[idx].long().unsqueeze(1)
    moved_labels = warp(lab, field, mode="nearest")[:, 0]
    scores = np.array([dice(moved_labels[p].numpy()[None], lab[p, 0].numpy()[None])["mean"] for p in range(n_pairs)])
    return MisalignedSet(reference=reference[idx], moved=moved, labels=lab[:, 0], moved_labels=moved_labels,
                         field=field, items=items, strength=strength, dice=scores)


# --------------------------------------------------------------------------------------------
# Error maps and scores


def masked_mean_abs(error: torch.Tensor | np.ndarray, mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """Mean |error| inside ``mask`` per item (axis 0); NaN for an item whose mask is empty."""
    e = np.abs(np.asarray(error.detach().cpu() if isinstance(error, torch.Tensor) else error, dtype=np.float64))
    m = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask).astype(bool)
    if e.shape != m.shape:
        raise ValueError(f"error {e.shape} and mask {m.shape} must have the same shape")
    if e.ndim < 2:
        raise ValueError(f"expected a batch of maps (N, ...), got shape {e.shape}")
    axes = tuple(range(1, e.ndim))
    count = m.sum(axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(count > 0, (e * m).sum(axes) / np.maximum(count, 1), np.nan)
    return out


def _batched(fn: Callable[[slice], torch.Tensor], n: int, batch: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(slice(i, i + batch)) for i in range(0, n, batch)])


def imse_error_maps(evaluator: torch.nn.Module, reference: torch.Tensor, moved: torch.Tensor,
                    batch: int = 16) -> torch.Tensor:
    """E(x, y) for every pair (section 4.5, Figure 7), signed, (P, 1, *S)."""
    return _batched(lambda s: error_map(evaluator, reference[s], moved[s]), reference.shape[0], batch)


def translator_error_maps(translator: torch.nn.Module, reference: torch.Tensor, moved: torch.Tensor,
                          batch: int = 16) -> torch.Tensor:
    """G(y) - x for every pair (the GAN baselines of section 4.5, Figure 7), signed, (P, 1, *S)."""
    from imse_study.baselines.translator import translate_with

    if reference.shape != moved.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and moved {tuple(moved.shape)} must have the same shape")
    return _batched(lambda s: translate_with(translator, moved[s]) - reference[s], reference.shape[0], batch)


def error_scores(pairs: MisalignedSet, maps: dict[str, torch.Tensor], threshold: float = -0.9) -> pd.DataFrame:
    """Tidy table, one row per pair and method: ``pair``, ``item``, ``strength``, ``dice``,
    ``method``, ``error`` = mean |map| over the joint foreground of reference and moved image
    (the paper's "joint region of Moving and Target masks"; the image foreground is used rather
    than the labels, so the score needs no labels)."""
    mask = (foreground_mask(pairs.reference, threshold) | foreground_mask(pairs.moved, threshold))
    base = pairs.frame()
    frames = []
    for method, m in maps.items():
        if tuple(m.shape) != tuple(pairs.reference.shape):
            raise ValueError(f"{method}: error maps {tuple(m.shape)} do not match the pairs {tuple(pairs.reference.shape)}")
        frames.append(base.assign(method=method, error=masked_mean_abs(m, mask)))
    if not frames:
        return base.assign(method=pd.Series(dtype=str), error=pd.Series(dtype=float)).iloc[:0]
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# Correlations with confidence intervals


def _clean(x: Iterable[float], y: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    """The two series as float arrays, pairs with a NaN or inf in either value dropped."""
    a, b = (np.asarray(v if hasattr(v, "__len__") else list(v), dtype=np.float64).ravel() for v in (x, y))
    if a.shape != b.shape:
        raise ValueError(f"x and y must have the same length, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _statistic(method: str) -> Callable[[np.ndarray, np.ndarray], float]:
    if method == "pearson":
        return lambda a, b: float(stats.pearsonr(a, b).statistic)
    if method == "spearman":
        return lambda a, b: float(stats.spearmanr(a, b).statistic)
    raise ValueError(f"unknown correlation method {method!r}: choose one of {', '.join(CORRELATION_METHODS)}")


def correlation_ci(x: Iterable[float], y: Iterable[float], method: str = "pearson", confidence: float = 0.95,
                   ci: str = "fisher", n_resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Correlation of ``x`` with ``y`` and its confidence interval (Figure 8's numbers).

    Pairs with a NaN or inf in either value are dropped (``n`` counts the rest). ``method``:
    ``pearson`` or ``spearman``. ``ci``:

    * ``fisher``: Fisher's z transform; Pearson uses ``scipy.stats.pearsonr(...).confidence_interval``
      (standard error ``1/sqrt(n - 3)``), Spearman the Bonett-Wright (2000) standard error
      ``sqrt((1 + r^2 / 2) / (n - 3))``;
    * ``bootstrap``: ``scipy.stats.bootstrap`` over the pairs (paired, BCa, ``n_resamples``, seeded).

    Returns ``r``, ``low``, ``high``, ``p`` (two-sided test of zero correlation, scipy's) and ``n``.
    A constant input has no correlation: r, low, high and p are NaN. Raises ValueError on fewer than
    4 usable pairs or bad arguments.
    """
    stat = _statistic(method)
    if ci not in ("fisher", "bootstrap"):
        raise ValueError(f"ci must be 'fisher' or 'bootstrap', not {ci!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a, b = _clean(x, y)
    n = int(a.size)
    if n < MIN_PAIRS:
        raise ValueError(f"a correlation with a confidence interval needs at least {MIN_PAIRS} finite pairs, got {n}")
    nan = {"r": math.nan, "low": math.nan, "high": math.nan, "p": math.nan, "n": n}
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return nan
    if method == "pearson":
        res = stats.pearsonr(a, b)
        r, p = float(res.statistic), float(res.pvalue)
    else:
        res = stats.spearmanr(a, b)
        r, p = float(res.statistic), float(res.pvalue)
    if ci == "fisher":
        if method == "pearson":
            interval = res.confidence_interval(confidence_level=confidence)
            low, high = float(interval.low), float(interval.high)
        else:
            low, high = _fisher_interval(r, n, math.sqrt((1 + r * r / 2) / (n - 3)), confidence)
    else:
        boot = stats.bootstrap((a, b), stat, paired=True, vectorized=False, n_resamples=n_resamples,
                               confidence_level=confidence, method="BCa", random_state=np.random.default_rng(seed))
        low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
        if not (math.isfinite(low) and math.isfinite(high)):  # degenerate resamples: fall back to percentiles
            dist = boot.bootstrap_distribution
            alpha = (1 - confidence) / 2
            low, high = (float(np.nanquantile(dist, q)) for q in (alpha, 1 - alpha))
        low, high = min(low, r), max(high, r)
    return {"r": r, "low": low, "high": high, "p": p, "n": n}


def _fisher_interval(r: float, n: int, se: float, confidence: float) -> tuple[float, float]:
    """``tanh(atanh(r) -+ z * se)``; exact +-1 stays at +-1."""
    if abs(r) >= 1:
        return float(r), float(r)
    z = stats.norm.ppf(0.5 + confidence / 2)
    centre = math.atanh(r)
    return math.tanh(centre - z * se), math.tanh(centre + z * se)


def correlation_table(scores: pd.DataFrame, x: str = "error", y: str = "dice", by: str = "method",
                      methods: Iterable[str] = CORRELATION_METHODS, confidence: float = 0.95, ci: str = "fisher",
                      n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Figure 8 as a table: for each group of ``scores[by]`` and correlation method, ``r`` of
    ``scores[x]`` with ``scores[y]``, its interval (``low``, ``high``), ``p`` and ``n``."""
    missing = [c for c in (x, y, by) if c not in scores.columns]
    if missing:
        raise ValueError(f"scores has no column(s) {missing}; it has {list(scores.columns)}")
    rows = []
    for group, g in scores.groupby(by, sort=False):
        for method in methods:
            row = {by: group, "correlation": method, "x": x, "y": y, "ci": ci, "confidence": confidence}
            row.update(correlation_ci(g[x], g[y], method, confidence, ci, n_resamples, seed))
            rows.append(row)
    return pd.DataFrame(rows)


def _rowwise(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    """Pearson or Spearman correlation of each row of ``a`` with the same row of ``b`` (NaN if constant)."""
    # a constant row has no correlation; test it exactly (its centred values may be ~1e-17, not 0)
    constant = (np.ptp(a, axis=1) == 0) | (np.ptp(b, axis=1) == 0)
    if method == "spearman":
        a, b = stats.rankdata(a, axis=1), stats.rankdata(b, axis=1)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    ok = (den > 0) & ~constant
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, (a * b).sum(1) / np.where(ok, den, 1.0), np.nan)


def correlation_difference(scores: pd.DataFrame, first: str, second: str, x: str = "error", y: str = "dice",
                           method: str = "spearman", by: str = "method", key: str = "pair",
                           confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of ``r(first) - r(second)`` on the same pairs (matched by ``key``).

    Resamples pairs (not methods), so the two correlations share every resample, as they share the
    pairs. Returns ``difference``, ``low``, ``high`` (percentile interval) and ``n``; a negative
    difference of error-vs-Dice correlations means ``first`` tracks Dice more strongly (in the
    expected direction) than ``second``.
    """
    stat = _statistic(method)
    a = scores[scores[by] == first].set_index(key)
    b = scores[scores[by] == second].set_index(key)
    if a.empty or b.empty:
        raise ValueError(f"no rows for {first!r} or {second!r} in column {by!r}")
    joined = a[[x, y]].merge(b[[x]], left_index=True, right_index=True, suffixes=("", "_2"))
    joined = joined[np.isfinite(joined.to_numpy(dtype=float)).all(1)]
    n = len(joined)
    if n < MIN_PAIRS:
        raise ValueError(f"need at least {MIN_PAIRS} shared finite pairs, got {n}")
    xa, xb, yy = (joined[c].to_numpy(float) for c in (x, f"{x}_2", y))
    if np.ptp(xa) == 0 or np.ptp(xb) == 0 or np.ptp(yy) == 0:
        return {"difference": math.nan, "low": math.nan, "high": math.nan, "n": n}
    diff = stat(xa, yy) - stat(xb, yy)
    idx = np.random.default_rng(seed).integers(0, n, (n_resamples, n))
    draws = _rowwise(xa[idx], yy[idx], method) - _rowwise(xb[idx], yy[idx], method)
    draws = draws[np.isfinite(draws)]  # a resample with a constant column has no correlation
    alpha = (1 - confidence) / 2
    low, high = (float(np.quantile(draws, q)) for q in (alpha, 1 - alpha)) if draws.size else (math.nan, math.nan)
    return {"difference": float(diff), "low": low, "high": high, "n": n}
