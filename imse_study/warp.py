"""The one ``warp()`` of the package: resample an image through a dense displacement field.

Convention (``docs/architecture.md``, the same as MONAI's ``monai.networks.blocks.Warp``): an image is
``(B, C, H, W)`` or ``(B, C, D, H, W)``; a displacement field is ``(B, ndim, *spatial)`` in VOXELS,
channel ``i`` being the displacement along spatial axis ``i`` (axis 0 = first spatial axis). The warped
image samples the input at the displaced position::

    warp(x, u)[p] = x[p + u(p)]

so a field that is ``+3`` everywhere along axis 1 moves the image content by 3 voxels towards
smaller indices of axis 1. Images are warped with ``"bilinear"`` (trilinear in 3D, differentiable in
both the image and the field), label maps with ``"nearest"``. The resampling itself is MONAI's.
"""

from __future__ import annotations

import warnings

import torch
from monai.networks.blocks import Warp

__all__ = ["warp", "compose", "identity_grid"]

_MODES = ("bilinear", "nearest")
_PADDINGS = ("border", "zeros", "reflection")
_WARPERS: dict[tuple[str, str, str, torch.dtype], Warp] = {}


def _warper(mode: str, padding_mode: str, device: torch.device, dtype: torch.dtype) -> Warp:
    """A cached MONAI ``Warp`` per (mode, padding, device, dtype): built once, not per call.

    Device and dtype are part of the key because ``Warp`` may keep a reference grid between calls.
    """
    key = (mode, padding_mode, str(device), dtype)
    warper = _WARPERS.get(key)
    if warper is None:
        with warnings.catch_warnings():  # "Using PyTorch native grid_sample" on every construction
            warnings.simplefilter("ignore")
            warper = Warp(mode=mode, padding_mode=padding_mode)
        _WARPERS[key] = warper
    return warper


def _check_pair(image: torch.Tensor, displacement: torch.Tensor) -> None:
    """Raise a ValueError naming the expected shapes when image and field do not fit together."""
    if not isinstance(image, torch.Tensor) or not isinstance(displacement, torch.Tensor):
        raise ValueError("warp() takes torch tensors for both the image and the displacement")
    if image.ndim not in (4, 5):
        raise ValueError(
            f"image must be (B, C, H, W) or (B, C, D, H, W), got shape {tuple(image.shape)}"
        )
    ndim = image.ndim - 2
    spatial = tuple(image.shape[2:])
    expected = (image.shape[0], ndim, *spatial)
    batch_ok = displacement.shape[:1] in ((image.shape[0],), (1,))
    if displacement.ndim != image.ndim or not batch_ok or tuple(displacement.shape[1:]) != expected[1:]:
        raise ValueError(
            f"displacement must be (B, {ndim}, *spatial) = {expected} (or batch 1) in voxels for an "
            f"image of shape {tuple(image.shape)}, got {tuple(displacement.shape)}"
        )
    if not displacement.is_floating_point():
        raise ValueError(f"displacement must be a floating-point tensor, got {displacement.dtype}")


def warp(
    image: torch.Tensor,
    displacement: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "border",
) -> torch.Tensor:
    """Warp ``image`` by a voxel ``displacement``: ``out[p] = image[p + displacement(p)]``.

    Args:
        image: ``(B, C, H, W)`` or ``(B, C, D, H, W)``. Integer or bool tensors (label maps) need
            ``mode="nearest"`` and come back in their own dtype with values from the input.
        displacement: ``(B, ndim, *spatial)`` in voxels, channel ``i`` along spatial axis ``i``; a
            batch of 1 is used for every image of the batch.
        mode: ``"bilinear"`` (images; trilinear in 3D; differentiable) or ``"nearest"`` (labels).
        padding_mode: what lies outside the image: ``"border"`` (default, as in the authors' code),
            ``"zeros"`` or ``"reflection"``.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if padding_mode not in _PADDINGS:
        raise ValueError(f"padding_mode must be one of {_PADDINGS}, got {padding_mode!r}")
    _check_pair(image, displacement)
    is_float = image.is_floating_point()
    if not is_float and mode != "nearest":
        raise ValueError(
            f"an image of dtype {image.dtype} (a label map) must be warped with mode='nearest'"
        )
    work = image if is_float else image.to(torch.float32)
    field = displacement.to(device=work.device, dtype=work.dtype)
    if field.shape[0] != work.shape[0]:
        field = field.expand(work.shape[0], *field.shape[1:])
    out = _warper(mode, padding_mode, work.device, work.dtype)(work, field)
    if is_float:
        return out
    return out.round().to(image.dtype)


def compose(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """The displacement of "warp by ``first``, then by ``second``".

    ``warp(warp(x, first), second)[p] = x[p + second(p) + first(p + second(p))]``, so

        ``compose(first, second)(p) = second(p) + first(p + second(p))``

    and ``warp(x, compose(first, second)) ~= warp(warp(x, first), second)`` up to interpolation
    error (exact for constant integer shifts). ``first`` is sampled at the displaced points with
    linear interpolation and border padding. Both fields are ``(B, ndim, *spatial)`` in voxels.
    """
    if first.shape != second.shape:
        raise ValueError(
            f"compose() needs two fields of the same shape, got {tuple(first.shape)} and "
            f"{tuple(second.shape)}"
        )
    if first.ndim not in (4, 5) or first.shape[1] != first.ndim - 2:
        raise ValueError(
            f"a displacement field is (B, ndim, *spatial) with ndim 2 or 3, got {tuple(first.shape)}"
        )
    return second + warp(first, second, mode="bilinear", padding_mode="border")


def identity_grid(
    shape: tuple[int, ...], device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Voxel coordinates ``(ndim, *shape)``: channel ``i`` holds the index along spatial axis ``i``."""
    axes = [torch.arange(n, device=device, dtype=dtype) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)
