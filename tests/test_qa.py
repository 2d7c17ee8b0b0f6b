"""Registration QA without ground truth: ``imse-study qa`` / ``qa-calibrate`` and :mod:`imse_study.qa`.

Tiny images and a tiny untrained evaluator (clitools.write_evaluator: t1, 1 mm) keep every test
fast; the calibration is fitted on a handful of synthetic pairs of known misalignment.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from clitools import assert_one_line_error, digest, run_cli, write_evaluator
from hypothesis import given, settings
from hypothesis import strategies as st

import imse_study.qa.calibration as calibration_module
from imse_study.data.aligned import AlignedSet
from imse_study.evaluator.pretrained import load_any
from imse_study.evaluator.use import spatial_error_score
from imse_study.qa import QAResult, assess_arrays, assess_files
from imse_study.qa.calibration import (
    Calibration,
    CalibrationError,
    aligned_pairs,
    fit_calibration,
    fit_misalignment,
    load_calibration,
    roc_auc,
    sha256_of,
)
from imse_study.qa.regions import error_regions, label_regions

SIDE = 32
SHAPE = (SIDE, SIDE, 3)


def _discs(centre: tuple[float, float], side: int = SIDE) -> np.ndarray:
    """Labels 1-3: three nested discs (a head, a brain, a ventricle) around ``centre``."""
    yy, xx = np.mgrid[:side, :side]
    r = np.hypot(yy - centre[0], xx - centre[1])
    return np.select([r < 4, r < 9, r < 13], [3, 2, 1], 0).astype(np.float32)


def _contrast(labels: np.ndarray, values: tuple[float, float, float, float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)[labels.astype(int)]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A t1-like target, a t2-like moved image (same anatomy, shifted), the target's labels and a tiny evaluator."""
    root = tmp_path_factory.mktemp("qa")
    labels = np.stack([_discs((16, 16)) for _ in range(SHAPE[2])], -1)
    moved_labels = np.stack([_discs((17, 15)) for _ in range(SHAPE[2])], -1)
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    paths = {}
    for name, data in (("target", _contrast(labels, (0, 300, 600, 900))),
                       ("moved", _contrast(moved_labels, (0, 800, 500, 200))),
                       ("labels", labels.astype(np.uint8))):
        paths[name] = root / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), str(paths[name]))
    paths["evaluator"] = write_evaluator(root / "e2.pt", 2)
    return paths


def _aligned(n: int = 4) -> AlignedSet:
    """Synthetic aligned t1/t2 items with shared label maps, 1 mm."""
    labels = torch.from_numpy(np.stack([_discs((15 + i % 3, 16 - i % 2)) for i in range(n)]))[:, None]
    t1 = torch.from_numpy(_contrast(labels.numpy(), (-1, -0.3, 0.2, 0.8)))
    t2 = torch.from_numpy(_contrast(labels.numpy(), (-1, 0.7, 0.1, -0.6)))
    return AlignedSet(images={"t1": t1, "t2": t2}, labels={"t1": labels, "t2": labels}, spacing=(1.0, 1.0),
                      subjects=np.array([f"s{i // 2}" for i in range(n)]), ids=[f"s{i // 2}/{i % 2}" for i in range(n)],
                      label_names={"background": 0, "a": 1, "b": 2, "c": 3}, dataset="synthetic")


FACTORS = (0.0, 0.05, 0.1, 0.3, 0.6)


@pytest.fixture(scope="module")
def pairs(files) -> pd.DataFrame:
    model, _ = load_any(str(files["evaluator"]))
    return aligned_pairs(model, _aligned(), "t1", "t2", factors=FACTORS, progress=False)


# ------------------------------------------------------------------------------------------------
# The score, regions and the result


