"""Pieces every training loop of the package shares: atomic files, per-step seeding, logs, DDP.

Per-step seeding: each step draws its randomness from a generator seeded by (seed, rank, step), so
a run resumed from its last checkpoint continues exactly as if it had not stopped.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from imse_study.atomic import atomic_write, atomic_write_json  # noqa: F401  (re-exported)


def package_version() -> str:
    """The installed imse-study version ("unknown" in a bare source tree)."""
    try:
        from importlib.metadata import version

        return version("imse-study")
    except Exception:  # noqa: BLE001 - running from a source tree without metadata
        return "unknown"


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save through a temp file in the same folder and a rename: never a half-written file."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def write_log_csv(path: str | Path, history: list[dict]) -> Path:
    """The whole training history as CSV, rewritten atomically each epoch."""
    keys = list(dict.fromkeys(k for row in history for k in row))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(history)

    return atomic_write(path, write)


def with_budget(cfg, epochs: int | None = None, **overrides):
    """``cfg`` (a frozen training-budget dataclass of :mod:`imse_study.config`) with ``epochs`` epochs
    instead of the profile's and any other field replaced by ``overrides`` (``None`` values are
    ignored), e.g. ``lr`` or ``batch_size`` for a GPU-sized run. Unchanged when nothing is given."""
    changes = {k: v for k, v in {"epochs": epochs, **overrides}.items() if v is not None}
    unknown = sorted(set(changes) - {f.name for f in fields(cfg)})
    if unknown:
        raise ValueError(f"unknown training setting(s) {unknown}: choose from {[f.name for f in fields(cfg)]}")
    for key in ("epochs", "batch_size", "steps_per_epoch", "width", "n_blocks"):
        if key in changes and int(changes[key]) < 1:
            raise ValueError(f"{key} must be at least 1, not {changes[key]}")
    if "lr" in changes and not float(changes["lr"]) > 0:
        raise ValueError(f"lr must be positive, not {changes['lr']}")
    return replace(cfg, **changes) if changes else cfg


def budget_arguments(epochs: int | None = None, **overrides) -> list[str]:
    """The command-line flags (``--epochs 4 --lr 0.0005`` ...) that reproduce the given overrides."""
    flags = {"n_blocks": "--blocks"}
    args: list[str] = []
    for key, value in {"epochs": epochs, **overrides}.items():
        if value is not None:
            args += [flags.get(key, "--" + key.replace("_", "-")), str(value)]
    return args


def time_deadline(seconds: float | None, world: int = 1) -> float | None:
    """The ``time.perf_counter()`` moment a ``time_limit`` run stops (after the epoch it falls in).

    A run stopped this way ends as if it had been given that many epochs (Adam at a constant
    learning rate, seeded steps), so its final checkpoint records ``--epochs <reached>`` and the
    command reproduces it exactly. One process only: under torchrun ranks could disagree.
    """
    if seconds is None:
        return None
    if not seconds > 0:
        raise ValueError(f"time_limit must be positive seconds, not {seconds}")
    if world > 1:
        raise ValueError("time_limit needs a single process; under torchrun give --epochs instead")
    return time.perf_counter() + float(seconds)


def time_is_up(deadline: float | None) -> bool:
    """Has the :func:`time_deadline` of a ``time_limit`` run passed (never, without one)?"""
    return deadline is not None and time.perf_counter() >= deadline


def device_of(model) -> torch.device:
    """Where a module's parameters live (the CPU for a parameter-free callable, e.g. a test oracle)."""
    params = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
    return next(params, torch.empty(0)).device


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The random generator of one training step (see the module docstring)."""
    state = np.random.SeedSequence([seed, rank, step]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def seeded_init(seed: int, build):
    """Build a model with its initial weights drawn from ``seed``, leaving global RNG state alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def training_device(device: str | None, world: int) -> torch.device:
    """The device of this process: the given one, else its GPU under torchrun, else the CPU."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    return dev


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return model.module if hasattr(model, "module") else model


def save_model_checkpoint(path: str | Path, state_dict: dict, meta: dict, train_state: dict | None = None,
                          **extra: Any) -> Path:
    """``path`` (.pt: state_dict, meta, optional training state) and ``path.json`` (meta), atomically."""
    path = Path(path)
    payload = {"state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "meta": meta, **extra}
    if train_state is not None:
        payload["train_state"] = train_state
    atomic_torch_save(payload, path)
    atomic_write_json(meta, path.with_suffix(".json"))
    return path


def read_payload(path: str | Path, what: str, hint: str, check=None) -> dict[str, Any]:
    """A checkpoint dictionary with clear errors: missing (with ``hint``), unreadable, or not ``what``.

    ``check(payload)`` may return a message saying why the file is another kind of checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}: {hint}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not our file"
        raise ValueError(f"{path} is not a readable {what} ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or "state_dict" not in payload or "meta" not in payload:
        raise ValueError(f"{path} is not an imse-study {what} (no state_dict/meta)")
    problem = check(payload) if check is not None else None
    if problem:
        raise ValueError(f"{path} is not a {what}: {problem}")
    return payload


def meta_from_dict(cls: type, data: dict[str, Any], what: str, tuples: tuple[str, ...] = ("size",)):
    """Build a metadata dataclass from JSON-like data (unknown keys ignored, lists -> tuples)."""
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    clean = {k: (tuple(v) if k in tuples and isinstance(v, list) else v) for k, v in data.items() if k in known}
    try:
        return cls(**clean)
    except TypeError as err:
        raise ValueError(f"{what} metadata is incomplete ({err})") from None


def resume_state(path: Path, read, meta_from, meta, keys: tuple[str, ...]) -> tuple[dict, dict]:
    """The checkpoint and training state to resume from, after checking the run asks for the same thing."""
    if not path.exists():
        raise FileNotFoundError(f"cannot resume: no {path.name} in {path.parent} (start without --resume)")
    payload = read(path)
    saved = meta_from(payload["meta"])
    for key in keys:
        if getattr(saved, key) != getattr(meta, key):
            raise ValueError(
                f"cannot resume {path}: it was trained with {key}={getattr(saved, key)!r}, this run asks for "
                f"{getattr(meta, key)!r}. Use the same options, or a new output folder."
            )
    if "train_state" not in payload:
        raise ValueError(f"{path} holds no training state; it cannot be resumed")
    return payload, payload["train_state"]


def record_epoch(out: Path, save, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: Any,
                 history: list[dict], row: dict, step: int, epoch: int, elapsed: float) -> None:
    """End of an epoch (rank 0): log the row, count steps in the metadata, write ``last.pt`` with the
    training state that resume needs, and ``log.csv``."""
    history.append(row)
    meta.steps, meta.epochs = step, epoch
    meta.extra["train_seconds"] = round(elapsed, 1)
    state = {"optimizer": optimizer.state_dict(), "step": step, "epoch": epoch, "history": history,
             "elapsed": elapsed}
    save(Path(out) / "last.pt", unwrap(model), meta, train_state=state)
    write_log_csv(Path(out) / "log.csv", history)
