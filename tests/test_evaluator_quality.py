"""Evaluator quality measures: image metrics, ranking report, translation quality."""

import numpy as np
import pytest
import torch

from imse_study.evaluator import Evaluator
from imse_study.evaluator.quality import image_quality, ranking_report, translation_quality


def test_image_quality_known_answers():
    truth = np.linspace(-1, 1, 64 * 64).reshape(64, 64)
    perfect = image_quality(truth, truth)
    assert perfect["nmae"] == 0 and perfect["ssim"] == pytest.approx(1.0) and np.isinf(perfect["psnr"])
    shifted = image_quality(truth + 0.2, truth)
    assert shifted["nmae"] == pytest.approx(0.1)  # mean |error| 0.2 over a range of 2
    assert shifted["psnr"] == pytest.approx(10 * np.log10(4 / 0.04))


def test_reports_on_the_smoke_phantom():
    torch.manual_seed(0)
    model = Evaluator(2, width=2, n_blocks=1).eval()
    ranking = ranking_report(model, "t1", profile="smoke")
    assert list(ranking["other"]) == ["t2", "pd"] and ranking["auc"].between(0, 1).all()
    assert list(ranking_report(model, "ct", profile="smoke")["other"]) == ["t1", "t2"]
    table = translation_quality(model, "t1", "t2", profile="smoke", limit=3)
    assert len(table) == 3 and {"nmae", "psnr", "ssim"} <= set(table.columns)


def test_an_oracle_evaluator_translates_perfectly():
    """If E returned exactly reference - truth, the translation would equal the ground truth."""
    from imse_study.evaluator.train import load_images

    truth = load_images(["t1"], "test", 2, "smoke")["t1"]

    class Oracle(torch.nn.Module):
        dim = 2

        def forward(self, reference, other):
            index = [i for i in range(truth.shape[0]) if torch.equal(other, truth[i : i + 1])]
            return reference - truth[index[0] : index[0] + 1]

    table = translation_quality(Oracle(), "t1", "t1", profile="smoke", limit=2)
    assert (table["nmae"] < 1e-6).all() and (table["ssim"] > 0.999).all()
