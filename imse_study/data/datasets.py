"""Data sets by name: the bundled phantom, and real data sets described by YAML manifests.

A manifest (``data_manifests/<name>.yaml``) says where a data set comes from, its licence, the
file layout under a root folder (glob patterns with a ``{subject}`` placeholder), its modalities,
label maps, modality pairs, intensity normalisation, preprocessing and splits. The loader reads
only what the manifest describes; it never downloads anything.

Every loader returns the same thing, a list of :class:`ImagePair`: two aligned images of one
subject in two modalities, intensities in [-1, 1], with label maps where the data set has them.
Misalignment is applied later, by the registration experiments, not here.

Array layout: 3D volumes are ``(z, y, x)`` with z inferior -> superior, rows anterior ->
posterior and columns towards the subject's right (whole-voxel flips and axis swaps of the file,
never a resampling; the affine is updated to match), the layout of the phantom. 2D items are
axial slices ``(y, x)``; their affine maps the index ``(i, j, 0)`` to mm.
"""

from __future__ import annotations

import glob
import importlib
import itertools
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml
from scipy import ndimage as ndi

from imse_study.data.io import label_dtype, load_labels, load_nifti, reorient, spacing_of
from imse_study.data.normalise import normalise_ct, normalise_mr
from imse_study.modalities import CT, CTMR, kind_of
from imse_study.modalities import KINDS as MODALITY_KINDS
from imse_study.modalities import pair as study_pair

ENV_MANIFESTS = "IMSE_STUDY_MANIFESTS"  # a folder of manifests that replaces the bundled one
ENV_DATA = "IMSE_STUDY_DATA"  # $IMSE_STUDY_DATA/<name> is the default root of a file-based set
PHANTOM_ALIASES = {"phantom": "icbm152_phantom"}
SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = {"train": 0.75, "val": 0.05, "test": 0.2}
KINDS = ("files", "phantom")
REQUIRED_KEYS = (
    "name", "kind", "title", "description", "source", "licence", "citation",
    "modalities", "pairs", "default_pair", "normalisation", "preprocessing", "splits",
)
SLICE_MODES = ("foreground", "labels", "range", "all")
_GRID_ATOL_MM = 1e-2


class DatasetError(ValueError):
    """A data set cannot be loaded as its manifest describes; the message says what to fix."""


class DatasetWarning(UserWarning):
    """Something was skipped while loading (a subject without one modality, missing labels)."""


@dataclass
class ImagePair:
    """Two aligned images of one subject (or one slice of it) in two modalities."""

    moving: np.ndarray  # float32 in [-1, 1], (*S)
    target: np.ndarray
    moving_labels: np.ndarray | None  # integer label map on the moving image's grid, or None
    target_labels: np.ndarray | None
    spacing: tuple[float, ...]  # mm per array axis
    affine: np.ndarray  # 4x4 voxel index -> mm (2D: index (i, j, 0))
    subject: str
    moving_modality: str
    target_modality: str
    slice_index: int | None = None  # 2D: the slice's z index in the subject's volume (phantom: in its slab)
    label_names: dict[str, int] | None = None  # label name -> value, where the data set names them


# --------------------------------------------------------------------------------------------
# Manifests


def manifest_dir() -> Path:
    """The folder of manifests: ``$IMSE_STUDY_MANIFESTS``, else the checkout's ``data_manifests/``
    (the checkout the working folder is in, see :func:`imse_study.checkout.find_checkout`)."""
    from imse_study.checkout import find_checkout

    env = os.environ.get(ENV_MANIFESTS)
    if env:
        folder = Path(env).expanduser()
    else:
        try:
            folder = find_checkout() / "data_manifests"
        except FileNotFoundError as err:
            raise DatasetError(f"{err}; or set {ENV_MANIFESTS} to a folder of data set manifests (*.yaml)") from None
    if not folder.is_dir():
        hint = (f"{ENV_MANIFESTS} points there" if env else
                f"set {ENV_MANIFESTS} to the folder that holds the data set manifests (*.yaml)")
        raise DatasetError(f"manifest folder not found: {folder} ({hint})")
    return folder


def list_datasets() -> list[str]:
    """Names of the data sets that have a manifest (``phantom`` is an alias of ``icbm152_phantom``)."""
    return sorted(p.stem for p in manifest_dir().glob("*.yaml"))


def is_phantom(name: str | Path) -> bool:
    """True for the bundled phantom (``phantom`` or ``icbm152_phantom``), False for a manifest data set."""
    return same_dataset(name, "phantom")