def test_score_is_the_papers_spatial_error_score(files):
    model, meta = load_any(str(files["evaluator"]))
    rng = np.random.default_rng(0)
    target, moved = (np.clip(rng.normal(0, 0.5, (SIDE, SIDE)), -1, 1).astype(np.float32) for _ in range(2))
    # array axes (P, R) of a 2D slice: the evaluator's own layout, so no flip changes what it sees
    affine = np.array([[0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
    result = assess_arrays(model, meta, moved, target, affine, evaluator="tiny")
    expected = spatial_error_score(model, torch.from_numpy(target)[None, None], torch.from_numpy(moved)[None, None])
    assert result.score == pytest.approx(float(expected), abs=1e-5)
    assert result.error_map.shape == target.shape and not result.calibrated


def test_error_regions_find_a_blob_in_mm():
    error = np.zeros((20, 20), dtype=np.float32)
    error[10:14, 4:8] = 1.0
    affine = np.diag([2.0, 3.0, 1.0, 1.0])
    affine[:3, 3] = (100, 0, 0)
    regions, region_map = error_regions(error, np.ones_like(error, dtype=bool), affine)
    assert len(regions) == 1 and region_map.max() == 1
    region = regions[0]
    assert region["mm2"] == pytest.approx(region["voxels"] * 6.0)
    assert region["centroid_mm"][:2] == pytest.approx([100 + 2 * 11.5, 3 * 5.5], abs=0.6)
    assert error_regions(np.zeros_like(error), np.ones_like(error, dtype=bool), affine)[0] == []


def test_label_regions_worst_first_and_flagged():
    labels = np.zeros((10, 10), dtype=int)
    labels[:5], labels[5:] = 1, 2
    error = np.where(labels == 2, 0.6, 0.01)
    regions, flagged = label_regions(error, labels, np.eye(4))
    assert [r["label"] for r in regions] == [2, 1]
    assert regions[0]["flagged"] and not regions[1]["flagged"]
    assert set(np.unique(flagged)) == {0, 2}


def test_assess_files_writes_map_figure_and_json(files, tmp_path):
    before = digest(files["moved"], files["target"])
    out = tmp_path / "qa"
    result = assess_files(files["moved"], files["target"], out, evaluator=str(files["evaluator"]),
                          moved_modality="t2", target_modality="t1")
    assert sorted(p.name for p in out.iterdir()) == ["error.nii.gz", "qa.json", "qa.png"]
    image = nib.load(str(out / "error.nii.gz"))
    assert image.shape == SHAPE and np.allclose(image.affine, nib.load(str(files["target"])).affine)
    saved = json.loads((out / "qa.json").read_text())
    for key in ("score", "misalignment_mm", "misalignment_mm_interval", "p_failed", "regions", "reading"):
        assert key in saved
    assert saved["score"] == pytest.approx(result.score) and saved["misalignment_mm"] is None
    assert "imse-study qa-calibrate --evaluator" in saved["calibration"]
    assert result.reference == "target" and digest(files["moved"], files["target"]) == before
    with pytest.raises(ValueError, match="--overwrite"):
        assess_files(files["moved"], files["target"], out, evaluator=str(files["evaluator"]), target_modality="t1")


def test_reference_is_the_image_in_the_evaluators_modality(files):
    result = assess_files(files["target"], files["moved"], evaluator=str(files["evaluator"]),
                          moved_modality="t1", target_modality="t2")
    assert result.reference == "moved"
    with pytest.raises(ValueError, match="neither the moved"):
        assess_files(files["moved"], files["target"], evaluator=str(files["evaluator"]),
                     moved_modality="t2", target_modality="ct")


def test_labels_turn_regions_into_label_errors(files):
    result = assess_files(files["moved"], files["target"], evaluator=str(files["evaluator"]), target_modality="t1",
                          labels=files["labels"])
    assert sorted(r["label"] for r in result.regions) == [1, 2, 3]
    assert isinstance(QAResult(**{**result.to_dict()}).to_dict(), dict)


# ------------------------------------------------------------------------------------------------
# Calibration


def test_pairs_of_known_misalignment(pairs):
    identity = pairs[pairs["factor"] == 0]
    assert np.allclose(identity["epe_mm"], 0) and np.allclose(identity["dice"], identity["aligned_dice"])
    assert not identity["failed"].any()
    means = pairs.groupby("factor")["epe_mm"].mean()
    assert means.is_monotonic_increasing and means.iloc[-1] > 1.0
    assert set(pairs["subject"]) == {"s0", "s1"}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 30)), min_size=2, max_size=40))
def test_isotonic_curve_never_rises_with_the_score(points):
    score, mm = map(np.array, zip(*points))
    knots_x, knots_y = fit_misalignment(score, mm)
    assert np.all(np.diff(knots_x) >= 0) and np.all(np.diff(knots_y) <= 1e-9)
    assert min(mm) - 1e-9 <= min(knots_y) and max(knots_y) <= max(mm) + 1e-9


def _synthetic_table(n: int, seed: int) -> pd.DataFrame:
    """Scores that fall with the true error, plus noise; 'failed' above 2 mm."""
    rng = np.random.default_rng(seed)
    epe = rng.uniform(0, 10, n)
    score = 0.95 - 0.01 * epe + rng.normal(0, 0.005, n)
    return pd.DataFrame({"foreground": score, "interior": rng.uniform(0.8, 1.0, n), "epe_mm": epe,
                         "failed": epe > 2, "factor": np.where(epe < 0.5, 0.0, 1.0), "error_q95": 0.3,
                         "subject": [f"s{i % 5}" for i in range(n)]})


