"""MIND-SSC: the self-similarity context descriptor of Heinrich et al. (MICCAI 2013), 2D and 3D.

Heinrich, Jenkinson, Papiez, Brady, Schnabel, "Towards realtime multimodal fusion for image-guided
interventions using self-similarity", MICCAI 2013. Written here because no maintained pip package
offers a differentiable torch MIND-SSC for both 2D and 3D images: MONAI has no MIND at all, and the
torch versions that exist live in research repositories (ConvexAdam, deeds-libtorch, the Learn2Reg
baselines), are 3D only and are not packaged as libraries. This one follows the reference
implementation's construction (distances between pairs of neighbours, minimum subtraction, variance
normalisation, ``exp(-d / v)``) with the dimension made generic:

* the neighbourhood is the ``2 * ndim`` face neighbours ``+-e_a`` of a voxel, each ``dilation``
  voxels away from it;
* the self-similarity *context* compares neighbours with each other, never with the centre: every
  pair of neighbours at squared (undilated) distance 2, i.e. two neighbours on different axes. That
  gives 12 pairs (channels) in 3D, as in the paper, and 4 in 2D;
* each pair's patch distance is the squared difference of the two shifted images averaged over a
  box of ``2 * radius + 1`` voxels per axis;
* ``d <- d - min_k d`` per voxel, ``v = mean_k d`` clamped to ``[1e-3, 1e3] * mean(v)`` per image,
  descriptor ``exp(-d / v)`` in (0, 1].

Defaults ``radius=1, dilation=2`` are those of the ConvexAdam / Learn2Reg MIND-SSC baselines.
Borders are replicated (the reference code uses replication padding too). Everything is built from
``F.pad`` and average pooling, so the descriptor is differentiable with respect to the image.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

__all__ = ["mind_ssc", "mind_pairs"]


def mind_pairs(ndim: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The neighbour pairs (undilated offsets from the centre) whose distances form MIND-SSC.

    ``ndim=2``: 4 pairs; ``ndim=3``: 12 pairs (the paper's six-neighbourhood context).
    """
    if ndim not in (2, 3):
        raise ValueError(f"MIND-SSC is defined here for 2 or 3 spatial axes, not {ndim}")
    neighbours = []
    for axis in range(ndim):
        for sign in (-1, 1):
            offset = [0] * ndim
            offset[axis] = sign
            neighbours.append(tuple(offset))
    return [
        (a, b) for a, b in itertools.combinations(neighbours, 2)
        if sum((p - q) ** 2 for p, q in zip(a, b)) == 2
    ]


def _shift(padded: torch.Tensor, offset: tuple[int, ...], pad: int, shape: tuple[int, ...]) -> torch.Tensor:
    """``image[p + offset]`` for every voxel p, read from an image replicate-padded by ``pad``."""
    index = [slice(None), slice(None)]
    index += [slice(pad + o, pad + o + n) for o, n in zip(offset, shape)]
    return padded[tuple(index)]


def _box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2 radius + 1)^ndim`` box, replicated borders, same size as ``x``."""
    if radius == 0:
        return x
    ndim = x.ndim - 2
    padded = F.pad(x, [radius] * (2 * ndim), mode="replicate")
    pool = F.avg_pool2d if ndim == 2 else F.avg_pool3d
    return pool(padded, kernel_size=2 * radius + 1, stride=1)


def mind_ssc(image: torch.Tensor, radius: int = 1, dilation: int = 2) -> torch.Tensor:
    """MIND-SSC descriptors of ``image`` (B, 1, *S): ``(B, K, *S)`` with K = 4 (2D) or 12 (3D).

    ``radius``: half-width of the patch over which squared differences are averaged (voxels).
    ``dilation``: distance of the neighbours from the centre voxel (voxels).
    """
    if not isinstance(image, torch.Tensor) or image.ndim not in (4, 5) or image.shape[1] != 1:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"mind_ssc expects an image (B, 1, H, W) or (B, 1, D, H, W), got {shape}")
    if not image.is_floating_point():
        raise ValueError(f"mind_ssc expects a floating-point image, got {image.dtype}")
    if int(radius) < 0 or int(dilation) < 1:
        raise ValueError(f"radius must be >= 0 and dilation >= 1, got radius={radius}, dilation={dilation}")
    radius, dilation = int(radius), int(dilation)
    ndim = image.ndim - 2
    shape = tuple(image.shape[2:])
    padded = F.pad(image, [dilation] * (2 * ndim), mode="replicate")
    distances = []
    for a, b in mind_pairs(ndim):
        shifted_a = _shift(padded, tuple(dilation * o for o in a), dilation, shape)
        shifted_b = _shift(padded, tuple(dilation * o for o in b), dilation, shape)
        distances.append((shifted_a - shifted_b).pow(2))
    d = _box_mean(torch.cat(distances, dim=1), radius)
    d = d - d.min(dim=1, keepdim=True).values
    variance = d.mean(dim=1, keepdim=True)
    reduce_dims = tuple(range(1, variance.ndim))
    mean_variance = variance.mean(dim=reduce_dims, keepdim=True)
    variance = torch.maximum(torch.minimum(variance, mean_variance * 1e3), mean_variance * 1e-3)
    variance = variance.clamp_min(torch.finfo(image.dtype).tiny)  # a constant image has v = 0
    return torch.exp(-d / variance)
