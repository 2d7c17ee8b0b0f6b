"""Atomic file writes: a temp file in the target's folder, then a rename, so a crash or a full disk
never leaves a half-written checkpoint, data set or image where a good one was expected."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable


_TEMP_PREFIX = ".{name}."  # + tempfile's 8 random characters + the suffix
# a temp name: "." + target name + "." + tempfile's 8 random characters + a suffix holding ".tmp"
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)*\.tmp(\.[A-Za-z0-9]+)*")


def atomic_write(path: str | Path, write: Callable[[str], None], suffix: str = ".tmp") -> Path:
    """Call ``write(temp_path)`` then move the result onto ``path`` (readable by all, 0644).

    ``suffix`` ends the temp file's name, for writers that look at the extension (``.nii.gz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX.format(name=path.name), suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(obj: Any, path: str | Path) -> Path:
    """JSON written atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)

    return atomic_write(path, write)


def leftover_temp_files(folder: str | Path, targets: Iterable[str] | None = None) -> list[Path]:
    """Temp files that :func:`atomic_write` left in ``folder`` when its process was killed mid-write
    (``.last.pt.k3j9x_2a.tmp`` for ``last.pt``): names of that pattern only, and only those of the
    files named in ``targets`` when given."""
    folder, wanted = Path(folder), None if targets is None else set(targets)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _TEMP_NAME.fullmatch(path.name)
        if match and path.is_file() and (wanted is None or match["target"] in wanted):
            found.append(path)
    return sorted(found)


def remove_leftover_temp_files(folder: str | Path, targets: Iterable[str] | None = None) -> list[Path]:
    """Delete the :func:`leftover_temp_files` of ``folder``; only while no process writes there."""
    removed = leftover_temp_files(folder, targets)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
