"""imse_study.augment.spatial: random affine + elastic fields (paper section 4.1)."""

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imse_study.augment import random_spatial_displacement, random_spatial_transform
from imse_study.augment.spatial import (
    elastic_displacement_std,
    gaussian_smooth,
    scaled_elastic_parameters,
)

NO_AFFINE = dict(rotation_deg=0.0, translation=0.0, scaling=0.0)
NO_ELASTIC = dict(elastic_alpha=0.0)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(20, 24), (8, 12, 10)])
def test_zero_magnitude_is_identity(shape):
    field = random_spatial_displacement(shape, 2, _gen(0), **NO_AFFINE, **NO_ELASTIC)
    assert field.shape == (2, len(shape), *shape)
    assert torch.count_nonzero(field) == 0
    images = torch.rand(2, 1, *shape)
    warped, _, _ = random_spatial_transform(images, generator=_gen(0), **NO_AFFINE, **NO_ELASTIC)
    assert torch.allclose(warped, images, atol=1e-6)


@pytest.mark.parametrize("shape", [(32, 30), (12, 16, 14)])
def test_shapes_and_labels_stay_in_label_set(shape):
    images = torch.rand(3, 2, *shape) * 2 - 1
    labels = torch.randint(0, 7, (3, 1, *shape))
    labels[:, :, 0] = 9  # a label value at the border only
    warped, warped_labels, field = random_spatial_transform(images, labels, _gen(1))
    assert warped.shape == images.shape and warped_labels.shape == labels.shape
    assert field.shape == (3, len(shape), *shape)
    assert warped_labels.dtype == labels.dtype
    assert set(warped_labels.unique().tolist()) <= set(labels.unique().tolist())
    assert warped.min() >= images.min() - 1e-6 and warped.max() <= images.max() + 1e-6


def test_same_seed_same_field_and_samples_differ():
    a = random_spatial_displacement((24, 20), 3, _gen(5))
    b = random_spatial_displacement((24, 20), 3, _gen(5))
    c = random_spatial_displacement((24, 20), 3, _gen(6))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a[0], a[1])  # an independent transform per sample


def _offsets(shape):
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) - (n - 1) / 2 for n in shape],
                           indexing="ij")
    return torch.stack(grids)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), dims=st.sampled_from([(30, 26), (10, 14, 12)]))
def test_affine_parts_respect_their_bounds(seed, dims):
    ndim = len(dims)
    size = torch.tensor(dims, dtype=torch.float32).view(ndim, *([1] * ndim))
    shift = random_spatial_displacement(dims, 4, _gen(seed), rotation_deg=0, scaling=0,
                                        translation=0.08, **NO_ELASTIC)
    assert torch.allclose(shift, shift[..., :1, :1] if ndim == 2 else shift[..., :1, :1, :1])
    assert (shift.abs() <= 0.08 * size + 1e-4).all()

    scale = random_spatial_displacement(dims, 4, _gen(seed), rotation_deg=0, translation=0,
                                        scaling=0.08, **NO_ELASTIC)
    rel = _offsets(dims)
    assert (scale.abs() <= 0.08 * rel.abs() + 1e-4).all()

    rot = random_spatial_displacement(dims, 4, _gen(seed), rotation_deg=3, translation=0,
                                      scaling=0, **NO_ELASTIC)
    radius = rel.norm(dim=0)
    n_axes = 1 if ndim == 2 else 3
    bound = n_axes * 2 * math.sin(math.radians(3) / 2) * radius + 1e-4
    assert (rot.norm(dim=1) <= bound).all()
    norms = rot.norm(dim=1).flatten(1).max(1).values
    assert (norms > 0).all()  # a rotation is drawn for every sample

    full = random_spatial_displacement(dims, 4, _gen(seed), **NO_ELASTIC)
    bound = (0.08 + n_axes * 2 * math.sin(math.radians(3) / 2) * 1.08) * radius + (
        0.08 * size).norm(dim=0)
    assert (full.norm(dim=1) <= bound + 1e-3).all()


@pytest.mark.parametrize("sigma", [0.8, 3.0, 7.5])
@pytest.mark.parametrize("shape", [(13, 17), (6, 9, 7)])
def test_gaussian_smooth_matches_scipy(sigma, shape):
    x = torch.rand(2, 2, *shape, dtype=torch.float64)
    ours = gaussian_smooth(x, sigma).numpy()
    ref = np.stack([[ndi.gaussian_filter(x[b, c].numpy(), sigma, mode="reflect") for c in range(2)]
                    for b in range(2)])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_elastic_std_matches_prediction():
    shape, sigma, alpha = (96, 96), 3.0, 20.0
    field = random_spatial_displacement(shape, 4, _gen(3), **NO_AFFINE, elastic_alpha=alpha,
                                        elastic_sigma=sigma, reference_size=None)
    inner = field[..., 16:-16, 16:-16]
    predicted = elastic_displacement_std(alpha, sigma, 2)
    assert abs(inner.std().item() / predicted - 1) < 0.15
    assert abs(inner.mean().item()) < 0.2 * predicted


def test_size_scaling_of_alpha_and_sigma():
    assert scaled_elastic_parameters((240, 240), 80, 12) == (80.0, 12.0)
    assert scaled_elastic_parameters((37, 41), 80, 12, reference_size=None) == (80.0, 12.0)
    alpha, sigma = scaled_elastic_parameters((120, 100), 80, 12)
    assert math.isclose(sigma, 6.0) and math.isclose(alpha, 80 * 0.5**2)
    alpha3, sigma3 = scaled_elastic_parameters((48, 128, 120), 80, 12)
    f = 128 / 240
    assert math.isclose(sigma3, 12 * f) and math.isclose(alpha3, 80 * f**2.5)
    # the rule keeps the displacement a fixed fraction of the image size
    ratio = elastic_displacement_std(alpha, sigma, 2) / elastic_displacement_std(80, 12, 2)
    assert abs(ratio - 0.5) < 0.02


def test_random_spatial_transform_without_labels():
    images = torch.rand(2, 1, 20, 20)
    warped, labels, field = random_spatial_transform(images, generator=_gen(2))
    assert labels is None and warped.shape == images.shape and field.shape == (2, 2, 20, 20)


@pytest.mark.parametrize(
    "call",
    [
        lambda: random_spatial_displacement((20,), 1),
        lambda: random_spatial_displacement((20, 20), 0),
        lambda: random_spatial_displacement((20, 20), 1, scaling=1.5),
        lambda: random_spatial_displacement((20, 20), 1, rotation_deg=-1),
        lambda: random_spatial_transform(torch.rand(1, 20, 20)),
        lambda: random_spatial_transform(torch.rand(2, 1, 20, 20), torch.zeros(2, 1, 20, 21)),
    ],
)
def test_bad_arguments_raise(call):
    with pytest.raises(ValueError):
        call()
