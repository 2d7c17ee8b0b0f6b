"""Registration QA of a whole cohort (``imse-study qa --pairs PAIRS.csv -o OUT``).

Every row of the pairs table (columns ``moved``, ``target``; optional ``moved_modality``,
``target_modality``, ``labels`` and ``id``; relative paths are relative to the table's folder) is
scored by :func:`imse_study.qa.assess_files` into ``OUT/pairs/<id>/`` (``error.nii.gz``,
``qa.png``, ``qa.json``). ``OUT/qa.csv`` holds one row per pair, the QA fields flattened, ranked
worst first (highest misalignment estimate; lowest score where uncalibrated; failed pairs on top),
with ``flagged`` where ``p_failed >= 0.5``; ``OUT/index.html`` shows it as a sortable table with a
thumbnail per pair.

A pair that cannot be scored gives one ``failed`` row with its one-line ``error``, never a failed
run. ``qa.csv`` is rewritten atomically after each finished pair, so a stopped run resumes: pairs
already ``ok`` there are skipped, and a pair whose folder already holds a complete ``qa.json``
(finished just before a stop) is read back rather than scored again.

Pairs run on local worker processes (one torch thread each, the evaluator loaded once per
process), or on an existing Dask cluster (``scheduler``: ``tcp://HOST:8786``; needs the
``distributed`` package here, and imse-study installed on the workers, which must see the images
and the output folder at the same paths, e.g. on a shared file system).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pandas as pd

from imse_study.qa.assess import AUTO, LIKELY_FAILED, QA_OUTPUTS
from imse_study.qa.report import write_report

PAIRS_CSV = "qa.csv"
PAIRS_DIR, PAIR_JSON = "pairs", "pair.json"
REQUIRED = ("moved", "target")
_PRELOAD = ("torch", "imse_study.qa.assess", "imse_study.qa.figure", "imse_study.evaluator.apply", "imse_study.data.io")
OPTIONAL = ("moved_modality", "target_modality", "labels", "id")
FIRST_COLUMNS = ["rank", "id", "status", "flagged", "score", "misalignment_mm", "misalignment_mm_low",
                 "misalignment_mm_high", "p_failed", "p_failed_low", "p_failed_high", "error", "moved", "target"]


@dataclass(frozen=True)
class Pair:
    """One row of the pairs table: absolute image paths, modalities and a folder-safe id."""

    id: str
    moved: str
    target: str
    moved_modality: str | None = None
    target_modality: str | None = None
    labels: str | None = None


# ------------------------------------------------------------------------------------------------
# The pairs table


def _cell(value: Any) -> str | None:
    """A table cell as text, None when empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _path(value: str | None, folder: Path) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else folder / path)


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "pair"


def _stem(path: str) -> str:
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".gz"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def read_pairs(csv: str | Path, moved_modality: str | None = None, target_modality: str | None = None) -> list[Pair]:
    """The pairs of ``csv`` (modality columns override the ``*_modality`` defaults given here).

    Ids come from an ``id`` column, else ``<row number>-<moved file stem>``; they name the pair's
    output folder, so they must be unique.
    """
    csv = Path(csv)
    if not csv.is_file():
        raise FileNotFoundError(f"--pairs {csv}: no such file; give a CSV with columns moved,target")
    try:
        table = pd.read_csv(csv, dtype=str, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"--pairs {csv} is not a readable CSV ({str(err).splitlines()[0] if str(err) else err}); "
                         "give a CSV with a header line moved,target") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"--pairs {csv} lacks the column(s) {', '.join(missing)} (it has: "
                         f"{', '.join(table.columns) or 'none'}); the header needs moved,target")
    if table.empty:
        raise ValueError(f"--pairs {csv} lists no pairs; add one row per registered pair (moved,target)")
    pairs = [_pair(i, row, csv.parent.absolute(), moved_modality, target_modality, csv) for i, row in
             enumerate(table.to_dict("records"))]
    seen: dict[str, int] = {}
    for i, pair in enumerate(pairs):
        if pair.id in seen:
            raise ValueError(f"--pairs {csv}: rows {seen[pair.id] + 2} and {i + 2} share the id {pair.id!r}; "
                             "give each pair its own id")
        seen[pair.id] = i
    return pairs


def _pair(i: int, row: dict, folder: Path, moved_modality: str | None, target_modality: str | None,
          csv: Path) -> Pair:
    moved, target = _cell(row.get("moved")), _cell(row.get("target"))
    if moved is None or target is None:
        raise ValueError(f"--pairs {csv}: row {i + 2} has no {'moved' if moved is None else 'target'} image; "
                         "fill it in or remove the row")
    given = _cell(row.get("id"))
    return Pair(id=_safe_id(given) if given else f"{i + 1:04d}-{_safe_id(_stem(moved))}",
                moved=_path(moved, folder), target=_path(target, folder),
                moved_modality=_cell(row.get("moved_modality")) or moved_modality,
                target_modality=_cell(row.get("target_modality")) or target_modality,
                labels=_path(_cell(row.get("labels")), folder))


