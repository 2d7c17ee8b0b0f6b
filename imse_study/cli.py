"""The ``imse-study`` command line."""

from __future__ import annotations

import argparse
import errno
import math
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import numpy as np

from imse_study.config import PROFILE_NAMES
from imse_study.modalities import KINDS, MR, T1


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
                        "epochs reached, so its command reproduces the run (default: no limit)")


_RECIPE_FLAGS = ("arch", "lr_schedule", "warmup_steps", "schedule_epochs", "patience", "min_delta", "appearance",
                 "precision", "aligned_fraction", "anchor_sides", "init_weights")


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
                   help="stop after this many epochs without a better validation L1; the best becomes the evaluator "
                        "(default: no early stop)")
    p.add_argument("--min-delta", type=float, help="how much lower the validation L1 must be to count (default 0)")
    p.add_argument("--appearance", choices=("none", "mild", "strong"),
                   help="randomise the training modality's look: bias field, gamma, blur, resolution, noise "
                        "(default none)")
    p.add_argument("--precision", choices=("float32", "bfloat16"),
                   help="float32 (default) or bfloat16 autocast of the training forward pass")
    p.add_argument("--aligned-fraction", type=float,
                   help="share of training pairs anchored at the truth: an unresampled reference and the other "
                        "image moved a little or not at all (default 0, the paper's pairs)")
    p.add_argument("--anchor-sides", choices=("reference", "both"),
                   help="which image an anchored pair keeps unresampled: the reference (default) or, for half "
                        "of them, the other image (the moving image is of the evaluator's modality)")
    p.add_argument("--init-weights", metavar="CHECKPOINT",
                   help="start from this evaluator's weights (fine-tuning; same --arch and --width)")
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

    from imse_study.registration.learned import train_registration

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
    from imse_study.preflight import staged_folder
    from imse_study.registration.files import register_files, summary_text

    inputs = (args.moving, args.target, args.moving_labels, args.target_labels)
    with staged_folder(args.output, inputs) as folder:  # a failed run leaves no partial folder
        summary = register_files(
            args.moving, args.target, folder, similarity=args.similarity, evaluator=args.evaluator,
            moving_modality=args.moving_modality, target_modality=args.target_modality,
            moving_labels=args.moving_labels, target_labels=args.target_labels, iterations=args.iterations,
            mode=args.mode, smooth_weight=args.smooth_weight, precision=args.precision,
            dim=None if args.dim == "auto" else int(args.dim), flips=args.flips,
        )
    print(summary_text(summary, args.output))
    return 0


def _cmd_evaluators(args: argparse.Namespace) -> int:
    from imse_study.evaluator.floor import evaluator_table

    print(evaluator_table())
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
    from imse_study.evaluator.floor import ERROR_UNITS, SIGN_MEANING, foreground_score, load_floor, reading

    model, meta, reference, other, affine, spacing = _load_pair(args, "other")
    error = error_map_array(model, reference, other, meta.dim, affine=affine, evaluator_spacing=spacing)
    save_nifti(args.output, error, affine)
    score = foreground_score(reference, other, error)
    print(f"mean |E| {score:.4f} over the joint foreground ({np.abs(error).mean():.4f} over the whole image): "
          f"{reading(score, load_floor(args.evaluator), args.other_modality)}")
    print(f"legend: {ERROR_UNITS}; {SIGN_MEANING}")
    print(f"error map written to {args.output}")
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    from imse_study.data.io import save_nifti
    from imse_study.evaluator.apply import translate_array

    model, meta, reference, source, affine, spacing = _load_pair(args, "source")
    save_nifti(args.output, translate_array(model, reference, source, meta.dim, affine=affine,
                                            evaluator_spacing=spacing), affine)
    print(f"{args.source} translated into the {meta.modality} contrast of {args.reference}: {args.output}")
    return 0


def _cmd_qa(args: argparse.Namespace) -> int:
    from imse_study.qa.assess import assess_files

    if args.pairs is not None:
        return _cmd_qa_cohort(args)

    result = assess_files(args.moved, args.target, args.output, evaluator=args.evaluator,
                          moved_modality=args.moved_modality, target_modality=args.target_modality,
                          labels=args.labels, overwrite=args.overwrite)
    print(result.summary())
    print(f"results in {args.output}: error.nii.gz, qa.png, qa.json")
    return 0


