"""VoxelMorph (Balakrishnan et al. 2019), from MONAI, for learned registration and for RegGAN.

* :class:`RegistrationNet`: the paper's learned registration network (section 4.2), one VoxelMorph
  for every similarity, with features [16, 32, 32, 32, 32] / [32, 32, 32, 32, 16, 16]. MONAI's
  ``VoxelMorphUNet`` with channels (16, 32, 32, 32, 32, 32) and final convolutions (16, 16) is that
  network with three pooling levels instead of four, so that image sides need only be divisible by
  8 (the quick phantom is 120 px). ``integration_steps > 0`` gives the diffeomorphic variant
  (scaling and squaring of a stationary velocity field).
* :func:`registration_net`: RegGAN's correction network (Kong et al. 2021), a bare
  ``VoxelMorphUNet`` of given widths.

Both predict a displacement in voxels in the convention of :func:`imse_study.warp.warp`, and both
start near the identity: the output convolution gets N(0, 1e-5) weights and zero bias, as in VoxelMorph.
"""

from __future__ import annotations

import warnings

import torch
from monai.networks.nets import VoxelMorph, VoxelMorphUNet
from torch import nn

__all__ = ["FINAL_CONV_CHANNELS", "REGISTRATION_MULTIPLE", "UNET_CHANNELS", "RegistrationNet", "registration_net"]

UNET_CHANNELS = (16, 32, 32, 32, 32, 32)
FINAL_CONV_CHANNELS = (16, 16)
REGISTRATION_MULTIPLE = 8  # three pooling levels: image sides divisible by 2^3


def _start_near_identity(unet: VoxelMorphUNet) -> None:
    """N(0, 1e-5) weights and zero bias on the output convolution: a near-zero first displacement."""
    out = unet.net[1].final_conv_out.conv
    nn.init.normal_(out.weight, 0.0, 1e-5)
    nn.init.zeros_(out.bias)


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
        _start_near_identity(backbone)

    def forward(self, moving: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bad = [s for s in moving.shape[2:] if s % REGISTRATION_MULTIPLE]
        if bad:
            raise ValueError(f"image sides must be divisible by {REGISTRATION_MULTIPLE} for the registration network, "
                             f"got {tuple(moving.shape[2:])}")
        _, displacement = self.voxelmorph(moving, target)
        return displacement


def registration_net(dim: int, channels: tuple[int, ...], final: tuple[int, ...]) -> nn.Module:
    """MONAI's ``VoxelMorphUNet``: ``cat([moving, fixed], 1)`` -> displacement (B, dim, *S) in voxels.

    ``channels`` pairs the encoder/decoder widths (VoxelMorph-1 is ``(16, 32, 32, 32, 32, 32)``),
    ``final`` the widths of the convolutions after the UNet. Starts near the identity transform.
    """
    net = VoxelMorphUNet(dim, 2, channels[0], channels, final)
    _start_near_identity(net)
    return net
