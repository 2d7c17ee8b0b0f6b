"""Padding images to the side lengths the networks need, and cropping the result back.

The ResNet generator (evaluator, translators) halves the image twice, so every spatial side must
be divisible by :data:`SIZE_MULTIPLE` = 4; VoxelMorph needs 8
(:data:`imse_study.nets.voxelmorph.REGISTRATION_MULTIPLE`). One rule for all callers: pad
symmetrically (the odd voxel after) with edge values (``torch.nn.functional.pad``, mode
``replicate``), run the network, crop with the returned slices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["SIZE_MULTIPLE", "pad_to_multiple", "padded_shape"]

SIZE_MULTIPLE = 4  # two stride-2 downsamplings


def padded_shape(spatial: Sequence[int], multiple: int = SIZE_MULTIPLE) -> tuple[int, ...]:
    """Each side of ``spatial`` rounded up to a multiple of ``multiple``."""
    return tuple(int(s) + (-int(s)) % multiple for s in spatial)


def pad_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """``x`` (B, C, *S) padded so that every side is a multiple of ``multiple``, and the slices of
    the spatial axes that crop a result of the padded shape back to ``S``.

    Symmetric edge padding (``e // 2`` before, the rest after); ``x`` itself when no side needs
    padding. Differentiable. Crop with ``y[(slice(None), slice(None), *crop)]``.
    """
    spatial = tuple(x.shape[2:])
    extra = [p - s for p, s in zip(padded_shape(spatial, multiple), spatial)]
    pad: list[int] = []
    for e in reversed(extra):  # F.pad takes the last axis first
        pad += [e // 2, e - e // 2]
    crop = tuple(slice(e // 2, e // 2 + s) for e, s in zip(extra, spatial))
    return (F.pad(x, pad, mode="replicate") if any(extra) else x), crop
