"""imse_study: IMSE (CVPR 2023) reproduced as a tool: phantom data, evaluator, registration, study."""

import warnings as _warnings

# MONAI's Warp warns "Using PyTorch native grid_sample" each time one is built (VoxelMorph builds
# its own); the native path is what we want on CPU, so the message is noise in logs and notebooks.
_warnings.filterwarnings("ignore", message="monai.networks.blocks.Warp: Using PyTorch native grid_sample")
