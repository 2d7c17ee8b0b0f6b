"""The bundled multi-modal head phantom: the study's default data set, with no download.

Anatomy comes from the ICBM 2009a template that nilearn's wheel ships (a skull-stripped T1 and grey
and white matter probability maps at 1 mm). From it we derive CSF, the ventricles, and procedural
skull and scalp shells of smoothly varying thickness, so that a CT-like image has bone. Every
voxel holds tissue *fractions* (partial volume); each modality is the fraction-weighted sum of a
tissue-property table (:mod:`imse_study.data.tissues`):

* MR (``t1``, ``t2``, ``pd``): the spin-echo signal equation ``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)``,
  then a smooth multiplicative bias field and Rician noise. The template's own texture inside the
  brain is kept.
* CT: Hounsfield units (air -1000, fat, CSF, grey and white matter, bone with a smooth variation),
  then Gaussian noise. CT has no bias field.

Two versions exist, chosen by ``version`` (default :data:`PHANTOM_VERSION`):

* **1** (frozen: the shipped models and the book were made on it): approximate 1.5 T values, one
  fat-rich scalp tissue, conventional spin echo (fat mid-grey on T2), PD with CSF darker than grey
  matter, and one appearance for every subject.
* **2**: literature relaxation times at 1.5 and 3 T, each number with its source; fast spin echo
  for T2 and PD (fat bright, CSF the brightest brain tissue on T2 and PD, as on clinical scans);
  the scalp split into skin and subcutaneous fat, marrow inside the skull; and an appearance drawn
  per subject from its id (field strength, sequence timing, bias, noise, blur, slice thickness,
  skull and scalp thickness, head size: :mod:`imse_study.data.appearance`). Named held-out
  **variants** of the test split (``variant="noisy"``, ...) lie outside what training draws.

Subjects are the template under a large smooth random deformation (a random affine and a smooth
displacement field), seeded by subject id, so train, validation and test subjects (disjoint id
ranges) differ in shape. 2D items are axial slices from a slab; 3D items are whole head volumes.
Intensities are scaled to [-1, 1] by :mod:`imse_study.data.normalise` (MR: per-image percentiles,
CT: fixed HU window). It is a phantom, not a patient: shapes, contrasts and noise are plausible,
the fine detail of real scans is not there.

Sets are deterministic and cached on disk (``$IMSE_STUDY_CACHE``, default
``$XDG_CACHE_HOME/imse_study`` or ``~/.cache/imse_study``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from imse_study.progress import progress_bar

from imse_study.atomic import atomic_write
from imse_study.config import PhantomConfig, Profile, get_profile
from imse_study.data.appearance import Appearance, draw_appearance, ranges_for
from imse_study.data.normalise import normalise_ct, normalise_mr
from imse_study.data.tissues import V1_SEQUENCES, V1_TISSUES, mr_signal
from imse_study.data.tissues import V1Tissue as Tissue
from imse_study.modalities import CT, MR_MODALITIES, T1
from imse_study.modalities import MODALITIES as PHANTOM_MODALITIES

# The version a caller gets unless it asks for another. A version, once shipped, is frozen: new
# generation code is a new version number. The cache key holds the version and the variant.
PHANTOM_VERSION = 1
PHANTOM_VERSIONS = (1, 2)
MODALITIES = PHANTOM_MODALITIES  # every modality of the table: T1, T2, PD (MR) and CT
LABELS = {"background": 0, "csf": 1, "gm": 2, "wm": 3, "ventricles": 4, "skull": 5, "scalp": 6}
SPLITS = ("train", "val", "test")
SPLIT_ID_OFFSET = {"train": 1000, "val": 2000, "test": 3000}
_ANATOMY_SEED = 20230601  # the template-level procedural anatomy (skull/scalp thickness) is fixed

# Tissue fraction channels of the version 1 anatomy volume, in this order.
TISSUES = ("scalp", "skull", "csf", "gm", "wm")
_EXTRA_CHANNELS = ("ventricles", "t1_texture", "bone_variation")

# Version 1's tissue table and sequences (frozen; version 2's table is tissues.TISSUES).
TISSUE_TABLE = V1_TISSUES
SEQUENCES = V1_SEQUENCES

# Subject variability and acquisition effects (version 1; version 2 keeps the shape ones and draws
# the acquisition per subject, see imse_study.data.appearance).
SUBJECT_ROTATION_DEG = (4.0, 4.0, 8.0)  # about the x, y, z axes
SUBJECT_SCALING = 0.06
SUBJECT_TRANSLATION_MM = 4.0
SUBJECT_DISPLACEMENT_MM = 5.0  # RMS of the smooth non-linear displacement
SUBJECT_DISPLACEMENT_CELL_MM = 20.0
TISSUE_JITTER = 0.04  # relative per-subject jitter of T1, T2 and PD
BIAS_AMPLITUDE = 0.12  # RMS of the log bias field
BIAS_CELL_MM = 60.0
MR_NOISE = 0.012  # noise sigma relative to the white-matter signal
CT_NOISE_HU = 8.0
BLUR_SIGMA_PX = 0.5

# Version 2 only.
SUB_SLICE_MM = 1.5  # spacing of the sub-slices that integrate a 2D slice's thickness
MARROW_FAT = 0.6  # fat share of the skull's diploe (fatty marrow between trabeculae)
BONE_VARIATION_HU = 250.0  # amplitude of the smooth variation of bone's CT number
SCALP_FAT_VARIATION = 0.15  # smooth spatial variation of the scalp's fat share (e.g. temporal muscle)
# Tissues of the version 2 fractions, and the label each one counts towards.
TISSUES_V2 = ("air", "skin", "fat", "bone", "csf", "gm", "wm")
_LABEL_OF_V2 = {"air": "background", "skin": "scalp", "fat": "scalp", "bone": "skull", "csf": "csf", "gm": "gm",
                "wm": "wm"}


@dataclass
class PhantomSet:
    """A split of the phantom: aligned images of every modality with one label map per item.

    ``appearance`` (version 2) holds one dict per subject, in the order of its first item: the
    subject id, its field strength, sequences, noise, bias, blur, slice thickness and shape factors.
    """

    images: dict[str, np.ndarray]  # modality -> (N, *S) float32 in [-1, 1]
    labels: np.ndarray  # (N, *S) uint8
    subjects: np.ndarray  # (N,) int subject id of each item
    affines: np.ndarray  # (N, 4, 4) voxel index -> mm (2D items: index (i, j, 0))
    spacing: tuple[float, ...]  # mm per array axis
    dim: int
    appearance: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def subject_ids(split: str, profile: str | Profile = "quick") -> list[int]:
    """Subject ids of ``split``; the three splits use disjoint id ranges."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    count = get_profile(profile).phantom.subjects[split]
    return [SPLIT_ID_OFFSET[split] + i for i in range(count)]


