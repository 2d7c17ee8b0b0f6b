"""Hardening IMSE against free-form warps that fool its evaluator.

An evaluator trained as in the paper ranks aligned vs misaligned pairs well, but a free-form field
optimised against it finds warps that it scores lower than the true alignment
(:mod:`~imse_study.study.diagnostic` measures this on the phantom, where the truth is
known). This module holds the variants tried against that, each usable as a similarity or as a set
of optimiser options:

- :class:`~imse_study.losses.similarity.WeightedSum` — IMSE plus a hand-crafted multi-modal term
  (MIND or MI), ``sum w_i L_i``;
- coarser / more regularised transform models: plain optimiser options
  (``grid_spacing``, ``smooth_weight``, ``levels``) in :func:`hardening_variants`;
- :class:`MultiScale` — the mean of a similarity over an image pyramid (average pooling);
- :func:`finetune_hard_negatives` — a short fine-tuning of a copy of an evaluator on Eq. 5 pairs
  whose second image was warped by a free-form field found by minimising the current evaluator's
  |E| (the warps a registration would find), labelled with their true error ``x2 - x1``.

:func:`robust_similarity` builds the variant that the diagnostic measured best (``imse_robust``,
registered in :func:`~imse_study.losses.similarity.similarity`, so
:func:`~imse_study.registration.methods.classic_registrar` runs it like any other loss).

Measured (``python -m imse_study.study.diagnostic --direction DIR --pairs 8
--variants ...``, 2D quick phantom, 8 test pairs per direction, 200 iterations, multires, shipped
evaluators), Dice after affine -> after affine + deformable:

- ct->t1: IMSE 0.771 -> 0.793, MIND 0.734 -> 0.788, MI 0.762 -> 0.733, IMSE + MIND (1:1)
  0.782 -> 0.829 (the best row), coarse 0.776 -> 0.799, two-scale 0.793 -> 0.793.
- t1->t2: IMSE 0.419 -> 0.502, MIND 0.755 -> 0.873, MI 0.791 -> 0.886, IMSE + MIND 0.520 ->
  0.695, coarse 0.450 -> 0.458, two-scale 0.462 -> 0.439, eroded-foreground mask 0.450 -> 0.429
  (ct->t1: 0.386 -> 0.392),
  hard-negative fine-tuning (100 steps) 0.465 -> 0.467.

On t1->t2 the T1-trained evaluator's minimum is off already for the affine stage (end-point error
3.1 px after it, vs 0.8-1.1 px for MI and MIND), so no transform model can repair it; adding MIND
pulls the solution most of the way back. The mask made things worse (the field moves content out
of it). Every loss, MI and MIND included, scores its solution a little below the truth (noise and
interpolation), so the size of the margin and the end-point error matter, not the "fooled" flag.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from imse_study.losses.similarity import (
    Similarity,
    SimilarityLike,
    WeightedSum,
    imse_robust,
    similarity,
)
from imse_study.registration.variants import Variant
from imse_study.warp import warp

__all__ = [
    "InnerMask",
    "MultiScale",
    "WeightedSum",
    "finetune_hard_negatives",
    "hardening_variants",
    "robust_similarity",
]


class MultiScale(Similarity):
    """Mean of ``similarity`` over the images average-pooled by each factor in ``scales``.

    Scale 1 is the images themselves. For IMSE every pooled size must stay divisible by 4 (the
    evaluator's two stride-2 levels): 120 px allows scales 1 and 2. The mask, if any, is pooled too
    and thresholded at 0.5.
    """

    name = "multiscale"

    def __init__(self, similarity: SimilarityLike, scales: Sequence[int] = (1, 2)) -> None:
        if not callable(similarity):
            raise ValueError(f"similarity must be callable, got {type(similarity).__name__}")
        scales = [int(s) for s in scales]
        if not scales or min(scales) < 1:
            raise ValueError(f"scales must be positive integers, got {scales}")
        super().__init__()
        self.similarity, self.scales = similarity, scales

    def loss(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        pool = F.avg_pool2d if warped.ndim == 4 else F.avg_pool3d
        total = 0.0
        for s in self.scales:
            if s == 1:
                total = total + self.similarity(warped, target, mask)
                continue
            if any(n % s for n in warped.shape[2:]):
                raise ValueError(f"scale {s} does not divide the image size {tuple(warped.shape[2:])}")
            m = None if mask is None else (pool(mask.float(), s) > 0.5).to(warped.dtype)
            total = total + self.similarity(pool(warped, s), pool(target, s), m)
        return total / len(self.scales)

    def __repr__(self) -> str:
        return f"MultiScale({self.similarity!r}, scales={self.scales})"


class InnerMask(Similarity):
    """``similarity`` restricted to the target's foreground eroded by ``erode`` voxels.

    The foreground is ``target > threshold`` (air sits at -1); the erosion drops the outer band of
    the head, where the phantom's T1-trained evaluator reports error on aligned T1/T2 pairs (the
    bright ring is scalp fat on T1, CSF on T2). A mask passed by the caller is combined with it.
    """

    name = "inner_mask"

    def __init__(self, similarity: SimilarityLike, erode: int = 6, threshold: float = -0.9) -> None:
        if not callable(similarity):
            raise ValueError(f"similarity must be callable, got {type(similarity).__name__}")
        if int(erode) < 0:
            raise ValueError(f"erode must be >= 0 voxels, got {erode}")
        super().__init__()
        self.similarity, self.erode, self.threshold = similarity, int(erode), float(threshold)

    def inner(self, target: torch.Tensor) -> torch.Tensor:
        """The eroded foreground (B, 1, *S) as 0/1 of the target's dtype."""
        fg = (target > self.threshold).to(target.dtype)
        if self.erode:
            pool = F.max_pool2d if target.ndim == 4 else F.max_pool3d
            fg = 1.0 - pool(1.0 - fg, 2 * self.erode + 1, stride=1, padding=self.erode)
        return fg

    def loss(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        inner = self.inner(target.detach())
        if mask is not None:
            inner = inner * mask
        return self.similarity(warped, target, inner)

    def __repr__(self) -> str:
        return f"InnerMask({self.similarity!r}, erode={self.erode})"


# ----------------------------------------------------------------------------------------------
# The named variant
# ----------------------------------------------------------------------------------------------

#: ``imse_robust`` under the name the diagnostic gives it: ``imse_weight * IMSE + mind_weight * MIND``
#: (see the module docstring), the same loss as ``similarity("imse_robust", ...)``.
robust_similarity = imse_robust


def hardening_variants(
    moving_modality: str,
    target_modality: str,
    evaluator: Any = None,
    names: Sequence[str] | None = None,
    finetuned: str | Path | None = None,
) -> dict:
    """The hardening variants by name, as :class:`~imse_study.registration.variants.Variant` objects.

    ``mi``, ``mind`` (references), ``imse`` (the paper's evaluator, default options),
    ``imse+mind`` (weighted sum 1:1), ``imse_coarse`` (control spacing 16 px, 2 levels, smoothness
    weight 20), ``imse_multiscale`` (scales 1 and 2), ``imse_inner`` (IMSE inside the target's foreground eroded
    by 6 px), ``imse_robust`` (the named variant), and,
    with ``finetuned`` (an evaluator checkpoint from :func:`finetune_hard_negatives`),
    ``imse_hardneg``. ``names`` picks a subset (in that order).
    """
    from imse_study.registration.methods import default_evaluator

    ev = evaluator or default_evaluator(moving_modality, target_modality)
    mods = {"moving_modality": moving_modality, "target_modality": target_modality}

    def imse(e=ev):
        return similarity("imse", evaluator=e, **mods)

    builders = {
        "mi": lambda: Variant("mi"),
        "mind": lambda: Variant("mind"),
        "imse": lambda: Variant(imse()),
        "imse+mind": lambda: Variant(robust_similarity(ev, **mods)),  # the 1:1 sum that became imse_robust
        "imse_coarse": lambda: Variant(imse(), {"grid_spacing": 16, "levels": 2, "smooth_weight": 20.0}),
        "imse_multiscale": lambda: Variant(MultiScale(imse(), (1, 2))),
        "imse_inner": lambda: Variant(InnerMask(imse(), erode=6)),
        "imse_robust": lambda: Variant(robust_similarity(ev, **mods)),
    }
    if finetuned is not None:
        builders["imse_hardneg"] = lambda: Variant(imse(str(finetuned)))
    names = list(builders) if names is None else list(names)
    unknown = [n for n in names if n not in builders]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {list(builders)}"
                         + ("" if finetuned is not None else " (imse_hardneg needs finetuned=...)"))
    return {n: builders[n]() for n in names}