def same_dataset(a: str | Path, b: str | Path) -> bool:
    """Do two data set names mean the same data set (``phantom`` and ``icbm152_phantom`` do)?"""
    return PHANTOM_ALIASES.get(str(a), str(a)) == PHANTOM_ALIASES.get(str(b), str(b))


def data_arguments(dataset: str | Path, root: str | Path | None = None) -> list[str]:
    """``--dataset NAME --root DIR`` of a training command line for a manifest set; none for the phantom."""
    if is_phantom(dataset):
        return []
    return ["--dataset", str(dataset)] + (["--root", str(root)] if root else [])


def dataset_phrase(name: str | Path) -> str:
    """How a page names the data set it ran on: ``the phantom`` or ``data set `brats2019```."""
    return "the phantom" if is_phantom(name) else f"data set `{name}`"


def manifest_path(name: str | Path) -> Path:
    """The manifest file of ``name``: a data set name, an alias, or a path to a ``.yaml`` file."""
    text = str(name)
    if text.endswith((".yaml", ".yml")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise DatasetError(f"manifest file not found: {path}")
        return path
    stem = PHANTOM_ALIASES.get(text, text)
    path = manifest_dir() / f"{stem}.yaml"
    if not path.is_file():
        raise DatasetError(f"no data set called {text!r}: known are {', '.join(list_datasets())} "
                           f"(manifests in {manifest_dir()})")
    return path


def load_manifest(name: str | Path) -> dict:
    """Read and validate the manifest of ``name``; DatasetError names the file and the problem."""
    path = manifest_path(name)
    try:
        manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DatasetError(f"manifest {path} cannot be read as YAML: {err}") from err
    if not isinstance(manifest, dict):
        raise DatasetError(f"manifest {path} must be a YAML mapping, not {type(manifest).__name__}")
    _validate(manifest, path)
    manifest["_path"] = str(path)
    return manifest


def _validate(m: dict, path: Path) -> None:
    """Check the keys every loader relies on, so a broken manifest fails here and not mid-load."""
    def fail(problem: str) -> DatasetError:
        return DatasetError(f"manifest {path} ({m.get('name', path.stem)}): {problem}")

    missing = [k for k in REQUIRED_KEYS if k not in m]
    if missing:
        raise fail(f"missing required key(s) {', '.join(map(repr, missing))}")
    if m["name"] != path.stem:
        raise fail(f"name {m['name']!r} differs from the file name {path.stem!r}")
    if m["kind"] not in KINDS:
        raise fail(f"kind must be one of {KINDS}, not {m['kind']!r}")
    if not isinstance(m["modalities"], dict):
        raise fail("'modalities' must be a mapping of modality name -> {kind, files}")
    for mod, spec in m["modalities"].items():
        if not isinstance(spec, dict) or spec.get("kind") not in MODALITY_KINDS:
            raise fail(f"modality {mod!r} needs 'kind' (one of {MODALITY_KINDS})")
        if m["kind"] == "files" and "files" not in spec:
            raise fail(f"modality {mod!r} lacks the key 'files' (its file pattern under root)")
    _validate_pairs(m, fail)
    _validate_layout(m, fail)
    _validate_labels(m, fail)
    _validate_splits(m, fail)


def _validate_pairs(m: dict, fail) -> None:
    pairs = m["pairs"]
    if not isinstance(pairs, dict) or not pairs:
        raise fail("'pairs' must map a pair name to [moving modality, target modality]")
    open_modalities = m["kind"] == "files" and "any_modality" in (m.get("layout") or {})
    for key, value in pairs.items():
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise fail(f"pair {key!r} must be a list of two modality names, not {value!r}")
        unknown = [v for v in value if v not in m["modalities"]]
        if unknown and not open_modalities:
            raise fail(f"pair {key!r} names unknown modality {unknown[0]!r}")
    if m["default_pair"] not in pairs:
        raise fail(f"default_pair {m['default_pair']!r} is not one of the pairs {list(pairs)}")


def _validate_layout(m: dict, fail) -> None:
    if m["kind"] != "files":
        return
    layout = m.get("layout")
    if not isinstance(layout, dict):
        raise fail("missing required key 'layout' (the expected files under root)")
    for key in ("root", "tree"):
        if key not in layout:
            raise fail(f"missing required key 'layout.{key}'")
    any_mod = layout.get("any_modality")
    if any_mod is not None and (not isinstance(any_mod, dict) or "files" not in any_mod):
        raise fail("'layout.any_modality' needs 'files' (a pattern with {subject} and {modality})")


def _validate_labels(m: dict, fail) -> None:
    labels = m.get("labels")
    if labels is None:
        return
    sets = labels.get("sets") if isinstance(labels, dict) else None
    if not isinstance(sets, dict):
        raise fail("'labels' needs 'sets' (label set name -> {files, names})")
    for key, spec in sets.items():
        if not isinstance(spec, dict) or ("files" not in spec and m["kind"] == "files") or "names" not in spec:
            raise fail(f"label set {key!r} needs 'files' and 'names'")
    if labels.get("default") is not None and labels["default"] not in sets:
        raise fail(f"labels.default {labels['default']!r} is not one of the label sets {list(sets)}")


def _validate_splits(m: dict, fail) -> None:
    splits = m["splits"] or {}
    fractions = splits.get("fractions")
    if fractions is not None:
        if set(fractions) != set(SPLITS) or any(not 0 <= float(v) <= 1 for v in fractions.values()):
            raise fail(f"splits.fractions must give {', '.join(SPLITS)} as numbers in [0, 1]")
        if abs(sum(float(v) for v in fractions.values()) - 1.0) > 1e-6:
            raise fail(f"splits.fractions must sum to 1, not {sum(float(v) for v in fractions.values())}")
    explicit = splits.get("explicit")
    if explicit is not None and (not isinstance(explicit, dict) or not set(explicit) <= set(SPLITS)):
        raise fail(f"splits.explicit must map some of {', '.join(SPLITS)} to lists of subject ids")


def expected_layout(manifest: dict) -> str:
    """The manifest's description of the files it expects under root, for error messages."""
    layout = manifest.get("layout") or {}
    text = f"root: {str(layout.get('root', '')).strip()}\n{str(layout.get('tree', '')).rstrip()}"
    notes = layout.get("notes")
    if notes:
        text += "\nnotes:\n" + "\n".join(f"  - {str(n).strip()}" for n in notes)
    return text


def _error(manifest: dict, root: Path | None, problem: str) -> DatasetError:
    """A DatasetError naming the manifest, the root and the expected layout."""
    where = manifest.get("_path", manifest.get("name"))
    return DatasetError(f"data set {manifest['name']!r} (manifest {where}): {problem}\n"
                        f"root given: {root}\n"
                        f"expected layout (from the manifest):\n{expected_layout(manifest)}")


# --------------------------------------------------------------------------------------------
# Files and subjects


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _pattern_regex(pattern: str) -> re.Pattern:
    """Regex for a relative path pattern: ``{subject}`` captures the id, ``*``/``?`` as in glob."""
    parts, seen = [], False
    for token in re.split(r"(\{subject\}|\*|\?)", pattern):
        if token == "{subject}":
            parts.append("(?P=subject)" if seen else "(?P<subject>[^/]+)")
            seen = True
        elif token == "*":
            parts.append("[^/]*")
        elif token == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts) + r"\Z")