def test_fit_recovers_a_known_relation():
    train, val, test = (_synthetic_table(400, seed) for seed in (1, 2, 3))
    calibration = fit_calibration(train, val, evaluator="e", sha256="0", reference_modality="t1", other_modality="t2")
    assert calibration.statistic == "foreground"  # the interior column here is noise
    check = calibration_module.check_calibration(calibration, test)
    assert check["spearman_abs"] > 0.95 and check["failure_auc"] > 0.95
    assert 0.8 <= check["interval_coverage"] <= 1.0 and check["within_1mm"] > 0.8
    assert calibration.misalignment(0.90) == pytest.approx(5.0, abs=1.0)
    p_good, p_bad = calibration.p_failed(0.95)[0], calibration.p_failed(0.85)[0]
    assert p_good < 0.2 < 0.8 < p_bad
    p, low, high = calibration.p_failed(0.93)
    assert low <= p <= high


def test_roc_auc():
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert np.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_calibration_round_trip_and_stale_refused(files, tmp_path):
    weights = tmp_path / "e.pt"
    weights.write_bytes(files["evaluator"].read_bytes())
    calibration = fit_calibration(_synthetic_table(200, 1), _synthetic_table(100, 2), evaluator="e",
                                  sha256=sha256_of(weights), reference_modality="t1", other_modality="t2")
    path = calibration.save(tmp_path / "e.qa.json")
    loaded = load_calibration(weights)
    assert loaded.misalignment(0.9) == pytest.approx(calibration.misalignment(0.9))
    assert loaded.interval(0.9)[1] == pytest.approx(calibration.interval(0.9)[1])
    json.loads(path.read_text())  # strict JSON: no Infinity
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(CalibrationError, match="stale"):
        load_calibration(weights)
    with pytest.raises(CalibrationError, match="imse-study qa-calibrate --evaluator"):
        load_calibration(tmp_path / "other.pt")
    with pytest.raises(CalibrationError, match="not a QA calibration"):
        Calibration.from_dict({"score_knots": []})


# ------------------------------------------------------------------------------------------------
# The commands


@pytest.fixture
def synthetic_phantom(monkeypatch, files):
    """qa-calibrate on synthetic aligned items instead of the phantom (seconds, not minutes)."""
    def pairs_of(model, reference, other, split, **options):
        return aligned_pairs(model, _aligned(), reference, other, factors=FACTORS, seed=options["seed"],
                             progress=False)

    monkeypatch.setattr(calibration_module, "misaligned_pairs", pairs_of)


def test_qa_calibrate_then_qa_reports_an_estimate(files, tmp_path, synthetic_phantom):
    evaluator = tmp_path / "tiny.pt"
    evaluator.write_bytes(files["evaluator"].read_bytes())
    code, out, err = run_cli("qa", files["moved"], files["target"], "-o", tmp_path / "before",
                             "--evaluator", evaluator, "--target-modality", "t1", "--moved-modality", "t2")
    assert code == 0, err
    assert f"imse-study qa-calibrate --evaluator {evaluator} -o {tmp_path / 'tiny.qa.json'}" in out
    code, out, err = run_cli("qa-calibrate", "--evaluator", evaluator, "-o", tmp_path / "tiny.qa.json")
    assert code == 0, err
    assert "held-out pairs" in out and "note:" not in err
    code, out, err = run_cli("qa", files["moved"], files["target"], "-o", tmp_path / "after", "--evaluator", evaluator,
                             "--target-modality", "t1", "--moved-modality", "t2", "--labels", files["labels"])
    assert code == 0, err
    saved = json.loads((tmp_path / "after" / "qa.json").read_text())
    assert saved["misalignment_mm"] >= 0 and 0 <= saved["p_failed"] <= 1
    low, high = saved["misalignment_mm_interval"]
    assert low <= high and "misalignment" in out and "{" not in out
    code, _, err = run_cli("qa-calibrate", "--evaluator", evaluator, "-o", tmp_path / "tiny.qa.json")
    assert_one_line_error(code, err, "exists", "--overwrite")


