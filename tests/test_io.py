"""NIfTI input/output: round trips keep data and geometry, writes are atomic, errors name the file."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from imse_study.data import io
from imse_study.data.io import load_labels, load_nifti, reorient, save_nifti


def _oblique_affine(spacing=(0.9, 1.1, 2.5)) -> np.ndarray:
    """A rotated, anisotropic, translated affine: geometry that a sloppy writer would lose."""
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spacing)
    affine[:3, 3] = (-12.5, 30.0, 7.25)
    return affine


def test_image_round_trip_keeps_data_affine_and_spacing(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(12, 16, 10)).astype(np.float32)
    affine = _oblique_affine()
    path = save_nifti(tmp_path / "img.nii.gz", data, affine)
    out, out_affine, spacing = load_nifti(path)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, data)
    np.testing.assert_allclose(out_affine, affine, atol=1e-5)
    np.testing.assert_allclose(spacing, (0.9, 1.1, 2.5), atol=1e-5)
    img = nib.load(str(path))
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    np.testing.assert_allclose(img.get_qform(), affine, atol=1e-5)
    with open(path, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"  # gzip: the .nii.gz suffix compressed it


def test_2d_round_trip(tmp_path):
    data = np.arange(20, dtype=np.float32).reshape(4, 5)
    affine = np.diag([0.5, 0.75, 3.0, 1.0])
    out, out_affine, spacing = load_nifti(save_nifti(tmp_path / "slice.nii", data, affine))
    assert out.shape == (4, 5)
    np.testing.assert_array_equal(out, data)
    np.testing.assert_allclose(out_affine, affine)
    assert spacing == pytest.approx((0.5, 0.75))


def test_labels_round_trip_is_integer_and_compact(tmp_path):
    labels = np.zeros((6, 7, 5), dtype=np.int64)
    labels[1:3, 2:5, 1:4] = 4
    labels[4, 4, 4] = 2
    path = save_nifti(tmp_path / "seg.nii.gz", labels, _oblique_affine(), labels=True)
    assert nib.load(str(path)).get_data_dtype() == np.uint8
    assert nib.load(str(path)).header.get_intent()[0] == "label"
    out, affine = load_labels(path)
    assert np.issubdtype(out.dtype, np.integer)
    np.testing.assert_array_equal(out, labels)
    np.testing.assert_allclose(affine, _oblique_affine(), atol=1e-5)


def test_labels_wider_than_uint8_and_float_labels(tmp_path):
    wide = np.array([[0, 300], [-2, 5]])
    assert load_labels(save_nifti(tmp_path / "w.nii.gz", wide, labels=True))[0].tolist() == wide.tolist()
    as_float = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    assert load_labels(save_nifti(tmp_path / "f.nii.gz", as_float))[0].tolist() == [[0, 1], [2, 3]]


def test_non_integer_labels_are_refused(tmp_path):
    with pytest.raises(ValueError, match="integer"):
        save_nifti(tmp_path / "x.nii.gz", np.array([[0.5, 1.0]]), labels=True)
    path = save_nifti(tmp_path / "img.nii.gz", np.array([[0.5, 1.0], [2.0, 3.0]]))
    with pytest.raises(ValueError, match=r"img\.nii\.gz.*non-integer"):
        load_labels(path)


def test_write_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "sub" / "img.nii.gz"
    save_nifti(path, np.zeros((3, 3, 3)))
    save_nifti(path, np.ones((3, 3, 3)))
    assert load_nifti(path)[0].min() == 1.0
    assert sorted(p.name for p in path.parent.iterdir()) == ["img.nii.gz"]  # no temp file left


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = save_nifti(tmp_path / "img.nii.gz", np.zeros((3, 3, 3)))

    def broken_save(img, filename):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(io.nib, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_nifti(path, np.ones((3, 3, 3)))
    monkeypatch.undo()
    assert load_nifti(path)[0].max() == 0.0
    assert [p.name for p in tmp_path.iterdir()] == ["img.nii.gz"]


def test_missing_file_names_path_and_expectation(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.nii\.gz.*\.nii\.gz or \.nii"):
        load_nifti(tmp_path / "nope.nii.gz")
    with pytest.raises(FileNotFoundError, match="nope"):
        load_labels(tmp_path / "nope.nii.gz")


def test_unreadable_files_raise_value_error_naming_path(tmp_path):
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match=r"junk\.nii\.gz"):
        load_nifti(junk)
    good = save_nifti(tmp_path / "cut.nii.gz", np.random.default_rng(1).normal(size=(20, 20, 20)))
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"truncated\.nii\.gz"):
        load_nifti(truncated)
    with pytest.raises(ValueError, match="folder"):
        load_nifti(tmp_path)


def test_wrong_suffix_and_bad_shape_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.nii\.gz or \.nii"):
        save_nifti(tmp_path / "img.png", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="dimensions"):
        save_nifti(tmp_path / "line.nii.gz", np.zeros(5))
    path = tmp_path / "4d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 3, 4, 5), np.float32), np.eye(4)), str(path))
    with pytest.raises(ValueError, match=r"4d\.nii\.gz.*2D or 3D"):
        load_nifti(path)


def test_trailing_singleton_axis_is_dropped(tmp_path):
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((2, 3, 4, 1), np.float32), np.eye(4)), str(path))
    assert load_nifti(path)[0].shape == (2, 3, 4)


def test_nan_is_an_error_unless_allowed(tmp_path):
    data = np.zeros((4, 4, 4), dtype=np.float32)
    data[1, 2, 3] = np.nan
    path = save_nifti(tmp_path / "nan.nii.gz", data)
    with pytest.raises(ValueError, match=r"nan\.nii\.gz holds 1 NaN"):
        load_nifti(path)
    out, _, _ = load_nifti(path, allow_nan=True)
    assert np.isnan(out[1, 2, 3])


def test_plain_nii_is_not_gzipped(tmp_path):
    path = save_nifti(tmp_path / "plain.nii", np.zeros((2, 2, 2)))
    with pytest.raises(gzip.BadGzipFile):
        gzip.open(path).read(1)


def test_reorient_keeps_world_coordinates():
    data = np.zeros((4, 5, 6), dtype=np.int16)
    data[1, 3, 2] = 1
    affine = np.array([[-2.0, 0, 0, 10], [0, 0, 3.0, -5], [0, 1.5, 0, 4], [0, 0, 0, 1]])  # LIA-ish
    out, new_affine = reorient(data, affine)
    assert out.shape == (5, 6, 4)
    world = affine @ np.array([1, 3, 2, 1.0])
    index = np.argwhere(out == 1)[0]
    np.testing.assert_allclose(new_affine @ np.append(index, 1.0), world)
    assert nib.aff2axcodes(new_affine) == ("S", "P", "R")


def test_a_header_claiming_more_voxels_than_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    header = nib.Nifti1Header()
    header.set_data_shape((2048, 2048, 2048))
    header.set_data_dtype(np.float32)
    path = tmp_path / "claims.nii"
    path.write_bytes(header.binaryblock + b"\0" * 4)  # no voxel data at all: reading it would fail otherwise
    with pytest.raises(ValueError, match=r"claims\.nii.*8,589,934,592 voxels.*IMSE_STUDY_MAX_VOXELS=8589934592"):
        load_nifti(path)
    with pytest.raises(ValueError, match="more than the limit"):
        load_labels(path)
    small = save_nifti(tmp_path / "small.nii.gz", np.arange(24.0).reshape(2, 3, 4))
    assert load_nifti(small, max_voxels=24)[0].shape == (2, 3, 4)
    with pytest.raises(ValueError, match="limit of 23"):
        load_nifti(small, max_voxels=23)
    monkeypatch.setenv("IMSE_STUDY_MAX_VOXELS", "10")
    with pytest.raises(ValueError, match="limit of 10"):
        load_labels(small)
    monkeypatch.setenv("IMSE_STUDY_MAX_VOXELS", "-3")
    with pytest.raises(ValueError, match="IMSE_STUDY_MAX_VOXELS='-3'"):
        load_nifti(small)


@pytest.mark.parametrize("broken", ["nan", "zero-column", "repeated-column"])
def test_a_non_finite_or_degenerate_affine_is_refused(tmp_path, broken):
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    if broken == "nan":
        affine[0, 3] = np.nan
    elif broken == "zero-column":
        affine[:3, 1] = 0.0
    else:
        affine[:3, 2] = affine[:3, 0]
    path = tmp_path / "geometry.nii.gz"
    img = nib.Nifti1Image(np.ones((3, 4, 5), np.float32), None)
    img.header.set_sform(affine, code=1)
    img.header.set_qform(None, code=0)
    nib.save(img, str(path))
    with pytest.raises(ValueError, match=r"geometry\.nii\.gz.*(non-finite|zero or repeated).*repair the header"):
        load_nifti(path)


@pytest.mark.parametrize("data, message", [
    (np.zeros((4, 4, 4)), r"is constant \(every voxel is 0\)"),
    (np.full((4, 4), 5.0), r"is constant \(every voxel is 5\)"),
    (np.ones((1, 1, 1)), "at least 2 voxels along two axes"),
    (np.arange(6.0).reshape(1, 6, 1), "at least 2 voxels along two axes"),
])
def test_check_image_content_refuses_images_with_nothing_to_measure(data, message):
    with pytest.raises(ValueError, match=r"img\.nii\.gz.*" + message):
        io.check_image_content(data, "img.nii.gz")
    io.check_image_content(np.arange(4.0).reshape(2, 2), "fine.nii.gz")


def test_label_values_beyond_int32_are_an_error_not_a_wrap_around(tmp_path):
    path = tmp_path / "wide.nii.gz"
    nib.save(nib.Nifti1Image(np.array([[0, 2**40]], dtype=np.int64), np.eye(4), dtype=np.int64), str(path))
    with pytest.raises(ValueError, match=r"wide\.nii\.gz.*do not fit in int32"):
        load_labels(path)


def test_a_2d_image_whose_third_axis_has_no_direction_is_refused(tmp_path):
    affine = np.diag([-0.8, 1.2, 0.0, 1.0])  # a hand-made sform: orientation needs a third direction
    path = tmp_path / "flat.nii.gz"
    img = nib.Nifti1Image(np.arange(12.0, dtype=np.float32).reshape(3, 4), None)
    img.set_sform(affine, code=1)
    img.set_qform(None, code=0)
    nib.save(img, str(path))
    with pytest.raises(ValueError, match=r"flat\.nii\.gz.*zero or repeated voxel direction.*\[0\.8, 1\.2, 0\.0\]"):
        load_nifti(path)
    with pytest.raises(ValueError, match="finite, invertible"):
        save_nifti(tmp_path / "out.nii.gz", np.zeros((3, 4)), affine)
