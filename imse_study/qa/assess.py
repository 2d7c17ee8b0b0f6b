"""Quality of one registration without ground truth (``imse-study qa MOVED TARGET -o OUT``).

After any registration (this package's or another tool's), the evaluator's pixel-wise spatial error
``E(reference, other)`` (Eq. 5; the reference is the image in the evaluator's modality, the target
preferred) says where the two images disagree in space. From it:

* ``score``: paper section 4.5, one minus the mean |E| / 2 over the joint foreground (1: no
  disagreement), as :func:`imse_study.evaluator.use.spatial_error_score` computes it;
* with the evaluator's calibration (:mod:`imse_study.qa.calibration`): the expected mean
  misalignment in mm with a prediction interval, and the probability that the registration failed
  with its interval;
* the regions where the error concentrates (:mod:`imse_study.qa.regions`): connected areas, or the
  target's labels when a label map is given.

Files go through the package's usual path: NIfTI geometry from the headers (the moved image and
the labels resampled onto the target's grid through both affines if they lie elsewhere), scaling
to [-1, 1] by modality, the evaluator run on the layout and at the spacing it was trained at
(:func:`imse_study.evaluator.apply.error_map_array`), and outputs written all at once or not at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from imse_study.qa.calibration import Calibration, CalibrationError, load_calibration
from imse_study.qa.regions import REGION_ERROR, error_regions, label_regions
from imse_study.qa.score import joint_foreground, scores_of

QA_OUTPUTS = ("error.nii.gz", "qa.png", "qa.json")
AUTO = "auto"
LIKELY_FINE, LIKELY_FAILED = 0.2, 0.5  # p_failed thresholds of the plain-language reading


@dataclass
class QAResult:
    """What ``qa`` says about one registered pair (``to_dict()`` is what ``qa.json`` holds).

    ``misalignment_mm``, its ``misalignment_mm_interval`` ([low, high], mm), ``p_failed`` and its
    ``p_failed_interval`` are None when the evaluator has no calibration; ``calibration`` then says
    why and how to make one. ``reference`` names the image read as the evaluator's modality.
    """

    score: float
    misalignment_mm: float | None
    misalignment_mm_interval: list[float] | None
    p_failed: float | None
    p_failed_interval: list[float] | None
    regions: list[dict]
    reading: str
    evaluator: str
    reference: str = "target"
    moved_modality: str | None = None
    target_modality: str | None = None
    calibration: str | None = None
    interval_coverage: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    error_map: np.ndarray | None = field(default=None, repr=False, compare=False)
    region_map: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def calibrated(self) -> bool:
        return self.misalignment_mm is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (no arrays)."""
        data = asdict(self)
        data.pop("error_map"), data.pop("region_map")
        return data

    def summary(self) -> str:
        """A few readable lines for a terminal."""
        lines = [f"score {self.score:.4f} (1 = no disagreement), evaluator {self.evaluator}, "
                 f"reference: the {self.reference} image"]
        if self.calibrated:
            lo, hi = self.misalignment_mm_interval
            plo, phi = self.p_failed_interval
            lines.append(f"misalignment {self.misalignment_mm:.1f} mm ({self.interval_coverage:.0%} interval "
                         f"{lo:.1f} to {hi:.1f} mm); p_failed {self.p_failed:.2f} ({plo:.2f} to {phi:.2f}); "
                         f"calibration {self.calibration}")
        else:
            lines.append(f"no misalignment estimate: {self.calibration}")
        lines += [f"note: {n}" for n in self.notes]
        lines.append(self.reading)
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Which evaluator, which image is its reference


def _lower(modality: str | None) -> str | None:
    return None if modality is None else str(modality).strip().lower()