def test_qa_errors_are_one_line(files, tmp_path):
    common = ("--evaluator", files["evaluator"], "--target-modality", "t1")
    code, _, err = run_cli("qa", files["moved"], "-o", tmp_path / "a", *common)
    assert_one_line_error(code, err, "MOVED TARGET")
    code, _, err = run_cli("qa", files["moved"], files["target"], "-o", tmp_path / "a")
    assert_one_line_error(code, err, "--target-modality")
    code, _, err = run_cli("qa", files["moved"], files["target"], "-o", tmp_path / "a", "--target-modality", "pd",
                           "--moved-modality", "t2")
    assert_one_line_error(code, err, "no shipped 2D evaluator for pd or t2")
    code, _, err = run_cli("qa", files["moved"], tmp_path / "missing.nii.gz", "-o", tmp_path / "a", *common)
    assert_one_line_error(code, err, "missing.nii.gz")
    far = np.diag([1.0, 1.0, 3.0, 1.0])
    far[0, 3] = 500.0  # half a metre away from the target
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), far), str(tmp_path / "far_labels.nii.gz"))
    code, _, err = run_cli("qa", files["moved"], files["target"], "-o", tmp_path / "a", "--labels",
                           tmp_path / "far_labels.nii.gz", *common)
    assert_one_line_error(code, err, "covers")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "qa.json").write_text("{}")
    code, _, err = run_cli("qa", files["moved"], files["target"], "-o", tmp_path / "b", *common)
    assert_one_line_error(code, err, "already holds qa.json", "--overwrite")
    assert (tmp_path / "b" / "qa.json").read_text() == "{}"
    assert not (tmp_path / "a").exists()


def test_qa_calibrate_errors_are_one_line(files, tmp_path):
    code, _, err = run_cli("qa-calibrate", "--evaluator", files["evaluator"], "-o", tmp_path / "c.txt")
    assert_one_line_error(code, err, ".json")
    code, _, err = run_cli("qa-calibrate", "--evaluator", "no-such-evaluator", "-o", tmp_path / "c.qa.json")
    assert_one_line_error(code, err, "no-such-evaluator")
    code, _, err = run_cli("qa-calibrate", "--evaluator", files["evaluator"], "-o", tmp_path / "c.qa.json",
                           "--items", "0")
    assert_one_line_error(code, err, "--items")


def test_benchmark_measures_and_states_targets():
    from benchscripts import load_benchmark

    bench = load_benchmark("qa_calibration")
    train, val, test = (_synthetic_table(300, seed) for seed in (4, 5, 6))
    calibration = fit_calibration(train, val, evaluator="e", sha256="0", reference_modality="t1", other_modality="t2")
    numbers = bench.measure(calibration, test.assign(nmi=-test["epe_mm"]))
    assert numbers["spearman_abs_nmi"] == pytest.approx(1.0) and numbers["failure_auc_nmi"] == pytest.approx(1.0)
    assert numbers["spearman_abs"] > 0.95 and 0 <= numbers["within_1mm_true_le_5mm"] <= 1
    summary = pd.DataFrame([{"evaluator": "e", "set": "plain", **numbers}])
    text = bench.markdown(summary, {"evaluators": ["e"], "factors": [0, 1], "seconds": 1.0, "threads": 1})
    assert "within_1mm" in text and ("NOT met" in text or "(met)" in text)


def test_a_failed_write_leaves_no_partial_results(files, tmp_path, monkeypatch):
    import imse_study.qa.figure as figure

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device", str(args[-1]))

    monkeypatch.setattr(figure, "qa_figure", broken)
    with pytest.raises(OSError):
        assess_files(files["moved"], files["target"], tmp_path / "new", evaluator=str(files["evaluator"]),
                     target_modality="t1")
    assert not (tmp_path / "new").exists()


def test_pairs_of_volumes(tmp_path):
    model, _ = load_any(str(write_evaluator(tmp_path / "e3.pt", 3)))
    zz, yy, xx = np.mgrid[:16, :16, :16]
    labels = torch.from_numpy(np.select([np.sqrt((zz - 8) ** 2 + (yy - 8) ** 2 + (xx - 8) ** 2) < 5], [1], 0)
                              .astype(np.float32))[None, None].repeat(2, 1, 1, 1, 1)
    images = {"t1": labels * 1.5 - 1, "t2": 0.5 - labels * 1.5}
    aligned = AlignedSet(images=images, labels={"t1": labels, "t2": labels}, spacing=(2.0, 1.0, 1.0),
                         subjects=np.array(["a", "b"]), ids=["a/0", "b/0"], label_names={"ball": 1}, dataset="synthetic")
    table = aligned_pairs(model, aligned, "t1", "t2", factors=(0.0, 0.5), progress=False)
    assert len(table) == 4 and table.loc[table["factor"] == 0, "epe_mm"].eq(0).all()
    assert (table.loc[table["factor"] == 0.5, "epe_mm"] > 0).all() and table["dice"].between(0, 1).all()
