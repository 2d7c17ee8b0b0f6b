"""Checks that run before a command does any work, and a staged output folder.

A command of ``imse-study`` must fail in its first second, not after a 75 s optimisation: every
input readable and a valid image (on the right grid for a label map), every option used by the
command it is given to, every output creatable, writable and distinct from every input, and the
evaluator loadable and able to read images of that size. :func:`check_command` runs these for
the parsed arguments; errors are ValueError/OSError with one line that says what to do.

The images are read here once more than the command itself reads them (milliseconds for a 2D
stack, about a second for a large volume): that keeps the commands' loading code as it is and
makes the checks complete (a constant image or a non-integer label map is only seen in the voxels).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from imse_study.data.io import check_image_content, load_labels, load_nifti, nifti_suffix

# What ``register`` writes into its output folder (registration/files.py); an input of the same
# name in that folder would be overwritten.
REGISTER_OUTPUTS = ("warped.nii.gz", "displacement.nii.gz", "warped_labels.nii.gz", "summary.json")
_AFFINE_TOLERANCE_MM = 1e-3
_PROBE_SIDE = 16  # the evaluator is tried on at most 16 voxels per axis (a multiple of 4 and 8)


# ------------------------------------------------------------------------------------------------
# Options that a command would ignore or misread


def _similarity_name(args: argparse.Namespace) -> str:
    from imse_study.registration.similarity import similarity_names

    name = str(args.similarity).strip().lower()
    if name not in similarity_names():
        raise ValueError(f"unknown similarity {args.similarity!r}; choose from {', '.join(similarity_names())}")
    return name


def check_register_options(args: argparse.Namespace) -> None:
    """``register``: options that its similarity would ignore are refused, not dropped."""
    from imse_study.registration.similarity import EVALUATOR_SIMILARITIES

    name = _similarity_name(args)
    if name in EVALUATOR_SIMILARITIES and not args.evaluator:
        raise ValueError(f"--similarity {name} needs --evaluator (a shipped name such as phantom-t1-2d, or a .pt file)")
    if name not in EVALUATOR_SIMILARITIES and args.evaluator:
        raise ValueError(f"--evaluator is used only by --similarity {' or '.join(EVALUATOR_SIMILARITIES)}, not "
                         f"{name}; drop --evaluator or choose an IMSE similarity")
    if args.precision != "float32" and name != "imse":
        raise ValueError(f"--precision {args.precision} applies only to --similarity imse (the evaluator under "
                         f"autocast), not {name}; drop --precision")
    if args.target_labels and not args.moving_labels:
        raise ValueError("--target-labels needs --moving-labels: Dice compares the warped moving labels with the "
                         "target's; give both, or neither")


def check_train_registration_options(args: argparse.Namespace) -> None:
    """``train-registration``: --evaluator only for IMSE, --translator only for translated_mae."""
    from imse_study.registration.similarity import EVALUATOR_SIMILARITIES

    name = _similarity_name(args)
    if args.evaluator and name not in EVALUATOR_SIMILARITIES:
        raise ValueError(f"--evaluator is used only by --similarity {' or '.join(EVALUATOR_SIMILARITIES)}, not "
                         f"{name}; drop --evaluator")
    if args.translator and name != "translated_mae":
        raise ValueError(f"--translator is used only by --similarity translated_mae, not {name}; drop --translator")


# ------------------------------------------------------------------------------------------------
# Inputs


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (the same resolved path, or hard/soft links to it)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def checked_image(path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    """Read an input image fully (NIfTI, size limit, affine, NaN, content); its ``(shape, affine)``."""
    data, affine, _ = load_nifti(path)
    check_image_content(data, path)
    return data.shape, affine


def check_labels_grid(labels: Path, image: Path, grid: tuple[tuple[int, ...], np.ndarray]) -> None:
    """A label map must hold integers on the grid (shape and affine) of the image it labels."""
    data, affine = load_labels(labels)
    shape, image_affine = grid
    if data.shape != shape:
        raise ValueError(f"{labels} has shape {data.shape} but {image} has {shape}: a label map must be on its "
                         "image's grid; resample it with nearest-neighbour interpolation first")
    if not np.allclose(affine, image_affine, atol=_AFFINE_TOLERANCE_MM):
        raise ValueError(f"{labels} and {image} have the same shape but different affines (voxel to mm): a label "
                         "map must be on its image's grid; check that they belong together")


# ------------------------------------------------------------------------------------------------
# Outputs


def check_not_an_input(output: Path, inputs: Iterable[Path | None], flag: str = "-o") -> None:
    """Refuse an output that would overwrite one of the command's inputs."""
    for path in inputs:
        if path is not None and _same_file(Path(output), Path(path)):
            raise ValueError(f"{flag} {output} is the input {path}: it would be overwritten; choose another output")


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_writable_folder(folder: Path, flag: str = "-o") -> None:
    """``folder`` (existing, or created later with its parents) must take new files: tried, not guessed
    (permission bits say nothing for root, read-only mounts or ACLs)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag} {folder} exists and is not a folder; choose a folder")
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise ValueError(f"{flag} {folder}: {base} is a file, so no folder can be made there; choose another place")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".imse-study-write-test.")
    except OSError as err:
        raise ValueError(f"{flag} {folder}: cannot write in {base} ({err.strerror}); choose a folder you may "
                         "write to") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(output: Path, inputs: Iterable[Path | None]) -> None:
    """A NIfTI output file: a .nii/.nii.gz name, not a folder, not an input, in a writable folder."""
    nifti_suffix(output)
    if output.is_dir():
        raise ValueError(f"-o {output} is a folder; give a file name ending in .nii.gz or .nii")
    check_not_an_input(output, inputs)
    check_writable_folder(output.parent)


@contextmanager
def staged_folder(out: str | Path, inputs: Iterable[Path | None] = ()) -> Iterator[Path]:
    """A temporary folder whose files land in ``out`` only if the block succeeds.

    A new ``out`` is made by renaming the temporary folder (made beside it) at the end; an existing
    ``out`` receives the files one by one (the temporary folder is made inside it, so the renames
    stay on one file system). On failure the temporary folder and any parent folders made for it
    are removed, so a failed run leaves nothing behind; a file that would replace one of ``inputs``
    is refused before anything moves.
    """
    out = Path(out)
    existed = out.is_dir()
    made = _make_parents(out.parent) if not existed else []
    try:
        stage = Path(tempfile.mkdtemp(dir=out if existed else out.parent, prefix=f".{out.name}.", suffix=".partial"))
    except BaseException:
        _remove_empty(made)
        raise
    try:
        yield stage
        if existed:
            for item in stage.iterdir():
                check_not_an_input(out / item.name, inputs)
            for item in stage.iterdir():
                os.replace(item, out / item.name)
            stage.rmdir()
        else:
            os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_empty(made)
        raise


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; the ones made, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for path in folders:
        try:
            path.rmdir()
        except OSError:
            return


# ------------------------------------------------------------------------------------------------
# Evaluators


def check_evaluator_fits(evaluator: str, shape: tuple[int, ...], image: Path, multiple: int) -> None:
    """The evaluator must load and run on images of ``shape`` padded to ``multiple``.

    A 2D evaluator reads a 3D image slice by slice along its last axis; a 3D one needs 3D images
    with enough voxels along each axis for its two downsamplings. Tried on a zero image of at
    most 16 voxels per axis, which fails exactly where the real image would.
    """
    import torch

    from imse_study.evaluator.pretrained import load_any

    model, meta = load_any(evaluator)
    if meta.dim > len(shape):
        raise ValueError(f"{evaluator} is a {meta.dim}D evaluator; {image} is a {len(shape)}D image: use a "
                         f"{len(shape)}D evaluator (e.g. phantom-t1-{len(shape)}d)")
    spatial = shape if meta.dim == len(shape) else shape[:2]
    padded = [min(s + (-s) % multiple, _PROBE_SIDE) for s in spatial]
    if _runs(model, padded, torch):
        return
    side = next((n for n in range(multiple, 4 * _PROBE_SIDE + 1, multiple) if _runs(model, [n] * meta.dim, torch)),
                None)
    small = [axis for axis, s in enumerate(spatial) if side is None or s < side]
    hint = (" For a stack of 2D slices use a 2D evaluator (e.g. phantom-t1-2d)." if meta.dim == 3 else "")
    raise ValueError(f"{image} {shape} is too small for the {meta.dim}D evaluator {evaluator} along axis "
                     f"{', '.join(map(str, small))}: it needs at least {side} voxels along each axis it reads.{hint}")


def _runs(model, shape: list[int], torch) -> bool:
    try:
        with torch.no_grad():
            model(torch.zeros(1, 2, *shape))
    except (RuntimeError, ValueError):  # torch: padding or normalisation over too few voxels
        return False
    return True


# ------------------------------------------------------------------------------------------------
# The commands


def check_register(args: argparse.Namespace) -> None:
    """``register``: options, both images, label maps on their images' grids, output folder, evaluator."""
    check_register_options(args)
    grids = {path: checked_image(path) for path in (args.moving, args.target)}
    for labels, image in ((args.moving_labels, args.moving), (args.target_labels, args.target)):
        if labels is not None:
            check_labels_grid(labels, image, grids[image])
    inputs = (args.moving, args.target, args.moving_labels, args.target_labels)
    check_writable_folder(args.output)
    for name in REGISTER_OUTPUTS:
        check_not_an_input(args.output / name, inputs)
    if args.evaluator:
        check_evaluator_fits(args.evaluator, grids[args.moving][0], args.moving, multiple=8)