def subject_name(subject: int) -> str:
    """File-name stem of a subject, e.g. ``sub-3000``."""
    return f"sub-{int(subject):04d}"


def cache_dir() -> Path:
    """Folder for cached phantom sets: ``$IMSE_STUDY_CACHE`` or the user's cache folder."""
    env = os.environ.get("IMSE_STUDY_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imse_study"


def check_version(version: int | None, variant: str | None = None, split: str = "test") -> int:
    """The phantom version to use (``None``: :data:`PHANTOM_VERSION`), after checking that
    ``variant`` exists for it and is asked of the test split."""
    version = PHANTOM_VERSION if version is None else version
    if version not in PHANTOM_VERSIONS:
        raise ValueError(f"unknown phantom version {version!r}: choose one of {', '.join(map(str, PHANTOM_VERSIONS))}")
    if variant is not None:
        if version < 2:
            raise ValueError(
                f"phantom variants exist from version 2 on: ask for version 2 (--version 2) with variant {variant!r}"
            )
        ranges_for(variant)  # an unknown name raises with the list of names
        if split != "test":
            raise ValueError(f"variant {variant!r} is a held-out test set: load it with split='test', not {split!r}")
    return version


def load_phantom(
    split: str = "train",
    dim: int = 2,
    profile: str | Profile = "quick",
    modalities: tuple[str, ...] | list[str] = MODALITIES,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    version: int | None = None,
    variant: str | None = None,
) -> PhantomSet:
    """Return one split of the phantom, generating and caching it on first use.

    ``dim=2`` gives axial slices (``profile.phantom.slices_per_subject`` per subject, from the
    slab ``slab_mm``), ``dim=3`` one volume per subject; sizes come from the profile. ``version``
    (default :data:`PHANTOM_VERSION`) picks the generation; ``variant`` (version 2, test split
    only) one of the held-out appearances in :data:`imse_study.data.appearance.VARIANTS`.
    """
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"unknown phantom modality {unknown}: choose from {', '.join(MODALITIES)}")
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, not {dim!r}")
    prof = get_profile(profile)
    ids = subject_ids(split, prof)
    version = check_version(version, variant, split)
    folder = Path(cache_dir) if cache_dir is not None else globals()["cache_dir"]()
    path = folder / f"phantom-{_cache_key(prof.phantom, split, dim, version, variant)}.npz"
    if path.exists():
        try:
            full = _read_set(path, tuple(modalities))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            warnings.warn(f"the phantom cache file {path} is damaged ({type(err).__name__}: {err}); "
                          "regenerating it", stacklevel=2)
            full = None  # a damaged cache file is regenerated, never trusted
    else:
        full = None
    if full is None:
        full = _generate_set(ids, dim, prof.phantom, progress=progress, version=version, variant=variant)
        _write_set(path, full)
    full.images = {m: full.images[m] for m in modalities}
    return full


