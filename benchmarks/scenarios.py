"""The scenarios of "Trustworthy on users' files", re-run end to end through the CLI, as a table.

Each scenario runs ``python -m imse_study ...`` (or ``python -m imse_study.study``, or papermill)
in a fresh folder as a user would, and classifies what happened automatically, from the exit
status, the lines on stderr, a ``Traceback``, hashes of the input files, what was left on disk and
the outputs' content:

    correct          the command did the right thing (a result, or a documented refusal plus warning)
    clear error      exit 2, one line on stderr that names the problem (and what to do), before work
    unhelpful error  it failed, but with several lines, a message that misses the point, or late
    traceback        a Python traceback reached the user
    silent wrong     exit 0 with a wrong result, or a setting silently dropped or changed
    data loss        a file the user had was overwritten or lost
    code executed    a file from a user ran code while it was loaded
    not run          the scenario does not apply here (e.g. a GPU is present) or was not asked for

    python benchmarks/scenarios.py [--slow] [--only NAME,...] [--keep DIR] [--markdown]

``--slow`` adds the scenarios that run notebooks (study without --out, papermill's CSV; minutes).
Not part of the test suite: it takes minutes, and rows of scenarios that are not fixed yet are
expected to show it. The phantom files come from the shared cache; the truncated-cache scenario
works on a private copy of it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nibabel as nib  # noqa: E402

SEVERITY = ("correct", "not run", "clear error", "unhelpful error", "silent wrong", "traceback", "data loss",
            "code executed")


# ------------------------------------------------------------------------------------------------
# Running commands


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        """stderr without warnings and progress bars."""
        lines = [line.rsplit("\r", 1)[-1].strip() for line in self.stderr.splitlines()]
        return [line for line in lines if line and not line.startswith(("warning:", "note:"))
                and not any(bar in line for bar in ("it/s]", "s/it]", "%|"))]

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if "warning" in line.lower()]


def _env(root: Path = ROOT, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}
    env.pop("IMSE_STUDY_MAX_VOXELS", None)
    return env


def cli(*args: object, cwd: Path, env: dict | None = None, timeout: float = 600, module: str = "imse_study") -> Run:
    """``python -m imse_study ARGS`` in ``cwd``."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env or _env(),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        return Run(124, str(err.stdout or ""), f"timed out after {timeout} s", time.perf_counter() - start)
    return Run(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)


def sha(*paths: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths if Path(p).is_file()}


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files/folders below ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*")
                  if ".tmp" in p.name or p.name.endswith(".partial"))


def failure(run: Run, mentions: tuple[str, ...] = (), before_s: float | None = None) -> tuple[str, str]:
    """Classify a run that was meant to fail: clear error, unhelpful error or traceback."""
    if "Traceback" in run.stderr:
        return "traceback", (run.stderr.strip().splitlines() or [""])[-1][:160]
    if run.code == 0:
        return "silent wrong", "exit 0 although the input is bad"
    lines = run.lines
    note = lines[-1][:160] if lines else run.stderr.strip()[-160:]
    missing = [m for m in mentions if not any(m.lower() in line.lower() for line in lines)]
    if len(lines) != 1:
        return "unhelpful error", f"{len(lines)} lines: {note}"
    if missing:
        return "unhelpful error", f"does not mention {missing}: {note}"
    if before_s is not None and run.seconds > before_s:
        return "unhelpful error", f"after {run.seconds:.0f} s (work first): {note}"
    return "clear error", note


def worst(*results: tuple[str, str]) -> tuple[str, str]:
    outcome = max((r[0] for r in results), key=SEVERITY.index)
    return outcome, " | ".join(r[1] for r in results if r[1])


# ------------------------------------------------------------------------------------------------
# Shared inputs


