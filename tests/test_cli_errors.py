"""Bad input to ``imse-study`` fails in its first second, on one line, and leaves nothing behind.

Each test runs the command as a user types it. ``no_work`` makes the optimiser fail the test if it
is reached, so "refused before any work" is checked, not assumed.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from clitools import assert_one_line_error, digest, error_lines, listing, run_cli, write_evaluator, write_image

import imse_study.registration.files as register_module
from imse_study.cli import main
from imse_study.data import phantom

SHAPE = (24, 24, 4)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Two images on one grid, their label maps, and tiny 2D and 3D evaluators."""
    root = tmp_path_factory.mktemp("inputs")
    labels = (np.indices(SHAPE).sum(0) % 3).astype(np.uint8)
    nib.save(nib.Nifti1Image(labels, np.eye(4)), str(root / "labels.nii.gz"))
    return {"moving": write_image(root / "moving.nii.gz", SHAPE, 1),
            "target": write_image(root / "target.nii.gz", SHAPE, 2),
            "labels": root / "labels.nii.gz",
            "e2": write_evaluator(root / "e2.pt", 2), "e3": write_evaluator(root / "e3.pt", 3)}


@pytest.fixture
def no_work(monkeypatch):
    """Registration that fails the test if the optimiser is ever reached."""
    def forbidden(*args, **kwargs):
        pytest.fail("the optimiser ran although an input or output was bad")

    monkeypatch.setattr(register_module, "optimise", forbidden)


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder nobody here may write in: a read-only folder, or sysfs when the tests run as root."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    sysfs = Path("/sys")
    try:
        os.rmdir(tempfile.mkdtemp(dir=sysfs))
    except OSError:
        yield sysfs  # root: permission bits do not stop it, sysfs does
        return
    pytest.skip("no folder here refuses root's writes")


def _register(data, out, *extra):
    return run_cli("register", data["moving"], data["target"], "-o", out, "--iterations", 4, *extra)


# ------------------------------------------------------------------------------------------------
# register: every input and output checked before the optimisation; no partial folder


@pytest.mark.parametrize("inside", [True, False], ids=["new-folder-inside", "the-folder-itself"])
def test_register_into_a_read_only_folder_is_refused_before_work(data, unwritable, no_work, inside):
    out = unwritable / "out" if inside else unwritable
    code, _, err = _register(data, out)
    assert_one_line_error(code, err, str(unwritable), "choose a folder you may write to")


def test_register_labels_that_do_not_lie_over_their_image_are_refused_before_work(data, tmp_path, no_work):
    elsewhere = np.eye(4)
    elsewhere[:3, 3] = (0.0, 0.0, 30.0)  # 30 mm above the image: the label map of another slab
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 4), np.uint8), elsewhere), str(tmp_path / "small.nii.gz"))
    code, _, err = _register(data, tmp_path / "out", "--moving-labels", tmp_path / "small.nii.gz")
    assert_one_line_error(code, err, "small.nii.gz (20, 20, 4) covers 0% of", "moving.nii.gz (24, 24, 4)",
                          "the right file")
    nib.save(nib.Nifti1Image(np.zeros((24, 24), np.uint8), np.eye(4)), str(tmp_path / "flat.nii.gz"))
    code, _, err = _register(data, tmp_path / "out", "--moving-labels", data["labels"],
                             "--target-labels", tmp_path / "flat.nii.gz")
    assert_one_line_error(code, err, "flat.nii.gz is a 2D label map but", "target.nii.gz a 3D image")
    code, _, err = _register(data, tmp_path / "out", "--moving-labels", data["target"])
    assert_one_line_error(code, err, "target.nii.gz", "non-integer")
    assert listing(tmp_path) == ["flat.nii.gz", "small.nii.gz"]  # no output folder, no temp folder


