"""The ``qa.png`` overlay: target, moved image, and the error map over the target with a colour bar,
the flagged regions outlined; one slice (the one with the most flagged voxels, else the most error)
across the axis the evaluator slices, in the package's (S, P, R) layout."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from imse_study.data.geometry import Layout, slice_axis  # noqa: E402
from imse_study.evaluator.model import OUTPUT_SCALE  # noqa: E402

ERROR_CMAP = "RdBu_r"
ERROR_VMAX = OUTPUT_SCALE / 2  # |E| of a full contrast flip between tissue and air


def _layout(shape: tuple[int, ...], affine: np.ndarray) -> Layout:
    return Layout(shape, affine, None if len(shape) == 2 else slice_axis(shape, affine))


def worst_slice(region_map: np.ndarray, error: np.ndarray) -> int:
    """Index along axis 0 with the most flagged voxels (the most |E| when none is flagged)."""
    flagged = (region_map > 0).reshape(region_map.shape[0], -1).sum(1)
    if flagged.any():
        return int(np.argmax(flagged))
    return int(np.argmax(np.abs(error).reshape(error.shape[0], -1).sum(1)))


def qa_figure(result, moved: np.ndarray, target: np.ndarray, affine: np.ndarray, path: str | Path) -> Path:
    """Draw and save the figure of a :class:`~imse_study.qa.assess.QAResult` (its error and region maps)."""
    layout = _layout(target.shape, affine)
    error, regions = layout.to(result.error_map), layout.to(result.region_map)
    index = worst_slice(regions, error)
    panels = [layout.to(target)[index], layout.to(moved)[index]]
    fig, axes = plt.subplots(1, 3, figsize=(11, 4), constrained_layout=True)
    for ax, image, title in zip(axes, panels, ("target", "moved")):
        ax.imshow(image, cmap="gray", vmin=-1, vmax=1)
        ax.set_title(title)
    axes[2].imshow(panels[0], cmap="gray", vmin=-1, vmax=1)
    shown = np.ma.masked_where(np.abs(error[index]) < 0.05 * ERROR_VMAX, error[index])
    overlay = axes[2].imshow(shown, cmap=ERROR_CMAP, vmin=-ERROR_VMAX, vmax=ERROR_VMAX, alpha=0.85)
    outline = regions[index] > 0
    if 0 < outline.sum() < outline.size:
        axes[2].contour(outline.astype(float), levels=[0.5], colors=["#ffeb3b"], linewidths=1.0)
    axes[2].set_title("error E over the target (flagged: yellow)")
    fig.colorbar(overlay, ax=axes[2], fraction=0.046, label="E (image units; 0 = aligned)")
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    headline = f"score {result.score:.3f}"
    if result.calibrated:
        lo, hi = result.misalignment_mm_interval
        headline += (f"   misalignment {result.misalignment_mm:.1f} mm [{lo:.1f}, {hi:.1f}]"
                     f"   p_failed {result.p_failed:.2f}")
    if error.shape[0] > 1:
        headline += f"   (slice {index} of {error.shape[0]})"
    fig.suptitle(headline)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