class Data:
    """Phantom files (smoke profile) and a small trained evaluator run, made once on demand."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._done: dict[str, Path] = {}

    def phantom(self, dim: int = 2) -> Path:
        key = f"phantom{dim}"
        if key not in self._done:
            out = self.folder / key
            run = cli("phantom", "--out", out, "--profile", "smoke", "--dim", dim, cwd=self.folder)
            if run.code != 0:
                raise RuntimeError(f"could not write the phantom: {run.stderr[-500:]}")
            self._done[key] = out
        return self._done[key]

    def image(self, name: str, dim: int = 2) -> Path:
        return self.phantom(dim) / f"sub-3000_{name}.nii.gz" if dim == 2 else next(
            self.phantom(dim).glob(f"sub-*_{name}.nii.gz"))


TRAIN = ("--profile", "smoke", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--width", "4",
         "--blocks", "1", "--threads", "1")


def train_run(out: Path, *extra: str) -> Run:
    return cli("train-evaluator", "--out", out, *TRAIN, *extra, cwd=out.parent)


def evil_pickle(path: Path, marker: Path) -> None:
    """A .pt whose unpickling makes the folder ``marker``: code from a file, run at load time."""
    import torch

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    torch.save({"state_dict": Payload(), "meta": {}}, path)


def repo_copy(dest: Path) -> Path:
    """The tracked files of this checkout (with their working-tree content) in ``dest``."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in filter(None, files.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def unwritable_folder(work: Path) -> Path:
    """A folder this user cannot create files in: read-only bits, or sysfs for root."""
    if os.geteuid() != 0:
        folder = work / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    return Path("/sys")


# ------------------------------------------------------------------------------------------------
# Scenarios


SCENARIOS: list[tuple[str, str, str, bool, Callable]] = []


def scenario(name: str, area: str, title: str, slow: bool = False):
    def register(fn):
        SCENARIOS.append((name, area, title, slow, fn))
        return fn
    return register


@scenario("evil-evaluator", "security", "a malicious .pt given as --evaluator")
def _(work: Path, data: Data):
    marker = work / "PWNED"
    evil_pickle(work / "evil.pt", marker)
    run = cli("error-map", data.image("t1"), data.image("t2"), "--evaluator", work / "evil.pt", "-o",
              work / "e.nii.gz", cwd=work)
    if marker.exists():
        return "code executed", f"loading evil.pt ran os.mkdir (exit {run.code})"
    return failure(run, ("evil.pt",))


@scenario("evil-resume", "security", "a malicious last.pt in a run folder, then --resume")
def _(work: Path, data: Data):
    run_dir = work / "run"
    train_run(run_dir)
    marker = work / "PWNED"
    evil_pickle(run_dir / "last.pt", marker)
    run = train_run(run_dir, "--resume")
    if marker.exists():
        return "code executed", f"--resume ran os.mkdir from last.pt (exit {run.code})"
    return failure(run, ("last.pt",))


@scenario("train-into-finished", "clobbering", "train-evaluator again into a finished run folder")
def _(work: Path, data: Data):
    run_dir = work / "run"
    first = train_run(run_dir)
    if first.code != 0:
        return failure(first)
    before = sha(*run_dir.glob("*.pt"))
    again = train_run(run_dir, "--seed", "1")
    if again.code == 0 and sha(*run_dir.glob("*.pt")) != before:
        return "data loss", "the finished run's checkpoints were replaced without --overwrite"
    return failure(again, ("--resume",))


@scenario("error-map-o-input", "clobbering", "error-map a b -o a (output = an input)")
def _(work: Path, data: Data):
    a, b = shutil.copy(data.image("t1"), work / "a.nii.gz"), shutil.copy(data.image("t2"), work / "b.nii.gz")
    before = sha(a, b)
    run = cli("error-map", a, b, "--evaluator", "phantom-t1-2d", "-o", a, cwd=work)
    if sha(a, b) != before:
        return "data loss", f"the input was overwritten (exit {run.code})"
    return failure(run, ("input",))


