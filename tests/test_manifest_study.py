"""The study on a manifest data set: test pairs, registration training and a notebook, on a tiny fake
folder-manifest tree (``data_manifests/folder.yaml``: ``<root>/<subject>/<modality>.nii.gz``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from imse_study.data.datasets import ENV_MANIFESTS, DatasetError, manifest_dir
from imse_study.data.io import save_nifti

SUBJECTS = ("subA", "subB", "subC", "subD")  # folder.yaml's split of 4: train 2, val 1, test 1
FILE_SHAPE = (32, 32, 3)  # file axes (x, y, z): three 32 x 32 axial slices per subject
AFFINE = np.diag([2.0, 2.0, 4.0, 1.0])
T1_BY_LABEL = (0.0, 90.0, 60.0, 30.0)  # label 0..3 -> intensity; T2 inverts the contrast
T2_BY_LABEL = (0.0, 30.0, 70.0, 100.0)


def _labels(n: int) -> np.ndarray:
    """A head (1), a ring inside it (2) and a blob (3); each subject a little shifted."""
    x, y, _ = np.meshgrid(*(np.arange(s) for s in FILE_SHAPE), indexing="ij")
    cx, cy = 15.5 + n % 2, 15.5 - n % 3
    r = np.hypot((x - cx) / 13, (y - cy) / 11)
    lab = np.zeros(FILE_SHAPE, dtype=np.uint8)
    lab[r <= 1] = 1
    lab[(r > 0.55) & (r <= 0.75)] = 2
    lab[np.hypot(x - cx - 3, y - cy + 2) <= 3.5] = 3
    return lab


def _write_tree(root: Path, labels: bool = True, subjects=SUBJECTS) -> Path:
    rng = np.random.default_rng(0)
    for n, subject in enumerate(subjects):
        lab = _labels(n)
        for mod, table in (("t1", T1_BY_LABEL), ("t2", T2_BY_LABEL)):
            image = np.asarray(table, dtype=np.float32)[lab] + rng.normal(0, 2, FILE_SHAPE).astype(np.float32)
            save_nifti(root / subject / f"{mod}.nii.gz", image, AFFINE)
        if labels:
            save_nifti(root / subject / "labels.nii.gz", lab, AFFINE, labels=True)
    return root


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory) -> Path:
    return _write_tree(tmp_path_factory.mktemp("folder_set"))


# --------------------------------------------------------------------------------------------
# (a) test pairs


def test_make_test_pairs_on_a_manifest_set(folder_root):
    from imse_study.registration.evaluate import evaluate, make_test_pairs

    pairs = make_test_pairs("t1", "t2", "test", 2, "smoke", dataset="folder", root=folder_root)
    assert len(pairs) == 3 and pairs.moving.shape == (3, 1, 32, 32) and pairs.direction == "t1->t2"
    subject = pairs.ids[0].split("/")[0]
    assert subject in SUBJECTS and pairs.ids == [f"{subject}/{k}" for k in range(3)]
    assert pairs.label_names == {"label_1": 1, "label_2": 2, "label_3": 3}  # folder.yaml names no labels
    assert pairs.spacing == (2.0, 2.0)
    from imse_study.data.aligned import load_aligned

    aligned = load_aligned("t1", "t2", "test", 2, "smoke", "folder", folder_root)
    assert torch.equal(pairs.target, aligned.images["t2"])  # the target stays as it is
    assert not torch.equal(pairs.moving, aligned.images["t1"])  # the moving image was misaligned
    assert torch.equal(pairs.target_labels, aligned.labels["t2"])
    table = evaluate({}, pairs, progress=False)
    assert (table["method"] == "initial").all() and len(table) == 3
    assert table["dice"].between(0.3, 0.999).all(), table["dice"]  # moved labels: overlap, not identity
    again = make_test_pairs("t1", "t2", "test", 2, "smoke", dataset="folder", root=folder_root, limit=2)
    assert torch.equal(again.moving, pairs.moving[:2])  # seeded per pair


@pytest.mark.filterwarnings("ignore::imse_study.data.datasets.DatasetWarning")  # the loader's "no labels" notice
def test_make_test_pairs_needs_labels(tmp_path):
    from imse_study.registration.evaluate import make_test_pairs

    root = _write_tree(tmp_path / "nolabels", labels=False)
    with pytest.raises(DatasetError, match="no label maps.*labels.nii.gz"):
        make_test_pairs("t1", "t2", dataset="folder", root=root)


def test_items_of_different_shapes_are_a_clear_error(tmp_path):
    from imse_study.data.aligned import load_aligned

    root = _write_tree(tmp_path / "mixed")
    small = np.zeros((16, 16, 3), dtype=np.float32)
    small[4:12, 4:12] = 50.0
    for subject in SUBJECTS:
        for name in ("t1", "t2", "labels"):
            save_nifti(root / subject / f"{name}.nii.gz", small.astype(np.uint8) if name == "labels" else small,
                       AFFINE, labels=name == "labels")
        break  # one subject smaller than the others
    with pytest.raises(DatasetError, match="different shapes.*size"):
        load_aligned("t1", "t2", "all", 2, "smoke", "folder", root)


def test_phantom_test_pairs_unchanged():
    """The phantom's pairs are built exactly as before data sets were supported (book numbers)."""
    from imse_study.augment import random_spatial_displacement
    from imse_study.data.phantom import LABELS, load_phantom
    from imse_study.registration.evaluate import TEST_SEED, make_test_pairs
    from imse_study.warp import warp

    pairs = make_test_pairs("ct", "t1", "test", 2, "smoke", limit=3)
    data = load_phantom("test", 2, "smoke", ("ct", "t1"))
    moving = torch.from_numpy(data.images["ct"][:3]).unsqueeze(1)
    labels = torch.from_numpy(data.labels[:3].astype(np.float32)).unsqueeze(1)
    fields = torch.cat([random_spatial_displacement((48, 48), 1, generator=torch.Generator().manual_seed(TEST_SEED + i))
                        for i in range(3)])
    assert torch.equal(pairs.moving, warp(moving, fields))
    assert torch.equal(pairs.moving_labels, warp(labels, fields, mode="nearest"))
    assert torch.equal(pairs.target, torch.from_numpy(data.images["t1"][:3]).unsqueeze(1))
    assert torch.equal(pairs.target_labels, labels)
    assert pairs.ids == ["sub-3000/0", "sub-3000/1", "sub-3001/0"]
    assert pairs.label_names == {k: v for k, v in LABELS.items() if v} and pairs.spacing == tuple(data.spacing)