# ----------------------------------------------------------------------------------------------
# (e) Hard negatives: warps found against the evaluator itself
# ----------------------------------------------------------------------------------------------


def _adversarial_warp(model: torch.nn.Module, reference: torch.Tensor, other: torch.Tensor, steps: int,
                      lr: float, spacing: int, generator: torch.Generator) -> torch.Tensor:
    """A free-form field (control grid every ``spacing`` px, linear) minimising mean |E(reference, warp(other))|."""
    from imse_study.registration.optimise import _grid_shape, upsample_control_grid

    shape = tuple(reference.shape[2:])
    grid = _grid_shape(shape, spacing)
    control = (0.5 * torch.randn(reference.shape[0], len(shape), *grid, generator=generator)).requires_grad_(True)
    optimiser = torch.optim.Adam([control], lr=lr)
    for _ in range(int(steps)):
        optimiser.zero_grad(set_to_none=True)
        loss = model(reference, warp(other, upsample_control_grid(control, shape))).abs().mean()
        loss.backward()
        optimiser.step()
    return upsample_control_grid(control.detach(), shape)


def finetune_hard_negatives(
    evaluator: str | Path | torch.nn.Module,
    out: str | Path,
    steps: int = 200,
    hard_every: int = 2,
    attack_steps: int = 8,
    attack_lr: float = 1.0,
    attack_spacing: int = 4,
    batch_size: int | None = None,
    lr: float = 1e-4,
    profile: str = "quick",
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Fine-tune a copy of ``evaluator`` with hard negatives; returns the saved checkpoint's path.

    Every step is an Eq. 5 batch of the evaluator's training modality (``(x2, noise(x1))`` ->
    ``x2 - x1``, as in :func:`imse_study.evaluator.train.make_training_pair`). Every
    ``hard_every``-th step is a *hard* batch instead: the pair starts aligned (``x1 = x2``), the
    noisy copy is warped by the free-form field phi that minimises the current evaluator's mean |E|
    (``attack_steps`` Adam steps on a control grid every ``attack_spacing`` px, from a small random
    start), and the label is the true error ``x2 - warp(x1, phi)``. Such warps are what the
    registration finds when it fools the evaluator; training on them moves the minimum back to the
    truth. The checkpoint goes to ``out/evaluator.pt`` with the original metadata plus
    ``extra["hard_negatives"]`` (the settings).
    """
    from dataclasses import replace

    from imse_study.augment import shuffle_remap
    from imse_study.evaluator.checkpoint import save_checkpoint
    from imse_study.evaluator.pretrained import load_any
    from imse_study.evaluator.train import load_images, make_training_pair
    from imse_study.training import step_generator

    if int(steps) < 1 or int(hard_every) < 1:
        raise ValueError(f"steps and hard_every must be >= 1, got {steps}, {hard_every}")
    if isinstance(evaluator, torch.nn.Module):
        model, meta = copy.deepcopy(evaluator), copy.deepcopy(evaluator.meta)
    else:
        model, meta = load_any(str(evaluator))
    if meta.dataset not in ("phantom", "icbm152_phantom"):
        raise ValueError("finetune_hard_negatives trains on the bundled phantom; this evaluator was trained on "
                         f"{meta.dataset!r}")
    train = load_images([meta.modality], "train", meta.dim, profile)[meta.modality]
    if tuple(train.shape[2:]) != tuple(meta.size):
        raise ValueError(f"profile {profile!r} images are {tuple(train.shape[2:])}, the evaluator was trained on "
                         f"{tuple(meta.size)}")
    n_range = tuple(meta.n_range) if meta.n_range else (2, 50)
    batch = int(batch_size or meta.extra.get("batch_size", 8))
    for p in model.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log, start = [], time.perf_counter()
    for step in range(int(steps)):
        g = step_generator(seed + 7919, 0, step)
        x = train[torch.randint(0, train.shape[0], (batch,), generator=g)]
        hard = step % int(hard_every) == 0
        if hard:
            from imse_study.augment import random_spatial_displacement

            x2 = warp(x, random_spatial_displacement(tuple(x.shape[2:]), batch, generator=g))
            noisy = shuffle_remap(x2.clamp(-1, 1), n_range=n_range, generator=g)
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            phi = _adversarial_warp(model, x2, noisy, attack_steps, attack_lr, attack_spacing, g)
            for p in model.parameters():
                p.requires_grad_(True)
            inputs, label = torch.cat([x2, warp(noisy, phi)], 1), x2 - warp(x2, phi)
        else:
            inputs, label = make_training_pair(x, meta.noise, n_range, g)
        model.train()
        loss = (model(inputs) - label).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        log.append({"step": step + 1, "hard": hard, "l1": float(loss.detach()),
                    "seconds": round(time.perf_counter() - start, 2)})
        if progress and (step + 1) % 20 == 0:
            print(f"step {step + 1}/{steps} l1 {log[-1]['l1']:.4f} ({log[-1]['seconds']:.0f} s)", flush=True)
    model.eval()
    extra = dict(meta.extra)
    extra["hard_negatives"] = {"base": str(evaluator) if not isinstance(evaluator, torch.nn.Module) else "module",
                               "steps": int(steps), "hard_every": int(hard_every), "attack_steps": int(attack_steps),
                               "attack_lr": float(attack_lr), "attack_spacing": int(attack_spacing), "lr": float(lr),
                               "batch_size": batch, "seed": int(seed)}
    meta = replace(meta, steps=int(meta.steps or 0) + int(steps), extra=extra)
    path = save_checkpoint(out / "evaluator.pt", model, meta)
    import pandas as pd

    pd.DataFrame(log).to_csv(out / "log.csv", index=False)
    return path
