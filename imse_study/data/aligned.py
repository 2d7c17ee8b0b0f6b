"""Aligned images of two modalities of one split, stacked as tensors, from the phantom or a manifest set.

The experiments (registration, ranking, translation, the fooling diagnostic) all start from a data
set's *aligned* pairs and misalign them themselves with seeded transforms, so the true alignment is
known on real data as on the phantom. :func:`load_aligned` gives those pairs in one form for both
kinds of data set: images and label maps per modality as ``(N, 1, *S)`` tensors, one id per item
(``<subject>/<k>``, the k-th item of that subject) and the label names.

The phantom is read with :func:`imse_study.data.phantom.load_phantom` exactly as before this module
existed (one label map shared by every modality), so every phantom number stays the same. A
manifest set is read with :func:`imse_study.data.datasets.load_dataset`; where a pair has a label
map for one modality only, the two images being aligned, that map serves for both.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from imse_study.data.datasets import DatasetError, DatasetWarning, ImagePair, is_phantom

_SPACING_RTOL = 1e-3


@dataclass
class AlignedSet:
    """Aligned items of one split in two modalities (the two may be the same one)."""

    images: dict[str, torch.Tensor]  # modality -> (N, 1, *S) float32 in [-1, 1]
    labels: dict[str, torch.Tensor] | None  # modality -> (N, 1, *S) float32 label values; None: no labels
    spacing: tuple[float, ...]  # mm per array axis
    subjects: np.ndarray  # (N,) the subject of each item (the phantom's int ids, a manifest's names)
    ids: list[str]  # "<subject>/<k>"
    label_names: dict[str, int]  # name -> value, background included; empty without labels
    dataset: str

    def __len__(self) -> int:
        return len(self.ids)


def load_aligned(
    moving: str,
    target: str,
    split: str = "test",
    dim: int = 2,
    profile: str = "quick",
    dataset: str = "phantom",
    root: str | None = None,
    labels: bool | None = True,
    version: int | None = None,
    variant: str | None = None,
) -> AlignedSet:
    """The aligned ``moving``/``target`` items of ``split`` of ``dataset`` (phantom or a manifest name).

    ``labels``: True requires label maps (a clear error if the data set has none; items without
    one are left out with a warning), None loads them where every item has one, False skips them.
    ``root`` is a manifest set's data folder; ``profile`` sizes the phantom (manifest sets ignore it).
    ``version`` and ``variant`` pick the phantom's generation and held-out appearance (test split
    only) as :func:`~imse_study.data.phantom.load_phantom` does; None is its default. A manifest set
    refuses them.
    """
    if is_phantom(dataset):
        return _phantom(moving, target, split, dim, profile, labels, version, variant)
    if version is not None or variant is not None:
        raise ValueError(f"phantom version/variant apply to the phantom only, not to data set {dataset!r}: "
                         "leave them out for a manifest set")
    from imse_study.data.datasets import load_dataset

    pairs = load_dataset(dataset, root=root, split=split, dim=dim, pair=(moving, target), profile=profile,
                         labels="none" if labels is False else None)
    label_maps = None
    if labels is not False:
        pairs, label_maps = _with_labels(pairs, dataset, split, moving, target, required=bool(labels))
    return _stack(pairs, label_maps, dataset, split, dim, moving, target)


def _phantom(moving: str, target: str, split: str, dim: int, profile: str, labels: bool | None,
             version: int | None = None, variant: str | None = None) -> AlignedSet:
    from imse_study.data.phantom import LABELS, load_phantom, subject_name

    chosen = {k: v for k, v in (("version", version), ("variant", variant)) if v is not None}
    data = load_phantom(split, dim, profile, (moving, target), **chosen)  # only what is given: as before otherwise
    images = {m: torch.from_numpy(data.images[m]).unsqueeze(1) for m in (moving, target)}
    shared = None if labels is False else torch.from_numpy(data.labels.astype(np.float32)).unsqueeze(1)
    ids = _item_ids([subject_name(int(s)) for s in data.subjects])
    return AlignedSet(images=images, labels=None if shared is None else {moving: shared, target: shared},
                      spacing=tuple(data.spacing), subjects=np.asarray(data.subjects), ids=ids,
                      label_names=dict(LABELS) if shared is not None else {}, dataset="phantom")


def _item_ids(subjects: list[str]) -> list[str]:
    """``<subject>/<k>``: the k-th item of each subject, in order."""
    counts: dict[str, int] = {}
    ids = []
    for subject in subjects:
        counts[subject] = counts.get(subject, -1) + 1
        ids.append(f"{subject}/{counts[subject]}")
    return ids


def _with_labels(pairs: list[ImagePair], dataset: str, split: str, moving: str, target: str,
                 required: bool) -> tuple[list[ImagePair], list[tuple[np.ndarray, np.ndarray]] | None]:
    """The pairs that have a label map and (moving, target) label maps for each; see :func:`load_aligned`."""
    def maps(p: ImagePair) -> tuple[np.ndarray, np.ndarray] | None:
        m = p.moving_labels if p.moving_labels is not None else p.target_labels
        t = p.target_labels if p.target_labels is not None else p.moving_labels
        return None if m is None else (m, t)

    found = [(p, maps(p)) for p in pairs]
    kept = [(p, m) for p, m in found if m is not None]
    if len(kept) == len(pairs):
        return pairs, [m for _, m in kept]
    if not required:
        return pairs, None
    if not kept:
        raise DatasetError(
            f"data set {dataset!r} has no label maps for the {split} items of {moving} and {target}; these "
            "experiments score registration with Dice/HD95 against label maps. Add label maps as the manifest "
            f"describes (e.g. for the folder set <root>/<subject>/labels.nii.gz), or use a data set with labels.")
    missing = sorted({p.subject for p, m in found if m is None})
    warnings.warn(f"{dataset}: {len(pairs) - len(kept)} {split} item(s) have no label map and are left out "
                  f"(subjects {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})", DatasetWarning,
                  stacklevel=3)
    return [p for p, _ in kept], [m for _, m in kept]


def stack_arrays(arrays: list[np.ndarray], what: str) -> torch.Tensor:
    """Items of one shape as a tensor ``(N, 1, *S)``; a clear error when their shapes differ."""
    shapes = sorted({tuple(a.shape) for a in arrays})
    if not arrays:
        raise DatasetError(f"{what}: no items to stack")
    if len(shapes) > 1:
        raise DatasetError(
            f"{what}: the items have different shapes ({', '.join(map(str, shapes[:4]))}), but an experiment "
            "batches them. Give the manifest one size for them (preprocessing: {2d|3d}: size: [...]) or "
            "resample your images to one grid.")
    return torch.from_numpy(np.stack(arrays)).unsqueeze(1)


def _stack(pairs: list[ImagePair], label_maps: list[tuple[np.ndarray, np.ndarray]] | None, dataset: str,
           split: str, dim: int, moving: str, target: str) -> AlignedSet:
    what = f"data set {dataset!r}, {split} split, {dim}D {moving}/{target}"
    images = {moving: stack_arrays([p.moving for p in pairs], what),
              target: stack_arrays([p.target for p in pairs], what)}
    spacing = tuple(float(s) for s in pairs[0].spacing)
    if any(not np.allclose(p.spacing, spacing, rtol=_SPACING_RTOL) for p in pairs):
        warnings.warn(f"{what}: the items' voxel spacings differ; HD95 uses the first item's {spacing}",
                      DatasetWarning, stacklevel=3)
    labels, names = None, {}
    if label_maps is not None:
        to_float = lambda k: stack_arrays([m[k].astype(np.float32) for m in label_maps], what)  # noqa: E731
        labels = {moving: to_float(0), target: to_float(1)}
        names = next((dict(p.label_names) for p in pairs if p.label_names), None) or _value_names(labels)
    return AlignedSet(images=images, labels=labels, spacing=spacing,
                      subjects=np.asarray([p.subject for p in pairs]), ids=_item_ids([p.subject for p in pairs]),
                      label_names=names, dataset=dataset)


def _value_names(labels: dict[str, torch.Tensor]) -> dict[str, int]:
    """Names for label values that a data set does not name: ``background`` (0) and ``label_<v>``."""
    values = sorted({int(v) for t in labels.values() for v in torch.unique(t).tolist()})
    return {"background": 0, **{f"label_{v}": v for v in values if v != 0}}


__all__ = ["AlignedSet", "load_aligned", "stack_arrays"]
