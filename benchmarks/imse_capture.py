"""From the paper's misaligned starts, does IMSE fail to FIND the truth, or does it PREFER something else?

``imse_drift`` starts at the truth; registration starts at the paper's random displacement ``d``
(:func:`imse_study.registration.evaluate.misalign`: moving = aligned moving warped by ``d``). Here
each test pair is registered (Eq. 1, multires) from that start and compared with the exact answer,
the inverse ``phi*`` of ``d`` (:func:`~imse_study.registration.inverse.invert_displacement`). Page 07's
fooling diagnostic (``study.diagnostic``) measures the affine and deformable stages the same way for
the study's variants; this probe adds the loss along the way to the truth and a sweep of the optimiser:

* residual end-point error ``|phi(x) + d(x + phi(x))|`` (px, in the joint foreground) after the
  affine stage and after the whole transform, and Dice of the moved labels;
* Dice at ``phi*`` (the ceiling: the labels are resampled twice, nearest neighbour);
* the similarity (no smoothness term) along the straight line of fields from the answer to ``phi*``
  (``path_0`` .. ``path_10``), ``loss_found_minus_truth`` its ends' difference and ``barrier`` its
  highest point above the answer. Negative difference: the loss prefers its answer to the truth;
  positive: the truth scores better and was not reached (capture). Interpolation makes every loss
  prefer a resampled answer a little (DESIGN.md), so compare similarities, not signs: ``preference``
  is the difference as a fraction of the loss's fall from the start to ``phi*``, comparable across losses.

Each similarity runs under every ``--affine-lr`` (the affine stage's Adam rate, normalised units) and
``--iterations`` setting, so that a capture failure that a longer or bolder affine stage would fix shows.

``python benchmarks/imse_capture.py runs/phantom-t1-2d-v2-anchor2/evaluator.pt --moving t2 --target t1
--pairs 8 --affine-lr 0.01 0.03`` writes ``benchmarks/results/imse_capture/<moving>-<target>-v<version>.md``
(and ``.csv``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from imse_study.data.aligned import load_aligned  # noqa: E402
from imse_study.evaluator.use import foreground_mask  # noqa: E402
from imse_study.losses.similarity import similarity  # noqa: E402
from imse_study.metrics import dice  # noqa: E402
from imse_study.registration.evaluate import misalign  # noqa: E402
from imse_study.registration.inverse import invert_displacement  # noqa: E402
from imse_study.registration.optimise import DEFAULT_AFFINE_LR, optimise  # noqa: E402
from imse_study.warp import warp  # noqa: E402
from probes import imse_similarities, write_report  # noqa: E402


class EdgeWeighted(torch.nn.Module):
    """IMSE with voxel weights ``|grad reference|`` (Gaussian-smoothed, mean 1): a probe, not a package
    similarity. A misalignment changes the reference only where it has edges, so elsewhere |E| is the
    floor's noise alone; weighting by the edge strength is the matched filter for that signal."""

    def __init__(self, imse, sigma: float = 1.0) -> None:
        super().__init__()
        self.imse, self.sigma = imse, sigma

    def weights(self, reference: torch.Tensor) -> torch.Tensor:
        radius = int(3 * self.sigma)
        x = torch.arange(-radius, radius + 1, dtype=reference.dtype)
        kernel = torch.exp(-x ** 2 / (2 * self.sigma ** 2))
        kernel = kernel / kernel.sum()
        dy, dx = torch.gradient(reference[:, 0], dim=(1, 2))
        magnitude = torch.sqrt(dy ** 2 + dx ** 2)[:, None]
        smooth = torch.nn.functional.conv2d(magnitude, kernel.view(1, 1, -1, 1), padding=(radius, 0))
        smooth = torch.nn.functional.conv2d(smooth, kernel.view(1, 1, 1, -1), padding=(0, radius))
        return smooth / smooth.mean().clamp_min(1e-8)

    def forward(self, warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        reference = target if self.imse.reference == "target" else warped.detach()
        weights = self.weights(reference)
        return self.imse(warped, target, weights if mask is None else weights * mask)


def residual_epe(phi: torch.Tensor, start: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean ``|phi(x) + start(x + phi(x))|`` (px) inside ``mask``: 0 when ``phi`` undoes ``start``."""
    residual = phi + warp(start, phi)
    return float((residual.norm(dim=1, keepdim=True) * mask).sum() / mask.sum())


@torch.no_grad()
def loss_at(sim, moving: torch.Tensor, target: torch.Tensor, field: torch.Tensor) -> float:
    """The similarity (no smoothness term) of ``moving`` warped by ``field`` against ``target``."""
    return float(sim(warp(moving, field), target, None))


def loss_path(sim, moving: torch.Tensor, target: torch.Tensor, found: torch.Tensor, truth: torch.Tensor,
              points: int = 11) -> list[float]:
    """The similarity along the straight line of fields from ``found`` to ``truth``."""
    return [loss_at(sim, moving, target, (1 - a) * found + a * truth) for a in torch.linspace(0, 1, points).tolist()]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluators", nargs="*", help="evaluator names or checkpoint files")
    parser.add_argument("--moving", default="t2")
    parser.add_argument("--target", default="t1")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--iterations", type=int, nargs="+", default=[200])
    parser.add_argument("--affine-lr", type=float, nargs="+", default=[DEFAULT_AFFINE_LR])
    parser.add_argument("--phantom-version", type=int, default=2)
    parser.add_argument("--profile", default="quick", help="the evaluators' profile (its image size and spacing)")
    parser.add_argument("--no-baselines", action="store_true", help="skip MI")
    parser.add_argument("--flips", nargs="+", default=["none"], choices=("none", "point", "axes"))
    parser.add_argument("--edge-weights", action="store_true",
                        help="also run each IMSE loss weighted by the reference's edge strength (EdgeWeighted)")
    parser.add_argument("--stem", help="report name (default <moving>-<target>-v<version>)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "imse_capture")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    aligned = load_aligned(args.moving, args.target, "test", 2, args.profile, version=args.phantom_version)
    pairs, starts = misalign(aligned, args.moving, args.target, limit=args.pairs)
    truths = invert_displacement(starts)
    sims = {} if args.no_baselines else {"mi": similarity("mi")}
    imse = imse_similarities(args.evaluators, args.moving, args.target, tuple(args.flips))
    sims.update(imse)
    if args.edge_weights:
        sims.update({f"{name}+edges": EdgeWeighted(sim) for name, sim in imse.items()})
    rows = []
    for (name, sim), iterations, affine_lr in itertools.product(sims.items(), args.iterations, args.affine_lr):
        for i in range(len(pairs)):
            m, t, start, truth = pairs.moving[i:i + 1], pairs.target[i:i + 1], starts[i:i + 1], truths[i:i + 1]
            mask = (foreground_mask(t) | foreground_mask(warp(m, truth))).float()
            result = optimise(m, t, sim, iterations=iterations, affine_lr=affine_lr)
            moved = warp(pairs.moving_labels[i:i + 1], result.displacement, mode="nearest")
            ideal = warp(pairs.moving_labels[i:i + 1], truth, mode="nearest")
            path = loss_path(sim, m, t, result.displacement, truth)
            rows.append({
                "similarity": name, "iterations": iterations, "affine_lr": affine_lr, "pair": pairs.ids[i],
                "epe_start_px": residual_epe(torch.zeros_like(start), start, mask),
                "epe_truth_px": residual_epe(truth, start, mask),
                "epe_affine_px": residual_epe(result.affine_displacement, start, mask),
                "epe_px": residual_epe(result.displacement, start, mask),
                "dice": dice(moved, pairs.target_labels[i:i + 1])["mean"],
                "dice_truth": dice(ideal, pairs.target_labels[i:i + 1])["mean"],
                "loss_found_minus_truth": path[0] - path[-1],
                # the same difference as a fraction of the loss's fall from the start to the truth: comparable across losses
                "preference": (path[-1] - path[0]) / (loss_at(sim, m, t, torch.zeros_like(truth)) - path[-1]),
                "barrier": max(path) - path[0],
                **{f"path_{k}": v for k, v in enumerate(path)},
                "seconds": result.seconds,
            })
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    table = pd.DataFrame(rows)
    table["prefers_own_answer"] = table["loss_found_minus_truth"] < 0
    keys = ["similarity", "iterations", "affine_lr"]
    summary = table.groupby(keys, sort=False).agg(
        epe_affine_px=("epe_affine_px", "mean"), epe_px=("epe_px", "mean"), dice=("dice", "mean"),
        dice_truth=("dice_truth", "mean"), loss_found_minus_truth=("loss_found_minus_truth", "mean"),
        barrier=("barrier", "mean"), preference=("preference", "mean"),
        pairs_preferring_own_answer=("prefers_own_answer", "sum"), seconds=("seconds", "mean")).round(3)
    stem = args.stem or f"{args.moving}-{args.target}-v{args.phantom_version}"
    md = (f"# Capture from the paper's starts, {args.moving}->{args.target}, phantom v{args.phantom_version}\n\n"
          f"{len(pairs)} test pairs misaligned by the study's seeded paper transforms (mean start error "
          f"{table['epe_start_px'].mean():.2f} px; the fixed-point inverse leaves "
          f"{table['epe_truth_px'].mean():.3f} px), registered with multires. `loss_found_minus_truth` < 0: the "
          "loss prefers the registration's answer to the exact inverse (a misplaced minimum); > 0: the truth "
          "scores better and was not reached (capture); `barrier`: the path's highest point above the answer; "
          "`preference`: how far below the truth the answer scores, as a fraction of the loss's fall from start to truth.\n\n"
          f"{summary.to_markdown()}\n\nCommand: `python benchmarks/imse_capture.py "
          f"{' '.join(sys.argv[1:] if argv is None else argv)}`\n")
    return write_report(args.out, stem, md, table)


if __name__ == "__main__":
    main()