def modality_spec(manifest: dict, modality: str) -> dict:
    """``{kind, files}`` of ``modality``: listed in the manifest or built from ``layout.any_modality``."""
    if modality in manifest["modalities"]:
        spec = dict(manifest["modalities"][modality])
        spec["files"] = _as_list(spec.get("files"))
        return spec
    any_mod = (manifest.get("layout") or {}).get("any_modality")
    if manifest["kind"] == "files" and any_mod:
        kind = kind_of(modality)
        return {"kind": kind, "files": [p.replace("{modality}", modality) for p in _as_list(any_mod["files"])]}
    raise DatasetError(f"data set {manifest['name']!r} has no modality {modality!r}: "
                       f"choose from {', '.join(manifest['modalities'])}")


def _glob_subjects(root: Path, patterns: list[str]) -> dict[str, Path]:
    """Subject id -> file for every file under ``root`` that matches one of ``patterns``."""
    found: dict[str, Path] = {}
    for pattern in patterns:
        regex = _pattern_regex(pattern)
        for path in sorted(root.glob(pattern.replace("{subject}", "*"))):
            match = regex.match(path.relative_to(root).as_posix())
            if match and match.group("subject") not in found:
                found[match.group("subject")] = path
    return found


def _subject_file(root: Path, patterns: list[str], subject: str) -> Path | None:
    """The one file of ``subject`` matching the first pattern that matches; None if none does."""
    for pattern in patterns:
        hits = sorted(root.glob(pattern.replace("{subject}", glob.escape(subject))))
        if len(hits) > 1:
            raise DatasetError(f"subject {subject!r}: pattern {pattern!r} matches several files under "
                               f"{root}: {', '.join(h.name for h in hits[:4])}")
        if hits:
            return hits[0]
    return None


