"""The paper's Algorithm 1 as written: a plain Python loop over segments, one sample at a time.

This is the reference the vectorised ``imse_study.augment.shuffle_remap`` is tested and timed
against (``tests/test_shuffle_remap.py``, ``benchmarks/shuffle_remap.py``). It keeps Algorithm 1's
``(min1 <= X) & (X < max1)`` test, so ``X == 1`` stays 0 here.
"""

from __future__ import annotations

import random

import torch


def algorithm1_fixed(x: torch.Tensor, dist: torch.Tensor, shuffle: torch.Tensor) -> torch.Tensor:
    """Algorithm 1's remapping loop for one image, given control points ``dist`` (with -1 and 1)
    and the permutation ``shuffle`` of the ``len(dist) - 1`` segments (Eq. 8)."""
    new_x = torch.zeros_like(x)
    for i in range(shuffle.numel()):
        target_part = shuffle[i]
        min1, max1 = dist[i], dist[i + 1]
        min2, max2 = dist[target_part], dist[target_part + 1]
        coord = torch.where((min1 <= x) & (x < max1))
        new_x[coord] = ((x[coord] - min1) / (max1 - min1)) * (max2 - min2) + min2
    return new_x


def algorithm1(x: torch.Tensor, r_min: int = 2, r_max: int = 50) -> torch.Tensor:
    """Algorithm 1 for one image, drawing its own random numbers as the pseudocode does."""
    control_point = random.randint(r_min, r_max)
    dist = torch.rand(control_point) * (1 - (-1)) + (-1)
    dist, _ = torch.sort(dist)
    dist = torch.cat([torch.tensor([-1.0]), dist])
    dist = torch.cat([dist, torch.tensor([1.0])])
    shuffle = torch.randperm(control_point + 1)
    return algorithm1_fixed(x, dist, shuffle)


def reference_batch(x: torch.Tensor, r_min: int = 2, r_max: int = 50) -> torch.Tensor:
    """Algorithm 1 applied per sample of a batch in a Python loop (the baseline of the benchmark)."""
    return torch.stack([algorithm1(sample, r_min, r_max) for sample in x])


def reference_with_params(x: torch.Tensor, params) -> torch.Tensor:
    """Algorithm 1's loop per sample with the control points and permutations of ``params``
    (an ``imse_study.augment.intensity.ShuffleRemapParams``), for equality tests."""
    out = torch.stack([
        algorithm1_fixed(sample, params.control_points(b).to(sample.dtype), params.permutation(b))
        for b, sample in enumerate(x)
    ])
    sign = torch.where(params.invert, -1.0, 1.0).to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
    return out * sign
