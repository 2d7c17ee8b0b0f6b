"""Where does a similarity's minimum sit? The "fooling" diagnostic of classic registration.

The true alignment is known: a test pair's moving image is the data set's own aligned image (the
phantom's, or a manifest set's) of the moving modality warped by a seeded random displacement
(:func:`.evaluate.make_test_pairs`),
so the *truly aligned* moving image is the unwarped one, and the displacement that undoes the
misalignment is the inverse of the known field (:func:`~imse_study.registration.inverse.invert_displacement`).
For each pair and each registration *variant* (:class:`~imse_study.registration.variants.Variant`: a
similarity plus the options of :func:`~imse_study.registration.optimise.optimise`) the diagnostic records

- ``loss_solution``: the similarity at the optimiser's solution (``warp(moving, phi)`` vs target),
- ``loss_truth``: the similarity of the unwarped moving image against the target (the true
  alignment, no resampling),
- ``loss_truth_resampled``: the similarity of ``warp(moving, inverse field)`` against the target:
  the true alignment reached through the same resampling as a solution (so the blur of a second
  interpolation is on both sides of the comparison),
- ``fooled = loss_solution < loss_truth`` (and ``fooled_resampled`` with the resampled truth): the
  optimiser found a transform that the loss prefers to the truth, i.e. the loss minimum is not at
  the true alignment. Measured here, this is true of nearly every pair for *every* loss (MI and MIND
  too): noise and interpolation always put a dense field's minimum a little off the truth. So
  :func:`summarise_diagnostic` also reports ``misled``, the fraction of pairs on which the dense stage
  raised the end-point error over the affine stage's (by more than 0.05 px): the loss pulled the
  field away from the truth, which is what costs Dice,
- Dice (all foreground labels and the brain labels), HD95 (mm), ``grad`` (the paper's
  ||grad phi||), ``epe`` (mean end-point error against the true inverse field inside the target's
  foreground, voxels) and the non-positive-Jacobian fraction of the affine stage alone and of affine +
  deformable, the loss after the affine stage, and the seconds of each (wall time; ``cpu_seconds``
  is the process's CPU time, which a loaded machine does not inflate at one thread).

The affine-only result needs no second run: :func:`~imse_study.registration.optimise.optimise`
returns the affine stage's displacement (``affine_displacement``) beside the full one, and the
seconds of the affine stage are read from the step callback (the affine stage is the first
``iterations // (levels + 1)`` steps in ``multires`` mode).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from imse_study.atomic import atomic_write
from imse_study.losses.similarity import SimilarityLike
from imse_study.metrics import (
    dice,
    gradient_smoothness,
    hd95,
    nonpositive_jacobian_fraction,
)
from imse_study.registration.evaluate import TEST_SEED, TestPairs
from imse_study.registration.inverse import invert_displacement
from imse_study.registration.optimise import MODES, optimise
from imse_study.registration.variants import Variant, check_optimise_options, resolve_variants
from imse_study.study.diagnostic_figures import diagnostic_figure, dice_long
from imse_study.study.readings import diagnostic_reading
from imse_study.warp import warp

__all__ = [
    "BRAIN_LABELS",
    "DiagnosticPairs",
    "Variant",
    "diagnostic_figure",
    "diagnostic_reading",
    "dice_long",
    "fooling_diagnostic",
    "misled",
    "invert_displacement",
    "make_diagnostic_pairs",
    "resolve_variants",
    "summarise_diagnostic",
]

BRAIN_LABELS = ("csf", "gm", "wm", "ventricles")


# ----------------------------------------------------------------------------------------------
# Test pairs with their truth
# ----------------------------------------------------------------------------------------------


@dataclass
class DiagnosticPairs:
    """Test pairs plus what is known about them (the aligned images before the misalignment).

    ``pairs`` are exactly :func:`make_test_pairs`' pairs (same seeds, same ids), possibly a subset;
    ``truth`` (N, 1, *S) the unwarped moving images (the true alignment); ``fields`` the known
    displacements that misaligned them (``pairs.moving = warp(truth, fields)``) and ``inverse`` the
    displacements that undo them (``warp(pairs.moving, inverse) ~ truth``); ``items`` the indices
    of the pairs in the full test split.
    """

    pairs: TestPairs
    truth: torch.Tensor
    fields: torch.Tensor
    inverse: torch.Tensor
    items: list[int]

    def __len__(self) -> int:
        return len(self.pairs)

    def subset(self, indices: list[int]) -> DiagnosticPairs:
        """The pairs at positions ``indices`` (of this set, not of the full split)."""
        index = torch.tensor([int(i) for i in indices], dtype=torch.long)
        p = self.pairs
        pairs = TestPairs(moving=p.moving[index], target=p.target[index], moving_labels=p.moving_labels[index],
                          target_labels=p.target_labels[index], spacing=p.spacing, ids=[p.ids[i] for i in indices],
                          moving_modality=p.moving_modality, target_modality=p.target_modality,
                          label_names=p.label_names)
        return DiagnosticPairs(pairs, self.truth[index], self.fields[index], self.inverse[index],
                               [self.items[i] for i in indices])


def make_diagnostic_pairs(
    moving_modality: str,
    target_modality: str,
    n_pairs: int = 8,
    dim: int = 2,
    profile: str = "quick",
    split: str = "test",
    seed: int = TEST_SEED,
    spread: bool = True,
    dataset: str = "phantom",
    root: str | None = None,
) -> DiagnosticPairs:
    """``n_pairs`` of :func:`make_test_pairs`' pairs of ``dataset`` (the phantom or a manifest set with
    label maps, data folder ``root``) with their truth: the aligned moving images before the known
    misalignment, so the true alignment is known on real data as on the phantom.

    ``spread=True`` picks pairs evenly over the split (so several subjects are seen, not the slices
    of the first subject only); ``False`` takes the first ``n_pairs``. A pair keeps its index, seed
    and id of the full set, so its rows match :func:`.evaluate.evaluate`'s rows of the same pair.
    """
    from imse_study.data.aligned import load_aligned
    from imse_study.registration.evaluate import misalign

    if int(n_pairs) < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    aligned = load_aligned(moving_modality, target_modality, split, dim, profile, dataset, root)
    full, all_fields = misalign(aligned, moving_modality, target_modality, seed=seed)
    total = len(full)
    if total == 0:
        raise ValueError(f"the {split!r} split of data set {dataset!r} (profile {profile!r}) holds no pairs")
    n = min(int(n_pairs), total)
    items = (np.linspace(0, total - 1, n).round().astype(int).tolist() if spread else list(range(n)))
    items = sorted(set(items))
    index = torch.tensor(items)
    fields = all_fields[index]
    pairs = TestPairs(
        moving=full.moving[index], target=full.target[index], moving_labels=full.moving_labels[index],
        target_labels=full.target_labels[index], spacing=full.spacing, ids=[full.ids[i] for i in items],
        moving_modality=full.moving_modality, target_modality=full.target_modality, label_names=full.label_names,
    )
    truth = aligned.images[moving_modality][index]
    return DiagnosticPairs(pairs=pairs, truth=truth, fields=fields, inverse=invert_displacement(fields), items=items)


# ----------------------------------------------------------------------------------------------
# The diagnostic
# ----------------------------------------------------------------------------------------------


def _label_pair(pairs: TestPairs, i: int, displacement: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair ``i``'s moving labels moved by ``displacement`` (as they are when None), and its target labels."""
    labels = pairs.moving_labels[i : i + 1]
    if displacement is not None:
        labels = warp(labels, displacement, mode="nearest")
    return labels, pairs.target_labels[i : i + 1]