@scenario("output-is-input-elsewhere", "clobbering",
          "translate -o a symlink to the source; register -o a folder holding the moving image as warped.nii.gz")
def _(work: Path, data: Data):
    a, b = shutil.copy(data.image("t1"), work / "a.nii.gz"), shutil.copy(data.image("t2"), work / "b.nii.gz")
    (work / "link.nii.gz").symlink_to(b)
    out = work / "out"
    out.mkdir()
    moving = shutil.copy(data.image("t1"), out / "warped.nii.gz")
    before = sha(a, b, moving)
    runs = [cli("translate", a, b, "--evaluator", "phantom-t1-2d", "-o", work / "link.nii.gz", cwd=work),
            cli("register", moving, b, "-o", out, "--iterations", "8", cwd=work)]
    if sha(a, b, moving) != before:
        return "data loss", "an input was overwritten"
    return worst(*(failure(r, ("input",)) for r in runs))


@scenario("study-without-out", "clobbering", "python -m imse_study.study --profile smoke (no --out)", slow=True)
def _(work: Path, data: Data):
    repo = repo_copy(work / "repo")
    page = repo / "book" / "experiments" / "00_data.ipynb"
    before = sha(page)
    proc = subprocess.Popen([sys.executable, "-m", "imse_study.study.runner", "--profile", "smoke", "--only", "00_data",
                             "--no-build"], cwd=repo, env=_env(repo), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    start = time.perf_counter()
    while proc.poll() is None and time.perf_counter() - start < 120 and sha(page) == before:
        time.sleep(1)
    changed = sha(page) != before
    running = proc.poll() is None
    if running:
        os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate()
    if changed:
        return "data loss", "book/experiments/00_data.ipynb (the committed quick-profile page) was overwritten"
    run = Run(0 if running else proc.returncode, out, err, time.perf_counter() - start)
    if "Traceback" in err:
        return "traceback", err.strip().splitlines()[-1][:160]
    if run.code == 0:
        runs = repo / "runs"
        written = sorted(str(p.relative_to(repo)) for p in runs.glob("*")) if runs.exists() else []
        return "correct", f"the committed page untouched; the run writes {written or 'elsewhere'}"
    return failure(run, ("--out",))


@scenario("resume-changed-lr", "clobbering", "train-evaluator --resume with another --lr")
def _(work: Path, data: Data):
    run_dir = work / "run"
    train_run(run_dir)
    run = train_run(run_dir, "--resume", "--lr", "0.5")
    if run.code == 0:
        return "silent wrong", "resumed with a different learning rate without a word"
    return failure(run, ("lr",))


@scenario("tmp-files-left", "clobbering",
          "Ctrl-C during register; a temp file left by a killed writer in a run folder, then --resume")
def _(work: Path, data: Data):
    proc = subprocess.Popen([sys.executable, "-m", "imse_study", "register", str(data.image("t1")),
                             str(data.image("t2")), "-o", str(work / "out"), "--iterations", "5000"], cwd=work,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    start = time.perf_counter()
    stepping = re.compile(r"\|\s*[1-9]\d*/\d+ ")  # a progress bar past its first steps (torch's lazy imports done)
    while not stepping.search("".join(chunks)) and proc.poll() is None and time.perf_counter() - start < 180:
        time.sleep(0.2)
    time.sleep(0.5)
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=300)  # the interrupt lands when the torch operation under way returns
    except subprocess.TimeoutExpired:
        proc.kill()
        return "unhelpful error", "register still ran 300 s after Ctrl-C"
    reader.join(timeout=5)
    run = Run(proc.returncode, proc.stdout.read(), "".join(chunks), time.perf_counter() - start)
    left = leftovers(work) + (["out/"] if (work / "out").exists() else [])
    if finished:
        interrupt = ("not run", f"register ended (exit {run.code}) before Ctrl-C could be sent")
    elif "Traceback" in run.stderr:
        interrupt = ("traceback", f"Ctrl-C printed a traceback (exit {run.code})")
    elif run.code == 0:
        interrupt = ("unhelpful error", "Ctrl-C was ignored: the registration ran to its end (exit 0)")
    elif left:
        interrupt = ("silent wrong", f"Ctrl-C left {left} (exit {run.code})")
    elif run.code in (130, -signal.SIGINT) and len(run.lines) == 1:  # a shell shows both as 130
        interrupt = ("correct", "Ctrl-C: exit 130, one line, nothing left")
    else:
        interrupt = ("unhelpful error", f"Ctrl-C: exit {run.code}, {len(run.lines)} lines: {run.lines[-1:]}")
    run_dir = work / "run"
    train_run(run_dir)
    planted = run_dir / ".last.pt.k3j9x2ab.tmp"
    planted.write_bytes(b"half a checkpoint")
    resumed = train_run(run_dir, "--resume", "--epochs", "2")
    if not planted.exists():
        stale = ("correct", "the stale temp file was removed")
    elif any(planted.name in w for w in resumed.warnings):
        stale = ("correct", "the stale temp file was reported")
    else:
        stale = ("silent wrong", f"{planted.name} still there after --resume (exit {resumed.code}), unreported")
    return worst(interrupt, stale)


def _axial_axis(affine: np.ndarray) -> int:
    """The array axis that runs most nearly along the world's superior direction."""
    return int(np.argmax(np.abs(np.asarray(affine)[2, :3]) / np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)))


