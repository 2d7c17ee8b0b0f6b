"""How good is an evaluator? Ranking AUC on test subjects and translation quality (Table 5).

Both need aligned images of every subject in both modalities: the phantom's, or a manifest data
set's aligned pairs (``dataset``/``root``).

* Ranking (section 4.5's premise): mean |E| must separate aligned multi-modal pairs from the same
  pairs misaligned by the paper's random transforms -> ROC AUC per other modality.
* Translation (section 4.4, Table 5): the reference x is the test image of the evaluator's modality
  moved by a random transform (so x and the source y are NOT aligned, as in the paper), the
  translation is ``x - E(x, y)``, and the ground truth is the evaluator-modality image at y's
  geometry, i.e. the untransformed image of the same slice. NMAE, PSNR and SSIM are
  :func:`imse_study.metrics.image_quality` (data range 2 for images in [-1, 1]), the metric the
  GAN baselines are scored with too.
"""

from __future__ import annotations

import pandas as pd
import torch

from imse_study.augment import random_spatial_displacement
from imse_study.evaluator.use import translate
from imse_study.evaluator.train import load_images, ranking_auc, ranking_modalities
from imse_study.metrics.image import DATA_RANGE, image_quality
from imse_study.warp import warp

__all__ = ["DATA_RANGE", "TRANSLATION_SEED", "image_quality", "misaligned_reference", "ranking_report",
           "translation_quality", "translation_scores"]

TRANSLATION_SEED = 55_555


def ranking_report(model: torch.nn.Module, modality: str, dim: int = 2, profile: str = "quick",
                   split: str = "test", others: list[str] | None = None, dataset: str = "phantom",
                   root: str | None = None, phantom_version: int | None = None) -> pd.DataFrame:
    """ROC AUC of mean |E| (aligned vs misaligned) for each other modality on ``split`` of ``dataset``.

    ``others`` default: the phantom's other modalities (:func:`ranking_modalities`); a manifest set
    must name them. ``phantom_version``: the phantom's generation (None: its default).
    """
    from imse_study.data.datasets import is_phantom
    from imse_study.data.phantom import MODALITIES

    if others is None and not is_phantom(dataset):
        raise ValueError(f"name the modalities of data set {dataset!r} to rank against {modality!r}: others=[...]")
    others = others or ranking_modalities(modality, MODALITIES)
    images = load_images([modality, *others], split, dim, profile, dataset, root, phantom_version)
    rows = [{"reference": modality, "other": m, "pairs": int(images[m].shape[0]),
             "auc": ranking_auc(model, images[modality], images[m])} for m in others]
    return pd.DataFrame(rows)


def translation_quality(model: torch.nn.Module, modality: str, source: str, dim: int = 2, profile: str = "quick",
                        split: str = "test", limit: int | None = None, dataset: str = "phantom",
                        root: str | None = None) -> pd.DataFrame:
    """Translate each test image of ``source`` into ``modality`` with a misaligned reference (``dataset``:
    the phantom or a manifest set, whose aligned image of ``modality`` is the truth)."""
    images = load_images([modality, source], split, dim, profile, dataset, root)
    truth, src = images[modality], images[source]
    if limit is not None:
        truth, src = truth[:limit], src[:limit]
    return translation_scores(model, truth, src, modality, source)


def misaligned_reference(truth: torch.Tensor) -> torch.Tensor:
    """The references of the translation check: ``truth`` (N, 1, *S) moved by seeded paper transforms."""
    g = torch.Generator().manual_seed(TRANSLATION_SEED)
    return warp(truth, random_spatial_displacement(tuple(truth.shape[2:]), truth.shape[0], generator=g))


@torch.no_grad()
def translation_scores(model: torch.nn.Module, truth: torch.Tensor, src: torch.Tensor, modality: str,
                       source: str) -> pd.DataFrame:
    """NMAE, PSNR and SSIM of ``x - E(x, y)`` against ``truth`` per item, x the misaligned reference
    (:func:`misaligned_reference`) and y = ``src`` (aligned with ``truth``)."""
    reference = misaligned_reference(truth)
    rows = []
    for i in range(truth.shape[0]):
        translated = translate(model, reference[i : i + 1], src[i : i + 1])
        row = {"item": i, "source": source, "target": modality, "method": "imse"}
        row.update(image_quality(translated[0, 0].numpy(), truth[i, 0].numpy()))
        rows.append(row)
    return pd.DataFrame(rows)
