"""Write a phantom split as NIfTI files that any viewer opens (``imse-study phantom --out DIR``).

One file per subject and modality, ``<subject>_<modality>.nii.gz``, one ``<subject>_labels.nii.gz``
and ``labels.json`` (label name -> integer value); version 2 adds ``appearance.json`` (what each
subject drew: field strength, sequences, noise, ...). 2D subjects are written as a stack of their
axial slices (equally spaced, so one affine describes the stack).
"""

from __future__ import annotations

from dataclasses import replace
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
    out: str | Path, split: str = "test", dim: int = 2, profile: str | Profile = "quick", progress: bool = True,
    version: int | None = None, variant: str | None = None,
) -> list[Path]:
    """Write every subject of a phantom split (``version``, ``variant``: see
    :func:`imse_study.data.phantom.load_phantom`) to ``out``; returns the files written."""
    data = load_phantom(split, dim, profile, MODALITIES, progress=progress, version=version, variant=variant)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
    if data.appearance:
        written.append(atomic_write_json(data.appearance, out / "appearance.json"))
    return written


def item(data: PhantomSet, index: int) -> PhantomSet:
    """A one-item set holding item ``index`` of ``data`` (for figures)."""
    rows = slice(index, index + 1)
    subject = int(data.subjects[index])
    return replace(data, images={m: v[rows] for m, v in data.images.items()}, labels=data.labels[rows],
                   subjects=data.subjects[rows], affines=data.affines[rows],
                   appearance=[a for a in data.appearance if a.get("subject") == subject])


def montage_sets(
    split: str = "test", profile: str | Profile = "quick", version: int | None = None,
    variants: tuple[str, ...] = (), slice_index: int | None = None,
) -> dict[str, PhantomSet]:
    """One-item 2D sets for a montage (:func:`imse_study.viz.phantom_montage`): version 1 the first
    subject; version 2 the first subject at 1.5 T and the first at 3 T, then the 1.5 T subject in
    each of ``variants`` (same anatomy, so the row shows only what the variant changes).

    ``docs/phantom_v2_montage.png`` is ``montage_sets("test", "quick", 2, ("noisy", "strong-bias",
    "thick-slice", "small-head", "3t-long-te", "conventional-se"))``.
    """
    data = load_phantom(split, 2, profile, MODALITIES, version=version)
    per_subject = int(np.sum(data.subjects == data.subjects[0]))
    offset = per_subject // 2 if slice_index is None else slice_index
    if not data.appearance:
        return {f"{split} {subject_name(int(data.subjects[0]))}": item(data, offset)}
    sets, first = {}, {}
    for a in data.appearance:
        first.setdefault(a["field_t"], a["subject"])
    for field_t, subject in sorted(first.items()):
        index = int(np.flatnonzero(data.subjects == subject)[0]) + offset
        sets[f"{field_t:g} T ({subject_name(subject)})"] = item(data, index)
    base = first.get(1.5, min(first.values()))
    for variant in variants:
        varied = load_phantom(split, 2, profile, MODALITIES, version=version, variant=variant)
        sets[variant] = item(varied, int(np.flatnonzero(varied.subjects == base)[0]) + offset)
    return sets