@scenario("2d-evaluator-zyx", "geometry", "a 2D evaluator on a (z, y, x) volume and on the same volume as (x, y, z)")
def _(work: Path, data: Data):
    from imse_study.data.io import reorient, save_nifti

    results = {}
    for name, codes in (("zyx", ("S", "P", "R")), ("xyz", ("R", "P", "S"))):
        for modality in ("t1", "t2"):
            img = nib.load(data.image(modality, dim=3))
            array, affine = reorient(np.asarray(img.dataobj, dtype=np.float32), img.affine, codes)
            save_nifti(work / f"{modality}_{name}.nii.gz", array, affine)
        run = cli("error-map", work / f"t1_{name}.nii.gz", work / f"t2_{name}.nii.gz", "--evaluator",
                  "phantom-t1-2d", "-o", work / f"e_{name}.nii.gz", cwd=work)
        if run.code != 0:
            return failure(run, ("axial",))
        img = nib.load(work / f"e_{name}.nii.gz")
        results[name] = reorient(np.asarray(img.dataobj), img.affine, ("S", "P", "R"))[0]
    difference = float(np.abs(results["zyx"] - results["xyz"]).mean())
    if difference > 1e-3:
        return "silent wrong", f"the two layouts of one volume give different maps (mean |diff| {difference:.3f})"
    return "correct", "both layouts give the same map (sliced along the header's axial axis)"


@scenario("register-different-grids", "geometry", "register a moving image on another grid than the target's")
def _(work: Path, data: Data):
    from imse_study.data.io import save_nifti

    img = nib.load(data.image("t1"))
    affine = img.affine.copy()
    affine[:3, 3] = affine[:3, :3] @ [4, 4, 0] + affine[:3, 3]  # voxel (4, 4, 0) becomes the origin
    save_nifti(work / "moving.nii.gz", np.asarray(img.dataobj)[4:-4, 4:-4], affine)
    run = cli("register", work / "moving.nii.gz", data.image("t2"), "-o", work / "out", "--iterations", "8", cwd=work)
    if run.code != 0:
        return failure(run, ("grid",))
    warped, target = nib.load(work / "out" / "warped.nii.gz"), nib.load(data.image("t2"))
    if warped.shape == target.shape and np.allclose(warped.affine, target.affine, atol=1e-3):
        return "correct", "resampled onto the target's grid and registered"
    return "silent wrong", f"warped {warped.shape} is not on the target grid {target.shape}"


