"""A training run's folder: refuse to clobber, the log, and exact resume from ``last.pt``.

Resuming checks that every setting that shapes the weights is the one the run started with
(:func:`run_settings`, :func:`resume_state`), then restores networks and optimisers
(:func:`networks_state`, :func:`restore_networks`).
"""

from __future__ import annotations

import csv
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from imse_study.atomic import atomic_write, remove_leftover_temp_files
from imse_study.training.checkpoints import plain

RUN_STATE, RUN_LOG = "last.pt", "log.csv"


def write_log_csv(path: str | Path, history: list[dict]) -> Path:
    """The whole training history as CSV, rewritten atomically each epoch."""
    keys = list(dict.fromkeys(k for row in history for k in row))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(history)

    return atomic_write(path, write)


def prepare_run_folder(out: str | Path, final: str, what: str, resume: bool = False, overwrite: bool = False,
                       rank: int = 0) -> None:
    """Check and tidy the folder a training run is about to write into (``final``: its finished
    model's file name, e.g. ``evaluator.pt``; ``what``: its name for people).

    A run that holds a model (``final``) or an unfinished run (``last.pt``) is never replaced by a
    new run unless ``overwrite`` is given: ``resume`` continues it instead. ``overwrite`` deletes
    the old run's files first, so the folder never mixes two runs. Temp files that a killed run left
    mid-write (:func:`imse_study.atomic.atomic_write`'s ``.last.pt.<random>.tmp``) are removed.
    """
    out = Path(out)
    if resume and overwrite:
        raise ValueError("--resume continues the run in the output folder and --overwrite replaces it: "
                         "give one of them")
    files = (final, Path(final).with_suffix(".json").name, RUN_STATE, Path(RUN_STATE).with_suffix(".json").name,
             RUN_LOG)
    if not resume:
        found = [name for name in (final, RUN_STATE) if (out / name).exists()]
        if found and not overwrite:
            held = f"a trained {what}" if final in found else f"an unfinished {what} run"
            raise FileExistsError(f"{out} already holds {held} ({found[0]}): continue it with --resume or replace "
                                  "it with --overwrite (or train into another --out)")
        if found and rank == 0:
            for name in files:
                (out / name).unlink(missing_ok=True)
    if rank == 0:
        remove_leftover_temp_files(out, files)


def run_settings(meta: Any, keys: tuple[str, ...], budget: Any = None, free: tuple[str, ...] = ("epochs",),
                 **more: Any) -> dict[str, Any]:
    """Every setting that shapes a run's weights, as :func:`resume_state` compares them: the
    metadata fields ``keys``, the fields of the training-budget dataclass ``budget`` except those in
    ``free`` (a constant learning rate lets a resumed run be given more epochs), and ``more``."""
    settings = {key: getattr(meta, key) for key in keys}
    if budget is not None:
        settings.update({f.name: getattr(budget, f.name) for f in fields(budget) if f.name not in free})
    settings.update(more)
    return plain(settings)


def resume_state(path: Path, read, settings: dict[str, Any]) -> tuple[dict, dict]:
    """The checkpoint and training state to resume from, after checking that this run's ``settings``
    (:func:`run_settings`) are the ones the run was started with: a run resumed with another
    learning rate, batch size, network size, seed ... would not be the run its command describes."""
    if not path.exists():
        raise FileNotFoundError(f"cannot resume: no {path.name} in {path.parent} (start without --resume)")
    payload = read(path)
    if "train_state" not in payload:
        raise ValueError(f"{path} holds no training state; it cannot be resumed")
    state = payload["train_state"]
    saved = state.get("settings")
    if saved is None:  # written before runs recorded their settings: compare what its metadata holds
        recorded = {**payload["meta"].get("extra", {}), **payload["meta"]}
        saved = {key: recorded[key] for key in settings if key in recorded}
        keys = list(saved)
    else:
        keys = list(dict.fromkeys([*saved, *settings]))
    missing = "(not recorded)"
    differ = [f"{key}={saved.get(key, missing)!r} (now {settings.get(key, missing)!r})" for key in keys
              if _comparable(saved.get(key, missing)) != _comparable(settings.get(key, missing))]
    if differ:
        raise ValueError(f"cannot resume {path}: these settings differ from the run's: {', '.join(differ)}; resume "
                         "with the run's settings (only the epochs, --time-limit and --device may change) or train "
                         "into another --out")
    return payload, state


def _comparable(value: Any) -> Any:
    """A setting as JSON would hold it (tuples and lists alike)."""
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return value


def networks_state(models: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """The networks' and optimisers' part of a ``last.pt`` training state.

    One network with one optimiser (evaluator, registration network): ``{"optimizer": ...}``, the
    weights being the checkpoint's own ``state_dict``. Several (a GAN): ``{"models": {name: ...},
    "optimizers": {name: ...}}``, every network's weights included.
    """
    if len(models) == 1 and len(optimizers) == 1:
        return {"optimizer": next(iter(optimizers.values())).state_dict()}
    return {"models": {n: m.state_dict() for n, m in models.items()},
            "optimizers": {n: o.state_dict() for n, o in optimizers.items()}}


def restore_networks(payload: dict, state: dict, models: dict[str, torch.nn.Module],
                     optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Load what :func:`networks_state` saved (``payload``: the ``last.pt`` it was saved in)."""
    if len(models) == 1 and len(optimizers) == 1:
        next(iter(models.values())).load_state_dict(payload["state_dict"])
        next(iter(optimizers.values())).load_state_dict(state["optimizer"])
        return
    for name, model in models.items():
        model.load_state_dict(state["models"][name])
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
