"""An evaluator with MONAI's BasicUNet inside: an option beside the paper's generator (``arch="unet"``)."""

from __future__ import annotations

import torch
from torch import nn

from imse_study.nets.generator import OUTPUT_SCALE, layers_for

__all__ = ["UNetEvaluator"]


class UNetEvaluator(nn.Module):
    """E(reference, other) as :class:`~imse_study.nets.generator.Evaluator`, with MONAI's BasicUNet inside.

    Skip connections carry full-resolution detail to the output, which the generator has to rebuild
    from a quarter-resolution bottleneck. Four max-pool levels with features ``(w, w, 2w, 4w, 8w, w)``
    for ``width = w`` (width 16: about the parameters of the generator with width 16 and 6 blocks),
    instance normalisation, tanh output scaled by :data:`~imse_study.nets.generator.OUTPUT_SCALE`.
    BasicUNet pads odd sizes at each level, so any size that the generator accepts (divisible by 4) works.
    """

    def __init__(self, dim: int = 2, width: int = 16, in_channels: int = 2) -> None:
        super().__init__()
        from monai.networks.nets import BasicUNet

        layers_for(dim)  # the same check of ``dim`` as the generator
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
