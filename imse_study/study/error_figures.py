"""Figures of the translation and spatial-error pages (paper Figures 6, 7, 8; notebooks 04 and 05).

Only drawing: every number comes from :mod:`imse_study.study.translation` and
:mod:`imse_study.study.correlation`.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from imse_study.viz import ERROR_BAR_LABEL, ERROR_CMAP, _np, _off

__all__ = ["figure6", "figure7", "figure8", "strength_dice_plot", "table5_items_plot"]


def table5_items_plot(items: pd.DataFrame) -> plt.Figure:
    """Per-item NMAE, PSNR and SSIM of each method (Table 5's spread, not only its means)."""
    import seaborn as sns

    long = items.melt(id_vars=["method", "item"], value_vars=["nmae", "psnr", "ssim"], var_name="metric")
    long = long[np.isfinite(long["value"].astype(float))]
    grid = sns.catplot(long, x="method", y="value", col="metric", kind="box", sharey=False, height=3.0, aspect=0.9,
                       hue="method", legend=False, fliersize=2)
    grid.set_titles("{col_name}")
    grid.set_axis_labels("", "")
    return grid.figure


def figure6(source, truth, outputs: dict[str, tuple], gans: dict[str, object] | None = None,
            vmax: float = 1.0) -> plt.Figure:
    """Paper Figure 6: the source y and the truth on top (with the GANs' single output each), then one
    row per reference x: x, E(x, y), x' = x - E(x, y). ``outputs[name] = (x, E, x')``."""
    gans = gans or {}
    top = [("source y", _np(source), "gray"), ("truth (y's slice, target modality)", _np(truth), "gray")]
    top += [(f"{name} G(y)", _np(img), "gray") for name, img in gans.items()]
    ncol = max(3, len(top))
    nrow = 1 + len(outputs)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.5 * ncol, 2.5 * nrow), squeeze=False, layout="constrained")
    for c, (title, img, cmap) in enumerate(top):
        axes[0, c].imshow(img, cmap=cmap, vmin=-1, vmax=1)
        axes[0, c].set_title(title, fontsize=9)
    signed = None
    for r, (name, (x, e, t)) in enumerate(outputs.items(), start=1):
        axes[r, 0].imshow(_np(x), cmap="gray", vmin=-1, vmax=1)
        signed = axes[r, 1].imshow(_np(e), cmap=ERROR_CMAP, vmin=-vmax * 2, vmax=vmax * 2)
        axes[r, 2].imshow(_np(t), cmap="gray", vmin=-1, vmax=1)
        axes[r, 0].set_ylabel(name, fontsize=8)
        if r == 1:
            for c, title in enumerate(("reference x", "E(x, y)", "x' = x - E(x, y)")):
                axes[r, c].set_title(title, fontsize=9)
    for ax in axes.ravel():
        _off(ax)
        if not ax.images:
            ax.set_visible(False)
    if signed is not None:
        fig.colorbar(signed, ax=axes[1:, 1].tolist(), shrink=0.8, label=ERROR_BAR_LABEL, location="bottom")
    return fig


def _outline(ax: plt.Axes, labels: np.ndarray, values: tuple[int, ...], colour: str, linewidth: float) -> None:
    """Contours of the head (labels > 0) and of the label ``values`` only, so the map stays readable."""
    for mask in [labels > 0, *[labels == v for v in values]]:
        mask = mask.astype(float)
        if 0 < mask.sum() < mask.size:
            ax.contour(mask, levels=[0.5], colors=[colour], linewidths=linewidth)


