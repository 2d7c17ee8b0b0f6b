"""Data sets by manifest: tiny fake NIfTI trees for every file-based loader, and the phantom path."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from imse_study.data import datasets as ds
from imse_study.data.datasets import DatasetError, DatasetWarning, load_dataset, load_manifest
from imse_study.data.io import save_nifti

SHAPE = (12, 16, 10)  # file axes (x, y, z), RAS+
AFFINE = np.array([[1.0, 0, 0, -6], [0, 1.25, 0, -10], [0, 0, 2.0, -8], [0, 0, 0, 1]])
MARKER = (3, 5, 4)  # file index of the one voxel with label 4 in every BraTS seg
HEAD_SLICES = 6  # the head blob spans z = 2..7 of 10


# --------------------------------------------------------------------------------------------
# Fake data trees


def _head(seed: int, background: float = 0.0, inside: float = 100.0) -> np.ndarray:
    """An ellipsoidal 'head' with texture, in z = 2..7 only; ``background`` outside."""
    x, y, z = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    mask = ((x - 5.5) / 5) ** 2 + ((y - 7.5) / 6) ** 2 + ((z - 4.5) / 3) ** 2 <= 1
    texture = inside + 0.4 * inside * np.sin(x / 2.0) * np.cos(y / 3.0)
    noise = np.random.default_rng(seed).normal(0, 1, SHAPE)
    return np.where(mask, texture + noise, background).astype(np.float32)


def _seg(shift: int = 0) -> np.ndarray:
    seg = np.zeros(SHAPE, dtype=np.uint8)
    seg[4 + shift:8 + shift, 6:10, 3:6] = 2
    seg[5 + shift:7 + shift, 7:9, 4:5] = 1
    seg[MARKER] = 4
    return seg


BRATS_SUBJECTS = {
    "HGG": ["BraTS19_TEST_1", "BraTS19_TEST_2", "BraTS19_TEST_3"],
    "LGG": ["BraTS19_TEST_4", "BraTS19_TEST_5"],
}


@pytest.fixture(scope="module")
def brats_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("brats")
    for n, (grade, subject) in enumerate((g, s) for g, ss in BRATS_SUBJECTS.items() for s in ss):
        folder = root / "MICCAI_BraTS_2019_Data_Training" / grade / subject
        for k, mod in enumerate(("t1", "t1ce", "t2")):
            save_nifti(folder / f"{subject}_{mod}.nii.gz", _head(10 * n + k, inside=100 + 50 * k), AFFINE)
        save_nifti(folder / f"{subject}_seg.nii.gz", _seg(), AFFINE, labels=True)
    return root


def _ixi_root(tmp: Path) -> Path:
    for n, subject in enumerate(["IXI002-Guys-0828", "IXI012-HH-1211", "IXI013-HH-1212", "IXI014-IOP-0001"]):
        save_nifti(tmp / "IXI-T2" / f"{subject}-T2.nii.gz", _head(n, inside=300), AFFINE)
        if subject != "IXI014-IOP-0001":  # one subject without PD
            save_nifti(tmp / "IXI-PD" / f"{subject}-PD.nii.gz", _head(n + 50, inside=200), AFFINE)
        t1 = np.random.default_rng(n).uniform(0, 100, (10, 12, 8)).astype(np.float32)
        save_nifti(tmp / "IXI-T1" / f"{subject}-T1.nii.gz", t1, np.eye(4))
    return tmp


def _learn2reg_root(tmp: Path) -> Path:
    for n, case in enumerate(["0001", "0002", "0003", "0004"]):
        save_nifti(tmp / "imagesTr" / f"AbdomenMRCT_{case}_0000.nii.gz", _head(n, inside=500), AFFINE)
        ct = _head(n, background=-1000.0, inside=40.0)
        save_nifti(tmp / "imagesTr" / f"AbdomenMRCT_{case}_0001.nii.gz", ct, AFFINE)
        save_nifti(tmp / "labelsTr" / f"AbdomenMRCT_{case}_0000.nii.gz", _seg(0), AFFINE, labels=True)
        save_nifti(tmp / "labelsTr" / f"AbdomenMRCT_{case}_0001.nii.gz", _seg(1), AFFINE, labels=True)
    save_nifti(tmp / "imagesTr" / "AbdomenMRCT_0009_0001.nii.gz", _head(9, -1000.0, 40.0), AFFINE)  # unpaired CT
    return tmp


def _folder_root(tmp: Path) -> Path:
    for n, subject in enumerate(["patA", "patB", "patC"]):
        save_nifti(tmp / subject / "t1.nii.gz", _head(n, inside=80), AFFINE)
        save_nifti(tmp / subject / "ct.nii.gz", _head(n, background=-1000.0, inside=30.0), AFFINE)
    save_nifti(tmp / "patA" / "labels.nii.gz", _seg(0), AFFINE, labels=True)
    save_nifti(tmp / "patB" / "labels.nii.gz", _seg(0), AFFINE, labels=True)
    save_nifti(tmp / "patB" / "ct_labels.nii.gz", _seg(2), AFFINE, labels=True)
    return tmp


def _check_pairs(pairs, dim: int, labels: bool = True) -> None:
    """Every pair: float32 in [-1, 1], same shape, integer labels of that shape, a 4x4 affine."""
    assert pairs
    for p in pairs:
        assert p.moving.dtype == np.float32 and p.target.dtype == np.float32
        assert p.moving.ndim == dim and p.moving.shape == p.target.shape
        assert -1.0 <= p.moving.min() and p.moving.max() <= 1.0
        assert -1.0 <= p.target.min() and p.target.max() <= 1.0
        assert p.affine.shape == (4, 4) and len(p.spacing) == dim
        for lab in (p.moving_labels, p.target_labels):
            if labels:
                assert lab is not None and np.issubdtype(lab.dtype, np.integer) and lab.shape == p.moving.shape
            else:
                assert lab is None


# --------------------------------------------------------------------------------------------
# Manifests


def test_every_shipped_manifest_is_valid():
    names = ds.list_datasets()
    assert {"brats2019", "ixi", "learn2reg_abdomen_mrct", "icbm152_phantom", "folder"} <= set(names)
    for name in names:
        m = load_manifest(name)
        assert m["name"] == name and m["source"]["url"] and m["licence"]
    assert load_manifest("phantom")["name"] == "icbm152_phantom"
    assert load_manifest("brats2019")["pairs"]["t1t2"] == ["t1", "t2"]
    assert load_manifest("learn2reg_abdomen_mrct")["pairs"]["ctmr"] == ["ct", "mr"]
    assert load_manifest("icbm152_phantom")["pairs"]["ctmr"] == ["ct", "t1"]


def _manifest_copy(tmp_path: Path, name: str, change) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir(exist_ok=True)
    data = yaml.safe_load((ds.manifest_dir() / f"{name}.yaml").read_text())
    change(data)
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_malformed_manifests_name_file_and_key(tmp_path, monkeypatch):
    def drop_licence(m):
        m["name"] = "bad"
        del m["licence"]

    _manifest_copy(tmp_path, "brats2019", drop_licence)
    (tmp_path / "manifests" / "broken.yaml").write_text("name: [unclosed\n")
    monkeypatch.setenv(ds.ENV_MANIFESTS, str(tmp_path / "manifests"))
    with pytest.raises(DatasetError, match=r"bad\.yaml.*'licence'"):
        load_manifest("bad")
    with pytest.raises(DatasetError, match=r"broken\.yaml.*YAML"):
        load_manifest("broken")
    with pytest.raises(DatasetError, match="no data set called 'brats2019'.*bad"):
        load_manifest("brats2019")


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(default_pair="t9t9"), "default_pair"),
    (lambda m: m["pairs"].update(odd=["t1", "dwi"]), "unknown modality 'dwi'"),
    (lambda m: m["layout"].pop("tree"), "layout.tree"),
    (lambda m: m["splits"].update(fractions={"train": 0.9, "val": 0.2, "test": 0.1}), "sum to 1"),
    (lambda m: m["modalities"]["t1"].pop("files"), "'files'"),
])
def test_manifest_validation(tmp_path, change, message):
    path = _manifest_copy(tmp_path, "brats2019", change)
    with pytest.raises(DatasetError, match=message):
        load_manifest(path)


def test_missing_manifest_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(ds.ENV_MANIFESTS, str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="manifest folder not found"):
        ds.list_datasets()


# --------------------------------------------------------------------------------------------
# Root errors


def test_missing_empty_and_unmatched_roots(tmp_path, monkeypatch):
    monkeypatch.delenv(ds.ENV_DATA, raising=False)
    pattern = r"(?s)'brats2019'.*pass root=.*IMSE_STUDY_DATA.*MICCAI_BraTS_2019_Data_Training"
    with pytest.raises(DatasetError, match=pattern):
        load_dataset("brats2019")
    with pytest.raises(DatasetError, match=r"(?s)brats2019\.yaml.*does not exist.*nothing.*<subject>_t1\.nii\.gz"):
        load_dataset("brats2019", root=tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"(?s)empty.*MICCAI_BraTS_2019_Data_Training"):
        load_dataset("brats2019", root=tmp_path / "empty")
    save_nifti(tmp_path / "wrong" / "scan.nii.gz", np.zeros((2, 2, 2)))
    with pytest.raises(DatasetError, match=r"(?s)no subject has all of t1, t2.*scan\.nii\.gz.*expected layout"):
        load_dataset("brats2019", root=tmp_path / "wrong")


def test_root_from_environment(brats_root, monkeypatch, tmp_path):
    (tmp_path / "brats2019").symlink_to(brats_root, target_is_directory=True)
    monkeypatch.setenv(ds.ENV_DATA, str(tmp_path))
    assert len(load_dataset("brats2019", split="all", dim=3, size="native")) == 5


def test_bad_arguments(brats_root):
    with pytest.raises(DatasetError, match="no pair 'ctmr'"):
        load_dataset("brats2019", root=brats_root, pair="ctmr")
    with pytest.raises(DatasetError, match="no modality 'ct'"):
        load_dataset("brats2019", root=brats_root, pair=("ct", "t1"))
    with pytest.raises(DatasetError, match="unknown split"):
        load_dataset("brats2019", root=brats_root, split="holdout")
    with pytest.raises(DatasetError, match="dim"):
        load_dataset("brats2019", root=brats_root, dim=4)
    with pytest.raises(DatasetError, match="size"):
        load_dataset("brats2019", root=brats_root, size=(4, 4, 4))


# --------------------------------------------------------------------------------------------
# BraTS 2019


def test_brats_3d_pairs_labels_and_geometry(brats_root):
    pairs = load_dataset("brats2019", root=brats_root, split="all", dim=3, size="native")
    _check_pairs(pairs, 3)
    assert [p.subject for p in pairs] == sorted(s for ss in BRATS_SUBJECTS.values() for s in ss)
    p = pairs[0]
    assert (p.moving_modality, p.target_modality) == ("t1", "t2")
    assert p.moving.shape == (10, 16, 12)  # (z, y, x)
    assert p.spacing == pytest.approx((2.0, 1.25, 1.0))
    assert p.label_names["enhancing_tumour"] == 4
    assert set(np.unique(p.moving_labels)) == {0, 1, 2, 4}
    np.testing.assert_array_equal(p.moving_labels, p.target_labels)
    index = np.argwhere(p.moving_labels == 4)[0]
    np.testing.assert_allclose(p.affine @ np.append(index, 1.0), AFFINE @ np.array([*MARKER, 1.0]))


def test_brats_3d_default_size_is_the_papers(brats_root):
    pairs = load_dataset("brats2019", root=brats_root, split="test", dim=3)
    _check_pairs(pairs, 3)
    assert pairs[0].moving.shape == (48, 128, 128)
    # resizing keeps the field of view: the centre of the volume stays in place
    native = load_dataset("brats2019", root=brats_root, split="test", dim=3, size="native")[0]
    centre = lambda p: p.affine @ np.append((np.array(p.moving.shape) - 1) / 2, 1.0)  # noqa: E731
    np.testing.assert_allclose(centre(pairs[0]), centre(native), atol=1e-9)
    assert pairs[0].spacing == pytest.approx((20 / 48, 20 / 128, 12 / 128))


def test_brats_2d_slices_resize_and_affine(brats_root):
    pairs = load_dataset("brats2019", root=brats_root, split="all", dim=2)
    _check_pairs(pairs, 2)
    assert len(pairs) == 5 * HEAD_SLICES  # foreground slices only
    assert sorted({p.slice_index for p in pairs}) == list(range(2, 8))
    assert pairs[0].moving.shape == (16, 12)  # 2D: not resized (the paper keeps 240 x 240)
    marked = [p for p in pairs if (p.moving_labels == 4).any()]
    assert len(marked) == 5 and {p.slice_index for p in marked} == {MARKER[2]}
    i, j = np.argwhere(marked[0].moving_labels == 4)[0]
    np.testing.assert_allclose(marked[0].affine @ np.array([i, j, 0, 1.0]), AFFINE @ np.array([*MARKER, 1.0]))
    small = load_dataset("brats2019", root=brats_root, split="all", dim=2, size=(8, 6))
    _check_pairs(small, 2)
    assert small[0].moving.shape == (8, 6) and small[0].spacing == pytest.approx((2.5, 2.0))
    assert set(np.unique(np.concatenate([p.moving_labels.ravel() for p in small]))) <= {0, 1, 2, 4}


def test_brats_splits_are_disjoint_deterministic_and_seeded(brats_root):
    def subjects(split, seed=0):
        return {p.subject for p in load_dataset("brats2019", root=brats_root, split=split, dim=3, size=4, seed=seed)}

    parts = {s: subjects(s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [3, 1, 1]
    assert set.union(*parts.values()) == {s for ss in BRATS_SUBJECTS.values() for s in ss}
    assert not (parts["train"] & parts["val"] or parts["train"] & parts["test"] or parts["val"] & parts["test"])
    assert subjects("test") == parts["test"]


def test_a_subject_is_in_the_same_split_for_every_pair(tmp_path):
    subjects = [f"p{i}" for i in range(8)]
    for n, subject in enumerate(subjects):
        save_nifti(tmp_path / subject / "t1.nii.gz", _head(n), AFFINE)
        if n % 3:  # p0, p3 and p6 have no CT
            save_nifti(tmp_path / subject / "ct.nii.gz", _head(n, -1000.0, 40.0), AFFINE)
    for seed in (0, 1, 7):  # seed 1 drops p0 from the test split, seed 7 leaves it no CT at all
        expected = [s for s in ds.split_subjects(subjects, seed)["test"] if int(s[1]) % 3]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DatasetWarning)
            if not expected:
                with pytest.raises(DatasetError, match="none of the"):
                    load_dataset("folder", root=tmp_path, split="test", dim=3, pair=("ct", "t1"), seed=seed)
                continue
            pairs = load_dataset("folder", root=tmp_path, split="test", dim=3, pair=("ct", "t1"), seed=seed)
        assert [p.subject for p in pairs] == expected


def test_split_subjects_rule():
    ids = [f"s{i:02d}" for i in range(40)]
    a, b = ds.split_subjects(ids, seed=0), ds.split_subjects(list(reversed(ids)), seed=0)
    assert a == b  # order of discovery does not matter
    assert [len(a[k]) for k in ("train", "val", "test")] == [30, 2, 8]
    assert sorted(a["train"] + a["val"] + a["test"]) == ids
    assert ds.split_subjects(ids, seed=1) != a
    assert ds.split_subjects(["only"], seed=0) == {"train": ["only"], "val": [], "test": []}


def test_brats_label_sets(brats_root):
    with pytest.raises(DatasetError, match=r"(?s)label set 'tissue'.*missing.*_tissue\.nii\.gz"):
        load_dataset("brats2019", root=brats_root, split="all", dim=3, size=4, labels="tissue")
    _check_pairs(load_dataset("brats2019", root=brats_root, dim=3, size=4, labels="none"), 3, labels=False)


# --------------------------------------------------------------------------------------------
# IXI


def test_ixi_t2pd_pairs_skip_incomplete_subjects(tmp_path):
    root = _ixi_root(tmp_path)
    with pytest.warns(DatasetWarning, match="IXI014-IOP-0001"):
        pairs = load_dataset("ixi", root=root, split="all", dim=3, size="native")
    _check_pairs(pairs, 3, labels=False)
    assert [p.subject for p in pairs] == ["IXI002-Guys-0828", "IXI012-HH-1211", "IXI013-HH-1212"]
    assert (pairs[0].moving_modality, pairs[0].target_modality) == ("t2", "pd")


def test_ixi_unaligned_t1_is_refused_with_the_manifest_note(tmp_path):
    root = _ixi_root(tmp_path)
    with pytest.raises(DatasetError, match=r"(?s)no subject has all of t1, t2.*IXI-T1-reg.*rigidly"):
        load_dataset("ixi", root=root, pair="t1t2", split="all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        with pytest.raises(DatasetError, match=r"(?s)same voxel grid.*not co-registered"):
            load_dataset("ixi", root=root, pair=("t1_raw", "t2"), split="all")


# --------------------------------------------------------------------------------------------
# Learn2Reg abdomen MR-CT


def test_learn2reg_ctmr_pairs(tmp_path):
    root = _learn2reg_root(tmp_path)
    with pytest.warns(DatasetWarning, match="0009"):
        pairs = load_dataset("learn2reg_abdomen_mrct", root=root, split="all", dim=3, size="native")
    _check_pairs(pairs, 3)
    assert [p.subject for p in pairs] == ["0001", "0002", "0003", "0004"]
    p = pairs[0]
    assert (p.moving_modality, p.target_modality) == ("ct", "mr")
    assert p.moving.min() == -1.0  # air (-1000 HU) is the bottom of the CT window
    inside = p.moving[p.moving > -1.0]
    assert inside.max() < 0.0  # soft tissue (~40 HU) sits low in the -1000..1500 window, not stretched
    assert not np.array_equal(p.moving_labels, p.target_labels)  # each modality has its own label file
    assert p.label_names == {"background": 0, "liver": 1, "spleen": 2, "right_kidney": 3, "left_kidney": 4}


def test_learn2reg_mr_stands_in_for_the_ct_mr_pages_t1(tmp_path):
    root = _learn2reg_root(tmp_path)
    with pytest.warns(DatasetWarning, match="'mr' stands in"):
        pairs = load_dataset("learn2reg_abdomen_mrct", root=root, split="all", dim=3, size="native", pair=("ct", "t1"))
    assert (pairs[0].moving_modality, pairs[0].target_modality) == ("ct", "mr")
    with pytest.raises(DatasetError, match="no modality 't1'"):  # only the CT-MR pair borrows the MR
        load_dataset("learn2reg_abdomen_mrct", root=root, split="all", dim=3, pair=("t1", "t2"))


def test_learn2reg_2d_default_size(tmp_path):
    root = _learn2reg_root(tmp_path)
    with pytest.warns(DatasetWarning):
        pairs = load_dataset("learn2reg_abdomen_mrct", root=root, split="test", dim=2, pair="mrct")
    _check_pairs(pairs, 2)
    assert pairs[0].moving.shape == (192, 192) and pairs[0].moving_modality == "mr"


# --------------------------------------------------------------------------------------------
# A user's folder


def test_folder_any_modality_and_label_fallback(tmp_path):
    root = _folder_root(tmp_path)
    with pytest.warns(DatasetWarning, match="patC"):
        pairs = load_dataset("folder", root=root, split="all", dim=3, pair=("ct", "t1"))
    assert [p.subject for p in pairs] == ["patA", "patB", "patC"]
    _check_pairs(pairs[:2], 3)
    assert pairs[2].moving_labels is None and pairs[2].target_labels is None
    a, b = pairs[0], pairs[1]
    np.testing.assert_array_equal(a.moving_labels, a.target_labels)  # labels.nii.gz is shared
    assert not np.array_equal(b.moving_labels, b.target_labels)  # ct_labels.nii.gz wins for ct
    assert a.label_names is None and a.moving.min() == -1.0


def test_constant_image_error_names_the_file(tmp_path):
    root = _folder_root(tmp_path)
    save_nifti(root / "patA" / "t1.nii.gz", np.ones(SHAPE, np.float32), AFFINE)
    with pytest.raises(DatasetError, match=r"(?s)patA/t1\.nii\.gz.*constant"):
        load_dataset("folder", root=root, split="all", pair=("t1", "ct"), labels="none")


def test_folder_2d_files(tmp_path):
    for subject in ("one", "two"):
        save_nifti(tmp_path / subject / "mr.nii.gz", _head(1)[:, :, 4], AFFINE)
        save_nifti(tmp_path / subject / "ct.nii.gz", _head(2, -1000.0, 40.0)[:, :, 4], AFFINE)
    pairs = load_dataset("folder", root=tmp_path, split="all", dim=2, pair="mrct", labels="none", size=(6, 8))
    _check_pairs(pairs, 2, labels=False)
    assert len(pairs) == 2 and pairs[0].moving.shape == (6, 8)
    with pytest.raises(DatasetError, match="2D"):
        load_dataset("folder", root=tmp_path, split="all", dim=3, pair="mrct")


def test_manifest_file_with_slice_range_and_explicit_split(tmp_path):
    root = _folder_root(tmp_path / "data")

    def custom(m):
        m["preprocessing"]["2d"]["slices"] = {"mode": "range", "start": 3, "stop": 5}
        m["splits"]["explicit"] = {"test": ["patB"], "train": ["patA"]}

    path = _manifest_copy(tmp_path, "folder", custom)
    pairs = load_dataset(path, root=root, split="test", dim=2, pair=("t1", "ct"))
    assert [(p.subject, p.slice_index) for p in pairs] == [("patB", 3), ("patB", 4)]
    with pytest.raises(DatasetError, match="split 'val' is empty"):
        load_dataset(path, root=root, split="val", pair=("t1", "ct"))

    def by_labels(m):
        m["preprocessing"]["2d"]["slices"] = {"mode": "labels"}
        m["splits"]["explicit"] = {"test": ["patZ"]}

    path = _manifest_copy(tmp_path, "folder", by_labels)
    with pytest.raises(DatasetError, match="patZ"):
        load_dataset(path, root=root, split="test", pair=("t1", "ct"))
    pairs = load_dataset(path, root=root, split="all", pair=("t1", "ct"), max_subjects=1)
    assert [p.slice_index for p in pairs] == [3, 4, 5]  # slices holding a label


# --------------------------------------------------------------------------------------------
# The phantom (load_phantom replaced by a tiny fake)


def _fake_phantom(monkeypatch) -> list[dict]:
    phantom = pytest.importorskip("imse_study.data.phantom")
    calls: list[dict] = []

    def fake_load_phantom(split="train", dim=2, profile="quick", modalities=phantom.MODALITIES, cache_dir=None,
                          progress=False):
        calls.append({"split": split, "dim": dim, "profile": profile, "modalities": tuple(modalities)})
        shape = (6, 8) if dim == 2 else (4, 6, 8)
        offset = {"train": 1000, "val": 2000, "test": 3000}[split]
        subjects = np.repeat([offset, offset + 1], 2 if dim == 2 else 1)
        rng = np.random.default_rng(0)
        images = {m: rng.uniform(-1, 1, (len(subjects), *shape)).astype(np.float32) for m in modalities}
        labels = rng.integers(0, 7, (len(subjects), *shape)).astype(np.uint8)
        affines = np.repeat(np.diag([2.0, 2.0, 5.0, 1.0])[None], len(subjects), axis=0)
        return SimpleNamespace(images=images, labels=labels, subjects=subjects, affines=affines,
                               spacing=(2.0,) * dim, dim=dim)

    monkeypatch.setattr(phantom, "load_phantom", fake_load_phantom)
    return calls


def test_phantom_pairs_2d(monkeypatch):
    calls = _fake_phantom(monkeypatch)
    pairs = load_dataset("phantom", split="test", dim=2, pair="ctmr", profile="smoke")
    assert calls == [{"split": "test", "dim": 2, "profile": "smoke", "modalities": ("ct", "t1")}]
    _check_pairs(pairs, 2)
    expected = [("sub-3000", 0), ("sub-3000", 1), ("sub-3001", 0), ("sub-3001", 1)]
    assert [(p.subject, p.slice_index) for p in pairs] == expected
    assert (pairs[0].moving_modality, pairs[0].target_modality) == ("ct", "t1")
    np.testing.assert_array_equal(pairs[0].moving_labels, pairs[0].target_labels)
    assert pairs[0].label_names["skull"] == 5 and pairs[0].spacing == pytest.approx((2.0, 2.0))


def test_phantom_pairs_3d_resized_all_splits(monkeypatch):
    calls = _fake_phantom(monkeypatch)
    pairs = load_dataset("icbm152_phantom", split="all", dim=3, size=(8, 12, 16), max_subjects=1)
    assert [c["split"] for c in calls] == ["train", "val", "test"] and calls[0]["modalities"] == ("t1", "t2")
    _check_pairs(pairs, 3)
    assert [p.subject for p in pairs] == ["sub-1000", "sub-2000", "sub-3000"]
    assert pairs[0].moving.shape == (8, 12, 16) and pairs[0].spacing == pytest.approx((1.0, 1.0, 2.5))
    assert pairs[0].slice_index is None
    with pytest.raises(DatasetError, match="no pair"):
        load_dataset("phantom", pair="t1flair")
    with pytest.raises(DatasetError, match="no label set 'tumour'"):
        load_dataset("phantom", labels="tumour")
    _check_pairs(load_dataset("phantom", dim=3, labels="none"), 3, labels=False)
