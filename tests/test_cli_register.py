"""`imse-study register MOVING TARGET -o OUT` (and `error-map` on its output) on NIfTI files: labels,
Dice, grids, 2D or 3D, the evaluator's spacing and intensities."""

import json
import re
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch

from imse_study.cli import main
from imse_study.data.geometry import resample_onto, resize
from imse_study.data.io import load_labels, load_nifti, save_nifti
from imse_study.evaluator import Evaluator, EvaluatorMeta, save_checkpoint
from imse_study.evaluator.apply import IntensityWarning, error_map_array
from imse_study.evaluator.checkpoint import evaluator_spacing
from imse_study.evaluator.pretrained import load_any


@pytest.fixture(scope="module")
def ph(tmp_path_factory):
    """The smoke phantom's test subjects as NIfTI: 48 x 48 x 2 stacks (P, R, S) of 5 x 5 x 20 mm."""
    out = tmp_path_factory.mktemp("phantom")
    assert main(["phantom", "--out", str(out), "--profile", "smoke"]) == 0
    return out


def _tiny_evaluator(path):
    torch.manual_seed(0)
    meta = EvaluatorMeta(modality="t1", dim=2, size=(48, 48), width=2, n_blocks=1, normalisation="mr",
                         noise="shuffle_remap", n_range=(2, 50), profile="smoke")
    return save_checkpoint(path, Evaluator(2, 2, 1), meta)


def _mean_error(text: str) -> float:
    """The whole-image mean |E| that ``error-map`` prints beside the foreground one."""
    return float(re.search(r"mean \|E\| [0-9.]+ over the joint foreground \(([0-9.]+) over the whole image\)",
                           text).group(1))


