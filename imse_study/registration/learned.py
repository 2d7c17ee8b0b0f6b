"""Training VoxelMorph with any similarity (Eq. 6 + Eq. 7), and loading trained networks.

loss = sim(moving o phi, target) + smooth_weight * ||grad phi||^2, phi = R(moving, target).
Training pairs are the training subjects' aligned images of the two modalities, the moving one
moved by the paper's random spatial transforms (:mod:`imse_study.augment.spatial`) at every step,
so the network learns to undo misalignments drawn from the same distribution as the test pairs.
``bidirectional=True`` trains one network on both directions (a random direction per sample), a
cheaper option than the paper's one network per direction.

Per-step seeding, atomic checkpoints (``last.pt`` each epoch, ``network.pt`` at the end), exact
resume and DDP follow :mod:`imse_study.training`. Validation Dice (on held-out subjects, fixed
transforms) is logged for monitoring only; it never steers training.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from imse_study.augment import random_spatial_displacement
from imse_study.config import get_profile
from imse_study.data.datasets import data_arguments
from imse_study.metrics import dice, gradient_loss
from imse_study.registration.network import RegistrationNet
from imse_study.losses.similarity import similarity as make_similarity
from imse_study.training import (
    distributed, meta_from_dict, package_version, prepare_run_folder, read_payload, resume_state, run_settings,
    save_model_checkpoint, seeded_init, record_epoch, step_generator, training_device, unwrap, with_budget,
    budget_arguments, device_of, time_deadline, time_is_up,
)
from imse_study.warp import warp

DEFAULT_SMOOTH_WEIGHT = 1.0
_VALIDATION_SEED = 424_242


@dataclass
class RegistrationMeta:
    """What a registration network was trained for, and how."""

    similarity: str
    moving_modality: str
    target_modality: str
    dim: int
    size: tuple[int, ...]
    profile: str
    smooth_weight: float
    bidirectional: bool = False
    integration_steps: int = 0
    similarity_options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "phantom"
    steps: int = 0
    epochs: int = 0
    seed: int = 0
    package_version: str = field(default_factory=package_version)
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RegistrationMeta":
        return meta_from_dict(cls, data, "registration network")


@dataclass
class RegistrationTrainResult:
    checkpoint: Path
    model: nn.Module
    steps: int
    history: list[dict]


def _serialisable(options: dict[str, Any]) -> dict[str, Any]:
    """Similarity options as JSON: modules are recorded by their source (name or path) if known."""
    out = {}
    for key, value in options.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        elif isinstance(value, Path):
            out[key] = str(value)
        else:
            out[key] = getattr(value, "source", type(value).__name__)
    return out


def _pair_images(moving_modality: str, target_modality: str, split: str, dim: int, profile: str,
                 dataset: str = "phantom", root: str | None = None, labels: bool | None = None):
    """(moving images, target images, moving labels, target labels) (N, 1, *S); labels None without them."""
    from imse_study.data.aligned import load_aligned

    data = load_aligned(moving_modality, target_modality, split, dim, profile, dataset, root, labels=labels)
    lab = data.labels or {}
    return (data.images[moving_modality], data.images[target_modality], lab.get(moving_modality),
            lab.get(target_modality))


def train_registration(
    out: str | Path,
    similarity: str,
    moving_modality: str,
    target_modality: str,
    dim: int = 2,
    profile: str = "quick",
    smooth_weight: float = DEFAULT_SMOOTH_WEIGHT,
    similarity_options: dict[str, Any] | None = None,
    bidirectional: bool = False,
    seed: int = 0,
    resume: bool = False,
    stop_after_epochs: int | None = None,
    epochs: int | None = None,
    progress: bool = True,
    device: str | None = None,
    budget: dict[str, Any] | None = None,
    time_limit: float | None = None,
    dataset: str = "phantom",
    root: str | None = None,
    overwrite: bool = False,
) -> RegistrationTrainResult:
    """Train a VoxelMorph for ``moving_modality -> target_modality`` into folder ``out``.

    ``dataset``: the phantom or a manifest data set (its aligned training pairs, data folder
    ``root``); validation Dice needs the set's label maps and is left out without them.
    ``budget`` overrides fields of the profile's :class:`~imse_study.config.RegistrationTraining`
    (``batch_size``, ``lr``, ``steps_per_epoch``); the reproduce command records them.
    ``time_limit`` (seconds), ``resume`` and ``overwrite``: as for
    :func:`imse_study.evaluator.train.train_evaluator`.
    """
    prof = get_profile(profile)
    cfg = with_budget(prof.registration(dim), epochs, **(budget or {}))  # a different budget than the profile's
    options = dict(similarity_options or {})
    out = Path(out)
    rank, world = distributed()
    dev = training_device(device, world)
    deadline = time_deadline(time_limit, world)
    prepare_run_folder(out, "network.pt", "registration network", resume, overwrite, rank)

    def command_for(n_epochs: int | None) -> str:
        return _command(out, similarity, moving_modality, target_modality, dim, prof.name, smooth_weight, options,
                        bidirectional, seed, n_epochs, budget, dataset, root)

    sim_options = _resolve_translator(options, moving_modality, target_modality, bidirectional)
    sims = {
        (moving_modality, target_modality): make_similarity(
            similarity, moving_modality=moving_modality, target_modality=target_modality, **sim_options),
    }
    if bidirectional:
        sims[(target_modality, moving_modality)] = make_similarity(
            similarity, moving_modality=target_modality, target_modality=moving_modality, **sim_options)
    images_m, images_t, _, _ = _pair_images(moving_modality, target_modality, "train", dim, prof.name, dataset, root,
                                            labels=False)
    images = {moving_modality: images_m.to(dev), target_modality: images_t.to(dev)}
    n_items = images_m.shape[0]
    steps_per_epoch = cfg.steps_per_epoch or max(1, n_items // (cfg.batch_size * world))

    model = seeded_init(seed, lambda: RegistrationNet(dim, cfg.integration_steps)).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    meta = RegistrationMeta(
        similarity=similarity, moving_modality=moving_modality, target_modality=target_modality, dim=dim,
        size=tuple(images_m.shape[2:]), profile=prof.name, smooth_weight=smooth_weight,
        bidirectional=bidirectional, integration_steps=cfg.integration_steps,
        similarity_options=_serialisable(options), dataset=dataset, seed=seed,
        command=command_for(epochs),
        extra={"batch_size": cfg.batch_size, "world_size": world, "lr": cfg.lr},
    )
    settings = run_settings(meta, _SETTINGS, cfg, steps_per_epoch=steps_per_epoch, world_size=world)
    step, epoch, history, elapsed = 0, 0, [], 0.0
    if resume:
        step, epoch, history, elapsed = _restore(out / "last.pt", model, optimizer, settings)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    val = _pair_images(moving_modality, target_modality, "val", dim, prof.name, dataset, root) if rank == 0 else None
    directions = list(sims)
    stop_epoch = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, epoch + stop_after_epochs)
    bar = tqdm(total=steps_per_epoch * cfg.epochs, initial=step, desc=f"voxelmorph {similarity}",
               disable=not progress or rank != 0)
    while epoch < stop_epoch:
        model.train()
        start, losses = time.perf_counter(), []
        for _ in range(steps_per_epoch):
            g = step_generator(seed, rank, step)
            index = torch.randint(0, n_items, (cfg.batch_size,), generator=g)
            src, dst = directions[int(torch.randint(0, len(directions), (1,), generator=g))]
            moving_img, target = images[src][index], images[dst][index]
            shape = tuple(moving_img.shape[2:])
            moving = warp(moving_img, random_spatial_displacement(shape, cfg.batch_size, generator=g, device=dev))
            displacement = model(moving, target)
            loss = sims[(src, dst)](warp(moving, displacement), target) + smooth_weight * gradient_loss(displacement)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        epoch += 1
        elapsed += time.perf_counter() - start
        if rank == 0:
            row = {"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)), "seconds": round(elapsed, 1)}
            row.update(_validate(unwrap(model), val, cfg.val_items))
            record_epoch(out, save_network, model, optimizer, meta, history, row, step, epoch, elapsed, settings)
        if world > 1:
            dist.barrier()
        if time_is_up(deadline) and epoch < cfg.epochs:
            cfg, meta.command = replace(cfg, epochs=epoch), command_for(epoch)  # now an `--epochs <epoch>` run
            break
    bar.close()
    final = out / "network.pt"
    if rank == 0 and epoch >= cfg.epochs:
        save_network(final, unwrap(model), meta)
    return RegistrationTrainResult(checkpoint=final, model=unwrap(model), steps=step, history=history)


def _resolve_translator(options: dict[str, Any], moving: str, target: str, bidirectional: bool) -> dict[str, Any]:
    """Similarity options with a translator given by path loaded (and checked for its direction)."""
    translator = options.get("translator")
    if translator is None:
        return options
    if bidirectional:
        raise ValueError("a translator works in one direction (moving -> target); train without bidirectional")
    if isinstance(translator, (str, Path)):
        from imse_study.baselines import load_translator

        translator = load_translator(translator, source=moving, target=target)
    return {**options, "translator": translator}


def _command(out, similarity, moving, target, dim, profile, smooth_weight, options, bidirectional, seed,
             epochs=None, budget: dict[str, Any] | None = None, dataset: str = "phantom", root: str | None = None) -> str:
    args = ["imse-study", "train-registration", "--similarity", similarity, "--moving", moving, "--target", target,
            "--dim", str(dim), "--profile", profile, "--smooth-weight", str(smooth_weight), "--seed", str(seed),
            "--out", str(out)]
    args += data_arguments(dataset, root)
    for key, value in _serialisable(options).items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    if bidirectional:
        args.append("--bidirectional")
    args += budget_arguments(epochs, **(budget or {}))
    return shlex.join(args)


@torch.no_grad()
def _validate(model: nn.Module, val, limit: int) -> dict[str, float]:
    """Validation Dice before and after registration (fixed transforms); nothing without label maps."""
    moving_img, target, labels, target_labels = val
    if labels is None:
        return {}
    moving_img, target, labels, target_labels = (t[:limit] for t in (moving_img, target, labels.float(),
                                                                       target_labels.float()))
    g = torch.Generator().manual_seed(_VALIDATION_SEED)
    d0 = random_spatial_displacement(tuple(moving_img.shape[2:]), moving_img.shape[0], generator=g)
    moving, moving_labels = warp(moving_img, d0), warp(labels, d0, mode="nearest")
    was_training = model.training
    model.eval()
    dev = device_of(model)  # validation pairs are drawn on the CPU, as on a CPU-only machine
    displacement = model(moving.to(dev), target.to(dev)).cpu()
    model.train(was_training)
    before = dice(moving_labels, target_labels)["mean"]
    after = dice(warp(moving_labels, displacement, mode="nearest"), target_labels)["mean"]
    return {"val_dice_initial": float(before), "val_dice": float(after)}


def save_network(path: str | Path, model: nn.Module, meta: RegistrationMeta, train_state: dict | None = None) -> Path:
    """A registration checkpoint (state_dict + metadata, + training state), and its JSON, atomically."""
    return save_model_checkpoint(path, unwrap(model).state_dict(), asdict(meta), train_state, kind="registration")


def _read(path: Path) -> dict:
    return read_payload(path, "registration network", "train one with train_registration()",
                        check=lambda p: None if p.get("kind") == "registration" else "it holds another model")


def load_network(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[RegistrationNet, RegistrationMeta]:
    """A trained registration network (eval mode) and its metadata."""
    payload = _read(Path(path))
    meta = RegistrationMeta.from_dict(payload["meta"])
    model = RegistrationNet(meta.dim, meta.integration_steps)
    model.load_state_dict(payload["state_dict"])
    return model.to(map_location).eval(), meta


# what decides a network's weights besides its budget (RegistrationTraining): resume compares them
_SETTINGS = ("similarity", "moving_modality", "target_modality", "dim", "size", "profile", "smooth_weight", "seed",
             "bidirectional", "similarity_options", "dataset")


def _restore(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, settings: dict[str, Any]):
    payload, state = resume_state(path, _read, settings)
    model.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    return state["step"], state["epoch"], list(state["history"]), float(state.get("elapsed", 0.0))
