"""`imse-study phantom --out DIR` writes NIfTI files that nibabel reads back with the right affine."""

import json

import nibabel as nib
import numpy as np

from imse_study.cli import main
from imse_study.data.phantom import LABELS, MODALITIES, load_phantom, subject_ids


def test_phantom_command_writes_readable_nifti(tmp_path, capsys):
    assert main(["phantom", "--out", str(tmp_path), "--profile", "smoke", "--montage", str(tmp_path / "m.png")]) == 0
    assert "wrote" in capsys.readouterr().out
    data = load_phantom("test", 2, "smoke")
    subject = subject_ids("test", "smoke")[0]
    rows = np.flatnonzero(data.subjects == subject)
    for modality in MODALITIES:
        img = nib.load(tmp_path / f"sub-{subject:04d}_{modality}.nii.gz")
        assert img.shape == (*data.images[modality].shape[1:], len(rows))
        np.testing.assert_allclose(np.asarray(img.dataobj)[..., 1], data.images[modality][rows[1]], atol=1e-6)
        # voxel (i, j) of slice k lands where that slice's own affine puts it
        np.testing.assert_allclose(img.affine @ [3, 5, 1, 1], data.affines[rows[1]] @ [3, 5, 0, 1], atol=1e-4)
    labels = nib.load(tmp_path / f"sub-{subject:04d}_labels.nii.gz")
    assert np.issubdtype(labels.get_data_dtype(), np.integer)
    assert json.loads((tmp_path / "labels.json").read_text()) == LABELS
    assert (tmp_path / "m.png").stat().st_size > 10_000


def test_phantom_command_3d(tmp_path):
    assert main(["phantom", "--out", str(tmp_path), "--profile", "smoke", "--dim", "3", "--split", "val"]) == 0
    data = load_phantom("val", 3, "smoke")
    subject = subject_ids("val", "smoke")[0]
    img = nib.load(tmp_path / f"sub-{subject:04d}_ct.nii.gz")
    np.testing.assert_allclose(img.affine, data.affines[0])
    np.testing.assert_allclose(np.asarray(img.dataobj), data.images["ct"][0], atol=1e-6)
    assert np.allclose(sorted(nib.affines.voxel_sizes(img.affine)), sorted(data.spacing))


def test_phantom_command_version_2_variant(tmp_path, capsys):
    out = tmp_path / "noisy"
    argv = ["phantom", "--out", str(out), "--profile", "smoke", "--version", "2", "--variant", "noisy",
            "--montage", str(tmp_path / "v2.png")]
    assert main(argv) == 0
    assert "version 2, variant noisy" in capsys.readouterr().out
    data = load_phantom("test", 2, "smoke", version=2, variant="noisy")
    subject = subject_ids("test", "smoke")[0]
    img = nib.load(out / f"sub-{subject:04d}_t2.nii.gz")
    np.testing.assert_allclose(np.asarray(img.dataobj)[..., 0], data.images["t2"][0], atol=1e-6)
    appearance = json.loads((out / "appearance.json").read_text())
    assert [a["subject"] for a in appearance] == subject_ids("test", "smoke")
    assert all(a["noise"]["t1"] >= 0.05 for a in appearance)  # the variant's noise, outside training's
    assert (tmp_path / "v2.png").stat().st_size > 10_000


def test_phantom_command_refuses_a_variant_of_version_1(tmp_path, capsys):
    assert main(["phantom", "--out", str(tmp_path / "x"), "--profile", "smoke", "--variant", "noisy"]) == 2
    err = capsys.readouterr().err.strip()
    assert "version 2" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()  # nothing written
