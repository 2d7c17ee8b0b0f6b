"""How a version 2 phantom subject looks: the training distribution of appearance, and the named
held-out variants that training never draws.

Each subject draws, reproducibly from its id, the things real scans differ in: field strength
(1.5 or 3 T, which sets the relaxation times of :mod:`imse_study.data.tissues`), sequence timing,
tissue properties (a small jitter), bias-field strength, noise level, in-plane resolution (blur),
slice thickness, skull and scalp thickness, the fat share of the scalp, the marrow (diploe) of the
skull, and head size. Each MR modality and CT draws its own acquisition (noise, bias, blur, slice
thickness), as separate scans do.

A variant (:data:`VARIANTS`) replaces some ranges with values outside the training ranges and keeps
every other draw: its subject ``i`` has the same anatomy, noise pattern and the other appearance
parameters as the plain test subject ``i``, so a change of score is the variant's doing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from imse_study.data.tissues import SEQUENCES, TISSUE_TABLES, Sequence, Tissue
from imse_study.modalities import MODALITIES, MR_MODALITIES

MR_WEIGHTINGS = MR_MODALITIES
ALL_MODALITIES = MODALITIES


@dataclass(frozen=True)
class AppearanceRanges:
    """Ranges (lo, hi) the per-subject appearance is drawn from, uniformly unless said otherwise.

    The defaults are the training distribution; :data:`VARIANTS` change some of them.
    """

    fields_t: tuple[float, ...] = (1.5, 3.0)  # one is drawn with equal chance
    tissue_table: str = "literature"  # a key of tissues.TISSUE_TABLES
    tissue_jitter: float = 0.05  # relative, on PD, T1 and T2 of each tissue
    hu_jitter: float = 3.0  # HU, on soft tissue; bone gets the same relative jitter as MR
    sequences: dict[str, Sequence] = field(default_factory=lambda: dict(SEQUENCES))
    timing_scale: tuple[float, float] = (0.85, 1.15)  # TR and TE times the nominal value
    bias_rms: tuple[float, float] = (0.03, 0.2)  # RMS of the log bias field
    noise: tuple[float, float] = (0.005, 0.03)  # MR noise sigma / white-matter signal (log-uniform)
    ct_noise_hu: tuple[float, float] = (3.0, 15.0)
    blur_px: tuple[float, float] = (0.3, 0.9)  # in-plane Gaussian sigma, output pixels
    slice_mm: tuple[float, float] = (1.0, 4.0)  # slice thickness (through-plane extent)
    head_scale: tuple[float, float] = (0.93, 1.07)  # global size, on top of the per-axis jitter
    skull_scale: tuple[float, float] = (0.8, 1.25)  # times the template's skull thickness
    scalp_scale: tuple[float, float] = (0.8, 1.5)  # times the template's scalp thickness
    skin_mm: tuple[float, float] = (1.0, 2.0)  # the outer skin layer of the scalp
    scalp_fat: tuple[float, float] = (0.7, 0.95)  # fat share of the scalp under the skin
    diploe: tuple[float, float] = (0.2, 0.5)  # share of the skull's thickness that holds marrow
    texture_gain: tuple[float, float] = (0.7, 1.3)  # the template's own brain texture


TRAINING = AppearanceRanges()


@dataclass(frozen=True)
class Variant:
    """A named held-out phantom variant: what it changes, and the ranges that change it."""

    description: str
    changes: dict

    def ranges(self) -> AppearanceRanges:
        """The appearance ranges of this variant."""
        return replace(TRAINING, **self.changes)


VARIANTS: dict[str, Variant] = {
    "noisy": Variant("MR noise 5-8 % of the white-matter signal, CT noise 25-40 HU",
                     {"noise": (0.05, 0.08), "ct_noise_hu": (25.0, 40.0)}),
    "strong-bias": Variant("a bias field of log-RMS 0.35-0.5", {"bias_rms": (0.35, 0.5)}),
    "thick-slice": Variant("6-7 mm slices", {"slice_mm": (6.0, 7.0)}),
    "low-res": Variant("in-plane blur of 1.4-1.8 pixels", {"blur_px": (1.4, 1.8)}),
    "small-head": Variant("a head 80-85 % of the template's size", {"head_scale": (0.8, 0.85)}),
    "thick-scalp": Variant("skull 1.4-1.6 and scalp 1.8-2.1 times the template's thickness",
                           {"skull_scale": (1.4, 1.6), "scalp_scale": (1.8, 2.1)}),
    "3t-long-te": Variant(
        "3 T with longer echo times: T1w TR 700 / TE 20, T2w FSE TE 140, PD FSE TE 30 (ms)",
        {"fields_t": (3.0,), "sequences": {"t1": Sequence(700.0, 20.0, False), "t2": Sequence(4000.0, 140.0, True),
                                           "pd": Sequence(7000.0, 30.0, True)}}),
    "other-tissue": Variant("grey/white matter and muscle relaxation times of Stanisz et al. 2005 (tissue samples)",
                            {"tissue_table": "stanisz2005"}),
    "conventional-se": Variant("T2 and PD by conventional spin echo: fat keeps its short T2 and is not bright",
                               {"sequences": {name: replace(s, fast_spin_echo=False) for name, s in SEQUENCES.items()}}),
}


def variant_names() -> tuple[str, ...]:
    """The names of the held-out variants."""
    return tuple(VARIANTS)


def ranges_for(variant: str | None) -> AppearanceRanges:
    """The appearance ranges of ``variant`` (``None``: the training distribution)."""
    if variant is None:
        return TRAINING
    try:
        return VARIANTS[variant].ranges()
    except KeyError:
        raise ValueError(f"unknown phantom variant {variant!r}: choose one of {', '.join(VARIANTS)}") from None


@dataclass(frozen=True)
class Appearance:
    """The appearance one subject was drawn with."""

    field_t: float
    tissue_table: str
    tissues: dict[str, Tissue]
    sequences: dict[str, Sequence]
    bias_rms: dict[str, float]  # per MR weighting
    noise: dict[str, float]  # per MR weighting
    ct_noise_hu: float
    blur_px: dict[str, float]  # per modality
    slice_mm: dict[str, float]  # per modality
    head_scale: float
    skull_scale: float
    scalp_scale: float
    skin_mm: float
    scalp_fat: float
    diploe: float
    texture_gain: float

    def summary(self) -> dict:
        """The drawn parameters as plain JSON-able values (tissue properties left out)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("tissues", "sequences")}
        out["sequences"] = {name: asdict(s) for name, s in self.sequences.items()}
        return out


