"""Run the study's notebooks with papermill and build the Jupyter Book.

``python -m imse_study.study --profile quick`` executes every notebook in ``notebooks/`` for each
of its parameter sets (modality pair, and dimension where it applies) into
``runs/study-quick/<stem>[_<modality>][_<dim>d].ipynb`` (``--out`` picks another folder), each
writing its tidy results beside itself (same stem, ``.csv``), and records the run times in
``run_log.json`` there (and a Markdown table).

``--publish`` (the quick profile only) writes into ``book/experiments/`` instead, the committed
pages the book shows, rewrites the claims page from their CSVs, then runs
``jupyter-book build book/``; nothing else writes into ``book/``.

The notebooks and the book are the checkout's: the one the working folder is in (or below), or
``--repo``; the notebooks it runs find it through ``$IMSE_STUDY_CHECKOUT``
(:mod:`imse_study.checkout`), whatever their working folder.

``--only 00_data,01_evaluator`` runs some notebooks, ``--no-build`` skips the book, ``--jobs 2``
runs two notebooks at a time (one torch thread each on a 2-core machine); a page that reads another's
CSV (02's Table 2 shows page 03's classic tools as reference rows) runs after it. A notebook that
fails stops the run with the path of the partly executed notebook, which shows the failing cell.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from imse_study.checkout import ENV_CHECKOUT, find_checkout, is_checkout
from imse_study.config import PROFILE_NAMES
from imse_study.data.datasets import is_phantom
from imse_study.modalities import CTMR, PAIRS, pair_title

RUN_LOG = "run_log.json"
RUN_LOG_MD = "run_log.md"
MAX_INVOCATIONS = 10  # the run log keeps the last invocations (wall time of whole runs)
PUBLISHED_PROFILE = "quick"  # the profile of the committed pages in book/experiments


@dataclass(frozen=True)
class Experiment:
    """One notebook and the parameter grid it runs over (``modalities``/``dims`` empty: run once)."""

    stem: str
    modalities: tuple[str, ...] = ()
    dims: tuple[int, ...] = ()
    extra: dict = field(default_factory=dict)  # fixed parameters for every run
    extra_by_dim: dict = field(default_factory=dict)  # {dim: parameters} for the runs of one dim
    # (parameter, stem): the 2D runs read the CSV of the page of ``stem`` with the same modality,
    # passed as ``parameter``; they run after that page when it is in the same run
    reads: tuple[str, str] | None = None

    def runs(self) -> list[tuple[str, dict]]:
        """(output stem, parameters) for every point of the grid."""
        out = []
        for modality in self.modalities or (None,):
            for dim in self.dims or (None,):
                params = dict(self.extra)
                if modality is not None:
                    params["modality"] = modality
                if dim is not None:
                    params["dim"] = dim
                    params.update(self.extra_by_dim.get(dim, {}))
                out.append((page_name(self.stem, modality, dim), params))
        return out


def page_name(stem: str, modality: str | None = None, dim: int | None = None) -> str:
    """A run's page (and results CSV) name: ``<stem>[_<modality>][_<dim>d]``; 2D, every notebook's
    default, does not name the page. Notebooks run by hand default their CSV to it, so that runs with
    other parameters in one folder never overwrite each other's results."""
    name = stem if modality is None else f"{stem}_{modality}"
    return name if dim in (None, 2) else f"{name}_{dim}d"


def results_file(given: str | os.PathLike | None, stem: str, modality: str | None = None,
                 dim: int | None = None) -> Path:
    """A notebook's results CSV: the ``results_csv`` it was given, else ``<page name>.csv`` beside
    the executed notebook when the ``papermill`` command runs it (not in the folder papermill was
    started in), else in the working folder (see :mod:`imse_study.study.papermill_output`)."""
    from imse_study.study.papermill_output import results_path

    return results_path(page_name(stem, modality, dim) + ".csv", given)


