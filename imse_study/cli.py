"""The ``imse-study`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from imse_study.config import PROFILE_NAMES


def _cmd_phantom(args: argparse.Namespace) -> int:
    from imse_study.data.phantom import LABELS, load_phantom
    from imse_study.data.phantom_export import write_phantom_nifti

    start = time.perf_counter()
    written = write_phantom_nifti(args.out, split=args.split, dim=args.dim, profile=args.profile)
    subjects = sum(1 for p in written if p.name.endswith("_labels.nii.gz"))
    print(f"wrote {len(written)} files for {subjects} {args.split} subjects ({args.dim}D, profile "
          f"{args.profile}) to {args.out} in {time.perf_counter() - start:.1f} s")
    if args.montage:
        from imse_study.viz import phantom_montage, save_figure

        sets = {"2D axial": load_phantom(args.split, 2, args.profile), "3D": load_phantom(args.split, 3, args.profile)}
        path = save_figure(phantom_montage(sets, LABELS), args.montage)
        print(f"montage: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imse-study",
        description="IMSE (CVPR 2023) reproduced as a tool: phantom data, evaluator, registration.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("phantom", help="write the bundled multi-modal phantom as NIfTI files")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--dim", type=int, choices=(2, 3), default=2, help="2D slice stacks or 3D volumes")
    p.add_argument("--profile", choices=PROFILE_NAMES, default="quick", help="sizes and subject counts")
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    p.add_argument("--montage", type=Path, help="also save a PNG montage of every modality and the labels")
    p.set_defaults(func=_cmd_phantom)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"imse-study {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