def _cmd_qa_cohort(args: argparse.Namespace) -> int:
    from imse_study.qa.cohort import read_pairs, run_cohort

    pairs = read_pairs(args.pairs, args.moved_modality, args.target_modality)
    table = run_cohort(pairs, args.output, evaluator=args.evaluator, workers=args.workers, scheduler=args.scheduler,
                       overwrite=args.overwrite)
    failed = int((table["status"] != "ok").sum())
    flagged = int((table["flagged"].astype(str).str.lower() == "true").sum())
    print(f"{len(table)} pairs scored worst first: {flagged} likely failed (p_failed >= 0.5), {failed} could not be "
          f"scored (see their error)")
    print(f"results in {args.output}: qa.csv, index.html, pairs/<id>/")
    return 0


def _cmd_qa_calibrate(args: argparse.Namespace) -> int:
    import torch

    from imse_study.qa.calibration import calibrate_evaluator, calibration_path

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    calibration = calibrate_evaluator(args.evaluator, args.other_modality, profile=args.profile,
                                      dataset=args.dataset, root=args.root, limit=args.items, seed=args.seed)
    calibration.save(args.output)
    check = calibration.check["test"]
    print(f"calibrated {args.evaluator} ({calibration.reference_modality} vs {calibration.other_modality}) on "
          f"{calibration.fit['train_pairs']} + {calibration.fit['val_pairs']} pairs in "
          f"{time.perf_counter() - start:.0f} s; on {check['pairs']} held-out pairs: |Spearman| "
          f"{check['spearman_abs']:.3f}, failure AUC {check['failure_auc']:.3f}, within 1 mm "
          f"{check['within_1mm']:.0%}, interval coverage {check['interval_coverage']:.0%}")
    print(f"calibration: {args.output}")
    expected = calibration_path(args.evaluator)
    if Path(args.output).absolute() != expected.absolute():
        print(f"note: qa reads the calibration of {args.evaluator} from {expected}; put it there", file=sys.stderr)
    return 0


def _evaluator_inputs(p: argparse.ArgumentParser, second: str, help_second: str) -> None:
    p.add_argument("reference", type=Path, help="NIfTI image in the modality the evaluator was trained on")
    p.add_argument(second, type=Path, help=help_second)
    p.add_argument("--evaluator", required=True,
                   help="a shipped evaluator by name (e.g. phantom-t1-2d) or a checkpoint file (.pt)")
    p.add_argument("-o", "--output", required=True, type=Path, help="output NIfTI file")
    p.add_argument("--other-modality", default=MR, choices=KINDS,
                   help="how to scale the second image to [-1, 1] if it is not already (default mr)")


# ------------------------------------------------------------------------------------------------
# Arguments checked as they are parsed


def _at_least(low: float, whole: bool = True, strict: bool = False) -> Callable[[Any], str | None]:
    """A rule for a number flag: finite and >= ``low`` (> ``low`` when ``strict``)."""
    expected = f"expected {'a whole number' if whole else 'a number'} {'>' if strict else '>='} {low:g}"

    def problem(value: float) -> str | None:
        ok = math.isfinite(value) and (value > low if strict else value >= low)
        return None if ok else expected

    return problem


