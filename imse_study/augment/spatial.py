"""Random spatial transforms for evaluator training (paper section 3.1 step 1 and section 4.1).

The paper (section 4.1): rotation in [-3, 3] degrees, displacement in [-8 %, +8 %], scaling in
[-8 %, +8 %], then an elastic deformation "followed by Gaussian smoothing", degree (alpha) 80 and
smoothing radius (sigma) 12, for 240 x 240 images. The authors' public configs
(``Yaml/Evaluator.yaml``, ``Yaml/Eva.yaml``) use ``non_affine_alpha: 120`` instead of 80; pass
``elastic_alpha=120`` to follow the code rather than the text.

Everything is one displacement field in voxels (``imse_study.warp`` convention), built batched (an
independent transform per sample) on the device of the input and seeded by a ``torch.Generator``:

* affine: ``A = R @ diag(s)`` about the image centre ``c`` plus a translation ``t``. 2D has one
  rotation angle; 3D rotates about each of the three axes (``R = R_0 @ R_1 @ R_2``, ``R_i`` turning
  the plane of the two other axes). Scaling is drawn per axis in ``[1 - scaling, 1 + scaling]``,
  translation per axis in ``[-translation, translation] * size``. All uniform. Angles act on voxel
  indices (no voxel spacing is known here).
* elastic (Simard et al. 2003, as in the authors' ``non_affine_2d/3d``): uniform noise in [-1, 1]
  per voxel and axis, smoothed by a Gaussian of standard deviation ``sigma`` voxels (the same kernel
  and ``reflect`` border as ``scipy.ndimage.gaussian_filter``), times ``alpha``.
* order as in the authors' data sets: the affine first, then the elastic field, i.e. the result is
  ``compose(affine, elastic)``: ``u(p) = e(p) + (A - I)(p + e(p) - c) + t`` (exact, no resampling).

Size scaling (``reference_size``): alpha and sigma are given for ``reference_size`` (240 px, the
paper's 2D size). For an image whose largest side is ``n``, ``f = n / reference_size`` and
``sigma' = f * sigma``, ``alpha' = f ** (1 + ndim / 2) * alpha``. Smoothing white noise of
variance v with a Gaussian of width sigma leaves a standard deviation proportional to
``sigma ** (-ndim / 2)``, so this choice makes the field the same deformation *relative to the
image* at every size: correlation length and displacement both scale with ``f``.
``reference_size=None`` uses alpha and sigma as given (the authors used alpha 120, sigma 12 on their
48 x 128 x 128 volumes unscaled). ``elastic_displacement_std`` gives the resulting per-axis standard
deviation of the elastic displacement in voxels: about 1.1 px for the paper's 2D setting (1.6 px
with alpha 120), but only ~0.25 voxel for the authors' unscaled 3D setting and ~0.09 voxel with
the scaling rule at 48 x 128 x 128, because a 3D Gaussian averages more noise. In 3D the paper's
numbers therefore give an almost purely affine transform; raise alpha to deform more.

Differences from the authors' ``affine()`` (documented, the paper's text is followed): their
translation of 0.08 is in normalised [-1, 1] grid units (4 % of the size), one value shared by
both axes in 2D and none along the first axis in 3D; here it is 8 % of each axis, drawn per axis.
"""

from __future__ import annotations

import functools
import math

import torch

from imse_study.warp import identity_grid, warp

__all__ = [
    "random_spatial_displacement",
    "random_spatial_transform",
    "random_affine_parameters",
    "affine_displacement",
    "elastic_displacement",
    "elastic_displacement_std",
    "scaled_elastic_parameters",
    "gaussian_kernel1d",
    "gaussian_smooth",
]


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, dtype: torch.dtype = torch.float64,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """The sampled, normalised Gaussian of ``scipy.ndimage.gaussian_filter`` (radius ``truncate*sigma``)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = int(truncate * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / float(sigma)) ** 2)
    return (k / k.sum()).to(device=device, dtype=dtype)


def _symmetric_indices(n: int, radius: int) -> torch.Tensor:
    """Indices that pad an axis of length n by ``radius`` with scipy's ``reflect`` (d c b a | a b c d)."""
    i = torch.arange(-radius, n + radius)
    m = torch.remainder(i, 2 * n)
    return torch.where(m >= n, 2 * n - 1 - m, m)


@functools.lru_cache(maxsize=32)
def _smoothing_matrix(n: int, sigma: float, truncate: float) -> torch.Tensor:
    """The (n, n) matrix ``S`` with ``smooth(v) = v @ S`` for one axis, reflection included (float64)."""
    kernel = gaussian_kernel1d(sigma, truncate)
    size = kernel.numel()
    radius = size // 2
    band = torch.zeros(n + 2 * radius, n, dtype=torch.float64)
    out_idx = torch.arange(n).repeat(size)
    in_idx = out_idx + torch.arange(size).repeat_interleave(n)
    band[in_idx, out_idx] = kernel.repeat_interleave(n)
    return torch.zeros(n, n, dtype=torch.float64).index_add_(0, _symmetric_indices(n, radius), band)


