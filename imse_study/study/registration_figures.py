"""Figures for the registration pages (Tables 2-4, Figure 5): metric distributions and label contours."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from imse_study.viz import _contours, _np, _off
from imse_study.warp import warp

__all__ = ["contour_figure", "register_examples", "registration_boxplots", "registration_viewer_cases"]


def registration_boxplots(table: pd.DataFrame, metrics: tuple[str, ...] = ("dice", "hd95")) -> plt.Figure:
    """One panel per metric: the per-pair distribution for every method, directions side by side."""
    order = list(dict.fromkeys(table["method"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        data = table[np.isfinite(table[metric])]
        sns.boxplot(data=data, x="method", y=metric, hue="direction", order=order, ax=ax, fliersize=2, linewidth=0.8)
        ax.set_xlabel("")
        ax.set_ylabel({"dice": "Dice (mean over labels)", "hd95": "HD95 (mm)"}.get(metric, metric))
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=8, title=None)
    fig.tight_layout()
    return fig


def register_examples(networks: dict[str, torch.nn.Module], moving: torch.Tensor, target: torch.Tensor,
                      moving_labels: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """Warped image, warped labels and field of every network on a batch of pairs (N, 1, *S)."""
    out = {"initial": {"warped": moving, "labels": moving_labels, "field": torch.zeros(
        moving.shape[0], moving.dim() - 2, *moving.shape[2:])}}
    with torch.no_grad():
        for name, net in networks.items():
            field = net(moving, target)
            out[name] = {"warped": warp(moving, field), "labels": warp(moving_labels.float(), field, mode="nearest"),
                         "field": field}
    return out


def _middle(x: np.ndarray) -> np.ndarray:
    """A 2D image: itself, or the middle slice (first axis) of a volume."""
    return x[x.shape[0] // 2] if x.ndim == 3 else x


def contour_figure(target: torch.Tensor, target_labels: torch.Tensor, results: dict[str, dict[str, torch.Tensor]],
                   item: int = 0, labels: tuple[int, ...] = (3, 4, 5), per_row: int = 4) -> plt.Figure:
    """Figure 5 style: the target with its label contours (yellow) and each method's warped labels (red).

    Only ``labels`` are outlined (default white matter, ventricles and skull: all six at once hide the image).
    At most ``per_row`` methods side by side (each a warped image above its contours), so that the
    thumbnails stay large enough to read on a book page.
    """
    names = list(results)
    cols = max(1, min(per_row, len(names)))
    blocks = -(-len(names) // cols)
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(2.9 * cols, 5.9 * blocks), squeeze=False)
    tgt = _middle(_np(target[item, 0]))

    def keep(lab: np.ndarray) -> np.ndarray:
        return np.where(np.isin(lab, labels), lab, 0)

    tgt_labels = keep(_middle(_np(target_labels[item, 0])).astype(int))
    for ax in axes.ravel():
        _off(ax)
    for k, name in enumerate(names):
        row, col = 2 * (k // cols), k % cols
        warped = _middle(_np(results[name]["warped"][item, 0]))
        warped_labels = keep(_middle(_np(results[name]["labels"][item, 0])).astype(int))
        axes[row, col].imshow(warped, cmap="gray", vmin=-1, vmax=1)
        axes[row, col].set_title(name, fontsize=11)
        axes[row + 1, col].imshow(tgt, cmap="gray", vmin=-1, vmax=1)
        _contours(axes[row + 1, col], tgt_labels, colour="#ffeb3b", linewidth=0.6)
        _contours(axes[row + 1, col], warped_labels, colour="#ff1744", linewidth=0.9)
    for k in range(len(names), blocks * cols):  # empty places of the last row
        axes[2 * (k // cols), k % cols].axis("off")
        axes[2 * (k // cols) + 1, k % cols].axis("off")
    for block in range(blocks):
        axes[2 * block, 0].set_ylabel("warped moving", fontsize=10)
        axes[2 * block + 1, 0].set_ylabel("target; yellow: its WM, ventricles, skull;\nred: the warped ones", fontsize=9)
    fig.tight_layout()
    return fig


def registration_viewer_cases(target: torch.Tensor, results: dict[str, dict[str, torch.Tensor]],
                              count: int) -> dict[str, dict[str, np.ndarray]]:
    """Cases for :func:`imse_study.viz.slice_viewer`: per method the target beside the warped moving
    image with the warped labels' contours (no error overlay). 2D: the first ``count`` pairs; 3D:
    ``count`` evenly spaced slices of the first volume."""
    def squeeze(x):
        x = _np(x)
        if x.ndim == 5:
            depth = x.shape[2]
            return x[0, 0, np.linspace(0, depth - 1, min(count, depth)).round().astype(int)]
        return x[:count, 0]

    return {name: {"reference": squeeze(target), "other": squeeze(r["warped"]), "error": None,
                   "labels": squeeze(r["labels"]).astype(int)} for name, r in results.items()}
