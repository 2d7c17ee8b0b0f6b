"""The capture probe (``benchmarks/imse_capture.py``): its measures, and one run end to end in the smoke profile."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from benchscripts import load_benchmark

from imse_study.augment import random_spatial_displacement
from imse_study.evaluator.train import train_evaluator
from imse_study.losses.similarity import similarity
from imse_study.registration.inverse import invert_displacement


@pytest.fixture(scope="module")
def capture():
    return load_benchmark("imse_capture")


def test_residual_is_zero_at_the_inverse_and_the_start_error_at_zero(capture):
    torch.manual_seed(0)
    start = random_spatial_displacement((48, 48), 1, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(1, 1, 48, 48)
    mask[..., 8:40, 8:40] = 1
    assert capture.residual_epe(invert_displacement(start), start, mask) < 0.05
    expected = float((start.norm(dim=1, keepdim=True) * mask).sum() / mask.sum())
    assert capture.residual_epe(torch.zeros_like(start), start, mask) == pytest.approx(expected, rel=1e-5)


def test_loss_path_runs_from_the_answer_to_the_truth(capture):
    moving, target = torch.rand(1, 1, 32, 32) * 2 - 1, torch.rand(1, 1, 32, 32) * 2 - 1
    found, truth = torch.zeros(1, 2, 32, 32), torch.full((1, 2, 32, 32), 0.5)
    sim = similarity("ncc")
    path = capture.loss_path(sim, moving, target, found, truth, points=5)
    assert len(path) == 5
    assert path[0] == pytest.approx(float(sim(moving, target, None)))
    assert path[-1] == pytest.approx(float(sim(capture.warp(moving, truth), target, None)))


def test_edge_weights_have_mean_one_and_sit_on_edges(capture):
    image = -torch.ones(1, 1, 40, 40)
    image[..., 10:30, 10:30] = 1.0
    weights = capture.EdgeWeighted(imse=None).weights(image)
    assert float(weights.mean()) == pytest.approx(1.0, rel=1e-5)
    assert float(weights[0, 0, 10, 20]) > 5 * float(weights[0, 0, 20, 20])


def test_probe_end_to_end_on_a_tiny_evaluator(capture, tmp_path):
    out = tmp_path / "tiny-t1"
    train_evaluator(out, "t1", 2, "smoke", progress=False, epochs=1)
    report = capture.main([str(out / "evaluator.pt"), "--profile", "smoke", "--phantom-version", "1", "--pairs", "1",
                           "--iterations", "8", "--edge-weights", "--out", str(tmp_path / "report")])
    table = pd.read_csv(report.with_suffix(".csv"))
    assert set(table["similarity"]) == {"mi", "imse:tiny-t1", "imse:tiny-t1+edges"}
    for column in ("epe_start_px", "epe_affine_px", "epe_px", "dice", "dice_truth", "preference", "path_10"):
        assert table[column].notna().all(), column
    assert (table["epe_truth_px"] < 0.05).all()
    assert "Capture from the paper's starts" in report.read_text()