def test_register_labels_on_another_grid_over_the_same_space_are_accepted(data, tmp_path):
    coarse = np.diag([2.0, 2.0, 1.0, 1.0])  # 2 mm in-plane: the same field of view in 12 x 12 voxels
    coarse[:2, 3] = 0.5
    labels = (np.indices((12, 12, 4)).sum(0) % 3).astype(np.uint8)
    nib.save(nib.Nifti1Image(labels, coarse), str(tmp_path / "coarse.nii.gz"))
    code, _, err = _register(data, tmp_path / "out", "--moving-labels", tmp_path / "coarse.nii.gz",
                             "--target-labels", data["labels"])
    assert code == 0, err
    assert nib.load(tmp_path / "out" / "warped_labels.nii.gz").shape == SHAPE


def test_failed_register_leaves_no_partial_folder_and_keeps_an_old_one(data, tmp_path, monkeypatch):
    def disk_full(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(register_module, "atomic_write_json", disk_full)  # fails after the images are written
    code, _, err = _register(data, tmp_path / "new" / "out")
    assert_one_line_error(code, err, "new/out/summary.json: No space left on device", "free some space")
    assert listing(tmp_path) == []  # neither the folder nor the parent made for it
    old = tmp_path / "old"
    old.mkdir()
    (old / "warped.nii.gz").write_bytes(b"an earlier result")
    code, _, err = _register(data, old)
    assert code == 2
    assert listing(old) == ["warped.nii.gz"] and (old / "warped.nii.gz").read_bytes() == b"an earlier result"


def test_register_output_is_whole_or_absent(data, tmp_path):
    code, _, err = _register(data, tmp_path / "a" / "out")
    assert code == 0, err
    assert listing(tmp_path / "a") == ["out", "out/displacement.nii.gz", "out/summary.json", "out/warped.nii.gz"]


def test_register_output_folder_that_holds_an_input_under_an_output_name_is_refused(data, tmp_path, no_work):
    out = tmp_path / "out"
    out.mkdir()
    moving = write_image(out / "warped.nii.gz", SHAPE, 3)
    before = digest(moving)
    code, _, err = run_cli("register", moving, data["target"], "-o", out, "--iterations", 4)
    assert_one_line_error(code, err, "is the input", "choose another output")
    assert digest(moving) == before and listing(out) == ["warped.nii.gz"]


# ------------------------------------------------------------------------------------------------
# error-map / translate: an output that is an input is refused


@pytest.mark.parametrize("command", ["error-map", "translate"])
@pytest.mark.parametrize("how", ["same-path", "relative-path", "symlink", "hard-link"])
def test_output_equal_to_an_input_is_refused(data, tmp_path, monkeypatch, command, how):
    reference = write_image(tmp_path / "ref.nii.gz", SHAPE, 4)
    other = write_image(tmp_path / "other.nii.gz", SHAPE, 5)
    output = {"same-path": other, "relative-path": Path("other.nii.gz"),
              "symlink": tmp_path / "link.nii.gz", "hard-link": tmp_path / "hard.nii.gz"}[how]
    if how == "symlink":
        output.symlink_to(other)
    if how == "hard-link":
        os.link(other, output)
    monkeypatch.chdir(tmp_path)
    before = digest(reference, other)
    code, _, err = run_cli(command, reference, other, "--evaluator", data["e2"], "-o", output)
    assert_one_line_error(code, err, "is the input", "would be overwritten")
    assert digest(reference, other) == before


def test_error_map_output_must_be_a_nifti_file_in_a_writable_folder(data, tmp_path, unwritable):
    (tmp_path / "folder.nii.gz").mkdir()
    for output, fragment in ((tmp_path / "map.png", ".nii.gz or .nii"), (tmp_path / "folder.nii.gz", "is a folder"),
                             (unwritable / "map.nii.gz", "choose a folder you may write to")):
        code, _, err = run_cli("error-map", data["moving"], data["target"], "--evaluator", data["e2"], "-o", output)
        assert_one_line_error(code, err, fragment)


# ------------------------------------------------------------------------------------------------
# Images that nothing can be measured on; evaluators that cannot read the images


@pytest.mark.parametrize("kind", ["all-zero", "constant-5", "one-voxel"])
@pytest.mark.parametrize("command", ["error-map", "register"])
def test_constant_and_one_voxel_images_are_refused(data, tmp_path, no_work, kind, command):
    shape = (1, 1, 1) if kind == "one-voxel" else SHAPE
    value = 5.0 if kind == "constant-5" else 0.0
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.full(shape, value, np.float32), np.eye(4)), str(path))
    extra = ["--evaluator", data["e2"]] if command == "error-map" else ["--iterations", 4]
    code, _, err = run_cli(command, path, data["target"], "-o", tmp_path / "out.nii.gz", *extra)
    assert_one_line_error(code, err, "bad.nii.gz", "at least 2 voxels" if kind == "one-voxel" else "is constant")


