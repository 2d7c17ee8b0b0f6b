"""imse_study.warp: the one warp() (MONAI's Warp), its voxel convention, compose()."""

import pytest
import torch

from imse_study.warp import _warper, compose, identity_grid, warp


def _square_2d(size=16, lo=5, hi=9):
    x = torch.zeros(1, 1, size, size)
    x[..., lo:hi, lo:hi] = 1.0
    return x


def _constant_field(shape, axis, value, batch=1):
    field = torch.zeros(batch, len(shape), *shape)
    field[:, axis] = value
    return field


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("axis", [0, 1])
def test_integer_shift_moves_square_2d(mode, axis):
    x = _square_2d()
    out = warp(x, _constant_field((16, 16), axis, 3.0), mode=mode, padding_mode="zeros")
    # out[p] = x[p + 3 e_axis]: content moves by 3 voxels towards smaller indices along `axis`
    expected = torch.roll(x, shifts=-3, dims=2 + axis)
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_integer_shift_moves_cube_3d(axis):
    x = torch.zeros(1, 1, 10, 12, 14)
    x[..., 3:6, 4:8, 5:9] = 1.0
    out = warp(x, _constant_field((10, 12, 14), axis, -2.0), padding_mode="zeros")
    expected = torch.roll(x, shifts=2, dims=2 + axis)
    assert torch.allclose(out, expected, atol=1e-5)


def test_zero_displacement_is_identity():
    x = torch.rand(2, 3, 9, 11)
    assert torch.allclose(warp(x, torch.zeros(2, 2, 9, 11)), x, atol=1e-6)


def test_nearest_keeps_integer_labels():
    labels = torch.randint(0, 5, (2, 1, 12, 13))
    field = torch.randn(2, 2, 12, 13) * 2.5
    out = warp(labels, field, mode="nearest")
    assert out.dtype == labels.dtype
    assert set(out.unique().tolist()) <= set(labels.unique().tolist())
    float_labels = labels.float()
    out_f = warp(float_labels, field, mode="nearest")
    assert torch.equal(out_f, out_f.round())


def test_bilinear_is_differentiable():
    x = torch.rand(1, 1, 8, 8, requires_grad=True)
    field = (torch.rand(1, 2, 8, 8) - 0.5).requires_grad_(True)
    warp(x, field).sum().backward()
    assert x.grad is not None and field.grad is not None
    assert field.grad.abs().sum() > 0


def test_displacement_batch_of_one_broadcasts():
    x = torch.rand(3, 1, 8, 9)
    field = _constant_field((8, 9), 1, 1.0)
    out = warp(x, field)
    for b in range(3):
        assert torch.allclose(out[b : b + 1], warp(x[b : b + 1], field))


def test_warper_is_cached():
    a = _warper("bilinear", "border", torch.device("cpu"), torch.float32)
    b = _warper("bilinear", "border", torch.device("cpu"), torch.float32)
    assert a is b


@pytest.mark.parametrize(
    "image, field, kwargs",
    [
        (torch.rand(8, 8), torch.zeros(1, 2, 8, 8), {}),
        (torch.rand(1, 1, 8, 8), torch.zeros(1, 3, 8, 8), {}),
        (torch.rand(1, 1, 8, 8), torch.zeros(1, 2, 8, 7), {}),
        (torch.rand(2, 1, 8, 8), torch.zeros(3, 2, 8, 8), {}),
        (torch.rand(1, 1, 8, 8), torch.zeros(1, 2, 8, 8), {"mode": "bicubic"}),
        (torch.rand(1, 1, 8, 8), torch.zeros(1, 2, 8, 8), {"padding_mode": "edge"}),
        (torch.ones(1, 1, 8, 8, dtype=torch.int64), torch.zeros(1, 2, 8, 8), {}),
        (torch.rand(1, 1, 8, 8), torch.zeros(1, 2, 8, 8, dtype=torch.int64), {}),
    ],
)
def test_bad_input_raises(image, field, kwargs):
    with pytest.raises(ValueError):
        warp(image, field, **kwargs)


def test_compose_of_constant_shifts_adds_them():
    a = _constant_field((10, 11), 0, 2.0) + _constant_field((10, 11), 1, -1.0)
    b = _constant_field((10, 11), 1, 3.0)
    assert torch.allclose(compose(a, b), a + b, atol=1e-5)
    zero = torch.zeros_like(a)
    assert torch.allclose(compose(a, zero), a, atol=1e-5)
    assert torch.allclose(compose(zero, b), b, atol=1e-5)


def _smooth_field(shape, amplitude, seed):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, len(shape), *[4] * len(shape), generator=g)
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    return torch.nn.functional.interpolate(coarse, size=shape, mode=mode, align_corners=True) * amplitude


@pytest.mark.parametrize("shape", [(40, 44), (20, 22, 24)])
def test_compose_matches_warping_twice(shape):
    grid = identity_grid(shape)
    x = torch.sin(grid[0] / 8.0) * torch.cos(grid[-1] / 9.0)  # smooth: interpolation error small
    x = x.view(1, 1, *shape)
    a, b = _smooth_field(shape, 1.5, 0), _smooth_field(shape, 1.5, 1)
    twice = warp(warp(x, a), b)
    once = warp(x, compose(a, b))
    inner = (slice(None), slice(None)) + tuple(slice(4, n - 4) for n in shape)
    err = (twice - once)[inner].abs().max()
    naive = (twice - warp(x, a + b))[inner].abs().max()
    assert err < 0.01
    assert err < naive / 5


def test_identity_grid_channels_are_axis_indices():
    grid = identity_grid((3, 4, 5))
    assert grid.shape == (3, 3, 4, 5)
    assert torch.equal(grid[0, :, 0, 0], torch.arange(3.0))
    assert torch.equal(grid[2, 0, 0, :], torch.arange(5.0))
