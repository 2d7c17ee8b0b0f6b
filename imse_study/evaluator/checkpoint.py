"""Evaluator checkpoints: a state_dict plus JSON metadata, written atomically, loaded with checks.

A training checkpoint (``.pt``) holds ``{"state_dict", "meta", "train_state"}`` where
``train_state`` (optimizer, step, epoch, RNG) lets ``--resume`` continue a run exactly; a
``<name>.json`` beside it repeats the metadata for people and tools. Shipped evaluators keep only
weights and metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from imse_study.evaluator.model import OUTPUT_SCALE, Evaluator
from imse_study.training import atomic_torch_save, atomic_write_json, package_version, unwrap


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
    steps: int = 0
    epochs: int = 0
    seed: int = 0
    output_scale: float = OUTPUT_SCALE
    package_version: str = field(default_factory=package_version)
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluatorMeta":
        known = {f.name for f in fields(cls)}
        missing = [f.name for f in fields(cls) if f.name not in data and f.default is f.default_factory is None]
        clean = {k: v for k, v in data.items() if k in known}
        try:
            meta = cls(**clean)
        except TypeError as err:
            raise ValueError(f"evaluator metadata is incomplete ({err}); missing {missing}") from None
        meta.size = tuple(meta.size)
        meta.n_range = tuple(meta.n_range) if meta.n_range is not None else None
        return meta


def save_checkpoint(path: str | Path, model: Evaluator, meta: EvaluatorMeta, train_state: dict | None = None) -> Path:
    """Write ``path`` (.pt) and ``path.with_suffix('.json')`` atomically."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    payload = {"state_dict": state, "meta": asdict(meta)}
    if train_state is not None:
        payload["train_state"] = train_state
    atomic_torch_save(payload, path)
    atomic_write_json(asdict(meta), path.with_suffix(".json"))
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dictionary, with a clear error for missing or foreign files."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no evaluator checkpoint at {path}: train one with `imse-study train-evaluator` "
            "or use a shipped one, e.g. load_pretrained('phantom-t1-2d')"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not our file"
        raise ValueError(f"{path} is not a readable evaluator checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or "state_dict" not in payload or "meta" not in payload:
        raise ValueError(f"{path} is not an imse-study evaluator checkpoint (no state_dict/meta)")
    return payload


def load_evaluator(
    path: str | Path, modality: str | None = None, dim: int | None = None, map_location: str | torch.device = "cpu"
) -> tuple[Evaluator, EvaluatorMeta]:
    """Build the evaluator stored in ``path``, in eval mode.

    ``modality`` / ``dim``, when given, must match what the evaluator was trained on: an
    evaluator trained on CT cannot serve as a T1 reference, and a 3D one cannot read 2D images.
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
    model = Evaluator(meta.dim, meta.width, meta.n_blocks)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the evaluator its metadata describes: {err}") from None
    return model.to(map_location).eval(), meta
