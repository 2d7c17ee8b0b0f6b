"""Calibration of the IMSE score: score -> mean misalignment in mm, and the chance of a failure.

The score (paper section 4.5, :func:`imse_study.evaluator.use.spatial_error_score`: one minus the
mean |E| / 2 over the joint foreground) ranks pairs by how well they are aligned but has no unit.
Calibration gives it one, on pairs whose true misalignment is known: aligned items of a data set
with label maps (the bundled phantom by default), the non-reference image moved by the paper's
random affine + elastic displacement (:func:`imse_study.augment.random_spatial_displacement`)
scaled by factors from 0 (identity) to 2. For each pair:

* the true mean end-point error (EPE): the displacement's length in mm averaged over the joint
  foreground of the two label maps;
* Dice of the moved labels against the target's; a pair *failed* when its Dice is more than
  :data:`FAILURE_DICE_DROP` below the aligned pair's.

Three fits, each on its own subjects, none on the test subjects (which only check them):

* score -> EPE: isotonic regression (decreasing; :func:`scipy.optimize.isotonic_regression`) on
  the train subjects, read by linear interpolation between the centres of its constant blocks;
* the prediction interval: split-conformal residual quantiles (true - predicted) on the
  validation subjects, in bins of the predicted EPE (the spread grows with the misalignment);
* ``p_failed``: logistic regression of "failed" on the score (train and validation subjects),
  maximum likelihood with a small ridge, its interval from the parameters' covariance (delta
  method on the logit).

Hand-written where no installed library does it: scikit-learn (which has isotonic and logistic
regression) is not a dependency, and the two-parameter logistic fit is a dozen lines of scipy.

A calibration is a small JSON file beside its evaluator (``<evaluator>.qa.json``) that records the
evaluator's SHA-256: a calibration made for other weights is refused, never silently applied.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import ndimage as ndi
from scipy import stats
from scipy.optimize import isotonic_regression, minimize
from imse_study.progress import progress_bar

from imse_study.augment import random_spatial_displacement
from imse_study.evaluator.use import error_map, foreground_mask
from imse_study.metrics import dice
from imse_study.modalities import study_partner
from imse_study.qa.regions import SMOOTH_VOXELS
from imse_study.qa.score import STATISTICS, scores_of
from imse_study.training import unwrap
from imse_study.warp import warp

CALIBRATION_SUFFIX = ".qa.json"
FAILURE_DICE_DROP = 0.1
FACTORS = (0.0, 0.02, 0.05, 0.08, 0.12, 0.16, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0)
# The study's pairs: the evaluator's modality (the reference) and the modality it is checked against.
INTERVAL = 0.9  # the prediction interval's nominal coverage
INTERVAL_BINS = 4
RIDGE = 1e-3
FORMAT = 1


class CalibrationError(ValueError):
    """An evaluator has no calibration, or one that does not fit it."""


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file (an evaluator's weights), hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def calibrate_command(evaluator: str | Path) -> str:
    """The command that calibrates ``evaluator`` (a shipped name or a checkpoint file) where qa reads it."""
    return f"imse-study qa-calibrate --evaluator {evaluator} -o {calibration_path(evaluator)}"


def calibration_path(evaluator: str | Path) -> Path:
    """Where the calibration of ``evaluator`` lives: ``<name>.qa.json`` beside the weights."""
    from imse_study.evaluator.pretrained import PRETRAINED_DIR

    if isinstance(evaluator, str) and (PRETRAINED_DIR / f"{evaluator}.pt").exists():
        return PRETRAINED_DIR / f"{evaluator}{CALIBRATION_SUFFIX}"
    path = Path(evaluator)
    return path.with_name(path.name.removesuffix(".pt") + CALIBRATION_SUFFIX)


def weights_path(evaluator: str | Path) -> Path:
    """The weights file of ``evaluator`` (a shipped name or a path)."""
    from imse_study.evaluator.pretrained import PRETRAINED_DIR

    if isinstance(evaluator, str) and (PRETRAINED_DIR / f"{evaluator}.pt").exists():
        return PRETRAINED_DIR / f"{evaluator}.pt"
    return Path(evaluator)


@dataclass
class Calibration:
    """A fitted score -> misalignment mapping with its interval and failure model (module docstring)."""

    evaluator: str
    sha256: str
    reference_modality: str
    other_modality: str
    score_knots: list[float]  # increasing
    mm_knots: list[float]  # non-increasing: a higher score, a smaller misalignment
    band_edges: list[float]  # predicted-mm bin edges of the interval (len = bins + 1; outer ones infinite)
    residual_low: list[float]  # per bin: the (1 - INTERVAL) / 2 quantile of true - predicted
    residual_high: list[float]
    coverage: float
    logistic: dict[str, Any]  # centre, scale, coef [intercept, slope], covariance 2x2 (standardised score)
    failure_rule: str = f"Dice more than {FAILURE_DICE_DROP} below the aligned pair's"
    statistic: str = "foreground"  # which score the mapping reads (imse_study.qa.score.STATISTICS)
    region_error: float | None = None  # smoothed |E| that aligned pairs exceed in 5 % of their foreground
    fit: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT

    # ------------------------------------------------------------------ reading a score

    def misalignment(self, score: float | np.ndarray) -> np.ndarray:
        """The expected mean misalignment (mm) at ``score`` (clamped to the fitted range)."""
        return np.interp(score, self.score_knots, self.mm_knots)

    def interval(self, score: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``coverage`` prediction interval (mm) of the true misalignment at ``score``."""
        predicted = np.asarray(self.misalignment(score), dtype=np.float64)
        edges = np.asarray(self.band_edges, dtype=np.float64)
        band = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, len(self.residual_low) - 1)
        low = np.maximum(predicted + np.asarray(self.residual_low)[band], 0.0)
        high = np.maximum(predicted + np.asarray(self.residual_high)[band], low)
        return low, high

    def p_failed(self, score: float | np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P(failed | score) and its ~95 % interval (delta method on the logit)."""
        x = (np.asarray(score, dtype=np.float64) - self.logistic["centre"]) / self.logistic["scale"]
        coef = np.asarray(self.logistic["coef"], dtype=np.float64)
        cov = np.asarray(self.logistic["covariance"], dtype=np.float64)
        logit = coef[0] + coef[1] * x
        sd = np.sqrt(np.maximum(cov[0, 0] + 2 * x * cov[0, 1] + x * x * cov[1, 1], 0.0))
        return _sigmoid(logit), _sigmoid(logit - z * sd), _sigmoid(logit + z * sd)

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        from imse_study.atomic import atomic_write_json

        return atomic_write_json(_finite_json(self.to_dict()), path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Calibration":
        known = {f for f in cls.__dataclass_fields__}
        missing = [k for k in ("sha256", "score_knots", "mm_knots", "logistic") if k not in data]
        if missing:
            raise CalibrationError(f"not a QA calibration: it lacks {', '.join(missing)}")
        if int(data.get("format", FORMAT)) > FORMAT:
            raise CalibrationError("this calibration was written by a newer imse-study; upgrade it")
        data = {k: v for k, v in data.items() if k in known}
        data["band_edges"] = [float(v) if v is not None else (-math.inf if i == 0 else math.inf)
                              for i, v in enumerate(data.get("band_edges", []))]
        return cls(**data)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def _finite_json(value: Any) -> Any:
    """JSON has no infinity: the open ends of the interval bins are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


def load_calibration(evaluator: str | Path, path: str | Path | None = None) -> Calibration:
    """The calibration of ``evaluator`` (a shipped name or a checkpoint file): ``path`` or the
    ``<evaluator>.qa.json`` beside it. A CalibrationError with the command to run when there is
    none, when it is damaged, or when it was made for other weights."""
    path = Path(path) if path is not None else calibration_path(evaluator)
    how = f"calibrate it with `{calibrate_command(evaluator)}`"
    if not path.exists():
        raise CalibrationError(f"the evaluator {evaluator} has no QA calibration ({path.name} not found), so no "
                               f"misalignment in mm or p_failed: {how}")
    try:
        calibration = Calibration.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise CalibrationError(f"{path} is not a readable QA calibration ({err}): {how}") from None
    weights = weights_path(evaluator)
    if weights.exists() and sha256_of(weights) != calibration.sha256:
        raise CalibrationError(f"{path} was made for other weights than {weights.name} (checksum differs): it is "
                               f"stale; {how}")
    return calibration


def quantile_edges(values: Iterable[float], bins: int) -> list[float]:
    """Bin edges at the quantiles of ``values``, outer edges infinite, duplicates merged."""
    values = np.asarray(list(values), dtype=np.float64)
    inner = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])) if values.size else np.array([])
    return [-math.inf, *map(float, inner), math.inf]