# --------------------------------------------------------------------------------------------
# Template-level anatomy


@dataclass
class _Anatomy:
    volume: torch.Tensor  # (1, C, X, Y, Z) float32: version 1 TISSUES then _EXTRA_CHANNELS
    origin_mm: np.ndarray  # world position of voxel (0, 0, 0)
    shape: tuple[int, int, int]
    brain_centre_mm: np.ndarray


@dataclass
class _Template:
    """The template's maps and the procedural shell fields that both versions build on (1 mm)."""

    template: np.ndarray
    brain: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf_in: np.ndarray
    signed: np.ndarray  # signed distance (mm) to a smooth hull around the brain, > 0 outside
    gap: np.ndarray  # brain hull to the inner skull surface (mm)
    skull_thickness: np.ndarray
    scalp_thickness: np.ndarray
    bone_variation: np.ndarray
    ventricles: np.ndarray
    texture: np.ndarray  # the template's T1 detail against version 1's T1 signal model
    origin_mm: np.ndarray
    brain_centre_mm: np.ndarray


def _smooth_field(shape: tuple[int, ...], rng: np.random.Generator, cell: int, sigma: float) -> np.ndarray:
    """Smooth random field in [-1, 1]-ish: noise on a coarse grid, blurred, upsampled linearly."""
    coarse_shape = tuple(max(2, s // cell) for s in shape)
    noise = ndi.gaussian_filter(rng.standard_normal(coarse_shape), sigma, mode="wrap")
    noise /= noise.std() + 1e-8
    zoom = [s / c for s, c in zip(shape, coarse_shape)]
    return np.clip(ndi.zoom(noise, zoom, order=1), -2.5, 2.5).astype(np.float32)[
        tuple(slice(0, s) for s in shape)
    ]


def _ramp(t: np.ndarray) -> np.ndarray:
    """Partial-volume step: 0 well below 0, 1 well above, linear across one voxel."""
    return np.clip(t + 0.5, 0.0, 1.0)


@functools.lru_cache(maxsize=1)
def _template() -> _Template:
    """The template's tissue maps, its ventricles and texture, and the fields the shells follow."""
    from nilearn import datasets  # imported lazily: nilearn is slow to import

    t1_img = datasets.load_mni152_template(resolution=1)
    template = np.asarray(t1_img.dataobj, dtype=np.float32)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).dataobj, dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).dataobj, dtype=np.float32)
    brain = (np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj) > 0).astype(np.float32)
    affine = t1_img.affine
    if not np.allclose(np.abs(np.diag(affine)[:3]), 1.0):
        raise RuntimeError("nilearn's template is expected at 1 mm; its affine changed")
    origin = affine[:3, 3].copy()
    shape = template.shape

    gm, wm = np.clip(gm, 0, 1) * brain, np.clip(wm, 0, 1) * brain
    excess = np.maximum(gm + wm - 1.0, 0.0)
    gm -= excess * gm / np.maximum(gm + wm, 1e-6)
    wm -= excess * wm / np.maximum(gm + wm, 1e-6)
    csf_in = np.clip(brain - gm - wm, 0.0, 1.0)

    # A smooth hull around the brain: the skull follows it, not the gyri; the space between the
    # brain and the hull is subarachnoid CSF.
    hull = ndi.binary_fill_holes(ndi.gaussian_filter(brain, 3.0) > 0.3)
    signed = ndi.distance_transform_edt(~hull) - ndi.distance_transform_edt(hull)
    rng = np.random.default_rng(_ANATOMY_SEED)
    gap = 2.0 + 0.6 * _smooth_field(shape, rng, 8, 1.5)
    skull_thickness = 6.0 + 1.3 * _smooth_field(shape, rng, 8, 1.5)
    scalp_thickness = 5.0 + 1.2 * _smooth_field(shape, rng, 8, 1.5)
    bone_variation = _smooth_field(shape, rng, 6, 1.0)

    ventricles = _ventricles(csf_in, origin)
    # T1 texture: the template's own detail, as a residual against the tissue model's T1 signal.
    model_t1 = sum(f * _mr_signal(TISSUE_TABLE[t], T1) for t, f in (("csf", csf_in), ("gm", gm), ("wm", wm)))
    inside = brain > 0
    design = np.stack([template[inside], np.ones(int(inside.sum()), np.float32)], 1)
    scale, offset = np.linalg.lstsq(design, model_t1[inside], rcond=None)[0]
    texture = (scale * template + offset - model_t1) * brain
    idx = np.argwhere(inside)
    centre = origin + (idx.min(0) + idx.max(0)) / 2.0
    return _Template(template=template, brain=brain, gm=gm, wm=wm, csf_in=csf_in, signed=signed, gap=gap,
                     skull_thickness=skull_thickness, scalp_thickness=scalp_thickness,
                     bone_variation=bone_variation, ventricles=ventricles, texture=texture, origin_mm=origin,
                     brain_centre_mm=centre)