def _some_files(root: Path, limit: int = 6) -> str:
    files = [p.relative_to(root).as_posix() for p in itertools.islice(root.rglob("*.nii*"), limit)]
    return ", ".join(files) if files else "no .nii/.nii.gz file at all"


def find_subjects(manifest: dict, root: str | Path, modalities: Sequence[str]) -> dict[str, dict[str, Path]]:
    """Subject id -> {modality: file} for the subjects that have every one of ``modalities``."""
    root = Path(root)
    per_mod = {m: _glob_subjects(root, modality_spec(manifest, m)["files"]) for m in dict.fromkeys(modalities)}
    common = sorted(set.intersection(*(set(v) for v in per_mod.values())))
    if not common:
        counts = "; ".join(f"{m}: {len(v)} subjects with files {modality_spec(manifest, m)['files']}"
                           for m, v in per_mod.items())
        raise _error(manifest, root, f"no subject has all of {', '.join(per_mod)} ({counts}). "
                                     f"Files found under root: {_some_files(root)}")
    skipped = sorted(set().union(*(set(v) for v in per_mod.values())) - set(common))
    if skipped:
        warnings.warn(f"{manifest['name']}: {len(skipped)} subject(s) lack one of {', '.join(per_mod)} and are "
                      f"skipped (e.g. {', '.join(skipped[:3])})", DatasetWarning, stacklevel=3)
    return {s: {m: per_mod[m][s] for m in per_mod} for s in common}


# --------------------------------------------------------------------------------------------
# Splits


def split_subjects(
    subjects: Sequence[str], seed: int = 0, fractions: dict[str, float] | None = None
) -> dict[str, list[str]]:
    """Split subject ids into train/val/test by a seeded shuffle of the sorted ids.

    Sizes are the rounded fractions (default 0.75/0.05/0.2); test and val get at least one
    subject each when that still leaves one for training. The same ids and seed give the same
    split on every machine; each split is returned sorted.
    """
    fractions = {k: float(v) for k, v in (fractions or DEFAULT_FRACTIONS).items()}
    ids = sorted(dict.fromkeys(str(s) for s in subjects))
    n = len(ids)
    counts = {k: int(round(n * fractions[k])) for k in ("test", "val")}
    for key in ("test", "val"):
        if fractions[key] > 0 and counts[key] == 0 and n - sum(counts.values()) > 1:
            counts[key] = 1
    order = [ids[i] for i in np.random.default_rng(seed).permutation(n)]
    test, val = order[: counts["test"]], order[counts["test"]: counts["test"] + counts["val"]]
    train = order[counts["test"] + counts["val"]:]
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def _split_universe(manifest: dict, root: Path, mods: tuple[str, str]) -> list[str]:
    """Every subject the splits are drawn from, whichever pair is loaded.

    The subjects that have both images of any pair of the manifest (or of ``mods``), and for an
    open layout every subject with any image: so a subject falls in the same split for every
    pair, and an evaluator trained on one pair's train split never sees another pair's test
    subjects.
    """
    any_mod = (manifest.get("layout") or {}).get("any_modality")
    ids: set[str] = set()
    if any_mod:
        ids |= set(_glob_subjects(root, [p.replace("{modality}", "*") for p in _as_list(any_mod["files"])]))
    per_mod: dict[str, set[str]] = {}
    for pair in [*manifest["pairs"].values(), mods]:
        for m in pair:
            if m not in per_mod:
                per_mod[m] = set(_glob_subjects(root, modality_spec(manifest, m)["files"]))
        ids |= per_mod[pair[0]] & per_mod[pair[1]]
    return sorted(ids)


def _select_split(manifest: dict, root: Path, ids: list[str], split: str, seed: int) -> list[str]:
    """The subject ids of ``split`` (``all`` for every subject), explicit lists first."""
    if split == "all":
        return ids
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)} or 'all'")
    splits = manifest.get("splits") or {}
    explicit = splits.get("explicit")
    if explicit:
        chosen = [str(s) for s in explicit.get(split) or []]
        absent = [s for s in chosen if s not in ids]
        if absent:
            raise _error(manifest, root, f"split {split!r} lists subjects that were not found: {', '.join(absent[:5])}")
    else:
        chosen = split_subjects(ids, seed, splits.get("fractions"))[split]
    if not chosen:
        raise _error(manifest, root, f"split {split!r} is empty with {len(ids)} subject(s) found; "
                                     "use split='all' or add subjects")
    return chosen


# --------------------------------------------------------------------------------------------
# Geometry: resizing and slicing


