"""Image geometry from the NIfTI header: stacks or volumes, the evaluator's layout, grids and spacing.

One set of rules that every user-facing entry point (the CLI, :mod:`imse_study.registration.files`,
:mod:`imse_study.evaluator.apply`, the napari widgets) shares:

* **Stack or volume.** A 3D image is a *stack of 2D slices* when one axis has fewer than
  ``MIN_VOLUME_SLICES`` (8) voxels, or when its voxels are at least ``ANISOTROPY`` (2) times longer
  along one axis than along either other axis; that axis is its *through-plane* axis. Anything else is
  a volume. 2D images are a stack of one slice.
* **Which axis to slice.** A 2D evaluator (or a 2D registration) works on the slices across the
  through-plane axis of a stack, and on the axial slices of a volume (the array axis whose
  orientation code, :func:`nibabel.aff2axcodes`, is S or I), whatever the storage order.
* **Layout.** Images are handed to evaluators in the layout they were trained in: the package's
  (S, P, R) array axes (:data:`imse_study.data.io.ARRAY_AXCODES`), with the sliced axis first. The
  reorientation is made of whole-voxel flips and axis swaps only (:class:`Layout`), so it is exact
  and undone exactly.
* **Grids.** An image on another grid is resampled into the target's physical space through both
  affines (:func:`resample_onto`, nibabel's ``resample_from_to``: linear for images, nearest
  neighbour for labels), as ANTs and elastix do; :func:`resize` changes the spacing of a grid while
  keeping its field of view (scikit-image, anti-aliased when it shrinks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    io_orientation,
    ornt_transform,
)
from nibabel.processing import resample_from_to

from imse_study.data.io import ARRAY_AXCODES, spacing_of

MIN_VOLUME_SLICES = 8  # fewer slices than this along an axis: a stack of 2D slices
ANISOTROPY = 2.0  # voxels this many times longer along one axis than along the others: a stack
SPACING_RTOL = 0.01  # spacings within 1% count as equal (no resampling)
GRID_ATOL_MM = 1e-3  # affines equal to within a micrometre describe the same grid

_PAIRS = {"S": "S", "I": "S", "P": "P", "A": "P", "R": "R", "L": "R"}


def _codes(affine: np.ndarray) -> tuple[str, str, str]:
    codes = nib.aff2axcodes(np.asarray(affine, dtype=np.float64))
    if any(c is None for c in codes):
        raise ValueError(f"the image's affine is degenerate (axis codes {codes}); fix its NIfTI header")
    return codes


def _as_3d_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        return (*shape, 1)
    if len(shape) != 3:
        raise ValueError(f"expected a 2D or 3D image, got shape {shape}")
    return shape


def axial_axis(affine: np.ndarray) -> int:
    """The array axis that runs inferior-superior (orientation code S or I)."""
    codes = _codes(affine)
    return next(i for i, c in enumerate(codes) if c in "SI")


def through_plane_axis(shape: Sequence[int], affine: np.ndarray) -> int | None:
    """The axis across which a 3D image is a stack of 2D slices, or None for a volume.

    A stack has fewer than ``MIN_VOLUME_SLICES`` voxels along its thinnest axis, or voxels at least
    ``ANISOTROPY`` times longer along its coarsest axis than along the next coarsest. 2D images
    (a stack of one slice) answer 2, the axis they gain as ``(H, W, 1)``.
    """
    shape = _as_3d_shape(shape)
    thinnest = int(np.argmin(shape))
    if shape[thinnest] < MIN_VOLUME_SLICES:
        return thinnest
    spacing = np.asarray(spacing_of(affine, 3))
    order = np.argsort(spacing)[::-1]
    if spacing[order[0]] >= ANISOTROPY * spacing[order[1]]:
        return int(order[0])
    return None


def slice_axis(shape: Sequence[int], affine: np.ndarray) -> int:
    """The axis a 2D model slices along: a stack's through-plane axis, else the axial axis."""
    axis = through_plane_axis(shape, affine)
    return axial_axis(affine) if axis is None else axis


def _describe(shape: tuple[int, ...], affine: np.ndarray) -> str:
    spacing = spacing_of(affine, 3)
    return (" x ".join(str(s) for s in shape) + " voxels of "
            + " x ".join(f"{s:.3g}" for s in spacing) + " mm")


@dataclass(frozen=True)
class RegistrationPlan:
    """How an image pair is registered: ``dim`` 2 or 3, the array axis sliced for 2D, and why."""

    dim: int
    slice_axis: int | None  # the array axis of a 3D image registered slice by slice; None in 3D
    n_slices: int
    reason: str

    @property
    def slicewise(self) -> bool:
        return self.slice_axis is not None


