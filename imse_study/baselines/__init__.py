"""Translation-then-MAE baselines of the IMSE paper (sections 4.2, 4.4, 4.5): CycleGAN (Zhu et al. 2017)
and RegGAN (Kong et al. 2021) generators that translate the moving image into the target modality.

Names are imported lazily, so ``python -m imse_study.baselines.translator`` runs without a warning.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "KINDS", "Translator", "TranslatorMeta", "TranslatorResult", "evaluate_translation", "load_translator",
    "train_translator", "translate_with", "translation_metrics", "translator_config",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from imse_study.baselines import translator

        return getattr(translator, name)
    raise AttributeError(f"module 'imse_study.baselines' has no attribute {name!r}")
