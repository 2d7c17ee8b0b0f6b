"""Throughput of ``imse-study qa --pairs`` on a cohort of phantom pairs: local worker processes,
and the same cohort on a local Dask cluster (``--scheduler``).

The cohort: ``--pairs`` (default 200) 2D phantom test pairs (version 1, quick profile), the T2
image moved by the paper's random transform (section 4.1, seed per pair) scaled by factors 0 to 2
(several misalignment sizes), the T1 image the target, written as NIfTI (scaled to [-1, 1], 1 mm
affine of the phantom's spacing) into a temp folder with a pairs.csv. Each run is the CLI as a user
runs it (a subprocess, from start to exit, the evaluator ``phantom-t1-2d``), into a fresh output
folder; its wall time gives pairs/s. Also reported: Spearman rho of each run's misalignment
estimate with the transform's scale factor (a sanity check that the runs agree, not a calibration
measure: see benchmarks/qa_calibration.py).

Writes ``benchmarks/results/qa/cohort.md`` (refused if present unless ``--overwrite``).

    python benchmarks/qa_cohort.py                    # 200 pairs: --workers 2, then a 2-worker LocalCluster
    python benchmarks/qa_cohort.py --pairs 40 --baseline
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imse_study.atomic import atomic_write  # noqa: E402
from imse_study.augment.spatial import random_spatial_displacement  # noqa: E402
from imse_study.data.aligned import load_aligned  # noqa: E402
from imse_study.data.io import save_nifti  # noqa: E402
from imse_study.warp import warp  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "qa" / "cohort.md"
FACTORS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
EVALUATOR = "phantom-t1-2d"


def export_cohort(folder: Path, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` misaligned T2 -> T1 phantom test pairs as NIfTI in ``folder`` and ``folder/pairs.csv``."""
    aligned = load_aligned("t2", "t1", "test", dim=2, profile="quick")
    spacing = tuple(float(s) for s in aligned.spacing)
    affine = np.diag([*spacing, 1.0, 1.0])
    shape = tuple(aligned.images["t2"].shape[2:])
    rows = []
    for i in range(n):
        item, factor = i % len(aligned), FACTORS[i % len(FACTORS)]
        field = random_spatial_displacement(shape, 1, generator=torch.Generator().manual_seed(seed + i)) * factor
        moved = warp(aligned.images["t2"][item : item + 1], field)[0, 0].numpy()
        target = aligned.images["t1"][item, 0].numpy()
        names = {"moved": f"p{i:03d}_t2_moved.nii.gz", "target": f"p{i:03d}_t1.nii.gz"}
        save_nifti(folder / names["moved"], moved[..., None].astype(np.float32), affine)
        save_nifti(folder / names["target"], target[..., None].astype(np.float32), affine)
        rows.append({"id": f"p{i:03d}", **names, "moved_modality": "t2", "target_modality": "t1", "factor": factor})
    table = pd.DataFrame(rows)
    table.to_csv(folder / "pairs.csv", index=False)
    return table


def run_qa(csv: Path, out: Path, *extra: str) -> float:
    """Wall seconds of ``imse-study qa --pairs csv -o out EXTRA`` in a subprocess."""
    command = [sys.executable, "-m", "imse_study.cli", "qa", "--pairs", str(csv), "-o", str(out),
               "--evaluator", EVALUATOR, *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def summarise(name: str, out: Path, seconds: float, cohort: pd.DataFrame) -> dict:
    table = pd.read_csv(out / "qa.csv").merge(cohort[["id", "factor"]], on="id")
    ok = table[table["status"] == "ok"]
    rho = stats.spearmanr(ok["misalignment_mm"], ok["factor"]).statistic if len(ok) > 2 else float("nan")
    finished = sorted((out / "pairs" / str(i) / "qa.json").stat().st_mtime for i in ok["id"])
    steady = (len(finished) - 1) / (finished[-1] - finished[0]) if len(finished) > 2 else float("nan")
    return {"run": name, "pairs": len(table), "ok": len(ok), "flagged": int((ok["flagged"] == True).sum()),  # noqa: E712
            "wall_s": round(seconds, 1), "pairs_per_s": round(len(table) / seconds, 2),
            "pairs_per_s_after_first": round(steady, 2),
            "rho_estimate_vs_factor": round(float(rho), 3)}


def load_line() -> str:
    try:
        return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "load average unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", action="store_true", help="also run --workers 1")
    parser.add_argument("--no-dask", action="store_true", help="skip the LocalCluster run")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if RESULT.exists() and not args.overwrite:
        sys.exit(f"{RESULT} exists: pass --overwrite to measure again")
    torch.set_num_threads(1)
    results, notes = [], [f"before: {load_line()}"]
    with tempfile.TemporaryDirectory(prefix="imse-qa-cohort-") as tmp:
        tmp = Path(tmp)
        (tmp / "cohort").mkdir()
        cohort = export_cohort(tmp / "cohort", args.pairs)
        csv = tmp / "cohort" / "pairs.csv"
        runs = [("--workers 1", ["--workers", "1"])] if args.baseline else []
        runs.append((f"--workers {args.workers}", ["--workers", str(args.workers)]))
        for i, (name, extra) in enumerate(runs):
            seconds = run_qa(csv, tmp / f"out{i}", *extra)
            results.append(summarise(name, tmp / f"out{i}", seconds, cohort))
            notes.append(f"after {name}: {load_line()}")
        if not args.no_dask:
            from distributed import LocalCluster

            env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
            with LocalCluster(n_workers=args.workers, processes=True, threads_per_worker=1, dashboard_address=None,
                              env=env) as cluster:
                seconds = run_qa(csv, tmp / "dask", "--scheduler", cluster.scheduler_address)
                results.append(summarise(f"LocalCluster({args.workers} processes x 1 thread)", tmp / "dask",
                                         seconds, cohort))
            notes.append(f"after dask: {load_line()}")
    write(results, notes, args)


def write(results: list[dict], notes: list[str], args: argparse.Namespace) -> None:
    table = pd.DataFrame(results)
    text = "\n".join([
        "# `imse-study qa --pairs`: throughput on a phantom cohort",
        "",
        f"{args.pairs} 2D phantom test pairs (T2 moved by the paper's random transform x {FACTORS}, T1 target), "
        f"evaluator `{EVALUATOR}`; each run is the CLI in a subprocess from start to exit (Python and torch "
        "start-up, evaluator loading, every pair's error.nii.gz + qa.png + qa.json, qa.csv after each pair, "
        "index.html), into a fresh folder. The Dask run excludes starting the cluster.",
        "",
        f"Machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, torch {torch.__version__}. **The machine is shared and loaded** (other "
        "engineers' tests and a background training run on the same 2 cores), so these figures are lower "
        "bounds and vary from run to run:",
        "",
        *[f"- {n}" for n in notes],
        "",
        table.to_markdown(index=False),
        "",
        "`pairs_per_s`: all pairs over the command's wall time; `pairs_per_s_after_first`: from the first "
        "finished pair's qa.json to the last (start-up and evaluator loading left out).",
        "",
        "`rho_estimate_vs_factor`: Spearman rho of the misalignment estimate with the transform's scale factor "
        "(a check that every run scored the pairs alike).",
        "",
        f"Command: `python benchmarks/qa_cohort.py --pairs {args.pairs} --workers {args.workers}"
        f"{' --baseline' if args.baseline else ''}{' --no-dask' if args.no_dask else ''}`",
        "",
    ])
    atomic_write(RESULT, lambda tmp: Path(tmp).write_text(text))
    print(text)


if __name__ == "__main__":
    main()
