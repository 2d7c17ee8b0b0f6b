"""Checks that run before a command does any work, and a staged output folder.

A command of ``imse-study`` must fail in its first second, not after a 75 s optimisation: every
input readable and a valid image (a label map lying over its image), every option used by the
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

from imse_study.data.io import (
    MAX_VOXELS_ENV,
    check_image_content,
    load_labels,
    load_nifti,
    nifti_suffix,
    voxel_limit,
)

# What ``register`` writes into its output folder (registration/files.py); an input of the same
# name in that folder would be overwritten.
REGISTER_OUTPUTS = ("warped.nii.gz", "displacement.nii.gz", "warped_labels.nii.gz", "summary.json")
_AFFINE_TOLERANCE_MM = 1e-3
_MIN_LABEL_COVER = 0.5  # a label map on another grid must cover this fraction of its image
_PROBE_SIDE = 16  # the evaluator is tried on at most 16 voxels per axis (a multiple of 4 and 8)


# ------------------------------------------------------------------------------------------------
# Options that a command would ignore or misread


def _similarity_name(args: argparse.Namespace) -> str:
    from imse_study.losses.similarity import similarity_names

    name = str(args.similarity).strip().lower()
    if name not in similarity_names():
        raise ValueError(f"unknown similarity {args.similarity!r}; choose from {', '.join(similarity_names())}")
    return name


def check_register_options(args: argparse.Namespace) -> None:
    """``register``: options that its similarity would ignore are refused, not dropped."""
    from imse_study.losses.similarity import EVALUATOR_SIMILARITIES

    name = _similarity_name(args)
    if name in EVALUATOR_SIMILARITIES and not args.evaluator:
        raise ValueError(f"--similarity {name} needs --evaluator (a shipped name such as phantom-t1-2d, or a .pt file)")
    if name not in EVALUATOR_SIMILARITIES and args.evaluator:
        raise ValueError(f"--evaluator is used only by --similarity {' or '.join(EVALUATOR_SIMILARITIES)}, not "
                         f"{name}; drop --evaluator or choose an IMSE similarity")
    if args.precision != "float32" and name != "imse":
        raise ValueError(f"--precision {args.precision} applies only to --similarity imse (the evaluator under "
                         f"autocast), not {name}; drop --precision")
    if getattr(args, "flips", "none") != "none" and name != "imse":
        raise ValueError(f"--flips {args.flips} applies only to --similarity imse (mirror averaging of the evaluator), "
                         f"not {name}; drop --flips")
    if args.target_labels and not args.moving_labels:
        raise ValueError("--target-labels needs --moving-labels: Dice compares the warped moving labels with the "
                         "target's; give both, or neither")


def check_train_registration_options(args: argparse.Namespace) -> None:
    """``train-registration``: --evaluator only for IMSE, --translator only for translated_mae."""
    from imse_study.losses.similarity import EVALUATOR_SIMILARITIES

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
    """A label map must hold integers and lie over its image in space: on its grid, or on another
    grid (it is then resampled, nearest neighbour) that covers at least half of the image."""
    data, affine = load_labels(labels)
    shape, image_affine = grid
    if data.ndim != len(shape):
        raise ValueError(f"{labels} is a {data.ndim}D label map but {image} a {len(shape)}D image: give the label "
                         "map of that image")
    if data.shape == shape and np.allclose(affine, image_affine, atol=_AFFINE_TOLERANCE_MM):
        return
    covered = _fraction_inside(shape, image_affine, data.shape, affine)
    if covered < _MIN_LABEL_COVER:
        raise ValueError(f"{labels} {data.shape} covers {covered:.0%} of {image} {shape} in space (through both "
                         "headers' affines): a label map must lie over its image; is it the right file, with the "
                         "header of that image?")


def _fraction_inside(shape: tuple[int, ...], affine: np.ndarray, other_shape: tuple[int, ...],
                     other_affine: np.ndarray) -> float:
    """The fraction of the voxel centres of grid ``(shape, affine)`` (up to 16 per axis) that lie
    within grid ``(other_shape, other_affine)``."""
    axes = [np.linspace(0, n - 1, min(n, 16)) for n in shape]
    points = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")])
    points = np.vstack([points, np.zeros((3 - len(shape), points.shape[1])), np.ones((1, points.shape[1]))])
    voxels = np.linalg.pinv(other_affine) @ (affine @ points)  # a 2D grid's affine may be singular
    extent = np.asarray(other_shape + (1,) * (3 - len(other_shape)))[:, None]
    inside = np.all((voxels[:3] >= -0.5) & (voxels[:3] < extent - 0.5), axis=0)
    return float(inside.mean())


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
        stage.chmod(0o755)  # mkdtemp's 0700 would become the output folder's
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
    except BaseException as err:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_empty(made)
        if isinstance(err, OSError) and err.filename and Path(err.filename).is_relative_to(stage):
            err.filename = str(out / Path(err.filename).relative_to(stage))  # name the file the user asked for
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


def check_evaluator_fits(model, meta, evaluator: str, image: Path, work: tuple[int, ...], multiple: int) -> None:
    """The evaluator must be able to read ``image`` as the command hands it over: ``work`` is its
    shape in the evaluator's layout at the evaluator's training spacing (a 2D evaluator reads
    ``work[1:]`` slices), padded to ``multiple``.

    Too many voxels at that spacing (a header with enormous voxels) are refused like an enormous
    image; too few for the evaluator's two downsamplings are found by running it on a zero image
    of at most 16 voxels per axis, which fails exactly where the real one would.
    """
    import torch

    from imse_study.nets.padding import padded_shape

    spatial = work[1:] if meta.dim == 2 else work
    voxels = int(np.prod(work, dtype=object))
    if voxels > voxel_limit():
        raise ValueError(f"{image}: at the spacing the evaluator {evaluator} works at, it becomes {work} = "
                         f"{voxels:,} voxels, more than the limit of {voxel_limit():,}; check the voxel sizes in its "
                         f"header, or raise {MAX_VOXELS_ENV} if memory allows")
    padded = [min(s, _PROBE_SIDE) for s in padded_shape(spatial, multiple)]
    if _runs(model, padded, torch):
        return
    side = next((n for n in range(multiple, 4 * _PROBE_SIDE + 1, multiple) if _runs(model, [n] * meta.dim, torch)),
                None)
    hint = " A stack of a few 2D slices needs a 2D evaluator (e.g. phantom-t1-2d)." if meta.dim == 3 else ""
    raise ValueError(f"{image} is too small for the {meta.dim}D evaluator {evaluator}: at the spacing it works at "
                     f"it reads images of {tuple(spatial)} voxels and needs at least {side} along each axis.{hint}")


def _runs(model, shape: list[int], torch) -> bool:
    try:
        with torch.no_grad():
            model(torch.zeros(1, 2, *shape))
    except (RuntimeError, ValueError):  # torch: padding or normalisation over too few voxels
        return False
    return True


def _check_dim(evaluator: str, meta, image: Path, ndim: int) -> None:
    if meta.dim > ndim:
        raise ValueError(f"{evaluator} is a {meta.dim}D evaluator; {image} is a {ndim}D image: use a "
                         f"{ndim}D evaluator (e.g. phantom-t1-{ndim}d)")


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
        from imse_study.data.geometry import registration_plan
        from imse_study.evaluator.checkpoint import evaluator_spacing
        from imse_study.evaluator.pretrained import load_any
        from imse_study.registration.files import MULTIPLE, registration_grid

        shape, affine = grids[args.target]  # the moving image is registered on the target's grid
        model, meta = load_any(args.evaluator)
        _check_dim(args.evaluator, meta, args.target, len(shape))
        plan = registration_plan(shape, affine, None if args.dim == "auto" else int(args.dim))
        if meta.dim == plan.dim:  # otherwise registration refuses the pair itself, before any work
            _, work = registration_grid(shape, affine, plan, evaluator_spacing(meta))
            check_evaluator_fits(model, meta, args.evaluator, args.target, work, MULTIPLE)


def _check_evaluator_pair(args: argparse.Namespace, second: str) -> None:
    from imse_study.evaluator.apply import evaluator_grid
    from imse_study.evaluator.checkpoint import evaluator_spacing
    from imse_study.evaluator.pretrained import load_any

    reference, other = args.reference, getattr(args, second)
    model, meta = load_any(args.evaluator)  # first: a file that is no evaluator is the first thing to hear of
    shape, affine = checked_image(reference)
    checked_image(other)
    check_output_file(args.output, (reference, other))
    _check_dim(args.evaluator, meta, reference, len(shape))
    _, work = evaluator_grid(shape, affine, meta.dim, evaluator_spacing(meta))
    check_evaluator_fits(model, meta, args.evaluator, reference, work, multiple=4)


def check_qa(args: argparse.Namespace) -> None:
    """``qa``: both images, the label map over the target, the output folder (no clobbering without
    --overwrite, no input overwritten), and an evaluator that fits the pair's modalities and size."""
    from imse_study.data.geometry import registration_plan
    from imse_study.evaluator.apply import evaluator_grid
    from imse_study.evaluator.checkpoint import evaluator_spacing
    from imse_study.evaluator.pretrained import load_any
    from imse_study.qa.assess import QA_OUTPUTS, choose_evaluator, reference_side

    if getattr(args, "pairs", None) is not None:
        check_qa_pairs(args)
        return
    if args.workers is not None or args.scheduler is not None:
        raise ValueError("--workers and --scheduler go with --pairs PAIRS.csv (a cohort); one pair needs neither")
    if args.moved is None or args.target is None:
        raise ValueError("qa needs two images: imse-study qa MOVED TARGET -o OUT (or a cohort: --pairs PAIRS.csv)")
    grids = {path: checked_image(path) for path in (args.moved, args.target)}
    if len(grids[args.moved][0]) != len(grids[args.target][0]):
        raise ValueError(f"{args.moved} is {len(grids[args.moved][0])}D and {args.target} "
                         f"{len(grids[args.target][0])}D; give two 2D or two 3D images")
    if args.labels is not None:
        check_labels_grid(args.labels, args.target, grids[args.target])
    check_writable_folder(args.output)
    for name in QA_OUTPUTS:
        check_not_an_input(args.output / name, (args.moved, args.target, args.labels))
    present = [name for name in QA_OUTPUTS if (args.output / name).exists()]
    if present and not args.overwrite:
        raise ValueError(f"{args.output} already holds {', '.join(present)}: choose another folder, or pass "
                         "--overwrite to replace them")
    shape, affine = grids[args.target]
    name = choose_evaluator(args.evaluator, args.moved_modality, args.target_modality,
                            registration_plan(shape, affine).dim)
    model, meta = load_any(name)
    reference_side(meta.modality, args.moved_modality, args.target_modality, [])
    _check_dim(str(name), meta, args.target, len(shape))
    _, work = evaluator_grid(shape, affine, meta.dim, evaluator_spacing(meta))
    check_evaluator_fits(model, meta, str(name), args.target, work, multiple=4)