def _size_tuple(size: int | Sequence[int] | str | None, ndim: int) -> tuple[int, ...] | None:
    if size is None or (isinstance(size, str) and size == "native"):
        return None
    out = (int(size),) * ndim if np.isscalar(size) else tuple(int(s) for s in size)
    if len(out) != ndim or min(out) < 1:
        raise DatasetError(f"size {size!r} must give {ndim} positive lengths for {ndim}D items")
    return out


def resize(array: np.ndarray, size: Sequence[int], *, labels: bool = False) -> np.ndarray:
    """Resample ``array`` to ``size`` (linear for images, nearest for labels), pixel extents aligned.

    Uses scipy's ``grid_mode``: the field of view (edge to edge) is kept, so output index ``o``
    samples input ``(o + 0.5) * n_in / n_out - 0.5``; :func:`resized_affine` is the matching affine.
    """
    size = tuple(int(s) for s in size)
    if tuple(array.shape) == size:
        return array
    zoom = [o / i for o, i in zip(size, array.shape)]
    out = ndi.zoom(array, zoom, order=0 if labels else 1, mode="nearest", grid_mode=True)
    if out.shape != size:  # float rounding of the zoom factor; crop or pad by one at the end
        out = np.pad(out, [(0, max(0, s - o)) for s, o in zip(size, out.shape)], mode="edge")
        out = out[tuple(slice(0, s) for s in size)]
    return out if labels else np.clip(out, -1.0, 1.0).astype(np.float32)


def resized_affine(affine: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int]) -> np.ndarray:
    """The affine of an array resized from ``in_shape`` to ``out_shape`` by :func:`resize`."""
    out = np.array(affine, dtype=np.float64)
    for axis, (n_in, n_out) in enumerate(zip(in_shape, out_shape)):
        scale = n_in / n_out
        out[:3, 3] += out[:3, axis] * (0.5 * scale - 0.5)
        out[:3, axis] *= scale
    return out


def slice_affine(affine: np.ndarray, index: int) -> np.ndarray:
    """Affine of axial slice ``index`` of a ``(z, y, x)`` volume: maps ``(i, j, 0)`` to mm."""
    affine = np.asarray(affine, dtype=np.float64)
    out = affine[:, [1, 2, 0, 3]].copy()
    out[:, 3] = affine @ np.array([index, 0.0, 0.0, 1.0])
    return out


def _select_slices(rule: dict, moving: np.ndarray, target: np.ndarray, labels: list[np.ndarray]) -> list[int]:
    """Indices of the axial slices to use, by the manifest's 2D slice rule."""
    mode = rule.get("mode", "foreground")
    depth = moving.shape[0]
    if mode == "all":
        chosen = list(range(depth))
    elif mode == "range":
        start, stop = int(rule.get("start", 0)), rule.get("stop")
        chosen = list(range(max(0, start), min(depth, depth if stop is None else int(stop))))
    elif mode == "foreground":
        threshold, fraction = float(rule.get("threshold", -0.95)), float(rule.get("min_fraction", 0.05))
        def full(v: np.ndarray) -> np.ndarray:
            return (v > threshold).mean(axis=(1, 2)) >= fraction
        chosen = np.flatnonzero(full(moving) & full(target)).tolist()
    elif mode == "labels":
        has = np.zeros(depth, dtype=bool)
        for lab in labels:
            has |= (lab > 0).any(axis=(1, 2))
        chosen = np.flatnonzero(has).tolist()
    else:
        raise DatasetError(f"unknown 2D slice mode {mode!r}: choose one of {', '.join(SLICE_MODES)}")
    return chosen[:: int(rule.get("step", 1))]


# --------------------------------------------------------------------------------------------
# Loading one subject


def _normalise(image: np.ndarray, kind: str, rules: dict) -> np.ndarray:
    """Scale to [-1, 1] by the manifest's rule for ``kind`` (MR: percentiles, CT: HU window)."""
    rule = rules.get(kind) or {}
    if kind == CT:
        return normalise_ct(image, tuple(rule.get("window_hu", (-1000.0, 1500.0))))
    return normalise_mr(image, tuple(rule.get("percentiles", (0.5, 99.5))))


def _label_set(manifest: dict, label_set: str | None) -> tuple[str | None, dict | None]:
    """The chosen label set's (name, spec); ``"none"`` or a manifest without labels gives (None, None)."""
    labels = manifest.get("labels")
    if label_set == "none" or not labels:
        if label_set not in (None, "none"):
            raise DatasetError(f"data set {manifest['name']!r} has no label maps (asked for {label_set!r})")
        return None, None
    name = label_set if label_set is not None else labels.get("default")
    if name is None:
        return None, None
    if name not in labels["sets"]:
        raise DatasetError(f"data set {manifest['name']!r} has no label set {name!r}: "
                           f"choose from {', '.join(labels['sets'])} or 'none'")
    return name, labels["sets"][name]