def _dice_scores(labels: torch.Tensor, target: torch.Tensor, names: dict[str, int], prefix: str) -> dict[str, float]:
    """Dice over every label and over the brain labels."""
    brain = [names[k] for k in BRAIN_LABELS if k in names]
    return {f"dice_{prefix}": dice(labels, target, label_names=names)["mean"],
            f"dice_brain_{prefix}": dice(labels, target, labels=brain)["mean"]}


def _scores(pairs: TestPairs, i: int, displacement: torch.Tensor | None, prefix: str,
            inverse: torch.Tensor | None = None) -> dict[str, float]:
    """Dice (:func:`_dice_scores`), HD95, and for a field its smoothness and end-point error."""
    labels, target = _label_pair(pairs, i, displacement)
    out = {**_dice_scores(labels, target, pairs.label_names, prefix),
           f"hd95_{prefix}": hd95(labels, target, spacing=pairs.spacing, label_names=pairs.label_names)["mean"]}
    if displacement is not None and inverse is not None:
        # mean end-point error against the true inverse field, inside the target's foreground (voxels)
        fg = (target > 0).float()
        err = (displacement - inverse).pow(2).sum(1, keepdim=True).sqrt()
        out[f"epe_{prefix}"] = float((err * fg).sum() / fg.sum().clamp_min(1.0))
    if displacement is not None:
        out[f"grad_{prefix}"] = gradient_smoothness(displacement)
        out[f"neg_jac_{prefix}"] = nonpositive_jacobian_fraction(displacement)
    return out


