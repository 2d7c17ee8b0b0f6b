"""Engine-level figures (matplotlib / seaborn): saving, the phantom montage, the data and
augmentation figures, and the ipywidgets slice viewer. They only draw or arrange what the package
computed; no algorithm lives here. The study's pages keep their own figures and prose in
:mod:`imse_study.study` (``evaluator_figures``, ``registration_figures``, ``error_figures``).
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
import numpy as np
import pandas as pd

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
            def coronal(a, item=item, mid=mid):
                return a[item][:, mid][::-1]

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


# ---------------------------------------------------------------------------------------------
# Helpers for figures here and in the study's modules

ERROR_CMAP = "RdBu_r"  # signed error maps: blue = other brighter than expected, red = darker
# the colour bar's label on every signed error map (units and what each sign means, Eq. 5)
ERROR_BAR_LABEL = "E, image units ([-1, 1] images)\nred > 0: other darker than predicted\nblue < 0: brighter"


def _np(x) -> np.ndarray:
    """A numpy copy of a tensor or array (squeezes a leading (1, 1) of a single image)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _off(ax: plt.Axes) -> None:
    ax.set_xticks([]), ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _visible(error: np.ndarray, vmax: float, fraction: float = 0.08) -> np.ma.MaskedArray:
    """The error map with its near-zero part masked, so the image under an overlay stays readable."""
    return np.ma.masked_where(np.abs(error) < fraction * vmax, error)


def _contours(ax: plt.Axes, labels: np.ndarray, colour: str = "#ffeb3b", linewidth: float = 0.6) -> None:
    """Outline every label region of an integer label map (boundaries between label values)."""
    values = [v for v in np.unique(labels) if v != 0]
    for v in values:
        mask = (labels == v).astype(float)
        if 0 < mask.sum() < mask.size:
            ax.contour(mask, levels=[0.5], colors=[colour], linewidths=linewidth)


def label_intensity_table(data, split: str, label_names: dict[str, int]) -> "pd.DataFrame":
    """Tidy table of a phantom set: per modality and label, voxel fraction and intensity mean/std."""
    import pandas as pd

    rows = []
    total = data.labels.size
    for modality, images in data.images.items():
        for name, value in label_names.items():
            mask = data.labels == value
            voxels = images[mask]
            rows.append({"split": split, "dim": data.dim, "modality": modality, "label": name,
                         "items": len(data), "subjects": int(len(np.unique(data.subjects))),
                         "voxel_fraction": float(mask.sum() / total),
                         "mean_intensity": float(voxels.mean()) if voxels.size else float("nan"),
                         "std_intensity": float(voxels.std()) if voxels.size else float("nan")})
    return pd.DataFrame(rows)


def contrast_heatmap(table: "pd.DataFrame") -> plt.Figure:
    """Mean intensity per label (rows) and modality (columns): the contrast each modality gives."""
    import seaborn as sns

    pivot = table.pivot_table(index="label", columns="modality", values="mean_intensity", sort=False)
    fig, ax = plt.subplots(figsize=(1.3 * pivot.shape[1] + 2, 0.45 * pivot.shape[0] + 1.2))
    sns.heatmap(pivot, annot=True, fmt=".2f", cmap="gray", vmin=-1, vmax=1, ax=ax, cbar_kws={"label": "mean intensity"})
    ax.set_title("mean intensity per label and modality (images in [-1, 1])")
    fig.tight_layout()
    return fig


