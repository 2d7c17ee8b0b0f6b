"""Helpers for tests that drive ``imse-study`` as a user does: files on disk, the CLI's exit status,
what it printed, and hashes that show an input was left untouched."""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from imse_study.cli import main
from imse_study.evaluator import Evaluator, EvaluatorMeta, save_checkpoint


def run_cli(*args: object) -> tuple[int, str, str]:
    """``imse-study ARGS`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr that are not warnings, notes or progress bars."""
    lines = [line.rsplit("\r", 1)[-1] for line in stderr.splitlines()]
    return [line for line in lines if line.strip() and not line.startswith(("warning: ", "note: "))
            and "%|" not in line]


def assert_one_line_error(code: int, stderr: str, *fragments: str) -> str:
    """Exit status 2, no traceback, one error line naming the command and holding ``fragments``."""
    lines = error_lines(stderr)
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("imse-study"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def write_image(path: Path, shape: tuple[int, ...], seed: int = 0, affine: np.ndarray | None = None,
                dtype: type = np.float32) -> Path:
    """A smooth random image (blobs, not noise) as NIfTI."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 3, n) for n in shape], indexing="ij")
    data = sum(np.sin(g * rng.uniform(1, 3) + rng.uniform(0, 3)) for g in grids) * 100
    nib.save(nib.Nifti1Image(data.astype(dtype), np.eye(4) if affine is None else affine), str(path))
    return path


def write_evaluator(path: Path, dim: int) -> Path:
    """A tiny untrained T1 evaluator (width 2, one block) trained, says its record, at 1 mm: enough to
    exercise every code path fast, on images of 1 mm voxels as they are."""
    torch.manual_seed(0)
    meta = EvaluatorMeta(modality="t1", dim=dim, size=(16,) * dim, width=2, n_blocks=1, normalisation="mr",
                         noise="shuffle_remap", n_range=(2, 50), profile="smoke", spacing=(1.0,) * dim)
    save_checkpoint(path, Evaluator(dim, 2, 1), meta)
    return path


def digest(*paths: Path) -> dict[str, str]:
    """SHA-256 of each existing file, to show that a command left its inputs as they were."""
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths if Path(p).is_file()}


def listing(folder: Path) -> list[str]:
    """Every path below ``folder`` (hidden ones too), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))
