"""Checkpoint files: plain data only, written atomically, read without unpickling code.

Checkpoints hold tensors and plain Python data only, and are read with
``torch.load(weights_only=True)``: a ``.pt`` file from elsewhere can never run code when loaded.
"""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imse_study.atomic import atomic_write, atomic_write_json


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
    known = {f.name for f in dataclasses.fields(cls)}
    clean = {k: (tuple(v) if k in tuples and isinstance(v, list) else v) for k, v in data.items() if k in known}
    try:
        return cls(**clean)
    except TypeError as err:
        raise ValueError(f"{what} metadata is incomplete ({err})") from None