def _device_problem(name: str) -> str | None:
    """Why torch cannot use device ``name`` here (None when it can)."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return "expected a torch device such as cpu, cuda or cuda:0"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            return f"{why}; use --device cpu, or leave --device out"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"only {torch.cuda.device_count()} CUDA GPU(s) are visible (cuda:0 ...)"
    elif device.type == "mps" and not torch.backends.mps.is_available():
        return "the Apple GPU (mps) is not available; use --device cpu, or leave --device out"
    elif device.type not in ("cpu", "cuda", "mps"):
        return f"device type {device.type!r} is not supported; use cpu or cuda"
    return None


def _weight_problem(item: tuple[str, float]) -> str | None:
    return None if math.isfinite(item[1]) and item[1] >= 0 else "a loss weight must be a number >= 0"


# Every flag of every command with a range, by destination: numbers are validated at parse time,
# so that ``--threads -1`` or ``--smooth-weight -1`` is refused before anything starts.
_FLAG_RULES: dict[str, Callable[[Any], str | None]] = {
    **dict.fromkeys(("threads", "epochs", "steps_per_epoch", "batch_size", "width", "n_blocks", "iterations", "items"),
                    _at_least(1)),
    "seed": _at_least(0),
    "n_range": _at_least(0),
    "warmup_steps": _at_least(0),
    "schedule_epochs": _at_least(1),
    "patience": _at_least(1),
    "min_delta": _at_least(0, whole=False),
    "lr": _at_least(0, whole=False, strict=True),
    "time_limit": _at_least(0, whole=False, strict=True),
    "smooth_weight": _at_least(0, whole=False),
    "weight": _weight_problem,
    "device": _device_problem,
}


def _checked(convert: Callable[[str], Any] | None, problem_of: Callable[[Any], str | None]) -> Callable[[str], Any]:
    """An argparse type: ``convert`` (argparse's message if it fails), then the flag's rule."""
    def parse(text: str) -> Any:
        value = convert(text) if convert is not None else text
        problem = problem_of(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
        return value

    parse.__name__ = getattr(convert, "__name__", "value")  # argparse names it in "invalid int value"
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse with the flags' rules applied and one-line errors (the problem and where help is)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        rule = _FLAG_RULES.get(action.dest)
        if rule is not None:
            action.type = _checked(action.type, rule)
        return action

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _shown_default(action: argparse.Action) -> bool:
    """Whether ``--help`` should name the flag's default: a value, not None, a switch or an empty list."""
    default = action.default
    return bool(action.option_strings) and not (default is None or isinstance(default, bool)
                                                or default == argparse.SUPPRESS or default == [])


class _DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that shows every flag's default: ``(default: X)`` added unless the help already says it.

    argparse's ArgumentDefaultsHelpFormatter would also print ``(default: None)`` for flags whose
    absence means "the profile's" or "not given", and repeat defaults the text already names.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if _shown_default(action) and "default" not in text.lower():
            default = action.default
            value = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else "%(default)s"
            text = f"{text} (default: {value})".strip()
        return text


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every default in ``parser``'s help, flags without a help text included."""
    parser.formatter_class = _DefaultsHelpFormatter
    for action in parser._actions:
        if action.help is None and _shown_default(action):
            action.help = ""  # the formatter only reads help strings that are not None
            action.help = _DefaultsHelpFormatter("")._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from imse_study.data.appearance import VARIANTS

    parser = _Parser(
        prog="imse-study",
        description="IMSE (CVPR 2023) reproduced as a tool: phantom data, evaluator, registration.",
    )
    debug_help = "show the traceback of an error (by default an error is one line)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("evaluators", help="list the shipped evaluators: modality, dimension, spacing, noise, "
                                          "network, training steps and floor (mean |E| of aligned test pairs)")
    p.set_defaults(func=_cmd_evaluators)

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
    p.add_argument("--modality", default=T1, help="the one modality to train on (t1, t2, pd, ct, ...)")
    p.add_argument("--dim", type=int, choices=(2, 3), default=2)
    p.add_argument("--profile", choices=PROFILE_NAMES, default="quick")
    p.add_argument("--noise", choices=("shuffle_remap", "bezier", "none"), default="shuffle_remap")
    p.add_argument("--n-range", type=int, nargs=2, default=(2, 50), metavar=("MIN", "MAX"),
                   help="Shuffle Remap control points N drawn from [MIN, MAX] (default 2 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (initial weights, data order, noise)")
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
    p.add_argument("--seed", type=int, default=0, help="random seed (initial weights, data order, noise)")
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, log.csv)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (same settings)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run that OUT holds (without it, a folder with a run is refused)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
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
    p.add_argument("--iterations", type=int, default=200,
                   help="optimiser steps in all (multires: over the affine stage and 3 levels)")
    p.add_argument("--mode", choices=("multires", "paper"), default="multires",
                   help="multires (affine, then a coarse-to-fine field; default) or the paper's single-level field")
    p.add_argument("--smooth-weight", type=float, help="weight of the smoothness term (default 5)")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="imse: bfloat16 runs the evaluator under autocast, about 2x faster on recent CPUs")
    p.add_argument("--flips", choices=("none", "point", "axes"), default="none",
                   help="imse: average the evaluator over mirror images of the pair (point: 2x the time, axes: "
                        "2**dim x), which cancels its sub-pixel direction bias")
    p.add_argument("--dim", choices=("auto", "2", "3"), default="auto",
                   help="2: slice by slice (never through-plane), 3: in 3D; auto (default): 2 for a stack of 2D "
                        "slices (fewer than 8, or slices at least 2x as far apart as the in-plane voxels), else 3")
    p.set_defaults(func=_cmd_register)

    from imse_study.baselines.train import add_translator_arguments, run_translator

    p = sub.add_parser("train-translator", help="train a CycleGAN or RegGAN translator (the paper's baselines)")
    add_translator_arguments(p)
    p.set_defaults(func=run_translator)

    p = sub.add_parser("error-map", help="pixel-wise spatial error E(reference, other) as NIfTI")
    _evaluator_inputs(p, "other", "NIfTI image of any modality (resampled onto the reference's grid if needed)")
    p.set_defaults(func=_cmd_error_map)

    p = sub.add_parser("translate", help="translate SOURCE into the reference's contrast: ref - E(ref, source)")
    _evaluator_inputs(p, "source", "NIfTI image to translate (resampled onto the reference's grid if needed)")
    p.set_defaults(func=_cmd_translate)
    p = sub.add_parser("qa", help="how well is MOVED registered to TARGET? error map, misalignment estimate, "
                                  "failure probability, regions (no ground truth needed)")
    p.add_argument("moved", nargs="?", type=Path, help="the registered (moved) NIfTI image")
    p.add_argument("target", nargs="?", type=Path, help="the target NIfTI image (MOVED is resampled onto its grid "
                                                        "if needed)")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder: error.nii.gz, qa.png, qa.json")
    p.add_argument("--evaluator", default="auto",
                   help="auto (default: the shipped evaluator of the target's modality, else the moved image's), a "
                        "shipped name (e.g. phantom-t1-2d) or a .pt file")
    p.add_argument("--moved-modality", help="modality of MOVED (e.g. t1, t2, ct)")
    p.add_argument("--target-modality", help="modality of TARGET (e.g. t1, t2, ct)")
    p.add_argument("--labels", type=Path, help="label map of TARGET: the error per label instead of connected regions")
    p.add_argument("--overwrite", action="store_true", help="replace error.nii.gz, qa.png and qa.json in OUTPUT "
                                                            "(with --pairs: score every pair again)")
    p.add_argument("--pairs", type=Path, help="a cohort instead of MOVED TARGET: a CSV with columns moved, target "
                                              "(optional moved_modality, target_modality, labels, id; paths relative "
                                              "to the CSV's folder); writes OUTPUT/qa.csv, OUTPUT/index.html and "
                                              "OUTPUT/pairs/<id>/, and resumes where a stopped run left off")
    p.add_argument("--workers", type=int, help="with --pairs: local worker processes (default: the CPU count)")
    p.add_argument("--scheduler", help="with --pairs: run on an existing Dask cluster, e.g. tcp://HOST:8786 (needs "
                                       "pip install distributed)")
    p.set_defaults(func=_cmd_qa)

    p = sub.add_parser("qa-calibrate", help="calibrate an evaluator's QA score against known misalignments "
                                            "(phantom by default)")
    _add_data_flags(p)
    p.add_argument("--evaluator", required=True, help="a shipped evaluator name or a .pt file")
    p.add_argument("-o", "--output", required=True, type=Path,
                   help="the calibration file; qa reads EVALUATOR.qa.json beside the .pt file")
    p.add_argument("--other-modality", help="the modality paired with the evaluator's (default: t2 for a t1 "
                                            "evaluator, t1 for a ct one)")
    p.add_argument("--profile", choices=PROFILE_NAMES, default="quick", help="phantom sizes and subject counts")
    p.add_argument("--items", type=int, help="at most this many items per split (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--overwrite", action="store_true", help="replace an existing calibration file")
    p.set_defaults(func=_cmd_qa_calibrate)

    for p in sub.choices.values():  # --debug also after the command's name; every default in --help
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
        _show_defaults(p)
    return parser


