"""The networks of the package: the paper's ResNet generator (evaluator, translators), the UNet
evaluator option, the PatchGAN discriminator, VoxelMorph, and the padding they need.

The training and use of each live with its task (:mod:`imse_study.evaluator`,
:mod:`imse_study.baselines`, :mod:`imse_study.registration`); the networks here hold no state but
their weights, so their ``state_dict`` keys are those of every shipped checkpoint.

Names are loaded on first use (PEP 562), so that ``import imse_study.nets.padding`` or the
evaluator's generator does not import MONAI's networks.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Discriminator": "discriminator",
    "OUTPUT_SCALE": "generator",
    "Evaluator": "generator",
    "ResidualBlock": "generator",
    "ResnetGenerator": "generator",
    "Translator": "generator",
    "SIZE_MULTIPLE": "padding",
    "pad_to_multiple": "padding",
    "padded_shape": "padding",
    "UNetEvaluator": "unet",
    "REGISTRATION_MULTIPLE": "voxelmorph",
    "RegistrationNet": "voxelmorph",
    "registration_net": "voxelmorph",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