@torch.no_grad()
def _loss(sim: SimilarityLike, warped: torch.Tensor, target: torch.Tensor) -> float:
    return float(sim(warped, target, None))


def fooling_diagnostic(
    dpairs: DiagnosticPairs,
    variants: Any,
    mode: str = "multires",
    iterations: int = 200,
    progress: bool = False,
    device: str | torch.device | None = None,
    **optimise_options: Any,
) -> pd.DataFrame:
    """Register every pair with every variant and compare the loss at the solution with the truth's.

    ``variants``: see :func:`resolve_variants` (e.g. ``["mi", "mind", "imse"]`` or
    ``{"imse+mind": Variant(sim, {"grid_spacing": 8})}``). ``mode``, ``iterations`` and
    ``optimise_options`` are the defaults of :func:`~imse_study.registration.optimise.optimise`
    that a variant's own options override. One row per pair x variant (columns: module docstring).
    ``device``: where the optimisation runs (e.g. ``cuda``; default: where the pairs are); labels
    are scored on the CPU either way.
    """
    if not isinstance(dpairs, DiagnosticPairs):
        raise ValueError("dpairs must be DiagnosticPairs (make_diagnostic_pairs(...)): the diagnostic needs the "
                         f"true alignment, which a {type(dpairs).__name__} does not carry")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_optimise_options(optimise_options)
    pairs = dpairs.pairs
    resolved = resolve_variants(variants, pairs)
    from imse_study.progress import progress_bar

    rows, dev = [], torch.device(device) if device is not None else pairs.moving.device
    with progress_bar(total=len(pairs) * len(resolved), desc=f"diagnostic {pairs.direction}", disable=not progress) as bar:
        for i in range(len(pairs)):
            moving, target = pairs.moving[i : i + 1].to(dev), pairs.target[i : i + 1].to(dev)
            truth = dpairs.truth[i : i + 1].to(dev)
            inverse = dpairs.inverse[i : i + 1]  # on the CPU, beside the labels it scores
            truth_resampled = warp(moving, inverse.to(dev))
            base = {"direction": pairs.direction, "pair": pairs.ids[i], "item": dpairs.items[i],
                    "dim": moving.dim() - 2}
            initial = _scores(pairs, i, None, "initial")
            # the best Dice a registration could reach
            ceiling = _dice_scores(*_label_pair(pairs, i, inverse), pairs.label_names, "truth")
            for name, variant in resolved.items():
                opts = {"mode": mode, "iterations": int(iterations), **optimise_options, **variant.options}
                sim = variant.similarity
                n_affine = 0
                if opts["mode"] == "multires" and opts.get("affine", True):
                    n_affine = int(opts["iterations"]) // (int(opts.get("levels", 3)) + 1)
                marks: dict[str, float] = {}
                start, cpu_start = time.perf_counter(), time.process_time()

                def callback(step: int, total: int, loss: float, marks=marks, start=start, n_affine=n_affine) -> None:
                    if step == n_affine:
                        marks["affine"] = time.perf_counter() - start

                result = optimise(moving, target, sim, callback=callback, **opts)
                seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
                row = {**base, "variant": name, "similarity": repr(sim), "mode": opts["mode"],
                       "options": ", ".join(f"{k}={v}" for k, v in sorted(variant.options.items())),
                       "loss_initial": _loss(sim, moving, target), "loss_solution": _loss(sim, result.warped, target),
                       "loss_truth": _loss(sim, truth, target),
                       "loss_truth_resampled": _loss(sim, truth_resampled, target)}
                affine = result.affine_displacement
                row["loss_affine"] = _loss(sim, warp(moving, affine), target) if affine is not None else np.nan
                row["fooled"] = bool(row["loss_solution"] < row["loss_truth"])
                row["fooled_resampled"] = bool(row["loss_solution"] < row["loss_truth_resampled"])
                row["truth_above_initial"] = bool(row["loss_truth"] > row["loss_initial"])
                row["fooled_affine"] = bool(row["loss_affine"] < row["loss_truth"]) if affine is not None else False
                row.update(initial)
                row.update(ceiling)
                if affine is not None:
                    row.update(_scores(pairs, i, affine.cpu(), "affine", inverse))
                row.update(_scores(pairs, i, result.displacement.cpu(), "deformable", inverse))
                row["seconds_affine"] = marks.get("affine", np.nan)
                row["seconds"] = seconds
                row["cpu_seconds"] = cpu_seconds
                rows.append(row)
                bar.update(1)
    return pd.DataFrame(rows)