def check_qa_pairs(args: argparse.Namespace) -> None:
    """``qa --pairs``: no images beside the table, a readable table of pairs, sensible --workers, the
    output folder (a qa.csv there is resumed, not clobbered), a named evaluator that loads, and the
    Dask package when --scheduler is given. The pairs' images are not checked here: a bad pair
    becomes one failed row of the report."""
    from imse_study.qa.cohort import read_done, read_pairs

    if args.moved is not None or args.target is not None:
        raise ValueError("give either MOVED TARGET (one pair) or --pairs PAIRS.csv (a cohort), not both")
    if args.labels is not None:
        raise ValueError("--labels is for one pair; with --pairs give each pair's label map in a labels column")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers {args.workers}: give 1 or more worker processes")
    if args.scheduler is not None and args.workers is not None:
        raise ValueError("--workers is for local processes; with --scheduler the Dask cluster's workers run the pairs")
    read_pairs(args.pairs, args.moved_modality, args.target_modality)
    check_writable_folder(args.output)
    for name in ("qa.csv", "index.html"):
        check_not_an_input(args.output / name, (args.pairs,))
    if not args.overwrite:
        read_done(args.output)
    if str(args.evaluator) != "auto":
        from imse_study.evaluator.pretrained import load_any

        load_any(args.evaluator)
    if args.scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ValueError("--scheduler needs the Dask distributed package: pip install distributed (or pip "
                             "install 'imse-study[dask]')") from None


def check_qa_calibrate(args: argparse.Namespace) -> None:
    """``qa-calibrate``: a loadable evaluator, a new .json output (or --overwrite) that is not the evaluator."""
    from imse_study.evaluator.pretrained import load_any
    from imse_study.qa.calibration import weights_path

    load_any(args.evaluator)
    output = Path(args.output)
    if not output.name.endswith(".json"):
        raise ValueError(f"-o {output}: a calibration is a .json file (qa reads EVALUATOR.qa.json)")
    if output.is_dir():
        raise ValueError(f"-o {output} is a folder; give a file name ending in .qa.json")
    check_not_an_input(output, (weights_path(args.evaluator),))
    if output.exists() and not args.overwrite:
        raise ValueError(f"{output} exists: choose another name, or pass --overwrite to replace it")
    check_writable_folder(output.parent)


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
    "qa": check_qa,
    "qa-calibrate": check_qa_calibrate,
    "train-evaluator": check_training,
    "train-registration": lambda args: (check_train_registration_options(args), check_training(args)),
    "train-translator": check_training,
}


def check_command(args: argparse.Namespace) -> None:
    """Run the checks of ``args.command`` (nothing for a command without any)."""
    check = CHECKS.get(args.command)
    if check is not None:
        check(args)
