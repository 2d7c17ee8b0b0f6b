"""Similarity losses behind one interface: NCC, LNCC, MI, MIND-SSC, MAE, IMSE, translation + MAE.

``similarity(name, **options)`` returns a :class:`Similarity`, an ``nn.Module`` whose
``forward(warped, target, mask=None)`` is a scalar loss tensor. Lower is better; the loss is
differentiable with respect to ``warped``. A similarity holding a network (IMSE's evaluator, a
translator) holds it as a frozen submodule: ``sim.to(device)`` moves it, once.
``warped`` and ``target`` are ``(B, 1, H, W)`` or ``(B, 1, D, H, W)`` images scaled to [-1, 1];
the loss is averaged over the batch. It is the ``L_sim`` of Eq. 1 (and, for ``imse``, of Eq. 6)
that :mod:`imse_study.registration.optimise` minimises.

``mask`` (same shape as the images, or batch 1; bool or float weights in [0, 1]) restricts the loss
to a region of the *target* grid:

=================  ==============================================================================
name               loss; what the mask does
=================  ==============================================================================
``ncc``            ``1 - NCC`` of the whole image, per sample (0 = perfect positive correlation,
                   2 = perfect anti-correlation); NCC weighted by the mask
``lncc``           MONAI ``LocalNormalizedCrossCorrelationLoss``: ``-mean(local NCC^2)`` in [-1, 0]
                   (squared, so sign-invariant), box kernel ``kernel_size`` (9 in 2D, 7 in 3D);
                   the per-voxel map is averaged with the mask as weights
``mi``             MONAI ``GlobalMutualInformationLoss``: ``-MI`` (nats), Parzen windows with
                   ``num_bins`` bins, inputs rescaled from [-1, 1] to [0, 1] first (MONAI's
                   Gaussian window clamps to [0, 1]); MI is computed on the voxels
                   where the mask is > 0.5 (the mask is binarised, weights are not used)
``mind``           mean ``|MIND(warped) - MIND(target)|`` (or squared, ``distance="l2"``) of the
                   MIND-SSC descriptors (:mod:`.mind`); mask-weighted mean over voxels
``mae``            mean ``|warped - target|``; mask-weighted
``imse``           Eq. 6: mean ``|E(reference, other)|`` of a trained evaluator; mask-weighted
``translated_mae`` ``MAE(translator(warped), target)`` (Eq. 3-4: translation, then MAE); mask-weighted
=================  ==============================================================================

The paper's "NCC" rows (Table 4) come from the authors' code, which uses VoxelMorph's *local* NCC
(window 9, ``IMSE-3D-Full/trainer/utils.py``): ``lncc`` is that measure, ``ncc`` the global one. The authors'
MIND used ``radius=2, distance="l2"``; the defaults here (``radius=1``, ``"l1"``) scored higher on
the phantom for T1 -> T2 and lower for CT -> T1 (``benchmarks/probe_instance.py``).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import torch
from torch import nn
from monai.losses import (
    GlobalMutualInformationLoss,
    LocalNormalizedCrossCorrelationLoss,
)

from imse_study.evaluator.use import check_pair, imse_loss
from imse_study.evaluator.symmetry import FlipAveraged
from imse_study.losses.mind import mind_ssc

__all__ = [
    "Similarity",
    "NCC",
    "LNCC",
    "MutualInformation",
    "MIND",
    "MAE",
    "IMSE",
    "TranslatedMAE",
    "WeightedSum",
    "check_choice",
    "imse_robust",
    "similarity",
    "similarity_names",
    "resolve_similarity",
]

SimilarityLike = Callable[..., torch.Tensor]

Precision = Literal["float32", "bfloat16"]
Flips = Literal["none", "point", "axes"]  # test-time mirror averaging of the evaluator (evaluator.symmetry)
Distance = Literal["l1", "l2"]
LNCCKernel = Literal["rectangular", "triangular", "gaussian"]
MIKernel = Literal["gaussian", "b-spline"]


# ----------------------------------------------------------------------------------------------
# Shared checks and reductions
# ----------------------------------------------------------------------------------------------


def check_choice(option: str, value: Any, allowed: Any) -> Any:
    """``value`` if it is one of ``allowed`` (a ``typing.Literal`` or a sequence), else a one-line ValueError
    naming the allowed values. Every string option of the similarities is checked here."""
    choices = get_args(allowed) if get_origin(allowed) is Literal else tuple(allowed)
    if value not in choices:
        raise ValueError(f"{option} must be one of {', '.join(repr(c) for c in choices)}, not {value!r}")
    return value


def check_image_tensor(name: str, x: torch.Tensor) -> None:
    """Raise a ValueError unless ``x`` is a floating-point (B, 1, H, W) or (B, 1, D, H, W) tensor."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (B, 1, *S), not {type(x).__name__}")
    if x.ndim not in (4, 5) or x.shape[1] != 1:
        raise ValueError(f"{name} must be (B, 1, H, W) or (B, 1, D, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point image, got {x.dtype}")