def gaussian_smooth(x: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian smoothing of every channel of ``x`` (B, C, *spatial), batched.

    Matches ``scipy.ndimage.gaussian_filter(..., mode="reflect")`` (the authors' smoothing) on each
    2D/3D channel. Hand-written because MONAI's ``GaussianFilter`` pads with zeros (or torch's
    whole-sample reflection), which would damp the field at the image border. Each axis is one
    matrix product with the (n, n) smoothing-with-reflection matrix: for the wide kernels used here
    (97 taps at sigma 12) a GEMM is about ten times faster on a CPU than ``conv1d``.
    """
    if x.ndim < 3:
        raise ValueError(f"gaussian_smooth expects (B, C, *spatial), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"gaussian_smooth expects a floating-point tensor, got {x.dtype}")
    out = x
    for axis in range(2, x.ndim):
        matrix = _smoothing_matrix(x.shape[axis], float(sigma), float(truncate))
        matrix = matrix.to(device=x.device, dtype=x.dtype)
        out = torch.movedim(torch.movedim(out, axis, -1) @ matrix, -1, axis)
    return out.contiguous()


def scaled_elastic_parameters(shape: tuple[int, ...], alpha: float, sigma: float,
                              reference_size: float | None = 240) -> tuple[float, float]:
    """``(alpha', sigma')`` for an image of ``shape`` (see the module docstring for the rule)."""
    if reference_size is None:
        return float(alpha), float(sigma)
    if reference_size <= 0:
        raise ValueError(f"reference_size must be > 0 or None, got {reference_size}")
    f = max(shape) / float(reference_size)
    return float(alpha) * f ** (1.0 + len(shape) / 2.0), float(sigma) * f


def elastic_displacement_std(alpha: float, sigma: float, ndim: int, truncate: float = 4.0) -> float:
    """Per-axis standard deviation (voxels) of the elastic field away from the border.

    Uniform noise in [-1, 1] has variance 1/3; the separable kernel ``k`` multiplies it by
    ``(sum k**2) ** ndim``.
    """
    if alpha == 0:
        return 0.0
    k = gaussian_kernel1d(sigma, truncate)
    return float(abs(alpha) * math.sqrt(1.0 / 3.0) * float((k**2).sum()) ** (ndim / 2.0))


def _check_shape(shape: tuple[int, ...], batch: int) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"shape must be 2 or 3 positive spatial sizes, got {shape}")
    if int(batch) < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    return shape


def _uniform(size: tuple[int, ...], bound: float, generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
    """Uniform in [-bound, bound] on the generator's device, then moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    u = torch.rand(size, generator=generator, device=gen_device, dtype=torch.float32)
    return ((u * 2.0 - 1.0) * float(bound)).to(device)


def _rotation_2d(angle: torch.Tensor) -> torch.Tensor:
    """(B,) radians -> (B, 2, 2)."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _rotation_3d(angles: torch.Tensor) -> torch.Tensor:
    """(B, 3) radians -> (B, 3, 3) = R_0 @ R_1 @ R_2, ``R_i`` rotating the plane of the other two axes."""
    batch = angles.shape[0]
    out = torch.eye(3, device=angles.device, dtype=angles.dtype).expand(batch, 3, 3)
    for axis in range(3):
        a, b = [k for k in range(3) if k != axis]
        r = torch.eye(3, device=angles.device, dtype=angles.dtype).repeat(batch, 1, 1)
        c, s = torch.cos(angles[:, axis]), torch.sin(angles[:, axis])
        r[:, a, a], r[:, a, b], r[:, b, a], r[:, b, b] = c, -s, s, c
        out = out @ r
    return out


def random_affine_parameters(
    shape: tuple[int, ...],
    batch: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    rotation_deg: float = 3.0,
    translation: float = 0.08,
    scaling: float = 0.08,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``(A, t)``: matrices ``(B, ndim, ndim)`` and translations ``(B, ndim)`` in voxels.

    Draw order (for reproducibility): rotation angles, scalings, translations.
    """
    shape = _check_shape(shape, batch)
    device = torch.device(device) if device is not None else torch.device("cpu")
    ndim = len(shape)
    n_angles = 1 if ndim == 2 else 3
    angles = _uniform((batch, n_angles), math.radians(rotation_deg), generator, device)
    scales = 1.0 + _uniform((batch, ndim), scaling, generator, device)
    sizes = torch.tensor(shape, dtype=torch.float32, device=device)
    shifts = _uniform((batch, ndim), translation, generator, device) * sizes
    rot = _rotation_2d(angles[:, 0]) if ndim == 2 else _rotation_3d(angles)
    return rot * scales.unsqueeze(1), shifts


def affine_displacement(matrix: torch.Tensor, shift: torch.Tensor, shape: tuple[int, ...],
                        elastic: torch.Tensor | None = None) -> torch.Tensor:
    """``u(p) = e(p) + (A - I)(p + e(p) - c) + t`` in voxels, ``c`` the image centre, ``e`` optional.

    With ``e = 0`` this is the affine field alone; with an elastic field ``e`` it is
    ``compose(affine, e)`` computed exactly (the affine is evaluated, not resampled).
    """
    ndim = len(shape)
    grid = identity_grid(shape, device=matrix.device, dtype=matrix.dtype)
    centre = torch.tensor([(n - 1) / 2.0 for n in shape], device=matrix.device, dtype=matrix.dtype)
    rel = (grid - centre.view(ndim, *([1] * ndim))).unsqueeze(0)
    if elastic is not None:
        rel = rel + elastic
    eye = torch.eye(ndim, device=matrix.device, dtype=matrix.dtype)
    out = torch.einsum("bij,bj...->bi...", matrix - eye, rel.expand(matrix.shape[0], *rel.shape[1:]))
    out = out + shift.view(*shift.shape, *([1] * ndim))
    return out if elastic is None else out + elastic


def elastic_displacement(
    shape: tuple[int, ...],
    batch: int,
    alpha: float,
    sigma: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Simard's elastic field ``(B, ndim, *shape)``: uniform [-1, 1] noise, Gaussian(sigma), times alpha."""
    shape = _check_shape(shape, batch)
    device = torch.device(device) if device is not None else torch.device("cpu")
    noise = _uniform((batch, len(shape), *shape), 1.0, generator, device)
    if alpha == 0:
        return torch.zeros_like(noise)
    return gaussian_smooth(noise, sigma) * float(alpha)


def random_spatial_displacement(
    shape: tuple[int, ...],
    batch: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    rotation_deg: float = 3.0,
    translation: float = 0.08,
    scaling: float = 0.08,
    elastic_alpha: float = 80.0,
    elastic_sigma: float = 12.0,
    reference_size: float | None = 240,
) -> torch.Tensor:
    """A random affine-then-elastic displacement ``(B, ndim, *shape)`` in voxels (section 4.1).

    One independent transform per sample. ``rotation_deg``, ``translation`` (fraction of the size of
    each axis) and ``scaling`` (fraction) are the half-widths of uniform ranges; ``elastic_alpha`` and
    ``elastic_sigma`` are scaled from ``reference_size`` to ``shape`` (module docstring). Zero
    everywhere gives the zero field. Draw order: affine parameters, then the elastic noise.
    """
    shape = _check_shape(shape, batch)
    for name, value in (("rotation_deg", rotation_deg), ("translation", translation),
                        ("scaling", scaling), ("elastic_alpha", elastic_alpha)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if not 0 <= scaling < 1:
        raise ValueError(f"scaling must be in [0, 1), got {scaling}")
    device = torch.device(device) if device is not None else (
        generator.device if generator is not None else torch.device("cpu"))
    matrix, shift = random_affine_parameters(shape, batch, generator, device, rotation_deg,
                                             translation, scaling)
    alpha, sigma = scaled_elastic_parameters(shape, elastic_alpha, elastic_sigma, reference_size)
    elastic = None
    if alpha > 0:
        elastic = elastic_displacement(shape, batch, alpha, sigma, generator, device)
    return affine_displacement(matrix, shift, shape, elastic)


def random_spatial_transform(
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Warp ``images`` (bilinear) and ``labels`` (nearest) by one random field per sample.

    ``images`` is ``(B, C, *spatial)``; ``labels`` (optional) has the same batch and spatial size.
    ``kwargs`` go to ``random_spatial_displacement``. Returns ``(warped_images, warped_labels or None,
    displacement)``, border padding for both (as the authors' code).
    """
    if images.ndim not in (4, 5):
        raise ValueError(
            f"images must be (B, C, H, W) or (B, C, D, H, W), got shape {tuple(images.shape)}"
        )
    if labels is not None and (labels.ndim != images.ndim or labels.shape[0] != images.shape[0]
                               or labels.shape[2:] != images.shape[2:]):
        raise ValueError(
            f"labels {tuple(labels.shape)} must share batch and spatial size with images "
            f"{tuple(images.shape)}"
        )
    field = random_spatial_displacement(tuple(images.shape[2:]), images.shape[0], generator,
                                        device=images.device, **kwargs)
    warped = warp(images, field, mode="bilinear", padding_mode="border")
    warped_labels = None if labels is None else warp(labels, field, mode="nearest",
                                                     padding_mode="border")
    return warped, warped_labels, field
