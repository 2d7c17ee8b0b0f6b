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
from typing import Any, Iterable

import numpy as np

CALIBRATION_SUFFIX = ".qa.json"
FAILURE_DICE_DROP = 0.1
FACTORS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0)
# The study's pairs: the evaluator's modality (the reference) and the modality it is checked against.
STUDY_OTHER = {"t1": "t2", "ct": "t1"}
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
    """The command that calibrates ``evaluator`` (a shipped name or a checkpoint file)."""
    path = Path(str(evaluator))
    out = calibration_path(evaluator)
    shown = evaluator if path.suffix == ".pt" else out.name.removesuffix(CALIBRATION_SUFFIX) + ".pt"
    return f"imse-study qa-calibrate --evaluator {shown} -o {out}"


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
