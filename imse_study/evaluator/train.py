"""Training the evaluator (Eq. 5) on images of ONE modality.

For a batch of images x of the training modality: x1 = T1(x) and x2 = T2(x) with independent random
affine + elastic transforms (:mod:`imse_study.augment.spatial`); the evaluator sees
``(x2, noise(x1))`` and learns ``x2 - x1`` under an L1 loss (Adam, lr 1e-4). ``noise`` is Shuffle
Remap (IMSE(SR)), the Bezier histogram shift (the IMSE(BC) baseline) or nothing.

Every step draws its randomness from a generator seeded by (seed, rank, step), so a run resumed
from its last checkpoint continues exactly as if it had not stopped. Each epoch validates on
held-out subjects: the L1 loss of Eq. 5 and a multi-modal ranking check (mean |E| of aligned pairs
in other modalities against the same pairs misaligned: ROC AUC). Under ``torchrun`` the model is
wrapped in DistributedDataParallel (gloo on CPU, nccl on GPU); ``batch_size`` is per process.

Opt-in parts of the recipe (:class:`~imse_study.config.EvaluatorTraining`): a U-Net instead of the
paper's generator (``arch``); linear warm-up then cosine decay of the learning rate over the planned
steps (``lr_schedule``; the rate is a function of the step number, so resume stays exact); early
stopping when the validation L1 has not improved by ``min_delta`` for ``patience`` epochs, keeping
``best.pt`` beside ``last.pt`` and making the best the final evaluator; bfloat16 autocast of the
training forward pass (``precision``); and appearance changes of the training modality
(``appearance``, see :func:`make_training_pair`).
"""

from __future__ import annotations

import math
import shlex
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from imse_study.augment import bezier_shift, random_spatial_displacement, shuffle_remap
from imse_study.augment.intensity import (
    APPEARANCE_LEVELS, AppearanceRange, acquisition_noise, appearance_range, randomise_appearance,
)
from imse_study.config import EvaluatorTraining, get_profile
from imse_study.data.datasets import is_phantom
from imse_study.evaluator.checkpoint import EvaluatorMeta, read_checkpoint, save_checkpoint
from imse_study.evaluator.use import foreground_mask
from imse_study.evaluator.model import ARCHS, build_evaluator
from imse_study.modalities import CT_PARTNERS, MR_MODALITIES, SCALING, T1, is_ct, kind_of
from imse_study.training import (
    distributed, prepare_run_folder, record_epoch, resume_state, run_settings, seeded_init, step_generator,
    training_device, unwrap, with_budget, budget_arguments, device_of, time_deadline, time_is_up,
)
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


