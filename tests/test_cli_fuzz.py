"""Property: whatever NIfTI files a user hands to ``imse-study``, it gives a result or one line.

Random shapes (1D to 4D, sides 1 to 20), data types, contents (smooth, noise, constant, NaN, inf,
huge values) and headers (oblique, flipped, singular or non-finite affines) go through error-map,
translate and register (mi, imse with a tiny evaluator, the paper's mode) with cheap settings. The
command either succeeds and writes its output, or exits 2 with exactly one error line and writes
nothing; it never prints a traceback and never changes an input file.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from clitools import digest, error_lines, listing, run_cli, write_evaluator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import imse_study.registration.files  # noqa: F401 - imports MONAI, which raises the recursion limit, before Hypothesis runs

pytestmark = pytest.mark.slow  # 100 examples: about 8 s on a quiet core, 20 s and more on a busy one

DTYPES = (np.uint8, np.int16, np.int32, np.float32, np.float64)
# repeated entries weight the draw towards images a command can use, so that results are checked too
CONTENTS = ("smooth", "smooth", "smooth", "noise", "noise", "constant", "nan", "inf", "huge")
SIDES = (20, 20, 13, 13, 8, 8, 5, 3, 2, 1)


@st.composite
def affines(draw) -> np.ndarray:
    """Voxel-to-mm affines as scanners and broken tools write them."""
    kind = draw(st.sampled_from(("identity", "oblique", "oblique", "anisotropic", "anisotropic", "singular", "nan")))
    affine = np.eye(4)
    if kind in ("oblique", "anisotropic", "singular"):
        spacing = draw(st.lists(st.floats(0.3, 6.0), min_size=3, max_size=3))
        signs = draw(st.lists(st.sampled_from((-1.0, 1.0)), min_size=3, max_size=3))
        order = draw(st.permutations((0, 1, 2)))
        affine[:3, :3] = np.eye(3)[:, order] * np.multiply(spacing, signs)
        if kind == "oblique":
            angle = draw(st.floats(-0.8, 0.8))
            c, s = np.cos(angle), np.sin(angle)
            affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ affine[:3, :3]
        if kind == "singular":
            affine[:3, draw(st.integers(0, 2))] = 0.0
        affine[:3, 3] = draw(st.lists(st.floats(-200, 200), min_size=3, max_size=3))
    if kind == "nan":
        affine[draw(st.integers(0, 2)), draw(st.integers(0, 3))] = np.nan
    return affine


@st.composite
def images(draw) -> dict:
    ndim = draw(st.sampled_from((2, 2, 2, 3, 3, 3, 3, 1, 4)))
    shape = tuple(draw(st.lists(st.sampled_from(SIDES), min_size=ndim, max_size=ndim)))
    return {"shape": shape, "dtype": draw(st.sampled_from(DTYPES)), "content": draw(st.sampled_from(CONTENTS)),
            "affine": draw(affines()), "seed": draw(st.integers(0, 2**16)), "gzip": draw(st.booleans())}


def _voxels(spec: dict) -> np.ndarray:
    rng = np.random.default_rng(spec["seed"])
    shape, dtype, content = spec["shape"], np.dtype(spec["dtype"]), spec["content"]
    if content == "constant":
        return np.full(shape, 3, dtype)
    if content == "smooth":
        grids = np.meshgrid(*[np.linspace(0, 3, n) for n in shape], indexing="ij")
        data = 60 + 50 * sum(np.sin(g * rng.uniform(1, 3)) for g in grids) / len(shape)
    else:
        data = rng.normal(60, 30, shape)
    if content == "huge":
        data = data * (1e30 if dtype.kind == "f" else 1.0)
    if dtype.kind != "f":
        info = np.iinfo(dtype)
        return np.clip(data, info.min, info.max).astype(dtype)
    data = data.astype(dtype)
    if content in ("nan", "inf") and data.size:
        data.flat[rng.integers(data.size)] = np.nan if content == "nan" else np.inf
    return data


def _write(path: Path, spec: dict) -> Path:
    """A NIfTI file written field by field, so a broken affine reaches the disk as a broken tool writes it."""
    data = _voxels(spec)
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(data.dtype)
    header["vox_offset"] = 352
    header["qform_code"] = 0
    header["sform_code"] = 1
    for row, name in enumerate(("srow_x", "srow_y", "srow_z")):
        header[name] = spec["affine"][row]
    header["pixdim"][1:4] = 1.0
    raw = header.binaryblock + b"\0" * 4 + data.tobytes(order="F")
    path = path.with_name(path.name + (".nii.gz" if spec["gzip"] else ".nii"))
    path.write_bytes(gzip.compress(raw) if spec["gzip"] else raw)
    return path


COMMANDS = {
    "error-map-2d": ("error-map", "e2", []),
    "translate-3d": ("translate", "e3", []),
    "register-mi": ("register", None, ["--iterations", "4"]),
    "register-paper": ("register", None, ["--mode", "paper", "--iterations", "2", "--similarity", "ncc"]),
    "register-imse": ("register", "e2", ["--iterations", "4", "--similarity", "imse", "--moving-modality", "t1"]),
}


@pytest.fixture(scope="module")
def evaluators(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluators")
    return {"e2": write_evaluator(root / "e2.pt", 2), "e3": write_evaluator(root / "e3.pt", 3)}


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(sorted(COMMANDS)), first=images(), second=images(),
       same_grid=st.sampled_from((True, True, True, False)))
def test_any_files_give_a_result_or_one_line_and_never_touch_the_inputs(evaluators, command, first, second,
                                                                        same_grid):
    if same_grid:  # most real pairs share a grid; the second image keeps its own type and content
        second = {**second, "shape": first["shape"], "affine": first["affine"]}
    name, evaluator, extra = COMMANDS[command]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        a, b = _write(work / "a", first), _write(work / "b", second)
        out = work / ("out" if name == "register" else "out.nii.gz")
        before = digest(a, b)
        options = ["--evaluator", evaluators[evaluator]] if evaluator else []
        code, stdout, stderr = run_cli(name, a, b, "-o", out, *options, *extra)
        assert digest(a, b) == before, "an input file changed"
        assert "Traceback" not in stderr
        if code == 0:
            assert out.exists() and stdout.strip(), stderr
            if name == "register":
                assert {"warped.nii.gz", "displacement.nii.gz", "summary.json"} <= set(listing(out))
        else:
            lines = error_lines(stderr)
            assert code == 2 and len(lines) == 1 and lines[0].startswith(f"imse-study {name}: error: "), stderr
            assert sorted(p.name for p in work.iterdir()) == sorted([a.name, b.name]), "a failed run left files"