# ------------------------------------------------------------------------------------------------
# Pairs of known misalignment


def misaligned_pairs(model: torch.nn.Module, reference_modality: str, other_modality: str, split: str, *,
                     profile: str = "quick", dataset: str = "phantom", root: str | None = None,
                     version: int | None = None, variant: str | None = None, factors: Sequence[float] = FACTORS,
                     limit: int | None = None, seed: int = 0, batch: int = 16, progress: bool = True,
                     extra_scores: dict[str, Callable[[np.ndarray, np.ndarray], float]] | None = None) -> pd.DataFrame:
    """One row per (item, factor) of ``split``: the ``other`` image and its labels moved by the
    paper's random displacement (seed ``seed + pair``) times the factor, the reference untouched.

    Columns: ``item``, ``subject``, ``factor``, the scores ``foreground`` (section 4.5) and
    ``interior`` (:func:`imse_study.qa.score.scores_of`), ``epe_mm`` (true mean
    end-point error over the joint foreground of the label maps), ``dice``, ``aligned_dice`` (the
    unmoved labels' Dice), ``failed``, and ``error_q95`` (the 95th percentile of the smoothed |E|
    in the foreground, which sets :attr:`Calibration.region_error`). ``extra_scores`` adds a column
    per name: ``fn(reference, moved)`` of the two images (e.g. another similarity, for comparison).
    """
    from imse_study.data.aligned import load_aligned

    aligned = load_aligned(other_modality, reference_modality, split, dim=unwrap(model).dim, profile=profile,
                           dataset=dataset, root=root, version=version, variant=variant)
    return aligned_pairs(model, aligned, reference_modality, other_modality, factors=factors, limit=limit, seed=seed,
                         batch=batch, progress=progress, desc=f"qa pairs {split}", extra_scores=extra_scores)


