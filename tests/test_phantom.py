"""The bundled phantom: shapes, determinism, caching, that each modality looks like itself, that version 1
is unchanged, and version 2's contrasts, appearance draws and held-out variants."""

import hashlib
import itertools
from dataclasses import replace

import numpy as np
import pytest

from imse_study.config import get_profile, with_phantom
from imse_study.data import appearance as A
from imse_study.data import phantom as P
from imse_study.data import tissues as T
from imse_study.data.appearance import draw_appearance


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


# --------------------------------------------------------------------------------------------
# Version 1 stays what the shipped models were trained on; version 2 and its variants

# sha256 of main's version 1 sets (images of MODALITIES in order, labels, subjects, affines,
# spacing) before version 2 existed, computed with main's code at commit 83377eb.
V1_SMOKE_TEST_SHA256 = {
    2: "3a7c0ebacc500cf260fce0937b4160681ea287038fd870164d1f261760e5a932",
    3: "b82a8ad1c9d30722acb64a9e91435232d6c0d4f573b4ef854905d8eb138f19dc",
}


def _digest(data) -> str:
    h = hashlib.sha256()
    for m in P.MODALITIES:
        h.update(np.ascontiguousarray(data.images[m]).tobytes())
    for a in (data.labels, data.subjects, data.affines, np.asarray(data.spacing)):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("dim", [2, 3])
def test_version_1_is_bit_identical_to_before_version_2(tmp_path, dim):
    data = P.load_phantom("test", dim, "smoke", cache_dir=tmp_path)  # generated here, not read from a cache
    assert _digest(data) == V1_SMOKE_TEST_SHA256[dim]
    assert P.PHANTOM_VERSION == 1 and data.appearance == []
    explicit = P.load_phantom("test", dim, "smoke", cache_dir=tmp_path, version=1)
    assert _digest(explicit) == V1_SMOKE_TEST_SHA256[dim]


def test_cache_key_keeps_version_1_and_holds_version_and_variant():
    cfg = get_profile("smoke").phantom
    assert P._cache_key(cfg, "test", 2) == "test-2d-deb9badff416"  # main's file name: old caches stay valid
    keys = {P._cache_key(cfg, "test", 2, 2, v) for v in (None, "noisy", "small-head")}
    assert len(keys) == 3 and all(k.startswith("v2-") for k in keys)
    assert P._cache_key(cfg, "test", 2, 2, "noisy") != P._cache_key(cfg, "test", 3, 2, "noisy")


def _signal(tissue: str, weighting: str, field_t: float, fse: bool | None = None) -> float:
    sequence = T.SEQUENCES[weighting]
    if fse is not None:
        sequence = replace(sequence, fast_spin_echo=fse)
    return T.mr_signal(T.TISSUES[tissue], sequence, field_t)


def _descending(values: dict[str, float], order: str) -> bool:
    return all(values[a] > values[b] for a, b in itertools.pairwise(order.split(" > ")))


@pytest.mark.parametrize("field_t", [1.5, 3.0])
def test_tissue_table_gives_the_published_contrasts(field_t):
    """T1: fat > WM > GM > CSF; T2 FSE: CSF > fat > GM > WM; PD FSE: CSF > GM > WM with fat bright;
    CT: bone > GM > WM > CSF > fat > air; bone and air dark on MR."""
    s = {w: {t: _signal(t, w, field_t) for t in T.TISSUES} for w in ("t1", "t2", "pd")}
    assert _descending(s["t1"], "fat > wm > gm > csf > bone")
    assert _descending(s["t2"], "csf > fat > gm > wm > bone")
    assert _descending(s["pd"], "csf > gm > wm > bone") and s["pd"]["fat"] > s["pd"]["gm"]
    for w in s:
        assert s[w]["air"] == 0.0 and s[w]["bone"] < 0.01 * s[w]["csf"]
    assert _descending({t: x.hu for t, x in T.TISSUES.items()}, "bone > skin > gm > wm > csf > fat > air")
    # conventional spin echo: fat keeps its short T2 and falls below grey matter on T2 (version 1's look)
    assert _signal("fat", "t2", field_t, fse=False) < _signal("gm", "t2", field_t, fse=False)
    assert all(t.source for t in T.TISSUES.values())  # every row says where its numbers come from