@scenario("stack-through-plane", "geometry", "register two 2D slice stacks (20 mm apart) with mi")
def _(work: Path, data: Data):
    run = cli("register", data.image("t1"), data.image("t2"), "-o", work / "out", "--iterations", "8", cwd=work)
    if run.code != 0:
        return failure(run)
    field = np.asarray(nib.load(work / "out" / "displacement.nii.gz").dataobj)
    through = float(np.abs(field[..., 2]).max())
    if through > 1e-3:
        return "silent wrong", f"voxels moved up to {through:.2f} voxels between slices 20 mm apart"
    return "correct", "no through-plane displacement"


@scenario("spacing-5mm", "geometry", "error-map with the 2 mm phantom-t1-2d on 5 mm images, and on them at 2.5 mm")
def _(work: Path, data: Data):
    from imse_study.data.geometry import resize
    from imse_study.data.io import save_nifti

    maps = {}
    for name, factor in (("coarse", 1), ("fine", 2)):
        for modality in ("t1", "t2"):
            img = nib.load(data.image(modality))
            array = np.asarray(img.dataobj, dtype=np.float32)
            affine = img.affine.copy()
            affine[:3, :2] /= factor  # the same field of view in voxels half the size
            affine[:3, 3] -= affine[:3, :2].sum(axis=1) * (factor - 1) / 2
            shape = (array.shape[0] * factor, array.shape[1] * factor, array.shape[2])
            save_nifti(work / f"{modality}_{name}.nii.gz", resize(array, shape), affine)
        run = cli("error-map", work / f"t1_{name}.nii.gz", work / f"t2_{name}.nii.gz", "--evaluator", "phantom-t1-2d",
                  "-o", work / f"e_{name}.nii.gz", cwd=work)
        if run.code != 0:
            return failure(run, ("mm",))
        maps[name] = np.asarray(nib.load(work / f"e_{name}.nii.gz").dataobj)
    difference = float(np.abs(resize(maps["fine"], maps["coarse"].shape) - maps["coarse"]).mean())
    if difference < 0.03:
        return "correct", f"one map at either voxel size (mean |diff| {difference:.3f}): the evaluator's spacing"
    return "silent wrong", f"the map depends on the voxel size (mean |diff| {difference:.3f})"


@scenario("ct-evaluator-t1-reference", "geometry", "error-map with phantom-ct-2d and a T1 reference in scanner units")
def _(work: Path, data: Data):
    from imse_study.data.io import save_nifti

    for modality in ("t1", "t2"):
        img = nib.load(data.image(modality))
        save_nifti(work / f"{modality}.nii.gz", (np.asarray(img.dataobj) + 1.0) * 400.0, img.affine)
    run = cli("error-map", work / "t1.nii.gz", work / "t2.nii.gz", "--evaluator", "phantom-ct-2d", "-o",
              work / "e.nii.gz", cwd=work)
    if run.code != 0:
        return failure(run, ("ct",))
    if any("ct" in w.lower() for w in run.warnings):
        return "correct", f"warned: {run.warnings[0][:120]}"
    return "silent wrong", "a T1 image taken as the CT evaluator's reference without a word"


@scenario("read-only-out", "errors before work", "register -o <a folder nobody may write in>")
def _(work: Path, data: Data):
    folder = unwritable_folder(work)
    runs = [cli("register", data.image("t1"), data.image("t2"), "-o", out, cwd=work)
            for out in (folder / "imse-scenario-out", folder)]
    return worst(*(failure(r, ("write",), before_s=20) for r in runs))


@scenario("wrong-shape-labels", "errors before work", "register --moving-labels of another shape")
def _(work: Path, data: Data):
    nib.save(nib.Nifti1Image(np.zeros((40, 40, 2), np.uint8), np.eye(4)), str(work / "labels.nii.gz"))
    run = cli("register", data.image("t1"), data.image("t2"), "-o", work / "out", "--moving-labels",
              work / "labels.nii.gz", cwd=work)
    result = failure(run, ("labels.nii.gz",), before_s=20)
    if (work / "out").exists() or leftovers(work):
        return worst(result, ("unhelpful error", "left a partial output folder"))
    return result