def aligned_pairs(model: torch.nn.Module, aligned, reference_modality: str, other_modality: str, *,
                  factors: Sequence[float] = FACTORS, limit: int | None = None, seed: int = 0, batch: int = 16,
                  progress: bool = True, desc: str = "qa pairs",
                  extra_scores: dict[str, Callable[[np.ndarray, np.ndarray], float]] | None = None) -> pd.DataFrame:
    """:func:`misaligned_pairs` of an :class:`~imse_study.data.aligned.AlignedSet` already loaded."""
    if aligned.labels is None:
        raise ValueError(f"calibration needs label maps, and the items of {aligned.dataset!r} have none")
    n = len(aligned) if limit is None else min(limit, len(aligned))
    plan = [(i, k) for i in range(n) for k in range(len(factors))]
    rows: list[dict] = []
    with progress_bar(total=len(plan), desc=desc, disable=not progress, unit="pair") as bar:
        for start in range(0, len(plan), batch):
            chunk = plan[start : start + batch]
            rows += _score_pairs(model, aligned, reference_modality, other_modality, chunk, factors, seed + start,
                                 extra_scores or {})
            bar.update(len(chunk))
    table = pd.DataFrame(rows)
    table["subject"] = [str(aligned.subjects[i]) for i in table["item"]]
    table["failed"] = is_failure(table["dice"], table["aligned_dice"])
    return table


def is_failure(dice_value: np.ndarray | float, aligned_dice: np.ndarray | float,
               drop: float = FAILURE_DICE_DROP) -> np.ndarray:
    """The failure label of the issue's ROC: Dice more than ``drop`` below the aligned pair's Dice."""
    return np.asarray(dice_value, dtype=np.float64) < np.asarray(aligned_dice, dtype=np.float64) - drop


@dataclass
class PerturbedBatch:
    """Pairs of known misalignment (tensors, one row per pair): ``target`` and its labels untouched,
    ``moved`` / ``moved_labels`` the moving modality's image and labels warped by ``field`` (the
    paper's random displacement times a scale, voxels); ``moving_labels`` the unmoved labels (the
    aligned pair's, for its Dice)."""

    target: torch.Tensor
    moved: torch.Tensor
    target_labels: torch.Tensor
    moved_labels: torch.Tensor
    moving_labels: torch.Tensor
    field: torch.Tensor


