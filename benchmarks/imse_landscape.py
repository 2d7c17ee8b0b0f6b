"""How sharply does each similarity rise away from the true alignment? (Why IMSE registers worse than MI.)

For aligned test pairs (moving modality, target modality) the moving image is moved by a translation
of ``s`` pixels along each axis and by the paper's random affine + elastic displacement (section 4.1)
scaled by ``a``; each similarity loss is recorded against the true mean displacement in pixels. A loss that a
registration can follow down to the truth rises steeply and monotonically from 0 px; a flat floor
below ~1 px means the optimiser stops wherever the floor starts.

Reported per similarity and displacement size: the loss rise above the aligned pair's loss, divided
by the loss's spread over the aligned pairs (a signal-to-noise ratio: how many "aligned-pair standard
deviations" a misalignment of that size costs), and the fraction of pairs whose loss at that size is
above their aligned loss (monotonic detection).

``python benchmarks/imse_landscape.py EVALUATOR [EVALUATOR ...] --moving t2 --target t1``
writes ``benchmarks/results/imse_landscape/<moving>-<target>-v<version>.csv`` and a Markdown table.
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

from imse_study.augment import random_spatial_displacement  # noqa: E402
from imse_study.data.aligned import load_aligned  # noqa: E402
from imse_study.evaluator.use import foreground_mask  # noqa: E402
from imse_study.losses.similarity import similarity  # noqa: E402
from imse_study.warp import warp  # noqa: E402
from probes import imse_similarities, write_report  # noqa: E402

SHIFTS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)


def displaced(image: torch.Tensor, shift: float, field: torch.Tensor, scale: float) -> torch.Tensor:
    """``image`` moved by a uniform shift of ``shift`` px along every axis plus ``scale`` x ``field``."""
    u = field * scale + shift
    return warp(image, u) if (shift or scale) else image


def losses(name: str, sim, moving: torch.Tensor, target: torch.Tensor, fields: torch.Tensor,
           kind: str) -> list[dict]:
    rows = []
    mask = (foreground_mask(target) | foreground_mask(moving)).float()
    for size in SHIFTS:
        shift, scale = (size, 0.0) if kind == "shift" else (0.0, size)
        with torch.no_grad():
            moved = displaced(moving, shift, fields, scale)
            for i in range(len(moving)):
                value = float(sim(moved[i:i + 1], target[i:i + 1], mask[i:i + 1]))
                if kind == "shift":
                    epe = size * np.sqrt(moving.dim() - 2)
                else:
                    epe = float((fields[i] * scale).norm(dim=0).mul(mask[i, 0]).sum() / mask[i, 0].sum())
                rows.append({"similarity": name, "kind": kind, "size": size, "pair": i, "epe_px": epe,
                             "loss": value})
    return rows


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (name, kind), part in table.groupby(["similarity", "kind"]):
        aligned = part[part["size"] == 0].set_index("pair")["loss"]
        spread = aligned.std(ddof=1) if len(aligned) > 1 else np.nan
        for size, at in part.groupby("size"):
            if size == 0:
                continue
            rise = at.set_index("pair")["loss"] - aligned
            out.append({"similarity": name, "kind": kind, "size": size, "epe_px": at["epe_px"].mean(),
                        "rise_over_spread": rise.mean() / spread, "detected": float((rise > 0).mean())})
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluators", nargs="+", help="evaluator names or checkpoint files")
    parser.add_argument("--moving", default="t2")
    parser.add_argument("--target", default="t1")
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--phantom-version", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "imse_landscape")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    aligned = load_aligned(args.moving, args.target, "test", 2, "quick", version=args.phantom_version, labels=False)
    moving = aligned.images[args.moving][: args.pairs]
    target = aligned.images[args.target][: args.pairs]
    generator = torch.Generator().manual_seed(0)
    fields = random_spatial_displacement(tuple(moving.shape[2:]), len(moving), generator=generator)
    sims = {"mi": similarity("mi"), "mind": similarity("mind")}
    sims.update(imse_similarities(args.evaluators, args.moving, args.target))
    rows = []
    for name, sim in sims.items():
        for kind in ("shift", "paper"):
            rows += losses(name, sim, moving, target, fields, kind)
    table = pd.DataFrame(rows)
    stem = f"{args.moving}-{args.target}-v{args.phantom_version}"
    summary = summarise(table)
    text = summary.pivot_table(index=["kind", "size"], columns="similarity", values="rise_over_spread").round(2)
    detected = summary.pivot_table(index=["kind", "size"], columns="similarity", values="detected").round(2)
    md = (f"# Loss landscape, {args.moving}->{args.target}, phantom v{args.phantom_version}, {len(moving)} test pairs\n\n"
          "Loss rise above the aligned pair's loss, in standard deviations of the aligned pairs' loss\n"
          "(size: shift in px along every axis, or scale of the paper's random displacement):\n\n"
          f"{text.to_markdown()}\n\nFraction of pairs whose loss rose:\n\n{detected.to_markdown()}\n")
    return write_report(args.out, stem, md, table)


if __name__ == "__main__":
    main()
