"""Evaluators shipped inside the package (trained on the phantom with the ``quick`` profile).

Each ``pretrained/<name>.pt`` has a ``<name>.json`` with its metadata, including the exact command
that reproduces it (``pretrained/README.md`` lists them with their validation figures).
"""

from __future__ import annotations

from pathlib import Path

import torch

from imse_study.evaluator.checkpoint import EvaluatorMeta, load_evaluator

PRETRAINED_DIR = Path(__file__).with_name("pretrained")


def available_pretrained() -> list[str]:
    """Names of the shipped evaluators, e.g. ``phantom-t1-2d``."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))


def pretrained_path(name: str) -> Path:
    """The file of a shipped evaluator; a clear error lists the names that exist."""
    path = PRETRAINED_DIR / f"{name}.pt"
    if not path.exists():
        names = ", ".join(available_pretrained()) or "none"
        raise ValueError(f"no shipped evaluator called {name!r}; available: {names}")
    return path


def load_pretrained(
    name: str, modality: str | None = None, dim: int | None = None, map_location: str | torch.device = "cpu",
    dataset: str | None = None,
) -> torch.nn.Module:
    """A shipped evaluator in eval mode; its metadata is at ``model.meta``."""
    model, meta = load_evaluator(pretrained_path(name), modality=modality, dim=dim, map_location=map_location,
                                 dataset=dataset)
    model.meta = meta
    return model


def load_any(evaluator: str | Path, modality: str | None = None, dim: int | None = None,
             dataset: str | None = None) -> tuple[torch.nn.Module, EvaluatorMeta]:
    """A shipped evaluator by name or a checkpoint file by path (``dataset``: the data set it must be
    trained on, checked when given; the shipped ones are trained on the phantom)."""
    if isinstance(evaluator, str) and (PRETRAINED_DIR / f"{evaluator}.pt").exists():
        model = load_pretrained(evaluator, modality, dim, dataset=dataset)
        return model, model.meta
    if isinstance(evaluator, str) and not Path(evaluator).suffix and not Path(evaluator).exists():
        pretrained_path(evaluator)  # raises with the list of shipped names
    return load_evaluator(evaluator, modality, dim, dataset=dataset)


def refuse_shipped(dataset: str, what: str = "evaluators", remedy: str | None = None) -> None:
    """The shipped models were trained on the phantom: a clear error for any other data set
    (``remedy`` says what to do instead; default: train them here)."""
    from imse_study.data.datasets import is_phantom

    if not is_phantom(dataset):
        remedy = remedy or f"train them on {dataset!r} here (train=True; in a notebook `-p train True`)"
        raise ValueError(f"the shipped {what} were trained on the phantom, not on data set {dataset!r}: {remedy}")

