"""Similarity losses (registration/similarity.py, registration/mind.py): minimum, gradients, masks, IMSE wiring."""

from __future__ import annotations

import pytest
import torch

from imse_study.evaluator.checkpoint import EvaluatorMeta, save_checkpoint
from imse_study.evaluator.use import imse_loss
from imse_study.evaluator.model import Evaluator
from imse_study.losses.mind import mind_pairs, mind_ssc
from imse_study.losses.similarity import (
    IMSE,
    Similarity,
    resolve_similarity,
    similarity,
    similarity_names,
)

NAMES = ["ncc", "lncc", "mi", "mind", "mae", "translated_mae"]  # imse: its own tests (random weights)
SHAPES = {2: (32, 32), 3: (12, 16, 16)}


def textured(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A smooth image in [-1, 1] (B=2) with structure at several scales: blobs plus a sinusoid."""
    g = torch.Generator().manual_seed(seed)
    axes = [torch.linspace(-1.0, 1.0, n) for n in shape]
    grids = torch.meshgrid(*axes, indexing="ij")
    images = []
    for _ in range(2):
        centre = torch.rand(len(shape), generator=g) * 0.6 - 0.3
        r2 = sum((x - c) ** 2 for x, c in zip(grids, centre))
        wave = torch.sin(4.0 * grids[-1] + 3.0 * grids[0])
        images.append(0.7 * torch.exp(-r2 / 0.2) + 0.25 * wave)
    x = torch.stack(images)[:, None]
    return (x - x.amin()) / (x.amax() - x.amin()) * 1.8 - 0.9


def shifted(x: torch.Tensor, voxels: int = 3) -> torch.Tensor:
    return torch.roll(x, shifts=voxels, dims=x.ndim - 1)


def build(name: str, **options) -> Similarity:
    if name == "translated_mae":
        options.setdefault("translator", torch.nn.Identity())
    return similarity(name, **options)


def tiny_evaluator(dim: int, modality: str | None = None) -> Evaluator:
    torch.manual_seed(0)
    model = Evaluator(dim, width=2, n_blocks=1)
    if modality is not None:
        model.meta = EvaluatorMeta(modality=modality, dim=dim, size=SHAPES[dim], width=2, n_blocks=1,
                                   normalisation="percentile", noise="none", n_range=None, profile="smoke")
    return model


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("name", NAMES)
def test_identical_images_score_better_than_shifted(name: str, dim: int) -> None:
    x = textured(SHAPES[dim])
    sim = build(name)
    assert float(sim(x, x)) < float(sim(shifted(x), x))
    assert sim(x, x).ndim == 0


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("name", NAMES)
def test_gradient_flows_to_warped(name: str, dim: int) -> None:
    x = textured(SHAPES[dim])
    warped = shifted(x).requires_grad_(True)
    build(name)(warped, x).backward()
    assert warped.grad is not None
    assert torch.isfinite(warped.grad).all()
    assert warped.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_mask_restricts_the_loss(name: str) -> None:
    """Damage a corner; a mask far from it gives the same loss as for undamaged images."""
    x = textured(SHAPES[2])
    damaged = x.clone()
    damaged[..., :10, :10] = -x[..., :10, :10]
    mask = torch.ones_like(x)
    mask[..., :20, :20] = 0  # well beyond the LNCC window and the MIND patch + dilation
    sim = build(name)
    assert float(sim(damaged, x, mask)) == pytest.approx(float(sim(x, x, mask)), abs=1e-5)
    assert float(sim(damaged, x)) > float(sim(x, x)) + 1e-4


def test_mask_of_batch_one_broadcasts() -> None:
    x = textured(SHAPES[2])
    mask = torch.zeros(1, 1, *SHAPES[2])
    mask[..., 4:28, 4:28] = 1
    sim = similarity("mae")
    assert float(sim(shifted(x), x, mask)) == pytest.approx(float(sim(shifted(x), x, mask.expand(2, -1, -1, -1))))


def test_mi_tolerates_a_contrast_inversion() -> None:
    """Multi-modal sanity: an inverted image scores far better than a misaligned one (MONAI MI on [0, 1])."""
    x = textured(SHAPES[2])
    mi = similarity("mi")
    assert float(mi(-x, x)) < float(mi(shifted(x, 4), x)) - 0.2
    assert float(mi(-x, x)) == pytest.approx(float(mi(x, x)), abs=0.05)


def test_mind_is_invariant_to_intensity_inversion() -> None:
    x = textured(SHAPES[2])
    mind = similarity("mind")
    assert float(mind(-x, x)) < 1e-5 < float(mind(shifted(x), x))


@pytest.mark.parametrize("dim, channels", [(2, 4), (3, 12)])
def test_mind_ssc_shape_and_range(dim: int, channels: int) -> None:
    x = textured(SHAPES[dim])
    d = mind_ssc(x)
    assert d.shape == (2, channels, *SHAPES[dim])
    assert len(mind_pairs(dim)) == channels
    assert float(d.min()) > 0 and float(d.max()) <= 1.0 + 1e-6
    assert torch.allclose(mind_ssc(0.5 * x + 0.2), d, atol=1e-4)  # invariant to affine intensity maps


def test_mind_ssc_of_a_constant_image_is_finite() -> None:
    assert torch.isfinite(mind_ssc(torch.zeros(1, 1, 8, 8))).all()


def test_mi_rescales_from_minus_one_to_one() -> None:
    """Images in [-1, 0] would all be clamped to 0 without the rescaling, and MI would be ~0."""
    x = textured(SHAPES[2]).clamp(max=0.0)
    mi = similarity("mi")
    assert float(mi(x, x)) < -0.3


def test_names_and_errors() -> None:
    assert similarity_names() == ["ncc", "lncc", "mi", "mind", "mae", "imse", "translated_mae", "imse_robust"]
    with pytest.raises(ValueError, match="unknown similarity 'ssim'"):
        similarity("ssim")
    with pytest.raises(ValueError, match="bad options"):
        similarity("mae", kernel_size=3)
    with pytest.raises(ValueError, match="kernel_size"):
        similarity("lncc", kernel_size=4)
    with pytest.raises(ValueError, match="translator"):
        similarity("translated_mae")
    assert similarity("mi", moving_modality="t1", target_modality="ct").name == "mi"  # accepted, unused
    sim = similarity(" MAE ")
    assert resolve_similarity(sim) is sim and resolve_similarity("ncc").name == "ncc"
    with pytest.raises(ValueError, match="differ in shape"):
        sim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 12))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        sim(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="mask"):
        sim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 4, 4))


def test_lncc_default_kernel_per_dimension() -> None:
    sim = similarity("lncc")
    for dim, size in ((2, 9), (3, 7)):
        sim(textured(SHAPES[dim]), textured(SHAPES[dim]))
        assert sim.monai_loss(dim).kernel_size == size


# ---------------------------------------------------------------------------------------------- IMSE


@pytest.mark.parametrize("dim", [2, 3])
def test_imse_uses_the_target_as_reference_when_it_is_the_trained_modality(dim: int) -> None:
    evaluator = tiny_evaluator(dim, "t1")
    sim = similarity("imse", evaluator=evaluator, moving_modality="T2", target_modality="t1")
    target, warped = textured(SHAPES[dim]), shifted(textured(SHAPES[dim], seed=1))
    assert sim.reference == "target"
    assert float(sim(warped, target)) == pytest.approx(float(imse_loss(evaluator, target, warped)))


def test_imse_uses_the_moving_image_as_reference_when_it_is_the_trained_modality() -> None:
    evaluator = tiny_evaluator(2, "ct")
    sim = similarity("imse", evaluator=evaluator, moving_modality="ct", target_modality="t1")
    target, warped = textured(SHAPES[2]), textured(SHAPES[2], seed=1)
    assert sim.reference == "moving"
    assert float(sim(warped, target)) == pytest.approx(float(imse_loss(evaluator, warped, target)))
    mask = torch.zeros_like(target)
    mask[..., 8:24, 8:24] = 1
    assert float(sim(warped, target, mask)) == pytest.approx(float(imse_loss(evaluator, warped, target, mask)))


def test_imse_raises_when_neither_modality_matches() -> None:
    with pytest.raises(ValueError, match="trained on 't1'.*neither"):
        similarity("imse", evaluator=tiny_evaluator(2, "t1"), moving_modality="ct", target_modality="t2")


def test_imse_needs_to_know_the_evaluator_modality() -> None:
    bare = tiny_evaluator(2)
    with pytest.raises(ValueError, match="evaluator_modality"):
        similarity("imse", evaluator=bare, moving_modality="t1", target_modality="t2")
    sim = similarity("imse", evaluator=bare, moving_modality="t1", target_modality="t2", evaluator_modality="t2")
    assert sim.reference == "target"
    with pytest.raises(ValueError, match="contradicts"):
        similarity("imse", evaluator=tiny_evaluator(2, "t1"), moving_modality="t1", target_modality="t2",
                   evaluator_modality="t2")


def test_imse_in_bfloat16_follows_float32() -> None:
    """The shipped (trained) evaluator: bfloat16 autocast keeps the loss and the gradient direction."""
    exact = similarity("imse", evaluator="phantom-ct-2d", moving_modality="t1", target_modality="ct")
    fast = similarity("imse", evaluator="phantom-ct-2d", moving_modality="t1", target_modality="ct",
                      precision="bfloat16")
    target = textured((120, 120))
    losses, grads = [], []
    for sim in (exact, fast):
        warped = shifted(textured((120, 120), seed=1)).requires_grad_(True)
        loss = sim(warped, target)
        assert loss.dtype == torch.float32
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(warped.grad.flatten())
    assert losses[1] == pytest.approx(losses[0], rel=0.02)
    assert float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)) > 0.95
    with pytest.raises(ValueError, match="precision"):
        similarity("imse", evaluator="phantom-ct-2d", moving_modality="t1", target_modality="ct", precision="half")


def test_imse_is_frozen_and_passes_gradients_to_the_warped_image() -> None:
    evaluator = tiny_evaluator(2, "t1").train()
    sim = similarity("imse", evaluator=evaluator, moving_modality="t2", target_modality="t1")
    assert not evaluator.training
    assert all(not p.requires_grad for p in evaluator.parameters())
    warped = textured(SHAPES[2], seed=1).requires_grad_(True)
    sim(warped, textured(SHAPES[2])).backward()
    assert warped.grad is not None and warped.grad.abs().sum() > 0


def test_imse_validates_the_first_pair() -> None:
    sim = similarity("imse", evaluator=tiny_evaluator(2, "t1"), moving_modality="t2", target_modality="t1")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        sim(textured(SHAPES[2]) * 3, textured(SHAPES[2]))
    with pytest.raises(ValueError, match="divisible by 4"):
        sim(torch.zeros(1, 1, 30, 30), torch.zeros(1, 1, 30, 30))
    sim(textured(SHAPES[2]), textured(SHAPES[2]))
    assert sim._checked


def test_imse_loads_a_checkpoint_by_path(tmp_path) -> None:
    model = tiny_evaluator(2, "ct")
    path = save_checkpoint(tmp_path / "evaluator.pt", model, model.meta)
    sim = similarity("imse", evaluator=str(path), moving_modality="t1", target_modality="CT")
    assert isinstance(sim, IMSE) and sim.evaluator_modality == "ct" and sim.reference == "target"
    x = textured(SHAPES[2])
    assert float(sim(x, x)) == pytest.approx(float(imse_loss(model, x, x).detach()), rel=1e-5)


def test_translated_mae_translates_the_warped_image() -> None:
    translator = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        translator.weight.fill_(-1.0)
        translator.bias.zero_()
    sim = similarity("translated_mae", translator=translator)
    x = textured(SHAPES[2])
    assert float(sim(-x, x)) < 1e-6 < float(sim(x, x))
    assert all(not p.requires_grad for p in translator.parameters())


def test_imse_robust_is_imse_plus_mind() -> None:
    """``imse_robust`` (issue 8) is the sum of IMSE and MIND on the same pair, and needs an evaluator."""
    torch.manual_seed(0)
    evaluator = Evaluator(dim=2, width=4, n_blocks=1).eval()
    moving, target = torch.rand(1, 1, 24, 24) * 2 - 1, torch.rand(1, 1, 24, 24) * 2 - 1
    options = {"evaluator": evaluator, "evaluator_modality": "ct", "moving_modality": "ct", "target_modality": "t1"}
    robust = similarity("imse_robust", **options)
    expected = similarity("imse", **options)(moving, target) + similarity("mind")(moving, target)
    assert torch.allclose(robust(moving, target), expected, atol=1e-6)
    with pytest.raises((ValueError, TypeError)):
        similarity("imse_robust")
