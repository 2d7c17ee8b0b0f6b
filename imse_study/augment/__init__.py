"""Augmentations: random spatial transforms (affine + elastic) and intensity remaps (Shuffle Remap,
Bezier shift) for evaluator training (paper sections 3.1, 3.3 and 4.1)."""

from imse_study.augment.intensity import bezier_shift, shuffle_remap
from imse_study.augment.spatial import random_spatial_displacement, random_spatial_transform

__all__ = ["shuffle_remap", "bezier_shift", "random_spatial_displacement", "random_spatial_transform"]
