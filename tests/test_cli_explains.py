"""The command line explains itself: the shipped evaluators listed, every default in --help, the
error map read against the evaluator's floor, and a readable register summary."""

import argparse

import numpy as np
import pytest

from imse_study.cli import build_parser
from imse_study.evaluator.pretrained import available_pretrained
from clitools import run_cli


def test_evaluators_lists_every_shipped_one_with_its_floor():
    code, out, _ = run_cli("evaluators")
    assert code == 0
    header, *rows = out.splitlines()
    for column in ("modality", "dim", "spacing mm", "noise", "network", "steps", "floor"):
        assert column in header
    for name in available_pretrained():
        row = next(r for r in rows if r.startswith(name + " "))
        assert "aligned 0." in row and "self 0." in row
    assert "phantom-t1-3d " in out and "5 x 3.75 x 3.75" in out and "shuffle_remap N 2-50" in out


def _subcommands():
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_help_shows_every_default(command):
    sub = _subcommands()[command]
    text = " ".join(sub.format_help().split())
    for action in sub._actions:
        default = action.default
        if not action.option_strings or default is None or isinstance(default, bool) or default in (
                argparse.SUPPRESS, []):
            continue
        flag = max(action.option_strings, key=len)
        own = text.split(flag, 2)[-1].split(" --", 1)[0]  # the flag's own help (the usage line names it first)
        assert "default" in own.lower(), (command, flag, own)


def test_register_help_names_its_defaults():
    code, out, _ = run_cli("register", "--help")
    text = " ".join(out.split())
    assert code == 0 and "(default: 200)" in text and "(default: float32)" in text and "mi (default)" in text


@pytest.fixture(scope="module")
def ph(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    assert run_cli("phantom", "--out", out, "--profile", "smoke")[0] == 0
    return out


def test_error_map_is_read_against_the_floor(tmp_path, ph):
    code, out, _ = run_cli("error-map", ph / "sub-3000_ct.nii.gz", ph / "sub-3000_t1.nii.gz", "--evaluator",
                           "phantom-ct-2d", "-o", tmp_path / "e.nii.gz")
    assert code == 0
    assert "over the joint foreground" in out and "aligned MR test pairs: mean" in out
    assert "image units" in out and "red (E > 0)" in out and "blue (E < 0)" in out
    # an evaluator file without a floor: said, not a crash
    from clitools import write_evaluator

    code, out, _ = run_cli("error-map", ph / "sub-3000_t1.nii.gz", ph / "sub-3000_t2.nii.gz", "--evaluator",
                           write_evaluator(tmp_path / "tiny.pt", 2), "-o", tmp_path / "e2.nii.gz")
    assert code == 0 and "no floor recorded" in out


def test_register_summary_is_readable(tmp_path, ph):
    import nibabel as nib

    labels = nib.load(ph / "sub-3000_labels.nii.gz")
    shifted = np.roll(np.asarray(labels.dataobj), 2, axis=0).astype(np.uint8)
    nib.save(nib.Nifti1Image(shifted, labels.affine), tmp_path / "moving_labels.nii.gz")
    out_dir = tmp_path / "out"
    code, out, _ = run_cli("register", ph / "sub-3000_t1.nii.gz", ph / "sub-3000_t2.nii.gz", "-o", out_dir,
                           "--moving-labels", tmp_path / "moving_labels.nii.gz",
                           "--target-labels", ph / "sub-3000_labels.nii.gz", "--iterations", "4")
    assert code == 0
    assert "{" not in out  # no raw dict
    assert "registered with mi (multires, 4 iterations)" in out
    assert "Dice (mean over labels) 0." in out and " -> 0." in out
    listed = [line.split()[0] for line in out.split("files written in", 1)[1].splitlines()[1:]]
    assert sorted(listed) == sorted(p.name for p in out_dir.iterdir())
    assert "warped_labels.nii.gz" in listed and "summary.json" in listed
