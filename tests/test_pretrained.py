"""The evaluators that ship with the package load, know their modality, and rank as measured."""

import pytest
import torch

from imse_study.evaluator import available_pretrained, load_any, load_pretrained
from imse_study.evaluator.train import load_images, mean_abs_error


def test_shipped_evaluators_exist_and_are_small():
    from imse_study.evaluator.pretrained import PRETRAINED_DIR

    assert {"phantom-t1-2d", "phantom-ct-2d"} <= set(available_pretrained())
    for name in ("phantom-t1-2d", "phantom-ct-2d"):
        assert (PRETRAINED_DIR / f"{name}.pt").stat().st_size < 10 * 2**20
        meta = load_pretrained(name).meta
        assert meta.profile == "quick" and meta.dim == 2 and meta.steps == 3000
        assert meta.command.startswith("imse-study train-evaluator")


def test_load_pretrained_checks_modality_and_names():
    assert load_pretrained("phantom-ct-2d", modality="ct").meta.modality == "ct"
    with pytest.raises(ValueError, match="trained on 'ct' images, not 't1'"):
        load_pretrained("phantom-ct-2d", modality="t1")
    with pytest.raises(ValueError, match="available: .*phantom-t1-2d"):
        load_pretrained("phantom-t9-2d")
    model, meta = load_any("phantom-t1-2d")
    assert meta.modality == "t1" and not model.training


def test_shipped_ct_evaluator_sees_misalignment_on_quick_test_pairs():
    """An 8 mm shift of the T1 image raises the CT evaluator's mean |E| on every pair."""
    from imse_study.warp import warp

    model = load_pretrained("phantom-ct-2d")
    images = load_images(["ct", "t1"], "test", 2, "quick")
    ct, t1 = images["ct"][:4], images["t1"][:4]
    shift = torch.zeros(4, 2, *t1.shape[2:])
    shift[:, 0] = 4.0  # 8 mm
    aligned = mean_abs_error(model, ct, t1)
    moved = mean_abs_error(model, ct, warp(t1, shift))
    assert (moved > aligned).all()


def test_default_evaluator_follows_the_dimension():
    from imse_study.registration.methods import default_evaluator

    assert default_evaluator("ct", "t1") == "phantom-ct-2d"
    assert default_evaluator("t1", "t2", dim=3) == "phantom-t1-3d"
    with pytest.raises(ValueError, match="no shipped 3D evaluator"):
        default_evaluator("t2", "pd", dim=3)
