"""Appearance changes within one modality (bias field, gamma, blur, resolution, noise) and their place in
Eq. 5's training pairs."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imse_study.augment.intensity import (
    AppearanceRange, acquisition_noise, appearance_range, randomise_appearance,
)
from imse_study.augment.spatial import random_spatial_displacement
from imse_study.evaluator.train import make_training_pair
from imse_study.warp import warp


def _head(batch: int = 4, size: int = 32) -> torch.Tensor:
    """A bright disc with a darker core on a background of -1 (no signal)."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    r = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2).sqrt()
    img = torch.full((size, size), -1.0)
    img[r < size * 0.4] = 0.6
    img[r < size * 0.15] = -0.2
    return img.expand(batch, 1, size, size).clone()


def test_levels_and_modalities():
    assert appearance_range("none") is None
    mild, strong = appearance_range("mild"), appearance_range("strong")
    assert strong.bias_coeff > mild.bias_coeff and strong.noise_std > mild.noise_std
    assert strong.zoom[0] < mild.zoom[0] and strong.gamma[1] > mild.gamma[1]
    ct = appearance_range("strong", "ct")
    assert ct.bias_coeff == 0 and ct.gamma == (1.0, 1.0) and not ct.shift  # Hounsfield units stay calibrated
    with pytest.raises(ValueError, match="choose one of none, mild, strong"):
        appearance_range("wild")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), level=st.sampled_from(["mild", "strong"]),
       modality=st.sampled_from(["t1", "ct"]))
def test_appearance_is_a_function_of_the_generator_and_stays_in_range(seed, level, modality):
    x = torch.rand(3, 1, 24, 24, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    spec = appearance_range(level, modality)
    a = acquisition_noise(randomise_appearance(x, spec, torch.Generator().manual_seed(seed)), spec,
                          torch.Generator().manual_seed(seed + 1))
    b = acquisition_noise(randomise_appearance(x, spec, torch.Generator().manual_seed(seed)), spec,
                          torch.Generator().manual_seed(seed + 1))
    assert torch.equal(a, b) and type(a) is torch.Tensor
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.isfinite(a).all() and a.min() >= -1 and a.max() <= 1


def test_every_change_is_drawn_per_sample():
    x = _head(6)
    out = randomise_appearance(x, appearance_range("strong"), torch.Generator().manual_seed(3))
    changed = [(out[i] - x[i]).abs().mean().item() for i in range(6)]
    assert len({round(c, 6) for c in changed}) > 3  # not one draw for the whole batch
    assert not torch.equal(out, randomise_appearance(x, appearance_range("strong"), torch.Generator().manual_seed(4)))


def test_bias_and_gamma_keep_no_signal_at_minus_one_and_the_brightest_at_one():
    """Multiplicative bias and gamma act on the signal ((x + 1) / 2); the 99.5th percentile returns to 1
    as the data's normalisation would put it."""
    spec = AppearanceRange(prob=1.0, bias_coeff=0.3, gamma=(0.5, 2.0), blur_sigma=(0.0, 0.0), zoom=(1.0, 1.0),
                           noise_std=0.0)
    x = _head(5, 48)
    out = randomise_appearance(x, spec, torch.Generator().manual_seed(0))
    background = x == -1
    assert torch.equal(out[background], x[background])
    assert not torch.allclose(out[~background], x[~background], atol=1e-2)
    for sample in out:
        assert abs(float(sample.max()) - 1.0) < 1e-5


def test_nothing_changes_with_probability_zero():
    spec = AppearanceRange(prob=0.0, bias_coeff=0.3, gamma=(0.5, 2.0), blur_sigma=(0.5, 2.0), zoom=(0.3, 1.0),
                           noise_std=0.1)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(acquisition_noise(randomise_appearance(x, spec, g), spec, g), x)


def test_noise_level_follows_the_range():
    x = torch.zeros(64, 1, 32, 32)
    spec = AppearanceRange(prob=1.0, bias_coeff=0.0, gamma=(1.0, 1.0), blur_sigma=(0.0, 0.0), zoom=(1.0, 1.0),
                           noise_std=0.1)
    std = acquisition_noise(x, spec, torch.Generator().manual_seed(0)).flatten(1).std(1)
    assert std.max() <= 0.1 * 1.1 and 0.03 < std.mean() < 0.07  # uniform in [0, 0.1]: mean 0.05


def test_training_pair_label_follows_the_changed_look_not_the_noise():
    """Eq. 5 with appearance: both channels come from the changed image, so the label is x2 - x1 of that
    image; each channel's noise is not in the label."""
    x = _head(3)
    spec = appearance_range("strong")
    inputs, label = make_training_pair(x, "none", (2, 50), torch.Generator().manual_seed(5), spec)
    g = torch.Generator().manual_seed(5)
    changed = randomise_appearance(x, spec, g)
    x1 = warp(changed, random_spatial_displacement((32, 32), 3, generator=g))
    x2 = warp(changed, random_spatial_displacement((32, 32), 3, generator=g))
    torch.testing.assert_close(label, x2 - x1)
    residual = inputs[:, :1] - inputs[:, 1:] - label  # the two channels' noise, nothing else
    assert 0 < residual.abs().mean() < 0.1
    _, plain_label = make_training_pair(x, "none", (2, 50), torch.Generator().manual_seed(5))
    assert not torch.allclose(plain_label, label)
