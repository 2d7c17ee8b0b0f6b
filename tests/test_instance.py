"""Instance optimisation (registration/instance.py, Eq. 1): recovery, 3D, callback, input checks."""

from __future__ import annotations

import pytest
import torch

from imse_study.metrics import dice
from imse_study.registration.optimise import (
    RegistrationCancelled,
    RegistrationResult,
    affine_to_displacement,
    optimise,
    optimise_field,
    upsample_control_grid,
)
from imse_study.losses.similarity import similarity
from imse_study.warp import warp

SHIFT = (2.0, -3.0)  # voxels along axes 0 and 1: whole voxels, so nearest-warped labels are exact


def blob(shape: tuple[int, ...]) -> torch.Tensor:
    """Three smooth blobs of different sizes in [-1, 1], (*shape): enough structure to pin an affine."""
    axes = [torch.linspace(-1.0, 1.0, n) for n in shape]
    grids = torch.meshgrid(*axes, indexing="ij")
    image = torch.zeros(shape)
    for centre, width in (((0.3, -0.3, 0.1), 0.35), ((-0.35, 0.1, -0.1), 0.25), ((0.1, 0.45, 0.0), 0.2)):
        r2 = sum((x - c) ** 2 for x, c in zip(grids, centre)) / width**2
        image = image + torch.exp(-r2)
    return 2.0 * image.clamp(max=1.0) - 1.0