def choose_evaluator(evaluator: str | Path, moved_modality: str | None, target_modality: str | None,
                     dim: int) -> str | Path:
    """The evaluator to use: ``evaluator`` itself, or for ``"auto"`` the shipped ``dim``-D one whose
    modality is the target's, else the moved image's (the reference channel needs that modality)."""
    if str(evaluator) != AUTO:
        return evaluator
    from imse_study.evaluator.pretrained import available_pretrained

    wanted = [m for m in (_lower(target_modality), _lower(moved_modality)) if m]
    if not wanted:
        raise ValueError("--evaluator auto picks a shipped evaluator by modality: give --target-modality (e.g. t1 "
                         "or ct) and --moved-modality, or name an --evaluator")
    shipped = available_pretrained()
    for modality in wanted:
        name = f"phantom-{modality}-{dim}d"
        if name in shipped:
            return name
    have = sorted({n.split("-")[1] for n in shipped if n.count("-") == 2})
    raise ValueError(f"no shipped {dim}D evaluator for {' or '.join(wanted)} images (shipped: {', '.join(have)}): "
                     "train one (`imse-study train-evaluator --modality M`) and pass it as --evaluator FILE")


def reference_side(evaluator_modality: str, moved_modality: str | None, target_modality: str | None,
                   notes: list[str]) -> str:
    """``"target"`` or ``"moved"``: the image in the evaluator's modality (the target when both are,
    or when neither modality is given, with a note)."""
    modality, moved, target = evaluator_modality.lower(), _lower(moved_modality), _lower(target_modality)
    if target == modality:
        return "target"
    if moved == modality:
        return "moved"
    if target is None and moved is None:
        notes.append(f"no modality given: the target is read as {modality} (the evaluator's modality)")
        return "target"
    if target is None:
        notes.append(f"the target is read as {modality} (the evaluator's modality; --target-modality not given)")
        return "target"
    if moved is None:
        notes.append(f"the moved image is read as {modality} (the evaluator's modality; --moved-modality not given)")
        return "moved"
    raise ValueError(f"the evaluator was trained on {modality} images, but neither the moved ({moved}) nor the "
                     f"target ({target}) image is {modality}: use an evaluator trained on {target} or {moved}")


# ------------------------------------------------------------------------------------------------
# Arrays


def assess_arrays(model: torch.nn.Module, meta, moved: np.ndarray, target: np.ndarray, affine: np.ndarray, *,
                  reference: str = "target", labels: np.ndarray | None = None,
                  calibration: Calibration | None = None, calibration_problem: str | None = None,
                  evaluator: str = "", notes: list[str] | None = None) -> QAResult:
    """QA of two images in [-1, 1] on one grid (voxel -> mm ``affine``); ``reference`` ("target" or
    "moved") is the one in the evaluator's modality, ``labels`` an optional label map of the target."""
    from imse_study.data.geometry import slice_axis
    from imse_study.data.io import spacing_of
    from imse_study.evaluator.apply import error_map_array
    from imse_study.evaluator.checkpoint import evaluator_spacing

    if reference not in ("target", "moved"):
        raise ValueError(f"reference must be 'target' or 'moved', not {reference!r}")
    ref, other = (target, moved) if reference == "target" else (moved, target)
    with torch.no_grad():
        error = error_map_array(model, ref, other, meta.dim, affine=affine, evaluator_spacing=evaluator_spacing(meta))
    foreground = joint_foreground(ref, other)
    through = slice_axis(ref.shape, affine) if meta.dim == 2 and ref.ndim == 3 else None
    scores = scores_of(error, foreground, spacing_of(affine, ref.ndim), through)
    if labels is None:
        threshold = max(REGION_ERROR, calibration.region_error or 0.0) if calibration is not None else REGION_ERROR
        regions, region_map = error_regions(error, foreground, affine, threshold)
    else:
        regions, region_map = label_regions(error, labels, affine)
    result = QAResult(score=scores["foreground"], misalignment_mm=None, misalignment_mm_interval=None, p_failed=None,
                      p_failed_interval=None, regions=regions, reading="", evaluator=str(evaluator),
                      reference=reference, calibration=calibration_problem, notes=list(notes or []),
                      scores=scores, error_map=error, region_map=region_map)
    if calibration is not None:
        _estimate(result, calibration)
    result.reading = reading(result, labelled=labels is not None)
    return result