EXPERIMENT_LIST: tuple[Experiment, ...] = (
    Experiment("00_data"),
    Experiment("01_evaluator", modalities=tuple(PAIRS)),
    # 3D: the networks trained on a GPU (no 3D translators are shipped, so no CycleGAN/RegGAN rows)
    # Table 2 shows page 03's classic tools (ANTs, elastix, classic MI/MIND/IMSE) as reference rows
    Experiment("02_register", modalities=tuple(PAIRS), dims=(2, 3),
               extra_by_dim={3: {"methods": ["ncc", "mi", "mind", "imse_bc", "imse_sr"]}},
               reads=("reference_csv", "03_traditional")),
    Experiment("03_traditional", modalities=tuple(PAIRS)),
    Experiment("04_translation", modalities=tuple(PAIRS)),
    Experiment("05_spatial_error", modalities=tuple(PAIRS)),
    # Table 3 is trained for CT-MR only in the quick profile (the paper's mr_to_ct row)
    Experiment("06_shuffle_remap_ablation", modalities=(CTMR,)),
    # the full diagnostic (every variant) is `python -m imse_study.study.diagnostic`; the
    # book's page runs the four main variants on 8 pairs (about 4 minutes per page on one core)
    Experiment("07_robustness", modalities=tuple(PAIRS),
               extra={"n_pairs": 8, "variants": ["imse", "mi", "mind", "imse_robust"]}),
    # beyond the paper (issue 17): IMSE's QA against MI, NMI, LNCC, MIND, translated MAE, the Jacobian
    Experiment("08_qa", modalities=tuple(PAIRS)),
)

def paper_tables(path: str | Path | None = None) -> dict:
    """The paper's numbers (the checkout's ``book/paper_tables.yaml``, a copy of the transcription with attribution)."""
    path = Path(path) if path else find_checkout() / "book" / "paper_tables.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the paper's tables live in the repository's book/ folder")
    return yaml.safe_load(path.read_text())


def experiment_names() -> list[str]:
    return [e.stem for e in EXPERIMENT_LIST]


def select(only: str | list[str] | None) -> list[Experiment]:
    """The experiments named in ``only`` (comma-separated stems; all when empty)."""
    return sorted({stem: e for stem, e in _selection(only)}.values(), key=EXPERIMENT_LIST.index)


def plan(only: str | list[str] | None) -> list[tuple[str, str, dict]]:
    """(stem, page name, parameters) of every run named in ``only``: a notebook stem (all its pages,
    e.g. ``02_register``) or one page (e.g. ``02_register_ctmr_3d``); everything when empty."""
    return [(e.stem, name, params) for page, e in _selection(only) for name, params in e.runs()
            if page in (e.stem, name)]


def link_pages(runs: list[tuple[str, str, dict]], out_dir: Path) -> list[tuple[str, str, dict]]:
    """Give each run that reads another page's CSV (``Experiment.reads``) that CSV's name when the page
    runs in this plan or already lies in ``out_dir`` (the notebooks run in ``out_dir``); otherwise the
    notebook falls back on its default (the committed page)."""
    known = {e.stem: e for e in EXPERIMENT_LIST}
    names = {name for _, name, _ in runs}
    out = []
    for stem, name, params in runs:
        e = known.get(stem)
        if e is not None and e.reads is not None and params.get("dim", 2) == 2 and "modality" in params:
            parameter, other = e.reads
            page = page_name(other, params["modality"])
            if page in names or (out_dir / f"{page}.csv").exists():
                params = {**params, parameter: f"{page}.csv"}
        out.append((stem, name, params))
    return out


def dependencies(runs: list[tuple[str, str, dict]]) -> dict[str, set[str]]:
    """For each run, the runs of the plan whose CSV it reads (given as a parameter ``<page>.csv``)."""
    names = {name for _, name, _ in runs}
    return {name: {v.removesuffix(".csv") for v in params.values()
                   if isinstance(v, str) and v.endswith(".csv") and v.removesuffix(".csv") in names - {name}}
            for _, name, params in runs}


def _in_order(runs: list[tuple[str, str, dict]]) -> list[tuple[str, str, dict]]:
    """``runs`` with every run after the runs it reads (stable otherwise)."""
    needs, done, out, left = dependencies(runs), set(), [], list(runs)
    while left:
        ready = next(r for r in left if needs[r[1]] <= done or not (needs[r[1]] & {x[1] for x in left}))
        left.remove(ready)
        out.append(ready)
        done.add(ready[1])
    return out


def _selection(only: str | list[str] | None) -> list[tuple[str, Experiment]]:
    if not only:
        return [(e.stem, e) for e in EXPERIMENT_LIST]
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only) if n.strip()]
    known = {e.stem: e for e in EXPERIMENT_LIST}
    pages = {name: e for e in EXPERIMENT_LIST for name, _ in e.runs()}
    unknown = [n for n in names if n not in known and n not in pages]
    if unknown:
        raise SystemExit(f"error: unknown notebook(s) {', '.join(unknown)}; available: {', '.join(known)} "
                         f"or one page of them ({', '.join(pages)})")
    return [(n, known.get(n) or pages[n]) for n in names]