@scenario("3d-evaluator-2d-stack", "errors before work", "error-map with phantom-t1-3d on a 2-slice stack")
def _(work: Path, data: Data):
    run = cli("error-map", data.image("t1"), data.image("t2"), "--evaluator", "phantom-t1-3d", "-o",
              work / "e.nii.gz", cwd=work)
    if run.code == 0:
        return "correct", "ran: the stack was resampled to the 3D evaluator's spacing"
    return failure(run, ("2D evaluator",))


@scenario("cuda-on-cpu", "errors before work", "train-evaluator --device cuda on a CPU-only torch")
def _(work: Path, data: Data):
    import torch

    if torch.cuda.is_available():
        return "not run", "a CUDA GPU is present"
    return failure(cli("train-evaluator", "--out", work / "run", "--device", "cuda", *TRAIN, cwd=work), ("cpu",))


@scenario("threads-minus-1", "errors before work", "train-evaluator --threads -1")
def _(work: Path, data: Data):
    run = cli("train-evaluator", "--out", work / "run", "--profile", "smoke", "--epochs", "1",
              "--steps-per-epoch", "2", "--threads", "-1", cwd=work)
    return failure(run, ("--threads",))


@scenario("truncated-cache", "errors before work", "a truncated phantom cache .npz, then imse-study phantom")
def _(work: Path, data: Data):
    from imse_study.config import get_profile
    from imse_study.data import phantom

    cache = work / "cache"
    cache.mkdir()
    name = f"phantom-{phantom._cache_key(get_profile('smoke').phantom, 'test', 2)}.npz"
    shared = phantom.cache_dir() / name
    env = _env(IMSE_STUDY_CACHE=str(cache))
    if shared.exists():
        shutil.copy(shared, cache / name)
    else:
        cli("phantom", "--out", work / "first", "--profile", "smoke", cwd=work, env=env)
    (cache / name).write_bytes((cache / name).read_bytes()[:5000])
    run = cli("phantom", "--out", work / "ph", "--profile", "smoke", cwd=work, env=env)
    if run.code == 0:
        if any("damaged" in w or "regenerat" in w for w in run.warnings):
            return "correct", "regenerated with a warning"
        return "correct", "regenerated (no warning)"
    return failure(run, ("cache",))


@scenario("all-zero", "errors before work", "error-map and register with an all-zero image")
def _(work: Path, data: Data):
    img = nib.load(data.image("t1"))
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.float32), img.affine), str(work / "zero.nii.gz"))
    runs = [cli("error-map", work / "zero.nii.gz", data.image("t2"), "--evaluator", "phantom-t1-2d", "-o",
                work / "e.nii.gz", cwd=work),
            cli("register", work / "zero.nii.gz", data.image("t2"), "-o", work / "out", cwd=work)]
    return worst(*(failure(r, ("zero.nii.gz",), before_s=20) for r in runs))


@scenario("one-voxel", "errors before work", "register and translate 1-voxel images")
def _(work: Path, data: Data):
    nib.save(nib.Nifti1Image(np.ones((1, 1, 1), np.float32), np.eye(4)), str(work / "one.nii.gz"))
    runs = [cli("register", work / "one.nii.gz", work / "one.nii.gz", "-o", work / "out", cwd=work),
            cli("translate", work / "one.nii.gz", work / "one.nii.gz", "--evaluator", "phantom-t1-2d", "-o",
                work / "t.nii.gz", cwd=work)]
    return worst(*(failure(r, ("one.nii.gz",)) for r in runs))


