"""ANTs / elastix reference registrations: conversion to our displacement convention, seeds, errors.

The conversion is checked against each tool's own resampled image: ``warp(moving, displacement)``
must reproduce ANTs' ``warpedmovout`` and elastix' result image (both linear interpolation) wherever
the sampled point lies inside the moving image (outside, the tools pad with 0 and ``warp`` with the
border value). A known translation checks sign, axis and the division by an anisotropic spacing.
Images are tiny (48x48, 24^3) and the elastix runs use few iterations, so the file runs in seconds.
"""

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")  # 2-core machines

from imse_study.registration.external import (
    ExternalResult,
    ants_parameters,
    ants_register,
    elastix_parameter_maps,
    elastix_register,
    register_external,
)
from imse_study.warp import identity_grid

pytestmark = pytest.mark.filterwarnings("ignore:builtin type .* has no __module__ attribute")

ants = pytest.importorskip("ants")
itk = pytest.importorskip("itk")

FAST = {"ants": {"threads": 1}, "elastix": {"threads": 1, "max_iterations": 48}}


def _blobs(shape, centres, widths, values):
    """Sum of anisotropic Gaussian blobs on a grid of ``shape`` (array-axis order)."""
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    out = np.zeros(shape)
    for c, w, v in zip(centres, widths, values):
        r2 = sum((g - ci) ** 2 / (2.0 * wi**2) for g, ci, wi in zip(grids, c, w))
        out += v * np.exp(-r2)
    return out


def _pair(ndim: int, seed: int = 0):
    """A two-"modality" pair: the moving image is a smoothly deformed image of the same anatomy
    with a non-monotonic intensity mapping (MI territory), both in [-1, 1]."""
    shape = (48, 48) if ndim == 2 else (24, 24, 24)
    n = shape[0]
    rng = np.random.default_rng(seed)
    centres = [tuple(rng.uniform(0.3 * n, 0.7 * n, ndim)) for _ in range(4)]
    widths = [tuple(rng.uniform(0.08 * n, 0.2 * n, ndim)) for _ in range(4)]
    anatomy = _blobs(shape, centres, widths, [1.0, 0.6, -0.5, 0.8])
    anatomy = (anatomy - anatomy.min()) / (anatomy.max() - anatomy.min())
    target = 2 * anatomy - 1
    other = 2 * np.sin(np.pi * 1.2 * anatomy) ** 2 - 1  # another "modality"
    from imse_study.augment import random_spatial_displacement
    from imse_study.warp import warp

    field = random_spatial_displacement(shape, 1, generator=torch.Generator().manual_seed(seed))
    moving = warp(torch.as_tensor(other, dtype=torch.float32)[None, None], field)[0, 0].numpy()
    return moving.astype(np.float64), target


def _inside(displacement: torch.Tensor, margin: float = 1.0) -> np.ndarray:
    """Voxels whose sampled moving-space point lies inside the image by ``margin`` voxels."""
    d = displacement[0]
    q = identity_grid(tuple(d.shape[1:]), dtype=d.dtype) + d
    ok = torch.ones(d.shape[1:], dtype=torch.bool)
    for i, n in enumerate(d.shape[1:]):
        ok &= (q[i] >= margin) & (q[i] <= n - 1 - margin)
    return ok.numpy()


def _check_matches_tool(result: ExternalResult, moving: np.ndarray):
    ours = result.warped[0, 0].numpy()
    tool = result.tool_warped[0, 0].numpy()
    mask = _inside(result.displacement)
    assert mask.mean() > 0.5
    value_range = moving.max() - moving.min()
    err = np.abs(ours - tool)[mask].max() / value_range
    corr = np.corrcoef(ours[mask], tool[mask])[0, 1]
    assert err < 2e-3, f"max |warp - tool| = {err:.2e} of the range"
    assert corr > 0.9999
    return err


@pytest.mark.parametrize("method", ["ants", "elastix"])
def test_warp_reproduces_tool_output_2d(method):
    moving, target = _pair(2)
    spacing = (2.0, 1.5)  # anisotropic: a wrong axis or spacing shows at once
    result = register_external(method, moving, target, spacing, **FAST[method])
    assert result.displacement.shape == (1, 2, 48, 48)
    assert result.displacement.dtype == torch.float32
    assert result.warped.shape == result.tool_warped.shape == (1, 1, 48, 48)
    assert result.seconds > 0 and result.method == method
    assert float(result.displacement.abs().max()) > 0.5  # it did move something
    _check_matches_tool(result, moving)


@pytest.mark.parametrize("method", ["ants", "elastix"])
def test_warp_reproduces_tool_output_3d(method):
    moving, target = _pair(3, seed=1)
    spacing = (2.0, 1.0, 1.5)
    kw = dict(FAST[method])
    if method == "ants":
        kw["reg_iterations"] = (20, 10)
    else:
        kw["max_iterations"] = 24
    result = register_external(method, torch.as_tensor(moving)[None, None], target, spacing, **kw)
    assert result.displacement.shape == (1, 3, 24, 24, 24)
    _check_matches_tool(result, moving)


