"""Write a phantom split as NIfTI files that any viewer opens (``imse-study phantom --out DIR``).

One file per subject and modality, ``<subject>_<modality>.nii.gz``, one ``<subject>_labels.nii.gz``
and ``labels.json`` (label name -> integer value). 2D subjects are written as a stack of their
axial slices (equally spaced, so one affine describes the stack).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imse_study.atomic import atomic_write_json
from imse_study.config import Profile
from imse_study.data.io import save_nifti
from imse_study.data.phantom import LABELS, MODALITIES, PhantomSet, load_phantom, subject_name


def subject_volumes(data: PhantomSet, subject: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The images (modality -> array), label map and affine of one subject, as written to NIfTI."""
    rows = np.flatnonzero(data.subjects == subject)
    if rows.size == 0:
        raise ValueError(f"subject {subject} is not in this phantom set")
    if data.dim == 3:
        item = rows[0]
        return {m: v[item] for m, v in data.images.items()}, data.labels[item], data.affines[item]
    # 2D: (n, H, W) slices -> (H, W, n); each slice affine maps (i, j, 0), and its third column is
    # the slice spacing, so the first slice's affine maps the whole stack.
    stack = lambda a: np.moveaxis(a[rows], 0, -1)  # noqa: E731
    return {m: stack(v) for m, v in data.images.items()}, stack(data.labels), data.affines[rows[0]]


def write_phantom_nifti(
    out: str | Path, split: str = "test", dim: int = 2, profile: str | Profile = "quick", progress: bool = True
) -> list[Path]:
    """Write every subject of a phantom split to ``out``; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_phantom(split, dim, profile, MODALITIES, progress=progress)
    written = []
    for subject in np.unique(data.subjects):
        images, labels, affine = subject_volumes(data, int(subject))
        stem = subject_name(int(subject))
        for modality, image in images.items():
            path = out / f"{stem}_{modality}.nii.gz"
            save_nifti(path, image, affine)
            written.append(path)
        path = out / f"{stem}_labels.nii.gz"
        save_nifti(path, labels.astype(np.uint8), affine, labels=True)
        written.append(path)
    written.append(atomic_write_json(LABELS, out / "labels.json"))
    return written

