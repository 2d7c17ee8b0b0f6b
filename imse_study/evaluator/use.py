"""Using a trained evaluator: error maps, the IMSE loss, translation, and a spatial-error score.

Convention (docs/architecture.md): ``E(reference, other)``; channel 0 is an image in the modality the
evaluator was trained on, channel 1 an image of any distribution. ``E`` predicts
``reference - other_as_if_in_the_reference_modality`` (Eq. 5), so it is zero where the two are
aligned.
"""

from __future__ import annotations

import torch

from imse_study.nets.generator import OUTPUT_SCALE
from imse_study.nets.padding import SIZE_MULTIPLE
from imse_study.training import unwrap

RANGE_TOLERANCE = 0.05  # values beyond [-1.05, 1.05] mean the images were not scaled to [-1, 1]


def check_pair(evaluator: torch.nn.Module, reference: torch.Tensor, other: torch.Tensor) -> None:
    """Raise a clear ValueError unless the two images can be fed to ``evaluator``."""
    for name, x in (("reference", reference), ("other", other)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor (B, 1, *S), not {type(x).__name__}")
        if x.dim() not in (4, 5) or x.shape[1] != 1:
            raise ValueError(f"{name} must have shape (B, 1, H, W) or (B, 1, D, H, W), got {tuple(x.shape)}")
        if x.numel() == 0:
            raise ValueError(f"{name} is empty")
        if not torch.isfinite(x.detach()).all():
            raise ValueError(f"{name} holds NaN or inf values; fill or mask them first")
        lo, hi = float(x.detach().min()), float(x.detach().max())
        if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            raise ValueError(
                f"{name} has values in [{lo:.3g}, {hi:.3g}]; the evaluator expects images scaled to [-1, 1] "
                "(imse_study.data.normalise: normalise_mr / normalise_ct)"
            )
    if reference.shape != other.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and other {tuple(other.shape)} differ in shape; "
                         "resample one onto the other's grid first")
    dim = reference.dim() - 2
    model_dim = getattr(unwrap(evaluator), "dim", dim)
    if model_dim != dim:
        raise ValueError(f"this evaluator was trained in {model_dim}D and cannot be applied to {dim}D images")
    bad = [s for s in reference.shape[2:] if s % SIZE_MULTIPLE]
    if bad:
        raise ValueError(f"every spatial size must be divisible by {SIZE_MULTIPLE} (two stride-2 levels; pad with "
                         f"imse_study.nets.pad_to_multiple), got {tuple(reference.shape[2:])}")


def error_map(evaluator: torch.nn.Module, reference: torch.Tensor, other: torch.Tensor, check: bool = True) -> torch.Tensor:
    """The pixel-wise spatial error E(reference, other), shape (B, 1, *S), in image units."""
    if check:
        check_pair(evaluator, reference, other)
    return evaluator(reference, other)


def imse_loss(
    evaluator: torch.nn.Module,
    reference: torch.Tensor,
    other: torch.Tensor,
    mask: torch.Tensor | None = None,
    check: bool = True,
) -> torch.Tensor:
    """Mean |E(reference, other)| (Eq. 6), optionally inside ``mask``; differentiable in both images."""
    err = error_map(evaluator, reference, other, check=check).abs()
    if mask is None:
        return err.mean()
    mask = mask.to(err.dtype).expand_as(err)
    return (err * mask).sum() / mask.sum().clamp_min(1.0)


def translate(evaluator: torch.nn.Module, reference: torch.Tensor, source: torch.Tensor, check: bool = True) -> torch.Tensor:
    """Section 4.4: ``reference - E(reference, source)``: the source's anatomy in the reference's contrast."""
    return (reference - error_map(evaluator, reference, source, check=check)).clamp(-1.0, 1.0)


def foreground_mask(image: torch.Tensor, threshold: float = -0.9) -> torch.Tensor:
    """Voxels brighter than ``threshold`` (images in [-1, 1]; air sits at -1)."""
    return image > threshold


def spatial_error_score(
    evaluator: torch.nn.Module,
    reference: torch.Tensor,
    other: torch.Tensor,
    reference_mask: torch.Tensor | None = None,
    other_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Section 4.5: ``1 - mean |E|`` inside the union of the two masks, per batch item, in [0, 1].

    |E| is divided by its largest possible value (2) so the score stays in [0, 1]. The paper then
    normalises the scores over a test set; that affine rescaling changes no correlation
    coefficient, so it is left to the analysis. Masks default to :func:`foreground_mask`.
    """
    with torch.no_grad():
        err = error_map(evaluator, reference, other).abs() / OUTPUT_SCALE
    ref_mask = foreground_mask(reference) if reference_mask is None else reference_mask.bool()
    oth_mask = foreground_mask(other) if other_mask is None else other_mask.bool()
    union = (ref_mask | oth_mask).to(err.dtype)
    dims = tuple(range(1, err.dim()))
    mean = (err * union).sum(dims) / union.sum(dims).clamp_min(1.0)
    return 1.0 - mean