@pytest.mark.parametrize("command", ["error-map", "translate"])
def test_3d_evaluator_on_a_stack_of_two_slices_is_refused(data, tmp_path, command):
    a, b = write_image(tmp_path / "a.nii.gz", (24, 24, 2), 1), write_image(tmp_path / "b.nii.gz", (24, 24, 2), 2)
    code, _, err = run_cli(command, a, b, "-o", tmp_path / "out.nii.gz", "--evaluator", data["e3"])
    assert_one_line_error(code, err, "too small for the 3D evaluator", "(2, 24, 24) voxels", "needs a 2D evaluator")


def test_3d_evaluator_on_a_2d_image_is_refused(data, tmp_path):
    a, b = write_image(tmp_path / "a.nii.gz", (24, 24), 1), write_image(tmp_path / "b.nii.gz", (24, 24), 2)
    code, _, err = run_cli("translate", a, b, "-o", tmp_path / "t.nii.gz", "--evaluator", data["e3"])
    assert_one_line_error(code, err, "is a 3D evaluator", "2D image")


def test_a_header_claiming_an_enormous_image_is_refused_unread(data, tmp_path, monkeypatch):
    header = nib.Nifti1Header()
    header.set_data_shape((4096, 4096, 4096))
    header.set_data_dtype(np.float32)
    huge = tmp_path / "huge.nii"
    huge.write_bytes(header.binaryblock + b"\0" * 4)  # a 352-byte file that claims 256 GiB
    code, _, err = run_cli("error-map", huge, data["target"], "--evaluator", data["e2"], "-o", tmp_path / "m.nii.gz")
    assert_one_line_error(code, err, "huge.nii", "68,719,476,736 voxels", "IMSE_STUDY_MAX_VOXELS=")
    monkeypatch.setenv("IMSE_STUDY_MAX_VOXELS", "1000")
    code, _, err = _register(data, tmp_path / "out")
    assert_one_line_error(code, err, "moving.nii.gz", "2,304 voxels", "limit of 1,000")
    monkeypatch.setenv("IMSE_STUDY_MAX_VOXELS", "lots")
    code, _, err = _register(data, tmp_path / "out")
    assert_one_line_error(code, err, "IMSE_STUDY_MAX_VOXELS='lots'", "whole number")


# ------------------------------------------------------------------------------------------------
# Options: ignored ones refused, numbers checked as they are parsed


@pytest.mark.parametrize("extra, fragment", [
    (["--evaluator", "phantom-t1-2d"], "--evaluator is used only by --similarity imse"),
    (["--precision", "bfloat16"], "--precision bfloat16 applies only to --similarity imse"),
    (["--similarity", "imse_robust", "--evaluator", "phantom-t1-2d", "--precision", "bfloat16"], "not imse_robust"),
    (["--similarity", "imse"], "needs --evaluator"),
    (["--flips", "point"], "--flips point applies only to --similarity imse"),
    (["--similarity", "mutual-info"], "unknown similarity 'mutual-info'"),
    (["--target-labels", "labels.nii.gz"], "--target-labels needs --moving-labels"),
], ids=["evaluator-with-mi", "bfloat16-with-mi", "bfloat16-with-robust", "imse-without-evaluator",
        "flips-with-mi", "unknown-similarity", "target-labels-alone"])
