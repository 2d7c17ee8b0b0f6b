"""The ``imse-study`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from imse_study.config import PROFILE_NAMES


def _cmd_phantom(args: argparse.Namespace) -> int:
    from imse_study.data.phantom import LABELS, check_version, load_phantom
    from imse_study.data.phantom_export import montage_sets, write_phantom_nifti

    version = check_version(args.version, args.variant, args.split)  # a bad choice: one line, before any work
    start = time.perf_counter()
    written = write_phantom_nifti(args.out, split=args.split, dim=args.dim, profile=args.profile, version=version,
                                  variant=args.variant)
    subjects = sum(1 for p in written if p.name.endswith("_labels.nii.gz"))
    kind = f"version {version}" + (f", variant {args.variant}" if args.variant else "")
    print(f"wrote {len(written)} files for {subjects} {args.split} subjects ({args.dim}D, profile "
          f"{args.profile}, {kind}) to {args.out} in {time.perf_counter() - start:.1f} s")
    if args.montage:
        from imse_study.viz import phantom_montage, save_figure

        if version == 1 and args.variant is None:
            sets = {"2D axial": load_phantom(args.split, 2, args.profile), "3D": load_phantom(args.split, 3, args.profile)}
        else:
            sets = montage_sets(args.split, args.profile, version, (args.variant,) if args.variant else ())
        path = save_figure(phantom_montage(sets, LABELS), args.montage)
        print(f"montage: {path}")
    return 0


def _budget(args: argparse.Namespace, extra: tuple[str, ...] = ()) -> dict:
    """The training-budget overrides given on the command line (profile values where absent)."""
    return {k: getattr(args, k) for k in ("batch_size", "lr", "steps_per_epoch", *extra) if getattr(args, k) is not None}


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    """The data set to train on: the bundled phantom or a manifest data set and its folder."""
    p.add_argument("--dataset", default="phantom", help="phantom (bundled) or a manifest name")
    p.add_argument("--root", help="data folder of a manifest data set")


def _add_budget_flags(p: argparse.ArgumentParser, network_size: bool = False) -> None:
    """Flags that override the profile's training budget (e.g. a GPU-sized run) and the device."""
    p.add_argument("--epochs", type=int, help="number of epochs (default: the profile's)")
    p.add_argument("--steps-per-epoch", type=int, help="steps per epoch (default: the profile's)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the profile's)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: the profile's)")
    if network_size:
        p.add_argument("--width", type=int, help="channels of the first layer (default: the profile's)")
        p.add_argument("--blocks", dest="n_blocks", type=int, help="residual blocks (default: the profile's)")
    p.add_argument("--device", help="torch device, e.g. cuda or cpu (default: a GPU when there is one)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="stop after the epoch in which this many seconds run out; the checkpoint records the "
                        "epochs reached, so its command reproduces the run")


_RECIPE_FLAGS = ("arch", "lr_schedule", "warmup_steps", "schedule_epochs", "patience", "min_delta", "appearance",
                 "precision")


def _add_evaluator_recipe_flags(p: argparse.ArgumentParser) -> None:
    """The evaluator's opt-in recipe (absent: the profile's, i.e. the paper's recipe)."""
    p.add_argument("--arch", choices=("resnet", "unet"),
                   help="resnet: the paper's ResNet generator (default); unet: MONAI's BasicUNet")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"),
                   help="constant (default) or cosine: linear warm-up, then cosine decay over the planned epochs")
    p.add_argument("--warmup-steps", type=int, help="warm-up steps of the cosine schedule (default 0)")
    p.add_argument("--schedule-epochs", type=int,
                   help="epochs the cosine spans (default: --epochs); a --time-limit stop records it")
    p.add_argument("--patience", type=int,
                   help="stop after this many epochs without a better validation L1; the best becomes the evaluator")
    p.add_argument("--min-delta", type=float, help="how much lower the validation L1 must be to count (default 0)")
    p.add_argument("--appearance", choices=("none", "mild", "strong"),
                   help="randomise the training modality's look: bias field, gamma, blur, resolution, noise "
                        "(default none)")
    p.add_argument("--precision", choices=("float32", "bfloat16"),
                   help="float32 (default) or bfloat16 autocast of the training forward pass")
    p.add_argument("--phantom-version", type=int, help="generation of the bundled phantom (default: the loader's)")


def _cmd_train_evaluator(args: argparse.Namespace) -> int:
    import torch

    from imse_study.evaluator.train import train_evaluator

    if args.threads:
        torch.set_num_threads(args.threads)
    result = train_evaluator(
        args.out, modality=args.modality, dim=args.dim, profile=args.profile, noise=args.noise,
        n_range=tuple(args.n_range), seed=args.seed, resume=args.resume, dataset=args.dataset, root=args.root,
        epochs=args.epochs, device=args.device, budget=_budget(args, ("width", "n_blocks", *_RECIPE_FLAGS)),
        time_limit=args.time_limit, overwrite=args.overwrite, phantom_version=args.phantom_version,
    )
    if result.history:
        last = result.history[-1]
        summary = ", ".join(f"{k} {v:.3f}" for k, v in last.items() if k.startswith(("val_", "auc")))
        print(f"trained {result.steps} steps in {last['seconds']:.0f} s; {summary}")
    print(f"evaluator: {result.checkpoint}")
    return 0