def figure7(cases: dict[str, dict], vmax: float | None = None, contour_labels: tuple[int, ...] = (4, 5)) -> plt.Figure:
    """Paper Figure 7: one row per case (misaligned, aligned): target x with its label contours, moved
    y with the moved labels, then each method's |error| map with both contours (x's in white, y's
    in cyan): the head outline and the labels ``contour_labels`` (the phantom's ventricles and
    skull by default). One colour scale for all maps (``vmax``: the largest 99th percentile by default)."""
    names = list(next(iter(cases.values()))["maps"])
    if vmax is None:
        vmax = max(float(np.percentile(_np(m), 99)) for c in cases.values() for m in c["maps"].values()) or 1.0
    ncol = 2 + len(names)
    fig, axes = plt.subplots(len(cases), ncol, figsize=(2.6 * ncol + 0.6, 2.7 * len(cases)), squeeze=False,
                             layout="constrained")
    im = None
    for r, (case, c) in enumerate(cases.items()):
        lab, mlab = _np(c["labels"]), _np(c["moved_labels"])
        axes[r, 0].imshow(_np(c["reference"]), cmap="gray", vmin=-1, vmax=1)
        _outline(axes[r, 0], lab, contour_labels, "white", 0.7)
        axes[r, 1].imshow(_np(c["moved"]), cmap="gray", vmin=-1, vmax=1)
        _outline(axes[r, 1], mlab, contour_labels, "cyan", 0.7)
        for j, name in enumerate(names):
            m = _np(c["maps"][name])
            ax = axes[r, 2 + j]
            im = ax.imshow(m, cmap="magma", vmin=0, vmax=vmax)
            _outline(ax, lab, contour_labels, "white", 0.6)
            _outline(ax, mlab, contour_labels, "cyan", 0.6)
            label = "|E(x, y)|" if name == "IMSE" else "|G(y) - x|" if name in ("CycleGAN", "RegGAN") else "|y - x|"
            ax.set_xlabel(f"mean {m.mean():.3f}", fontsize=8)
            if r == 0:
                ax.set_title(name if "|" in name else f"{name}: {label}", fontsize=9)
        axes[r, 0].set_ylabel(case, fontsize=10)
        if r == 0:
            axes[r, 0].set_title("target x (+ labels)", fontsize=9)
            axes[r, 1].set_title("moving y (+ its labels)", fontsize=9)
        for ax in axes[r]:
            ax.set_xticks([]), ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.7, label="absolute error, image units ([-1, 1] images)")
    return fig


def figure8(scores: pd.DataFrame, correlations: pd.DataFrame | None = None) -> plt.Figure:
    """Paper Figure 8: error score against Dice, one panel per method, with a regression line (and
    its 95 % band); the panel title gives Spearman and Pearson with their intervals."""
    import seaborn as sns

    methods = list(dict.fromkeys(scores["method"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(3.6 * len(methods), 3.5), squeeze=False, layout="constrained")
    for ax, method in zip(axes[0], methods):
        g = scores[(scores["method"] == method) & np.isfinite(scores["error"]) & np.isfinite(scores["dice"])]
        sns.regplot(g, x="dice", y="error", ax=ax, scatter_kws={"s": 10, "alpha": 0.6}, line_kws={"color": "C3"})
        title = method
        if correlations is not None:
            c = correlations[correlations["method"] == method].set_index("correlation")
            parts = [f"{'ρ' if k == 'spearman' else 'r'} {c.loc[k, 'r']:.2f} [{c.loc[k, 'low']:.2f}, {c.loc[k, 'high']:.2f}]"
                     for k in ("spearman", "pearson") if k in c.index]
            title += "\n" + ", ".join(parts)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("Dice (moved labels vs true)")
        ax.set_ylabel("error score (mean over foreground)")
    return fig


def strength_dice_plot(pairs: pd.DataFrame) -> plt.Figure:
    """How the transform strength maps to Dice: the spread of misalignment that Figure 8 covers."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(4.2, 3.2), layout="constrained")
    sns.scatterplot(pairs, x="strength", y="dice", ax=ax, s=12)
    ax.set_xlabel("strength (multiple of the paper's random displacement)")
    ax.set_ylabel("Dice")
    return fig
