"""The evaluator: model shapes, the IMSE functions, input checks and checkpoints."""

import numpy as np
import pytest
import torch

from imse_study.evaluator import (
    Evaluator, EvaluatorMeta, error_map, imse_loss, load_evaluator, save_checkpoint, spatial_error_score, translate,
)
from imse_study.evaluator.apply import error_map_array, to_unit_range, translate_array


@pytest.fixture
def model2d():
    torch.manual_seed(0)
    return Evaluator(dim=2, width=4, n_blocks=1).eval()


def _meta(**kw):
    base = dict(modality="t1", dim=2, size=(32, 32), width=4, n_blocks=1, normalisation="mr",
                noise="shuffle_remap", n_range=(2, 50), profile="smoke")
    return EvaluatorMeta(**{**base, **kw})


@pytest.mark.parametrize("dim, shape", [(2, (2, 1, 32, 24)), (3, (1, 1, 8, 16, 12))])
def test_model_shapes_and_output_range(dim, shape):
    model = Evaluator(dim=dim, width=2, n_blocks=2)
    ref, other = torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1
    out = model(ref, other)
    assert out.shape == shape
    assert out.abs().max() <= 2.0  # tanh scaled to the label range of Eq. 5
    assert torch.equal(out, model(torch.cat([ref, other], 1)))


def test_paper_sized_model_matches_cyclegan_resnet_generator():
    """Width 64 and 9 blocks: CycleGAN's ResNet generator with 2 inputs and 1 output (11.37 M params)."""
    assert Evaluator(2, 64, 9).n_parameters == 11_368_769


def test_imse_functions(model2d):
    ref = torch.rand(2, 1, 32, 32) * 2 - 1
    other = (torch.rand(2, 1, 32, 32) * 2 - 1).requires_grad_()
    err = error_map(model2d, ref, other)
    assert err.shape == ref.shape
    loss = imse_loss(model2d, ref, other)
    assert torch.isclose(loss, err.abs().mean())
    loss.backward()
    assert other.grad is not None and other.grad.abs().sum() > 0  # usable as a registration loss
    mask = torch.zeros_like(ref, dtype=torch.bool)
    mask[..., :16, :] = True
    masked = imse_loss(model2d, ref, other.detach(), mask=mask)
    assert torch.isclose(masked, err.detach().abs()[mask].mean())
    assert torch.allclose(translate(model2d, ref, other.detach()), (ref - err.detach()).clamp(-1, 1))
    score = spatial_error_score(model2d, ref, other.detach())
    assert score.shape == (2,) and ((0 <= score) & (score <= 1)).all()


@pytest.mark.parametrize(
    "ref, other, message",
    [
        (torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 28), "differ in shape"),
        (torch.zeros(1, 1, 32, 32), torch.full((1, 1, 32, 32), float("nan")), "NaN"),
        (torch.zeros(1, 1, 32, 32), torch.full((1, 1, 32, 32), 300.0), "scaled to \\[-1, 1\\]"),
        (torch.zeros(1, 1, 8, 32, 32), torch.zeros(1, 1, 8, 32, 32), "trained in 2D"),
        (torch.zeros(1, 1, 30, 32), torch.zeros(1, 1, 30, 32), "divisible by 4"),
        (torch.zeros(1, 2, 32, 32), torch.zeros(1, 2, 32, 32), "shape \\(B, 1"),
        (torch.zeros(1, 1, 0, 32), torch.zeros(1, 1, 0, 32), "empty"),
    ],
)
def test_bad_input_gives_clear_errors(model2d, ref, other, message):
    with pytest.raises(ValueError, match=message):
        error_map(model2d, ref, other)


def test_checkpoint_round_trip_and_checks(tmp_path, model2d):
    path = save_checkpoint(tmp_path / "e.pt", model2d, _meta())
    assert (tmp_path / "e.json").exists() and not list(tmp_path.glob("*.tmp"))
    loaded, meta = load_evaluator(path, modality="t1", dim=2)
    for a, b in zip(loaded.state_dict().values(), model2d.state_dict().values()):
        assert torch.equal(a, b)
    assert meta.modality == "t1" and meta.size == (32, 32) and not loaded.training
    with pytest.raises(ValueError, match="trained on 't1' images, not 'ct'"):
        load_evaluator(path, modality="ct")
    with pytest.raises(ValueError, match="2D evaluator"):
        load_evaluator(path, dim=3)
    with pytest.raises(FileNotFoundError, match="train-evaluator"):
        load_evaluator(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable evaluator checkpoint"):
        load_evaluator(tmp_path / "junk.pt")


def test_apply_pads_and_runs_2d_models_slice_by_slice(model2d):
    rng = np.random.default_rng(0)
    stack_ref = rng.uniform(-1, 1, (30, 26, 3)).astype(np.float32)  # not multiples of 4, 3 slices
    stack_oth = rng.uniform(-1, 1, (30, 26, 3)).astype(np.float32)
    err = error_map_array(model2d, stack_ref, stack_oth, 2)
    assert err.shape == stack_ref.shape
    one = error_map_array(model2d, stack_ref[..., 1], stack_oth[..., 1], 2)
    np.testing.assert_allclose(err[..., 1], one, atol=1e-5)
    out = translate_array(model2d, stack_ref[..., 0], stack_oth[..., 0], 2)
    assert out.shape == (30, 26) and out.min() >= -1 and out.max() <= 1
    with pytest.raises(ValueError, match="cannot be applied to 4D"):
        error_map_array(model2d, np.zeros((4, 4, 4, 4)), np.zeros((4, 4, 4, 4)), 2)


def test_to_unit_range_scales_only_when_needed():
    unit = np.linspace(-1, 1, 50, dtype=np.float32)
    assert to_unit_range(unit, "mr") is not None and np.array_equal(to_unit_range(unit, "mr"), unit)
    hu = np.array([-1000.0, 0.0, 1500.0], dtype=np.float32)
    np.testing.assert_allclose(to_unit_range(hu, "ct"), [-1.0, -0.2, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        to_unit_range(np.array([np.nan, 1.0]), "mr")
