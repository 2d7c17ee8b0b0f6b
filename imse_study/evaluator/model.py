"""The IMSE evaluator network: the ResNet generator of CycleGAN (Zhu et al. 2017), in 2D and 3D.

The paper (section 4.2) uses CycleGAN's ResNet generator for the evaluator: a reflect-padded 7x7
convolution, two stride-2 downsamplings, ``n_blocks`` residual blocks, two upsamplings, a 7x7
convolution and tanh, with instance normalisation. MONAI has no such generator, so it is written
here, compactly, for any number of spatial dimensions. Two input channels (reference, other), one
output channel. The output is scaled by :data:`OUTPUT_SCALE` (see :class:`Evaluator`).

Beside it, :class:`UNetEvaluator` (an option, not the paper's) wraps MONAI's BasicUNet: skip
connections carry full-resolution detail to the output, which the generator has to rebuild from a
quarter-resolution bottleneck. :func:`build_evaluator` picks one by name (the ``arch`` of a
checkpoint's metadata).
"""

from __future__ import annotations

import torch
from torch import nn

# Eq. 5's label x2 - x1 lies in [-2, 2] for images in [-1, 1]; tanh covers [-1, 1], so the
# network's output is multiplied by 2 and the evaluator predicts x2 - x1 in image units.
OUTPUT_SCALE = 2.0


def _layers(dim: int) -> dict[str, type[nn.Module]]:
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
        L = _layers(dim)
        self.body = nn.Sequential(
            L["pad"](1), L["conv"](channels, channels, 3), L["norm"](channels), nn.ReLU(inplace=True),
            L["pad"](1), L["conv"](channels, channels, 3), L["norm"](channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Evaluator(nn.Module):
    """E(reference, other) -> predicted ``reference - other_as_if_in_the_reference_modality``.

    Call it as ``E(reference, other)`` with tensors (B, 1, *S) in [-1, 1], or ``E(pair)`` with the
    two stacked as channels (B, 2, *S). Each spatial size must be divisible by 4.
    """

    def __init__(self, dim: int = 2, width: int = 64, n_blocks: int = 9, in_channels: int = 2) -> None:
        super().__init__()
        L = _layers(dim)
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

    def forward(self, reference: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        x = reference if other is None else torch.cat([reference, other], dim=1)
        return OUTPUT_SCALE * self.net(x)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class UNetEvaluator(nn.Module):
    """E(reference, other) as :class:`Evaluator`, with MONAI's BasicUNet inside (``arch="unet"``).

    Four max-pool levels with features ``(w, w, 2w, 4w, 8w, w)`` for ``width = w`` (width 16: about
    the parameters of the generator with width 16 and 6 blocks), instance normalisation, tanh output
    scaled by :data:`OUTPUT_SCALE`. BasicUNet pads odd sizes at each level, so any size that the
    generator accepts (divisible by 4) works.
    """

    def __init__(self, dim: int = 2, width: int = 16, in_channels: int = 2) -> None:
        super().__init__()
        from monai.networks.nets import BasicUNet

        _layers(dim)  # the same check of ``dim`` as the generator
        self.dim, self.width, self.n_blocks = dim, width, 0
        w = width
        self.net = BasicUNet(spatial_dims=dim, in_channels=in_channels, out_channels=1,
                             features=(w, w, 2 * w, 4 * w, 8 * w, w), norm=("instance", {"affine": True}))

    def forward(self, reference: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        x = reference if other is None else torch.cat([reference, other], dim=1)
        return OUTPUT_SCALE * torch.tanh(self.net(x))

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


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