def _label_patterns(spec: dict, modality: str) -> list[str]:
    files = spec["files"]
    if isinstance(files, dict):
        return _as_list(files.get(modality))
    return [p.replace("{modality}", modality) for p in _as_list(files)]


@dataclass
class _Volume:
    image: np.ndarray  # normalised, (z, y, x) or (y, x) for a 2D file
    labels: np.ndarray | None
    affine: np.ndarray


def _read_volume(manifest: dict, root: Path, subject: str, modality: str, path: Path,
                 label_spec: dict | None, cache: dict) -> _Volume:
    """Load, reorient to ``(z, y, x)`` and normalise one image with its label map (if any)."""
    spec = modality_spec(manifest, modality)
    image, affine, _ = load_nifti(path)
    labels = None
    label_path = _subject_file(root, _label_patterns(label_spec, modality), subject) if label_spec else None
    if label_path is not None:
        if label_path not in cache:
            cache[label_path] = load_labels(label_path)[0]
        labels = cache[label_path]
        if labels.shape != image.shape:
            raise _error(manifest, root, f"label map {label_path} has shape {labels.shape} but the image "
                                         f"{path} has shape {image.shape}")
    try:
        image = _normalise(image, spec["kind"], manifest.get("normalisation") or {})
    except ValueError as err:
        raise _error(manifest, root, f"cannot scale {path} ({modality}, {spec['kind']}): {err}") from err
    if image.ndim == 3:
        oriented, new_affine = reorient(image, affine)
        labels = None if labels is None else reorient(labels, affine)[0]
        image, affine = oriented, new_affine
    if labels is not None:
        labels = labels.astype(label_dtype(labels))
    return _Volume(image, labels, affine)


def _check_grids(manifest: dict, root: Path, subject: str, a: _Volume, b: _Volume, mods: tuple[str, str]) -> None:
    """The two images of a pair must share one voxel grid: the loader never resamples one onto the other."""
    if a.image.shape != b.image.shape:
        note = (manifest.get("pair_notes") or {}).get(f"{mods[0]}-{mods[1]}", "")
        raise _error(manifest, root, f"subject {subject!r}: {mods[0]} has shape {a.image.shape} but {mods[1]} has "
                                     f"{b.image.shape}; the two images of a pair must be on the same voxel grid "
                                     f"(align/resample one onto the other first). {note}".rstrip())
    if not np.allclose(a.affine, b.affine, atol=_GRID_ATOL_MM):
        warnings.warn(f"{manifest['name']} subject {subject!r}: {mods[0]} and {mods[1]} have the same shape but "
                      "different affines; the first one's affine is used", DatasetWarning, stacklevel=4)


def _subject_pairs(manifest: dict, root: Path, subject: str, files: dict[str, Path], mods: tuple[str, str],
                   dim: int, size: tuple[int, ...] | None, label_spec: dict | None) -> list[ImagePair]:
    """All pairs of one subject: one 3D pair, or one pair per selected axial slice."""
    cache: dict = {}
    a, b = (_read_volume(manifest, root, subject, m, files[m], label_spec, cache) for m in mods)
    _check_grids(manifest, root, subject, a, b, mods)
    names = dict(label_spec["names"]) if label_spec and label_spec.get("names") else None
    make = lambda mov, tgt, lm, lt, aff, idx: ImagePair(  # noqa: E731
        mov, tgt, lm, lt, spacing_of(aff, mov.ndim), aff, subject, mods[0], mods[1], idx, names)
    if dim == 3:
        if a.image.ndim != 3:
            raise _error(manifest, root, f"subject {subject!r}: {files[mods[0]]} is 2D; dim=3 needs 3D images")
        return [make(*_resized(a, b, a.affine, size), None)]
    if a.image.ndim == 2:
        return [make(*_resized(a, b, a.affine, size), 0)]
    rule = ((manifest.get("preprocessing") or {}).get("2d") or {}).get("slices") or {}
    label_maps = [v for v in (a.labels, b.labels) if v is not None]
    out = []
    for k in _select_slices(rule, a.image, b.image, label_maps):
        sa = _Volume(a.image[k], None if a.labels is None else a.labels[k], a.affine)
        sb = _Volume(b.image[k], None if b.labels is None else b.labels[k], a.affine)
        out.append(make(*_resized(sa, sb, slice_affine(a.affine, k), size), k))
    return out


