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
# Figures for the book's notebooks (00_data, 01_evaluator) and the ipywidgets slice viewer.
# Everything below only draws or arranges what the package computed; no algorithm lives here.

import io  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from imse_study.data.datasets import dataset_phrase, is_phantom  # noqa: E402

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


def table5_comparison(ours: "pd.DataFrame", paper: dict, paper_key: str, dataset: str = "phantom") -> "pd.DataFrame":
    """Our translation quality (mean over items, one row per source) next to the paper's Table 5."""
    import pandas as pd

    rows = []
    for source, g in ours.groupby("source", sort=False):
        rows.append({"study": f"this study ({'phantom' if is_phantom(dataset) else dataset})", "direction": f"{source} -> {g['target'].iloc[0]}",
                     "method": "imse", "items": len(g), "nmae": g["nmae"].mean(), "psnr": g["psnr"].mean(),
                     "ssim": g["ssim"].mean()})
    for method, v in paper["table5_translation"][paper_key].items():
        rows.append({"study": "paper (Table 5)", "direction": paper_key.replace("_to_", " -> "),
                     "method": method, "items": None, "nmae": v["nmae"], "psnr": v["psnr"], "ssim": v["ssim"]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# The slice viewer (ipywidgets)


def _overlay_image(reference: np.ndarray, other: np.ndarray, error: np.ndarray | None, labels: np.ndarray | None,
                 title: str, vmax: float, show_error: bool, show_labels: bool, dpi: int) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(5.0, 2.6))
    axes[0].imshow(reference, cmap="gray", vmin=-1, vmax=1)
    axes[0].set_title("reference", fontsize=9)
    axes[1].imshow(other, cmap="gray", vmin=-1, vmax=1)
    parts = ["other"]
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
                 description: str = "slice"):
    """An ipywidgets viewer: a slice slider, a method (case) selector and overlay toggles.

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
    modes = [("error + labels", True, True), ("error", True, False), ("labels", False, True)]

    def frames(case: dict, name: str, show_error: bool, show_labels: bool):
        arrays = {k: (_np(v) if v is not None else None) for k, v in case.items()}
        return w.Stack([w.Image(value=_overlay_image(arrays["reference"][i], arrays["other"][i],
                                                   None if arrays.get("error") is None else arrays["error"][i],
                                                   None if arrays.get("labels") is None else arrays["labels"][i],
                                                   f"{name}: {description} {i}", vmax, show_error, show_labels, dpi),
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


def viewer_cases(reference, others: dict[str, tuple], labels=None) -> dict[str, dict[str, np.ndarray]]:
    """Arrange images for :func:`slice_viewer`: ``others[name] = (other_images, error_maps)``, all
    (N, 1, H, W) tensors or (N, H, W) arrays, one shared ``reference`` and ``labels``."""
    def squeeze(x):
        x = _np(x)
        return x[:, 0] if x.ndim == 4 else x

    lab = None if labels is None else squeeze(labels)
    return {name: {"reference": squeeze(reference), "other": squeeze(o), "error": squeeze(e), "labels": lab}
            for name, (o, e) in others.items()}


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


def evaluator_reading(modality: str, profile: str, ranking, translation, by_label, comparison,
                      dataset: str = "phantom") -> str:
    """A short, plain reading of the evaluator page's numbers (Markdown), written from the results
    so that it stays true when the profile or the evaluator changes."""
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
                        if modality == "t1t2" else
                        "The bone and fat boundaries are where CT and MR contrasts differ most."))
    else:
        lines.append(f"**Error on aligned pairs.** Mean |E| per label on aligned pairs: {lab}.")
    ours = comparison[comparison["study"].str.startswith("this")]
    paper = comparison[(comparison["study"].str.startswith("paper")) & (comparison["method"] == "imse")]
    if len(ours) and len(paper):
        o = "; ".join(f"{r.direction}: NMAE {r.nmae:.3f}, PSNR {r.psnr:.1f}, SSIM {r.ssim:.2f}" for r in ours.itertuples())
        p = paper.iloc[0]
        lines.append(f"**Translation (Table 5).** Ours on {dataset_phrase(dataset)}: {o}. The paper's IMSE row ({p.direction}, on "
                     f"{'BraTS 2019' if modality == 't1t2' else 'its clinical head-and-neck set'}): NMAE {p.nmae:.3f}, "
                     f"PSNR {p.psnr:.1f}, SSIM {p.ssim:.2f}. Different data, sizes and training budgets: the "
                     f"comparison shows whether translation works at all, not whether the paper's figures are "
                     f"reproduced."
                     + (" (The paper's T2 → T1 PSNR of 91.6 dB cannot go with its own NMAE of 0.029: RMSE >= MAE "
                        "bounds the PSNR at about 31 dB, so it is most likely a typo.)" if modality == "t1t2" else ""))
    return "\n\n".join(lines)