def test_register_options_that_would_be_ignored_are_refused(data, tmp_path, no_work, extra, fragment):
    code, _, err = _register(data, tmp_path / "out", *extra)
    assert_one_line_error(code, err, fragment)


@pytest.mark.parametrize("args, fragment", [
    (["register", "m.nii.gz", "t.nii.gz", "-o", "out", "--smooth-weight", "-1"], "--smooth-weight: '-1'"),
    (["register", "m.nii.gz", "t.nii.gz", "-o", "out", "--smooth-weight", "nan"], "expected a number >= 0"),
    (["register", "m.nii.gz", "t.nii.gz", "-o", "out", "--iterations", "0"], "--iterations: '0'"),
    (["train-evaluator", "--out", "run", "--threads", "-1"], "--threads: '-1': expected a whole number >= 1"),
    (["train-evaluator", "--out", "run", "--epochs", "0"], "--epochs"),
    (["train-evaluator", "--out", "run", "--lr", "0"], "--lr: '0': expected a number > 0"),
    (["train-evaluator", "--out", "run", "--batch-size", "0"], "--batch-size"),
    (["train-evaluator", "--out", "run", "--time-limit", "-5"], "--time-limit"),
    (["train-evaluator", "--out", "run", "--seed", "-1"], "--seed"),
    (["train-evaluator", "--out", "run", "--n-range", "-2", "5"], "--n-range"),
    (["train-evaluator", "--out", "run", "--patience", "0"], "--patience"),
    (["train-evaluator", "--out", "run", "--min-delta", "-0.1"], "--min-delta"),
    (["train-evaluator", "--out", "run", "--threads", "two"], "--threads: invalid int value: 'two'"),
    (["train-registration", "--similarity", "mi", "--moving", "t1", "--target", "t2", "--out", "run",
      "--smooth-weight", "-1"], "--smooth-weight"),
    (["train-translator", "--kind", "cyclegan", "--source", "t2", "--target", "t1", "--out", "run",
      "--threads", "0"], "--threads"),
    (["train-translator", "--kind", "reggan", "--source", "t2", "--target", "t1", "--out", "run",
      "--weight", "smooth=-1"], "a loss weight must be a number >= 0"),
])
def test_numbers_are_checked_as_they_are_parsed(tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(*args)
    line = assert_one_line_error(code, err, fragment)
    assert line.endswith("--help)")  # argparse refused it: nothing was read or started
    assert listing(tmp_path) == []


def test_train_registration_options_its_similarity_ignores_are_refused(tmp_path):
    code, _, err = run_cli("train-registration", "--similarity", "mi", "--moving", "t1", "--target", "t2",
                           "--out", tmp_path / "run", "--evaluator", "phantom-t1-2d")
    assert_one_line_error(code, err, "--evaluator is used only by")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
def test_cuda_on_a_machine_without_it_is_refused(tmp_path):
    code, _, err = run_cli("train-evaluator", "--out", tmp_path / "run", "--device", "cuda", "--profile", "smoke")
    assert_one_line_error(code, err, "--device: 'cuda'", "use --device cpu")
    code, _, err = run_cli("train-evaluator", "--out", tmp_path / "run", "--device", "gpu0")
    assert_one_line_error(code, err, "expected a torch device")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------
# --debug, bugs and Ctrl-C


def test_debug_shows_the_traceback(data, tmp_path):
    zero = tmp_path / "zero.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), np.eye(4)), str(zero))
    for args in (["--debug", "register", zero, data["target"], "-o", tmp_path / "o"],
                 ["register", zero, data["target"], "-o", tmp_path / "o", "--debug"]):
        with pytest.raises(ValueError, match="is constant"):
            main([str(a) for a in args])


def test_an_unexpected_error_is_one_line_that_points_to_debug(data, tmp_path, monkeypatch):
    def bug(args):
        raise TypeError("unsupported operand type(s)\nsecond line")

    monkeypatch.setattr("imse_study.cli._cmd_error_map", bug)
    code, _, err = run_cli("error-map", data["moving"], data["target"], "--evaluator", data["e2"],
                           "-o", tmp_path / "m.nii.gz")
    lines = error_lines(err)
    assert code == 1 and len(lines) == 1 and "Traceback" not in err
    assert "unexpected error: TypeError: unsupported operand type(s) second line" in lines[0]
    assert "run with --debug" in lines[0]


def test_ctrl_c_exits_130_with_one_line_and_no_partial_folder(data, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(register_module, "optimise", interrupted)
    code, _, err = _register(data, tmp_path / "out")
    assert code == 130 and error_lines(err) == ["imse-study register: interrupted"]
    assert listing(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# The phantom cache


def test_a_truncated_phantom_cache_is_regenerated_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("IMSE_STUDY_CACHE", str(tmp_path / "cache"))
    generated = []

    def small_set(ids, dim, cfg, progress=False, **kwargs):  # the real generator takes minutes; the cache is tested
        generated.append(ids)
        rng = np.random.default_rng(0)
        n = len(ids)
        return phantom.PhantomSet(
            images={m: rng.uniform(-1, 1, (n, 6, 6, 6)).astype(np.float32) for m in phantom.MODALITIES},
            labels=rng.integers(0, 7, (n, 6, 6, 6)).astype(np.uint8), subjects=np.asarray(ids),
            affines=np.tile(np.eye(4), (n, 1, 1)), spacing=(1.0, 1.0, 1.0), dim=3)

    monkeypatch.setattr(phantom, "_generate_set", small_set)
    assert run_cli("phantom", "--out", tmp_path / "a", "--profile", "smoke", "--dim", "3")[0] == 0
    (cache,) = (tmp_path / "cache").iterdir()
    cache.write_bytes(cache.read_bytes()[:1000])  # a download or a disk that stopped half-way
    with pytest.warns(UserWarning, match=f"the phantom cache file {cache} is damaged.*regenerating it") as caught:
        code, out, err = run_cli("phantom", "--out", tmp_path / "b", "--profile", "smoke", "--dim", "3")
    assert code == 0, err
    assert sum("is damaged" in str(w.message) for w in caught) == 1, [str(w.message) for w in caught]
    assert len(generated) == 2 and listing(tmp_path / "a") == listing(tmp_path / "b")
    assert run_cli("phantom", "--out", tmp_path / "c", "--profile", "smoke", "--dim", "3")[0] == 0
    assert len(generated) == 2  # the regenerated cache is whole again


def test_phantom_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    code, _, err = run_cli("phantom", "--out", target, "--profile", "smoke")
    assert_one_line_error(code, err, "exists and is not a folder")
    assert target.read_text() == "mine"


def test_register_output_folder_is_made_with_the_usual_permissions(data, tmp_path):
    assert _register(data, tmp_path / "out")[0] == 0
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755  # not the 0700 of the temporary folder it was


def test_ctrl_c_wrapped_by_python_is_still_an_interrupt(data, tmp_path, monkeypatch):
    def interrupted_in_an_import(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as err:  # as Python does for __set_name__ during a class body
            raise RuntimeError("Error calling __set_name__ on 'Field' instance 'start_callbacks'") from err

    monkeypatch.setattr(register_module, "optimise", interrupted_in_an_import)
    code, _, err = _register(data, tmp_path / "out")
    assert code == 130 and error_lines(err) == ["imse-study register: interrupted"]
