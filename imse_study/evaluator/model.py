"""The IMSE evaluator network, by name: the paper's ResNet generator or the UNet option.

The networks themselves live in :mod:`imse_study.nets` (the paper's generator, section 4.2:
:class:`~imse_study.nets.generator.Evaluator`; MONAI's BasicUNet: :class:`~imse_study.nets.unet.UNetEvaluator`)
and are importable from here too. :func:`build_evaluator` picks one by name (the ``arch`` of a
checkpoint's metadata).
"""

from __future__ import annotations

from torch import nn

from imse_study.nets.generator import OUTPUT_SCALE, Evaluator, ResidualBlock
from imse_study.nets.unet import UNetEvaluator

__all__ = ["ARCHS", "OUTPUT_SCALE", "Evaluator", "ResidualBlock", "UNetEvaluator", "build_evaluator"]

ARCHS = ("resnet", "unet")


def build_evaluator(dim: int, width: int, n_blocks: int, arch: str = "resnet") -> nn.Module:
    """The evaluator network ``arch`` ("resnet": the paper's generator; "unet": :class:`UNetEvaluator`).

    ``n_blocks`` sizes the generator only.
    """
    if arch == "resnet":
        return Evaluator(dim, width, n_blocks)
    if arch == "unet":
        return UNetEvaluator(dim, width)
    raise ValueError(f"unknown evaluator architecture {arch!r}: choose one of {', '.join(ARCHS)}")
