"""Training the evaluator (Eq. 5, :mod:`imse_study.evaluator.objective`) on images of ONE modality.

For a batch of images x of the training modality: x1 = T1(x) and x2 = T2(x) with independent random
affine + elastic transforms (:mod:`imse_study.augment.spatial`); the evaluator sees
``(x2, noise(x1))`` and learns ``x2 - x1`` under an L1 loss (Adam, lr 1e-4). ``noise`` is Shuffle
Remap (IMSE(SR)), the Bezier histogram shift (the IMSE(BC) baseline) or nothing.

The loop is :func:`imse_study.training.run_training`: every step draws its randomness from a
generator seeded by (seed, rank, step), so a run resumed from its last checkpoint continues exactly
as if it had not stopped. Each epoch validates on held-out subjects: the L1 loss of Eq. 5 and a
multi-modal ranking check (mean |E| of aligned pairs in other modalities against the same pairs
misaligned: ROC AUC). Under ``torchrun`` the processes average their gradients (gloo on CPU, nccl on
GPU); ``batch_size`` is per process.

Opt-in parts of the recipe (:class:`~imse_study.config.EvaluatorTraining`): a U-Net instead of the
paper's generator (``arch``); linear warm-up then cosine decay of the learning rate over the planned
steps (``lr_schedule``; the rate is a function of the step number, so resume stays exact); early
stopping when the validation L1 has not improved by ``min_delta`` for ``patience`` epochs, keeping
``best.pt`` beside ``last.pt`` and making the best the final evaluator; bfloat16 autocast of the
training forward pass (``precision``); and appearance changes of the training modality
(``appearance``, see :func:`~imse_study.evaluator.objective.make_training_pair`).
"""

from __future__ import annotations

import math
import shlex
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from imse_study.augment import random_spatial_displacement
from imse_study.augment.intensity import APPEARANCE_LEVELS, AppearanceRange, appearance_range
from imse_study.config import EvaluatorTraining, get_profile
from imse_study.data.datasets import is_phantom
from imse_study.evaluator.checkpoint import EvaluatorMeta, read_checkpoint, save_checkpoint
from imse_study.evaluator.model import ARCHS, build_evaluator
from imse_study.evaluator.objective import ANCHOR_SIDES, evaluator_objective
from imse_study.evaluator.objective import make_training_pair  # noqa: F401  (re-exported)
from imse_study.evaluator.use import foreground_mask
from imse_study.modalities import CT_PARTNERS, MR_MODALITIES, SCALING, T1, is_ct, kind_of
from imse_study.training import (
    EarlyStopping, Trainer, budget_arguments, device_of, run_settings, run_training, seeded_init, start_run, with_budget,
)
from imse_study.training import best_epoch, plateau_reached  # noqa: F401  (re-exported: early stopping's rule)
from imse_study.warp import warp

NOISES = ("shuffle_remap", "bezier", "none")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("float32", "bfloat16")
_VALIDATION_SEED = 987_654


@dataclass
class TrainResult:
    """What a training run produced."""

    checkpoint: Path  # the final evaluator (weights + metadata)
    model: nn.Module
    steps: int
    history: list[dict]
    best_epoch: int | None = None  # with early stopping: the epoch whose weights are the final evaluator


# --------------------------------------------------------------------------------------------
# Data


def ranking_modalities(modality: str, available: tuple[str, ...]) -> list[str]:
    """The other modalities the ranking check uses: MR-trained -> the other MR, CT-trained -> MR."""
    if is_ct(modality):
        return [m for m in CT_PARTNERS if m in available]
    return [m for m in available if m != modality and m in MR_MODALITIES]


def load_images(
    modalities: list[str], split: str, dim: int, profile: str, dataset: str = "phantom", root: str | None = None,
    phantom_version: int | None = None,
) -> dict[str, torch.Tensor]:
    """Aligned images (N, 1, *S) in [-1, 1] of each modality for one split.

    Item ``i`` is the same slice or volume in every modality: for a manifest set, the items that
    have all of ``modalities`` (a subject missing one is left out of every modality).
    ``phantom_version`` is passed to ``load_phantom`` only when given (its default otherwise).
    """
    return load_images_and_spacing(modalities, split, dim, profile, dataset, root, phantom_version)[0]