# --------------------------------------------------------------------------------------------
# Validation


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
        total += float((model(inputs.to(dev)) - label.to(dev)).abs().mean()) * inputs.shape[0]
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
    rank, world = distributed()
    dev = training_device(device, world)
    deadline = time_deadline(time_limit, world)
    prepare_run_folder(out, "evaluator.pt", "evaluator", resume, overwrite, rank)

    def command_for(n_epochs: int | None, more: dict[str, Any] | None = None) -> str:
        return reproduce_command(out, modality, dim, prof.name, noise, n_range, seed, dataset, root, n_epochs,
                                 {**(budget or {}), **(more or {})}, phantom_version)

    images, spacing = load_images_and_spacing([modality], "train", dim, profile, dataset, root, phantom_version)
    train = images[modality].to(dev)
    if train.shape[0] == 0:
        raise ValueError(f"no training images of modality {modality!r} in data set {dataset!r}")
    steps_per_epoch = cfg.steps_per_epoch or max(1, train.shape[0] // (cfg.batch_size * world))
    total_steps = steps_per_epoch * cfg.epochs
    schedule_steps = steps_per_epoch * (cfg.schedule_epochs or cfg.epochs)

    model = seeded_init(seed, lambda: build_evaluator(dim, cfg.width, cfg.n_blocks, cfg.arch)).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    meta = EvaluatorMeta(
        modality=modality, dim=dim, size=tuple(train.shape[2:]), width=cfg.width, n_blocks=model.n_blocks,
        normalisation=SCALING[kind_of(modality)],
        noise=noise, n_range=tuple(n_range) if noise == "shuffle_remap" else None, profile=prof.name,
        dataset=dataset, spacing=spacing, arch=cfg.arch, appearance=cfg.appearance, seed=seed,
        command=command_for(epochs),
        extra={"batch_size": cfg.batch_size, "world_size": world, "lr": cfg.lr,
               **recipe_record(cfg, schedule_steps, phantom_version)},
    )
    settings = run_settings(meta, _SETTINGS, cfg, steps_per_epoch=steps_per_epoch, world_size=world,
                            schedule_steps=schedule_steps if cfg.lr_schedule != "constant" else None,
                            phantom_version=phantom_version)
    step, epoch, history, elapsed = 0, 0, [], 0.0
    if resume:
        step, epoch, history, elapsed = _restore(out / "last.pt", model, optimizer, settings)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    val = _validation_data(modality, dim, profile, dataset, root, cfg.val_items, phantom_version) if rank == 0 else None
    out.mkdir(parents=True, exist_ok=True)
    stop_epoch = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, epoch + stop_after_epochs)
    plateau = plateau_reached(history, cfg.patience, cfg.min_delta)
    bar = tqdm(total=total_steps, initial=step, desc=f"evaluator {modality} {dim}D", disable=not progress or rank != 0)
    while epoch < stop_epoch and not plateau:
        model.train()
        start, losses = time.perf_counter(), []
        for _ in range(steps_per_epoch):
            g = step_generator(seed, rank, step)
            index = torch.randint(0, train.shape[0], (cfg.batch_size,), generator=g)
            inputs, label = make_training_pair(train[index], noise, n_range, g, appearance)
            lr = _set_learning_rate(optimizer, cfg, step, schedule_steps)
            with _autocast(cfg.precision, dev):
                prediction = model(inputs)
            loss = (prediction.float() - label).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            bar.set_postfix(l1=f"{losses[-1]:.4f}")
        epoch += 1
        elapsed += time.perf_counter() - start
        if rank == 0:
            row = {"epoch": epoch, "step": step, "train_l1": float(np.mean(losses)), "seconds": round(elapsed, 1)}
            if cfg.lr_schedule != "constant":
                row["lr"] = lr
            row.update(_validate(unwrap(model), val, noise, n_range, appearance))
            meta.extra["validation"] = {k: v for k, v in row.items() if k.startswith(("val_", "auc"))}
            if cfg.patience is not None and best_epoch(history + [row], cfg.min_delta) == epoch:
                meta.steps, meta.epochs = step, epoch
                save_checkpoint(out / "best.pt", unwrap(model), meta)  # before last.pt: resume never misses it
            record_epoch(out, save_checkpoint, model, optimizer, meta, history, row, step, epoch, elapsed, settings)
            plateau = plateau_reached(history, cfg.patience, cfg.min_delta)
            if progress:
                bar.write(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        if world > 1:
            plateau = _agree(plateau, dev)
            dist.barrier()
        if time_is_up(deadline) and epoch < cfg.epochs and not plateau:
            span = {"schedule_epochs": cfg.schedule_epochs or cfg.epochs} if cfg.lr_schedule != "constant" else {}
            cfg, meta.command = replace(cfg, epochs=epoch), command_for(epoch, span)  # now an `--epochs <epoch>` run
            break
    bar.close()
    final = out / "evaluator.pt"
    finished = epoch >= cfg.epochs or plateau
    if rank == 0 and finished:
        if cfg.patience is not None:
            _take_best(out / "best.pt", unwrap(model), meta, epoch)
        save_checkpoint(final, unwrap(model), meta)
    return TrainResult(checkpoint=final, model=unwrap(model), steps=step, history=history,
                       best_epoch=meta.extra.get("best_epoch"))


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


def recipe_record(cfg: EvaluatorTraining, schedule_steps: int, phantom_version: int | None) -> dict[str, Any]:
    """The opt-in recipe settings as the metadata records them (``schedule_steps``: the cosine's span)."""
    return {"lr_schedule": cfg.lr_schedule, "warmup_steps": cfg.warmup_steps,
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


def best_epoch(history: list[dict], min_delta: float = 0.0) -> int:
    """The epoch of the best validation L1: the last one that beat every earlier best by more than
    ``min_delta`` (0 for an empty history)."""
    best, where = math.inf, 0
    for row in history:
        if row["val_l1"] < best - min_delta:
            best, where = row["val_l1"], row["epoch"]
    return where


def plateau_reached(history: list[dict], patience: int | None, min_delta: float = 0.0) -> bool:
    """Early stopping: ``patience`` epochs have passed since the :func:`best_epoch` (never without ``patience``)."""
    if patience is None or not history:
        return False
    return history[-1]["epoch"] - best_epoch(history, min_delta) >= patience


def _set_learning_rate(optimizer: torch.optim.Optimizer, cfg: EvaluatorTraining, step: int, schedule_steps: int) -> float:
    lr = scheduled_lr(cfg, step, schedule_steps)
    if cfg.lr_schedule != "constant":  # a function of the step: nothing to save for an exact resume
        for group in optimizer.param_groups:
            group["lr"] = lr
    return lr


def _autocast(precision: str, dev: torch.device):
    """bfloat16 autocast of the forward pass (weights, optimizer and loss stay float32), or nothing."""
    return torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bfloat16" else nullcontext()


def _agree(flag: bool, dev: torch.device) -> bool:
    """Rank 0's ``flag`` on every process (only rank 0 validates)."""
    value = torch.tensor([int(flag)], device=dev)
    dist.broadcast(value, 0)
    return bool(value.item())


def _take_best(path: Path, model: nn.Module, meta: EvaluatorMeta, stopped: int) -> None:
    """Load the best weights (``best.pt``) into ``model`` and describe them in ``meta``."""
    best = read_checkpoint(path)
    saved = EvaluatorMeta.from_dict(best["meta"])
    model.load_state_dict(best["state_dict"])
    meta.steps, meta.epochs = saved.steps, saved.epochs
    meta.extra.update(best_epoch=saved.epochs, stopped_epoch=stopped, validation=saved.extra.get("validation"))


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


# what decides an evaluator's weights besides its budget (EvaluatorTraining): resume compares them
_SETTINGS = ("modality", "dim", "size", "noise", "n_range", "profile", "seed", "dataset", "arch", "appearance")


def _restore(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, settings: dict[str, Any]):
    payload, state = resume_state(path, read_checkpoint, settings)
    model.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    return state["step"], state["epoch"], list(state["history"]), float(state.get("elapsed", 0.0))


def _validation_data(modality, dim, profile, dataset, root, limit, phantom_version=None):
    from imse_study.data.phantom import MODALITIES

    others = ranking_modalities(modality, MODALITIES if is_phantom(dataset) else ())
    images = load_images([modality, *others], "val", dim, profile, dataset, root, phantom_version)
    return {m: v[:limit] for m, v in images.items()}, modality, others


@torch.no_grad()
def _validate(model: nn.Module, val, noise: str, n_range: tuple[int, int],
              appearance: AppearanceRange | None = None) -> dict[str, float]:
    images, modality, others = val
    was_training = model.training
    model.eval()
    row = {"val_l1": validation_l1(model, images[modality], noise, n_range, appearance=appearance)}
    aucs = {f"auc_{m}": ranking_auc(model, images[modality], images[m]) for m in others}
    row.update(aucs)
    if aucs:
        row["auc_mean"] = float(np.mean(list(aucs.values())))
    model.train(was_training)
    return row

