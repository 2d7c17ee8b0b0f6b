"""NIfTI reading and writing (through nibabel) with clear errors and atomic writes.

Every image the package reads or writes goes through here, so that a missing or damaged file
names its path and what was expected, a header that claims an enormous image is refused before
its voxels are read, NaN never slips silently into training, and a crash half-way through a
write never leaves a truncated ``.nii.gz`` behind.
"""

from __future__ import annotations

import os
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
# The largest image read unless $IMSE_STUDY_MAX_VOXELS says otherwise: four 512^3 volumes (2 GiB as
# float32). A header can claim any size; the limit refuses a damaged or hostile one before any allocation.
MAX_VOXELS_ENV = "IMSE_STUDY_MAX_VOXELS"
DEFAULT_MAX_VOXELS = 4 * 512**3


def nifti_suffix(path: str | Path) -> str:
    """The NIfTI suffix of ``path`` (``.nii.gz`` or ``.nii``); ValueError for anything else."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    raise ValueError(f"{path}: expected a NIfTI file name ending in .nii.gz or .nii")


def voxel_limit() -> int:
    """The largest image (in voxels) that is read: ``$IMSE_STUDY_MAX_VOXELS``, else 4 x 512^3."""
    text = os.environ.get(MAX_VOXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_VOXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{MAX_VOXELS_ENV}={text!r}: expected a whole number of voxels >= 1, "
                         f"e.g. {DEFAULT_MAX_VOXELS}")
    return value


def _open(path: str | Path, limit: int | None = None) -> nib.Nifti1Image:
    """Open ``path`` as NIfTI, turning every failure into an error that names the file.

    Only the header is read: it must describe a 2D or 3D image (trailing length-1 axes aside) of
    at most ``limit`` voxels (default :func:`voxel_limit`) with a finite, non-degenerate affine.
    """
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
    _check_size(tuple(img.shape), path, voxel_limit() if limit is None else limit)
    _squeezed_shape(img.shape, path)
    _check_affine(np.asarray(img.affine, dtype=np.float64), path)
    return img


def _check_size(shape: tuple[int, ...], path: Path, limit: int) -> None:
    voxels = int(np.prod(shape, dtype=object))
    if voxels > limit:
        raise ValueError(f"{path}: its header declares an image of {shape} = {voxels:,} voxels, more than the "
                         f"limit of {limit:,}; if the image is genuine and memory allows, raise the limit with "
                         f"the environment variable {MAX_VOXELS_ENV}={voxels}")
    if voxels == 0:
        raise ValueError(f"{path}: its header declares an empty image of shape {shape}")


def _squeezed_shape(shape: tuple[int, ...], path: Path) -> tuple[int, ...]:
    """``shape`` without trailing length-1 axes beyond the third (``(X, Y, Z, 1)``); 2D or 3D only."""
    shape = tuple(int(n) for n in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) not in (2, 3):
        raise ValueError(f"{path} has shape {shape}; expected a 2D or 3D image")
    return shape


def _check_affine(affine: np.ndarray, path: Path) -> None:
    """The voxel-to-mm affine must be finite and invertible: every axis its own non-zero direction
    (a 2D image's third axis too: orientation and resampling need all three)."""
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"{path}: its header holds a non-finite voxel-to-mm affine; repair the header "
                         "(qform/sform) before using the image")
    if not _invertible(affine):
        sizes = np.round(np.linalg.norm(affine[:3, :3], axis=0), 6).tolist()
        raise ValueError(f"{path}: its header's affine gives a zero or repeated voxel direction (voxel sizes "
                         f"{sizes} mm); repair the header (qform/sform, pixdim) before using the image")


def _invertible(affine: np.ndarray) -> bool:
    block = np.asarray(affine, dtype=np.float64)[:3, :3]
    return bool(np.linalg.matrix_rank(block, tol=1e-6 * max(1.0, float(np.abs(block).max()))) == 3)


def _read(img: nib.Nifti1Image, path: Path, dtype: type | None) -> np.ndarray:
    try:
        data = img.get_fdata(dtype=dtype) if dtype is not None else np.asanyarray(img.dataobj)
    except Exception as err:  # truncated or corrupt gzip streams surface only here
        raise ValueError(f"cannot read the voxel data of {path} ({type(err).__name__}: {err}); "
                         "is the file complete?") from err
    return np.asarray(data).reshape(_squeezed_shape(data.shape, path))


def check_image_content(image: np.ndarray, path: str | Path) -> None:
    """Refuse an image that nothing can be measured on: fewer than 2 voxels along two axes, or one value.

    NaN/inf are :func:`load_nifti`'s to refuse; this is for the images a user hands to a command
    (a constant image, e.g. an all-zero export, has no structure to compare or register).
    """
    image = np.asarray(image)
    if sum(n >= 2 for n in image.shape) < 2:
        raise ValueError(f"{path} has shape {image.shape}: an image needs at least 2 voxels along two axes "
                         "or more; is it the right file?")
    finite = image[np.isfinite(image)]
    if finite.size and finite.min() == finite.max():
        raise ValueError(f"{path} is constant (every voxel is {float(finite.min()):g}): there is nothing to "
                         "compare or register; is it an empty export or a mask?")


def spacing_of(affine: np.ndarray, ndim: int = 3) -> tuple[float, ...]:
    """Voxel size in mm along each of the first ``ndim`` array axes (column norms of the affine)."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :ndim], axis=0))


def load_nifti(
    path: str | Path, *, allow_nan: bool = False, max_voxels: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Read an image: ``(array float32, 4x4 affine voxel->mm, spacing per array axis in mm)``.

    NaN or inf voxels raise ValueError unless ``allow_nan`` (they would poison every loss). A header
    that declares more than ``max_voxels`` voxels (default :func:`voxel_limit`) is refused unread.
    """
    path = Path(path)
    img = _open(path, max_voxels)
    data = _read(img, path, np.float32)
    if not allow_nan:
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise ValueError(f"{path} holds {bad} NaN/inf voxels; fill or mask them first "
                             "(in Python: load_nifti(..., allow_nan=True))")
    zooms = img.header.get_zooms()[: data.ndim]
    return data.astype(np.float32, copy=False), np.array(img.affine, dtype=np.float64), tuple(map(float, zooms))


def load_labels(path: str | Path, *, max_voxels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a label map: ``(int32 array, 4x4 affine)``; non-integer values raise ValueError."""
    path = Path(path)
    img = _open(path, max_voxels)
    data = _read(img, path, None)
    if data.dtype.kind not in "biuf":
        raise ValueError(f"{path} is read as a label map but holds {data.dtype} values; expected integers")
    if np.issubdtype(data.dtype, np.integer) or data.dtype == bool:
        try:
            label_dtype(data)  # values beyond int32 are an error, not a silent wrap-around
        except ValueError as err:
            raise ValueError(f"{path}: {err}; is it a label map?") from None
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

    The affine (identity if None; finite and invertible) goes into both qform and sform, so every
    reader sees the same geometry and the spacing. The file is written under a temporary name in
    the same folder (keeping the ``.nii.gz`` suffix, so nibabel compresses it) and renamed over
    ``path``.
    """
    path = Path(path)
    suffix = nifti_suffix(path)
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or not _invertible(affine):
        raise ValueError(f"affine for {path} must be a finite, invertible 4x4 matrix, got {affine.tolist()}")
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
