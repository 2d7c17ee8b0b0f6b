"""Evaluator checkpoints: a state_dict plus JSON metadata, written atomically, loaded with checks.

A training checkpoint (``.pt``) holds ``{"state_dict", "meta", "train_state"}`` where
``train_state`` (optimizer, step, epoch, history, the run's settings) lets ``--resume`` continue a
run exactly; a ``<name>.json`` beside it repeats the metadata for people and tools (the loader
reads the ``.pt``). Shipped evaluators keep only weights and metadata.

An evaluator sees structures at the scale it was trained at, so the metadata records the training
``spacing`` (mm per array axis); :func:`evaluator_spacing` gives it for checkpoints written before
the field existed (the phantom's spacing follows from its field of view and the recorded size).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from imse_study.config import PROFILE_NAMES, get_profile
from imse_study.data.datasets import is_phantom, same_dataset
from imse_study.evaluator.model import OUTPUT_SCALE, Evaluator, build_evaluator
from imse_study.training import meta_from_dict, package_version, read_payload, save_model_checkpoint, unwrap


@dataclass
class EvaluatorMeta:
    """What an evaluator was trained on and how: enough to check it fits the data it is given."""

    modality: str  # the modality it was trained on: the reference channel's modality
    dim: int
    size: tuple[int, ...]
    width: int
    n_blocks: int
    normalisation: str
    noise: str
    n_range: tuple[int, int] | None
    profile: str
    dataset: str = "phantom"
    spacing: tuple[float, ...] | None = None  # mm per array axis of the training images; None: not recorded
    arch: str = "resnet"  # the network (evaluator.model.build_evaluator); older checkpoints are resnet
    appearance: str = "none"  # the reference modality's appearance changes in training (Eq. 5's inputs)
    steps: int = 0
    epochs: int = 0
    seed: int = 0
    output_scale: float = OUTPUT_SCALE
    package_version: str = field(default_factory=package_version)
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluatorMeta":
        return meta_from_dict(cls, data, "evaluator", tuples=("size", "n_range", "spacing"))


class SpacingWarning(UserWarning):
    """The evaluator's training spacing is unknown: inputs are used at their own spacing."""


_WARNED: set[tuple] = set()


def phantom_spacing(profile: str, dim: int, size: tuple[int, ...] | None = None) -> tuple[float, ...]:
    """mm per array axis of the phantom of ``profile``: its field of view over its size (``size``
    when given, e.g. a checkpoint's recorded one); 240 mm / 120 px = 2 mm in 2D with ``quick``."""
    cfg = get_profile(profile).phantom
    fov = cfg.fov2d_mm if dim == 2 else cfg.fov3d_mm
    size = tuple(size) if size is not None else (cfg.size2d if dim == 2 else cfg.size3d)
    if len(size) != len(fov):
        raise ValueError(f"a {dim}D phantom size needs {len(fov)} lengths, got {size}")
    return tuple(float(f) / int(n) for f, n in zip(fov, size))


def evaluator_spacing(meta: EvaluatorMeta) -> tuple[float, ...] | None:
    """The spacing (mm per array axis, 2 values in 2D, 3 in 3D) the evaluator was trained at.

    ``meta.spacing`` when recorded; for an older checkpoint trained on the phantom, the phantom's
    spacing at the recorded size; otherwise None, with one :class:`SpacingWarning` per evaluator
    (inputs are then used at their own spacing).
    """
    if meta.spacing:
        if len(meta.spacing) != meta.dim:
            raise ValueError(f"the evaluator's recorded spacing {meta.spacing} does not have {meta.dim} values")
        return tuple(float(s) for s in meta.spacing)
    if is_phantom(meta.dataset) and meta.profile in PROFILE_NAMES and len(meta.size) == meta.dim:
        return phantom_spacing(meta.profile, meta.dim, tuple(meta.size))
    key = (meta.dataset, meta.dim, tuple(meta.size), meta.command)
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(f"the evaluator trained on {meta.dataset!r} does not record its training spacing: images "
                      "are used at their own spacing (retrain it to record one)", SpacingWarning, stacklevel=2)
    return None


def save_checkpoint(path: str | Path, model: Evaluator, meta: EvaluatorMeta, train_state: dict | None = None) -> Path:
    """Write ``path`` (.pt) and ``path.with_suffix('.json')`` atomically."""
    return save_model_checkpoint(path, unwrap(model).state_dict(), asdict(meta), train_state)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dictionary, with a clear error for missing or foreign files."""
    hint = ("train one with `imse-study train-evaluator` or use a shipped one, "
            "e.g. load_pretrained('phantom-t1-2d')")
    return read_payload(path, "evaluator checkpoint", hint, check=_not_an_evaluator)


def _not_an_evaluator(payload: dict) -> str | None:
    meta = payload["meta"]
    if payload.get("kind") == "registration" or "similarity" in meta:
        return "it holds a registration network (load it with imse_study.registration.load_network)"
    if "source" in meta and "kind" in meta:
        return "it holds a translator (load it with imse_study.baselines.load_translator)"
    return None


def load_evaluator(
    path: str | Path, modality: str | None = None, dim: int | None = None, map_location: str | torch.device = "cpu",
    dataset: str | None = None,
) -> tuple[Evaluator, EvaluatorMeta]:
    """Build the evaluator stored in ``path`` (its metadata's ``arch``), in eval mode.

    ``modality`` / ``dim`` / ``dataset``, when given, must match what the evaluator was trained on:
    an evaluator trained on CT cannot serve as a T1 reference, a 3D one cannot read 2D images, and
    one trained on the phantom has not seen the contrasts of a real data set.
    """
    payload = read_checkpoint(path)
    meta = EvaluatorMeta.from_dict(payload["meta"])
    if modality is not None and modality.lower() != meta.modality.lower():
        raise ValueError(
            f"{Path(path).name} was trained on {meta.modality!r} images, not {modality!r}: its reference "
            f"channel must be a {meta.modality} image. Use an evaluator trained on {modality!r} "
            f"(e.g. `imse-study train-evaluator --modality {modality}`) or pass your {meta.modality} image "
            "as the reference."
        )
    if dim is not None and dim != meta.dim:
        raise ValueError(f"{Path(path).name} is a {meta.dim}D evaluator; it cannot be applied to {dim}D images")
    if dataset is not None and not same_dataset(dataset, meta.dataset):
        raise ValueError(
            f"{Path(path).name} was trained on data set {meta.dataset!r}, not {dataset!r}: train an evaluator on "
            f"{dataset!r} (`imse-study train-evaluator --dataset {dataset} --root DIR --modality {meta.modality}`, "
            "or `-p train True` in a notebook)")
    try:
        model = build_evaluator(meta.dim, meta.width, meta.n_blocks, meta.arch)
    except ValueError as err:
        raise ValueError(f"{path}: {err} (written by a newer imse-study? upgrade it)") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the evaluator its metadata describes: {err}") from None
    return model.to(map_location).eval(), meta