def _cmd_train_registration(args: argparse.Namespace) -> int:
    import torch

    from imse_study.registration.train import train_registration

    if args.threads:
        torch.set_num_threads(args.threads)
    options = {}
    if args.evaluator:
        options["evaluator"] = args.evaluator
    if args.translator:
        options["translator"] = args.translator
    result = train_registration(
        args.out, args.similarity, args.moving, args.target, dim=args.dim, profile=args.profile,
        smooth_weight=args.smooth_weight, similarity_options=options, bidirectional=args.bidirectional,
        seed=args.seed, resume=args.resume, epochs=args.epochs, device=args.device, budget=_budget(args),
        time_limit=args.time_limit, overwrite=args.overwrite,
        dataset=args.dataset, root=args.root,
    )
    if result.history:
        last = result.history[-1]
        dice = (f"; validation Dice {last['val_dice_initial']:.3f} -> {last['val_dice']:.3f}" if "val_dice" in last
                else " (no validation Dice: the data set has no label maps)")
        print(f"trained {result.steps} steps in {last['seconds']:.0f} s{dice}")
    print(f"network: {result.checkpoint}")
    return 0


def _cmd_register(args: argparse.Namespace) -> int:
    from imse_study.registration.files import register_files, summary_text

    summary = register_files(
        args.moving, args.target, args.output, similarity=args.similarity, evaluator=args.evaluator,
        moving_modality=args.moving_modality, target_modality=args.target_modality,
        moving_labels=args.moving_labels, target_labels=args.target_labels, iterations=args.iterations,
        mode=args.mode, smooth_weight=args.smooth_weight, precision=args.precision,
        dim=None if args.dim == "auto" else int(args.dim),
    )
    print(summary_text(summary))
    print(f"results in {args.output}: warped.nii.gz, displacement.nii.gz, summary.json")
    return 0


def _load_pair(args: argparse.Namespace, second: str):
    """The evaluator, the reference and the other image scaled to [-1, 1] on the reference's grid (the
    other one resampled through both affines if it lies elsewhere), the reference's affine and the
    evaluator's training spacing."""
    from imse_study.data.geometry import resample_onto, same_grid
    from imse_study.data.io import load_nifti
    from imse_study.evaluator.apply import to_unit_range
    from imse_study.evaluator.checkpoint import evaluator_spacing
    from imse_study.evaluator.pretrained import load_any

    model, meta = load_any(args.evaluator)
    other_path = getattr(args, second)
    reference, affine, _ = load_nifti(args.reference)
    other, other_affine, _ = load_nifti(other_path)
    if reference.ndim != other.ndim:
        raise ValueError(f"{args.reference} is {reference.ndim}D and {other_path} {other.ndim}D; give two 2D or "
                         "two 3D images")
    reference = to_unit_range(reference, meta.modality, name=str(args.reference))
    other = to_unit_range(other, args.other_modality, name=str(other_path))
    if not same_grid(reference.shape, affine, other.shape, other_affine):
        other = resample_onto(other, other_affine, reference.shape, affine, cval=-1.0)
        print(f"note: {other_path} resampled onto the grid of {args.reference} (linear, through both affines)",
              file=sys.stderr)
    return model, meta, reference, other, affine, evaluator_spacing(meta)


def _cmd_error_map(args: argparse.Namespace) -> int:
    from imse_study.data.io import save_nifti
    from imse_study.evaluator.apply import error_map_array

    model, meta, reference, other, affine, spacing = _load_pair(args, "other")
    error = error_map_array(model, reference, other, meta.dim, affine=affine, evaluator_spacing=spacing)
    save_nifti(args.output, error, affine)
    print(f"mean |E| {np.abs(error).mean():.4f}; error map written to {args.output}")
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    from imse_study.data.io import save_nifti
    from imse_study.evaluator.apply import translate_array

    model, meta, reference, source, affine, spacing = _load_pair(args, "source")
    save_nifti(args.output, translate_array(model, reference, source, meta.dim, affine=affine,
                                            evaluator_spacing=spacing), affine)
    print(f"{args.source} translated into the {meta.modality} contrast of {args.reference}: {args.output}")
    return 0


def _evaluator_inputs(p: argparse.ArgumentParser, second: str, help_second: str) -> None:
    p.add_argument("reference", type=Path, help="NIfTI image in the modality the evaluator was trained on")
    p.add_argument(second, type=Path, help=help_second)
    p.add_argument("--evaluator", required=True,
                   help="a shipped evaluator by name (e.g. phantom-t1-2d) or a checkpoint file (.pt)")
    p.add_argument("-o", "--output", required=True, type=Path, help="output NIfTI file")
    p.add_argument("--other-modality", default="mr", choices=("mr", "ct"),
                   help="how to scale the second image to [-1, 1] if it is not already (default mr)")