MISLED_EPE_PX = 0.05  # end-point error rise (px) that counts as the dense stage moving away from the truth


def misled(table: pd.DataFrame) -> pd.Series:
    """Per row: did the dense stage raise the end-point error over the affine stage's (by more than
    :data:`MISLED_EPE_PX`)? NaN where there was no affine stage."""
    return (table["epe_deformable"] - table["epe_affine"]).gt(MISLED_EPE_PX).where(table["epe_affine"].notna())


def summarise_diagnostic(table: pd.DataFrame) -> pd.DataFrame:
    """Per direction x variant: pairs, fooled fraction, Dice / HD95 / grad affine vs deformable, seconds."""
    required = {"direction", "variant", "fooled", "dice_deformable", "seconds"}
    missing = required - set(table.columns)
    if missing:
        raise ValueError(f"not a fooling_diagnostic table: columns {sorted(missing)} are missing")
    columns = {
        "pairs": ("pair", "count"),
        "fooled": ("fooled", "mean"),
        "fooled_resampled": ("fooled_resampled", "mean"),
        "truth_above_initial": ("truth_above_initial", "mean"),
        "misled": ("misled", "mean"),
        "margin": ("margin", "median"),
        "dice_initial": ("dice_initial", "mean"),
        "dice_affine": ("dice_affine", "mean"),
        "dice_deformable": ("dice_deformable", "mean"),
        "dice_deformable_sd": ("dice_deformable", "std"),
        "dice_brain_affine": ("dice_brain_affine", "mean"),
        "dice_brain_deformable": ("dice_brain_deformable", "mean"),
        "dice_truth": ("dice_truth", "mean"),
        "epe_affine": ("epe_affine", "mean"),
        "epe_deformable": ("epe_deformable", "mean"),
        "hd95_affine": ("hd95_affine", "mean"),
        "hd95_deformable": ("hd95_deformable", "mean"),
        "grad_deformable": ("grad_deformable", "mean"),
        "neg_jac_deformable": ("neg_jac_deformable", "mean"),
        "seconds_affine": ("seconds_affine", "mean"),
        "seconds": ("seconds", "mean"),
        "cpu_seconds": ("cpu_seconds", "mean"),
    }
    t = table.copy()
    if {"loss_truth", "loss_initial"} <= set(t.columns):  # also for tables written before the column existed
        t["truth_above_initial"] = t["loss_truth"] > t["loss_initial"]
    if {"epe_affine", "epe_deformable"} <= set(t.columns):
        t["misled"] = misled(t)
    # relative margin: how far below (negative) or above (positive) the truth's loss the solution sits,
    # as a fraction of the loss drop from the initial misalignment to the truth
    span = (t["loss_initial"] - t["loss_truth"]).abs().where(lambda s: s > 0)
    t["margin"] = (t["loss_solution"] - t["loss_truth"]) / span
    columns = {k: v for k, v in columns.items() if v[0] in t.columns}
    return t.groupby(["direction", "variant"], sort=False).agg(**columns).reset_index()