def environment() -> dict:
    """Versions and hardware, for the reproducibility page."""
    from importlib import metadata

    versions = {}
    for pkg in ("imse-study", "torch", "monai", "numpy", "scipy", "scikit-image", "nilearn", "pandas", "seaborn",
                "papermill", "jupyter-book", "ipywidgets"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        import torch

        threads, gpu = torch.get_num_threads(), (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    except Exception:  # pragma: no cover - torch is a dependency
        threads, gpu = None, None
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "torch_threads": threads, "gpu": gpu, "versions": versions}


def retitle(path: Path, params: dict) -> None:
    """Add the parameter set to the executed notebook's title (its first ``# `` heading), so that the
    book's pages of one notebook run with different parameters have different titles; and tag
    papermill's injected-parameters cell ``remove-cell`` (Jupyter Book hides cells by that tag only;
    the page shows the parameters used in a table of its own)."""
    import nbformat

    parts = [pair_title(params["modality"])] if "modality" in params else []
    if "dim" in params:
        parts.append(f"{params['dim']}D")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    for cell in nb.cells:
        if parts and cell.cell_type == "markdown" and cell.source.startswith("# "):
            first, _, rest = cell.source.partition("\n")
            suffix = f" ({', '.join(parts)})"
            if not first.endswith(suffix):
                cell.source = first + suffix + ("\n" + rest if rest else "")
            break
    nbformat.write(nb, path)


def execute(stem: str, name: str, params: dict, out_dir: Path, profile: str, seed: int,
            notebooks: Path | None = None, extra: dict | None = None) -> dict:
    """Run one notebook of ``notebooks`` (default: the checkout's) through papermill into
    ``out_dir/name.ipynb``; returns its run record."""
    import papermill as pm

    notebooks = notebooks or find_checkout() / "notebooks"
    source = notebooks / f"{stem}.ipynb"
    if not source.exists():
        raise FileNotFoundError(f"notebook {source} not found")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.ipynb"
    parameters = {**params, "profile": profile, "seed": seed, "results_csv": f"{name}.csv", **(extra or {})}
    if is_checkout(notebooks.parent):  # the kernel runs in out_dir: this is how its notebook finds the checkout
        os.environ[ENV_CHECKOUT] = str(notebooks.parent.resolve())
    start = time.perf_counter()
    from imse_study.study.kernel_start import SerialStartKernelManager

    pm.execute_notebook(str(source), str(target), parameters=parameters, cwd=str(out_dir),
                        progress_bar=False, kernel_name="python3", log_output=False,
                        kernel_manager_class=SerialStartKernelManager)
    seconds = time.perf_counter() - start
    retitle(target, params)
    return {"notebook": f"notebooks/{stem}.ipynb", "output": target.name, "parameters": parameters,
            "seconds": round(seconds, 1), "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "csv": (out_dir / f"{name}.csv").exists()}


def write_run_log(out_dir: Path, records: list[dict], profile: str, wall: float) -> Path:
    """Merge ``records`` into ``run_log.json`` (keyed by output notebook) and write ``run_log.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RUN_LOG
    log = json.loads(path.read_text()) if path.exists() else {}
    runs = log.get("runs", {})
    for r in records:
        runs[r["output"]] = r
    invocation = {"command": "python -m imse_study.study " + " ".join(sys.argv[1:]), "profile": profile,
                  "wall_seconds": round(wall, 1), "notebooks": [r["output"] for r in records],
                  "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    history = (log.get("invocations") or [])[-(MAX_INVOCATIONS - 1):] + [invocation]
    log.update({"runs": dict(sorted(runs.items())), "environment": environment(),
                "last_invocation": invocation, "invocations": history})
    path.write_text(json.dumps(log, indent=2) + "\n")
    (out_dir / RUN_LOG_MD).write_text(run_log_markdown(log))
    return path


def run_log_markdown(log: dict) -> str:
    """The run log as Markdown tables (included by ``book/reproducibility.md``)."""
    lines = ["| executed notebook | profile | parameters | run time (s) | finished (UTC) |", "|---|---|---|---|---|"]
    for r in log.get("runs", {}).values():
        p = {k: v for k, v in r["parameters"].items() if k not in ("results_csv",)}
        args = " ".join(f"`{k}={v}`" for k, v in p.items() if k != "profile")
        lines.append(f"| `{r['output']}` | {p.get('profile')} | {args} | {r['seconds']} | {r['finished']} |")
    env = log.get("environment", {})
    inv = log.get("last_invocation", {})
    lines += ["", f"Last invocation: `{inv.get('command', '')}` (profile {inv.get('profile')}, "
                  f"{inv.get('wall_seconds')} s of wall time for {len(inv.get('notebooks', []))} notebook(s))."]
    history = log.get("invocations") or []
    if history:
        lines += ["", "| invocation | notebooks | wall time (s) | finished (UTC) |", "|---|---|---|---|"]
        lines += [f"| `{h.get('command', '')}` | {len(h.get('notebooks', []))} | {h.get('wall_seconds')} | "
                  f"{h.get('finished', '')} |" for h in history]
    lines += ["",
              "| environment | |", "|---|---|",
              f"| python | {env.get('python')} |", f"| platform | {env.get('platform')} |",
              f"| CPU | {env.get('cpu')} ({env.get('cpu_count')} logical cores, torch threads {env.get('torch_threads')}) |",
              f"| GPU | {env.get('gpu') or 'none'} |"]
    for k, v in env.get("versions", {}).items():
        lines.append(f"| {k} | {v} |")
    return "\n".join(lines) + "\n"


def build_book(book: Path) -> None:
    """``jupyter-book build book/`` (notebooks are not re-executed: ``execute_notebooks: off``)."""
    exe = shutil.which("jupyter-book")
    if exe is None:
        raise SystemExit("error: jupyter-book is not installed (pip install 'jupyter-book<2')")
    result = subprocess.run([exe, "build", str(book)], text=True, capture_output=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"error: jupyter-book build {book} failed (exit {result.returncode})")
    print(f"book: {book / '_build' / 'html' / 'index.html'}")


def previous_seconds(out_dir: Path) -> dict[str, float]:
    """Run time of each executed notebook in ``out_dir``'s run log (empty if there is none)."""
    path = out_dir / RUN_LOG
    if not path.exists():
        return {}
    try:
        runs = json.loads(path.read_text()).get("runs", {})
    except (ValueError, AttributeError):
        return {}
    return {Path(k).stem: float(v.get("seconds", 0.0)) for k, v in runs.items()}


@contextlib.contextmanager
def kernel_progress(jobs: int) -> Iterator[None]:
    """Where the kernels' progress bars go while the study runs (they inherit the environment): with
    one job, this terminal; with several, nowhere, since bars of parallel kernels would overwrite each
    other and this process draws one bar per page. A value the user set is kept."""
    from imse_study.progress import ENV_PROGRESS

    before = os.environ.get(ENV_PROGRESS)
    os.environ[ENV_PROGRESS] = before or ("terminal" if jobs == 1 else "off")
    try:
        yield
    finally:
        if before is None:
            del os.environ[ENV_PROGRESS]


def run_plan(plan: list[tuple[str, str, dict]], out_dir: Path, profile: str, seed: int, extra: dict,
             jobs: int, tqdm, notebooks: Path | None = None) -> tuple[list[dict], tuple[tuple[str, str], BaseException] | None]:
    """Execute ``plan`` ((stem, name, params) triples), ``jobs`` notebooks at a time.

    With several jobs the notebooks are independent kernels in separate processes; the longest
    (by the previous run log) start first so that the last one to finish is a short one. Stops
    submitting at the first failure and returns the records so far with that failure.
    ``notebooks``: the folder of notebooks (default: the checkout's).
    """
    notebooks = notebooks or find_checkout() / "notebooks"
    records: list[dict] = []
    plan = _in_order(plan)
    needs = dependencies(plan)
    bar = tqdm(total=len(plan), desc=f"notebooks ({profile})", unit="nb")
    if jobs == 1:
        for stem, name, params in plan:
            bar.set_postfix_str(name)
            try:
                records.append(execute(stem, name, params, out_dir, profile, seed, notebooks, extra))
            except Exception as exc:  # papermill's error names the cell
                bar.close()
                return records, ((stem, name), exc)
            bar.update()
            bar.write(f"{name}: {records[-1]['seconds']:.1f} s")
        bar.close()
        return records, None

    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    before = previous_seconds(out_dir)
    queue = sorted(plan, key=lambda item: -before.get(item[1], 0.0))
    failure = None
    finished: set[str] = set()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        running = {}
        while queue or running:
            while queue and len(running) < jobs:  # a failure empties the queue
                ready = [item for item in queue if needs[item[1]] <= finished]  # the pages it reads are done
                if not ready:
                    break
                queue.remove(ready[0])
                stem, name, params = ready[0]
                running[pool.submit(execute, stem, name, params, out_dir, profile, seed, notebooks, extra)] = (stem, name)
            bar.set_postfix_str(", ".join(name for _, name in running.values()))
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                stem, name = running.pop(future)
                try:
                    records.append(future.result())
                except Exception as exc:
                    failure = failure or ((stem, name), exc)
                    continue
                finished.add(name)
                bar.update()
                bar.write(f"{name}: {records[-1]['seconds']:.1f} s")
            if failure is not None:
                queue.clear()
    bar.close()
    return records, failure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imse_study.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="quick")
    parser.add_argument("--repo", type=Path, help="the checkout whose notebooks and book to run (default: the one "
                                                   "the working folder is in)")
    parser.add_argument("--only", default="", help=f"comma-separated notebooks ({', '.join(experiment_names())}) "
                                                   "or single pages (e.g. 02_register_ctmr_3d)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="folder for the executed notebooks and their CSVs "
                                                  "(default runs/study-<profile>)")
    parser.add_argument("--publish", action="store_true",
                        help=f"rewrite the book's pages: run into book/experiments (profile {PUBLISHED_PROFILE} only), "
                             "rewrite the claims page, then build the book")
    parser.add_argument("--no-build", action="store_true", help="with --publish: do not build the book afterwards")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="an extra parameter for every notebook (YAML value), e.g. -p threads 1")
    parser.add_argument("--dataset", default="phantom",
                        help="phantom (bundled) or a manifest name: every network is then trained here (train=True) "
                             "and 00_data, which draws the phantom, is left out")
    parser.add_argument("--root", help="data folder of a manifest data set (default $IMSE_STUDY_DATA/<name>)")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="notebooks run at once (each gets cores/jobs torch threads unless -p threads is "
                             "given); the longest (by the previous run log) start first")
    args = parser.parse_args(argv)

    from tqdm.auto import tqdm

    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        repo = find_checkout(args.repo)
    except FileNotFoundError as err:
        parser.error(str(err))
    extra = {k: yaml.safe_load(v) for k, v in args.parameter}
    if args.jobs > 1 and "threads" not in extra:  # share the cores instead of oversubscribing them
        extra["threads"] = max(1, (os.cpu_count() or 1) // args.jobs)
    args.out = output_folder(parser, args, repo / "book")
    runs = link_pages(plan(args.only), args.out)
    if not is_phantom(args.dataset):
        extra = {"dataset": args.dataset, "data_root": args.root, "train": True, **extra}
        runs = [r for r in runs if r[0] != "00_data"]  # it draws the phantom itself
        if not runs:
            parser.error("nothing to run: 00_data shows the phantom only")
    start = time.perf_counter()
    with kernel_progress(args.jobs):
        records, failure = run_plan(runs, args.out, args.profile, args.seed, extra, args.jobs, tqdm, repo / "notebooks")
    if failure is not None:
        write_run_log(args.out, records, args.profile, time.perf_counter() - start)
        (stem, name), exc = failure
        kind = type(exc).__name__
        print(f"\nerror: notebook {stem} ({name}, profile {args.profile}) failed: {kind}: "
              f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}\n"
              f"  the partly executed notebook is {args.out / (name + '.ipynb')}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - start
    write_run_log(args.out, records, args.profile, wall)
    print(f"{len(records)} notebook(s) in {wall:.1f} s -> {args.out}")
    if not args.publish:
        print(f"the book's pages are unchanged (--profile {PUBLISHED_PROFILE} --publish rewrites book/experiments)")
        return 0
    from imse_study.study.claims import write_claims

    print(f"claims page rewritten from the CSVs: {write_claims(args.out)}")
    if not args.no_build:
        build_book(repo / "book")
    return 0


def output_folder(parser: argparse.ArgumentParser, args: argparse.Namespace, book: Path) -> Path:
    """Where a run writes: ``--out``, else ``runs/study-<profile>``; ``book/experiments`` of the
    checkout's ``book`` (the pages the book shows) only with ``--publish``, which takes the
    published profile and the phantom only."""
    if args.publish:
        if args.out is not None:
            parser.error("--publish writes into book/experiments: leave out --out")
        if args.profile != PUBLISHED_PROFILE:
            parser.error(f"--publish: the book shows the {PUBLISHED_PROFILE} profile; run --profile {args.profile} "
                         "without --publish (it writes into runs/study-<profile> or --out)")
        if not is_phantom(args.dataset):
            parser.error(f"--publish: the book shows the phantom study; run --dataset {args.dataset} with --out, a "
                         "folder of your own")
        return book / "experiments"
    out = args.out if args.out is not None else Path("runs") / f"study-{args.profile}"
    if out.resolve().is_relative_to(book.resolve()):
        parser.error(f"--out {out}: book/ holds the committed pages; choose a folder outside it, or rewrite the "
                     f"book's pages with --profile {PUBLISHED_PROFILE} --publish")
    return out


if __name__ == "__main__":
    sys.exit(main())