def _check_evaluator_pair(args: argparse.Namespace, second: str) -> None:
    reference, other = args.reference, getattr(args, second)
    shape, _ = checked_image(reference)
    checked_image(other)
    check_output_file(args.output, (reference, other))
    check_evaluator_fits(args.evaluator, shape, reference, multiple=4)


def check_phantom(args: argparse.Namespace) -> None:
    """``phantom``: the output folder (and the montage's) must take files."""
    check_writable_folder(args.out, "--out")
    if args.montage is not None:
        check_writable_folder(Path(args.montage).parent, "--montage")


def check_training(args: argparse.Namespace) -> None:
    """``train-*``: the run folder must take files."""
    check_writable_folder(Path(args.out), "--out")


CHECKS: dict[str, Callable[[argparse.Namespace], None]] = {
    "register": check_register,
    "error-map": lambda args: _check_evaluator_pair(args, "other"),
    "translate": lambda args: _check_evaluator_pair(args, "source"),
    "phantom": check_phantom,
    "train-evaluator": check_training,
    "train-registration": lambda args: (check_train_registration_options(args), check_training(args)),
    "train-translator": check_training,
}


def check_command(args: argparse.Namespace) -> None:
    """Run the checks of ``args.command`` (nothing for a command without any)."""
    check = CHECKS.get(args.command)
    if check is not None:
        check(args)
