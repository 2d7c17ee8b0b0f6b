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


def make_training_pair(
    x: torch.Tensor, noise: str, n_range: tuple[int, int], generator: torch.Generator,
    appearance: AppearanceRange | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 5's input and label from a batch x (B, 1, *S): ``((x2, noise(x1)), x2 - x1)``.

    With ``appearance``, x first gets a random look of its own modality (bias field, gamma, blur,
    resolution: :func:`~imse_study.augment.intensity.randomise_appearance`). Both channels are made
    from that image, so the reference x2 and the label x2 - x1 share its look: the evaluator learns
    to report errors in whatever look its reference has. Then each channel gets its own acquisition
    noise (the other channel after its remap), and the label stays the noise-free x2 - x1: noise is
    not misalignment, so an aligned pair's label stays 0. Without ``appearance`` nothing else is
    drawn from ``generator`` (the paper's pairs, unchanged).
    """
    if appearance is not None:
        x = randomise_appearance(x, appearance, generator)
    shape, batch = tuple(x.shape[2:]), x.shape[0]
    x1 = warp(x, random_spatial_displacement(shape, batch, generator=generator, device=x.device))
    x2 = warp(x, random_spatial_displacement(shape, batch, generator=generator, device=x.device))
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
