"""Data: the bundled phantom, data sets by manifest, NIfTI input/output and intensity scaling.

The phantom's names (``load_phantom``, ``PhantomSet``, ...) are imported on first use, so that
importing :mod:`imse_study.data` stays light.
"""

from __future__ import annotations

import importlib

from imse_study.data.datasets import (
    DatasetError,
    DatasetWarning,
    ImagePair,
    is_phantom,
    list_datasets,
    load_dataset,
    load_manifest,
    manifest_dir,
    split_subjects,
)
from imse_study.data.io import load_labels, load_nifti, save_nifti
from imse_study.data.normalise import normalise, normalise_ct, normalise_mr

_PHANTOM_NAMES = ("load_phantom", "PhantomSet", "MODALITIES", "LABELS")

__all__ = [
    "DatasetError", "DatasetWarning", "ImagePair", "is_phantom", "list_datasets", "load_dataset", "load_manifest",
    "manifest_dir", "split_subjects", "load_labels", "load_nifti", "save_nifti", "normalise",
    "normalise_ct", "normalise_mr", *_PHANTOM_NAMES,
]


def __getattr__(name: str):
    """Import the phantom module only when one of its names is asked for."""
    if name in _PHANTOM_NAMES:
        return getattr(importlib.import_module("imse_study.data.phantom"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