@functools.lru_cache(maxsize=1)
def _anatomy() -> _Anatomy:
    """Version 1: tissue fractions of the template head (1 mm), with procedural skull and scalp."""
    t = _template()
    inner = t.gap
    outer_skull = inner + t.skull_thickness
    outer_scalp = outer_skull + t.scalp_thickness
    inside_skull = 1.0 - _ramp(t.signed - inner)
    skull = _ramp(t.signed - inner) - _ramp(t.signed - outer_skull)
    scalp = _ramp(t.signed - outer_skull) - _ramp(t.signed - outer_scalp)
    csf = t.csf_in + np.clip(inside_skull - t.brain, 0.0, 1.0)
    channels = [scalp, skull, csf, t.gm, t.wm, t.ventricles, t.texture, t.bone_variation]
    volume = torch.from_numpy(np.stack(channels).astype(np.float32))[None]
    return _Anatomy(volume=volume, origin_mm=t.origin_mm, shape=t.template.shape, brain_centre_mm=t.brain_centre_mm)


# Channels of the version 2 anatomy volume: the shells are built per subject from these fields.
_V2_CHANNELS = ("inner_distance", "skull_thickness", "scalp_thickness", "brain", "gm", "wm", "ventricles",
                "wm_shift", "bone_variation")


@functools.lru_cache(maxsize=1)
def _anatomy_v2() -> _Anatomy:
    """Version 2: the fields a subject's tissue fractions are built from (see :func:`_fractions_v2`).

    The template's texture becomes ``wm_shift``: its T1 residual over version 1's WM-GM T1
    contrast, i.e. how much more white-matter-like (or, negative, grey-matter-like) a voxel looks
    than its tissue maps say; each modality then shows it with its own WM-GM contrast.
    """
    t = _template()
    wm_gm_t1 = _mr_signal(TISSUE_TABLE["wm"], T1) - _mr_signal(TISSUE_TABLE["gm"], T1)
    channels = {
        "inner_distance": t.signed - t.gap, "skull_thickness": t.skull_thickness,
        "scalp_thickness": t.scalp_thickness, "brain": t.brain, "gm": t.gm, "wm": t.wm, "ventricles": t.ventricles,
        "wm_shift": t.texture / wm_gm_t1, "bone_variation": t.bone_variation,
    }
    volume = torch.from_numpy(np.stack([channels[c] for c in _V2_CHANNELS]).astype(np.float32))[None]
    return _Anatomy(volume=volume, origin_mm=t.origin_mm, shape=t.template.shape, brain_centre_mm=t.brain_centre_mm)