@pytest.mark.parametrize(
    "method, options, tolerance",
    [
        ("ants", {"type_of_transform": "Rigid"}, 0.1),  # linear transforms: exact conversion
        ("ants", {}, 0.4),  # the default SyN: right sign and axis, registration error allowed
        ("elastix", {}, 0.4),
    ],
)
def test_known_translation_sign_and_axis(method, options, tolerance):
    """Moving = target shifted by s voxels: warp(moving, d)(p) = moving(p + d) = target(p), d = s.

    The "anatomy" is a head-sized blob with inner structures, and the moving image has another
    contrast (a non-monotonic mapping); a lone blob on an empty background lets an affine MI
    registration zoom (elastix finds a 0.7 scaling there), which tests the tools, not us.
    """
    shape = (48, 48)
    shift = np.array([3.0, -2.0])
    centres = [(24, 24), (18, 20), (30, 27), (22, 31), (27, 16)]
    widths = [(12, 9), (3, 4), (4, 2.5), (2.5, 3), (3, 3)]
    values = [1.0, 0.5, -0.6, 0.8, -0.4]

    def anatomy(offset):
        return _blobs(shape, [tuple(np.add(c, offset)) for c in centres], widths, values)

    target = anatomy((0.0, 0.0))
    moving = anatomy(shift)
    moving = np.sin(np.pi * 1.2 * (moving - moving.min()) / np.ptp(moving)) ** 2
    spacing = (2.0, 1.0)  # the shift is 6 mm along axis 0, 2 mm along axis 1
    fn = ants_register if method == "ants" else elastix_register
    d = fn(moving, target, spacing, **{**FAST[method], **options})
    assert d.shape == (1, 2, *shape)
    region = target > 0.3
    for axis in range(2):
        med = float(np.median(d[0, axis].numpy()[region]))
        assert abs(med - shift[axis]) < tolerance, (axis, med, shift[axis])


@pytest.mark.parametrize("method", ["ants", "elastix"])
def test_same_seed_same_result(method):
    moving, target = _pair(2, seed=2)
    fn = ants_register if method == "ants" else elastix_register
    a = fn(moving, target, seed=3, **FAST[method])
    b = fn(moving, target, seed=3, **FAST[method])
    assert torch.equal(a, b)


def test_two_threads_run_and_are_reproducible():
    """itk-elastix's own number_of_threads > 1 segfaults on the B-spline map (ITKElastix #160):
    threads go through ITK's global default instead. Same seed, same threads: same result."""
    moving, target = _pair(2, seed=4)
    before = itk.MultiThreaderBase.GetGlobalDefaultNumberOfThreads()
    a = elastix_register(moving, target, threads=2, max_iterations=24)
    b = elastix_register(moving, target, threads=2, max_iterations=24)
    assert torch.equal(a, b)
    assert itk.MultiThreaderBase.GetGlobalDefaultNumberOfThreads() == before  # restored


def test_ants_seed_is_used():
    """ANTs reads seed 0 as "from the clock": seed 0 must still be reproducible (passed as 1)."""
    moving, target = _pair(2, seed=3)
    a = ants_register(moving, target, seed=0, threads=1)
    b = ants_register(moving, target, seed=0, threads=1)
    c = ants_register(moving, target, seed=5, threads=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("method", ["ants", "elastix"])
def test_no_files_left_behind(method, tmp_path, monkeypatch):
    """transformix writes deformationField.nii to "." unless told otherwise; ANTs writes its
    transforms next to a prefix: both go to temporary folders that are removed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    moving, target = _pair(2, seed=5)
    kw = {**FAST[method], "max_iterations": 8} if method == "elastix" else FAST[method]
    register_external(method, moving, target, **kw)
    assert list(tmp_path.iterdir()) == []


def test_inputs_validated():
    moving, target = _pair(2)
    with pytest.raises(ValueError, match="same shape"):
        ants_register(moving, target[:40])
    bad = moving.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        elastix_register(bad, target)
    with pytest.raises(ValueError, match="constant"):
        ants_register(np.zeros_like(moving), target)
    with pytest.raises(ValueError, match="spacing"):
        ants_register(moving, target, spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match="spacing"):
        elastix_register(moving, target, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="one image"):
        register_external("ants", torch.zeros(2, 1, 48, 48), torch.zeros(2, 1, 48, 48))
    with pytest.raises(ValueError, match="too small"):
        ants_register(moving[None], target[None])  # (1, H, W) reads as a 3D volume of depth 1
    with pytest.raises(ValueError, match="2D"):
        ants_register(moving[0], target[0])
    with pytest.raises(ValueError, match="method"):
        register_external("flirt", moving, target)
    with pytest.raises(TypeError, match="unknown"):
        register_external("elastix", moving, target, type_of_transform="SyN")
    with pytest.raises(ValueError, match="seed"):
        ants_register(moving, target, seed=-1)


def test_parameters_are_recorded():
    p = ants_parameters()
    assert p["stage1_metric"] == "mattes[fixed,moving,1,32,regular,0.2]"
    assert p["stage2_metric"].startswith("mattes[fixed,moving,1,32]")
    assert p["stage2_transform"] == "SyN[0.2,3.0,0.0]"
    assert p["stage2_convergence"] == "[40x20x0,1e-7,8]"
    assert p["stage2_shrink_factors"] == "4x2x1" and p["random_seed"] == "1"
    affine, bspline = elastix_parameter_maps(seed=7, grid_spacing_mm=8.0)
    assert affine["Metric"] == ["AdvancedMattesMutualInformation"]
    assert affine["Transform"] == ["AffineTransform"]
    assert bspline["Metric"][0] == "AdvancedMattesMutualInformation"
    assert bspline["Transform"] == ["BSplineTransform"]
    assert bspline["FinalGridSpacingInPhysicalUnits"] == ["8.0"]
    assert affine["RandomSeed"] == bspline["RandomSeed"] == ["7"]
