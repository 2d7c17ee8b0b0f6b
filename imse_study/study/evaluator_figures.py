"""The evaluator page's figures and reading (notebook 01): learning curves, error maps on aligned
and misaligned pairs, the ranking's score distributions, the slice viewer's cases, the Table 5
comparison and the page's Markdown, written from the numbers.

The notebook imports this module as ``viz``; :func:`slice_viewer` (an engine-level widget) is
available from here too so that one name serves the whole page.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from imse_study.data.datasets import dataset_phrase, is_phantom
from imse_study.modalities import T1T2, pair
from imse_study.study.translation import METHOD_NAMES, table5_comparison
from imse_study.viz import ERROR_BAR_LABEL, ERROR_CMAP, _contours, _np, _visible, slice_viewer

__all__ = [
    "error_map_figure",
    "evaluator_reading",
    "foreground_mean_abs",
    "learning_curves",
    "misaligned_pairs",
    "score_distributions",
    "slice_viewer",
    "table5_comparison",
    "viewer_cases",
]


def learning_curves(log: "pd.DataFrame", title: str = "") -> plt.Figure:
    """Training log of an evaluator (``log.csv``): L1 losses and the validation ranking AUCs per step."""
    import seaborn as sns

    loss_cols = [c for c in ("train_l1", "val_l1") if c in log]
    auc_cols = [c for c in log.columns if c.startswith("auc_")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    losses = log.melt(id_vars="step", value_vars=loss_cols, var_name="curve", value_name="L1")
    sns.lineplot(losses, x="step", y="L1", hue="curve", marker="o", ax=axes[0])
    axes[0].set_title("Eq. 5 loss (L1)")
    if auc_cols:
        aucs = log.melt(id_vars="step", value_vars=auc_cols, var_name="curve", value_name="AUC")
        sns.lineplot(aucs, x="step", y="AUC", hue="curve", marker="o", ax=axes[1])
        axes[1].set_ylim(0.4, 1.02)
        axes[1].axhline(0.5, color="0.6", ls=":", lw=1)
    axes[1].set_title("validation ranking AUC (aligned vs misaligned)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def error_map_figure(rows: dict[str, tuple], vmax: float = 1.0, floor: dict | None = None,
                     other_modality: str | None = None) -> plt.Figure:
    """One row per case: reference, other image, signed error map E(reference, other) over the other
    image with label contours, and |E|. ``rows[title] = (reference, other, error, labels)`` (H, W).
    Colour bars give E and |E| in image units; with the evaluator's ``floor``
    (:func:`imse_study.evaluator.floor.load_floor`) each |E| panel reads its score against it."""
    from imse_study.evaluator.floor import foreground_score, verdict

    fig, axes = plt.subplots(len(rows), 4, figsize=(11, 2.7 * len(rows)), squeeze=False, layout="constrained")
    im = magnitude = None
    for r, (title, (reference, other, error, labels)) in enumerate(rows.items()):
        reference, other, error, labels = map(_np, (reference, other, error, labels))
        axes[r, 0].imshow(reference, cmap="gray", vmin=-1, vmax=1)
        axes[r, 1].imshow(other, cmap="gray", vmin=-1, vmax=1)
        axes[r, 2].imshow(other, cmap="gray", vmin=-1, vmax=1)
        im = axes[r, 2].imshow(_visible(error, vmax), cmap=ERROR_CMAP, vmin=-vmax, vmax=vmax, alpha=0.8)
        if labels is not None and labels.size:
            _contours(axes[r, 2], labels, colour="#222222", linewidth=0.5)
        magnitude = axes[r, 3].imshow(np.abs(error), cmap="magma", vmin=0, vmax=vmax)
        score = foreground_score(reference, other, error)
        said = "" if floor is None else f"\n{verdict(score, floor, other_modality)}"
        axes[r, 3].set_xlabel(f"mean |E| {score:.3f} (foreground){said}", fontsize=8)
        axes[r, 0].set_ylabel(title, fontsize=9)
        for c, name in enumerate(("reference", "other", "E over other + labels", "|E|")):
            if r == 0:
                axes[r, c].set_title(name, fontsize=10)
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes[:, 2].tolist(), shrink=0.8, label=ERROR_BAR_LABEL, location="bottom")
        fig.colorbar(magnitude, ax=axes[:, 3].tolist(), shrink=0.8, label="|E|, image units", location="bottom")
    return fig

def score_distributions(scores: "pd.DataFrame") -> plt.Figure:
    """Mean |E| per pair, aligned against misaligned, one panel per other modality (``scores`` has
    columns ``other``, ``pair``, ``mean_abs_error``)."""
    import seaborn as sns

    grid = sns.catplot(scores, x="pair", y="mean_abs_error", col="other", kind="strip", height=3.0,
                       aspect=1.1, hue="pair", legend=False, sharey=False)
    grid.set_axis_labels("", "mean |E| in the foreground")
    return grid.figure


def misaligned_pairs(model, reference, other, seed: int = 0, batch: int = 8) -> dict[str, tuple]:
    """Error maps of ``model`` on aligned pairs and on the same pairs with ``other`` moved by the
    paper's random transform (seeded): ``{"aligned": (other, E), "misaligned": (moved, E)}``.
    Inputs are (N, 1, H, W) tensors in [-1, 1]; the evaluator is applied by
    :func:`imse_study.evaluator.use.error_map`."""
    import torch

    from imse_study.augment import random_spatial_displacement
    from imse_study.evaluator.use import error_map
    from imse_study.warp import warp

    g = torch.Generator().manual_seed(seed)
    moved = warp(other, random_spatial_displacement(tuple(other.shape[2:]), other.shape[0], generator=g))
    out = {}
    with torch.no_grad():
        for name, o in (("aligned", other), ("misaligned", moved)):
            errors = torch.cat([error_map(model, reference[i:i + batch], o[i:i + batch])
                                for i in range(0, reference.shape[0], batch)])
            out[name] = (o, errors)
    return out


def foreground_mean_abs(reference, other, error, threshold: float = -0.9) -> np.ndarray:
    """Mean |E| per item inside the union of the two foreground masks (as the ranking check)."""
    reference, other, error = _np(reference), _np(other), _np(error)
    mask = (reference > threshold) | (other > threshold)
    axes = tuple(range(1, mask.ndim))
    return (np.abs(error) * mask).sum(axes) / np.maximum(mask.sum(axes), 1)


def viewer_cases(reference, others: dict[str, tuple], labels=None) -> dict[str, dict[str, np.ndarray]]:
    """Arrange images for :func:`slice_viewer`: ``others[name] = (other_images, error_maps)``, all
    (N, 1, H, W) tensors or (N, H, W) arrays, one shared ``reference`` and ``labels``."""
    def squeeze(x):
        x = _np(x)
        return x[:, 0] if x.ndim == 4 else x

    lab = None if labels is None else squeeze(labels)
    return {name: {"reference": squeeze(reference), "other": squeeze(o), "error": squeeze(e), "labels": lab}
            for name, (o, e) in others.items()}


def evaluator_reading(modality: str, profile: str, ranking, translation, by_label, comparison,
                      dataset: str = "phantom") -> str:
    """A short, plain reading of the evaluator page's numbers (Markdown), written from the results
    so that it stays true when the profile or the evaluator changes. ``comparison`` is
    :func:`table5_comparison` of the page's translation scores."""
    lines = []
    aucs = ", ".join(f"{r.other} {r.auc:.3f}" for r in ranking.itertuples())
    worst = ranking["auc"].min()
    if profile == "smoke":
        lines.append("*Smoke profile*: a tiny evaluator trained for a few steps on 48 × 48 px images. The numbers "
                     "below only show that the page runs; they say nothing about the method.")
    verdict = ("ranks every misaligned pair above its aligned version or nearly so" if worst >= 0.95 else
               "mostly ranks misaligned pairs above aligned ones, with overlap" if worst >= 0.75 else
               "does not separate aligned from misaligned pairs reliably")
    lines.append(f"**Ranking.** Mean |E| {verdict} (ROC AUC per other modality: {aucs}). This is the premise "
                 f"of using IMSE as a registration loss (section 4.5), tested here on "
                 + ("the phantom's test subjects." if is_phantom(dataset) else f"the test subjects of {dataset_phrase(dataset)}."))
    top = by_label.sort_values("mean_abs_error", ascending=False)
    top_names = list(top["label"].head(2))
    ring = {"skull", "scalp"} & set(top_names)
    lab = ", ".join(f"{r.label} {r.mean_abs_error:.3f}" for r in top.itertuples())
    if ring:
        lines.append(f"**Error on aligned pairs.** On perfectly aligned pairs the evaluator is not silent: its "
                     f"largest |E| is in the {' and '.join(top_names)} (mean |E| per label: {lab}). "
                     + ("On the phantom the ring around the brain is bright scalp fat on T1 but bright CSF on T2; the "
                        "T1-trained evaluator reads the swapped ring as a displacement. A registration driven by it "
                        "can be pulled by the ring. This is a property of the evaluator, not hidden here."
                        if modality == T1T2 else
                        "The bone and fat boundaries are where CT and MR contrasts differ most."))
    else:
        lines.append(f"**Error on aligned pairs.** Mean |E| per label on aligned pairs: {lab}.")
    imse = comparison["method"] == METHOD_NAMES["imse"]
    ours = comparison[comparison["study"].str.startswith("this") & imse]
    paper = comparison[comparison["study"].str.startswith("paper") & imse]
    if len(ours) and len(paper):
        o = "; ".join(f"{r.direction}: NMAE {r.nmae:.3f}, PSNR {r.psnr:.1f}, SSIM {r.ssim:.2f}" for r in ours.itertuples())
        p = paper.iloc[0]
        lines.append(f"**Translation (Table 5).** Ours on {dataset_phrase(dataset)}: {o}. The paper's IMSE row ({p.direction}, on "
                     f"{pair(modality).paper_data}): NMAE {p.nmae:.3f}, "
                     f"PSNR {p.psnr:.1f}, SSIM {p.ssim:.2f}. Different data, sizes and training budgets: the "
                     f"comparison shows whether translation works at all, not whether the paper's figures are "
                     f"reproduced."
                     + (" (The paper's T2 → T1 PSNR of 91.6 dB cannot go with its own NMAE of 0.029: RMSE >= MAE "
                        "bounds the PSNR at about 31 dB, so it is most likely a typo.)" if modality == T1T2 else ""))
    return "\n\n".join(lines)
