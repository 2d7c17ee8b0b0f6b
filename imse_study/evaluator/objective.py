"""The evaluator's training objective (Eq. 5 of the paper).

For a batch x of one modality, x1 = T1(x) and x2 = T2(x) under independent random affine + elastic
transforms; the evaluator sees ``(x2, noise(x1))`` and is trained to output ``x2 - x1``:

    L = || E(x2, noise(x1)) - (x2 - x1) ||_1          (Eq. 5, mean over voxels)

``noise`` is Shuffle Remap (IMSE(SR)), the Bezier histogram shift (the IMSE(BC) baseline) or nothing.
"""

from __future__ import annotations

import torch

from imse_study.augment import bezier_shift, random_spatial_displacement, shuffle_remap
from imse_study.augment.intensity import AppearanceRange, acquisition_noise, randomise_appearance
from imse_study.warp import warp


ANCHOR_SIDES = ("reference", "both")


def anchor_at_truth(d1: torch.Tensor, d2: torch.Tensor, fraction: float,
                    generator: torch.Generator, sides: str = "reference") -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor ``fraction`` of a batch of Eq. 5 displacements at the truth, as a registration meets it.

    The paper's pairs are two independent random warps of one image, so the evaluator never sees an
    aligned pair nor an unresampled reference, and its minimum can sit off the truth (a registration
    started AT the truth walks away from it). An anchored item gets ``d2 = 0`` (the reference is the
    image itself, as a registration's target) and ``d1`` scaled by ``u**2`` with ``u`` uniform in
    [0, 1], a quarter of them by 0 (an exactly aligned pair, label 0).

    ``sides="both"``: half of the anchored items swap roles, so the OTHER image is the unresampled one
    and the reference moves (``d1 = 0``, ``d2`` scaled), as when the moving image of a registration
    is of the evaluator's modality (e.g. t1 -> t2 with a T1 evaluator). ``"reference"`` draws nothing
    more than before.
    """
    batch = d1.shape[0]
    draws = torch.rand(3, batch, generator=generator, device=generator.device).to(d1.device)
    anchored = (draws[0] < fraction).view(-1, *[1] * (d1.dim() - 1))
    scale = torch.where(draws[2] < 0.25, torch.zeros_like(draws[1]), draws[1] ** 2).view_as(anchored)
    if sides == "reference":
        return torch.where(anchored, d1 * scale, d1), torch.where(anchored, torch.zeros_like(d2), d2)
    if sides != "both":
        raise ValueError(f"anchor sides must be one of {ANCHOR_SIDES}, not {sides!r}")
    swap = (torch.rand(batch, generator=generator, device=generator.device).to(d1.device) < 0.5).view_as(anchored)
    moved, still = anchored & ~swap, anchored & swap  # reference unresampled / other unresampled
    a1 = torch.where(moved, d1 * scale, torch.where(still, torch.zeros_like(d1), d1))
    a2 = torch.where(still, d2 * scale, torch.where(moved, torch.zeros_like(d2), d2))
    return a1, a2


def make_training_pair(
    x: torch.Tensor, noise: str, n_range: tuple[int, int], generator: torch.Generator,
    appearance: AppearanceRange | None = None, aligned_fraction: float = 0.0, anchor_sides: str = "reference",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 5's input and label from a batch x (B, 1, *S): ``((x2, noise(x1)), x2 - x1)``.

    With ``appearance``, x first gets a random look of its own modality (bias field, gamma, blur,
    resolution: :func:`~imse_study.augment.intensity.randomise_appearance`). Both channels are made
    from that image, so the reference x2 and the label x2 - x1 share its look: the evaluator learns
    to report errors in whatever look its reference has. Then each channel gets its own acquisition
    noise (the other channel after its remap), and the label stays the noise-free x2 - x1: noise is
    not misalignment, so an aligned pair's label stays 0. Without ``appearance`` nothing else is
    drawn from ``generator`` (the paper's pairs, unchanged).

    ``aligned_fraction`` (beyond the paper, :func:`anchor_at_truth`): that share of the batch, on
    average, is anchored at the truth as a registration sees it (``anchor_sides``: which image may stay
    unresampled, see :func:`anchor_at_truth`). 0 draws nothing more.
    """
    if appearance is not None:
        x = randomise_appearance(x, appearance, generator)
    shape, batch = tuple(x.shape[2:]), x.shape[0]
    d1 = random_spatial_displacement(shape, batch, generator=generator, device=x.device)
    d2 = random_spatial_displacement(shape, batch, generator=generator, device=x.device)
    if aligned_fraction > 0:
        d1, d2 = anchor_at_truth(d1, d2, aligned_fraction, generator, anchor_sides)
    x1, x2 = warp(x, d1), warp(x, d2)
    label = x2 - x1
    if noise == "shuffle_remap":
        noisy = shuffle_remap(x1.clamp(-1, 1), n_range=n_range, generator=generator)
    elif noise == "bezier":
        noisy = bezier_shift(x1.clamp(-1, 1), generator=generator)
    else:
        noisy = x1
    if appearance is not None:
        x2 = acquisition_noise(x2.clamp(-1, 1), appearance, generator)
        noisy = acquisition_noise(noisy.clamp(-1, 1), appearance, generator)
    return torch.cat([x2, noisy], 1), label


def evaluator_objective(prediction: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Eq. 5: the mean absolute difference between the evaluator's output ``E(x2, noise(x1))`` and
    the true misalignment ``x2 - x1`` (computed in float32, also under bfloat16 autocast)."""
    return (prediction.float() - label).abs().mean()