def _ventricles(csf_in: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """The lateral and third ventricles: large CSF components in a central box (MNI mm)."""
    coords = [origin[a] + np.arange(csf_in.shape[a]) for a in range(3)]
    box = (
        (np.abs(coords[0]) < 30)[:, None, None]
        & ((coords[1] > -50) & (coords[1] < 35))[None, :, None]
        & ((coords[2] > -10) & (coords[2] < 35))[None, None, :]
    )
    labelled, count = ndi.label((csf_in > 0.5) & box)
    sizes = ndi.sum_labels(np.ones_like(labelled), labelled, index=np.arange(1, count + 1))
    keep = np.flatnonzero(sizes >= 300) + 1
    return np.isin(labelled, keep).astype(np.float32)


def _mr_signal(tissue: Tissue, weighting: str) -> float:
    """Version 1's spin-echo signal S = PD (1 - exp(-TR/T1)) exp(-TE/T2) of one tissue."""
    tr, te = SEQUENCES[weighting]
    return tissue.pd * (1.0 - np.exp(-tr / tissue.t1_ms)) * np.exp(-te / tissue.t2_ms)


# --------------------------------------------------------------------------------------------
# Subjects


def _output_grid(dim: int, cfg: PhantomConfig, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """World coordinates (N, *S, 3) of every output voxel, their affines, and the spacing.

    2D arrays are (rows, cols) = (anterior -> posterior, right -> left of the viewer, i.e.
    x ascending); 3D arrays are (z, y, x) with z ascending, y descending and x ascending.
    """
    if dim == 2:
        rows, cols = cfg.size2d
        sy, sx = cfg.fov2d_mm[0] / rows, cfg.fov2d_mm[1] / cols
        n = cfg.slices_per_subject
        lo, hi = cfg.slab_mm
        dz = (hi - lo) / n
        zs = lo + (np.arange(n) + 0.5) * dz
        y0 = centre[1] + cfg.fov2d_mm[0] / 2 - sy / 2
        x0 = centre[0] - cfg.fov2d_mm[1] / 2 + sx / 2
        ys = y0 - sy * np.arange(rows)
        xs = x0 + sx * np.arange(cols)
        grid = np.stack(np.broadcast_arrays(xs[None, None, :], ys[None, :, None], zs[:, None, None]), -1)
        affines = np.zeros((n, 4, 4))
        affines[:, 0, 1], affines[:, 0, 3] = sx, x0
        affines[:, 1, 0], affines[:, 1, 3] = -sy, y0
        affines[:, 2, 2], affines[:, 2, 3] = dz, zs
        affines[:, 3, 3] = 1.0
        return grid.astype(np.float32), affines, (sy, sx)
    depth, rows, cols = cfg.size3d
    sz, sy, sx = (f / s for f, s in zip(cfg.fov3d_mm, cfg.size3d))
    z0 = centre[2] + 12.0 - cfg.fov3d_mm[0] / 2 + sz / 2  # a little up: the scalp sits above the brain
    y0 = centre[1] + cfg.fov3d_mm[1] / 2 - sy / 2
    x0 = centre[0] - cfg.fov3d_mm[2] / 2 + sx / 2
    zs, ys, xs = z0 + sz * np.arange(depth), y0 - sy * np.arange(rows), x0 + sx * np.arange(cols)
    grid = np.stack(np.broadcast_arrays(xs[None, None, :], ys[None, :, None], zs[:, None, None]), -1)
    affine = np.array([[0, 0, sx, x0], [0, -sy, 0, y0], [sz, 0, 0, z0], [0, 0, 0, 1.0]])
    return grid[None].astype(np.float32), affine[None], (sz, sy, sx)


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _subject_points(points: np.ndarray, anatomy: _Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Map subject-space points (..., 3) to template points: random affine + smooth field."""
    return _subject_mapping(points, anatomy, rng)[0]


def _subject_mapping(
    points: np.ndarray, anatomy: _Anatomy, rng: np.random.Generator, head_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Template points of subject-space ``points`` (..., 3) and the mapping's linear part (3, 3):
    a random affine (a head ``head_scale`` times the template's size) plus a smooth field."""
    centre = anatomy.brain_centre_mm
    matrix = _rotation(rng.uniform(-1, 1, 3) * np.array(SUBJECT_ROTATION_DEG)) @ np.diag(
        1.0 + rng.uniform(-SUBJECT_SCALING, SUBJECT_SCALING, 3)
    )
    if head_scale != 1.0:
        matrix = matrix / head_scale
    shift = rng.uniform(-SUBJECT_TRANSLATION_MM, SUBJECT_TRANSLATION_MM, 3)
    mapped = (points - centre) @ matrix.T + centre + shift
    mapped = mapped + _smooth_random_field(
        points, anatomy, rng, 3, SUBJECT_DISPLACEMENT_CELL_MM, SUBJECT_DISPLACEMENT_MM
    )
    return mapped, matrix


def _smooth_random_field(
    points: np.ndarray, anatomy: _Anatomy, rng: np.random.Generator, channels: int, cell_mm: float, rms: float
) -> np.ndarray:
    """A smooth random field at ``points`` (..., channels): blurred noise on a grid of ``cell_mm``
    cells over the template box, scaled to ``rms``, sampled trilinearly."""
    extent = np.array(anatomy.shape, dtype=float)  # template box in mm (1 mm voxels)
    cells = np.maximum(3, np.ceil(extent / cell_mm).astype(int))
    coarse = np.stack([ndi.gaussian_filter(rng.standard_normal(cells), 1.0, mode="nearest") for _ in range(channels)])
    coarse *= rms / (coarse.std() + 1e-8)
    field = torch.from_numpy(coarse.astype(np.float32))[None]  # (1, channels, X, Y, Z)
    return _sample(field, _normalised(points, anatomy)).numpy()


def _normalised(points: np.ndarray, anatomy: _Anatomy) -> torch.Tensor:
    """World points (..., 3) as grid_sample coordinates over the template box (align_corners)."""
    index = (points - anatomy.origin_mm) / (np.array(anatomy.shape) - 1) * 2.0 - 1.0
    # grid_sample wants (W, H, D) = (Z, Y, X) order for a (X, Y, Z) volume.
    return torch.from_numpy(index[..., ::-1].astype(np.float32).copy())


def _sample(volume: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Trilinear samples of ``volume`` (1, C, X, Y, Z) at ``grid`` (..., 3) -> (..., C)."""
    flat = grid.reshape(1, -1, 1, 1, 3)
    out = F.grid_sample(volume, flat, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(volume.shape[1], *grid.shape[:-1]).movedim(0, -1)


def _jitter(rng: np.random.Generator) -> dict[str, Tissue]:
    """The tissue table with a small per-subject variation of PD, T1 and T2."""
    out = {}
    for name, t in TISSUE_TABLE.items():
        f = 1.0 + TISSUE_JITTER * rng.uniform(-1, 1, 3)
        out[name] = Tissue(pd=t.pd * f[0], t1_ms=t.t1_ms * f[1], t2_ms=t.t2_ms * f[2], hu=t.hu)
    return out


def _blur(images: np.ndarray, dim: int) -> np.ndarray:
    """Slight in-image blur (the first axis holds the items)."""
    return ndi.gaussian_filter(images, (0.0,) + (BLUR_SIGMA_PX,) * dim)


def _subject(subject: int, dim: int, cfg: PhantomConfig) -> dict[str, np.ndarray]:
    """Version 1: images of every modality (unscaled), labels and affines for one subject."""
    anatomy = _anatomy()
    rng = np.random.default_rng([1, subject])
    points, affines, spacing = _output_grid(dim, cfg, anatomy.brain_centre_mm)
    template_points = _subject_points(points, anatomy, rng)
    channels = _sample(anatomy.volume, _normalised(template_points, anatomy)).numpy()
    fractions = np.clip(channels[..., : len(TISSUES)], 0.0, 1.0)
    air = np.clip(1.0 - fractions.sum(-1), 0.0, 1.0)
    ventricles, texture, bone_variation = (channels[..., len(TISSUES) + i] for i in range(3))
    tissues = _jitter(rng)
    spatial = points.shape[:-1]

    out: dict[str, np.ndarray] = {}
    wm_signal = {}
    for weighting in MR_MODALITIES:
        signal = air * _mr_signal(tissues["air"], weighting)
        for i, name in enumerate(TISSUES):
            signal = signal + fractions[..., i] * _mr_signal(tissues[name], weighting)
        if weighting == T1:
            signal = signal + texture
        wm_signal[weighting] = _mr_signal(tissues["wm"], weighting)
        out[weighting] = signal
    hu = air * tissues["air"].hu
    for i, name in enumerate(TISSUES):
        value = tissues[name].hu + (250.0 * bone_variation if name == "skull" else 0.0)
        hu = hu + fractions[..., i] * value
    out[CT] = hu

    for name in MODALITIES:
        image = _blur(out[name].astype(np.float32), dim)
        if name == CT:
            image = image + rng.normal(0.0, CT_NOISE_HU, spatial)
            out[name] = normalise_ct(image)
            continue
        log_bias = _smooth_random_field(points, anatomy, rng, 1, BIAS_CELL_MM, BIAS_AMPLITUDE)[..., 0]
        image = image * np.exp(log_bias)
        sigma = MR_NOISE * wm_signal[name]
        image = np.hypot(image + rng.normal(0.0, sigma, spatial), rng.normal(0.0, sigma, spatial))
        out[name] = np.stack([normalise_mr(item) for item in image])

    all_fractions = np.concatenate([air[..., None], fractions], -1)  # air, scalp, skull, csf, gm, wm
    order = np.array([LABELS["background"], LABELS["scalp"], LABELS["skull"], LABELS["csf"], LABELS["gm"], LABELS["wm"]])
    labels = order[np.argmax(all_fractions, -1)].astype(np.uint8)
    labels[(labels == LABELS["csf"]) & (ventricles > 0.5)] = LABELS["ventricles"]
    out["labels"] = labels
    out["affines"] = affines
    out["spacing"] = np.asarray(spacing)
    return out


# --------------------------------------------------------------------------------------------
# Version 2 subjects


def _fractions_v2(channels: np.ndarray, look: Appearance) -> dict[str, np.ndarray]:
    """Tissue fractions (``TISSUES_V2``) from sampled version 2 anatomy ``channels`` (..., C).

    Going out from the brain: CSF up to the inner skull surface, the skull (outer and inner tables
    of cortical bone with marrow-filled diploe between them), the scalp (subcutaneous fat mixed
    with connective tissue and muscle, then the skin). Thicknesses are the template's fields times
    the subject's factors. Also returns ``ventricles``, ``wm_shift`` and ``bone_variation``.
    """
    c = {name: channels[..., i] for i, name in enumerate(_V2_CHANNELS)}
    d = c["inner_distance"]
    skull_t = look.skull_scale * c["skull_thickness"]
    scalp_t = look.scalp_scale * c["scalp_thickness"]
    skin_t = np.minimum(look.skin_mm, 0.5 * scalp_t)
    inside_skull = 1.0 - _ramp(d)
    skull = _ramp(d) - _ramp(d - skull_t)
    diploe = _ramp(d - 0.5 * (1.0 - look.diploe) * skull_t) - _ramp(d - 0.5 * (1.0 + look.diploe) * skull_t)
    outer = skull_t + scalp_t
    scalp = _ramp(d - skull_t) - _ramp(d - outer)
    skin = _ramp(d - (outer - skin_t)) - _ramp(d - outer)
    fat_share = np.clip(look.scalp_fat + SCALP_FAT_VARIATION * c["bone_variation"], 0.0, 1.0)
    subcutaneous = np.clip(scalp - skin, 0.0, 1.0)
    brain = np.clip(c["brain"], 0.0, 1.0)
    gm, wm = np.clip(c["gm"], 0.0, 1.0), np.clip(c["wm"], 0.0, 1.0)
    out = {
        "skin": skin + (1.0 - fat_share) * subcutaneous,
        "fat": fat_share * subcutaneous + MARROW_FAT * diploe,
        "bone": skull - MARROW_FAT * diploe,
        "csf": np.clip(brain - gm - wm, 0.0, 1.0) + np.clip(inside_skull - brain, 0.0, 1.0),
        "gm": gm,
        "wm": wm,
    }
    out["air"] = np.clip(1.0 - sum(out.values()), 0.0, 1.0)
    out.update(ventricles=c["ventricles"], wm_shift=c["wm_shift"], bone_variation=c["bone_variation"])
    return out


def _slice_profile(dim: int, slice_mm: dict[str, float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Offsets (mm, along the slice normal) of the sub-slices a 2D slice integrates, and each
    modality's weights over them: a box as wide as its slice thickness. 3D volumes take one
    sub-slice (their through-plane extent is a blur, see :func:`_blur_v2`)."""
    widest = max(slice_mm.values())
    count = int(np.ceil(widest / SUB_SLICE_MM)) | 1  # odd: the middle sub-slice is the slice itself
    if dim == 3 or count == 1:
        return np.zeros(1), {m: np.ones(1) for m in slice_mm}
    offsets = np.linspace(-widest / 2, widest / 2, count)
    step = offsets[1] - offsets[0]
    weights = {}
    for m, thickness in slice_mm.items():
        w = np.clip((thickness / 2 - np.abs(offsets)) / step + 0.5, 0.0, 1.0)
        weights[m] = w / w.sum()
    return offsets, weights


def _blur_v2(image: np.ndarray, dim: int, blur_px: float, slice_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    """In-plane Gaussian blur of ``blur_px``; in 3D also through-plane, a Gaussian as wide (FWHM)
    as the slice thickness or the slice spacing, whichever is larger (the first axis holds the items)."""
    if dim == 2:
        return ndi.gaussian_filter(image, (0.0, blur_px, blur_px))
    through = max(slice_mm, spacing[0]) / (2.0 * np.sqrt(2.0 * np.log(2.0))) / spacing[0]
    return ndi.gaussian_filter(image, (0.0, through, blur_px, blur_px))


def _mixed(fractions: dict[str, np.ndarray], weights: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The ``names`` fractions (..., K) averaged over their K sub-slices with ``weights`` (partial
    volume across the slice)."""
    return {n: fractions[n] @ weights.astype(fractions[n].dtype) for n in names}


def _image_v2(modality: str, mixed: dict[str, np.ndarray], look: Appearance) -> np.ndarray:
    """The unscaled, noise-free image of ``modality`` from mixed fractions."""
    if modality == CT:
        hu = {t: look.tissues[t].hu for t in TISSUES_V2}
        image = sum(mixed[t] * hu[t] for t in TISSUES_V2) + BONE_VARIATION_HU * mixed["bone_shift"]
        return image + look.texture_gain * mixed["wm_shift"] * (hu["wm"] - hu["gm"])
    signal = {t: mr_signal(look.tissues[t], look.sequences[modality], look.field_t) for t in TISSUES_V2}
    image = sum(mixed[t] * signal[t] for t in TISSUES_V2)
    return image + look.texture_gain * mixed["wm_shift"] * (signal["wm"] - signal["gm"])


def _subject_v2(subject: int, dim: int, cfg: PhantomConfig, variant: str | None = None) -> dict:
    """Version 2: images of every modality (scaled), labels, affines and the drawn appearance.

    Three random streams per subject: shape, appearance and noise. A variant changes only the
    appearance ranges, so its subject has the plain subject's anatomy and noise pattern.
    """
    anatomy = _anatomy_v2()
    shape_rng, look_rng, noise_rng = (np.random.default_rng([2, subject, k]) for k in range(3))
    look = draw_appearance(look_rng, ranges_for(variant))
    points, affines, spacing = _output_grid(dim, cfg, anatomy.brain_centre_mm)
    template_points, matrix = _subject_mapping(points, anatomy, shape_rng, look.head_scale)
    offsets, weights = _slice_profile(dim, look.slice_mm)
    # The sub-slices of a pixel lie next to each other in the sampling grid (template memory too).
    sub_points = template_points[..., None, :] + offsets[:, None] * matrix[:, 2]  # (..., K, 3)
    fractions = _fractions_v2(_sample(anatomy.volume, _normalised(sub_points, anatomy)).numpy(), look)
    fractions["bone_shift"] = fractions["bone"] * fractions["bone_variation"]
    spatial = points.shape[:-1]
    names = (*TISSUES_V2, "wm_shift", "bone_shift")

    out: dict = {}
    for modality in MODALITIES:
        image = _image_v2(modality, _mixed(fractions, weights[modality], names), look).astype(np.float32)
        image = _blur_v2(image, dim, look.blur_px[modality], look.slice_mm[modality], spacing)
        if modality == CT:
            out[CT] = normalise_ct(image + noise_rng.normal(0.0, look.ct_noise_hu, spatial))
            continue
        log_bias = _smooth_random_field(points, anatomy, noise_rng, 1, BIAS_CELL_MM, look.bias_rms[modality])[..., 0]
        image = image * np.exp(log_bias)
        sigma = look.noise[modality] * mr_signal(look.tissues["wm"], look.sequences[modality], look.field_t)
        image = np.hypot(image + noise_rng.normal(0.0, sigma, spatial), noise_rng.normal(0.0, sigma, spatial))
        out[modality] = np.stack([normalise_mr(item) for item in image])

    centre = {name: f[..., len(offsets) // 2] for name, f in fractions.items()}  # the slice itself, offset 0
    stacked = np.stack([centre[t] for t in TISSUES_V2], -1)
    order = np.array([LABELS[_LABEL_OF_V2[t]] for t in TISSUES_V2])
    # Tissues of one label are summed before the arg-max (skin + fat: scalp; bone with marrow: skull).
    by_label = np.zeros(stacked.shape[:-1] + (len(LABELS),), np.float32)
    for i, value in enumerate(order):
        by_label[..., value] += stacked[..., i]
    labels = np.argmax(by_label, -1).astype(np.uint8)
    labels[(labels == LABELS["csf"]) & (centre["ventricles"] > 0.5)] = LABELS["ventricles"]
    out["labels"] = labels
    out["affines"] = affines
    out["spacing"] = np.asarray(spacing)
    out["appearance"] = {"subject": int(subject), **look.summary()}
    return out


def _generate_set(
    ids: list[int], dim: int, cfg: PhantomConfig, progress: bool = False, version: int = 1, variant: str | None = None
) -> PhantomSet:
    make = functools.partial(_subject, dim=dim, cfg=cfg)
    if version == 2:
        make = functools.partial(_subject_v2, dim=dim, cfg=cfg, variant=variant)
    desc = f"phantom v{version} {dim}D" + (f" {variant}" if variant else "")
    parts = [make(s) for s in progress_bar(ids, desc=desc, disable=not progress)]
    per_subject = parts[0]["labels"].shape[0]
    return PhantomSet(
        images={m: np.concatenate([p[m] for p in parts]).astype(np.float32) for m in MODALITIES},
        labels=np.concatenate([p["labels"] for p in parts]),
        subjects=np.repeat(np.asarray(ids, dtype=np.int64), per_subject),
        affines=np.concatenate([p["affines"] for p in parts]),
        spacing=tuple(float(s) for s in parts[0]["spacing"]),
        dim=dim,
        appearance=[p["appearance"] for p in parts if "appearance" in p],
    )


# --------------------------------------------------------------------------------------------
# Cache


def _cache_key(cfg: PhantomConfig, split: str, dim: int, version: int = 1, variant: str | None = None) -> str:
    """File stem of a cached set. Version 1 keeps its original key, so existing caches stay valid."""
    if version == 1:
        spec = {"version": 1, "split": split, "dim": dim, "config": asdict(cfg)}
        digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        return f"{split}-{dim}d-{digest}"
    spec = {"version": version, "variant": variant, "split": split, "dim": dim, "config": asdict(cfg)}
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"v{version}-{variant or 'base'}-{split}-{dim}d-{digest}"


def _write_set(path: Path, data: PhantomSet) -> None:
    """Write atomically (:func:`imse_study.atomic.atomic_write`)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a bare name
            np.savez_compressed(
                f, labels=data.labels, subjects=data.subjects, affines=data.affines,
                spacing=np.asarray(data.spacing), dim=np.asarray(data.dim),
                appearance=np.asarray(json.dumps(data.appearance)),
                **{f"image_{m}": v for m, v in data.images.items()},
            )

    atomic_write(path, write, suffix=".npz.tmp")


def _read_set(path: Path, modalities: tuple[str, ...] = MODALITIES) -> PhantomSet:
    """A cached set, decompressing only the images of ``modalities``."""
    with np.load(path) as z:
        return PhantomSet(
            images={m: z[f"image_{m}"] for m in modalities},
            labels=z["labels"], subjects=z["subjects"], affines=z["affines"],
            spacing=tuple(float(s) for s in z["spacing"]), dim=int(z["dim"]),
            appearance=json.loads(str(z["appearance"])) if "appearance" in z.files else [],
        )