def _check_images(warped: torch.Tensor, target: torch.Tensor) -> None:
    """Shape checks only (no device sync): both (B, 1, *S) with 2 or 3 spatial axes, equal."""
    check_image_tensor("warped", warped)
    check_image_tensor("target", target)
    if warped.shape != target.shape:
        raise ValueError(f"warped {tuple(warped.shape)} and target {tuple(target.shape)} differ in shape")


def check_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """The mask as floating weights broadcast to ``like`` (B, 1, *S), or None; a one-line ValueError for
    a mask of the wrong type or shape."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a torch.Tensor or None, not {type(mask).__name__}")
    ok = mask.ndim == like.ndim and mask.shape[1] == 1 and mask.shape[0] in (1, like.shape[0])
    if not ok or mask.shape[2:] != like.shape[2:]:
        raise ValueError(f"mask must be (B, 1, *S) or (1, 1, *S) for images {tuple(like.shape)}, "
                         f"got {tuple(mask.shape)}")
    return mask.to(device=like.device, dtype=like.dtype).expand_as(like)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` (B, C, *S) over everything, with ``mask`` (B, 1, *S) as voxel weights."""
    if mask is None:
        return values.mean()
    weights = mask.expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1e-8)


def _freeze(module: torch.nn.Module) -> torch.nn.Module:
    """Eval mode and no parameter gradients: the network is a fixed part of the loss."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


# ----------------------------------------------------------------------------------------------
# The losses
# ----------------------------------------------------------------------------------------------


class Similarity(nn.Module, ABC):
    """A similarity loss, ``forward(warped, target, mask=None) -> scalar``; lower is better.

    Subclasses implement :meth:`loss`; :meth:`forward` checks shapes and devices and prepares the
    mask. Networks named in ``frozen`` stay in eval mode whatever ``train()`` is asked: they are
    fixed parts of the loss.
    """

    name: str = ""
    frozen: tuple[str, ...] = ()

    def __init__(self) -> None:  # no options unless a subclass takes some (the factory reads the signature)
        super().__init__()

    def forward(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_images(warped, target)
        self._check_device(warped)
        return self.loss(warped, target, check_mask(mask, warped))

    @abstractmethod
    def loss(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The loss of ``warped`` against ``target`` (shapes already checked, mask prepared)."""

    def train(self, mode: bool = True) -> Similarity:
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self

    def _check_device(self, x: torch.Tensor) -> None:
        """A one-line error when the similarity's network lives on another device than the images."""
        first = next(self.parameters(), None)
        if first is not None and first.device != x.device:
            raise ValueError(f"the similarity's network is on {first.device} but the images are on {x.device}: "
                             f"move it with similarity.to({str(x.device)!r}) first")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MAE(Similarity):
    """Mean absolute error (the single-modal baseline of Table 4)."""

    name = "mae"

    def loss(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return _masked_mean((warped - target).abs(), mask)


class NCC(Similarity):
    """Global normalised cross-correlation: ``1 - NCC`` per sample, averaged over the batch.

    ``1 - NCC`` rather than ``-NCC`` so that a perfect match scores 0 and the loss is never
    negative; the two have the same gradient. NCC is signed: a contrast inversion (T1 vs T2) scores
    worse than no correlation, which is what makes it a weak multi-modal baseline.
    """

    name = "ncc"

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = float(eps)

    def loss(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        weights = torch.ones_like(warped) if mask is None else mask
        dims = tuple(range(1, warped.ndim))
        total = weights.sum(dims).clamp_min(self.eps)
        mean_w = (weights * warped).sum(dims) / total
        mean_t = (weights * target).sum(dims) / total
        dw = warped - mean_w.view(-1, *[1] * (warped.ndim - 1))
        dt = target - mean_t.view(-1, *[1] * (target.ndim - 1))
        cov = (weights * dw * dt).sum(dims)
        var_w = (weights * dw * dw).sum(dims)
        var_t = (weights * dt * dt).sum(dims)
        ncc = cov / torch.sqrt(var_w * var_t + self.eps)
        return (1.0 - ncc).mean()

    def __repr__(self) -> str:
        return "NCC()"


class LNCC(Similarity):
    """MONAI's local (squared) NCC, ``-mean(LNCC^2)``; ``kernel_size`` None: 9 in 2D, 7 in 3D.

    9 is VoxelMorph's window in 2D; 7 in 3D keeps the 3D window's voxel count (343) near the 2D
    one's (81) times a few, a common choice for 1-2 mm brain volumes.
    """

    name = "lncc"

    def __init__(self, kernel_size: int | None = None, kernel_type: LNCCKernel = "rectangular") -> None:
        super().__init__()
        if kernel_size is not None and (int(kernel_size) < 1 or int(kernel_size) % 2 == 0):
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.kernel_size = kernel_size
        self.kernel_type = check_choice("kernel_type", kernel_type, LNCCKernel)
        # one MONAI loss per dimension, built now so that .to(device) moves their kernels
        self._losses = nn.ModuleDict({
            str(ndim): LocalNormalizedCrossCorrelationLoss(
                spatial_dims=ndim, kernel_size=int(kernel_size if kernel_size is not None else (9 if ndim == 2 else 7)),
                kernel_type=kernel_type, reduction="none")
            for ndim in (2, 3)
        })

    def monai_loss(self, ndim: int) -> LocalNormalizedCrossCorrelationLoss:
        """The MONAI loss for ``ndim`` spatial axes."""
        return self._losses[str(ndim)]

    def loss(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        per_voxel = self.monai_loss(warped.ndim - 2)(warped, target)  # (B, 1, *S), in [-1, 0]
        return _masked_mean(per_voxel, mask)

    def __repr__(self) -> str:
        return f"LNCC(kernel_size={self.kernel_size})"


class MutualInformation(Similarity):
    """MONAI's global mutual information, ``-MI``, on images rescaled from [-1, 1] to [0, 1].

    MONAI's Gaussian Parzen window clamps its inputs to [0, 1], so the rescaling is
    needed, or half the intensity range would be lost. With a mask, MI is computed per sample on
    the voxels where the mask is > 0.5 (MONAI's histogram has no voxel weights).
    """

    name = "mi"

    def __init__(self, num_bins: int = 23, sigma_ratio: float = 0.5, kernel_type: MIKernel = "gaussian") -> None:
        super().__init__()
        self.num_bins = int(num_bins)
        check_choice("kernel_type", kernel_type, MIKernel)
        self._mi = GlobalMutualInformationLoss(kernel_type=kernel_type, num_bins=self.num_bins,
                                               sigma_ratio=sigma_ratio, reduction="mean")

    def loss(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        w = ((warped + 1.0) * 0.5).clamp(0.0, 1.0)
        t = ((target + 1.0) * 0.5).clamp(0.0, 1.0)
        if mask is None:
            return self._mi(w, t)
        values = []
        for b in range(w.shape[0]):
            keep = mask[b] > 0.5
            if not bool(keep.any()):
                raise ValueError(f"the mask of sample {b} is empty: mutual information needs voxels")
            values.append(self._mi(w[b][keep].view(1, 1, -1), t[b][keep].view(1, 1, -1)))
        return torch.stack(values).mean()

    def __repr__(self) -> str:
        return f"MutualInformation(num_bins={self.num_bins})"


class MIND(Similarity):
    """Mean distance between MIND-SSC descriptors (Heinrich et al. 2013, :func:`.mind.mind_ssc`).

    ``distance="l1"`` (default): mean absolute difference, the MIND paper's descriptor distance;
    ``"l2"``: mean squared difference, as the ConvexAdam / Learn2Reg baselines use.
    """

    name = "mind"

    def __init__(self, radius: int = 1, dilation: int = 2, distance: Distance = "l1") -> None:
        super().__init__()
        self.distance = check_choice("distance", distance, Distance)
        self.radius, self.dilation = int(radius), int(dilation)

    def loss(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        diff = mind_ssc(warped, self.radius, self.dilation) - mind_ssc(target, self.radius, self.dilation)
        values = diff.abs() if self.distance == "l1" else diff.pow(2)
        return _masked_mean(values, mask)

    def __repr__(self) -> str:
        return f"MIND(radius={self.radius}, dilation={self.dilation}, distance={self.distance!r})"


def _load_evaluator(evaluator: torch.nn.Module | str | Path, evaluator_modality: str | None) -> tuple[torch.nn.Module, str]:
    """The evaluator module and the modality it was trained on (its reference channel)."""
    if isinstance(evaluator, (str, Path)):
        from imse_study.evaluator.pretrained import load_any

        model, meta = load_any(str(evaluator) if isinstance(evaluator, str) else evaluator)
        modality = meta.modality
    elif isinstance(evaluator, torch.nn.Module):
        model = evaluator
        meta = getattr(evaluator, "meta", None)
        modality = getattr(meta, "modality", None)
    else:
        raise ValueError("evaluator must be an nn.Module, a shipped evaluator's name or a checkpoint path, "
                         f"not {type(evaluator).__name__}")
    if evaluator_modality is not None:
        if modality is not None and evaluator_modality.lower() != modality.lower():
            raise ValueError(f"evaluator_modality={evaluator_modality!r} contradicts the evaluator's metadata "
                             f"(trained on {modality!r})")
        modality = evaluator_modality
    if modality is None:
        raise ValueError("the evaluator carries no metadata saying which modality it was trained on: "
                         "pass evaluator_modality='t1' (say), or load it with load_any()/load_pretrained()")
    return model, modality.lower()


class IMSE(Similarity):
    """Eq. 6: mean ``|E(reference, other)|`` of a frozen evaluator, optionally inside the mask.

    ``precision="bfloat16"`` runs the evaluator under ``torch.autocast`` (bfloat16 convolutions;
    the loss comes back as float32): about 1.9x faster per step on CPUs with AMX/AVX-512 BF16, with
    gradients of cosine similarity 0.99 to float32's (``benchmarks/run.py``, optimisations).

    The reference channel must be the image in the modality the evaluator was trained on
    (Eq. 5-6): if ``target_modality`` is that modality the loss is ``E(target, warped)``
    (preferred when both match: the target is never resampled); else if ``moving_modality`` is,
    ``E(warped, target)``; otherwise a ValueError. Modality names compare case-insensitively and
    exactly ('t1' is not 'mr'). The pair is validated in full (range, size divisible by 4,
    dimension) on the first call only; later calls skip the checks for speed.

    ``flips="point"`` (or ``"axes"``) averages the evaluator over mirror images of the pair
    (:class:`~imse_study.evaluator.symmetry.FlipAveraged`): it cancels the network's sub-pixel
    directional bias, which otherwise pulls an aligned pair off the truth, at 2x (2**dim x) the cost.
    """

    name = "imse"
    frozen = ("evaluator",)

    def __init__(
        self,
        evaluator: torch.nn.Module | str | Path,
        moving_modality: str,
        target_modality: str,
        evaluator_modality: str | None = None,
        precision: Precision = "float32",
        flips: Flips = "none",
    ) -> None:
        super().__init__()
        check_choice("precision", precision, Precision)
        check_choice("flips", flips, Flips)
        model, modality = _load_evaluator(evaluator, evaluator_modality)
        self.evaluator = _freeze(model if flips == "none" else FlipAveraged(model, flips))
        self.precision, self.flips = precision, flips
        self.evaluator_modality = modality
        self.moving_modality, self.target_modality = str(moving_modality), str(target_modality)
        if self.target_modality.lower() == modality:
            self.reference = "target"
        elif self.moving_modality.lower() == modality:
            self.reference = "moving"
        else:
            raise ValueError(
                f"the evaluator was trained on {modality!r} images, but neither the moving "
                f"({self.moving_modality!r}) nor the target ({self.target_modality!r}) image is {modality!r}: "
                f"its reference channel needs a {modality} image. Use an evaluator trained on "
                f"{self.moving_modality!r} or {self.target_modality!r}.")
        self._checked = False

    def loss(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        model = self.evaluator
        reference, other = (target, warped) if self.reference == "target" else (warped, target)
        if not self._checked:
            check_pair(model, reference.detach(), other.detach())
            self._checked = True
        if self.precision == "float32":
            return imse_loss(model, reference, other, mask=mask, check=False)
        with torch.autocast(reference.device.type, dtype=torch.bfloat16):
            return imse_loss(model, reference, other, mask=mask, check=False).float()

    def __repr__(self) -> str:
        extra = ("" if self.precision == "float32" else f", precision={self.precision}") + (
            "" if self.flips == "none" else f", flips={self.flips}")
        return (f"IMSE(evaluator trained on {self.evaluator_modality!r}, moving={self.moving_modality!r}, "
                f"target={self.target_modality!r}, reference={self.reference}{extra})")


class TranslatedMAE(Similarity):
    """Eq. 3-4: translate the warped image into the target's modality, then MAE.

    ``translator`` maps (B, 1, *S) images of the moving modality to the target modality (e.g. a
    CycleGAN generator); it is frozen (eval mode, no parameter gradients) and gradients flow
    through it to the warped image.
    """

    name = "translated_mae"
    frozen = ("translator",)

    def __init__(self, translator: torch.nn.Module) -> None:
        super().__init__()
        if not isinstance(translator, torch.nn.Module):
            raise ValueError(f"translator must be an nn.Module, not {type(translator).__name__}")
        self.translator = _freeze(translator)

    def loss(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        translated = self.translator(warped)
        if translated.shape != target.shape:
            raise ValueError(f"the translator returned {tuple(translated.shape)} for an image "
                             f"{tuple(warped.shape)}; it must keep the shape")
        return _masked_mean((translated - target).abs(), mask)

    def __repr__(self) -> str:
        return f"TranslatedMAE({type(self.translator).__name__})"


class WeightedSum(Similarity):
    """``sum_i weight_i * L_i(warped, target, mask)`` of several similarities (lower is better).

    Used as IMSE + MIND (``imse_robust``): MIND's minimum sits at the true alignment on the
    phantom (its Dice is close to the ceiling) and anchors the field where the evaluator alone
    would be fooled. Terms that are ``nn.Module`` s are submodules (``.to(device)`` moves them).
    """

    name = "weighted_sum"

    def __init__(self, terms: Sequence[tuple[float, SimilarityLike]]) -> None:
        super().__init__()
        terms = list(terms)
        if not terms:
            raise ValueError("WeightedSum needs at least one (weight, similarity) term")
        for w, s in terms:
            if not callable(s):
                raise ValueError(f"every term's similarity must be callable, got {type(s).__name__}")
            if not float(w) >= 0:
                raise ValueError(f"weights must be >= 0, got {w}")
        self.terms = [(float(w), s) for w, s in terms]
        self.modules_of_terms = nn.ModuleList([s for _, s in terms if isinstance(s, nn.Module)])

    def loss(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return sum(w * s(warped, target, mask) for w, s in self.terms if w > 0)

    def __repr__(self) -> str:
        return "WeightedSum(" + " + ".join(f"{w:g}*{s!r}" for w, s in self.terms) + ")"


# The robust method uses optimise()'s defaults (multires, spacing 4, smoothness 5); coarser or
# smoother transforms measured no better (imse_study.losses.robust).
ROBUST_MIND_WEIGHT = 1.0


def imse_robust(
    evaluator: torch.nn.Module | str | Path,
    moving_modality: str,
    target_modality: str,
    evaluator_modality: str | None = None,
    mind_weight: float = ROBUST_MIND_WEIGHT,
    imse_weight: float = 1.0,
) -> WeightedSum:
    """``imse_robust``: ``imse_weight * IMSE + mind_weight * MIND``, the variant that keeps IMSE's
    minimum nearest the truth (measurements: :mod:`imse_study.losses.robust`). Takes IMSE's options."""
    imse = IMSE(evaluator, moving_modality, target_modality, evaluator_modality)
    return WeightedSum([(imse_weight, imse), (mind_weight, MIND())])


# ----------------------------------------------------------------------------------------------
# The factory
# ----------------------------------------------------------------------------------------------

_REGISTRY: dict[str, type[Similarity]] = {
    "ncc": NCC,
    "lncc": LNCC,
    "mi": MutualInformation,
    "mind": MIND,
    "mae": MAE,
    "imse": IMSE,
    "translated_mae": TranslatedMAE,
    "imse_robust": imse_robust,  # type: ignore[dict-item]
}
_USES_MODALITIES = (IMSE, imse_robust)
EVALUATOR_SIMILARITIES = ("imse", "imse_robust")  # the names that need an ``evaluator`` option
_MODALITY_OPTIONS = ("moving_modality", "target_modality")


def similarity_names() -> list[str]:
    """The names :func:`similarity` accepts."""
    return list(_REGISTRY)


def similarity(name: str, **options) -> Similarity:
    """Build the similarity loss called ``name`` (see the module docstring) with its options.

    ``imse`` needs ``evaluator``, ``moving_modality`` and ``target_modality`` (and
    ``evaluator_modality`` for a bare module without metadata); ``translated_mae`` needs
    ``translator``; the others take optional settings (``lncc``: ``kernel_size``; ``mi``:
    ``num_bins``; ``mind``: ``radius``, ``dilation``, ``distance``). ``moving_modality`` and
    ``target_modality`` are accepted by every name, so that callers can build any similarity for a
    pair the same way; only ``imse`` uses them.
    """
    if not isinstance(name, str):
        raise ValueError(f"a similarity name must be a string, not {type(name).__name__}")
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown similarity {name!r}; choose from {', '.join(_REGISTRY)}")
    cls = _REGISTRY[key]
    if cls not in _USES_MODALITIES:  # callers may pass the pair's modalities to every similarity alike
        options = {k: v for k, v in options.items() if k not in _MODALITY_OPTIONS}
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as err:
        accepted = ", ".join(inspect.signature(cls).parameters) or "none"
        raise ValueError(f"bad options for similarity {key!r} ({err}); it accepts: {accepted}") from None
    return cls(**options)


def resolve_similarity(sim: str | SimilarityLike) -> SimilarityLike:
    """A name becomes ``similarity(name)`` with default options; a callable is returned as it is."""
    if isinstance(sim, str):
        return similarity(sim)
    if callable(sim):
        return sim
    raise ValueError(f"similarity must be a name ({', '.join(_REGISTRY)}) or a callable, not {type(sim).__name__}")