def perturbed_batch(aligned, moving_modality: str, target_modality: str, items: Sequence[int],
                    scales: Sequence[float], seeds: Sequence[int]) -> PerturbedBatch:
    """Item ``items[j]``'s ``moving_modality`` image and labels moved by the paper's random affine +
    elastic displacement (section 4.1, seed ``seeds[j]``) times ``scales[j]``; the moved image is
    clamped to [-1, 1]."""
    index = torch.as_tensor(list(items), dtype=torch.long)
    scale = torch.tensor([float(v) for v in scales])
    shape = tuple(aligned.images[target_modality].shape[2:])
    fields = torch.cat([random_spatial_displacement(shape, 1, generator=torch.Generator().manual_seed(int(s)))
                        for s in seeds])
    fields = fields * scale.view(-1, *([1] * (fields.dim() - 1)))
    moving_labels = aligned.labels[moving_modality][index]
    return PerturbedBatch(target=aligned.images[target_modality][index],
                          moved=warp(aligned.images[moving_modality][index], fields).clamp(-1.0, 1.0),
                          target_labels=aligned.labels[target_modality][index],
                          moved_labels=warp(moving_labels, fields, mode="nearest"), moving_labels=moving_labels,
                          field=fields)


def mean_epe_mm(residual: torch.Tensor, spacing: Sequence[float], region: np.ndarray) -> np.ndarray:
    """Per pair: the mean length in mm of the residual displacement ``residual`` (B, ndim, *S, voxels)
    over ``region`` (B, *S; the whole image where a pair's region is empty)."""
    scale = torch.tensor([float(v) for v in spacing], dtype=residual.dtype).view(1, -1, *([1] * (residual.dim() - 2)))
    length = (residual * scale).pow(2).sum(1).sqrt().numpy()
    region = np.asarray(region, dtype=bool)
    return np.array([float(length[j][region[j]].mean()) if region[j].any() else float(length[j].mean())
                     for j in range(length.shape[0])])


def _score_pairs(model: torch.nn.Module, aligned, reference_modality: str, other_modality: str,
                 chunk: list[tuple[int, int]], factors: Sequence[float], seed: int,
                 extra_scores: dict[str, Callable[[np.ndarray, np.ndarray], float]]) -> list[dict]:
    batch = perturbed_batch(aligned, other_modality, reference_modality, [i for i, _ in chunk],
                            [factors[k] for _, k in chunk], [seed + j for j in range(len(chunk))])
    reference, moved = batch.target, batch.moved
    with torch.no_grad():
        error = error_map(model, reference, moved).abs()[:, 0].numpy()
    foreground = (foreground_mask(reference) | foreground_mask(moved))[:, 0].numpy()
    joint = ((batch.target_labels > 0) | (batch.moved_labels > 0))[:, 0].numpy()
    epe = mean_epe_mm(batch.field, aligned.spacing, joint)
    epe[~joint.any(axis=tuple(range(1, joint.ndim)))] = 0.0
    spacing_mm = tuple(float(v) for v in aligned.spacing)
    rows = []
    for j, (i, k) in enumerate(chunk):
        smooth = ndi.gaussian_filter(error[j], SMOOTH_VOXELS)
        rows.append({
            "item": i, "factor": float(factors[k]),
            **scores_of(error[j], foreground[j], spacing_mm),
            "epe_mm": float(epe[j]),
            "dice": dice(batch.moved_labels[j : j + 1].numpy(), batch.target_labels[j : j + 1].numpy())["mean"],
            "aligned_dice": dice(batch.moving_labels[j : j + 1].numpy(),
                                 batch.target_labels[j : j + 1].numpy())["mean"],
            "error_q95": float(np.quantile(smooth[foreground[j]], 0.95)) if foreground[j].any() else 0.0,
            **{name: float(fn(reference[j, 0].numpy(), moved[j, 0].numpy())) for name, fn in extra_scores.items()},
        })
    return rows


# ------------------------------------------------------------------------------------------------
# Fitting and checking


