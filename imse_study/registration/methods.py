"""Registration methods by name, as the evaluation table wants them: ``(moving, target) -> displacement``.

Classic rows (Eq. 1 and the reference tools): ``ncc``, ``lncc``, ``mi``, ``mind``, ``mae`` and
``imse`` optimise a field with :func:`imse_study.registration.optimise.optimise`; ``ants`` and
``elastix`` call the reference tools (:mod:`imse_study.registration.external`). The IMSE rows take
the evaluator that knows one of the two modalities: the caller names it, or the shipped phantom
evaluator of that modality is used.
"""

from __future__ import annotations

from typing import Any

import torch

from imse_study.registration.evaluate import Registrar, TestPairs
from imse_study.registration.optimise import optimise
from imse_study.losses.similarity import EVALUATOR_SIMILARITIES
from imse_study.losses.similarity import similarity as make_similarity
from imse_study.modalities import EVALUATOR_PREFERENCE

CLASSIC_SIMILARITIES = ("ncc", "lncc", "mi", "mind", "mae", "imse", "imse_robust")
EXTERNAL_TOOLS = ("ants", "elastix")


def default_evaluator(moving_modality: str, target_modality: str, dim: int = 2) -> str:
    """The shipped ``dim``-D phantom evaluator for a modality pair: CT's if CT is in the pair, else T1's."""
    from imse_study.evaluator.pretrained import available_pretrained

    for modality in EVALUATOR_PREFERENCE:
        name = f"phantom-{modality}-{dim}d"
        if modality in (moving_modality, target_modality) and name in available_pretrained():
            return name
    raise ValueError(f"no shipped {dim}D evaluator knows {moving_modality} or {target_modality}: pass evaluator=...")


def classic_registrar(name: str, pairs: TestPairs, evaluator: Any = None, similarity_options: dict | None = None,
                      **optimise_options: Any) -> Registrar:
    """Classic optimisation with similarity ``name``; options go to :func:`optimise` (mode, iterations...),
    ``similarity_options`` to the similarity (e.g. ``{"precision": "bfloat16"}`` for IMSE)."""
    options: dict[str, Any] = dict(similarity_options or {})
    if name in EVALUATOR_SIMILARITIES:
        options["evaluator"] = evaluator or default_evaluator(pairs.moving_modality, pairs.target_modality,
                                                              pairs.moving.dim() - 2)
    sim = make_similarity(name, moving_modality=pairs.moving_modality, target_modality=pairs.target_modality,
                          **options)

    def register(moving: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return optimise(moving, target, sim, **optimise_options).displacement

    return register


def external_registrar(tool: str, pairs: TestPairs, **tool_options: Any) -> Registrar:
    """ANTs SyN-MI or elastix affine + B-spline MI, on the pairs' voxel spacing."""
    from imse_study.registration.external import register_external

    def register(moving: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return register_external(tool, moving, target, spacing=pairs.spacing, **tool_options).displacement

    return register


def classic_methods(pairs: TestPairs, names: tuple[str, ...] = ("ncc", "mi", "mind", "imse", "ants", "elastix"),
                    evaluator: Any = None, **optimise_options: Any) -> dict[str, Registrar]:
    """Registrars for the classic rows of a table (Table 4 and the reference tools)."""
    unknown = [n for n in names if n not in CLASSIC_SIMILARITIES + EXTERNAL_TOOLS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}: choose from {CLASSIC_SIMILARITIES + EXTERNAL_TOOLS}")
    return {
        n: external_registrar(n, pairs) if n in EXTERNAL_TOOLS
        else classic_registrar(n, pairs, evaluator=evaluator, **optimise_options)
        for n in names
    }
