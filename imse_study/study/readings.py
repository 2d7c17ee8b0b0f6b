"""Markdown readings of the study's tables, generated from their numbers (never written by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["diagnostic_reading"]


def diagnostic_reading(summary: pd.DataFrame, reference: str | None = None) -> str:
    """A short Markdown reading of :func:`summarise_diagnostic`'s table, generated from its numbers."""
    if summary.empty:
        return "No pairs were registered."
    lines = [("*Fooled* alone says little: noise and interpolation put every loss's minimum a little off the "
              "truth, so look at how far below the truth the solution sits (the margin, as a fraction of the loss "
              "drop from the initial misalignment to the truth: -1 means as far below the truth as the initial "
              "pair was above it), at the end-point error against the true inverse field, and at Dice."), ""]
    for direction, group in summary.groupby("direction", sort=False):
        lines.append(f"**{direction}** ({int(group['pairs'].iloc[0])} pairs):")
        for _, r in group.iterrows():
            deform = r["dice_deformable"] - r["dice_affine"] if "dice_affine" in r and pd.notna(r["dice_affine"]) else np.nan
            verdict = ("the deformable stage helped" if deform > 0.005 else
                       "the deformable stage hurt" if deform < -0.005 else "the deformable stage changed little")
            lines.append(
                f"- `{r['variant']}`: fooled on {r['fooled']:.0%} of pairs (solution's loss below the truth's; "
                f"median margin {r.get('margin', np.nan):+.2f} of the initial-to-truth loss drop); the truth scored "
                f"worse than the initial misalignment on {r.get('truth_above_initial', np.nan):.0%}; "
                f"end-point error {r.get('epe_affine', np.nan):.2f} px after the affine stage, "
                f"{r.get('epe_deformable', np.nan):.2f} px after the deformable one, which moved away from the "
                f"true field on {r.get('misled', np.nan):.0%} of pairs (*misled*); "
                f"Dice {r.get('dice_affine', np.nan):.3f} after the affine stage, {r['dice_deformable']:.3f} after "
                f"the deformable one ({verdict}, {deform:+.3f}); HD95 {r.get('hd95_deformable', np.nan):.2f} mm, "
                f"grad {r.get('grad_deformable', np.nan):.3f}, {r['seconds']:.1f} s per pair.")
        best = group.sort_values("dice_deformable", ascending=False).iloc[0]
        lines.append(f"- Best Dice: `{best['variant']}` ({best['dice_deformable']:.3f}; the true inverse "
                     f"field reaches {best.get('dice_truth', np.nan):.3f} through the same nearest-neighbour "
                     "resampling).")
        if reference is not None and reference in set(group["variant"]):
            ref = group[group["variant"] == reference].iloc[0]
            better = group[(group["fooled"] < ref["fooled"]) & (group["dice_deformable"] > ref["dice_deformable"])]
            if len(better):
                lines.append(f"- Fooled less often and more accurate than `{reference}`: "
                             + ", ".join(f"`{v}`" for v in better["variant"]) + ".")
            else:
                lines.append(f"- No variant was both fooled less often and more accurate than `{reference}`.")
        lines.append("")
    return "\n".join(lines)