def _resized(a: _Volume, b: _Volume, affine: np.ndarray, size: tuple[int, ...] | None) -> tuple:
    """(moving, target, moving labels, target labels, affine), resized to ``size`` if given."""
    if size is None or tuple(a.image.shape) == size:  # copies: a slice must not keep its volume alive
        copy = lambda v: None if v is None else np.array(v)  # noqa: E731
        return (np.array(a.image, dtype=np.float32), np.array(b.image, dtype=np.float32),
                copy(a.labels), copy(b.labels), np.array(affine, dtype=np.float64))
    lab = lambda v: None if v is None else resize(v, size, labels=True)  # noqa: E731
    return (resize(a.image, size), resize(b.image, size), lab(a.labels), lab(b.labels),
            resized_affine(affine, a.image.shape, size))


# --------------------------------------------------------------------------------------------
# Public loader


def _resolve_pair(manifest: dict, pair: str | Sequence[str] | None) -> tuple[str, str]:
    """(moving, target) modality names from a pair name, a 2-tuple, or the manifest's default."""
    if pair is None:
        pair = manifest["default_pair"]
    if isinstance(pair, str):
        if pair not in manifest["pairs"]:
            raise DatasetError(f"data set {manifest['name']!r} has no pair {pair!r}: choose from "
                               f"{', '.join(manifest['pairs'])} or pass (moving, target) modality names")
        pair = manifest["pairs"][pair]
    mods = tuple(pair)
    if len(mods) != 2:
        raise DatasetError(f"pair must name two modalities, got {pair!r}")
    mods = _mr_stand_in(manifest, mods)
    for m in mods:
        modality_spec(manifest, m)
    return mods[0], mods[1]


def _mr_stand_in(manifest: dict, mods: tuple[str, ...]) -> tuple[str, ...]:
    """The study's CT-MR pages call their MR ``t1`` (the phantom's MR). A data set with no ``t1`` but
    exactly one MR modality (Learn2Reg's ``mr``) lends that one for a (CT, T1) pair, with a warning;
    any other pair is left as asked, so a missing modality stays a clear error."""
    modalities = manifest.get("modalities") or {}
    ct_mr = study_pair(CTMR)
    if set(mods) != set(ct_mr.modalities) or ct_mr.other in modalities or (manifest.get("layout") or {}).get("any_modality"):
        return mods
    mrs = [name for name, spec in modalities.items() if (spec or {}).get("kind") == "mr"]
    if len(mrs) != 1:
        return mods
    warnings.warn(f"{manifest['name']}: no modality {ct_mr.other!r}; its one MR modality {mrs[0]!r} stands in for "
                  "the CT-MR pair's MR", DatasetWarning, stacklevel=4)
    return tuple(mrs[0] if m == ct_mr.other else m for m in mods)


def _resolve_root(manifest: dict, root: str | Path | None) -> Path:
    """The data folder: ``root`` or ``$IMSE_STUDY_DATA/<name>``; it must exist and hold something."""
    name = manifest["name"]
    if root is None:
        env = os.environ.get(ENV_DATA)
        if not env:
            raise _error(manifest, None, f"this data set is read from files: pass root=<folder> (e.g. "
                                         f"load_dataset({name!r}, root='/data/{name}')) or set {ENV_DATA} "
                                         f"so that ${ENV_DATA}/{name} is that folder. The package downloads "
                                         f"nothing; see 'source' in the manifest for where to obtain the data")
        root = Path(env) / name
    root = Path(root).expanduser()
    if not root.exists():
        raise _error(manifest, root, "the root folder does not exist")
    if not root.is_dir():
        raise _error(manifest, root, "root must be a folder, not a file")
    if not any(root.iterdir()):
        raise _error(manifest, root, "the root folder is empty")
    return root


