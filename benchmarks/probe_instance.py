"""Probe: instance optimisation (Eq. 1) on phantom pairs, paper mode vs multires mode, per similarity.

Each pair is one item of the quick 2D test split of the phantom: the moving image (one modality)
is warped by the paper's random transform (``random_spatial_displacement``, seed = pair index) and
registered back onto the unwarped target (another modality of the same item), whose label map is
the truth. Dice over the brain labels (csf, gm, wm, ventricles = 1..4) and over all non-background
labels (1..6, with skull and scalp), the non-positive Jacobian fraction and the seconds per pair.

    python benchmarks/probe_instance.py --pairs 8 --directions t1-t2 --out t1-t2.csv
    python benchmarks/probe_instance.py --pairs 8 --directions ct-t1 --out ct-t1.csv

Directions are ``moving-target``. IMSE uses ``runs/phantom-t1-2d/evaluator.pt`` when neither image
is CT and ``runs/phantom-ct-2d/evaluator.pt`` otherwise (override with --t1-evaluator /
--ct-evaluator); its reference channel is whichever image is in the evaluator's modality (the
moving one for t1-t2 and ct-t1, the target for t2-t1 and t1-ct). One thread per process.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from imse_study.augment import random_spatial_displacement
from imse_study.data.phantom import LABELS, load_phantom
from imse_study.metrics import dice, nonpositive_jacobian_fraction
from imse_study.registration.optimise import optimise
from imse_study.losses.similarity import similarity
from imse_study.warp import warp

BRAIN = [LABELS[k] for k in ("csf", "gm", "wm", "ventricles")]
DIRECTIONS = {"t1-t2": ("t1", "t2"), "ct-t1": ("ct", "t1"), "t2-t1": ("t2", "t1"), "t1-ct": ("t1", "ct")}  # moving-target


def make_pair(data, index: int, seed: int, moving_mod: str, target_mod: str):
    """(moving warped by a random transform, its labels, target, target labels), all (1, 1, H, W)."""
    moving = torch.from_numpy(data.images[moving_mod][index])[None, None].float()
    target = torch.from_numpy(data.images[target_mod][index])[None, None].float()
    labels = torch.from_numpy(data.labels[index].astype(np.int64))[None, None]
    field = random_spatial_displacement(tuple(moving.shape[2:]), 1, generator=torch.Generator().manual_seed(seed))
    return warp(moving, field), warp(labels, field, mode="nearest"), target, labels


def scores(moving_labels, target_labels, displacement) -> dict[str, float]:
    warped = moving_labels if displacement is None else warp(moving_labels, displacement, mode="nearest")
    out = {"dice_brain": dice(warped, target_labels, labels=BRAIN)["mean"],
           "dice_all": dice(warped, target_labels)["mean"]}
    out["nonpositive_jacobian"] = 0.0 if displacement is None else nonpositive_jacobian_fraction(displacement)
    return out


def build_similarity(name: str, direction: str, args) -> object:
    if name != "imse":
        return similarity(name)
    moving_mod, target_mod = DIRECTIONS[direction]
    path = args.ct_evaluator if "ct" in (moving_mod, target_mod) else args.t1_evaluator
    return similarity("imse", evaluator=str(path), moving_modality=moving_mod, target_modality=target_mod)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--directions", nargs="+", default=["t1-t2", "ct-t1"], choices=list(DIRECTIONS))
    parser.add_argument("--similarities", nargs="+", default=["mi", "mind", "ncc", "lncc", "imse"])
    parser.add_argument("--modes", nargs="+", default=["paper", "multires"])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--lr", type=float, default=None, help="deformable lr (default: the function's)")
    parser.add_argument("--affine-lr", type=float, default=None)
    parser.add_argument("--smooth-weight", type=float, default=None)
    parser.add_argument("--grid-spacing", type=int, default=None)
    parser.add_argument("--levels", type=int, default=None)
    parser.add_argument("--no-affine", action="store_true")
    parser.add_argument("--t1-evaluator", default="runs/phantom-t1-2d/evaluator.pt")
    parser.add_argument("--ct-evaluator", default="runs/phantom-ct-2d/evaluator.pt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="CSV of every pair x method (tidy)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_phantom("test", 2, "quick")
    indices = np.linspace(0, len(data) - 1, args.pairs).round().astype(int)
    options = {k: v for k, v in (("lr", args.lr), ("affine_lr", args.affine_lr), ("smooth_weight", args.smooth_weight),
                                 ("grid_spacing", args.grid_spacing), ("levels", args.levels)) if v is not None}
    rows = []
    for direction in args.directions:
        moving_mod, target_mod = DIRECTIONS[direction]
        sims = {name: build_similarity(name, direction, args) for name in args.similarities}
        for pair, index in enumerate(indices):
            moving, moving_labels, target, target_labels = make_pair(data, int(index), pair, moving_mod, target_mod)
            base = {"direction": direction, "pair": pair, "item": int(index)}
            rows.append({**base, "mode": "initial", "similarity": "none", "seconds": 0.0,
                         **scores(moving_labels, target_labels, None)})
            for mode in args.modes:
                for name, sim in sims.items():
                    kwargs = dict(options) if mode == "multires" else {}
                    if mode == "multires" and args.no_affine:
                        kwargs["affine"] = False
                    if mode == "paper" and args.smooth_weight is not None:
                        kwargs["smooth_weight"] = args.smooth_weight
                    start = time.perf_counter()
                    result = optimise(moving, target, sim, iterations=args.iterations, mode=mode, **kwargs)
                    seconds = time.perf_counter() - start
                    rows.append({**base, "mode": mode, "similarity": name, "seconds": seconds,
                                 **scores(moving_labels, target_labels, result.displacement)})
                    print(f"{direction} pair {pair} {mode:8s} {name:5s} dice_brain {rows[-1]['dice_brain']:.3f} "
                          f"dice_all {rows[-1]['dice_all']:.3f} ({seconds:.1f} s)", flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
    summary = (table.groupby(["direction", "mode", "similarity"], sort=False)
               .agg(dice_brain=("dice_brain", "mean"), dice_brain_sd=("dice_brain", "std"),
                    dice_all=("dice_all", "mean"), dice_all_sd=("dice_all", "std"),
                    nonpos_jac=("nonpositive_jacobian", "mean"), seconds=("seconds", "mean")))
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