def load_images_and_spacing(
    modalities: list[str], split: str, dim: int, profile: str, dataset: str = "phantom", root: str | None = None,
    phantom_version: int | None = None,
) -> tuple[dict[str, torch.Tensor], tuple[float, ...]]:
    """:func:`load_images` and the images' spacing (mm per array axis; a manifest set's first item's)."""
    if is_phantom(dataset):
        from imse_study.data.phantom import load_phantom

        version = {} if phantom_version is None else {"version": phantom_version}
        data = load_phantom(split, dim, profile, tuple(modalities), **version)
        return {m: torch.from_numpy(v).unsqueeze(1) for m, v in data.images.items()}, tuple(data.spacing)
    from imse_study.data.aligned import load_aligned

    first, *others = modalities
    sets = [load_aligned(first, other, split, dim, profile, dataset, root, labels=False) for other in others or [first]]
    common = set.intersection(*(set(a.ids) for a in sets))
    out: dict[str, torch.Tensor] = {}
    for other, aligned in zip(others or [first], sets):
        keep = torch.tensor([i for i, item in enumerate(aligned.ids) if item in common], dtype=torch.long)
        out.setdefault(first, aligned.images[first][keep])
        out[other] = aligned.images[other][keep]
    return out, tuple(float(s) for s in sets[0].spacing)


# --------------------------------------------------------------------------------------------
# Validation


@torch.no_grad()
def aligned_floor(model: nn.Module, reference: torch.Tensor, other: torch.Tensor, batch: int = 8) -> float:
    """Mean |E| over the joint foreground of ALIGNED, unresampled pairs: what a registration sees at the
    truth (near 0 for an evaluator whose minimum is there)."""
    total, count = 0.0, 0.0
    for i in range(0, reference.shape[0], batch):
        x, y = reference[i:i + batch], other[i:i + batch]
        mask = (foreground_mask(x) | foreground_mask(y)).float()
        total += float((model(torch.cat([x, y], 1)).abs() * mask).sum())
        count += float(mask.sum())
    return total / max(count, 1.0)


def ranking_auc(model: nn.Module, reference: torch.Tensor, other: torch.Tensor, seed: int = _VALIDATION_SEED,
                batch: int = 8) -> float:
    """ROC AUC of mean |E| separating misaligned from aligned pairs (1 = perfect ranking).

    ``reference`` and ``other`` are aligned images (N, 1, *S); the misaligned set is ``other``
    under the paper's random spatial transforms (fixed seed). Mean |E| is taken over the union of
    the two foreground masks.
    """
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(seed)
    shape = tuple(reference.shape[2:])
    moved = warp(other, random_spatial_displacement(shape, other.shape[0], generator=g))
    aligned = mean_abs_error(model, reference, other, batch)
    misaligned = mean_abs_error(model, reference, moved, batch)
    scores = np.concatenate([aligned, misaligned])
    truth = np.concatenate([np.zeros(len(aligned)), np.ones(len(misaligned))])
    return float(roc_auc_score(truth, scores))