def registration_plan(shape: Sequence[int], affine: np.ndarray, dim: int | None = None) -> RegistrationPlan:
    """2D (slice by slice, never moved through-plane) or 3D registration for an image of ``shape``.

    ``dim=None`` decides from the header: a stack (:func:`through_plane_axis`) is registered slice by
    slice across its through-plane axis, a volume in 3D. ``dim=2`` registers a volume slice by
    slice along its axial axis; ``dim=3`` is refused for a stack of fewer than
    ``MIN_VOLUME_SLICES`` slices, which a 3D transform would move through-plane.
    """
    if dim not in (None, 2, 3):
        raise ValueError(f"dim must be 2, 3 or None (decide from the header), not {dim!r}")
    if len(shape) == 2:
        if dim == 3:
            raise ValueError(f"the image is 2D {tuple(shape)}: it cannot be registered in 3D; use dim 2 or auto")
        return RegistrationPlan(2, None, 1, "2D: a 2D image")
    shape3 = _as_3d_shape(shape)
    axis = through_plane_axis(shape3, affine)
    what = _describe(shape3, affine)
    if dim == 3:
        if axis is not None and shape3[axis] < MIN_VOLUME_SLICES:
            raise ValueError(f"the target is a stack of {shape3[axis]} slices along array axis {axis} ({what}): "
                             "a 3D transform would move it through-plane; register it with --dim 2 (or auto)")
        return RegistrationPlan(3, None, 1, f"3D as asked ({what})")
    if dim == 2:
        chosen = slice_axis(shape3, affine)
        return RegistrationPlan(2, chosen, shape3[chosen],
                                f"2D as asked: slice by slice along array axis {chosen}, "
                                f"{shape3[chosen]} slices ({what})")
    if axis is None:
        return RegistrationPlan(3, None, 1, f"3D: a volume ({what})")
    why = (f"fewer than {MIN_VOLUME_SLICES} slices" if shape3[axis] < MIN_VOLUME_SLICES
           else f"slices at least {ANISOTROPY:g}x as far apart as the in-plane voxels")
    return RegistrationPlan(2, axis, shape3[axis],
                            f"2D: a stack of {shape3[axis]} slices along array axis {axis} ({why}; {what}), "
                            "registered slice by slice")


# --------------------------------------------------------------------------------------------
# Layout: the evaluator's array axes


class Layout:
    """An image's array axes rearranged (flips and swaps only) into the package's (S, P, R) order.

    ``first`` (an array axis of the image, or None) is put first, so that a 2D model slices along
    axis 0; the other two follow in (S, P, R) order. A 2D image ``(H, W)`` is handled as
    ``(H, W, 1)`` with ``first=2``. :meth:`to` and :meth:`back` are exact inverses.
    """

    def __init__(self, shape: Sequence[int], affine: np.ndarray, first: int | None = None) -> None:
        self.flat = len(shape) == 2
        self.shape = _as_3d_shape(shape)
        if self.flat:
            first = 2
        affine = np.asarray(affine, dtype=np.float64)
        codes = _codes(affine)
        if first is None:
            wanted = ARRAY_AXCODES
        else:
            lead = _PAIRS[codes[first]]
            wanted = (lead, *[c for c in ARRAY_AXCODES if c != lead])
        start = io_orientation(affine)
        self._forward = ornt_transform(start, axcodes2ornt(wanted))
        self._inverse = ornt_transform(axcodes2ornt(wanted), start)
        source = [int(np.flatnonzero(self._forward[:, 0] == k)[0]) for k in range(3)]  # input axis of each axis
        source_spacing = spacing_of(affine, 3)
        self.spacing = tuple(source_spacing[axis] for axis in source)
        self.out_shape = tuple(self.shape[axis] for axis in source)  # the shape of :meth:`to`'s result

    def to(self, array: np.ndarray) -> np.ndarray:
        """The image (2D or 3D, in the input's layout) in the evaluator's layout (3D)."""
        array = np.asarray(array)
        if self.flat:
            array = array[..., None]
        return np.ascontiguousarray(apply_orientation(array, self._forward))

    def back(self, array: np.ndarray) -> np.ndarray:
        """An image in the evaluator's layout back in the input's layout."""
        out = np.ascontiguousarray(apply_orientation(np.asarray(array), self._inverse))
        return out[..., 0] if self.flat else out

    def field_back(self, field: np.ndarray) -> np.ndarray:
        """A displacement ``(3, *S)`` (voxels, one component per axis of this layout) in the input's
        layout: ``(ndim, *shape)``, components along the input's array axes, signs flipped with the axes."""
        out = np.zeros((3, *self.shape), dtype=np.float32)
        for k in range(3):
            source, flip = self._inverse[k]  # this layout's axis k is the input's axis ``source``
            component = apply_orientation(np.asarray(field[k]), self._inverse)
            out[int(source)] = flip * component
        return out[:2, ..., 0] if self.flat else out