# ------------------------------------------------------------------------------------------------
# Errors: one line that says what to do


_SHAPE_ERRORS = ("padding size should be less", "kernel size can't be greater",
                 "expected more than 1 spatial element", "input image is smaller than kernel")
_DEVICE_ERRORS = ("out of memory", "cuda", "not compiled with", "no kernel image", "device-side")


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _expected_message(err: BaseException) -> str | None:
    """The one-line message of an error a user's input or machine can cause; None for a bug.

    Expected: ValueError (bad input, the package's own messages), OSError (files, permissions,
    disk), FloatingPointError (a loss became NaN), MemoryError, and torch's RuntimeErrors about
    devices, memory or an input too small for a network. Anything else is a bug to report.
    """
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        hint = {errno.ENOSPC: "; free some space or choose another folder",
                errno.EACCES: "; check the permissions or choose another place",
                errno.EPERM: "; check the permissions or choose another place",
                errno.EROFS: "; the file system is read-only: choose another place"}.get(err.errno, "")
        return f"{err.filename}: {err.strerror}{hint}"
    text = _one_line(str(err)) or type(err).__name__
    if isinstance(err, (ValueError, RuntimeError)) and any(p in text.lower() for p in _SHAPE_ERRORS):
        return f"{text} (the images are too small, or of the wrong dimension, for this network)"
    if isinstance(err, (ValueError, OSError, FloatingPointError)):
        return text
    if isinstance(err, MemoryError):
        return f"not enough memory ({text}); use smaller images or a machine with more memory"
    if isinstance(err, RuntimeError) and any(p in text.lower() for p in _DEVICE_ERRORS):
        return f"{text} (try --device cpu, a smaller --batch-size or smaller images)"
    return None


