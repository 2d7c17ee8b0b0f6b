"""The paper's metrics: overlap of label maps (Dice, HD95; Tables 2, 3), smoothness and folding of
displacement fields (||grad phi||_2, Jacobian determinant), and image similarity of translations
(NMAE, PSNR, SSIM; Table 5). See :mod:`.overlap`, :mod:`.field` and :mod:`.image`.
"""

from imse_study.metrics.field import (
    gradient_loss,
    gradient_smoothness,
    jacobian_determinant,
    log_jacobian_std,
    nonpositive_jacobian_fraction,
)
from imse_study.metrics.image import DATA_RANGE, image_quality, image_quality_per_item
from imse_study.metrics.overlap import dice, hd95

__all__ = [
    "DATA_RANGE",
    "dice",
    "gradient_loss",
    "gradient_smoothness",
    "hd95",
    "image_quality",
    "image_quality_per_item",
    "jacobian_determinant",
    "log_jacobian_std",
    "nonpositive_jacobian_fraction",
]
