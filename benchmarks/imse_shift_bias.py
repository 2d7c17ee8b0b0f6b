"""Where is the minimum of each loss over rigid shifts of an ALIGNED pair? A direction bias check.

For aligned test pairs, the moving image is shifted by every (dy, dx) on a grid of sub-pixel steps
and the loss is evaluated (no optimiser). An unbiased loss has its minimum at (0, 0); a minimum
that sits off it in the same direction for every pair is a bias of the loss itself, which
registration then follows (``benchmarks/imse_drift.py``). IMSE is evaluated plain and with
test-time mirror averaging (``--flips``, :mod:`imse_study.evaluator.symmetry`). The target is the
evaluator's modality; ``--movers`` lists the moving modalities (the evaluator's own included).

``python benchmarks/imse_shift_bias.py EVALUATOR --movers t1 t2 pd --flips none point`` writes
``benchmarks/results/imse_shift_bias/<evaluator>-v<version>.md`` (and ``.csv``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from imse_study.data.aligned import load_aligned  # noqa: E402
from imse_study.evaluator.pretrained import load_any  # noqa: E402
from imse_study.losses.similarity import similarity  # noqa: E402
from imse_study.warp import warp  # noqa: E402
from evaluator_transfer import evaluator_name  # noqa: E402
from probes import write_report  # noqa: E402


def loss_grid(loss, moving: torch.Tensor, target: torch.Tensor, steps: torch.Tensor) -> np.ndarray:
    """``loss(shift(moving, (dy, dx)), target)`` for every (dy, dx) in ``steps`` x ``steps``."""
    grid = np.zeros((len(steps), len(steps)))
    with torch.no_grad():
        for a, dy in enumerate(steps):
            for b, dx in enumerate(steps):
                field = torch.zeros(1, 2, *moving.shape[2:])
                field[:, 0], field[:, 1] = dy, dx
                grid[a, b] = float(loss(warp(moving, field), target))
    return grid


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluator", help="a shipped evaluator name or a checkpoint file")
    parser.add_argument("--movers", nargs="+", default=["t1", "t2", "pd"], help="moving modalities")
    parser.add_argument("--flips", nargs="+", default=["none", "point"], choices=("none", "point", "axes"))
    parser.add_argument("--pairs", type=int, default=4, help="aligned test pairs (every other item)")
    parser.add_argument("--step", type=float, default=0.125, help="shift step in pixels")
    parser.add_argument("--reach", type=float, default=0.75, help="largest shift in pixels")
    parser.add_argument("--phantom-version", type=int, default=2)
    parser.add_argument("--no-baselines", action="store_true", help="skip MI")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "imse_shift_bias")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, meta = load_any(str(args.evaluator))
    target_modality = meta.modality
    steps = torch.arange(-args.reach, args.reach + 1e-6, args.step)
    rows = []
    for mover in args.movers:
        other = mover if mover != target_modality else next(m for m in args.movers if m != target_modality)
        aligned = load_aligned(other, target_modality, "test", 2, "quick", version=args.phantom_version)
        target = aligned.images[target_modality][: 2 * args.pairs: 2]
        moving = (target if mover == target_modality else aligned.images[mover][: 2 * args.pairs: 2])
        losses = {} if args.no_baselines else {"mi": similarity("mi")}
        for f in args.flips:
            losses["imse" + ("" if f == "none" else f"+{f}")] = similarity(
                "imse", evaluator=model, evaluator_modality=target_modality, moving_modality=other,
                target_modality=target_modality, flips=f)
        for name, loss in losses.items():
            for i in range(len(target)):
                grid = loss_grid(loss, moving[i:i + 1], target[i:i + 1], steps)
                a, b = np.unravel_index(grid.argmin(), grid.shape)
                rows.append({"moving": mover, "loss": name, "pair": i, "min_dy": float(steps[a]),
                             "min_dx": float(steps[b]), "min_offset_px": float(np.hypot(steps[a], steps[b]))})
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    summary = table.groupby(["moving", "loss"])[["min_dy", "min_dx", "min_offset_px"]].mean().round(3)
    label = evaluator_name(args.evaluator)
    md = (f"# Shift bias of each loss, evaluator {label} (target {target_modality}), phantom v{args.phantom_version}\n\n"
          f"{len(target)} ALIGNED test pairs; the moving image shifted on a {args.step} px grid up to "
          f"{args.reach} px; mean position of each pair's minimum (an unbiased loss: 0, 0).\n\n"
          f"{summary.to_markdown()}\n")
    return write_report(args.out, f"{label}-v{args.phantom_version}", md, table)


if __name__ == "__main__":
    main()
