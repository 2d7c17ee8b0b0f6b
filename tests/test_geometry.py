"""Geometry from the header: stacks and volumes, the evaluator's layout, grids, training spacing, intensities."""

import itertools
import warnings

import numpy as np
import pytest
import torch

from imse_study.data.geometry import (
    Layout,
    axial_axis,
    registration_plan,
    resample_onto,
    slice_axis,
    through_plane_axis,
)
from imse_study.evaluator import (
    Evaluator,
    EvaluatorMeta,
    load_evaluator,
    save_checkpoint,
)
from imse_study.evaluator.apply import (
    IntensityWarning,
    error_map_array,
    to_unit_range,
    translate_array,
)
from imse_study.evaluator.checkpoint import SpacingWarning, evaluator_spacing
from imse_study.evaluator.pretrained import load_any
from imse_study.warp import warp

SPR = np.array([[0, 0, 2.0, -10], [0, -3.0, 0, 20], [4.0, 0, 0, -5], [0, 0, 0, 1]])  # (z, y, x): S, P, R


def _permuted(array: np.ndarray, affine: np.ndarray, perm: tuple[int, int, int], flips: tuple[bool, ...]):
    """The same image stored with its axes permuted and flipped, and the affine that says so."""
    out, aff = np.asarray(array), np.asarray(affine, dtype=np.float64).copy()
    for axis, flip in enumerate(flips):
        if flip:
            out = np.flip(out, axis)
            aff[:3, 3] += aff[:3, axis] * (array.shape[axis] - 1)
            aff[:3, axis] *= -1
    return np.ascontiguousarray(np.transpose(out, perm)), aff[:, [*perm, 3]]


def test_stack_or_volume_from_the_header():
    assert through_plane_axis((48, 48, 2), np.diag([5, 5, 20, 1.0])) == 2  # the phantom's 2D stacks
    assert through_plane_axis((16, 32, 32), np.diag([10, 7.5, 7.5, 1.0])) is None  # a volume
    assert through_plane_axis((24, 256, 256), np.diag([5, 0.9, 0.9, 1.0])) == 0  # thick slices
    assert through_plane_axis((64, 64, 64), np.eye(4)) is None
    assert through_plane_axis((30, 40), np.eye(4)) == 2  # a 2D image: one slice
    assert axial_axis(SPR) == 0 and axial_axis(np.eye(4)) == 2
    assert slice_axis((16, 32, 32), SPR) == 0 and slice_axis((32, 32, 16), np.eye(4)) == 2


def test_one_registration_rule_said_in_words():
    stack = registration_plan((48, 48, 2), np.diag([5, 5, 20, 1.0]))
    assert (stack.dim, stack.slice_axis, stack.n_slices) == (2, 2, 2) and "slice by slice" in stack.reason
    volume = registration_plan((16, 32, 32), SPR)
    assert (volume.dim, volume.slice_axis) == (3, None) and "volume" in volume.reason
    assert registration_plan((16, 32, 32), SPR, dim=2).slice_axis == 0  # a volume's axial slices
    assert registration_plan((24, 256, 256), np.diag([5, 0.9, 0.9, 1.0]), dim=3).dim == 3  # allowed when asked
    assert registration_plan((40, 30), np.eye(4)).dim == 2
    with pytest.raises(ValueError, match="--dim 2"):
        registration_plan((48, 48, 2), np.diag([5, 5, 20, 1.0]), dim=3)  # would move 2 slices through-plane
    with pytest.raises(ValueError, match="cannot be registered in 3D"):
        registration_plan((40, 30), np.eye(4), dim=3)


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
def test_layout_is_exact_and_brings_fields_back(perm):
    rng = np.random.default_rng(sum(perm))
    image = rng.uniform(-1, 1, (6, 7, 8)).astype(np.float32)
    flips = tuple(bool(b) for b in rng.integers(0, 2, 3))
    stored, affine = _permuted(image, SPR, perm, flips)
    for first in (None, int(np.argmin(stored.shape))):
        layout = Layout(stored.shape, affine, first)
        canonical = layout.to(stored)
        if first is None:
            np.testing.assert_array_equal(canonical, image)  # back in the (S, P, R) layout it was made in
        np.testing.assert_array_equal(layout.back(canonical), stored)
        # a displacement found in the layout warps the stored image as it warps the layout's image
        field = rng.uniform(-1.5, 1.5, (3, *canonical.shape)).astype(np.float32)
        moved = warp(torch.from_numpy(canonical)[None, None], torch.from_numpy(field)[None])[0, 0].numpy()
        back = layout.field_back(field)
        moved_stored = warp(torch.from_numpy(stored)[None, None], torch.from_numpy(back)[None])[0, 0].numpy()
        np.testing.assert_allclose(moved_stored, layout.back(moved), atol=1e-5)