def _uniform(u: float, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return float(lo + u * (hi - lo))


def _log_uniform(u: float, bounds: tuple[float, float]) -> float:
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    return float(np.exp(lo + u * (hi - lo)))


def _jittered(tissues: dict[str, Tissue], rng: np.random.Generator, rel: float, hu: float) -> dict[str, Tissue]:
    """The table with each tissue's PD, T1, T2 (all fields) and CT number jittered."""
    out = {}
    for name in sorted(tissues):  # a fixed order: the draws do not depend on the dict's order
        t = tissues[name]
        f = 1.0 + rel * rng.uniform(-1, 1, 4)
        hu_shift = hu * rng.uniform(-1, 1)
        relaxation = {
            b: replace(r, t1_ms=r.t1_ms * f[1], t2_ms=r.t2_ms * f[2],
                       fse_t2_ms=None if r.fse_t2_ms is None else r.fse_t2_ms * f[2])
            for b, r in t.relaxation.items()
        }
        new_hu = t.hu if name == "air" else (t.hu * f[3] if t.hu > 500 else t.hu + hu_shift)
        out[name] = replace(t, pd=t.pd * f[0], hu=new_hu, relaxation=relaxation)
    return out


def draw_appearance(rng: np.random.Generator, ranges: AppearanceRanges = TRAINING) -> Appearance:
    """One subject's appearance. Every draw happens in a fixed order whatever the ranges, so that a
    variant changes only what its ranges change."""
    u = iter(rng.uniform(size=64))
    field_t = ranges.fields_t[min(int(next(u) * len(ranges.fields_t)), len(ranges.fields_t) - 1)]
    scale = {w: (_uniform(next(u), ranges.timing_scale), _uniform(next(u), ranges.timing_scale)) for w in MR_WEIGHTINGS}
    sequences = {w: replace(ranges.sequences[w], tr_ms=ranges.sequences[w].tr_ms * scale[w][0],
                            te_ms=ranges.sequences[w].te_ms * scale[w][1]) for w in MR_WEIGHTINGS}
    bias = {w: _uniform(next(u), ranges.bias_rms) for w in MR_WEIGHTINGS}
    noise = {w: _log_uniform(next(u), ranges.noise) for w in MR_WEIGHTINGS}
    ct_noise = _uniform(next(u), ranges.ct_noise_hu)
    blur = {m: _uniform(next(u), ranges.blur_px) for m in ALL_MODALITIES}
    slices = {m: _uniform(next(u), ranges.slice_mm) for m in ALL_MODALITIES}
    shape = {name: _uniform(next(u), getattr(ranges, name))
             for name in ("head_scale", "skull_scale", "scalp_scale", "skin_mm", "scalp_fat", "diploe", "texture_gain")}
    tissues = _jittered(TISSUE_TABLES[ranges.tissue_table], rng, ranges.tissue_jitter, ranges.hu_jitter)
    return Appearance(field_t=field_t, tissue_table=ranges.tissue_table, tissues=tissues, sequences=sequences, bias_rms=bias, noise=noise,
                      ct_noise_hu=ct_noise, blur_px=blur, slice_mm=slices, **shape)
