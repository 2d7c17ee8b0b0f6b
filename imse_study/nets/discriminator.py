"""The GAN baselines' discriminator: the 70 x 70 PatchGAN of pix2pix / CycleGAN (Isola et al. 2017)."""

from __future__ import annotations

import torch
from monai.networks.nets import PatchDiscriminator
from torch import nn

__all__ = ["Discriminator"]


class Discriminator(nn.Module):
    """PatchGAN (Isola et al. 2017, CycleGAN's discriminator): a map of real/fake scores per patch.

    MONAI's ``PatchDiscriminator`` (it returns every intermediate feature map; only the last, the
    score map, is kept), instance norm and biases as in CycleGAN, N(0, 0.02) initial weights.
    ``n_layers=3`` is CycleGAN's 70 x 70 PatchGAN.
    """

    def __init__(self, dim: int = 2, width: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        self.net = PatchDiscriminator(dim, width, in_channels=1, num_layers_d=n_layers, norm="INSTANCE", bias=True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)[-1]