@scenario("ignored-options", "errors before work", "register --evaluator with mi; --precision bfloat16 with mi")
def _(work: Path, data: Data):
    base = ("register", data.image("t1"), data.image("t2"), "-o", work / "out", "--iterations", "8")
    runs = [cli(*base, "--evaluator", "phantom-t1-2d", cwd=work), cli(*base, "--precision", "bfloat16", cwd=work)]
    results = [failure(r, (flag,)) for r, flag in zip(runs, ("--evaluator", "--precision"))]
    return worst(*results) if all(r.code != 0 for r in runs) else (
        "silent wrong", "an option the similarity ignores was dropped without a word")


@scenario("negative-weight", "errors before work",
          "register / train-registration --smooth-weight -1; train-translator --weight smooth=-1")
def _(work: Path, data: Data):
    runs = [cli("register", data.image("t1"), data.image("t2"), "-o", work / "out", "--smooth-weight", "-1",
                cwd=work),
            cli("train-registration", "--similarity", "mi", "--moving", "t1", "--target", "t2", "--out",
                work / "vm", "--profile", "smoke", "--epochs", "1", "--steps-per-epoch", "1", "--smooth-weight", "-1",
                cwd=work, timeout=300),
            cli("train-translator", "--kind", "reggan", "--source", "t2", "--target", "t1", "--out", work / "tr",
                "--profile", "smoke", "--weight", "smooth=-1", "--no-progress", cwd=work, timeout=300)]
    return worst(*(failure(r, (">= 0",)) for r in runs))


@scenario("huge-header", "errors before work", "error-map on a 352-byte NIfTI whose header claims 4096^3 voxels")
def _(work: Path, data: Data):
    header = nib.Nifti1Header()
    header.set_data_shape((4096, 4096, 4096))
    header.set_data_dtype(np.float32)
    (work / "huge.nii").write_bytes(header.binaryblock + b"\0" * 4)
    run = cli("error-map", work / "huge.nii", data.image("t2"), "--evaluator", "phantom-t1-2d", "-o",
              work / "e.nii.gz", cwd=work, timeout=300)
    return failure(run, ("IMSE_STUDY_MAX_VOXELS",))


@scenario("error-map-on-register-output", "geometry",
          "error-map on register's warped.nii.gz (a result), and on displacement.nii.gz (a clear error)")
def _(work: Path, data: Data):
    reg = cli("register", data.image("t1"), data.image("t2"), "-o", work / "out", "--iterations", "8", cwd=work)
    if reg.code != 0:
        return failure(reg)
    warped = cli("error-map", work / "out" / "warped.nii.gz", data.image("t2"), "--evaluator", "phantom-t1-2d",
                 "-o", work / "e.nii.gz", cwd=work)
    field = cli("error-map", work / "out" / "displacement.nii.gz", data.image("t2"), "--evaluator",
                "phantom-t1-2d", "-o", work / "f.nii.gz", cwd=work)
    if warped.code != 0:
        return worst(failure(warped), ("unhelpful error", "register's own output is refused"))
    if warped.warnings:
        return "silent wrong", f"register's own output draws a warning: {warped.warnings[0][:100]}"
    refused = failure(field, ("displacement.nii.gz",))
    return ("correct", "warped.nii.gz maps; displacement.nii.gz is refused on one line") if (
        refused[0] == "clear error") else refused


@scenario("slicewise-rule", "geometry", "register a 3D volume with a 2D evaluator (imse), then with --dim 2")
def _(work: Path, data: Data):
    moving, target = data.image("t1", dim=3), data.image("t2", dim=3)
    base = ("register", moving, target, "--similarity", "imse", "--evaluator", "phantom-t1-2d", "--moving-modality",
            "t1", "--target-modality", "t2", "--iterations", "4")
    run = cli(*base, "-o", work / "auto", cwd=work)
    out = work / "auto"
    if run.code != 0:
        refused = failure(run, ("--dim",))
        if refused[0] != "clear error":
            return refused
        run, out = cli(*base, "-o", work / "dim2", "--dim", "2", cwd=work), work / "dim2"
        if run.code != 0:
            return failure(run)
    field = np.asarray(nib.load(out / "displacement.nii.gz").dataobj)
    frozen = [axis for axis in range(3) if not np.any(field[..., axis])]
    axial = _axial_axis(nib.load(moving).affine)
    how = "asked with --dim 2 after a one-line refusal" if out.name == "dim2" else "chosen by itself"
    if not frozen:
        return "correct", f"registered in 3D ({how})"
    if frozen == [axial]:
        return "correct", f"slice by slice along the axial axis {axial} ({how})"
    return "silent wrong", f"slice by slice along axis {frozen}, but the axial axis is {axial} ({how})"


