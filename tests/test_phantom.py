"""The bundled phantom: shapes, determinism, caching, and that each modality looks like itself."""

import numpy as np
import pytest

from imse_study.config import get_profile
from imse_study.data import phantom as P


@pytest.fixture(scope="module")
def smoke2d():
    return P.load_phantom("test", 2, "smoke")


@pytest.fixture(scope="module")
def smoke3d():
    return P.load_phantom("test", 3, "smoke")


def _median(data, modality, label):
    return float(np.median(data.images[modality][data.labels == P.LABELS[label]]))


def test_shapes_range_and_counts(smoke2d, smoke3d):
    cfg = get_profile("smoke").phantom
    n2 = cfg.subjects["test"] * cfg.slices_per_subject
    for m in P.MODALITIES:
        assert smoke2d.images[m].shape == (n2, *cfg.size2d)
        assert smoke3d.images[m].shape == (cfg.subjects["test"], *cfg.size3d)
        for data in (smoke2d, smoke3d):
            img = data.images[m]
            assert img.dtype == np.float32
            assert np.isfinite(img).all() and img.min() >= -1.0 and img.max() <= 1.0
    assert smoke2d.labels.shape == (n2, *cfg.size2d) and smoke2d.labels.dtype == np.uint8
    assert set(np.unique(smoke3d.labels)) == set(P.LABELS.values())  # every label exists in 3D
    assert smoke2d.affines.shape == (n2, 4, 4) and smoke3d.affines.shape == (cfg.subjects["test"], 4, 4)
    assert smoke2d.spacing == pytest.approx((240 / 48, 240 / 48))


def test_split_subject_ids_are_disjoint():
    ids = {s: set(P.subject_ids(s, "quick")) for s in P.SPLITS}
    assert len(ids["train"]) == 24 and len(ids["val"]) == 4 and len(ids["test"]) == 8
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]


def test_modalities_look_like_themselves():
    """CSF dark on T1 and bright on T2, GM darker than WM on T1, bone bright only on CT."""
    data = P.load_phantom("val", 2, "smoke")
    t1 = {k: _median(data, "t1", k) for k in ("csf", "gm", "wm", "skull", "scalp")}
    t2 = {k: _median(data, "t2", k) for k in ("csf", "gm", "wm", "skull")}
    assert t1["csf"] < t1["gm"] < t1["wm"]
    assert t2["csf"] > t2["gm"] > t2["wm"]
    assert t1["scalp"] > t1["wm"]  # fat is bright on T1
    assert _median(data, "t2", "ventricles") > 0.5
    for mr in ("t1", "t2", "pd"):
        assert _median(data, mr, "skull") < -0.5
        assert _median(data, mr, "background") < -0.9
    assert _median(data, "ct", "skull") > 0.3
    assert _median(data, "ct", "background") == pytest.approx(-1.0, abs=0.02)
    brain_ct = [_median(data, "ct", k) for k in ("csf", "gm", "wm")]
    assert max(brain_ct) < 0.0  # soft tissue sits far below bone in the HU window


def test_deterministic_and_subjects_differ(tmp_path, smoke2d):
    again = P.load_phantom("test", 2, "smoke", cache_dir=tmp_path)  # regenerated, not read
    for m in P.MODALITIES:
        np.testing.assert_array_equal(again.images[m], smoke2d.images[m])
    np.testing.assert_array_equal(again.labels, smoke2d.labels)
    first, second = np.unique(smoke2d.subjects)[:2]
    a = smoke2d.labels[smoke2d.subjects == first][0]
    b = smoke2d.labels[smoke2d.subjects == second][0]
    assert (a != b).mean() > 0.05  # a different subject has a different shape


def test_cache_is_reused_and_damaged_cache_regenerated(tmp_path, monkeypatch):
    first = P.load_phantom("val", 2, "smoke", cache_dir=tmp_path)
    files = list(tmp_path.glob("phantom-*.npz"))
    assert len(files) == 1

    def fail(*args, **kwargs):
        raise AssertionError("the cached set should have been read")

    monkeypatch.setattr(P, "_generate_set", fail)
    cached = P.load_phantom("val", 2, "smoke", cache_dir=tmp_path, modalities=("ct",))
    assert list(cached.images) == ["ct"]
    np.testing.assert_array_equal(cached.images["ct"], first.images["ct"])
    monkeypatch.undo()
    files[0].write_bytes(b"not a zip file")
    regenerated = P.load_phantom("val", 2, "smoke", cache_dir=tmp_path)
    np.testing.assert_array_equal(regenerated.labels, first.labels)


def test_affines_map_into_the_head(smoke2d, smoke3d):
    """The voxel at the centre of the label map's brain maps to a point inside the MNI brain box."""
    for data in (smoke2d, smoke3d):
        brain = np.isin(data.labels[0], [P.LABELS["gm"], P.LABELS["wm"]])
        centre = np.argwhere(brain).mean(0)
        index = np.append(centre, [0.0] * (3 - len(centre)))
        world = data.affines[0] @ np.append(index, 1.0)
        assert -25 < world[0] < 25 and -45 < world[1] < 15 and -30 < world[2] < 50


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "holdout"}, "unknown split"),
        ({"dim": 4}, "dim must be 2 or 3"),
        ({"profile": "huge"}, "unknown profile"),
        ({"modalities": ("t1", "flair")}, "unknown phantom modality"),
    ],
)
def test_bad_arguments_say_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        P.load_phantom(**{"split": "test", "dim": 2, "profile": "smoke", **kwargs})
