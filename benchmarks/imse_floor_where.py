"""Where on an ALIGNED pair does an evaluator report error: at tissue boundaries or inside tissues?

The floor (``imse_study.evaluator.floor``) is one number per modality; this probe splits it. For the
phantom's aligned test pairs (the evaluator's modality as reference, each modality as the other image,
itself included), mean |E| over the joint foreground is split into boundary voxels (the label changes
within a 3x3 / 3x3x3 neighbourhood) and interior voxels. If the excess of another modality over the
reference against itself sat at boundaries, the cause would be edge profiles that Shuffle Remap does
not imitate (a remap of a partial-volume mixture is not the mixture of remapped tissues); if it is
spread over both, it is the network's general imprecision.

``python benchmarks/imse_floor_where.py runs/phantom-t1-2d-v2-anchor2/evaluator.pt --phantom-version 2``
writes ``benchmarks/results/imse_floor_where/<evaluator>-v<version>.md`` (and ``.csv``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from imse_study.data.aligned import load_aligned  # noqa: E402
from imse_study.evaluator.pretrained import load_any  # noqa: E402
from imse_study.evaluator.use import error_map, foreground_mask  # noqa: E402
from imse_study.modalities import MODALITIES  # noqa: E402
from evaluator_transfer import evaluator_name  # noqa: E402
from probes import write_report  # noqa: E402


def boundary_mask(labels: np.ndarray) -> np.ndarray:
    """Voxels whose 3^ndim neighbourhood holds more than one label; ``labels`` (N, *S)."""
    size = (1,) + (3,) * (labels.ndim - 1)
    return ndimage.grey_dilation(labels, size=size) != ndimage.grey_erosion(labels, size=size)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluator", help="an evaluator name or checkpoint file")
    parser.add_argument("--phantom-version", type=int, default=None, help="default: the package's")
    parser.add_argument("--items", type=int, default=16, help="aligned test items")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "imse_floor_where")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, meta = load_any(args.evaluator)
    rows = []
    for other in MODALITIES:
        aligned = load_aligned(meta.modality, other, "test", meta.dim, meta.profile, version=args.phantom_version)
        reference, image = aligned.images[meta.modality][:args.items], aligned.images[other][:args.items]
        with torch.no_grad():
            error = error_map(model, reference, image).abs()[:, 0].numpy()
        foreground = (foreground_mask(reference) | foreground_mask(image))[:, 0].numpy()
        edges = boundary_mask(aligned.labels[meta.modality][:args.items, 0].numpy()) & foreground
        inside = foreground & ~edges
        rows.append({"other": other, "items": len(reference), "mean_abs_e": error[foreground].mean(),
                     "boundary": error[edges].mean(), "interior": error[inside].mean(),
                     "boundary_share_of_voxels": edges.sum() / foreground.sum(),
                     "boundary_share_of_error": error[edges].sum() / error[foreground].sum()})
    table = pd.DataFrame(rows).round(4)
    name = evaluator_name(args.evaluator)
    version = args.phantom_version or "default"
    md = (f"# Where {name} reports error on aligned pairs (phantom v{version}, reference {meta.modality})\n\n"
          f"{table.to_markdown(index=False)}\n\nCommand: `python benchmarks/imse_floor_where.py "
          f"{' '.join(sys.argv[1:] if argv is None else argv)}`\n")
    return write_report(args.out, f"{name}-v{version}", md, table)


if __name__ == "__main__":
    main()