# ------------------------------------------------------------------------------------------------
# One pair -> one row


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:500]


def flatten(result: dict[str, Any]) -> dict[str, Any]:
    """``QAResult.to_dict()`` as one flat table row: intervals as ``_low``/``_high``, the scores as
    ``score_<name>``, the regions as their count and the worst one, notes joined."""
    row: dict[str, Any] = {}
    for key, value in result.items():
        if key in ("misalignment_mm_interval", "p_failed_interval"):
            low, high = value if value else (None, None)
            stem = key.removesuffix("_interval")
            row[f"{stem}_low"], row[f"{stem}_high"] = low, high
        elif key == "scores":
            row.update({f"score_{name}": v for name, v in (value or {}).items()})
        elif key == "regions":
            row["n_regions"] = len(value or [])
            row["worst_region"] = json.dumps(value[0], sort_keys=True) if value else None
        elif key == "notes":
            row["notes"] = "; ".join(value or []) or None
        elif key != "files":
            row[key] = value
    p_failed = row.get("p_failed")
    row["flagged"] = None if p_failed is None else bool(p_failed >= LIKELY_FAILED)
    return row


@functools.lru_cache(maxsize=4)
def _cached_evaluator(name: str) -> tuple:
    """The evaluator ``name``, loaded once per process (each worker keeps its own)."""
    from imse_study.evaluator.pretrained import load_any

    return load_any(name)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _finished(folder: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The saved result of this very pair (same images, modalities and evaluator, as its
    ``pair.json`` records) when all its outputs are there, else None."""
    if _read_json(folder / PAIR_JSON) != identity or not all((folder / n).is_file() for n in QA_OUTPUTS):
        return None
    return _read_json(folder / "qa.json")


def score_pair(pair: Pair, out: str | Path, evaluator: str = AUTO, overwrite: bool = False) -> dict[str, Any]:
    """QA of one pair into ``out/pairs/<id>/`` as a flat row with ``status`` ok or failed (and the
    one-line ``error``); never raises for a bad pair. ``pair.json`` there records what was scored,
    so that a finished pair is read back, and outputs of another pair of the same id replaced."""
    import torch

    from imse_study.atomic import atomic_write_json

    torch.set_num_threads(1)
    folder = Path(out) / PAIRS_DIR / pair.id
    base = {"id": pair.id, "moved": pair.moved, "target": pair.target, "folder": f"{PAIRS_DIR}/{pair.id}"}
    identity = {**asdict(pair), "evaluator": str(evaluator)}
    try:
        saved = None if overwrite else _finished(folder, identity)
        if saved is None:
            from imse_study.qa.assess import assess_files

            ours = overwrite or _read_json(folder / PAIR_JSON) is not None  # outputs this command wrote before
            atomic_write_json(identity, folder / PAIR_JSON)
            saved = assess_files(pair.moved, pair.target, folder, evaluator=evaluator,
                                 moved_modality=pair.moved_modality, target_modality=pair.target_modality,
                                 labels=pair.labels, overwrite=ours, loader=_cached_evaluator).to_dict()
        return {**base, "status": "ok", "error": None, **flatten(saved)}
    except Exception as err:  # noqa: BLE001 - one bad pair is one failed row, not a failed run
        _drop_if_only_record(folder)
        return {**base, "status": "failed", "error": f"{type(err).__name__}: {_one_line(str(err))}"}


def _drop_if_only_record(folder: Path) -> None:
    """Remove a pair folder that holds nothing but its ``pair.json`` (a pair that failed)."""
    if folder.is_dir() and [p.name for p in folder.iterdir()] == [PAIR_JSON]:
        (folder / PAIR_JSON).unlink()
        folder.rmdir()


# ------------------------------------------------------------------------------------------------
# The table: ranking, reading back, writing


def rank_rows(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The rows worst first: failed pairs, then the highest misalignment estimate, then (pairs
    without an estimate) the lowest score; ``rank`` 1 is the worst."""
    table = pd.DataFrame(list(rows))
    if table.empty:
        return pd.DataFrame(columns=FIRST_COLUMNS)
    for column in FIRST_COLUMNS:
        if column not in table.columns:
            table[column] = None
    misalignment = pd.to_numeric(table["misalignment_mm"], errors="coerce")
    score = pd.to_numeric(table["score"], errors="coerce")
    keys = pd.DataFrame({"failed": table["status"] != "ok", "estimated": misalignment.notna(),
                         "misalignment": misalignment.fillna(0.0), "score": score.fillna(0.0), "id": table["id"]})
    order = keys.sort_values(["failed", "estimated", "misalignment", "score", "id"],
                             ascending=[False, False, False, True, True]).index
    table = table.loc[order].reset_index(drop=True)
    table["rank"] = range(1, len(table) + 1)
    return table[FIRST_COLUMNS + [c for c in table.columns if c not in FIRST_COLUMNS]]


def read_done(out: str | Path) -> dict[str, dict[str, Any]]:
    """Rows of ``out/qa.csv`` with status ok, by id (none when there is no table yet)."""
    path = Path(out) / PAIRS_CSV
    if not path.is_file():
        return {}
    try:
        table = pd.read_csv(path, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        raise ValueError(f"{path} is not a readable QA table; move it away to start afresh, or pass --overwrite") from None
    if not {"id", "status", "moved", "target"} <= set(table.columns):
        raise ValueError(f"{path} is not a QA table of imse-study (columns id, status, moved, target missing); move "
                         "it away, or pass --overwrite")
    rows = table.astype(object).where(table.notna(), None).to_dict("records")
    return {str(row["id"]): row for row in rows if row["status"] == "ok"}


def write_table(rows: Iterable[dict[str, Any]], out: str | Path) -> Path:
    """``out/qa.csv`` ranked worst first, written atomically."""
    from imse_study.atomic import atomic_write

    table = rank_rows(rows)
    return atomic_write(Path(out) / PAIRS_CSV, lambda tmp: table.to_csv(tmp, index=False), suffix=".tmp.csv")


# ------------------------------------------------------------------------------------------------
# Running: local processes or Dask


def _init_worker() -> None:
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def _local(pairs: list[Pair], work: Callable[[Pair], dict], workers: int) -> Iterator[dict]:
    """Rows as the pairs finish: in this process for one worker, else on ``workers`` processes
    forked from a fresh server process that imported the QA modules once (no torch thread pool
    inherited from this process, and no import per worker)."""
    if workers <= 1:
        _init_worker()
        for pair in pairs:
            yield work(pair)
        return
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(list(_PRELOAD))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker)
    try:
        pending: set[Future] = {pool.submit(work, pair) for pair in pairs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:  # on Ctrl-C or an error, drop the pairs not started rather than wait for them all
        pool.shutdown(wait=True, cancel_futures=True)


def dask_client(address: str):
    """A ``distributed.Client`` on the scheduler at ``address`` (a clear error without the package)."""
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("--scheduler needs the Dask distributed package: pip install distributed (or "
                          "pip install 'imse-study[dask]')") from None
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError) as err:
        raise ConnectionError(f"--scheduler {address}: no Dask scheduler answers there ({_one_line(str(err))}); "
                              "start one (dask scheduler) or fix the address") from None


def _dask(pairs: list[Pair], work: Callable[[Pair], dict], address: str) -> Iterator[dict]:
    """Rows as the pairs finish on the Dask cluster at ``address``."""
    from distributed import as_completed

    with dask_client(address) as client:
        futures = [client.submit(work, pair, pure=False) for pair in pairs]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.cancel(futures)


def run_cohort(pairs: list[Pair], out: str | Path, evaluator: str = AUTO, workers: int | None = None,
               scheduler: str | None = None, overwrite: bool = False, progress: bool = True) -> pd.DataFrame:
    """Score every pair (skipping those already ok in ``out/qa.csv`` unless ``overwrite``), keep
    ``out/qa.csv`` current after each, then write ``out/index.html``; returns the ranked table."""
    from imse_study.progress import progress_bar

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = {pair.id for pair in pairs}
    done = {} if overwrite else {k: row for k, row in read_done(out).items()
                                 if k in wanted and _same_pair(row, pairs)}
    todo = [pair for pair in pairs if pair.id not in done]
    rows = dict(done)
    work = functools.partial(score_pair, out=str(out.resolve()), evaluator=str(evaluator), overwrite=overwrite)
    workers = workers or os.cpu_count() or 1
    stream = _dask(todo, work, scheduler) if scheduler else _local(todo, work, min(workers, max(len(todo), 1)))
    with progress_bar(total=len(pairs), initial=len(done), desc="qa", unit="pair", disable=not progress) as bar:
        for row in stream:
            rows[row["id"]] = row
            write_table(rows.values(), out)
            bar.update(1)
    write_table(rows.values(), out)
    table = rank_rows(rows.values())
    write_report(table, out)
    return table


def _same_pair(row: dict[str, Any], pairs: list[Pair]) -> bool:
    """Whether a finished row still describes the same images as the pair of its id."""
    pair = next(p for p in pairs if p.id == str(row["id"]))
    return str(row["moved"]) == pair.moved and str(row["target"]) == pair.target
