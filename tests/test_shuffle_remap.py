"""Shuffle Remap (Algorithm 1, Eq. 8) and the Bezier shift, against the plain-loop reference."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imse_study.augment import bezier_shift, shuffle_remap
from imse_study.augment.intensity import (
    ShuffleRemapParams,
    apply_shuffle_remap,
    sample_shuffle_remap_params,
)
from reference_shuffle_remap import algorithm1_fixed, reference_with_params

ATOL = 1e-6  # Eq. 8 with a precomputed slope vs Algorithm 1's division: a few float32 ulps


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _image(shape, seed, upper_open=True):
    """Values in [-1, 1) (or [-1, 1]), with some exactly -1 (background)."""
    x = torch.rand(shape, generator=_gen(seed)) * 2 - 1
    x.view(-1)[:: 7] = -1.0
    if not upper_open:
        x.view(-1)[3::11] = 1.0
    return x


def _eq8(x, knots, perm):
    """Eq. 8 evaluated directly in float64 (x == 1 in the last segment)."""
    x64, k = x.double(), knots.double()
    seg = torch.searchsorted(k[1:-1].contiguous(), x64.contiguous(), right=True)
    j = perm[seg]
    return (x64 - k[seg]) / (k[seg + 1] - k[seg]) * (k[j + 1] - k[j]) + k[j]


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=st.sampled_from([(1, 1, 30, 31), (3, 2, 17, 9), (2, 1, 6, 7, 5), (4, 3, 5)]),
    n_range=st.sampled_from([(2, 50), (40, 50), (0, 0), (1, 3), (150, 200)]),
)
def test_equals_loop_reference_and_stays_in_range(seed, shape, n_range):
    x = _image(shape, seed)
    out, params = shuffle_remap(x, n_range, _gen(seed), return_params=True)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= -1 and out.max() <= 1
    assert ((params.n_points >= n_range[0]) & (params.n_points <= n_range[1])).all()
    torch.testing.assert_close(out, reference_with_params(x, params), atol=ATOL, rtol=0)


def test_values_at_and_next_to_control_points():
    """The segment of every voxel is the one Algorithm 1 picks, even one ulp from a point."""
    params = sample_shuffle_remap_params(2, (40, 50), _gen(11))
    values = []
    for b in range(2):
        pts = params.control_points(b)[1:-1]
        values.append(torch.cat([pts, torch.nextafter(pts, torch.tensor(-2.0)),
                                 torch.nextafter(pts, torch.tensor(2.0)), torch.tensor([-1.0])]))
    width = max(v.numel() for v in values)
    x = torch.stack([torch.cat([v, v[:1].expand(width - v.numel())]) for v in values])
    x = x.view(2, 1, -1).clamp(-1, torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)).item())
    torch.testing.assert_close(apply_shuffle_remap(x, params), reference_with_params(x, params),
                               atol=ATOL, rtol=0)


def test_clustered_and_duplicate_points():
    """Several points in one lookup bin, duplicates, a point at -1: the exact fallback path."""
    base = torch.tensor([-0.3, -0.3, -0.2999999, -0.29999, 0.5, 0.5000001, -1.0, 0.99999994])
    pts = [base, base[:5], torch.linspace(-0.99, 0.99, 300)]
    perms = [torch.randperm(p.numel() + 1, generator=_gen(i)) for i, p in enumerate(pts)]
    params = ShuffleRemapParams.from_lists(pts, perms)
    x = torch.cat([torch.rand(3, 1, 500, generator=_gen(4)) * 2 - 1,
                   torch.stack([params.control_points(b)[:6] for b in range(3)]).unsqueeze(1),
                   torch.full((3, 1, 1), -0.29999998)], dim=2)
    torch.testing.assert_close(apply_shuffle_remap(x, params), reference_with_params(x, params),
                               atol=ATOL, rtol=0)


def test_linear_in_each_segment_with_eq8_slope():
    params = sample_shuffle_remap_params(1, (5, 12), _gen(3))
    knots, perm = params.control_points(0), params.permutation(0)
    lo, hi = knots[:-1], knots[1:]
    t = torch.tensor([0.2, 0.5, 0.8])
    x = (lo[:, None] + t * (hi - lo)[:, None]).reshape(1, 1, -1)
    out = apply_shuffle_remap(x, params).view(-1, 3).double()
    xs = x.view(-1, 3).double()
    slope = (out[:, 2] - out[:, 0]) / (xs[:, 2] - xs[:, 0])
    eq8_slope = (knots[perm + 1] - knots[perm]).double() / (hi - lo).double()
    torch.testing.assert_close(slope, eq8_slope, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.view(-1), _eq8(x.view(-1), knots, perm), atol=ATOL, rtol=0)
    mid = out[:, 1] - out[:, 0] - (out[:, 2] - out[:, 1])  # collinear inside the segment
    assert mid.abs().max() < 1e-5


def test_x_equal_one_joins_the_last_segment():
    params = sample_shuffle_remap_params(1, (3, 3), _gen(8))
    knots, perm = params.control_points(0), params.permutation(0)
    out = apply_shuffle_remap(torch.ones(1, 1, 4), params)
    j = perm[-1]
    assert torch.allclose(out, knots[j + 1].expand(1, 1, 4))
    # Algorithm 1 as written leaves X == 1 at 0 (the documented deviation)
    assert algorithm1_fixed(torch.ones(4), knots, perm).abs().max() == 0


def test_identity_permutation_returns_input():
    pts = [torch.tensor([-0.5, 0.1, 0.7]), torch.linspace(-0.9, 0.9, 40)]
    params = ShuffleRemapParams.from_lists(pts, [torch.arange(4), torch.arange(41)])
    x = _image((2, 2, 9, 8), 1, upper_open=False)
    torch.testing.assert_close(apply_shuffle_remap(x, params), x, atol=ATOL, rtol=0)


def test_seeds_reproduce_and_differ():
    x = _image((3, 1, 16, 16), 2)
    a = shuffle_remap(x, generator=_gen(1))
    b = shuffle_remap(x, generator=_gen(1))
    c = shuffle_remap(x, generator=_gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # an independent remap per sample


def test_channels_of_a_sample_share_the_remap():
    x = _image((2, 1, 10, 10), 5)
    out = shuffle_remap(x.expand(2, 3, 10, 10), generator=_gen(4))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])


def test_inversion_and_dtypes():
    x = _image((2, 1, 12, 12), 6)
    out, params = shuffle_remap(x, generator=_gen(6), invert_prob=1.0, return_params=True)
    assert params.invert.all()
    torch.testing.assert_close(out, reference_with_params(x, params), atol=ATOL, rtol=0)
    plain = apply_shuffle_remap(x, ShuffleRemapParams(params.n_points, params.points, params.perm,
                                                      torch.zeros_like(params.invert)))
    torch.testing.assert_close(out, -plain)
    for dtype in (torch.float64, torch.float16):
        xd = x.to(dtype)
        y = apply_shuffle_remap(xd, params)
        assert y.dtype == dtype
        expected = reference_with_params(xd.float(), params).to(dtype)  # float16 input rounds x
        torch.testing.assert_close(y, expected, atol=1e-3 if dtype == torch.float16 else ATOL,
                                   rtol=0)


def test_tolerated_overshoot_is_clamped():
    params = sample_shuffle_remap_params(1, generator=_gen(9))
    x = torch.tensor([[[-1.0005, -1.0, 1.0, 1.0008]]])
    out = apply_shuffle_remap(x, params)
    assert out[0, 0, 0] == out[0, 0, 1] and out[0, 0, 2] == out[0, 0, 3]


@pytest.mark.parametrize(
    "x, kwargs",
    [
        (torch.tensor([[[0.0, float("nan")]]]), {}),
        (torch.tensor([[[0.0, float("inf")]]]), {}),
        (torch.tensor([[[0.0, 1.01]]]), {}),
        (torch.tensor([[[-1.2, 0.0]]]), {}),
        (torch.zeros(1, 1, 4, dtype=torch.int64), {}),
        (torch.zeros(4), {}),
        (torch.zeros(1, 1, 4), {"n_range": (5, 2)}),
        (torch.zeros(1, 1, 4), {"n_range": (-1, 2)}),
        (torch.zeros(1, 1, 4), {"invert_prob": 1.5}),
    ],
)
def test_bad_input_raises(x, kwargs):
    with pytest.raises(ValueError):
        shuffle_remap(x, **kwargs)


def test_params_validation():
    with pytest.raises(ValueError):
        ShuffleRemapParams.from_lists([torch.tensor([0.1, 0.2])], [torch.tensor([0, 1, 1])])
    with pytest.raises(ValueError):
        ShuffleRemapParams.from_lists([torch.tensor([1.0])], [torch.tensor([1, 0])])
    params = sample_shuffle_remap_params(2, generator=_gen(0))
    with pytest.raises(ValueError):
        apply_shuffle_remap(torch.zeros(3, 1, 4), params)


def _models_genesis_curve(x, ctrl, flip, samples=1000):
    """np.interp through the sampled cubic Bezier curve, as Models Genesis does (in [-1, 1])."""
    t = np.linspace(0, 1, samples)
    pts = np.array([[-1.0, -1.0], ctrl[0], ctrl[1], [1.0, 1.0]])
    basis = np.stack([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t**2 * (1 - t), t**3])
    xs, ys = pts[:, 0] @ basis, pts[:, 1] @ basis
    ys = ys[::-1] if flip else np.sort(ys)
    return np.interp(x, np.sort(xs), ys)


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_bezier_shift_follows_the_curve(flip_prob):
    x = torch.linspace(-1, 1, 401).expand(3, 1, 401).contiguous()
    out = bezier_shift(x, _gen(7), flip_prob=flip_prob)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    g = _gen(7)
    ctrl = (torch.rand((3, 2, 2), generator=g, dtype=torch.float64) * 2 - 1).numpy()
    for b in range(3):
        ref = _models_genesis_curve(x[b, 0].numpy(), ctrl[b], flip=flip_prob == 1.0)
        np.testing.assert_allclose(out[b, 0].numpy(), ref, atol=2e-3)
    ends = out[:, 0, [0, -1]]
    expected = torch.tensor([-1.0, 1.0]) if flip_prob == 0 else torch.tensor([1.0, -1.0])
    assert torch.allclose(ends, expected.expand(3, 2), atol=1e-5)
    if flip_prob == 0:
        assert (out.diff(dim=-1) >= -1e-6).all()  # monotonic branch


def test_bezier_shift_reproducible_and_validated():
    x = _image((2, 1, 8, 8), 3)
    assert torch.equal(bezier_shift(x, _gen(1)), bezier_shift(x, _gen(1)))
    assert not torch.equal(bezier_shift(x, _gen(1)), bezier_shift(x, _gen(2)))
    with pytest.raises(ValueError):
        bezier_shift(torch.full((1, 1, 3), 2.0))
