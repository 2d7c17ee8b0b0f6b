"""NMAE / PSNR / SSIM (Table 5): one implementation, the same values for IMSE's and the GANs' rows."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imse_study.baselines.translator import translation_metrics
from imse_study.evaluator.quality import image_quality as evaluator_image_quality
from imse_study.metrics import image_quality, image_quality_per_item


def _batch(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(-1, 1, (3, 1, 24, 20)).astype(np.float32)
    prediction = np.clip(truth + rng.normal(0, 0.1, truth.shape), -1, 1).astype(np.float32)
    prediction[1] = truth[1]  # one exact prediction
    return prediction, truth


def test_imse_rows_and_gan_rows_are_scored_alike():
    prediction, truth = _batch()
    gan = translation_metrics(torch.from_numpy(prediction), torch.from_numpy(truth))
    imse = [evaluator_image_quality(prediction[i, 0], truth[i, 0]) for i in range(len(truth))]
    for k in ("nmae", "psnr", "ssim"):
        np.testing.assert_array_equal(gan[k], [row[k] for row in imse])
    assert np.isinf(gan["psnr"][1]) and np.isfinite(gan["psnr"][[0, 2]]).all()


def test_exact_prediction_is_infinite_psnr_without_a_warning():
    truth = np.linspace(-1, 1, 16 * 16).reshape(16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = image_quality(truth, truth.copy())
        batch = image_quality_per_item(truth[None], truth[None])
    assert scores == {"nmae": 0.0, "psnr": float("inf"), "ssim": pytest.approx(1.0)}
    assert np.isinf(batch["psnr"]).all()


def test_known_answers_in_2d_and_3d():
    truth = np.linspace(-1, 0.5, 12 * 12 * 12).reshape(12, 12, 12)
    for t in (truth, truth[0]):
        scores = image_quality(t + 0.2, t)
        assert scores["nmae"] == pytest.approx(0.1)  # mean |error| 0.2 over a range of 2
        assert scores["psnr"] == pytest.approx(10 * np.log10(4 / 0.04))  # data range 2
        assert scores["ssim"] < 1


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="same shape"):
        image_quality(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="same shape"):
        image_quality_per_item(np.zeros((2, 1, 8, 8)), np.zeros((2, 8, 8)))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.floats(1e-6, 0.5))
def test_any_error_gives_finite_psnr_and_positive_nmae(seed, scale):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(-1, 1, (10, 10))
    prediction = truth + scale * rng.choice([-1.0, 1.0], truth.shape)
    scores = image_quality(prediction, truth)
    assert scores["nmae"] == pytest.approx(scale / 2)
    assert np.isfinite(scores["psnr"]) and scores["psnr"] == pytest.approx(10 * np.log10(4 / scale**2))
    assert image_quality(truth, prediction)["nmae"] == scores["nmae"]
