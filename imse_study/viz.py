"""Figures shared by the notebooks, the book and the docs (matplotlib / seaborn)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

# One colour per phantom label value 0..6 (background transparent-black).
LABEL_COLOURS = ["#000000", "#4fc3f7", "#9ccc65", "#fff59d", "#1e88e5", "#eeeeee", "#f48fb1"]
LABEL_CMAP = ListedColormap(LABEL_COLOURS)


def _label_legend(ax: plt.Axes, names: dict[str, int]) -> None:
    handles = [Patch(color=LABEL_COLOURS[v], label=n) for n, v in names.items() if v < len(LABEL_COLOURS)]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)


def phantom_montage(sets: dict[str, object], label_names: dict[str, int], item: int = 0) -> plt.Figure:
    """A grid: one row per phantom set (e.g. ``{"2D axial": set2d, "3D coronal": set3d}``), one
    column per modality, and the label map. 3D sets show the middle coronal and axial slices."""
    rows = []
    for title, data in sets.items():
        if data.dim == 2:
            rows.append((title, {m: v[item] for m, v in data.images.items()}, data.labels[item], 1.0))
        else:
            mid = data.labels.shape[2] // 2
            coronal = lambda a: a[item][:, mid][::-1]
            aspect = data.spacing[0] / data.spacing[2]  # z spacing against in-plane spacing
            rows.append((f"{title} coronal", {m: coronal(v) for m, v in data.images.items()}, coronal(data.labels), aspect))
            depth = data.labels.shape[1] // 2
            rows.append((f"{title} axial", {m: v[item][depth] for m, v in data.images.items()}, data.labels[item][depth], 1.0))
    columns = list(rows[0][1]) + ["labels"]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.6 * len(columns) + 1.2, 2.6 * len(rows)), squeeze=False)
    for r, (title, images, labels, aspect) in enumerate(rows):
        for c, name in enumerate(columns):
            ax = axes[r, c]
            if name == "labels":
                ax.imshow(labels, cmap=LABEL_CMAP, vmin=-0.5, vmax=len(LABEL_COLOURS) - 0.5, interpolation="nearest",
                          aspect=aspect)
            else:
                ax.imshow(images[name], cmap="gray", vmin=-1, vmax=1, aspect=aspect)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name.upper() if name != "labels" else "labels")
            if c == 0:
                ax.set_ylabel(title)
    _label_legend(axes[0, -1], label_names)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 110) -> Path:
    """Save and close a figure, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