@torch.no_grad()
def mean_abs_error(model: nn.Module, reference: torch.Tensor, other: torch.Tensor, batch: int = 8) -> np.ndarray:
    """Mean |E(reference, other)| per pair inside the union of the foreground masks."""
    out, dev = [], device_of(model)  # the images may live elsewhere (CPU) than the model
    for i in range(0, reference.shape[0], batch):
        ref, oth = reference[i : i + batch].to(dev), other[i : i + batch].to(dev)
        err = model(ref, oth).abs()
        union = (foreground_mask(ref) | foreground_mask(oth)).float()
        dims = tuple(range(1, err.dim()))
        out.append(((err * union).sum(dims) / union.sum(dims).clamp_min(1)).cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def validation_l1(model: nn.Module, images: torch.Tensor, noise: str, n_range: tuple[int, int], batch: int = 8,
                  appearance: AppearanceRange | None = None) -> float:
    """Eq. 5's L1 loss on held-out images with fixed transforms, noise and appearance changes."""
    g = torch.Generator().manual_seed(_VALIDATION_SEED)
    total, count, dev = 0.0, 0, device_of(model)
    for i in range(0, images.shape[0], batch):
        inputs, label = make_training_pair(images[i : i + batch], noise, n_range, g, appearance)  # drawn where the images are
        total += float(evaluator_objective(model(inputs.to(dev)), label.to(dev))) * inputs.shape[0]
        count += inputs.shape[0]
    return total / max(count, 1)


# --------------------------------------------------------------------------------------------
# The loop


def train_evaluator(
    out: str | Path,
    modality: str = T1,
    dim: int = 2,
    profile: str = "quick",
    noise: str = "shuffle_remap",
    n_range: tuple[int, int] = (2, 50),
    seed: int = 0,
    resume: bool = False,
    dataset: str = "phantom",
    root: str | None = None,
    stop_after_epochs: int | None = None,
    epochs: int | None = None,
    progress: bool = True,
    device: str | None = None,
    budget: dict[str, Any] | None = None,
    time_limit: float | None = None,
    overwrite: bool = False,
    phantom_version: int | None = None,
) -> TrainResult:
    """Train an evaluator into folder ``out`` (``last.pt`` each epoch, ``evaluator.pt`` at the end).

    ``stop_after_epochs`` ends the run early (as an interruption would); ``resume=True`` continues
    from ``out/last.pt`` (with the same settings; only ``epochs``, ``time_limit`` and ``device`` may
    change). A folder that holds a run is refused unless ``resume`` or ``overwrite`` is given.
    ``budget`` overrides fields of the profile's
    :class:`~imse_study.config.EvaluatorTraining` (``width``, ``n_blocks``, ``batch_size``, ``lr``,
    ``steps_per_epoch``, and the opt-in recipe: ``arch``, ``lr_schedule``, ``warmup_steps``,
    ``schedule_epochs``, ``patience``, ``min_delta``, ``appearance``, ``precision``), e.g. a larger
    network on a GPU; the reproduce command records them. ``time_limit`` (seconds) ends the run after
    the epoch in which it runs out, as if it had been given that many epochs (its checkpoint's command
    says so, with the schedule's planned span). With ``patience`` the run may stop early: ``best.pt``
    holds the best validation L1 so far and becomes ``evaluator.pt``. ``phantom_version`` is passed to
    the phantom's loader only when given.
    """
    if noise not in NOISES:
        raise ValueError(f"unknown noise {noise!r}: choose one of {', '.join(NOISES)}")
    if not (1 <= n_range[0] <= n_range[1]):
        raise ValueError(f"n_range must satisfy 1 <= min <= max, got {n_range}")
    prof = get_profile(profile)
    cfg = with_budget(prof.evaluator(dim), epochs, **(budget or {}))  # a different budget than the profile's
    check_recipe(cfg)
    appearance = appearance_range(cfg.appearance, modality)
    out = Path(out)
    run = start_run(out, "evaluator.pt", "evaluator", resume, overwrite, device, time_limit)

    def command_for(n_epochs: int | None, more: dict[str, Any] | None = None) -> str:
        return reproduce_command(out, modality, dim, prof.name, noise, n_range, seed, dataset, root, n_epochs,
                                 {**(budget or {}), **(more or {})}, phantom_version)

    images, spacing = load_images_and_spacing([modality], "train", dim, profile, dataset, root, phantom_version)
    train = images[modality].to(run.device)
    if train.shape[0] == 0:
        raise ValueError(f"no training images of modality {modality!r} in data set {dataset!r}")
    steps_per_epoch = cfg.steps_per_epoch or max(1, train.shape[0] // (cfg.batch_size * run.world))
    schedule_steps = steps_per_epoch * (cfg.schedule_epochs or cfg.epochs)

    model = seeded_init(seed, lambda: build_evaluator(dim, cfg.width, cfg.n_blocks, cfg.arch)).to(run.device)
    if cfg.init_weights and not resume:
        start_from(model, cfg.init_weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    meta = EvaluatorMeta(
        modality=modality, dim=dim, size=tuple(train.shape[2:]), width=cfg.width, n_blocks=model.n_blocks,
        normalisation=SCALING[kind_of(modality)],
        noise=noise, n_range=tuple(n_range) if noise == "shuffle_remap" else None, profile=prof.name,
        dataset=dataset, spacing=spacing, arch=cfg.arch, appearance=cfg.appearance, seed=seed,
        command=command_for(epochs),
        extra={"batch_size": cfg.batch_size, "world_size": run.world, "lr": cfg.lr,
               **recipe_record(cfg, schedule_steps, phantom_version)},
    )
    settings = run_settings(meta, _SETTINGS, cfg, steps_per_epoch=steps_per_epoch, world_size=run.world,
                            schedule_steps=schedule_steps if cfg.lr_schedule != "constant" else None,
                            phantom_version=phantom_version)
    for key, default in _ADDED_LATER.items():  # runs recorded before these settings existed still resume
        if settings.get(key) == default:
            settings.pop(key)
    val: list = []  # held-out images, loaded by the first validation (rank 0 only validates)

    def validate() -> dict[str, float]:
        if not val:
            val.append(_validation_data(modality, dim, profile, dataset, root, cfg.val_items, phantom_version))
        return _validate(model, val[0], noise, n_range, appearance, floor=cfg.aligned_fraction > 0)

    def shorten(reached: int) -> None:  # a time-limited run: now an `--epochs <reached>` run
        span = {"schedule_epochs": cfg.schedule_epochs or cfg.epochs} if cfg.lr_schedule != "constant" else {}
        meta.command = command_for(reached, span)

    trainer = Trainer(
        name=f"evaluator {modality} {dim}D", models={"evaluator": model}, optimizers={"adam": optimizer},
        keep="evaluator", meta=meta, settings=settings, save=save_checkpoint, read=read_checkpoint,
        step=_training_step(model, optimizer, train, cfg, noise, n_range, appearance, run.device),
        validate=validate, record_validation=True, learning_rate=_learning_rate(cfg, schedule_steps), log_lr=True,
        shorten=shorten,
    )
    stopping = EarlyStopping(cfg.patience, cfg.min_delta) if cfg.patience is not None else None
    done = run_training(run, trainer, seed, cfg.epochs, steps_per_epoch, stop_after_epochs, stopping, progress)
    return TrainResult(checkpoint=out / "evaluator.pt", model=model, steps=done.step, history=done.history,
                       best_epoch=meta.extra.get("best_epoch"))


def _training_step(model: nn.Module, optimizer: torch.optim.Optimizer, train: torch.Tensor, cfg: EvaluatorTraining,
                   noise: str, n_range: tuple[int, int], appearance: AppearanceRange | None,
                   dev: torch.device) -> Callable[[torch.Generator, int], dict[str, float]]:
    """One step of Eq. 5: a random batch of ``train``, its training pair, one Adam update."""
    def step(g: torch.Generator, _: int) -> dict[str, float]:
        index = torch.randint(0, train.shape[0], (cfg.batch_size,), generator=g)
        inputs, label = make_training_pair(train[index], noise, n_range, g, appearance, cfg.aligned_fraction,
                                          cfg.anchor_sides)
        with _autocast(cfg.precision, dev):
            prediction = model(inputs)
        loss = evaluator_objective(prediction, label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"train_l1": float(loss.detach())}

    return step


def _learning_rate(cfg: EvaluatorTraining, schedule_steps: int) -> Callable[[int, int], float] | None:
    """The rate of each step under ``cfg.lr_schedule`` (None for a constant rate: Adam keeps ``cfg.lr``)."""
    if cfg.lr_schedule == "constant":
        return None
    return lambda step, epoch: scheduled_lr(cfg, step, schedule_steps)


def check_recipe(cfg: EvaluatorTraining) -> None:
    """Raise a one-line ``ValueError`` for a recipe setting out of its range."""
    choices = {"arch": ARCHS, "lr_schedule": LR_SCHEDULES, "precision": PRECISIONS, "appearance": APPEARANCE_LEVELS}
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            raise ValueError(f"unknown {key} {getattr(cfg, key)!r}: choose one of {', '.join(allowed)}")
    if cfg.warmup_steps < 0:
        raise ValueError(f"warmup_steps must be 0 or more, not {cfg.warmup_steps}")
    if cfg.schedule_epochs is not None and cfg.schedule_epochs < 1:
        raise ValueError(f"schedule_epochs must be at least 1, not {cfg.schedule_epochs}")
    if cfg.patience is not None and cfg.patience < 1:
        raise ValueError(f"patience must be at least 1 epoch, not {cfg.patience}")
    if not cfg.min_delta >= 0:
        raise ValueError(f"min_delta must be 0 or more, not {cfg.min_delta}")
    if not 0 <= cfg.aligned_fraction <= 1:
        raise ValueError(f"aligned_fraction must be between 0 and 1, not {cfg.aligned_fraction}")
    if cfg.anchor_sides not in ANCHOR_SIDES:
        raise ValueError(f"anchor_sides must be one of {ANCHOR_SIDES}, not {cfg.anchor_sides!r}")
    if cfg.init_weights is not None and not Path(cfg.init_weights).is_file():
        raise ValueError(f"--init-weights {cfg.init_weights}: no such evaluator checkpoint")


def start_from(model: nn.Module, path: str | Path) -> None:
    """Load an evaluator checkpoint's weights into ``model`` (fine-tuning); the networks must match."""
    payload = read_checkpoint(path)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError:
        saved = EvaluatorMeta.from_dict(payload["meta"])
        raise ValueError(f"--init-weights {path}: its network ({saved.arch}, width {saved.width}) is not the one "
                         "being trained; give the same --arch and --width") from None


def recipe_record(cfg: EvaluatorTraining, schedule_steps: int, phantom_version: int | None) -> dict[str, Any]:
    """The opt-in recipe settings as the metadata records them (``schedule_steps``: the cosine's span)."""
    return {"lr_schedule": cfg.lr_schedule, "warmup_steps": cfg.warmup_steps,
            "aligned_fraction": cfg.aligned_fraction, "init_weights": cfg.init_weights,
            "anchor_sides": cfg.anchor_sides,
            "schedule_steps": schedule_steps if cfg.lr_schedule != "constant" else None,
            "patience": cfg.patience, "min_delta": cfg.min_delta, "precision": cfg.precision,
            "phantom_version": phantom_version}


def scheduled_lr(cfg: EvaluatorTraining, step: int, schedule_steps: int) -> float:
    """The learning rate of step ``step`` (from 0): ``cfg.lr``, or with ``lr_schedule="cosine"`` a linear
    warm-up over ``cfg.warmup_steps`` steps, then ``lr * (1 + cos(pi * t)) / 2`` with ``t`` going from
    0 to 1 over the remaining ``schedule_steps`` (0 after them)."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, schedule_steps - cfg.warmup_steps))
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * t))


def _autocast(precision: str, dev: torch.device):
    """bfloat16 autocast of the forward pass (weights, optimizer and loss stay float32), or nothing."""
    return torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bfloat16" else nullcontext()


def reproduce_command(out, modality, dim, profile, noise, n_range, seed, dataset, root, epochs=None,
                      budget: dict[str, Any] | None = None, phantom_version: int | None = None) -> str:
    """The ``imse-study train-evaluator`` command line that reproduces a run."""
    args = ["imse-study", "train-evaluator", "--dataset", dataset, "--modality", modality, "--dim", str(dim),
            "--profile", profile, "--noise", noise, "--n-range", str(n_range[0]), str(n_range[1]),
            "--seed", str(seed), "--out", str(out)]
    if root:
        args += ["--root", str(root)]
    if phantom_version is not None:
        args += ["--phantom-version", str(phantom_version)]
    args += budget_arguments(epochs, **(budget or {}))
    return shlex.join(args)


# recipe fields added after runs were first recorded: left out of a run's settings at these values, so
# that earlier runs resume
_ADDED_LATER = {"aligned_fraction": 0.0, "init_weights": None, "anchor_sides": "reference"}

# what decides an evaluator's weights besides its budget (EvaluatorTraining): resume compares them
_SETTINGS = ("modality", "dim", "size", "noise", "n_range", "profile", "seed", "dataset", "arch", "appearance")


def _validation_data(modality, dim, profile, dataset, root, limit, phantom_version=None):
    from imse_study.data.phantom import MODALITIES

    others = ranking_modalities(modality, MODALITIES if is_phantom(dataset) else ())
    images = load_images([modality, *others], "val", dim, profile, dataset, root, phantom_version)
    return {m: v[:limit] for m, v in images.items()}, modality, others


@torch.no_grad()
def _validate(model: nn.Module, val, noise: str, n_range: tuple[int, int],
              appearance: AppearanceRange | None = None, floor: bool = False) -> dict[str, float]:
    images, modality, others = val
    was_training = model.training
    model.eval()
    row = {"val_l1": validation_l1(model, images[modality], noise, n_range, appearance=appearance)}
    aucs = {f"auc_{m}": ranking_auc(model, images[modality], images[m]) for m in others}
    row.update(aucs)
    if floor:
        row.update({f"floor_{m}": aligned_floor(model, images[modality], images[m]) for m in others})
    if aucs:
        row["auc_mean"] = float(np.mean(list(aucs.values())))
    model.train(was_training)
    return row

