"""The learned registration network (VoxelMorph), defined in :mod:`imse_study.nets.voxelmorph`."""

from imse_study.nets.voxelmorph import FINAL_CONV_CHANNELS, UNET_CHANNELS, RegistrationNet

__all__ = ["FINAL_CONV_CHANNELS", "UNET_CHANNELS", "RegistrationNet"]
