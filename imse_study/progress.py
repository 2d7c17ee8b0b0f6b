"""Progress bars for long work, shown where the person waiting can see them.

Every long loop of the package (registration, evaluation, training, QA, phantom drawing) makes its
bar with :func:`progress_bar`. Where it goes is read from ``IMSE_STUDY_PROGRESS`` at each call:

- unset or ``auto``: tqdm's own choice (a text bar on a terminal, a widget in Jupyter);
- ``terminal``: a text bar on the process's original standard error. Inside a Jupyter kernel that
  is the terminal of whoever started the kernel: ``papermill notebook.ipynb out.ipynb`` shows the
  bars of a long cell below its "Executing" bar, and the executed notebook stays free of them;
- ``off``: no bar.

tqdm has no setting for this (``tqdm.auto`` always draws a widget in a kernel, which a papermill
command never shows), hence this small wrapper.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as text_tqdm

__all__ = ["ENV_PROGRESS", "DESTINATIONS", "progress_destination", "progress_bar"]

ENV_PROGRESS = "IMSE_STUDY_PROGRESS"
DESTINATIONS = ("auto", "terminal", "off")
T = TypeVar("T")


def progress_destination() -> str:
    """Where bars go now: ``auto``, ``terminal`` or ``off`` (see the module's docstring)."""
    value = os.environ.get(ENV_PROGRESS, "auto").strip().lower() or "auto"
    if value not in DESTINATIONS:
        raise ValueError(f"{ENV_PROGRESS}={value!r} is not one of {', '.join(DESTINATIONS)}; unset it or pick one")
    return value


def progress_bar(iterable: Iterable[T] | None = None, *, disable: bool = False, **kwargs) -> auto_tqdm:
    """A tqdm bar over ``iterable`` (or a manual one with ``total=``), drawn at
    :func:`progress_destination`; ``kwargs`` go to tqdm (``desc``, ``total``, ``unit``, ``leave`` ...)."""
    where = progress_destination()
    if where == "auto":
        return auto_tqdm(iterable, disable=disable, **kwargs)
    stream = sys.__stderr__
    if where == "off" or stream is None or stream.closed:
        return text_tqdm(iterable, disable=True, **kwargs)
    # a kernel's original stderr is no tty: tqdm would then draw one line per update, so redraw at most every 2 s
    kwargs.setdefault("mininterval", 2.0)
    return text_tqdm(iterable, disable=disable, file=stream, dynamic_ncols=False, ncols=100, **kwargs)