def build_parser() -> argparse.ArgumentParser:
    from imse_study.data.appearance import VARIANTS

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
    p.add_argument("--version", type=int, help="phantom version: 1 (the default, what the shipped models know) or 2 "
                                               "(literature contrasts at 1.5 and 3 T, per-subject appearance)")
    p.add_argument("--variant", choices=tuple(VARIANTS), metavar="NAME",
                   help=f"version 2, test split: a held-out appearance ({', '.join(VARIANTS)})")
    p.set_defaults(func=_cmd_phantom)

    p = sub.add_parser("train-evaluator", help="train an IMSE evaluator on one modality (Eq. 5)")
    _add_data_flags(p)
    p.add_argument("--modality", default="t1", help="the one modality to train on (t1, t2, pd, ct, ...)")
    p.add_argument("--dim", type=int, choices=(2, 3), default=2)
    p.add_argument("--profile", choices=PROFILE_NAMES, default="quick")
    p.add_argument("--noise", choices=("shuffle_remap", "bezier", "none"), default="shuffle_remap")
    p.add_argument("--n-range", type=int, nargs=2, default=(2, 50), metavar=("MIN", "MAX"),
                   help="Shuffle Remap control points N drawn from [MIN, MAX] (default 2 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, log.csv)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (same settings)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run that OUT holds (without it, a folder with a run is refused)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; use 1 when "
                   "other work shares the cores)")
    _add_budget_flags(p, network_size=True)
    _add_evaluator_recipe_flags(p)
    p.set_defaults(func=_cmd_train_evaluator)

    p = sub.add_parser("train-registration", help="train VoxelMorph with a similarity (Eq. 6 + 7)")
    _add_data_flags(p)
    p.add_argument("--similarity", required=True, help="ncc, lncc, mi, mind, mae, imse or translated_mae")
    p.add_argument("--moving", required=True, help="moving modality, e.g. t1")
    p.add_argument("--target", required=True, help="target modality, e.g. t2")
    p.add_argument("--dim", type=int, choices=(2, 3), default=2)
    p.add_argument("--profile", choices=PROFILE_NAMES, default="quick")
    p.add_argument("--smooth-weight", type=float, default=1.0, help="lambda of Eq. 7 (default 1)")
    p.add_argument("--evaluator", help="for imse: a shipped evaluator name or a checkpoint file")
    p.add_argument("--translator", help="for translated_mae: a translator checkpoint (train-translator)")
    p.add_argument("--bidirectional", action="store_true", help="one network for both directions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, log.csv)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (same settings)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run that OUT holds (without it, a folder with a run is refused)")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    _add_budget_flags(p)
    p.set_defaults(func=_cmd_train_registration)

    p = sub.add_parser("register", help="register MOVING onto TARGET (classic optimisation, Eq. 1)")
    p.add_argument("moving", type=Path, help="moving NIfTI image")
    p.add_argument("target", type=Path, help="target NIfTI image (MOVING is resampled onto its grid if needed)")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    p.add_argument("--similarity", default="mi", help="mi (default), mind, lncc, ncc, mae, imse or imse_robust (IMSE + MIND)")
    p.add_argument("--evaluator", help="for imse: a shipped evaluator name (e.g. phantom-ct-2d) or a .pt file")
    p.add_argument("--moving-modality", default="mr", help="modality of MOVING (e.g. t1, t2, ct; default mr)")
    p.add_argument("--target-modality", default="mr", help="modality of TARGET (default mr)")
    p.add_argument("--moving-labels", type=Path, help="label map of MOVING: warped too")
    p.add_argument("--target-labels", type=Path, help="label map of TARGET: Dice before/after")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--mode", choices=("multires", "paper"), default="multires",
                   help="multires (affine, then a coarse-to-fine field; default) or the paper's single-level field")
    p.add_argument("--smooth-weight", type=float, help="weight of the smoothness term (default 5)")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="imse: bfloat16 runs the evaluator under autocast, about 2x faster on recent CPUs")
    p.add_argument("--dim", choices=("auto", "2", "3"), default="auto",
                   help="2: slice by slice (never through-plane), 3: in 3D; auto (default): 2 for a stack of 2D "
                        "slices (fewer than 8, or slices at least 2x as far apart as the in-plane voxels), else 3")
    p.set_defaults(func=_cmd_register)

    from imse_study.baselines.translator import add_translator_arguments, run_translator

    p = sub.add_parser("train-translator", help="train a CycleGAN or RegGAN translator (the paper's baselines)")
    add_translator_arguments(p)
    p.set_defaults(func=run_translator)

    p = sub.add_parser("error-map", help="pixel-wise spatial error E(reference, other) as NIfTI")
    _evaluator_inputs(p, "other", "NIfTI image of any modality (resampled onto the reference's grid if needed)")
    p.set_defaults(func=_cmd_error_map)

    p = sub.add_parser("translate", help="translate SOURCE into the reference's contrast: ref - E(ref, source)")
    _evaluator_inputs(p, "source", "NIfTI image to translate (resampled onto the reference's grid if needed)")
    p.set_defaults(func=_cmd_translate)
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