def test_resample_onto_goes_through_physical_space():
    _, y, x = np.meshgrid(np.arange(10.0), np.arange(12.0), np.arange(14.0), indexing="ij")
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    ramp = (x * 2.0 + 3 * y * 2.0).astype(np.float32)  # linear in mm: reproduced exactly by linear interpolation
    other = np.diag([1.0, 3.0, 2.0, 1.0])
    other[:3, 3] = [2.0, 1.0, -2.0]
    out = resample_onto(ramp, affine, (8, 6, 9), other, cval=-1.0)
    _, yy, xx = np.meshgrid(np.arange(8.0), np.arange(6.0), np.arange(9.0), indexing="ij")
    mm_x, mm_y = xx * 2.0 - 2.0, yy * 3.0 + 1.0
    inside = (mm_x >= 0) & (mm_x <= 26) & (mm_y <= 22)
    np.testing.assert_allclose(out[inside], (mm_x + 3 * mm_y)[inside], atol=1e-4)
    assert np.all(out[mm_x < -0.5] == -1.0)
    labels = (x > 6).astype(np.int32) + 2 * (y > 5)
    lab = resample_onto(labels, affine, (8, 6, 9), other, labels=True)
    assert lab.dtype == labels.dtype and set(np.unique(lab)) <= {0, 1, 2, 3}


@pytest.fixture
def tiny2d():
    torch.manual_seed(0)
    return Evaluator(dim=2, width=4, n_blocks=1).eval()


def test_2d_evaluator_slices_a_volume_axially_whatever_the_storage_order(tiny2d):
    """The tool's own 3D NIfTI is (z, y, x): slicing its last axis compared sagittal strips."""
    rng = np.random.default_rng(1)
    ref, other = (rng.uniform(-1, 1, (12, 16, 20)).astype(np.float32) for _ in range(2))
    affine = np.array([[0, 0, 2.0, 0], [0, -2.0, 0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1]])  # isotropic (S, P, R)
    error = error_map_array(tiny2d, ref, other, 2, affine=affine)
    for k in (0, 5, 11):  # axial slice k, as a 2D image
        np.testing.assert_allclose(error[k], error_map_array(tiny2d, ref[k], other[k], 2), atol=1e-5)
    stored_ref, stored_affine = _permuted(ref, affine, (2, 0, 1), (True, False, True))
    stored_other, _ = _permuted(other, affine, (2, 0, 1), (True, False, True))
    stored_error = error_map_array(tiny2d, stored_ref, stored_other, 2, affine=stored_affine)
    np.testing.assert_allclose(stored_error, _permuted(error, affine, (2, 0, 1), (True, False, True))[0], atol=1e-6)
    translated = translate_array(tiny2d, stored_ref, stored_other, 2, affine=stored_affine)
    assert translated.shape == stored_ref.shape