# --------------------------------------------------------------------------------------------
# Grids and spacing


def same_grid(shape_a: Sequence[int], affine_a: np.ndarray, shape_b: Sequence[int], affine_b: np.ndarray) -> bool:
    """Whether two images share one voxel grid (shape and affine to within a micrometre)."""
    return tuple(shape_a) == tuple(shape_b) and np.allclose(affine_a, affine_b, atol=GRID_ATOL_MM)


def resample_onto(array: np.ndarray, affine: np.ndarray, shape: Sequence[int], target_affine: np.ndarray,
                  *, labels: bool = False, cval: float = 0.0) -> np.ndarray:
    """``array`` (voxel -> mm ``affine``) resampled onto the grid ``(shape, target_affine)``.

    Through physical space (nibabel's ``resample_from_to``): linear for images, nearest neighbour
    for label maps; voxels outside the source get ``cval``. 2D arrays are handled as one slice.
    """
    array = np.asarray(array)
    flat = array.ndim == 2
    source = array[..., None] if flat else array
    shape3 = _as_3d_shape(shape)
    data = source.astype(np.int32 if labels else np.float32)
    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    out = resample_from_to(img, (shape3, np.asarray(target_affine, dtype=np.float64)),
                           order=0 if labels else 1, mode="constant", cval=cval)
    result = np.asarray(out.dataobj)
    result = result.astype(array.dtype) if labels else result.astype(np.float32)
    return result[..., 0] if len(shape) == 2 else result


def working_shape(shape: Sequence[int], spacing: Sequence[float], wanted: Sequence[float] | None,
                  axes: Sequence[int]) -> tuple[int, ...]:
    """The shape that gives ``shape`` (voxels of ``spacing`` mm) the spacing ``wanted[i]`` along ``axes[i]``.

    The field of view is kept (to the nearest voxel); axes whose spacing is within ``SPACING_RTOL``
    of the wanted one keep their size. ``wanted=None`` keeps the shape.
    """
    out = [int(s) for s in shape]
    if wanted is None:
        return tuple(out)
    if len(wanted) != len(axes):
        raise ValueError(f"{len(wanted)} spacings given for {len(axes)} axes")
    for axis, target in zip(axes, wanted):
        have = float(spacing[axis])
        if target <= 0:
            raise ValueError(f"a spacing must be positive, not {target}")
        if abs(have - target) > SPACING_RTOL * target:
            out[axis] = max(1, round(shape[axis] * have / target))
    return tuple(out)


def working_grid(shape: Sequence[int], affine: np.ndarray, first: int | None, dim: int,
                 wanted: Sequence[float] | None) -> tuple[Layout, tuple[int, ...]]:
    """An image's :class:`Layout` (``first`` put first) and its shape in that layout at the spacing
    ``wanted`` (mm along the in-plane axes when ``dim`` is 2, along all three when 3; None: as it is)."""
    layout = Layout(shape, affine, first)
    axes = (1, 2) if dim == 2 else (0, 1, 2)
    return layout, working_shape(layout.out_shape, layout.spacing, wanted, axes)


def resize(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``array`` resampled (linear) to ``shape`` over the same field of view, edge to edge.

    scikit-image's ``resize``: it smooths before shrinking an axis (anti-aliasing), which a plain
    interpolation does not, and leaves an axis of unchanged size untouched (slices never mix).
    """
    from skimage.transform import resize as sk_resize

    array = np.asarray(array, dtype=np.float32)
    if tuple(array.shape) == tuple(shape):
        return array
    return sk_resize(array, tuple(shape), order=1, mode="edge", anti_aliasing=True,
                     preserve_range=True).astype(np.float32)


__all__ = [
    "ANISOTROPY",
    "MIN_VOLUME_SLICES",
    "Layout",
    "RegistrationPlan",
    "axial_axis",
    "registration_plan",
    "resample_onto",
    "resize",
    "same_grid",
    "slice_axis",
    "through_plane_axis",
    "working_shape",
]
