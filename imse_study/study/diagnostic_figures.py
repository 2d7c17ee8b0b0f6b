"""Figures of the fooling diagnostic (:mod:`imse_study.study.diagnostic`), drawn with seaborn."""

from __future__ import annotations

import pandas as pd

__all__ = ["diagnostic_figure", "dice_long"]


def dice_long(table: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """Long form for plots: one row per pair x variant x stage (initial, affine, deformable)."""
    stages = [s for s in ("initial", "affine", "deformable", "truth") if f"{metric}_{s}" in table.columns]
    long = table.melt(id_vars=["direction", "pair", "variant"], value_vars=[f"{metric}_{s}" for s in stages],
                      var_name="stage", value_name=metric)
    long["stage"] = long["stage"].str.removeprefix(f"{metric}_")
    return long


def diagnostic_figure(table: pd.DataFrame, which: str = "loss"):
    """A seaborn figure: ``"loss"``, the loss at the solution vs at the truth (one panel per variant;
    below the diagonal "solution = truth" a pair is fooled), or ``"dice"``, Dice per stage and variant."""
    import seaborn as sns

    if which not in ("loss", "dice"):
        raise ValueError(f"which must be 'loss' or 'dice', got {which!r}")
    if which == "dice":
        return _dice_figure(table)
    grid = sns.relplot(data=table, x="loss_truth", y="loss_solution", hue="direction", col="variant", col_wrap=4,
                       height=2.6, facet_kws={"sharex": False, "sharey": False})
    for ax in grid.axes.flat:
        lo = min(ax.get_xlim()[0], ax.get_ylim()[0])
        hi = max(ax.get_xlim()[1], ax.get_ylim()[1])
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
    grid.figure.suptitle("loss at the solution vs at the true alignment (below the diagonal: fooled)", y=1.02)
    return grid.figure


def _dice_figure(table: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    long = dice_long(table)
    long = long[long["stage"].isin(["affine", "deformable"])]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * table["variant"].nunique() + 2), 3.2))
    sns.barplot(data=long, x="variant", y="dice", hue="stage", ax=ax, errorbar="sd")
    truth = table["dice_truth"].mean()
    ax.axhline(truth, color="grey", ls="--", lw=1, label="true inverse field")
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", rotation=30)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Dice after the affine stage and after affine + deformable")
    fig.tight_layout()
    return fig