def test_3d_evaluator_gives_the_same_map_for_a_reoriented_copy():
    torch.manual_seed(0)
    model = Evaluator(dim=3, width=2, n_blocks=1).eval()
    rng = np.random.default_rng(2)
    ref, other = (rng.uniform(-1, 1, (8, 12, 10)).astype(np.float32) for _ in range(2))
    error = error_map_array(model, ref, other, 3, affine=SPR)
    perm, flips = (1, 2, 0), (False, True, False)
    stored = [_permuted(a, SPR, perm, flips)[0] for a in (ref, other)]
    stored_error = error_map_array(model, *stored, 3, affine=_permuted(ref, SPR, perm, flips)[1])
    np.testing.assert_allclose(stored_error, _permuted(error, SPR, perm, flips)[0], atol=1e-6)


def test_evaluator_runs_at_its_training_spacing_and_answers_on_the_input_grid(tiny2d):
    rng = np.random.default_rng(3)
    ref, other = (rng.uniform(-1, 1, (30, 26, 3)).astype(np.float32) for _ in range(2))
    affine = np.array([[0, 4.0, 0, 0], [-4.0, 0, 0, 0], [0, 0, 10.0, 0], [0, 0, 0, 1]])  # (P, R, S) as the phantom
    seen = []
    real_forward = tiny2d.forward
    tiny2d.forward = lambda *a: (seen.append(tuple(a[0].shape)), real_forward(*a))[1]
    error = error_map_array(tiny2d, ref, other, 2, affine=affine, evaluator_spacing=(2.0, 2.0))
    assert error.shape == ref.shape
    assert seen == [(3, 1, 60, 52)]  # 3 axial slices, in-plane 4 mm -> 2 mm
    with pytest.raises(ValueError, match="needs the images' affine"):
        error_map_array(tiny2d, ref, other, 2, evaluator_spacing=(2.0, 2.0))


def test_evaluator_spacing_recorded_derived_or_unknown(tmp_path, tiny2d):
    base = {"modality": "t1", "dim": 2, "size": (120, 120), "width": 4, "n_blocks": 1, "normalisation": "mr",
            "noise": "shuffle_remap", "n_range": (2, 50), "profile": "quick"}
    assert evaluator_spacing(EvaluatorMeta(**base)) == (2.0, 2.0)  # the quick phantom: 240 mm / 120 px
    assert evaluator_spacing(EvaluatorMeta(**{**base, "dim": 3, "size": (32, 64, 64)})) == (5.0, 3.75, 3.75)
    assert load_any("phantom-t1-2d")[1].spacing is None  # shipped before the field: derived, not re-saved
    assert evaluator_spacing(load_any("phantom-t1-2d")[1]) == (2.0, 2.0)
    path = save_checkpoint(tmp_path / "e.pt", tiny2d, EvaluatorMeta(**{**base, "spacing": (0.9, 0.8)}))
    assert evaluator_spacing(load_evaluator(path)[1]) == (0.9, 0.8)
    unknown = EvaluatorMeta(**{**base, "dataset": "my-set", "command": "unique-for-this-test"})
    with pytest.warns(SpacingWarning, match="does not record its training spacing"):
        assert evaluator_spacing(unknown) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluator_spacing(unknown) is None  # warned once


def test_intensities_decided_by_modality_not_by_a_rounding_overshoot():
    rng = np.random.default_rng(4)
    warped = rng.uniform(-1, 1, (20, 20)).astype(np.float32)
    warped[0, 0] = -1.0000001  # what warping writes by rounding
    scaled = to_unit_range(warped, "ct")
    assert scaled.min() == -1.0 and np.allclose(scaled, np.clip(warped, -1, 1))
    hu = np.concatenate([np.full(50, -1000.0), rng.uniform(-100, 100, 400), np.full(50, 900.0)]).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_unit_range(hu, "ct")  # a CT in HU: no warning
        to_unit_range(rng.uniform(0, 800, 500).astype(np.float32), "t1")  # an MR image: no warning
    with pytest.warns(IntensityWarning, match="does not look like a CT"):
        to_unit_range(rng.uniform(0, 800, 500).astype(np.float32), "ct", name="t1.nii.gz")
    with pytest.warns(IntensityWarning, match="is it a CT"):
        to_unit_range(hu, "t1")
