"""Known answers and properties of imse_study.metrics (Dice, HD95, smoothness, Jacobian)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from monai.metrics import DiceMetric

from imse_study.metrics import (
    dice,
    gradient_loss,
    gradient_smoothness,
    hd95,
    jacobian_determinant,
    nonpositive_jacobian_fraction,
)

FAST = settings(max_examples=25, deadline=None)


def _box(shape: tuple[int, ...], start: tuple[int, ...], side: int, label: int = 1) -> np.ndarray:
    a = np.zeros(shape, dtype=np.int64)
    a[tuple(slice(s, s + side) for s in start)] = label
    return a


def _identity_grid(shape: tuple[int, ...]) -> list[np.ndarray]:
    return list(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))


# ---------------------------------------------------------------------------------------------- Dice, HD95


@pytest.mark.parametrize("ndim", [2, 3])
def test_identical_maps_score_perfectly(ndim: int) -> None:
    rng = np.random.default_rng(0)
    shape = (20,) * ndim
    a = _box(shape, (3,) * ndim, 8, label=1) + _box(shape, (12,) * ndim, 5, label=2)
    a[tuple(rng.integers(0, 20, size=(ndim, 5)))] = 3
    for x in (a, torch.from_numpy(a)[None, None]):
        d = dice(x, x)
        h = hd95(x, x, spacing=[0.7] * ndim)
        assert set(d) == {1, 2, 3, "mean"} == set(h)
        assert all(v == 1.0 for v in d.values())
        assert all(v == 0.0 for v in h.values())


@FAST
@given(
    side=st.integers(3, 12),
    data=st.data(),
    axis=st.integers(0, 1),
    spacing=st.tuples(st.sampled_from([0.25, 0.5, 1.0, 1.5, 3.0]), st.sampled_from([0.25, 0.5, 1.0, 2.0])),
)
def test_shifted_squares_2d(side: int, data: st.DataObject, axis: int, spacing: tuple[float, float]) -> None:
    k = data.draw(st.integers(1, side - 1), label="shift")
    shape = (side + k + 6, side + 6)
    start = (3, 3)
    moved = tuple(s + (k if i == axis else 0) for i, s in enumerate(start))
    if axis == 1:
        shape = shape[::-1]
    a, b = _box(shape, start, side), _box(shape, moved, side)
    assert dice(a, b)[1] == pytest.approx((side - k) / side, rel=1e-12)
    assert hd95(a, b, spacing=spacing)[1] == pytest.approx(k * spacing[axis], rel=1e-6)
    # Symmetric in its two arguments.
    assert hd95(b, a, spacing=spacing)[1] == pytest.approx(k * spacing[axis], rel=1e-6)
    assert dice(b, a) == dice(a, b)


def test_hd95_honours_spacing_per_axis() -> None:
    a = _box((30, 30), (5, 5), 10)
    b = _box((30, 30), (8, 5), 10)  # shifted 3 voxels along axis 0
    assert hd95(a, b)[1] == pytest.approx(3.0)
    assert hd95(a, b, spacing=(2.0, 0.5))[1] == pytest.approx(6.0)
    assert hd95(a, b, spacing=(0.5, 2.0))[1] == pytest.approx(1.5)
    assert hd95(a, b, spacing=1.5)[1] == pytest.approx(4.5)


def test_shifted_cubes_3d() -> None:
    side, k = 8, 2
    spacing = (3.0, 1.0, 0.5)
    for axis in range(3):
        start = (4, 4, 4)
        moved = tuple(s + (k if i == axis else 0) for i, s in enumerate(start))
        a, b = _box((18, 18, 18), start, side), _box((18, 18, 18), moved, side)
        assert dice(a, b)["mean"] == pytest.approx((side - k) / side, rel=1e-12)
        assert hd95(torch.from_numpy(a), torch.from_numpy(b), spacing=spacing)[1] == pytest.approx(
            k * spacing[axis], rel=1e-6
        )


def test_disjoint_labels_score_zero_dice() -> None:
    a = _box((20, 20), (1, 1), 5)
    b = _box((20, 20), (12, 12), 5)
    assert dice(a, b) == {1: 0.0, "mean": 0.0}
    assert hd95(a, b)[1] > 10


def test_nan_rules() -> None:
    a = _box((20, 20), (2, 2), 6, label=1)
    b = a.copy()
    a[15:18, 15:18] = 2  # label 2 only in pred
    d = dice(a, b, labels=[1, 2, 5])  # label 5 in neither
    assert d[1] == 1.0 and d[2] == 0.0 and math.isnan(d[5])
    assert d["mean"] == pytest.approx(0.5)
    h = hd95(a, b, labels=[1, 2, 5])
    assert h[1] == 0.0 and math.isnan(h[2]) and math.isnan(h[5])
    assert h["mean"] == 0.0
    empty = np.zeros((10, 10), dtype=np.int64)
    assert set(dice(empty, empty)) == {"mean"} and math.isnan(dice(empty, empty)["mean"])
    assert math.isnan(hd95(empty, empty)["mean"])


def test_labels_default_to_nonzero_union_and_names() -> None:
    a = _box((16, 16), (1, 1), 4, label=3)
    b = _box((16, 16), (8, 8), 4, label=7)
    assert list(dice(a, b)) == [3, 7, "mean"]
    names = {"csf": 3, "gm": 7, "wm": 9}
    d = dice(a, b, label_names=names)
    assert list(d) == ["csf", "gm", "wm", "mean"] and math.isnan(d["wm"])
    assert list(hd95(a, a, label_names=names, labels=[3])) == ["csf", "mean"]
    with pytest.raises(ValueError, match="no name"):
        dice(a, b, labels=[3, 4], label_names=names)
    with pytest.raises(ValueError, match="both"):
        dice(a, b, label_names={"x": 3, "y": 3})


def test_batch_scores_each_image_then_averages() -> None:
    a0, b0 = _box((20, 20), (2, 2), 10), _box((20, 20), (4, 2), 10)  # dice 0.8, hd 2
    a1 = b1 = np.zeros((20, 20), dtype=np.int64)  # label 1 absent: NaN, skipped
    a = np.stack([a0, a1])[:, None]
    b = np.stack([b0, b1])[:, None]
    assert dice(a, b)[1] == pytest.approx(0.8)
    assert hd95(a, b)[1] == pytest.approx(2.0)


@FAST
@given(seed=st.integers(0, 2**32 - 1), ndim=st.sampled_from([2, 3]))
def test_dice_matches_monai_where_defined(seed: int, ndim: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (9,) * ndim
    p, t = rng.integers(0, 4, shape), rng.integers(0, 4, shape)
    p[p == 3] = 0  # label 3 only ever in t
    ours = dice(p, t, labels=[1, 2, 3])
    def onehot(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([x == v for v in (1, 2, 3)])[None].astype(np.float32))

    theirs = DiceMetric(include_background=True, ignore_empty=False)(onehot(p), onehot(t))[0]
    for i, v in enumerate((1, 2, 3)):
        assert ours[v] == pytest.approx(float(theirs[i]), abs=1e-6)
        assert 0.0 <= ours[v] <= 1.0


def test_float_labels_from_nearest_warp_are_accepted() -> None:
    a = _box((12, 12), (2, 2), 5)
    assert dice(a.astype(np.float32), torch.from_numpy(a).double())[1] == 1.0
    assert dice(a.astype(bool), a)[1] == 1.0


def test_bad_label_input() -> None:
    a = _box((12, 12), (2, 2), 5)
    with pytest.raises(ValueError, match="shape"):
        dice(a, a[:-1])
    with pytest.raises(ValueError, match="non-integer"):
        dice(a * 0.5, a)
    nan = a.astype(float)
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        hd95(nan, a)
    with pytest.raises(ValueError, match=r"\(B, 1, \*S\)"):
        dice(np.stack([a, a, a])[None], np.stack([a, a, a])[None])
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, spacing=(1.0, 0.0))
    with pytest.raises(TypeError):
        dice(a.tolist(), a)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- fields


@pytest.mark.parametrize("shape", [(2, 2, 12, 10), (1, 3, 6, 7, 8)])
def test_identity_and_constant_fields(shape: tuple[int, ...]) -> None:
    zero = torch.zeros(shape)
    const = torch.ones(shape) * torch.arange(1.0, shape[1] + 1).view(1, -1, *([1] * (len(shape) - 2)))
    for u in (zero, const, const.numpy()):
        assert gradient_smoothness(u) == 0.0
        det = jacobian_determinant(u)
        assert det.shape == (shape[0], *shape[2:])
        assert torch.all(det == 1.0)
        assert nonpositive_jacobian_fraction(u) == 0.0


def _linear_field(shape: tuple[int, ...], a: float, component: int, axis: int) -> np.ndarray:
    """u_component = a * x_axis, other components 0, batch of 1."""
    u = np.zeros((1, len(shape), *shape))
    u[0, component] = a * _identity_grid(shape)[axis]
    return u


@FAST
@given(
    a=st.floats(-3.0, 3.0, allow_nan=False).filter(lambda v: abs(v) > 1e-3),
    ndim=st.sampled_from([2, 3]),
    data=st.data(),
)
def test_linear_fields(a: float, ndim: int, data: st.DataObject) -> None:
    shape = (6, 5, 4)[:ndim]
    axis = data.draw(st.integers(0, ndim - 1), label="axis")
    # Stretch along an axis: det = 1 + a; smoothness a^2 / ndim^2 by the documented definition.
    u = _linear_field(shape, a, axis, axis)
    assert gradient_smoothness(u) == pytest.approx(a * a / ndim**2, rel=1e-12)
    assert torch.allclose(jacobian_determinant(u), torch.tensor(1.0 + a, dtype=torch.float64))
    assert nonpositive_jacobian_fraction(u) == (1.0 if a <= -1 else 0.0)
    # Shear (u_i = a * x_j, i != j): same smoothness, volume preserved.
    other = (axis + 1) % ndim
    shear = _linear_field(shape, a, other, axis)
    assert gradient_smoothness(shear) == pytest.approx(a * a / ndim**2, rel=1e-12)
    assert torch.allclose(jacobian_determinant(shear), torch.tensor(1.0, dtype=torch.float64))


def test_folding_field() -> None:
    shape = (32, 16)
    x0 = _identity_grid(shape)[0]
    u = np.zeros((1, 2, *shape))
    u[0, 0] = 4.0 * np.sin(2 * np.pi * x0 / 16)  # du0/dx0 down to -1.57: folds where cos is low
    frac = nonpositive_jacobian_fraction(u)
    assert 0.0 < frac < 0.5
    assert nonpositive_jacobian_fraction(_linear_field((8, 8, 8), -2.0, 1, 1)) == 1.0


@FAST
@given(seed=st.integers(0, 2**32 - 1), ndim=st.sampled_from([2, 3]))
def test_field_metrics_match_independent_numpy(seed: int, ndim: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (5, 6, 4)[:ndim]
    u = rng.normal(size=(2, ndim, *shape))
    expected = np.mean([np.mean(np.diff(u, axis=2 + ax) ** 2) for ax in range(ndim)])
    assert gradient_smoothness(u) == pytest.approx(expected, rel=1e-12)
    # det(I + grad u) with numpy.gradient and numpy.linalg.det, voxel by voxel.
    J = np.stack([np.stack(np.gradient(u[:, i], axis=tuple(range(1, ndim + 1))), -1) for i in range(ndim)], -2)
    expected_det = np.linalg.det(J + np.eye(ndim))
    np.testing.assert_allclose(jacobian_determinant(u).numpy(), expected_det, rtol=1e-9, atol=1e-9)


def test_gradient_loss_is_differentiable_and_shared() -> None:
    u = torch.randn(2, 3, 6, 5, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss = gradient_loss(u)
    assert loss.ndim == 0 and loss.requires_grad
    loss.backward()
    assert u.grad is not None and torch.isfinite(u.grad).all() and u.grad.abs().sum() > 0
    assert gradient_smoothness(u) == pytest.approx(loss.item(), rel=1e-6)
    # In 3D this is the IMSE authors' smooth_loss: (mean dx^2 + mean dy^2 + mean dz^2) / 3.
    d = [torch.diff(u, dim=k).pow(2).mean() for k in (2, 3, 4)]
    assert loss.item() == pytest.approx((sum(d) / 3.0).item(), rel=1e-6)
    jacobian_determinant(u).sum().backward()  # differentiable too


def test_bad_displacement_input() -> None:
    with pytest.raises(ValueError, match="channels"):
        gradient_smoothness(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        gradient_loss(torch.zeros(1, 2, 4, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, ndim, \*S\)"):
        jacobian_determinant(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="at least 2"):
        gradient_smoothness(torch.zeros(1, 2, 1, 8))
    nan = torch.zeros(1, 2, 8, 8)
    nan[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        gradient_smoothness(nan)
    with pytest.raises(ValueError, match="NaN"):
        nonpositive_jacobian_fraction(nan.numpy())