def _caused_by_interrupt(err: BaseException) -> bool:
    """Whether ``err`` wraps a KeyboardInterrupt (Python turns one raised in ``__set_name__`` during a
    lazy import into a RuntimeError, for instance)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


@contextmanager
def _warnings_on_one_line(enabled: bool) -> Iterator[None]:
    """Python warnings printed as one ``warning: ...`` line while a command runs (not with --debug).

    Only the format changes, so that warnings recorded by a caller (``pytest.warns``) stay recorded.
    """
    original = warnings.formatwarning
    if enabled:
        warnings.formatwarning = lambda message, *args, **kwargs: f"warning: {_one_line(str(message))}\n"
    try:
        yield
    finally:
        warnings.formatwarning = original


def main(argv: list[str] | None = None) -> int:
    """Run ``imse-study``; the exit status: 0 done, 2 a one-line error, 1 a bug, 130 interrupted.

    Every expected failure (see :func:`_expected_message`) is one line on stderr that says what
    to do; ``--debug`` shows the traceback instead.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed on one line
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 2
    from imse_study.preflight import check_command

    def say(text: str) -> None:
        print(f"imse-study {args.command}: {text}", file=sys.stderr)

    with _warnings_on_one_line(not args.debug):
        try:
            check_command(args)  # inputs, outputs, options and the evaluator, before any work
            return args.func(args)
        except KeyboardInterrupt:
            if args.debug:
                raise
            say("interrupted")
            return 130
        except Exception as err:  # noqa: BLE001 - every error becomes one line unless --debug
            if args.debug:
                raise
            if _caused_by_interrupt(err):  # Ctrl-C inside an import or a class body arrives wrapped
                say("interrupted")
                return 130
            message = _expected_message(err)
            if message is not None:
                say(f"error: {message}")
                return 2
            say(f"unexpected error: {type(err).__name__}: {_one_line(str(err))} "
                "(a bug: run with --debug for the traceback and report it)")
            return 1


if __name__ == "__main__":
    sys.exit(main())
