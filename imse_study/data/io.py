"""NIfTI reading and writing (through nibabel) with clear errors and atomic writes.

Every image the package reads or writes goes through here, so that a missing or damaged file
names its path and what was expected, NaN never slips silently into training, and a crash
half-way through a write never leaves a truncated ``.nii.gz`` behind.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform
from imse_study.atomic import atomic_write

NIFTI_SUFFIXES = (".nii.gz", ".nii")
# Array axes of every volume the data sets return: (z, y, x) with z running inferior -> superior,
# rows anterior -> posterior and columns towards the subject's right; the phantom uses the same.
ARRAY_AXCODES = ("S", "P", "R")
_LABEL_TOLERANCE = 1e-3


def nifti_suffix(path: str | Path) -> str:
    """The NIfTI suffix of ``path`` (``.nii.gz`` or ``.nii``); ValueError for anything else."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    raise ValueError(f"{path}: expected a NIfTI file name ending in .nii.gz or .nii")


def _open(path: str | Path) -> nib.Nifti1Image:
    """Open ``path`` as NIfTI, turning every failure into an error that names the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"NIfTI file not found: {path} (expected a .nii.gz or .nii image)")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; expected a .nii.gz or .nii image file")
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises several types for unreadable files
        raise ValueError(f"cannot read {path} as NIfTI ({type(err).__name__}: {err}); "
                         "expected a .nii.gz or .nii image") from err
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ValueError(f"{path} is a {type(img).__name__}, expected a NIfTI-1/2 image")
    return img


def _squeeze_trailing(data: np.ndarray, path: Path) -> np.ndarray:
    """Drop trailing length-1 axes (e.g. ``(X, Y, Z, 1)``); only 2D and 3D images are accepted."""
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3):
        raise ValueError(f"{path} has shape {data.shape}; expected a 2D or 3D image")
    return data


def _read(img: nib.Nifti1Image, path: Path, dtype: type | None) -> np.ndarray:
    try:
        data = img.get_fdata(dtype=dtype) if dtype is not None else np.asanyarray(img.dataobj)
    except Exception as err:  # truncated or corrupt gzip streams surface only here
        raise ValueError(f"cannot read the voxel data of {path} ({type(err).__name__}: {err}); "
                         "is the file complete?") from err
    return _squeeze_trailing(np.asarray(data), path)


def spacing_of(affine: np.ndarray, ndim: int = 3) -> tuple[float, ...]:
    """Voxel size in mm along each of the first ``ndim`` array axes (column norms of the affine)."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :ndim], axis=0))


def load_nifti(path: str | Path, *, allow_nan: bool = False) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Read an image: ``(array float32, 4x4 affine voxel->mm, spacing per array axis in mm)``.

    NaN or inf voxels raise ValueError unless ``allow_nan`` (they would poison every loss).
    """
    path = Path(path)
    img = _open(path)
    data = _read(img, path, np.float32)
    if not allow_nan:
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise ValueError(f"{path} holds {bad} NaN/inf voxels; fill or mask them first, "
                             "or load with allow_nan=True")
    zooms = img.header.get_zooms()[: data.ndim]
    return data.astype(np.float32, copy=False), np.array(img.affine, dtype=np.float64), tuple(map(float, zooms))


def load_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a label map: ``(int32 array, 4x4 affine)``; non-integer values raise ValueError."""
    path = Path(path)
    img = _open(path)
    data = _read(img, path, None)
    if np.issubdtype(data.dtype, np.integer) or data.dtype == bool:
        return data.astype(np.int32), np.array(img.affine, dtype=np.float64)
    data = np.asarray(data, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{path} is read as a label map but holds NaN/inf values")
    rounded = np.rint(data)
    if np.max(np.abs(data - rounded), initial=0.0) > _LABEL_TOLERANCE:
        raise ValueError(f"{path} is read as a label map but holds non-integer values "
                         f"(e.g. {data[np.abs(data - rounded) > _LABEL_TOLERANCE].flat[0]!r}); "
                         "is it an intensity image?")
    return rounded.astype(np.int32), np.array(img.affine, dtype=np.float64)


def label_dtype(array: np.ndarray) -> np.dtype:
    """The smallest integer type that holds every label value."""
    lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dtype)
    raise ValueError(f"label values {lo}..{hi} do not fit in int32")


def _as_saved(array: np.ndarray, labels: bool) -> np.ndarray:
    array = np.asarray(array)
    if not 2 <= array.ndim <= 7:
        raise ValueError(f"cannot save an array of shape {array.shape} as NIfTI: expected 2 to 7 dimensions")
    if not labels:
        return array.astype(np.float32, copy=False)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        if not np.all(np.isfinite(array)) or np.any(np.abs(array - np.rint(array)) > _LABEL_TOLERANCE):
            raise ValueError("labels=True needs integer label values; got non-integer or NaN values")
        array = np.rint(array)
    return array.astype(label_dtype(array))


def save_nifti(path: str | Path, array: np.ndarray, affine: np.ndarray | None = None, *, labels: bool = False) -> Path:
    """Write ``array`` (2D to 7D) atomically; float32 images or a compact integer label map.

    The affine (identity if None) goes into both qform and sform, so every reader sees the same
    geometry and the spacing. The file is written under a temporary name in the same folder
    (keeping the ``.nii.gz`` suffix, so nibabel compresses it) and renamed over ``path``.
    """
    path = Path(path)
    suffix = nifti_suffix(path)
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"affine for {path} must be a finite 4x4 matrix, got shape {affine.shape}")
    img = nib.Nifti1Image(_as_saved(array, labels), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    if labels:
        img.header.set_intent("label")
    return atomic_write(path, lambda tmp: nib.save(img, tmp), suffix=f".tmp{suffix}")


def reorient(
    array: np.ndarray, affine: np.ndarray, axcodes: tuple[str, str, str] = ARRAY_AXCODES
) -> tuple[np.ndarray, np.ndarray]:
    """Flip/transpose a 3D ``array`` so its axes point along ``axcodes``; returns the matching affine.

    Only whole-voxel flips and axis swaps (nibabel's closest orientation), never resampling, so
    label maps stay exact. The default gives the package's ``(z, y, x)`` layout.
    """
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"reorient needs a 3D array, got shape {array.shape}")
    transform = ornt_transform(io_orientation(affine), axcodes2ornt(axcodes))
    out = apply_orientation(array, transform)
    new_affine = np.asarray(affine, dtype=np.float64) @ inv_ornt_aff(transform, array.shape)
    return np.ascontiguousarray(out), new_affine