def fit_misalignment(score: np.ndarray, epe_mm: np.ndarray) -> tuple[list[float], list[float]]:
    """Isotonic (decreasing) regression of the true EPE on the score: the knots (block centres)."""
    order = np.argsort(score, kind="stable")
    x, y = np.asarray(score, dtype=np.float64)[order], np.asarray(epe_mm, dtype=np.float64)[order]
    fitted = isotonic_regression(y, increasing=False).x
    starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
    ends = np.r_[starts[1:], fitted.size]
    knots_x = [float(x[a:b].mean()) for a, b in zip(starts, ends)]
    knots_y = [float(fitted[a]) for a in starts]
    return knots_x, knots_y


def fit_interval(predicted: np.ndarray, true: np.ndarray, coverage: float = INTERVAL,
                 bins: int = INTERVAL_BINS) -> tuple[list[float], list[float], list[float]]:
    """Split-conformal residual quantiles (true - predicted) per bin of the prediction."""
    predicted, residual = np.asarray(predicted, dtype=np.float64), np.asarray(true) - np.asarray(predicted)
    edges = quantile_edges(predicted, bins)
    band = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, len(edges) - 2)
    low, high = [], []
    tail = (1.0 - coverage) / 2.0
    for b in range(len(edges) - 1):
        r = residual[band == b]
        n = r.size
        level = min(1.0, (1.0 - tail) * (n + 1) / max(n, 1))  # finite-sample correction
        low.append(float(np.quantile(r, 1.0 - level)) if n else 0.0)
        high.append(float(np.quantile(r, level)) if n else 0.0)
    return edges, low, high


def fit_failure(score: np.ndarray, failed: np.ndarray, ridge: float = RIDGE) -> dict[str, Any]:
    """Logistic regression of ``failed`` on the standardised score (maximum likelihood, small ridge);
    the coefficients and their covariance (inverse Hessian)."""
    score, y = np.asarray(score, dtype=np.float64), np.asarray(failed, dtype=np.float64)
    centre, spread = float(score.mean()), float(score.std()) or 1.0
    design = np.column_stack([np.ones_like(score), (score - centre) / spread])

    def loss(coef: np.ndarray) -> tuple[float, np.ndarray]:
        logit = design @ coef
        nll = float(np.sum(np.logaddexp(0.0, logit) - y * logit)) + 0.5 * ridge * float(coef @ coef)
        return nll, design.T @ (_sigmoid(logit) - y) + ridge * coef

    coef = minimize(loss, np.zeros(2), jac=True, method="BFGS").x
    p = _sigmoid(design @ coef)
    hessian = design.T @ (design * (p * (1 - p))[:, None]) + ridge * np.eye(2)
    return {"centre": centre, "scale": spread, "coef": coef.tolist(),
            "covariance": np.linalg.inv(hessian).tolist(), "pairs": int(y.size), "failures": int(y.sum())}