def _estimate(result: QAResult, calibration: Calibration) -> None:
    value = result.scores[calibration.statistic]
    low, high = calibration.interval(value)
    p, p_low, p_high = calibration.p_failed(value)
    result.misalignment_mm = round(float(calibration.misalignment(value)), 3)
    result.misalignment_mm_interval = [round(float(low), 3), round(float(high), 3)]
    result.p_failed = round(float(p), 4)
    result.p_failed_interval = [round(float(p_low), 4), round(float(p_high), 4)]
    result.interval_coverage = calibration.coverage
    result.calibration = (f"{calibration.reference_modality} vs {calibration.other_modality} on "
                          f"{calibration.fit.get('data', 'phantom')}, read from the {calibration.statistic} score "
                          f"{value:.4f}")
    lowest, highest = calibration.score_knots[0], calibration.score_knots[-1]
    if not lowest <= value <= highest:
        result.notes.append(f"the {calibration.statistic} score {value:.4f} lies outside the calibrated range {lowest:.4f} to "
                            f"{highest:.4f}: the estimate is clamped to its end")


def reading(result: QAResult, labelled: bool = False) -> str:
    """One plain sentence (or two) on the pair: the verdict, and where the error is."""
    if result.calibrated:
        p = result.p_failed
        verdict = ("The registration looks fine" if p < LIKELY_FINE else
                   "The registration has likely failed" if p >= LIKELY_FAILED else "The registration may have failed")
        lo, hi = result.misalignment_mm_interval
        text = (f"{verdict}: about {result.misalignment_mm:.1f} mm of mean misalignment (likely {lo:.1f} to "
                f"{hi:.1f} mm), a {p:.0%} chance that it failed.")
    else:
        text = f"Score {result.score:.3f} (1 = the images agree everywhere); no calibrated estimate in mm."
    if labelled:
        flagged = [r for r in result.regions if r.get("flagged")]
        if flagged:
            names = ", ".join(str(r.get("name", r["label"])) for r in flagged[:5])
            text += f" Labels where the error concentrates: {names}."
        else:
            text += " No label stands out."
    elif result.regions:
        top = result.regions[0]
        unit = "mm3" if "mm3" in top else "mm2"
        centre = ", ".join(f"{v:.0f}" for v in top["centroid_mm"])
        text += (f" The error concentrates in {len(result.regions)} region(s); the largest ({top[unit]:.0f} "
                 f"{unit}) is centred at ({centre}) mm.")
    else:
        text += " No region of large error."
    return text


# ------------------------------------------------------------------------------------------------
# Files


