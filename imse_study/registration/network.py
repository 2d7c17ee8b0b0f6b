"""The learned registration network: MONAI's VoxelMorph (Balakrishnan et al. 2019), 2D and 3D.

The paper (section 4.2) uses one VoxelMorph for every similarity, with features
[16, 32, 32, 32, 32] / [32, 32, 32, 32, 16, 16]. MONAI's ``VoxelMorphUNet`` with channels
(16, 32, 32, 32, 32, 32) and final convolutions (16, 16) is that network with three pooling levels
instead of four, so that image sides need only be divisible by 8 (the quick phantom is 120 px).
``integration_steps > 0`` gives the diffeomorphic variant (scaling and squaring of a stationary
velocity field). The network predicts a displacement in voxels in the convention of
:func:`imse_study.warp.warp`.
"""

from __future__ import annotations

import warnings

import torch
from monai.networks.nets import VoxelMorph, VoxelMorphUNet
from torch import nn

UNET_CHANNELS = (16, 32, 32, 32, 32, 32)
FINAL_CONV_CHANNELS = (16, 16)


class RegistrationNet(nn.Module):
    """``net(moving, target) -> displacement`` (B, ndim, *S); wraps MONAI's VoxelMorph."""

    def __init__(self, dim: int = 2, integration_steps: int = 0) -> None:
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"the registration network is 2D or 3D, not {dim}D")
        self.dim, self.integration_steps = dim, integration_steps
        backbone = VoxelMorphUNet(
            spatial_dims=dim, in_channels=2, unet_out_channels=32, channels=UNET_CHANNELS,
            final_conv_channels=FINAL_CONV_CHANNELS,
        )
        with warnings.catch_warnings():  # MONAI's Warp says "Using PyTorch native grid_sample" when built
            warnings.filterwarnings("ignore", message=".*Using PyTorch native grid_sample")
            self.voxelmorph = VoxelMorph(backbone=backbone, integration_steps=integration_steps, spatial_dims=dim)
        # VoxelMorph starts from a near-zero field: small weights on the last convolution.
        last = backbone.net[-1][-1].conv
        nn.init.normal_(last.weight, std=1e-5)
        nn.init.zeros_(last.bias)

    def forward(self, moving: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bad = [s for s in moving.shape[2:] if s % 8]
        if bad:
            raise ValueError(f"image sides must be divisible by 8 for the registration network, got {tuple(moving.shape[2:])}")
        _, displacement = self.voxelmorph(moving, target)
        return displacement