def load_dataset(
    name: str | Path,
    root: str | Path | None = None,
    split: str = "test",
    dim: int = 2,
    size: int | Sequence[int] | str | None = None,
    pair: str | Sequence[str] | None = None,
    profile: str = "quick",
    seed: int = 0,
    labels: str | None = None,
    max_subjects: int | None = None,
) -> list[ImagePair]:
    """Load the ``split`` of data set ``name`` as a list of aligned :class:`ImagePair`.

    ``name``: a manifest name (``list_datasets()``), ``phantom``, or a path to a manifest file.
    ``root``: the data folder of a file-based set (default ``$IMSE_STUDY_DATA/<name>``).
    ``split``: ``train``, ``val``, ``test`` or ``all``. ``dim``: 2 (axial slices) or 3 (volumes).
    ``size``: resize every item to this shape; None uses the manifest's preprocessing size
    (which may be none), ``"native"`` keeps the files' own size.
    ``pair``: a pair name of the manifest (e.g. ``t1t2``, ``ctmr``) or ``(moving, target)``
    modality names; None is the manifest's ``default_pair``.
    ``profile``: the phantom's profile (sizes, subject counts); file-based sets ignore it.
    ``seed``: the split shuffle (file-based sets). ``labels``: a label set of the manifest
    (None: its default, ``"none"``: skip labels). ``max_subjects``: keep the first N subjects
    of the split (of each split for the phantom's ``all``).
    """
    if dim not in (2, 3):
        raise DatasetError(f"dim must be 2 or 3, not {dim!r}")
    manifest = load_manifest(name)
    mods = _resolve_pair(manifest, pair)
    size_t = _size_tuple(size, dim)
    if size is None:
        size_t = _size_tuple(((manifest.get("preprocessing") or {}).get(f"{dim}d") or {}).get("size"), dim)
    if manifest["kind"] == "phantom":
        return _phantom_pairs(manifest, mods, split, dim, size_t, profile, labels, max_subjects)
    root_path = _resolve_root(manifest, root)
    label_name, label_spec = _label_set(manifest, labels)
    found = find_subjects(manifest, root_path, mods)
    chosen = _select_split(manifest, root_path, _split_universe(manifest, root_path, mods), split, seed)
    ids = [s for s in chosen if s in found]
    if not ids:
        raise _error(manifest, root_path, f"none of the {len(chosen)} subject(s) of split {split!r} has both "
                                          f"{mods[0]} and {mods[1]} (e.g. {', '.join(chosen[:3])})")
    if max_subjects is not None:
        ids = ids[: int(max_subjects)]
    pairs = [p for s in ids for p in _subject_pairs(manifest, root_path, s, found[s], mods, dim, size_t, label_spec)]
    _report_missing_labels(manifest, root_path, pairs, label_name, label_spec, explicit=labels is not None)
    return pairs


def _report_missing_labels(manifest: dict, root: Path, pairs: list[ImagePair], label_name: str | None,
                           label_spec: dict | None, explicit: bool) -> None:
    """No label map for any subject: an error if the user asked for that set, else a warning."""
    if label_spec is None:
        return
    without = {p.subject for p in pairs if p.moving_labels is None and p.target_labels is None}
    if not without:
        return
    message = (f"label set {label_name!r} ({label_spec['files']}) is missing for {len(without)} subject(s) "
               f"(e.g. {', '.join(sorted(without)[:3])}); their pairs have no labels")
    if explicit and len(without) == len({p.subject for p in pairs}):
        raise _error(manifest, root, message)
    warnings.warn(f"{manifest['name']}: {message}", DatasetWarning, stacklevel=3)


def _phantom_pairs(manifest: dict, mods: tuple[str, str], split: str, dim: int, size: tuple[int, ...] | None,
                   profile: str, labels: str | None, max_subjects: int | None) -> list[ImagePair]:
    """Pairs from the bundled phantom: each item in two modalities, one shared label map."""
    phantom = importlib.import_module("imse_study.data.phantom")
    if split != "all" and split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)} or 'all'")
    _, label_spec = _label_set(manifest, labels)
    keep_labels = label_spec is not None
    names = dict(getattr(phantom, "LABELS", None) or label_spec["names"]) if keep_labels else None
    naming = getattr(phantom, "subject_name", lambda s: f"sub-{int(s):04d}")
    out: list[ImagePair] = []
    for part in (SPLITS if split == "all" else (split,)):
        data = phantom.load_phantom(split=part, dim=dim, profile=profile, modalities=tuple(dict.fromkeys(mods)))
        ids = list(dict.fromkeys(int(s) for s in data.subjects))
        ids = ids if max_subjects is None else ids[: int(max_subjects)]
        seen: dict[int, int] = {}
        for i, sid in enumerate(int(s) for s in data.subjects):
            if sid not in ids:
                continue
            a = _Volume(data.images[mods[0]][i], data.labels[i] if keep_labels else None, data.affines[i])
            b = _Volume(data.images[mods[1]][i], a.labels, data.affines[i])
            mov, tgt, lm, lt, aff = _resized(a, b, data.affines[i], size)
            index = seen.get(sid, 0) if dim == 2 else None
            seen[sid] = seen.get(sid, 0) + 1
            out.append(ImagePair(mov, tgt, lm, lt, spacing_of(aff, dim), aff, naming(sid), mods[0], mods[1],
                                 index, names))
    return out