def transform_examples(image, labels, warped_images, warped_labels, fields) -> plt.Figure:
    """One row per random transform: the warped image with label contours and the displacement grid.

    ``image``/``labels`` are one original 2D slice (H, W); ``warped_*`` are (B, H, W) and ``fields``
    (B, 2, H, W) the displacements (voxels) that produced them.
    """
    image, labels = _np(image), _np(labels)
    warped_images, warped_labels, fields = _np(warped_images), _np(warped_labels), _np(fields)
    n = warped_images.shape[0]
    fig, axes = plt.subplots(2, n + 1, figsize=(2.5 * (n + 1), 5.2), squeeze=False)
    axes[0, 0].imshow(image, cmap="gray", vmin=-1, vmax=1)
    _contours(axes[0, 0], labels)
    axes[0, 0].set_title("original")
    h, w = image.shape
    step = max(h // 16, 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    _grid(axes[1, 0], yy, xx, step)
    axes[1, 0].set_title("identity grid")
    for i in range(n):
        axes[0, i + 1].imshow(warped_images[i], cmap="gray", vmin=-1, vmax=1)
        _contours(axes[0, i + 1], warped_labels[i])
        mag = np.sqrt((fields[i] ** 2).sum(0))
        axes[0, i + 1].set_title(f"transform {i + 1}\nmax |u| {mag.max():.1f} px", fontsize=9)
        _grid(axes[1, i + 1], yy + fields[i, 0], xx + fields[i, 1], step)
        axes[1, i + 1].set_title("deformed grid", fontsize=9)
    for ax in axes.ravel():
        _off(ax)
    fig.tight_layout()
    return fig


def _grid(ax: plt.Axes, yy: np.ndarray, xx: np.ndarray, step: int) -> None:
    for r in range(0, yy.shape[0], step):
        ax.plot(xx[r], yy[r], color="0.3", lw=0.6)
    for c in range(0, yy.shape[1], step):
        ax.plot(xx[:, c], yy[:, c], color="0.3", lw=0.6)
    ax.set_xlim(0, yy.shape[1] - 1), ax.set_ylim(yy.shape[0] - 1, 0), ax.set_aspect("equal")


def shuffle_remap_figure(image, remapped: dict[int, np.ndarray], curves: dict[int, np.ndarray],
                         ramp: np.ndarray) -> plt.Figure:
    """The paper's Figure 4: Shuffle Remap of one image for several N (rows), with the remap curves.

    ``remapped[N]`` is (K, H, W), K samples for that N; ``curves[N]`` (K, R) the same remaps applied
    to ``ramp`` (R,), i.e. the intensity mapping itself.
    """
    image = _np(image)
    ns = list(remapped)
    k = _np(remapped[ns[0]]).shape[0]
    fig, axes = plt.subplots(len(ns), k + 2, figsize=(1.9 * (k + 2), 1.9 * len(ns)), squeeze=False)
    for r, n in enumerate(ns):
        axes[r, 0].imshow(image, cmap="gray", vmin=-1, vmax=1)
        axes[r, 0].set_ylabel(f"N = {n}")
        if r == 0:
            axes[r, 0].set_title("input")
        for j in range(k):
            axes[r, j + 1].imshow(_np(remapped[n])[j], cmap="gray", vmin=-1, vmax=1)
            if r == 0:
                axes[r, j + 1].set_title(f"sample {j + 1}")
        for ax in axes[r, : k + 1]:
            _off(ax)
        ax = axes[r, k + 1]
        for curve in _np(curves[n]):
            ax.plot(ramp, curve, lw=1)
        ax.set_xlim(-1, 1), ax.set_ylim(-1.05, 1.05), ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        if r == 0:
            ax.set_title("remap curves")
        if r == len(ns) - 1:
            ax.set_xlabel("input intensity", fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# The slice viewer (ipywidgets)


def _overlay_image(reference: np.ndarray, other: np.ndarray, error: np.ndarray | None, labels: np.ndarray | None,
                 title: str, vmax: float, show_error: bool, show_labels: bool, dpi: int,
                 panels: tuple[str, str] = ("reference", "other")) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(5.0, 2.6))
    axes[0].imshow(reference, cmap="gray", vmin=-1, vmax=1)
    axes[0].set_title(panels[0], fontsize=9)
    axes[1].imshow(other, cmap="gray", vmin=-1, vmax=1)
    parts = [panels[1]]
    if show_error and error is not None:
        im = axes[1].imshow(_visible(error, vmax), cmap=ERROR_CMAP, vmin=-vmax, vmax=vmax, alpha=0.8)
        bar = fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.03)
        bar.set_label("E (image units): red other darker, blue brighter", fontsize=6)
        bar.ax.tick_params(labelsize=6)
        parts.append(f"E (mean |E| {np.abs(error).mean():.3f})")
    if show_labels and labels is not None:
        _contours(axes[1], labels, colour="#ffeb3b", linewidth=0.6)
        parts.append("labels")
    axes[1].set_title(" + ".join(parts), fontsize=9)
    for ax in axes:
        _off(ax)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi=dpi, pil_kwargs={"quality": 85})
    plt.close(fig)
    return buf.getvalue()


def slice_viewer(cases: dict[str, dict[str, np.ndarray]], vmax: float = 1.0, dpi: int = 90,
                 description: str = "slice", panels: tuple[str, str] = ("reference", "other")):
    """An ipywidgets viewer: a slice slider, a method (case) selector and overlay toggles.

    ``panels`` names the left and right images (e.g. "target" and "warped moving" for a
    registration); the error overlays are offered only when some case has an ``error`` map.

    ``cases[name]`` holds arrays ``reference``, ``other``, ``error`` (signed E, optional) and
    ``labels`` (optional), each (N, H, W) 2D slices or one (D, H, W) volume sliced along axis 0.
    Every frame is rendered to a JPEG up front and the controls are tied to ``Stack`` widgets with
    ``jslink`` (browser-side links), so the viewer keeps working in the static book, where no
    kernel runs, as long as the notebook was executed with widget state stored (papermill does).
    Keep N small: the page carries every frame (about 15 kB each).
    """
    import ipywidgets as w

    names = list(cases)
    n = int(_np(cases[names[0]]["reference"]).shape[0])
    if any(int(_np(c["reference"]).shape[0]) != n for c in cases.values()):
        raise ValueError("every case must have the same number of slices")
    has_error = any(c.get("error") is not None for c in cases.values())
    modes = ([("error + labels", True, True), ("error", True, False), ("labels", False, True)] if has_error
             else [("labels", False, True), ("image only", False, False)])

    def frames(case: dict, name: str, show_error: bool, show_labels: bool):
        arrays = {k: (_np(v) if v is not None else None) for k, v in case.items()}
        return w.Stack([w.Image(value=_overlay_image(arrays["reference"][i], arrays["other"][i],
                                                   None if arrays.get("error") is None else arrays["error"][i],
                                                   None if arrays.get("labels") is None else arrays["labels"][i],
                                                   f"{name}: {description} {i}", vmax, show_error, show_labels, dpi,
                                                   panels),
                                        format="jpeg", layout=w.Layout(width="500px"))
                        for i in range(n)], selected_index=0)

    slider = w.IntSlider(value=0, min=0, max=n - 1, description=description, continuous_update=True)
    method = w.Dropdown(options=names, value=names[0], description="method")
    overlay = w.Dropdown(options=[m[0] for m in modes], value=modes[0][0], description="overlay")
    per_method = []
    for name in names:
        per_mode = []
        for _, show_error, show_labels in modes:
            stack = frames(cases[name], name, show_error, show_labels)
            w.jslink((slider, "value"), (stack, "selected_index"))
            per_mode.append(stack)
        mode_stack = w.Stack(per_mode, selected_index=0)
        w.jslink((overlay, "index"), (mode_stack, "selected_index"))
        per_method.append(mode_stack)
    method_stack = w.Stack(per_method, selected_index=0)
    w.jslink((method, "index"), (method_stack, "selected_index"))
    return w.VBox([w.HBox([method, overlay]), slider, method_stack])