def test_field_strength_changes_the_relaxation_times():
    for name in ("gm", "wm", "fat", "skin"):
        assert T.TISSUES[name].at(3.0).t1_ms > T.TISSUES[name].at(1.5).t1_ms  # T1 lengthens with field
    with pytest.raises(ValueError, match="no relaxation times at 7"):
        T.TISSUES["gm"].at(7.0)


@pytest.fixture(scope="module")
def v2_smoke_test():
    return P.load_phantom("test", 2, "smoke", version=2)  # sub-3000 is drawn at 3 T, sub-3001 at 1.5 T


def test_version_2_images_show_the_contrasts_at_both_fields():
    # smoke's subjects at the quick profile's 2 mm pixels: smoke's 5 mm blur the thin scalp into the brain
    data = P.load_phantom("test", 2, with_phantom(get_profile("smoke"), size2d=(120, 120)), version=2)
    fields = {a["subject"]: a["field_t"] for a in data.appearance}
    assert set(fields.values()) == {1.5, 3.0}
    for field_t in (1.5, 3.0):
        rows = np.array([fields[int(s)] == field_t for s in data.subjects])
        values = {m: {name: data.images[m][rows][data.labels[rows] == value] for name, value in P.LABELS.items()}
                  for m in P.MODALITIES}

        def med(m, label, values=values):
            return float(np.median(values[m][label]))

        def scalp(m, q, values=values):  # the scalp's fat is its brightest part on MR, its darkest on CT
            return float(np.percentile(values[m]["scalp"], q))

        assert med("t1", "wm") > med("t1", "gm") > med("t1", "csf")
        assert med("t2", "ventricles") > med("t2", "gm") > med("t2", "wm")
        assert med("pd", "ventricles") > med("pd", "gm") > med("pd", "wm")
        for m in ("t1", "t2", "pd"):
            assert scalp(m, 90) > med(m, "gm")  # fat bright on T1, T2 FSE and PD FSE
            assert med(m, "background") < -0.9
        assert med("ct", "skull") > med("ct", "gm") > med("ct", "wm") > med("ct", "ventricles") > scalp("ct", 10)
        assert med("ct", "background") == pytest.approx(-1.0, abs=0.02)


def test_appearance_is_drawn_per_subject_within_the_training_ranges():
    looks = [draw_appearance(np.random.default_rng([2, s, 1])) for s in range(1000, 1040)]
    assert {a.field_t for a in looks} == {1.5, 3.0}
    assert draw_appearance(np.random.default_rng([2, 1000, 1])) == looks[0]  # reproducible from the id
    for name in ("head_scale", "skull_scale", "scalp_scale", "texture_gain"):
        values = [getattr(a, name) for a in looks]
        lo, hi = getattr(A.TRAINING, name)
        assert lo <= min(values) and max(values) <= hi and np.std(values) > 0.1 * (hi - lo)
    for name in ("noise", "bias_rms", "blur_px", "slice_mm"):
        lo, hi = getattr(A.TRAINING, name)
        assert all(lo <= v <= hi for a in looks for v in getattr(a, name).values())


def _interval_outside(variant: tuple, training: tuple) -> bool:
    return variant[0] > training[1] or variant[1] < training[0]