# --------------------------------------------------------------------------------------------
# (b) registration training, and the shipped (phantom) models refused


def test_train_registration_on_a_manifest_set(folder_root, tmp_path, monkeypatch):
    from imse_study.cli import main
    from imse_study.registration.learned import load_network, train_registration

    out = tmp_path / "vm"
    code = main(["train-registration", "--similarity", "mi", "--moving", "t1", "--target", "t2", "--profile", "smoke",
                 "--dataset", "folder", "--root", str(folder_root), "--epochs", "1", "--steps-per-epoch", "2",
                 "--out", str(out)])
    assert code == 0
    _, meta = load_network(out / "network.pt")
    assert meta.dataset == "folder" and meta.steps == 2 and tuple(meta.size) == (32, 32)
    assert f"--dataset folder --root {folder_root}" in meta.command
    log = pd.read_csv(out / "log.csv")
    assert log["val_dice"].between(0, 1).all() and log["val_dice_initial"].between(0, 1).all()

    # the same tree under another manifest name: resuming must refuse the checkpoint of "folder"
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    shutil.copy(manifest_dir() / "folder.yaml", manifests / "folder.yaml")
    text = (manifest_dir() / "folder.yaml").read_text().replace("name: folder", "name: mine", 1)
    (manifests / "mine.yaml").write_text(text)
    monkeypatch.setenv(ENV_MANIFESTS, str(manifests))
    with pytest.raises(ValueError, match="cannot resume.*dataset='folder'.*'mine'"):
        train_registration(out, "mi", "t1", "t2", profile="smoke", resume=True, dataset="mine", root=folder_root,
                           epochs=1, budget={"steps_per_epoch": 2}, progress=False)


def test_shipped_models_refused_on_a_manifest_set(folder_root):
    from imse_study.evaluator.pretrained import load_any
    from imse_study.study.table2 import obtain_network

    with pytest.raises(ValueError, match="trained on the phantom.*-p train True"):
        obtain_network("mi", "t1", "t2", 2, "quick", train=False, dataset="folder", root=folder_root)
    with pytest.raises(ValueError, match="trained on data set 'phantom', not 'folder'"):
        load_any("phantom-t1-2d", dataset="folder")
    assert load_any("phantom-t1-2d", dataset="icbm152_phantom")[1].modality == "t1"


def test_translation_quality_reads_the_data_set(folder_root):
    from imse_study.evaluator.model import Evaluator
    from imse_study.evaluator.quality import translation_quality

    torch.manual_seed(0)
    model = Evaluator(2, 4, 1).eval()
    table = translation_quality(model, "t1", "t2", 2, "smoke", dataset="folder", root=folder_root)
    assert len(table) == 3 and table["ssim"].between(-1, 1).all()  # the set's 3 test slices, not the phantom's 4


# --------------------------------------------------------------------------------------------
# (c) a notebook on the manifest set


@pytest.mark.integration
def test_register_notebook_on_a_manifest_set(folder_root, tmp_path):
    """The study runner's --dataset: 02 through papermill on the fake set, networks trained here."""
    from imse_study.study import runner as study

    out = tmp_path / "pages"
    assert study.main(["--dataset", "folder", "--root", str(folder_root), "--only", "02_register_t1t2", "--profile",
                       "smoke", "--out", str(out), "--no-build", "-p", "methods", '["mi"]', "-p", "n_pairs", "2",
                       "-p", "viewer_slices", "1", "-p", "threads", "1", "-p", "train_dir", str(tmp_path / "work")]) == 0
    results = pd.read_csv(out / "02_register_t1t2.csv")
    assert set(results["method"]) == {"initial", "mi"} and set(results["direction"]) == {"t1->t2", "t2->t1"}
    assert results["pair"].str.split("/").str[0].isin(SUBJECTS).all() and len(results) == 8
    assert results["dice"].between(0, 1).all()
    assert (results.loc[results["method"] == "initial", "dice"] < 1).all()
    assert (tmp_path / "work" / "dataset-folder" / "vm-t1-t2-mi" / "network.pt").exists()
    with pytest.raises(SystemExit):  # the phantom's pages in book/experiments are never overwritten
        study.main(["--dataset", "folder", "--root", str(folder_root), "--only", "02_register_t1t2", "--publish"])