@scenario("papermill-csv", "study", "papermill 02_register.ipynb OUT/out.ipynb -p modality ctmr: where is the CSV?",
          slow=True)
def _(work: Path, data: Data):
    repo = repo_copy(work / "repo")
    out = work / "elsewhere"
    out.mkdir()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "papermill", "notebooks/02_register.ipynb", str(out / "out.ipynb"),
                           "-p", "modality", "ctmr", "-p", "profile", "smoke"], cwd=repo, env=_env(repo),
                          capture_output=True, text=True, timeout=1800)
    run = Run(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)
    if run.code != 0:
        return failure(run)
    committed = repo / "book" / "experiments"  # the book's own copy, there before the run
    found = sorted(str(p.relative_to(work)) for p in work.rglob("02_register_ctmr*.csv")
                   if not p.is_relative_to(committed))
    if any(Path(f).parent == Path("elsewhere") for f in found):
        return "correct", f"beside the output notebook: {found}"
    return "silent wrong", f"the CSV is not beside the output notebook but at {found}"


# ------------------------------------------------------------------------------------------------
# The table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", action="store_true", help="also the scenarios that run notebooks (minutes)")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    wanted = {n for n in args.only.split(",") if n}
    unknown = wanted - {s[0] for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {', '.join(s[0] for s in SCENARIOS)}")
    base = Path(tempfile.mkdtemp(prefix="imse-scenarios-")) if args.keep is None else args.keep
    base.mkdir(parents=True, exist_ok=True)
    data = Data(base / "shared")
    data.folder.mkdir(exist_ok=True)
    rows = []
    for name, area, title, slow, fn in SCENARIOS:
        if wanted and name not in wanted:
            continue
        start = time.perf_counter()
        if slow and not args.slow and name not in wanted:
            outcome, note = "not run", "slow: pass --slow"
        else:
            work = base / name
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            try:
                outcome, note = fn(work, data)
            except Exception as err:  # noqa: BLE001 - a broken scenario is a row, not the end of the table
                outcome, note = "not run", f"the scenario itself failed: {type(err).__name__}: {err}"
        rows.append({"scenario": name, "area": area, "what": title, "outcome": outcome, "note": note,
                     "seconds": round(time.perf_counter() - start, 1)})
        print(f"{name:30s} {outcome:16s} {rows[-1]['seconds']:6.1f} s  {note[:110]}", file=sys.stderr, flush=True)
    _print(rows, args.markdown)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.keep is None:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def _print(rows: list[dict], markdown: bool) -> None:
    counts = {o: sum(r["outcome"] == o for r in rows) for o in SEVERITY}
    if markdown:
        print("| # | area | scenario | outcome | note |\n|---|---|---|---|---|")
        for i, r in enumerate(rows, 1):
            print(f"| {i} | {r['area']} | {r['what']} | **{r['outcome']}** | {r['note'].replace('|', '/')[:200]} |")
    else:
        for i, r in enumerate(rows, 1):
            print(f"{i:2d}  {r['area']:18s} {r['scenario']:30s} {r['outcome']:16s} {r['note'][:120]}")
    print("\n" + ", ".join(f"{o}: {n}" for o, n in counts.items() if n))


if __name__ == "__main__":
    sys.exit(main())
