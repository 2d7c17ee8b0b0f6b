"""CycleGAN's ResNet generator (Zhu et al. 2017), in 2D and 3D, and the two networks built on it.

The paper (section 4.2) uses this generator for the evaluator and for the GAN baselines: a
reflect-padded 7x7 convolution, two stride-2 downsamplings, ``n_blocks`` residual blocks, two
upsamplings, a 7x7 convolution and tanh, with instance normalisation. MONAI has no such generator,
so it is written here, compactly, for any number of spatial dimensions. Each spatial size must be
divisible by 4 (:data:`imse_study.nets.padding.SIZE_MULTIPLE`; :func:`~imse_study.nets.padding.pad_to_multiple`).

* :class:`Evaluator`: two input channels (reference, other), output scaled by :data:`OUTPUT_SCALE`;
* :class:`Translator`: one input channel, the tanh output as is (the CycleGAN / RegGAN generator).

Both keep the layers in ``self.net`` (state_dict keys ``net.<i>....``), the layout every shipped
checkpoint was saved with.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["OUTPUT_SCALE", "Evaluator", "ResidualBlock", "ResnetGenerator", "Translator", "layers_for"]

# Eq. 5's label x2 - x1 lies in [-2, 2] for images in [-1, 1]; tanh covers [-1, 1], so the
# evaluator's output is multiplied by 2 and it predicts x2 - x1 in image units.
OUTPUT_SCALE = 2.0


def layers_for(dim: int) -> dict[str, type[nn.Module]]:
    """The convolution, transposed convolution, instance norm and reflection pad of ``dim`` (2 or 3)."""
    if dim not in (2, 3):
        raise ValueError(f"the evaluator is 2D or 3D, not {dim}D")
    return {
        "conv": nn.Conv2d if dim == 2 else nn.Conv3d,
        "deconv": nn.ConvTranspose2d if dim == 2 else nn.ConvTranspose3d,
        "norm": nn.InstanceNorm2d if dim == 2 else nn.InstanceNorm3d,
        "pad": nn.ReflectionPad2d if dim == 2 else nn.ReflectionPad3d,
    }


class ResidualBlock(nn.Module):
    """x + (pad, conv3, norm, relu, pad, conv3, norm)(x)."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        L = layers_for(dim)
        self.body = nn.Sequential(
            L["pad"](1), L["conv"](channels, channels, 3), L["norm"](channels), nn.ReLU(inplace=True),
            L["pad"](1), L["conv"](channels, channels, 3), L["norm"](channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator: (B, in_channels, *S) -> (B, 1, *S) in [-1, 1] (tanh)."""

    def __init__(self, dim: int = 2, width: int = 64, n_blocks: int = 9, in_channels: int = 1) -> None:
        super().__init__()
        L = layers_for(dim)
        self.dim, self.width, self.n_blocks = dim, width, n_blocks
        w = width
        layers: list[nn.Module] = [L["pad"](3), L["conv"](in_channels, w, 7), L["norm"](w), nn.ReLU(inplace=True)]
        for mult in (1, 2):  # two stride-2 downsamplings
            layers += [L["conv"](w * mult, w * mult * 2, 3, stride=2, padding=1), L["norm"](w * mult * 2), nn.ReLU(inplace=True)]
        layers += [ResidualBlock(w * 4, dim) for _ in range(n_blocks)]
        for mult in (4, 2):  # two upsamplings
            layers += [
                L["deconv"](w * mult, w * mult // 2, 3, stride=2, padding=1, output_padding=1),
                L["norm"](w * mult // 2), nn.ReLU(inplace=True),
            ]
        layers += [L["pad"](3), L["conv"](w, 1, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class Evaluator(ResnetGenerator):
    """E(reference, other) -> predicted ``reference - other_as_if_in_the_reference_modality``.

    Call it as ``E(reference, other)`` with tensors (B, 1, *S) in [-1, 1], or ``E(pair)`` with the
    two stacked as channels (B, 2, *S). Each spatial size must be divisible by 4.
    """

    def __init__(self, dim: int = 2, width: int = 64, n_blocks: int = 9, in_channels: int = 2) -> None:
        super().__init__(dim, width, n_blocks, in_channels)

    def forward(self, reference: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        x = reference if other is None else torch.cat([reference, other], dim=1)
        return OUTPUT_SCALE * self.net(x)


class Translator(ResnetGenerator):
    """The GAN baselines' generator mapping one image (B, 1, *S) to (B, 1, *S) in [-1, 1].

    The evaluator's network with one input channel and without the evaluator's factor 2. Each
    spatial size must be divisible by 4 (:func:`imse_study.baselines.translator.translate_with` pads).
    """

    def __init__(self, dim: int = 2, width: int = 64, n_blocks: int = 9) -> None:
        super().__init__(dim, width, n_blocks, in_channels=1)
        self.meta: Any = None  # the TranslatorMeta that load_translator sets
