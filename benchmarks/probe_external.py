"""Probe: the reference tools (ANTs SyN and elastix affine + B-spline, both mutual information) on
phantom pairs, with the same pairs as ``probe_instance.py``.

Each pair is one item of the quick 2D test split of the phantom (120x120, 2 mm): the moving image
(one modality) and its label map are warped by the paper's random transform
(``random_spatial_displacement``, seed = pair index; images bilinear, labels nearest) and
registered back onto the unwarped target (another modality of the same item), whose label map is
the truth. Reported per pair: Dice over the brain labels (csf, gm, wm, ventricles = 1..4) and over
all non-background labels (1..6, with skull and scalp) before and after, the fraction of
non-positive Jacobian determinants, the seconds of the tool call, and the largest difference
between ``warp(moving, displacement)`` and the tool's own warped image inside the image (a check of
the conversion to our displacement convention).

    python benchmarks/probe_external.py --pairs 8 --out /tmp/probe_external.csv

Methods: ``ants`` (antspyx "SyN", its defaults: reg_iterations 40x20x0), ``ants-fine`` (the same with
reg_iterations 100x70x50, i.e. iterating at full resolution too), ``elastix`` (default affine and
bspline maps, MI). See ``imse_study/registration/external.py`` for every parameter.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from imse_study.augment import random_spatial_displacement
from imse_study.data.phantom import LABELS, load_phantom
from imse_study.metrics import dice, nonpositive_jacobian_fraction
from imse_study.registration.external import register_external
from imse_study.warp import identity_grid, warp

BRAIN = [LABELS[k] for k in ("csf", "gm", "wm", "ventricles")]
ALL = [v for v in LABELS.values() if v != 0]
DIRECTIONS = {"t1-t2": ("t1", "t2"), "ct-t1": ("ct", "t1")}  # moving-target
METHODS = {
    "ants": ("ants", {}),
    "ants-fine": ("ants", {"reg_iterations": (100, 70, 50)}),
    "elastix": ("elastix", {}),
}


def make_pair(data, index: int, seed: int, moving_mod: str, target_mod: str):
    """(moving warped by a random transform, its labels, target, target labels), all (1, 1, H, W)."""
    moving = torch.from_numpy(data.images[moving_mod][index])[None, None].float()
    target = torch.from_numpy(data.images[target_mod][index])[None, None].float()
    labels = torch.from_numpy(data.labels[index].astype(np.int64))[None, None]
    field = random_spatial_displacement(tuple(moving.shape[2:]), 1,
                                        generator=torch.Generator().manual_seed(seed))
    return warp(moving, field), warp(labels, field, mode="nearest"), target, labels


def scores(moving_labels, target_labels) -> dict[str, float]:
    return {"dice_brain": dice(moving_labels, target_labels, labels=BRAIN)["mean"],
            "dice_all": dice(moving_labels, target_labels, labels=ALL)["mean"]}


def conversion_error(result) -> float:
    """max |warp(moving, d) - tool's warped| where the sampled point is inside the image."""
    d = result.displacement[0]
    q = identity_grid(tuple(d.shape[1:])) + d
    inside = torch.ones(d.shape[1:], dtype=torch.bool)
    for i, n in enumerate(d.shape[1:]):
        inside &= (q[i] >= 1) & (q[i] <= n - 2)
    diff = (result.warped - result.tool_warped)[0, 0].abs()
    return float(diff[inside].max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--directions", nargs="+", default=list(DIRECTIONS), choices=list(DIRECTIONS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="CSV of every pair x method (tidy)")
    args = parser.parse_args()
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    import pandas as pd

    data = load_phantom("test", 2, "quick")
    rows = []
    for direction in args.directions:
        moving_mod, target_mod = DIRECTIONS[direction]
        for k in range(args.pairs):
            index = k % len(data)
            moving, moving_labels, target, target_labels = make_pair(data, index, k, moving_mod,
                                                                     target_mod)
            initial = scores(moving_labels, target_labels)
            for name in args.methods:
                tool, kw = METHODS[name]
                result = register_external(tool, moving, target, data.spacing,
                                           threads=args.threads, seed=0, **kw)
                after = scores(warp(moving_labels, result.displacement, mode="nearest"),
                               target_labels)
                rows.append({
                    "direction": direction, "pair": k, "item": index, "method": name,
                    "dice_brain_initial": initial["dice_brain"], "dice_all_initial": initial["dice_all"],
                    "dice_brain": after["dice_brain"], "dice_all": after["dice_all"],
                    "nonpositive_jacobian": nonpositive_jacobian_fraction(result.displacement),
                    "seconds": result.seconds,
                    "conversion_error": conversion_error(result),
                })
                r = rows[-1]
                print(f"{direction} pair {k} {name:9s} brain {r['dice_brain_initial']:.3f} -> "
                      f"{r['dice_brain']:.3f}  all {r['dice_all_initial']:.3f} -> {r['dice_all']:.3f}"
                      f"  {r['seconds']:.1f} s  conv.err {r['conversion_error']:.1e}", flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    summary = table.groupby(["direction", "method"]).agg(
        dice_brain_initial=("dice_brain_initial", "mean"), dice_brain=("dice_brain", "mean"),
        dice_brain_sd=("dice_brain", "std"), dice_all_initial=("dice_all_initial", "mean"),
        dice_all=("dice_all", "mean"), nonpos_jac=("nonpositive_jacobian", "mean"),
        seconds=("seconds", "mean"), conversion_error=("conversion_error", "max"))
    with pd.option_context("display.width", 250, "display.max_columns", None,
                           "display.precision", 3):
        print(summary)


if __name__ == "__main__":
    main()
