"""Training VoxelMorph with any similarity (Eq. 6 + Eq. 7), and loading trained networks.

loss = sim(moving o phi, target) + smooth_weight * ||grad phi||^2, phi = R(moving, target).
Training pairs are the training subjects' aligned images of the two modalities, the moving one
moved by the paper's random spatial transforms (:mod:`imse_study.augment.spatial`) at every step,
so the network learns to undo misalignments drawn from the same distribution as the test pairs.
``bidirectional=True`` trains one network on both directions (a random direction per sample), a
cheaper option than the paper's one network per direction.

The loop is :func:`imse_study.training.run_training`: per-step seeding, atomic checkpoints
(``last.pt`` each epoch, ``network.pt`` at the end), exact resume, ``time_limit`` and torchrun. Validation Dice (on held-out subjects, fixed
transforms) is logged for monitoring only; it never steers training.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from imse_study.augment import random_spatial_displacement
from imse_study.config import get_profile
from imse_study.data.datasets import data_arguments
from imse_study.metrics import dice, gradient_loss
from imse_study.registration.network import RegistrationNet
from imse_study.losses.similarity import similarity as make_similarity
from imse_study.training import (
    Trainer, budget_arguments, device_of, meta_from_dict, package_version, read_payload, run_settings, run_training,
    save_model_checkpoint, seeded_init, start_run, unwrap, with_budget,
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
    run = start_run(out, "network.pt", "registration network", resume, overwrite, device, time_limit)

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
    images = {moving_modality: images_m.to(run.device), target_modality: images_t.to(run.device)}
    steps_per_epoch = cfg.steps_per_epoch or max(1, images_m.shape[0] // (cfg.batch_size * run.world))

    model = seeded_init(seed, lambda: RegistrationNet(dim, cfg.integration_steps)).to(run.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    meta = RegistrationMeta(
        similarity=similarity, moving_modality=moving_modality, target_modality=target_modality, dim=dim,
        size=tuple(images_m.shape[2:]), profile=prof.name, smooth_weight=smooth_weight,
        bidirectional=bidirectional, integration_steps=cfg.integration_steps,
        similarity_options=_serialisable(options), dataset=dataset, seed=seed,
        command=command_for(epochs),
        extra={"batch_size": cfg.batch_size, "world_size": run.world, "lr": cfg.lr},
    )
    settings = run_settings(meta, _SETTINGS, cfg, steps_per_epoch=steps_per_epoch, world_size=run.world)
    val: list = []  # held-out pairs, loaded by the first validation (rank 0 only validates)

    def validate() -> dict[str, float]:
        if not val:
            val.append(_pair_images(moving_modality, target_modality, "val", dim, prof.name, dataset, root))
        return _validate(model, val[0], cfg.val_items)

    def shorten(reached: int) -> None:  # a time-limited run: now an `--epochs <reached>` run
        meta.command = command_for(reached)

    trainer = Trainer(
        name=f"voxelmorph {similarity}", models={"network": model}, optimizers={"adam": optimizer}, keep="network",
        meta=meta, settings=settings, save=save_network, read=_read,
        step=_training_step(model, optimizer, images, sims, cfg.batch_size, smooth_weight, run.device),
        validate=validate, shorten=shorten,
    )
    done = run_training(run, trainer, seed, cfg.epochs, steps_per_epoch, stop_after_epochs, progress=progress)
    return RegistrationTrainResult(checkpoint=out / "network.pt", model=model, steps=done.step, history=done.history)


def _training_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: dict[str, torch.Tensor],
                   sims: dict[tuple[str, str], Any], batch_size: int, smooth_weight: float,
                   dev: torch.device) -> Callable[[torch.Generator, int], dict[str, float]]:
    """One step of Eq. 6-7: a random batch in a random direction, its moving images moved by the
    paper's random transforms, ``sim(moving o phi, target) + smooth_weight * ||grad phi||^2``."""
    directions = list(sims)
    n_items = next(iter(images.values())).shape[0]

    def step(g: torch.Generator, _: int) -> dict[str, float]:
        index = torch.randint(0, n_items, (batch_size,), generator=g)
        src, dst = directions[int(torch.randint(0, len(directions), (1,), generator=g))]
        moving_img, target = images[src][index], images[dst][index]
        shape = tuple(moving_img.shape[2:])
        moving = warp(moving_img, random_spatial_displacement(shape, batch_size, generator=g, device=dev))
        displacement = model(moving, target)
        loss = sims[(src, dst)](warp(moving, displacement), target) + smooth_weight * gradient_loss(displacement)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"train_loss": float(loss.detach())}

    return step


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