def _check_outputs(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o {out} exists and is not a folder; choose a folder")
    present = [name for name in QA_OUTPUTS if (out / name).exists()]
    if present and not overwrite:
        raise ValueError(f"{out} already holds {', '.join(present)}: choose another folder, or pass --overwrite "
                         "to replace them")


def evaluator_calibration(evaluator: str | Path) -> tuple[Calibration | None, str | None]:
    """The calibration of ``evaluator`` and None, or None and the one-line reason why there is none."""
    try:
        return load_calibration(evaluator), None
    except CalibrationError as err:
        return None, str(err)


def assess_files(moved: str | Path, target: str | Path, out: str | Path | None = None, evaluator: str | Path = AUTO,
                 moved_modality: str | None = None, target_modality: str | None = None,
                 labels: str | Path | None = None, overwrite: bool = False,
                 loader: Callable[[str | Path], tuple[torch.nn.Module, Any]] | None = None) -> QAResult:
    """QA of the registered ``moved`` image against ``target`` (NIfTI files); with ``out``, writes
    ``error.nii.gz`` (target grid and affine), ``qa.png`` and ``qa.json`` there (all or nothing;
    existing ones only with ``overwrite``).

    ``evaluator``: ``"auto"`` (the shipped evaluator of the target's modality, else the moved
    image's), a shipped name, or a checkpoint file; ``labels``: a label map of the target, which
    turns the regions into per-label errors; ``loader``: what loads the chosen evaluator (default
    ``load_any``; a cohort passes a cached one to load it once per worker).
    """
    from imse_study.data.geometry import registration_plan, resample_onto, same_grid
    from imse_study.data.io import load_labels, load_nifti, save_nifti
    from imse_study.evaluator.apply import to_unit_range
    from imse_study.evaluator.pretrained import load_any

    moved, target = Path(moved), Path(target)
    if out is not None:
        _check_outputs(Path(out), overwrite)
    moved_image, moved_affine, _ = load_nifti(moved)
    target_image, affine, _ = load_nifti(target)
    if moved_image.ndim != target_image.ndim:
        raise ValueError(f"{moved} is {moved_image.ndim}D and {target} {target_image.ndim}D; give two 2D or two 3D "
                         "images")
    name = choose_evaluator(evaluator, moved_modality, target_modality,
                            registration_plan(target_image.shape, affine).dim)
    model, meta = (loader or load_any)(str(name) if isinstance(name, Path) else name)
    notes: list[str] = []
    side = reference_side(meta.modality, moved_modality, target_modality, notes)
    scale = {"moved": moved_modality or "mr", "target": target_modality or "mr"}
    scale[side] = meta.modality
    moved_image = to_unit_range(moved_image, scale["moved"], name=str(moved))
    target_image = to_unit_range(target_image, scale["target"], name=str(target))
    if not same_grid(moved_image.shape, moved_affine, target_image.shape, affine):
        moved_image = resample_onto(moved_image, moved_affine, target_image.shape, affine, cval=-1.0)
        notes.append(f"the moved image was resampled onto the target's grid {target_image.shape} (linear, through "
                     "both affines)")
    label_map = None
    if labels is not None:
        label_map, labels_affine = load_labels(labels)
        if not same_grid(label_map.shape, labels_affine, target_image.shape, affine):
            label_map = resample_onto(label_map, labels_affine, target_image.shape, affine, labels=True)
            notes.append("the label map was resampled onto the target's grid (nearest neighbour)")
    calibration, problem = evaluator_calibration(name)
    if calibration is not None:
        other = scale["target" if side == "moved" else "moved"]
        given = _lower(target_modality if side == "moved" else moved_modality)
        if given is not None and given != calibration.other_modality:
            notes.append(f"the calibration was fitted on {calibration.reference_modality} vs "
                         f"{calibration.other_modality} pairs, this pair is {meta.modality} vs {other}: the estimate "
                         "may be off")
    result = assess_arrays(model, meta, moved_image, target_image, affine, reference=side, labels=label_map,
                           calibration=calibration, calibration_problem=problem, evaluator=str(name), notes=notes)
    result.moved_modality, result.target_modality = _lower(moved_modality), _lower(target_modality)
    if out is not None:
        _write(result, Path(out), moved_image, target_image, affine, (moved, target, labels), save_nifti)
    return result


def _write(result: QAResult, out: Path, moved: np.ndarray, target: np.ndarray, affine: np.ndarray,
           inputs: tuple, save_nifti) -> None:
    """error.nii.gz, qa.png and qa.json into ``out``, each written atomically, qa.json last; if one
    fails, the ones this call wrote are removed again (no half set of results)."""
    from imse_study.atomic import atomic_write, atomic_write_json
    from imse_study.qa.figure import qa_figure

    paths = {name: out / name for name in QA_OUTPUTS}
    for path in paths.values():
        for source in inputs:
            if source is not None and Path(source).resolve() == path.resolve():
                raise ValueError(f"{path} is an input: it would be overwritten; choose another output folder")
    result.files = {"error_map": str(paths["error.nii.gz"]), "figure": str(paths["qa.png"]),
                    "summary": str(paths["qa.json"])}
    made = not out.exists()
    written: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        written.append(save_nifti(paths["error.nii.gz"], result.error_map, affine))
        written.append(atomic_write(paths["qa.png"], lambda tmp: qa_figure(result, moved, target, affine, tmp),
                                    suffix=".tmp.png"))
        written.append(atomic_write_json(result.to_dict(), paths["qa.json"]))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if made and out.exists() and not any(out.iterdir()):
            out.rmdir()
        raise
