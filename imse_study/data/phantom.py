"""The bundled multi-modal head phantom: the study's default data set, with no download.

Anatomy comes from the ICBM 2009a template that nilearn's wheel ships (a skull-stripped T1 and grey
and white matter probability maps at 1 mm). From it we derive CSF, the ventricles, and procedural
skull and scalp shells of smoothly varying thickness, so that a CT-like image has bone. Every
voxel holds tissue *fractions* (partial volume); each modality is the fraction-weighted sum of one
tissue-property table:

* MR (``t1``, ``t2``, ``pd``): the spin-echo signal equation ``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)``
  with approximate 1.5 T relaxation times from the literature, then a smooth multiplicative bias
  field and Rician noise. The T1 image also carries the template's own texture inside the brain.
* CT: Hounsfield units (air -1000, fat-rich scalp, CSF, grey and white matter, bone ~1100 with a
  smooth diploe-like variation), then Gaussian noise. CT has no bias field.

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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from tqdm.auto import tqdm

from imse_study.atomic import atomic_write
from imse_study.config import PhantomConfig, Profile, get_profile
from imse_study.data.normalise import normalise_ct, normalise_mr

PHANTOM_VERSION = 1  # bump when generation changes: it invalidates every cached set
MODALITIES = ("t1", "t2", "pd", "ct")
LABELS = {"background": 0, "csf": 1, "gm": 2, "wm": 3, "ventricles": 4, "skull": 5, "scalp": 6}
SPLITS = ("train", "val", "test")
SPLIT_ID_OFFSET = {"train": 1000, "val": 2000, "test": 3000}
_ANATOMY_SEED = 20230601  # the template-level procedural anatomy (skull/scalp thickness) is fixed

# Tissue fraction channels of the anatomy volume, in this order.
TISSUES = ("scalp", "skull", "csf", "gm", "wm")
_EXTRA_CHANNELS = ("ventricles", "t1_texture", "bone_variation")


@dataclass(frozen=True)
class Tissue:
    """Physical properties of one tissue: proton density (relative), T1 and T2 (ms), CT number (HU)."""

    pd: float
    t1_ms: float
    t2_ms: float
    hu: float


# Approximate 1.5 T values (e.g. Wansapura et al., JMRI 1999; Bojorquez et al., MRI 2017; the
# BrainWeb simulator's tables) and typical CT numbers. "scalp" mixes skin and subcutaneous fat,
# which makes it bright on T1; cortical bone has almost no MR signal and a high CT number.
TISSUE_TABLE: dict[str, Tissue] = {
    "air": Tissue(pd=0.0, t1_ms=1000.0, t2_ms=1.0, hu=-1000.0),
    "scalp": Tissue(pd=0.90, t1_ms=300.0, t2_ms=85.0, hu=-40.0),
    "skull": Tissue(pd=0.08, t1_ms=300.0, t2_ms=2.0, hu=1100.0),
    "csf": Tissue(pd=1.00, t1_ms=4000.0, t2_ms=2000.0, hu=8.0),
    "gm": Tissue(pd=0.82, t1_ms=1200.0, t2_ms=95.0, hu=40.0),
    "wm": Tissue(pd=0.70, t1_ms=650.0, t2_ms=80.0, hu=28.0),
}

# Spin-echo sequences (TR, TE in ms) for the three MR weightings.
SEQUENCES: dict[str, tuple[float, float]] = {"t1": (500.0, 12.0), "t2": (4000.0, 100.0), "pd": (5000.0, 12.0)}

# Subject variability and acquisition effects.
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


@dataclass
class PhantomSet:
    """A split of the phantom: aligned images of every modality with one label map per item."""

    images: dict[str, np.ndarray]  # modality -> (N, *S) float32 in [-1, 1]
    labels: np.ndarray  # (N, *S) uint8
    subjects: np.ndarray  # (N,) int subject id of each item
    affines: np.ndarray  # (N, 4, 4) voxel index -> mm (2D items: index (i, j, 0))
    spacing: tuple[float, ...]  # mm per array axis
    dim: int

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


def load_phantom(
    split: str = "train",
    dim: int = 2,
    profile: str | Profile = "quick",
    modalities: tuple[str, ...] | list[str] = MODALITIES,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> PhantomSet:
    """Return one split of the phantom, generating and caching it on first use.

    ``dim=2`` gives axial slices (``profile.phantom.slices_per_subject`` per subject, from the
    slab ``slab_mm``), ``dim=3`` one volume per subject; sizes come from the profile.
    """
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"unknown phantom modality {unknown}: choose from {', '.join(MODALITIES)}")
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, not {dim!r}")
    prof = get_profile(profile)
    ids = subject_ids(split, prof)
    folder = Path(cache_dir) if cache_dir is not None else globals()["cache_dir"]()
    path = folder / f"phantom-{_cache_key(prof.phantom, split, dim)}.npz"
    if path.exists():
        try:
            full = _read_set(path, tuple(modalities))
        except (OSError, ValueError, KeyError):
            full = None  # a damaged cache file is regenerated, never trusted
    else:
        full = None
    if full is None:
        full = _generate_set(ids, dim, prof.phantom, progress=progress)
        _write_set(path, full)
    full.images = {m: full.images[m] for m in modalities}
    return full


# --------------------------------------------------------------------------------------------
# Template-level anatomy


@dataclass
class _Anatomy:
    volume: torch.Tensor  # (1, C, X, Y, Z) float32: TISSUES then _EXTRA_CHANNELS
    origin_mm: np.ndarray  # world position of voxel (0, 0, 0)
    shape: tuple[int, int, int]
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
def _anatomy() -> _Anatomy:
    """Tissue fractions of the template head (1 mm), with procedural skull and scalp."""
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
    inner = gap
    outer_skull = inner + skull_thickness
    outer_scalp = outer_skull + scalp_thickness
    inside_skull = 1.0 - _ramp(signed - inner)
    skull = _ramp(signed - inner) - _ramp(signed - outer_skull)
    scalp = _ramp(signed - outer_skull) - _ramp(signed - outer_scalp)
    csf = csf_in + np.clip(inside_skull - brain, 0.0, 1.0)

    ventricles = _ventricles(csf_in, origin)
    # T1 texture: the template's own detail, as a residual against the tissue model's T1 signal.
    model_t1 = sum(f * _mr_signal(TISSUE_TABLE[t], "t1") for t, f in (("csf", csf_in), ("gm", gm), ("wm", wm)))
    inside = brain > 0
    design = np.stack([template[inside], np.ones(int(inside.sum()), np.float32)], 1)
    scale, offset = np.linalg.lstsq(design, model_t1[inside], rcond=None)[0]
    texture = (scale * template + offset - model_t1) * brain
    bone_variation = _smooth_field(shape, rng, 6, 1.0)

    channels = [scalp, skull, csf, gm, wm, ventricles, texture, bone_variation]
    volume = torch.from_numpy(np.stack(channels).astype(np.float32))[None]
    idx = np.argwhere(inside)
    centre = origin + (idx.min(0) + idx.max(0)) / 2.0
    return _Anatomy(volume=volume, origin_mm=origin, shape=shape, brain_centre_mm=centre)


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
    """Spin-echo signal S = PD (1 - exp(-TR/T1)) exp(-TE/T2) of one tissue."""
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
    centre = anatomy.brain_centre_mm
    matrix = _rotation(rng.uniform(-1, 1, 3) * np.array(SUBJECT_ROTATION_DEG)) @ np.diag(
        1.0 + rng.uniform(-SUBJECT_SCALING, SUBJECT_SCALING, 3)
    )
    shift = rng.uniform(-SUBJECT_TRANSLATION_MM, SUBJECT_TRANSLATION_MM, 3)
    mapped = (points - centre) @ matrix.T + centre + shift
    return mapped + _smooth_random_field(
        points, anatomy, rng, 3, SUBJECT_DISPLACEMENT_CELL_MM, SUBJECT_DISPLACEMENT_MM
    )


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
    """Images of every modality (unscaled), labels and affines for one subject."""
    anatomy = _anatomy()
    rng = np.random.default_rng([PHANTOM_VERSION, subject])
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
    for weighting in ("t1", "t2", "pd"):
        signal = air * _mr_signal(tissues["air"], weighting)
        for i, name in enumerate(TISSUES):
            signal = signal + fractions[..., i] * _mr_signal(tissues[name], weighting)
        if weighting == "t1":
            signal = signal + texture
        wm_signal[weighting] = _mr_signal(tissues["wm"], weighting)
        out[weighting] = signal
    hu = air * tissues["air"].hu
    for i, name in enumerate(TISSUES):
        value = tissues[name].hu + (250.0 * bone_variation if name == "skull" else 0.0)
        hu = hu + fractions[..., i] * value
    out["ct"] = hu

    for name in MODALITIES:
        image = _blur(out[name].astype(np.float32), dim)
        if name == "ct":
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


def _generate_set(ids: list[int], dim: int, cfg: PhantomConfig, progress: bool = False) -> PhantomSet:
    parts = [_subject(s, dim, cfg) for s in tqdm(ids, desc=f"phantom {dim}D", disable=not progress)]
    per_subject = parts[0]["labels"].shape[0]
    return PhantomSet(
        images={m: np.concatenate([p[m] for p in parts]).astype(np.float32) for m in MODALITIES},
        labels=np.concatenate([p["labels"] for p in parts]),
        subjects=np.repeat(np.asarray(ids, dtype=np.int64), per_subject),
        affines=np.concatenate([p["affines"] for p in parts]),
        spacing=tuple(float(s) for s in parts[0]["spacing"]),
        dim=dim,
    )


# --------------------------------------------------------------------------------------------
# Cache


def _cache_key(cfg: PhantomConfig, split: str, dim: int) -> str:
    spec = {"version": PHANTOM_VERSION, "split": split, "dim": dim, "config": asdict(cfg)}
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"{split}-{dim}d-{digest}"


def _write_set(path: Path, data: PhantomSet) -> None:
    """Write atomically (:func:`imse_study.atomic.atomic_write`)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a bare name
            np.savez_compressed(
                f, labels=data.labels, subjects=data.subjects, affines=data.affines,
                spacing=np.asarray(data.spacing), dim=np.asarray(data.dim),
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
        )
