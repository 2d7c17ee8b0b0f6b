"""Registration set-ups: a similarity plus the options of :func:`~imse_study.registration.optimise.optimise`.

A :class:`Variant` names one way to register a pair (e.g. IMSE on a coarser control grid);
:func:`resolve_variants` turns names, callables and variants into built similarities for a pair's
modalities. The hardening variants (:func:`imse_study.losses.robust.hardening_variants`) and the
fooling diagnostic of the study are written in these terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imse_study.losses.similarity import SimilarityLike, similarity
from imse_study.registration.evaluate import TestPairs
from imse_study.registration.methods import default_evaluator

__all__ = ["OPTIMISE_OPTIONS", "Variant", "resolve_variants"]

#: The options of :func:`~imse_study.registration.optimise.optimise` a variant may set.
OPTIMISE_OPTIONS = frozenset({"iterations", "lr", "smooth_weight", "mode", "levels", "affine", "mask", "affine_lr",
                              "grid_spacing"})


@dataclass
class Variant:
    """One registration set-up: a similarity (name or callable) and options for ``optimise``.

    ``options`` override the caller's defaults (``mode``, ``iterations``, ``grid_spacing``,
    ``smooth_weight``, ``levels``, ...). A name is built for the pair's modalities; ``imse`` with
    the shipped evaluator of one of them (:func:`.methods.default_evaluator`).
    """

    similarity: str | SimilarityLike
    options: dict[str, Any] = field(default_factory=dict)


def _build(name: str, pairs: TestPairs) -> SimilarityLike:
    """The similarity called ``name`` for the pairs' modalities (``imse``: the shipped evaluator)."""
    extra = {}
    if name.strip().lower() == "imse":
        extra["evaluator"] = default_evaluator(pairs.moving_modality, pairs.target_modality, pairs.moving.dim() - 2)
    return similarity(name, moving_modality=pairs.moving_modality, target_modality=pairs.target_modality, **extra)


def _label(v: Any) -> str:
    """The name a variant is listed under when the caller gave none."""
    if isinstance(v, str):
        return v
    if isinstance(v, Variant):
        return _label(v.similarity)
    return getattr(v, "name", "") or type(v).__name__


def check_optimise_options(options: Mapping[str, Any], what: str = "") -> None:
    """A one-line ValueError naming any key of ``options`` that ``optimise`` does not take."""
    unknown = set(options) - OPTIMISE_OPTIONS
    if unknown:
        raise ValueError(f"{what}unknown optimise options {sorted(unknown)}; accepted: {sorted(OPTIMISE_OPTIONS)}")


def resolve_variants(variants: Any, pairs: TestPairs) -> dict[str, Variant]:
    """``variants`` as a dict name -> :class:`Variant` with a built similarity.

    Accepts a similarity name, a callable, a :class:`Variant`, or a mapping of names to any of
    these (a list of names too).
    """
    if isinstance(variants, (str, Variant)) or callable(variants):
        variants = {_label(variants): variants}
    elif isinstance(variants, (list, tuple)):
        variants = {_label(v): v for v in variants}
    if not isinstance(variants, Mapping) or not variants:
        raise ValueError("variants must be a similarity name, a callable, a Variant, or a non-empty mapping of "
                         f"names to those; got {type(variants).__name__}")
    out = {}
    for name, v in variants.items():
        if not isinstance(v, Variant):
            v = Variant(v)
        sim = v.similarity
        if isinstance(sim, str):
            sim = _build(sim, pairs)
        elif not callable(sim):
            raise ValueError(f"variant {name!r}: the similarity must be a name or a callable "
                             f"(warped, target, mask) -> loss, not {type(sim).__name__}")
        check_optimise_options(v.options, f"variant {name!r}: ")
        out[str(name)] = Variant(sim, dict(v.options))
    return out