def test_register_command_writes_results_and_dice(tmp_path, ph):
    moving = np.roll(np.asarray(nib.load(ph / "sub-3000_t1.nii.gz").dataobj), 3, axis=0)
    labels = np.roll(np.asarray(nib.load(ph / "sub-3000_labels.nii.gz").dataobj), 3, axis=0)
    affine = nib.load(ph / "sub-3000_t1.nii.gz").affine
    nib.save(nib.Nifti1Image(moving.astype(np.float32), affine), tmp_path / "moving.nii.gz")
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), affine), tmp_path / "moving_labels.nii.gz")
    out = tmp_path / "out"
    args = [str(tmp_path / "moving.nii.gz"), str(ph / "sub-3000_t2.nii.gz"), "-o", str(out),
            "--moving-labels", str(tmp_path / "moving_labels.nii.gz"),
            "--target-labels", str(ph / "sub-3000_labels.nii.gz"), "--iterations", "30"]
    assert main(["register", *args]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dice_after"] > summary["dice_before"]  # a 3-voxel shift is undone, at least partly
    assert nib.load(out / "displacement.nii.gz").shape == (*moving.shape, 3)
    assert np.allclose(nib.load(out / "warped.nii.gz").affine, affine)
    assert nib.load(out / "warped_labels.nii.gz").shape == moving.shape

    _tiny_evaluator(tmp_path / "e.pt")
    out2 = tmp_path / "out2"
    assert main(["register", str(tmp_path / "moving.nii.gz"), str(ph / "sub-3000_t2.nii.gz"), "-o", str(out2),
                 "--similarity", "imse", "--evaluator", str(tmp_path / "e.pt"), "--moving-modality", "t1",
                 "--target-modality", "t2", "--iterations", "6", "--precision", "bfloat16", "--flips", "point"]) == 0
    summary2 = json.loads((out2 / "summary.json").read_text())
    assert summary2["flips"] == "point"
    assert summary2["slicewise"] is True  # a 2D evaluator on a stack registers slice by slice
    field = np.asarray(nib.load(out2 / "displacement.nii.gz").dataobj)
    assert np.all(field[..., 2] == 0)


def test_error_map_of_registered_output_matches_the_python_api(tmp_path, ph, capsys):
    """warped.nii.gz (or any file a rounding step pushes past -1) is read as already scaled, not as HU."""
    ct, out = ph / "sub-3001_ct.nii.gz", tmp_path / "mi"
    assert main(["register", str(ph / "sub-3000_t1.nii.gz"), str(ct), "-o", str(out), "--iterations", "8"]) == 0
    warped_path = out / "warped.nii.gz"
    warped, _, _ = load_nifti(warped_path)
    assert -1.0 <= warped.min() and warped.max() <= 1.0  # written clipped to the input range
    capsys.readouterr()
    assert main(["error-map", str(ct), str(warped_path), "--evaluator", "phantom-ct-2d", "-o",
                 str(tmp_path / "e.nii.gz")]) == 0
    cli = _mean_error(capsys.readouterr().out)
    model, meta = load_any("phantom-ct-2d")
    reference, affine, _ = load_nifti(ct)
    api = np.abs(error_map_array(model, reference, warped, 2, affine=affine,
                                 evaluator_spacing=evaluator_spacing(meta))).mean()
    assert cli == pytest.approx(api, abs=1e-4)
    overshoot = warped.copy()
    overshoot[0, 0, 0] = -1.0000001
    save_nifti(tmp_path / "overshoot.nii.gz", overshoot, affine)
    assert main(["error-map", str(ct), str(tmp_path / "overshoot.nii.gz"), "--evaluator", "phantom-ct-2d", "-o",
                 str(tmp_path / "e2.nii.gz")]) == 0
    assert _mean_error(capsys.readouterr().out) == pytest.approx(api, abs=1e-3)


def test_moving_image_on_another_grid_is_resampled_in_physical_space(tmp_path, ph):
    target, affine, _ = load_nifti(ph / "sub-3000_t1.nii.gz")
    t2, _, _ = load_nifti(ph / "sub-3000_t2.nii.gz")  # aligned with the target in physical space
    labels, _ = load_labels(ph / "sub-3000_labels.nii.gz")
    other = affine.copy()  # 4 mm in-plane, columns and rows swapped, origin moved by (7, -3) mm
    other[:3, :2] = affine[:3, [1, 0]] * 0.8
    other[:3, 3] += [7.0, -3.0, 0.0]
    shape = (62, 58, 2)
    save_nifti(tmp_path / "moving.nii.gz", resample_onto(t2, affine, shape, other, cval=-1.0), other)
    save_nifti(tmp_path / "moving_labels.nii.gz", resample_onto(labels, affine, shape, other, labels=True), other,
               labels=True)
    out = tmp_path / "out"
    assert main(["register", str(tmp_path / "moving.nii.gz"), str(ph / "sub-3000_t1.nii.gz"), "-o", str(out),
                 "--moving-labels", str(tmp_path / "moving_labels.nii.gz"),
                 "--target-labels", str(ph / "sub-3000_labels.nii.gz"), "--iterations", "4"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["moving_resampled"] is True
    assert summary["dice_before"] > 0.85  # physically aligned once on the target grid
    for name in ("warped.nii.gz", "displacement.nii.gz", "warped_labels.nii.gz"):
        img = nib.load(out / name)
        assert img.shape[:3] == target.shape and np.allclose(img.affine, affine)
    warped, _, _ = load_nifti(out / "warped.nii.gz")
    assert np.corrcoef(warped.ravel(), t2.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("similarity", ["mi", "ncc", "mind", "imse", "imse_robust"])
def test_a_two_slice_stack_is_never_moved_through_plane(tmp_path, ph, capsys, similarity):
    args = [str(ph / "sub-3000_t1.nii.gz"), str(ph / "sub-3001_t2.nii.gz"), "--iterations", "4",
            "--moving-modality", "t1", "--target-modality", "t2", "--similarity", similarity]
    if similarity.startswith("imse"):
        args += ["--evaluator", str(_tiny_evaluator(tmp_path / "e.pt"))]
    assert main(["register", *args, "-o", str(tmp_path / "out")]) == 0
    terminal = capsys.readouterr().out
    assert "2D: a stack of 2 slices along array axis 2" in terminal and "slice by slice" in terminal
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dim"] == 2 and summary["slice_axis"] == 2
    field = np.asarray(nib.load(tmp_path / "out" / "displacement.nii.gz").dataobj)
    assert field.shape == (48, 48, 2, 3) and np.all(field[..., 2] == 0) and np.abs(field[..., :2]).max() > 0
    assert main(["register", *args, "-o", str(tmp_path / "out3"), "--dim", "3"]) == 2
    assert "--dim 2" in capsys.readouterr().err and not (tmp_path / "out3").exists()


def test_error_map_at_another_spacing_matches_the_native_one(tmp_path, ph, capsys):
    """The same anatomy on a grid twice as fine or twice as coarse: the evaluator sees its own spacing."""
    ct, affine, _ = load_nifti(ph / "sub-3000_ct.nii.gz")
    t1, _, _ = load_nifti(ph / "sub-3000_t1.nii.gz")
    fine = affine.copy()
    fine[:3, :2] /= 2
    fine[:3, 3] -= (affine[:3, 0] + affine[:3, 1]) / 4  # the same field of view, edge to edge
    for name, image in (("ct", ct), ("t1", t1)):
        save_nifti(tmp_path / f"fine_{name}.nii.gz", resize(image, (96, 96, 2)), fine)
    maps = {}
    for grid, folder in (("fine", tmp_path / "fine_"), ("coarse", ph / "sub-3000_")):
        out = tmp_path / f"{grid}_error.nii.gz"
        assert main(["error-map", f"{folder}ct.nii.gz", f"{folder}t1.nii.gz", "--evaluator", "phantom-ct-2d",
                     "-o", str(out)]) == 0
        maps[grid] = load_nifti(out)[0]
    fine_on_coarse = resize(maps["fine"], ct.shape)
    assert np.abs(fine_on_coarse - maps["coarse"]).mean() < 0.015
    assert np.corrcoef(fine_on_coarse.ravel(), maps["coarse"].ravel())[0, 1] > 0.95
    model, _ = load_any("phantom-ct-2d")  # at the input's spacing, the two disagree
    as_is = resize(error_map_array(model, resize(ct, (96, 96, 2)), resize(t1, (96, 96, 2)), 2), ct.shape)
    assert np.abs(as_is - error_map_array(model, ct, t1, 2)).mean() > 0.04


def test_ct_evaluator_warns_about_a_t1_reference(tmp_path, ph):
    ct, affine, _ = load_nifti(ph / "sub-3000_ct.nii.gz")
    t1, _, _ = load_nifti(ph / "sub-3000_t1.nii.gz")
    save_nifti(tmp_path / "ct_hu.nii.gz", ct * 1250.0 + 250.0, affine)  # back to Hounsfield units
    save_nifti(tmp_path / "t1_raw.nii.gz", (t1 + 1.0) * 400.0, affine)  # MR in scanner units
    cmd = ["--evaluator", "phantom-ct-2d", "-o", str(tmp_path / "e.nii.gz")]
    with pytest.warns(IntensityWarning, match="t1_raw.nii.gz does not look like a CT"):
        assert main(["error-map", str(tmp_path / "t1_raw.nii.gz"), str(tmp_path / "ct_hu.nii.gz"), *cmd,
                     "--other-modality", "ct"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntensityWarning)
        assert main(["error-map", str(tmp_path / "ct_hu.nii.gz"), str(tmp_path / "t1_raw.nii.gz"), *cmd]) == 0