@pytest.mark.parametrize("name", sorted(A.VARIANTS))
def test_variants_lie_outside_what_training_draws(name):
    ranges, changes = A.VARIANTS[name].ranges(), A.VARIANTS[name].changes
    assert changes and ranges != A.TRAINING
    for key, value in changes.items():
        training = getattr(A.TRAINING, key)
        if key == "sequences":
            lo, hi = A.TRAINING.timing_scale
            differs = [
                value[w].fast_spin_echo != training[w].fast_spin_echo
                or _interval_outside((value[w].te_ms * lo, value[w].te_ms * hi), (training[w].te_ms * lo, training[w].te_ms * hi))
                for w in A.MR_WEIGHTINGS
            ]
            assert any(differs)
        elif key == "tissue_table":
            jitter = A.TRAINING.tissue_jitter
            for tissue in ("gm", "wm"):
                for field_t in (1.5, 3.0):
                    nominal = T.TISSUES[tissue].at(field_t).t1_ms
                    assert abs(T.TISSUE_TABLES[value][tissue].at(field_t).t1_ms / nominal - 1) > jitter
        elif key == "fields_t":
            assert set(value) < set(training)  # a field training draws, with other changes (asserted above)
            assert len(changes) > 1
        else:
            assert _interval_outside(value, training), key


def test_a_variant_changes_only_its_own_factor(v2_smoke_test):
    noisy = P.load_phantom("test", 2, "smoke", version=2, variant="noisy")
    np.testing.assert_array_equal(noisy.labels, v2_smoke_test.labels)  # same anatomy
    for base, varied in zip(v2_smoke_test.appearance, noisy.appearance):
        changed = {k for k in base if base[k] != varied[k]}
        assert changed == {"noise", "ct_noise_hu"}
    wm_ct = [float(np.std(d.images["ct"][d.labels == P.LABELS["wm"]])) for d in (noisy, v2_smoke_test)]
    assert wm_ct[0] > 1.5 * wm_ct[1]
    small = P.load_phantom("test", 2, "smoke", version=2, variant="small-head")
    assert (small.labels > 0).sum() < 0.85 * (v2_smoke_test.labels > 0).sum()


# The appearance record's keys each variant's changes may touch.
_RECORD_KEYS = {"fields_t": "field_t", "tissue_table": "tissue_table"}


@pytest.mark.parametrize("name", sorted(A.VARIANTS))
def test_every_variant_generates_and_records_only_its_change(name, v2_smoke_test):
    varied = P.load_phantom("test", 2, "smoke", version=2, variant=name)
    expected = {_RECORD_KEYS.get(key, key) for key in A.VARIANTS[name].changes}
    for base, look in zip(v2_smoke_test.appearance, varied.appearance):
        changed = {k for k in base if base[k] != look[k]}
        assert changed and changed <= expected
    for m in P.MODALITIES:
        img = varied.images[m]
        assert np.isfinite(img).all() and img.min() >= -1.0 and img.max() <= 1.0
    assert any(not np.array_equal(varied.images[m], v2_smoke_test.images[m]) for m in P.MODALITIES)


def test_version_2_splits_are_disjoint_and_deterministic(tmp_path, v2_smoke_test):
    again = P.load_phantom("test", 2, "smoke", version=2, cache_dir=tmp_path)  # regenerated
    for m in P.MODALITIES:
        np.testing.assert_array_equal(again.images[m], v2_smoke_test.images[m])
    assert again.appearance == v2_smoke_test.appearance
    assert [a["subject"] for a in again.appearance] == P.subject_ids("test", "smoke")
    v1 = P.load_phantom("test", 2, "smoke")
    assert not np.array_equal(v1.images["t2"], v2_smoke_test.images["t2"])
    for m in P.MODALITIES:
        img = v2_smoke_test.images[m]
        assert img.dtype == np.float32 and img.min() >= -1.0 and img.max() <= 1.0 and np.isfinite(img).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"version": 3}, "unknown phantom version 3"),
        ({"variant": "noisy"}, "variants exist from version 2 on"),
        ({"version": 2, "variant": "noisy", "split": "train"}, "held-out test set"),
        ({"version": 2, "variant": "blurry"}, "unknown phantom variant 'blurry'"),
    ],
)
def test_bad_version_or_variant_says_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        P.load_phantom(**{"split": "test", "dim": 2, "profile": "smoke", **kwargs})
