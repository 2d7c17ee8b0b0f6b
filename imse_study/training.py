"""Pieces every training loop of the package shares: atomic files, per-step seeding, logs, DDP,
the run folder (refuse to clobber, exact resume) and safe checkpoint loading.

Per-step seeding: each step draws its randomness from a generator seeded by (seed, rank, step), so
a run resumed from its last checkpoint continues exactly as if it had not stopped; resuming checks
that every setting that shapes the weights is the one the run started with.

Checkpoints hold tensors and plain Python data only, and are read with
``torch.load(weights_only=True)``: a ``.pt`` file from elsewhere can never run code when loaded.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import pickle
import time
import warnings
from collections import OrderedDict
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from imse_study.atomic import atomic_write, atomic_write_json, remove_leftover_temp_files  # noqa: F401  (re-exported)


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


def plain(obj: Any) -> Any:
    """``obj`` made of tensors and plain Python data only (what ``torch.load(weights_only=True)``
    reads back): numpy scalars become Python numbers, numpy arrays tensors, paths strings,
    dataclasses dictionaries. Anything else is refused here, at saving, rather than at loading."""
    if obj is None or isinstance(obj, (bool, int, float, complex, str, torch.Tensor, torch.dtype, torch.device)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Size):
        return tuple(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for key, value in obj.items():
            out[plain(key)] = plain(value)
        if hasattr(obj, "_metadata"):  # a module state_dict's version record
            out._metadata = plain(obj._metadata)  # type: ignore[attr-defined]
        return out
    if isinstance(obj, tuple):
        return tuple(plain(v) for v in obj)
    if isinstance(obj, (list, set, frozenset)):
        return [plain(v) for v in obj]
    raise TypeError(f"a checkpoint holds tensors and plain data only, not {type(obj).__name__} ({obj!r:.80})")


def save_model_checkpoint(path: str | Path, state_dict: dict, meta: dict, train_state: dict | None = None,
                          **extra: Any) -> Path:
    """``path`` (.pt: state_dict, meta, optional training state) and ``path.json`` (meta), atomically.

    Everything goes through :func:`plain`, so that :func:`read_payload` can load it with
    ``weights_only=True``."""
    path = Path(path)
    payload = {"state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "meta": meta, **extra}
    if train_state is not None:
        payload["train_state"] = train_state
    atomic_torch_save(plain(payload), path)
    atomic_write_json(meta, path.with_suffix(".json"))
    return path


def safe_load(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU with one-line errors.

    ``weights_only`` rebuilds tensors and plain data and refuses every other object *before*
    creating it, so a crafted pickle (whose objects would run code) is rejected without effect.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4": a plain pickle, refused or read below
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" in str(err).lower():
            raise ValueError(f"{path} is not a safe imse-study {what}: it holds Python objects other than tensors "
                             "and plain data, which are refused unread (they could run code)") from None
        raise ValueError(f"{path} is not a readable {what} ({_first_line(err)})") from None
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file: "not our file"
        raise ValueError(f"{path} is not a readable {what} ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def read_payload(path: str | Path, what: str, hint: str, check=None) -> dict[str, Any]:
    """A checkpoint dictionary with clear errors: missing (with ``hint``), unsafe, unreadable, or not ``what``.

    ``check(payload)`` may return a message saying why the file is another kind of checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}: {hint}")
    payload = safe_load(path, what)
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


RUN_STATE, RUN_LOG = "last.pt", "log.csv"


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


def record_epoch(out: Path, save, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: Any,
                 history: list[dict], row: dict, step: int, epoch: int, elapsed: float,
                 settings: dict[str, Any]) -> None:
    """End of an epoch (rank 0): log the row, count steps in the metadata, write ``last.pt`` with the
    training state that resume needs (``settings``: the run's :func:`run_settings`), and ``log.csv``."""
    history.append(row)
    meta.steps, meta.epochs = step, epoch
    meta.extra["train_seconds"] = round(elapsed, 1)
    state = {"optimizer": optimizer.state_dict(), "step": step, "epoch": epoch, "history": history,
             "elapsed": elapsed, "settings": settings}
    save(Path(out) / RUN_STATE, unwrap(model), meta, train_state=state)
    write_log_csv(Path(out) / RUN_LOG, history)