def translated_pair(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(moving, target, true displacement) with warp(moving, true) == target (a constant shift)."""
    target = blob(shape)[None, None]
    true = torch.zeros(1, len(shape), *shape)
    for axis, value in enumerate(SHIFT):
        true[:, axis] = value
    return warp(target, -true), target, true


def interior_error(displacement: torch.Tensor, true: torch.Tensor, margin: int = 6) -> float:
    inner = (slice(None), slice(None)) + (slice(margin, -margin),) * (true.ndim - 2)
    return float((displacement - true)[inner].abs().mean())


def labels_of(image: torch.Tensor) -> torch.Tensor:
    return (image > 0).to(torch.uint8)


def test_paper_mode_recovers_a_translation_with_mae() -> None:
    moving, target, true = translated_pair((32, 32))
    field = optimise_field(moving, target, "mae", iterations=100, mode="paper")
    assert field.shape == true.shape
    assert interior_error(field, true) < 0.5
    warped_labels = warp(labels_of(moving), field, mode="nearest")
    assert dice(warped_labels, labels_of(target))["mean"] > 0.95
    assert dice(labels_of(moving), labels_of(target))["mean"] < 0.9


@pytest.mark.parametrize("sim", ["mae", "ncc"])
def test_multires_mode_with_affine_recovers_a_translation(sim: str) -> None:
    moving, target, true = translated_pair((32, 32))
    result = optimise(moving, target, sim, iterations=80, mode="multires", affine=True, levels=2,
                      affine_lr=0.03)
    assert isinstance(result, RegistrationResult)
    assert result.affine_displacement is not None
    assert interior_error(result.affine_displacement, true) < 0.5
    assert interior_error(result.displacement, true) < 0.5
    assert len(result.losses) == 80 and result.losses[-1] < result.losses[0]
    assert float((result.warped - target).abs().mean()) < 0.3 * float((moving - target).abs().mean())
    assert result.seconds > 0


def test_multires_without_affine_and_with_a_similarity_object() -> None:
    moving, target, true = translated_pair((32, 32))
    field = optimise_field(moving, target, similarity("mind"), iterations=60, affine=False, levels=2, lr=0.5)
    assert interior_error(field, true) < 0.8


def test_3d_runs_and_improves() -> None:
    moving, target, _ = translated_pair((12, 16, 16))
    for mode in ("paper", "multires"):
        result = optimise(moving, target, "mae", iterations=12, mode=mode, levels=2)
        assert result.displacement.shape == (1, 3, 12, 16, 16)
        assert float((result.warped - target).abs().mean()) < float((moving - target).abs().mean())


def test_batch_gets_one_transform_per_sample() -> None:
    moving, target, _ = translated_pair((24, 24))
    batch_moving = torch.cat([moving, target])  # the second sample is already aligned
    result = optimise(batch_moving, torch.cat([target, target]), "mae", iterations=30, levels=1)
    assert result.displacement.shape == (2, 2, 24, 24)
    assert float(result.displacement[1].abs().mean()) < float(result.displacement[0].abs().mean())


def test_mask_is_passed_to_the_similarity() -> None:
    moving, target, _ = translated_pair((16, 16))
    seen = []

    def sim(warped, tgt, mask=None):
        seen.append(mask)
        return (warped - tgt).abs().mean()

    mask = torch.ones(1, 1, 16, 16)
    optimise(moving, target, sim, iterations=4, levels=1, mask=mask)
    assert len(seen) == 4 and all(m is not None and m.shape == mask.shape for m in seen)


def test_callback_reports_every_step_and_can_cancel() -> None:
    moving, target, _ = translated_pair((16, 16))
    calls = []
    optimise(moving, target, "mae", iterations=9, levels=2, callback=lambda s, t, loss: calls.append((s, t, loss)))
    assert [c[0] for c in calls] == list(range(1, 10)) and {c[1] for c in calls} == {9}
    assert all(isinstance(c[2], float) for c in calls)

    with pytest.raises(RegistrationCancelled, match="step 3/20"):
        optimise(moving, target, "mae", iterations=20, callback=lambda step, total, loss: step < 3)
    with pytest.raises(RegistrationCancelled):
        optimise_field(moving, target, "mae", iterations=5, mode="paper", callback=lambda *a: False)


def test_progress_bar_runs() -> None:
    moving, target, _ = translated_pair((16, 16))
    optimise(moving, target, "mae", iterations=4, levels=1, progress=True)


def test_bad_inputs_raise_clear_errors() -> None:
    x = torch.zeros(1, 1, 16, 16)
    with pytest.raises(ValueError, match="differ in shape"):
        optimise_field(x, torch.zeros(1, 1, 16, 20), "mae")
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        optimise_field(torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16), "mae")
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        optimise_field(torch.zeros(16, 16), torch.zeros(16, 16), "mae")
    nan = x.clone()
    nan[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        optimise_field(nan, x, "mae")
    with pytest.raises(ValueError, match="floating-point"):
        optimise_field(x.long(), x.long(), "mae")
    with pytest.raises(ValueError, match="mode"):
        optimise_field(x, x, "mae", mode="fast")
    with pytest.raises(ValueError, match="unknown similarity"):
        optimise_field(x, x, "nmi")
    with pytest.raises(ValueError, match="at least the number of stages"):
        optimise_field(x, x, "mae", iterations=3, levels=3, affine=True)
    with pytest.raises(ValueError, match="mask"):
        optimise_field(x, x, "mae", mask=torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match="lr"):
        optimise_field(x, x, "mae", lr=0.0)


def test_affine_to_displacement_is_in_voxels() -> None:
    shape = (9, 17)
    matrix = torch.zeros(1, 2, 2)
    shift = torch.tensor([[0.5, -0.25]])  # half of the half-sizes (4, 8) voxels
    u = affine_to_displacement(matrix, shift, shape)
    assert torch.allclose(u[0, 0], torch.full(shape, 2.0)) and torch.allclose(u[0, 1], torch.full(shape, -2.0))
    scale = affine_to_displacement(torch.eye(2)[None] * 0.1, torch.zeros(1, 2), shape)
    assert float(scale[0, 0, -1, 0]) == pytest.approx(0.4) and float(scale[0, 1, 0, 0]) == pytest.approx(-0.8)


def test_control_grid_upsampling_keeps_voxel_values() -> None:
    control = torch.full((1, 2, 3, 3), 1.5)
    dense = upsample_control_grid(control, (10, 12))
    assert dense.shape == (1, 2, 10, 12) and torch.allclose(dense, torch.full_like(dense, 1.5))
