"""Where the repository checkout is: the installed package never looks next to its own files.

The study's notebooks, the book and the data set manifests live in a checkout of the repository,
not in the package. Code that needs them finds the checkout from an explicit path (a ``--repo``
option), else ``$IMSE_STUDY_CHECKOUT`` (the study runner sets it for the notebooks it runs, whose
working folder may be anywhere), else the working folder or one above it.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_CHECKOUT = "IMSE_STUDY_CHECKOUT"


def is_checkout(folder: Path) -> bool:
    """A checkout holds ``notebooks/`` and ``book/_toc.yml``."""
    return (folder / "notebooks").is_dir() and (folder / "book" / "_toc.yml").is_file()


def find_checkout(given: str | os.PathLike | None = None, start: str | os.PathLike | None = None) -> Path:
    """The checkout: ``given``, else ``$IMSE_STUDY_CHECKOUT``, else ``start`` (default: the working
    folder) or the nearest folder above it that is one; a clear error when there is none."""
    for explicit, what in ((given, "--repo"), (os.environ.get(ENV_CHECKOUT), f"${ENV_CHECKOUT}")):
        if explicit:
            folder = Path(explicit).expanduser().resolve()
            if not is_checkout(folder):
                raise FileNotFoundError(f"{what} {folder} is not a checkout of imse-study (no notebooks/ and "
                                        "book/_toc.yml there)")
            return folder
    here = Path(start or Path.cwd()).resolve()
    found = next((f for f in (here, *here.parents) if is_checkout(f)), None)
    if found is None:
        raise FileNotFoundError(f"no checkout of imse-study in {here} or above it (a folder with notebooks/ and "
                                "book/_toc.yml): run from a checkout, or pass --repo (or set $IMSE_STUDY_CHECKOUT)")
    return found
