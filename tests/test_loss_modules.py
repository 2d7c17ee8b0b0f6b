"""Similarities as nn.Modules: values pinned to the plain-class implementation, frozen submodules,
devices, option checks; the Eq. 7 regulariser."""

from __future__ import annotations

import pytest
import torch

from imse_study.evaluator.model import Evaluator
from imse_study.losses.regularisers import gradient_loss
from imse_study.losses.robust import InnerMask, MultiScale
from imse_study.losses.similarity import WeightedSum, check_choice, similarity
from imse_study.metrics import gradient_smoothness


def image(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A smooth random (2, 1, *S) image in [-0.9, 0.9], the same on every machine (seeded CPU generator)."""
    x = torch.rand(2, 1, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    pool = torch.nn.functional.avg_pool2d if len(shape) == 2 else torch.nn.functional.avg_pool3d
    x = pool(x, 3, stride=1, padding=1, count_include_pad=False)
    return ((x - x.amin()) / (x.amax() - x.amin()) * 1.8 - 0.9).float()


SHAPES = {2: (32, 32), 3: (8, 12, 12)}


def mask_for(shape: tuple[int, ...]) -> torch.Tensor:
    mask = torch.zeros(1, 1, *shape)
    mask[..., 2:-2, 3:-3] = 1
    return mask


def negating_translator() -> torch.nn.Module:
    conv = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(-0.7)
        conv.bias.fill_(0.1)
    return conv


# (dim, similarity name, options, masked?) -> (loss, sum of |d loss / d warped|), computed with the
# similarities as they were before they became nn.Modules (same inputs, same machine type).
PINNED = [
    (2, "ncc", {}, True, 0.9711014032363892, 3.229365113415497),
    (2, "lncc", {}, False, -0.05099085718393326, 0.735920490310491),
    (2, "mi", {}, True, -0.05318327993154526, 1.7436959042383933),
    (2, "mind", {"radius": 2, "distance": "l2"}, True, 0.23816685378551483, 1.9258258486227078),
    (2, "mae", {}, True, 0.31195664405822754, 1.0000000251457095),
    (2, "translated_mae", {"translator": "negating"}, False, 0.2968977987766266, 0.699999988079071),
    (2, "imse", {"evaluator": "phantom-t1-2d", "moving_modality": "t2", "target_modality": "t1"}, False,
     0.3720148503780365, 3.85822801697077),
    (2, "imse", {"evaluator": "phantom-ct-2d", "moving_modality": "ct", "target_modality": "t1"}, True,
     0.31777143478393555, 8.898099600643036),
    (2, "imse_robust", {"evaluator": "phantom-t1-2d", "moving_modality": "t2", "target_modality": "t1"}, False,
     0.7567529678344727, 4.450114043433132),
    (3, "lncc", {}, False, -0.01918109506368637, 0.45031866350996097),
    (3, "mi", {}, False, -0.04385475069284439, 1.3223671390075005),
    (3, "mind", {}, True, 0.3182191848754883, 1.2729508530150042),
]


@pytest.mark.parametrize("dim, name, options, masked, loss, grad", PINNED,
                         ids=[f"{p[0]}d-{p[1]}-{p[2].get('evaluator', '')}" for p in PINNED])
def test_values_are_those_of_the_plain_classes(dim, name, options, masked, loss, grad) -> None:
    if options.get("translator") == "negating":
        options = {**options, "translator": negating_translator()}
    sim = similarity(name, **options)
    assert isinstance(sim, torch.nn.Module)
    warped = image(SHAPES[dim], 1).requires_grad_(True)
    value = sim(warped, image(SHAPES[dim], 2), mask_for(SHAPES[dim]) if masked else None)
    value.backward()
    assert float(value.detach()) == pytest.approx(loss, rel=1e-6, abs=1e-7)
    assert float(warped.grad.double().abs().sum()) == pytest.approx(grad, rel=1e-5)


@pytest.mark.parametrize("dim, expected", [(2, 0.3216790556907654), (3, 0.343609482049942)])
def test_gradient_loss_value_is_unchanged(dim: int, expected: float) -> None:
    u = (image(SHAPES[dim], 3).expand(-1, dim, *SHAPES[dim]) * 3).contiguous()
    assert float(gradient_loss(u)) == pytest.approx(expected, rel=1e-6)
    assert gradient_smoothness(u) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(TypeError, match="torch tensor"):
        gradient_loss(u.numpy())


def tiny_imse():
    torch.manual_seed(0)
    evaluator = Evaluator(2, width=2, n_blocks=1)
    return evaluator, similarity("imse", evaluator=evaluator, evaluator_modality="t1", moving_modality="t2",
                                 target_modality="t1")


def test_the_evaluator_is_a_frozen_submodule_that_moves_with_the_similarity() -> None:
    evaluator, sim = tiny_imse()
    assert sim.evaluator is evaluator and any(m is evaluator for m in sim.modules())
    sim.train()
    assert sim.training and not evaluator.training  # train() never unfreezes the evaluator
    sim.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in evaluator.parameters())
    robust = WeightedSum([(1.0, sim), (0.5, similarity("mind"))])
    assert any(m is evaluator for m in robust.modules())
    for wrapper in (MultiScale(sim, (1, 2)), InnerMask(sim)):
        assert any(m is evaluator for m in wrapper.modules())


def test_a_network_on_another_device_is_a_clear_error() -> None:
    _, sim = tiny_imse()
    sim.to("meta")  # a device without data: stands in for a GPU on a CPU-only machine
    x = image(SHAPES[2], 1)
    with pytest.raises(ValueError, match=r"network is on meta but the images are on cpu: move it with "
                                         r"similarity.to\('cpu'\)"):
        sim(x, x)
    lncc = similarity("lncc").to("meta")  # no network: MONAI's kernels are buffers, they move but need no check
    assert [b.device.type for b in lncc.buffers()] == ["meta"] * 4


@pytest.mark.parametrize("name, options, message", [
    ("mind", {"distance": "l3"}, "distance must be one of 'l1', 'l2', not 'l3'"),
    ("lncc", {"kernel_type": "box"}, "kernel_type must be one of 'rectangular', 'triangular', 'gaussian', not 'box'"),
    ("mi", {"kernel_type": "parzen"}, "kernel_type must be one of 'gaussian', 'b-spline', not 'parzen'"),
    ("imse", {"precision": "half", "evaluator": "phantom-ct-2d", "moving_modality": "t1", "target_modality": "ct"},
     "precision must be one of 'float32', 'bfloat16', not 'half'"),
])
def test_string_options_are_checked_in_one_place(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(") + "$"):
        similarity(name, **options)
    assert check_choice("distance", "l2", ("l1", "l2")) == "l2"