# ----------------------------------------------------------------------------------------------
# Command line: python -m imse_study.study.diagnostic --direction t1-t2 --pairs 8 --out t.csv
# ----------------------------------------------------------------------------------------------


def _parser():
    import argparse

    parser = argparse.ArgumentParser(prog="python -m imse_study.study.diagnostic",
                                     description="Fooling diagnostic of classic registration on test pairs")
    parser.add_argument("--direction", default="t1-t2", help="moving-target, e.g. t1-t2 or ct-t1")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--dataset", default="phantom", help="phantom (bundled) or a manifest name")
    parser.add_argument("--root", default=None, help="data folder of a manifest data set")
    parser.add_argument("--variants", nargs="+", default=["mi", "mind", "imse"])
    parser.add_argument("--evaluator", default=None, help="checkpoint or shipped name (default: the shipped one)")
    parser.add_argument("--finetuned", default=None, help="fine-tuned evaluator checkpoint (variant imse_hardneg)")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default=None, help="torch device for the optimisation, e.g. cuda (default: cpu)")
    parser.add_argument("--shard", default="0/1", help="k/n: run pairs k, k+n, k+2n, ... (parallel processes)")
    parser.add_argument("--out", default=None, help="CSV of every pair x variant (rewritten atomically after every "
                                                    "pair); an existing file is kept unless --overwrite")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return parser


def _split(parser, text: str, separator: str, what: str) -> tuple[str, str]:
    """``"a<sep>b"`` as ``(a, b)``, or a one-line usage error naming ``what``."""
    parts = text.split(separator)
    if len(parts) != 2 or not all(parts):
        parser.error(f"{what}, not {text!r}")
    return parts[0], parts[1]


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run the diagnostic for one direction and the variants of :func:`.robust.hardening_variants`."""
    from imse_study.losses.robust import hardening_variants

    parser = _parser()
    args = parser.parse_args(argv)
    moving, target = _split(parser, args.direction.replace("->", "-"), "-",
                            "--direction must be moving-target, e.g. t1-t2")
    k, n = _split(parser, args.shard, "/", "--shard must be k/n with 0 <= k < n, e.g. 0/2")
    if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
        parser.error(f"--shard must be k/n with 0 <= k < n, e.g. 0/2, not {args.shard!r}")
    k, n = int(k), int(n)
    if args.out and Path(args.out).exists() and not args.overwrite:
        parser.error(f"{args.out} exists: pass --overwrite to replace it, or another --out")
    torch.set_num_threads(args.threads)
    if args.evaluator is None and any("imse" in v for v in args.variants):
        from imse_study.evaluator.pretrained import refuse_shipped

        refuse_shipped(args.dataset, remedy=f"pass --evaluator, one trained with `imse-study train-evaluator "
                                            f"--dataset {args.dataset} --root DIR --modality {moving}`")
    dpairs = make_diagnostic_pairs(moving, target, n_pairs=args.pairs, profile=args.profile, dataset=args.dataset,
                                   root=args.root)
    if k >= len(dpairs):
        parser.error(f"--shard {args.shard} selects no pair: there are {len(dpairs)} pairs")
    variants = hardening_variants(moving, target, evaluator=args.evaluator, names=args.variants,
                                  finetuned=args.finetuned)
    tables = []
    for i in range(k, len(dpairs), n):
        tables.append(fooling_diagnostic(dpairs.subset([i]), variants, iterations=args.iterations, progress=True,
                                         device=args.device))
        table = pd.concat(tables, ignore_index=True)
        if args.out:  # atomically: readers may look at it while the run goes on
            atomic_write(args.out, lambda tmp, table=table: table.to_csv(tmp, index=False))
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(summarise_diagnostic(table).round(3).to_string())
    return table


if __name__ == "__main__":
    main()
