"""Translation-then-MAE baselines of the IMSE paper (sections 4.2, 4.4, 4.5): CycleGAN (Zhu et al. 2017)
and RegGAN (Kong et al. 2021) generators that translate the moving image into the target modality.

Names are imported lazily, so ``python -m imse_study.baselines.train`` runs without a warning:
networks, checkpoints and translation from :mod:`~imse_study.baselines.translator`, training from
:mod:`~imse_study.baselines.train`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    **dict.fromkeys(("KINDS", "Translator", "TranslatorMeta", "evaluate_translation", "load_translator",
                     "translate_with", "translation_metrics", "translator_config"), "translator"),
    **dict.fromkeys(("TranslatorResult", "train_translator"), "train"),
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"imse_study.baselines.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'imse_study.baselines' has no attribute {name!r}")