def roc_auc(positive_score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve of ``positive_score`` for ``label`` (Mann-Whitney U; NaN if one class)."""
    label = np.asarray(label, dtype=bool)
    if label.all() or not label.any():
        return float("nan")
    ranks = stats.rankdata(positive_score)
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def check_calibration(calibration: Calibration, pairs: pd.DataFrame) -> dict[str, Any]:
    """How the calibration does on ``pairs`` it was not fitted on: |Spearman rho| of the estimate
    with the true EPE, failure ROC AUC of p_failed, the fraction within 1 mm, the interval's coverage."""
    score = pairs[calibration.statistic].to_numpy()
    predicted = calibration.misalignment(score)
    low, high = calibration.interval(score)
    true = pairs["epe_mm"].to_numpy()
    p_failed = calibration.p_failed(score)[0]
    rho = stats.spearmanr(predicted, true).statistic
    return {
        "pairs": int(len(pairs)), "subjects": int(pairs["subject"].nunique()),
        "spearman_abs": round(float(abs(rho)), 4),
        "failure_auc": round(roc_auc(p_failed, pairs["failed"].to_numpy()), 4),
        "within_1mm": round(float(np.mean(np.abs(predicted - true) <= 1.0)), 4),
        "median_abs_error_mm": round(float(np.median(np.abs(predicted - true))), 3),
        "interval_coverage": round(float(np.mean((true >= low) & (true <= high))), 4),
        "failures": int(pairs["failed"].sum()),
    }


def choose_statistic(train: pd.DataFrame, val: pd.DataFrame) -> tuple[str, dict[str, float]]:
    """The score whose fitted curve (on ``train``) ranks ``val``'s true EPE best (|Spearman rho|);
    the paper's foreground score on a tie."""
    quality = {}
    for name in STATISTICS:
        knots_x, knots_y = fit_misalignment(train[name].to_numpy(), train["epe_mm"].to_numpy())
        predicted = np.interp(val[name].to_numpy(), knots_x, knots_y)
        rho = stats.spearmanr(predicted, val["epe_mm"].to_numpy()).statistic
        quality[name] = round(float(abs(rho)) if np.isfinite(rho) else 0.0, 4)
    return max(STATISTICS, key=lambda name: (quality[name], name == "foreground")), quality


def fit_calibration(train: pd.DataFrame, val: pd.DataFrame, *, evaluator: str, sha256: str,
                    reference_modality: str, other_modality: str, fit: dict[str, Any] | None = None) -> Calibration:
    """The three fits of the module docstring on the chosen score (:func:`choose_statistic`):
    curve on ``train``, interval on ``val``, failure on both."""
    statistic, quality = choose_statistic(train, val)
    knots_x, knots_y = fit_misalignment(train[statistic].to_numpy(), train["epe_mm"].to_numpy())
    predicted = np.interp(val[statistic].to_numpy(), knots_x, knots_y)
    edges, low, high = fit_interval(predicted, val["epe_mm"].to_numpy())
    both = pd.concat([train, val])
    aligned = both[both["factor"] == 0]
    return Calibration(
        evaluator=evaluator, sha256=sha256, reference_modality=reference_modality, other_modality=other_modality,
        score_knots=knots_x, mm_knots=knots_y, band_edges=edges, residual_low=low, residual_high=high,
        coverage=INTERVAL, logistic=fit_failure(both[statistic].to_numpy(), both["failed"].to_numpy()),
        statistic=statistic, region_error=float(aligned["error_q95"].median()) if len(aligned) else None,
        fit={"train_pairs": int(len(train)), "val_pairs": int(len(val)),
             "train_subjects": int(train["subject"].nunique()), "val_subjects": int(val["subject"].nunique()),
             "val_spearman_by_statistic": quality, **(fit or {})},
    )


def calibrate_evaluator(evaluator: str | Path, other_modality: str | None = None, *, profile: str = "quick",
                        dataset: str = "phantom", root: str | None = None, limit: int | None = None,
                        factors: Sequence[float] = FACTORS, seed: int = 0, progress: bool = True,
                        keep_pairs: dict[str, pd.DataFrame] | None = None) -> Calibration:
    """Calibrate ``evaluator`` (a shipped name or a checkpoint file) on ``dataset`` (the phantom by
    default): pairs of the train, val and test splits (``limit`` items each), fitted on train and
    val, checked on test (:attr:`Calibration.check`). ``keep_pairs``, when given, receives the tables."""
    from imse_study.evaluator.pretrained import load_any

    model, meta = load_any(str(evaluator))
    reference = meta.modality.lower()
    other = (other_modality or study_partner(reference) or "").lower()
    if not other:
        raise ValueError(f"the evaluator is trained on {reference}: say which modality to calibrate it against "
                         "(--other-modality, e.g. t2)")
    if other == reference:
        raise ValueError(f"--other-modality {other} is the evaluator's own modality: choose another one")
    options = {"profile": profile, "dataset": dataset, "root": root, "factors": factors, "limit": limit,
               "seed": seed, "progress": progress}
    with torch.no_grad():
        tables = {split: misaligned_pairs(model, reference, other, split, **options) for split in ("train", "val", "test")}
    if keep_pairs is not None:
        keep_pairs.update(tables)
    calibration = fit_calibration(
        tables["train"], tables["val"], evaluator=Path(str(evaluator)).name.removesuffix(".pt"),
        sha256=sha256_of(weights_path(evaluator)), reference_modality=reference, other_modality=other,
        fit={"data": dataset if dataset != "phantom" else f"phantom ({profile})", "factors": list(map(float, factors)),
             "seed": seed, "items_per_split": limit, "displacement": "the paper's random affine + elastic field"},
    )
    calibration.check = {"test": check_calibration(calibration, tables["test"])}
    return calibration
