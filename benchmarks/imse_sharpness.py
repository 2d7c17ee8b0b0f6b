"""Does an evaluator prefer resampled (blurred) images to the truth? IMSE loss of aligned pairs, blurred or not.

The paper's training pairs are two random warps of one image, so both channels are always resampled
(bilinear interpolation blurs them); a registration's target never is, and its moving image is not at
the identity. This probe compares, on aligned test pairs, the IMSE loss of the pair as it is with the
loss after resampling the moving image, the target or both half a pixel there and back (a blur with
no net displacement) and after a true half-pixel shift of the moving image. An evaluator whose
minimum sits at the truth scores every blur and every shift above the aligned pair.

``python benchmarks/imse_sharpness.py EVALUATOR [EVALUATOR ...] --moving t2 --target t1``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from imse_study.data.aligned import load_aligned  # noqa: E402
from imse_study.evaluator.use import foreground_mask  # noqa: E402
from imse_study.warp import warp  # noqa: E402
from probes import imse_similarities  # noqa: E402


def half_pixel(x: torch.Tensor, there_and_back: bool = True) -> torch.Tensor:
    """``x`` resampled half a voxel along every axis (and back, for a blur without displacement)."""
    u = torch.full((x.shape[0], x.dim() - 2, *x.shape[2:]), 0.5)
    moved = warp(x, u)
    return warp(moved, -u) if there_and_back else moved


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluators", nargs="+")
    parser.add_argument("--moving", default="t2")
    parser.add_argument("--target", default="t1")
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--phantom-version", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    aligned = load_aligned(args.moving, args.target, "test", 2, "quick", version=args.phantom_version, labels=False)
    moving, target = aligned.images[args.moving][: args.pairs], aligned.images[args.target][: args.pairs]
    mask = (foreground_mask(moving) | foreground_mask(target)).float()
    cases = {"moving blurred": (half_pixel(moving), target), "target blurred": (moving, half_pixel(target)),
             "both blurred": (half_pixel(moving), half_pixel(target)),
             "moving shifted 0.5 px": (half_pixel(moving, there_and_back=False), target)}
    lines = [f"# IMSE loss of aligned pairs, blurred or shifted ({args.moving}->{args.target}, phantom "
             f"v{args.phantom_version}, {len(moving)} test pairs)", "",
             "| evaluator | aligned | " + " | ".join(f"{name} (change)" for name in cases) + " |",
             "|---|---|" + "---|" * len(cases)]
    for path, sim in zip(args.evaluators, imse_similarities(args.evaluators, args.moving, args.target).values()):

        def loss(m: torch.Tensor, t: torch.Tensor) -> np.ndarray:
            with torch.no_grad():
                return np.array([float(sim(m[i:i + 1], t[i:i + 1], mask[i:i + 1])) for i in range(len(m))])

        base = loss(moving, target)
        changes = [float((loss(m, t) - base).mean()) for m, t in cases.values()]
        lines.append(f"| {path} | {base.mean():.4f} | " + " | ".join(f"{c:+.4f}" for c in changes) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    return text


if __name__ == "__main__":
    main()
