"""How well does an evaluator register, rank and transfer to unseen appearances? One command per evaluator.

For one evaluator (a shipped name or a ``.pt`` file) and one phantom version, on the phantom's test
split in the evaluator's own profile (first ``--pairs`` pairs, misaligned by the study's seeded paper
transforms, :func:`imse_study.registration.evaluate.make_test_pairs`):

* ranking AUC: mean |E| separating aligned from misaligned pairs, against every other phantom
  modality (:func:`imse_study.evaluator.quality.ranking_report`, all test items);
* classic registration (Eq. 1, the ``multires`` mode of the Table 4 page, ``--iterations`` steps)
  with IMSE (Eq. 6) and with MI, in both directions between the evaluator's modality and its partner
  (a T1 evaluator: t1->t2 and t2->t1; a CT evaluator: ct->t1 and t1->ct): Dice per pair and seconds;
* the same IMSE registration on each held-out variant of phantom version 2 (the same subjects,
  slices and transforms as the plain test set, only the variant's appearance changed), with each
  variant's Dice beside the plain set's ("within 0.02" is the criterion the summary checks);
* the evaluator's training record: steps, training seconds and its learning curve (the ``log.csv``
  beside a checkpoint, or the shipped ``<name>.log.csv``).

Not measured here: VoxelMorph trained with the evaluator (Table 2), which needs trained networks.

Old (shipped) against new (a checkpoint), each on both phantom versions (version 2 runs every
variant unless ``--variants`` names some or ``none``):

    python benchmarks/evaluator_transfer.py phantom-t1-2d --phantom-version 1
    python benchmarks/evaluator_transfer.py phantom-t1-2d --phantom-version 2
    python benchmarks/evaluator_transfer.py runs/phantom-t1-2d-v2/evaluator.pt --phantom-version 1
    python benchmarks/evaluator_transfer.py runs/phantom-t1-2d-v2/evaluator.pt --phantom-version 2
    python benchmarks/evaluator_transfer.py phantom-ct-2d --phantom-version 2 --variants noisy low-res --pairs 4

Cost on one thread (quick profile, 8 pairs, 200 iterations): a registration takes about 8 s with
IMSE and 6.5 s with MI (the Table 4 page's multires rows), so version 1 takes about 4 minutes and
version 2 with its 9 variants about half an hour, plus the first generation of each variant's test set.

Writes into ``--out`` (default ``benchmarks/results/evaluator_transfer/<evaluator>/phantom-v<version>/``):
``registration.csv`` (tidy: one row per evaluator x version x variant x direction x method x pair,
``initial`` being the misaligned pair), ``ranking.csv``, ``learning_curve.csv`` (when the evaluator
has a log), ``summary.md`` and ``settings.json``. A folder that holds results is refused unless
``--overwrite``; an interrupted run (``registration.partial.csv``) continues with ``--resume``,
skipping the (variant, direction) blocks it finished. The evaluator is applied at the spacing it was
trained at, so ``--profile`` must be the profile it was trained in (smoke evaluators: ``--profile smoke``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imse_study.atomic import atomic_write, atomic_write_json  # noqa: E402
from imse_study.data.appearance import variant_names  # noqa: E402
from imse_study.data.phantom import MODALITIES, PHANTOM_VERSION, PHANTOM_VERSIONS  # noqa: E402
from imse_study.evaluator.checkpoint import EvaluatorMeta, evaluator_spacing, phantom_spacing  # noqa: E402
from imse_study.evaluator.pretrained import PRETRAINED_DIR, load_any  # noqa: E402
from imse_study.evaluator.quality import ranking_report  # noqa: E402
from imse_study.registration.evaluate import Registrar, direction_name, evaluate, make_test_pairs  # noqa: E402
from imse_study.registration.methods import classic_registrar  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "evaluator_transfer"
PLAIN = "plain"  # the variant column of the in-distribution test set
PARTNER = {"t1": "t2", "t2": "t1", "pd": "t1", "ct": "t1"}  # the other side of the registered pairs
METHODS = ("mi", "imse")
AUC_BAR = 0.98
VARIANT_TOLERANCE = 0.02
FILES = ("registration.csv", "ranking.csv", "learning_curve.csv", "summary.md", "settings.json")
PARTIAL = "registration.partial.csv"
MIN_ITERATIONS = 4  # optimise's multires default: one step for the affine stage and each of 3 levels


@dataclass
class Settings:
    """What one measurement runs (``variants``: names of phantom version 2's held-out test sets)."""

    profile: str = "quick"
    pairs: int = 8
    iterations: int = 200
    phantom_version: int = PHANTOM_VERSION
    variants: tuple[str, ...] = ()
    variant_methods: tuple[str, ...] = ("imse",)
    partner: str | None = None
    ranking_against: tuple[str, ...] | None = None  # None: every other phantom modality
    mode: str = "multires"
    flips: str = "none"  # IMSE's test-time mirror averaging (imse_study.evaluator.symmetry)


# --------------------------------------------------------------------------------------------
# The evaluator


def evaluator_name(evaluator: str | Path) -> str:
    """A short name: the shipped name, or a checkpoint's run folder (``runs/x/evaluator.pt`` -> ``x``)."""
    path = Path(evaluator)
    if path.suffix != ".pt":
        return str(evaluator)
    return path.parent.name if path.stem in ("evaluator", "best", "last") and path.parent.name else path.stem


def load_evaluator_for(evaluator: str | Path, profile: str) -> tuple[torch.nn.Module, EvaluatorMeta]:
    """The evaluator (its metadata at ``model.meta``), refused when ``profile``'s phantom has another spacing."""
    model, meta = load_any(str(evaluator))
    model.meta = meta
    trained = evaluator_spacing(meta)
    here = phantom_spacing(profile, meta.dim)
    if trained is not None and not np.allclose(trained, here, rtol=1e-3):
        raise ValueError(f"{evaluator} was trained on {trained} mm pixels but the {profile} phantom has {here}: "
                         f"measure it with the profile it was trained in (--profile {meta.profile})")
    return model, meta


def learning_curve(evaluator: str | Path) -> pd.DataFrame | None:
    """The training log of a shipped evaluator (``<name>.log.csv``) or of a run folder (``log.csv``)."""
    path = Path(evaluator)
    candidates = ([PRETRAINED_DIR / f"{evaluator}.log.csv"] if path.suffix != ".pt"
                  else [path.with_suffix(".log.csv"), path.parent / "log.csv"])
    found = next((p for p in candidates if p.is_file()), None)
    return None if found is None else pd.read_csv(found)


def training_record(meta: EvaluatorMeta) -> dict[str, Any]:
    """How the evaluator was trained, from its metadata."""
    extra = meta.extra or {}
    return {"modality": meta.modality, "dim": meta.dim, "arch": meta.arch, "width": meta.width,
            "n_blocks": meta.n_blocks, "appearance": meta.appearance, "profile": meta.profile,
            "steps": meta.steps, "epochs": meta.epochs, "train_seconds": extra.get("train_seconds"),
            "world_size": extra.get("world_size"), "best_epoch": extra.get("best_epoch"),
            "phantom_version": extra.get("phantom_version") or PHANTOM_VERSION, "command": meta.command}


# --------------------------------------------------------------------------------------------
# Measurements


def directions(modality: str, partner: str | None = None) -> list[tuple[str, str]]:
    """(moving, target) both ways between the evaluator's modality and its partner: IMSE needs the
    evaluator's modality on one side (its reference channel)."""
    partner = partner or PARTNER[modality]
    if partner == modality or partner not in MODALITIES:
        others = ", ".join(m for m in MODALITIES if m != modality)
        raise ValueError(f"partner modality {partner!r} cannot pair with a {modality} evaluator: "
                         f"choose one of {others}")
    return [(modality, partner), (partner, modality)]


def ranking(model: torch.nn.Module, meta: EvaluatorMeta, settings: Settings) -> pd.DataFrame:
    """Ranking AUC on every test item against each other modality (the reusable ``ranking_report``)."""
    others = list(settings.ranking_against or [m for m in MODALITIES if m != meta.modality])
    table = ranking_report(model, meta.modality, meta.dim, settings.profile, "test", others=others,
                           phantom_version=settings.phantom_version)
    table.insert(0, "phantom_version", settings.phantom_version)
    return table


def blocks(meta: EvaluatorMeta, settings: Settings) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """The (variant, moving, target, methods) blocks a measurement registers."""
    pairs = directions(meta.modality, settings.partner)
    todo = [(PLAIN, m, t, METHODS) for m, t in pairs]
    todo += [(v, m, t, settings.variant_methods) for v in settings.variants for m, t in pairs]
    return todo


def registrars(names: tuple[str, ...], pairs: Any, model: torch.nn.Module, settings: Settings,
               tick: Callable[[], None]) -> dict[str, Registrar]:
    """Classic multires registrars (Eq. 1) of ``names``; each call ticks the progress bar."""
    def counted(register: Registrar) -> Registrar:
        def run(moving: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            out = register(moving, target)
            tick()
            return out
        return run

    return {n: counted(classic_registrar(n, pairs, evaluator=model if n == "imse" else None, mode=settings.mode,
                                         similarity_options={"flips": settings.flips} if n == "imse" else None,
                                         iterations=settings.iterations, progress=False)) for n in names}


def register_block(model: torch.nn.Module, meta: EvaluatorMeta, settings: Settings, variant: str, moving: str,
                   target: str, methods: tuple[str, ...], tick: Callable[[], None] = lambda: None) -> pd.DataFrame:
    """Per-pair rows of ``methods`` (and ``initial``) on the first test pairs of one (variant, direction)."""
    pairs = make_test_pairs(moving, target, "test", meta.dim, settings.profile, limit=settings.pairs,
                            version=settings.phantom_version, variant=None if variant == PLAIN else variant)
    table = evaluate(registrars(methods, pairs, model, settings, tick), pairs, include_initial=True, progress=False)
    table.insert(0, "variant", variant)
    table.insert(0, "phantom_version", settings.phantom_version)
    return table


def registration(model: torch.nn.Module, meta: EvaluatorMeta, settings: Settings, done: pd.DataFrame | None = None,
                 save: Callable[[pd.DataFrame], None] | None = None, progress: bool = True) -> pd.DataFrame:
    """Every block of :func:`blocks`; ``done`` holds finished blocks (skipped), ``save`` gets the table
    after each block (for ``--resume``)."""
    finished = set() if done is None else set(zip(done["variant"], done["direction"]))
    todo = [b for b in blocks(meta, settings) if (b[0], direction_name(b[1], b[2])) not in finished]
    tables = [] if done is None else [done]
    total = sum(settings.pairs * len(b[3]) for b in todo)
    with tqdm(total=total, desc="evaluator transfer", unit="registration", disable=not progress) as bar:
        for variant, moving, target, methods in todo:
            bar.set_postfix_str(f"{variant} {direction_name(moving, target)}")
            tables.append(register_block(model, meta, settings, variant, moving, target, methods,
                                         tick=lambda: bar.update(1)))
            if save is not None:
                save(pd.concat(tables, ignore_index=True))
    return pd.concat(tables, ignore_index=True)


# --------------------------------------------------------------------------------------------
# Summary


def _table(frame: pd.DataFrame) -> str:
    """A markdown table (written here: pandas needs the optional ``tabulate`` for it)."""
    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, (float, np.floating)) else str(v)

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def registration_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per direction on the plain test set: Dice of initial, MI and IMSE, IMSE - MI, and the median
    seconds per pair (the first registration of a process also pays one-time set-up)."""
    plain = table[table["variant"] == PLAIN]
    stats = plain.groupby(["direction", "method"], sort=False).agg(
        dice=("dice", "mean"), std=("dice", "std"), seconds=("seconds", "median"), pairs=("pair", "nunique"))

    def dice(direction: str, method: str) -> str:
        row = stats.loc[(direction, method)]
        return f"{row['dice']:.3f} ± {row['std']:.3f}"

    rows = []
    for direction in dict.fromkeys(plain["direction"]):
        imse, mi = stats.loc[(direction, "imse"), "dice"], stats.loc[(direction, "mi"), "dice"]
        rows.append({"direction": direction, "pairs": int(stats.loc[(direction, "imse"), "pairs"]),
                     "initial": stats.loc[(direction, "initial"), "dice"], "MI": dice(direction, "mi"),
                     "IMSE": dice(direction, "imse"), "IMSE - MI": imse - mi,
                     "IMSE >= MI": "yes" if imse >= mi else "no",
                     "MI s/pair (median)": stats.loc[(direction, "mi"), "seconds"],
                     "IMSE s/pair (median)": stats.loc[(direction, "imse"), "seconds"]})
    return pd.DataFrame(rows)


def variant_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per variant, direction and method: mean Dice beside the plain set's on the same pairs, the
    difference, and whether it is within :data:`VARIANT_TOLERANCE`."""
    runs = table[table["method"] != "initial"]
    plain = runs[runs["variant"] == PLAIN].set_index(["direction", "method", "pair"])["dice"]
    rows = []
    for (variant, direction, method), group in runs[runs["variant"] != PLAIN].groupby(
            ["variant", "direction", "method"], sort=False):
        reference = plain.loc[[(direction, method, p) for p in group["pair"]]]
        difference = float(group["dice"].mean() - reference.mean())
        rows.append({"variant": variant, "direction": direction, "method": method, "Dice": group["dice"].mean(),
                     "plain Dice": reference.mean(), "difference": difference,
                     f"within {VARIANT_TOLERANCE}": "yes" if abs(difference) <= VARIANT_TOLERANCE else "no"})
    return pd.DataFrame(rows)


def curve_summary(curve: pd.DataFrame, rows: int = 12) -> pd.DataFrame:
    """At most ``rows`` evenly spaced epochs of a learning curve, the last one always included."""
    keep = [c for c in ("epoch", "step", "seconds", "train_l1", "val_l1") if c in curve.columns]
    keep += [c for c in curve.columns if c.startswith("auc")]
    picked = np.unique(np.linspace(0, len(curve) - 1, min(rows, len(curve))).round().astype(int))
    return curve.iloc[picked][keep]


def summary_markdown(name: str, record: dict[str, Any], settings: Settings, rank: pd.DataFrame,
                     table: pd.DataFrame, curve: pd.DataFrame | None) -> str:
    """The short report: ranking, registration, unseen appearance and training, each with its criterion."""
    seconds = record["train_seconds"]
    lines = [f"# Evaluator transfer: {name}", "",
             f"Evaluator: {record['modality']} {record['dim']}D {record['arch']} (width {record['width']}), "
             f"appearance {record['appearance']}, trained on phantom version {record['phantom_version']} "
             f"({record['profile']} profile), {record['steps']} steps / {record['epochs']} epochs"
             + (f", {seconds / 60:.1f} min on {record['world_size'] or 1} process(es)" if seconds else "") + ".",
             f"Measured on phantom version {settings.phantom_version}, {settings.profile} profile, test split; "
             f"registration: first {settings.pairs} pairs, {settings.mode} mode, {settings.iterations} iterations.",
             "", f"## Ranking AUC (criterion: >= {AUC_BAR} against every other modality)", ""]
    shown = rank.assign(**{f">= {AUC_BAR}": np.where(rank["auc"] >= AUC_BAR, "yes", "no")})
    lines += [_table(shown[["other", "pairs", "auc", f">= {AUC_BAR}"]]), ""]
    lines += ["## Classic registration, Dice (criterion: IMSE >= MI in both directions)", "",
              _table(registration_summary(table)), ""]
    variants = variant_summary(table)
    if len(variants):
        lines += [f"## Unseen appearance: phantom v2 variants (criterion: Dice within {VARIANT_TOLERANCE} "
                  "of the plain test set's)", "", _table(variants), ""]
    lines += ["## Training", "", f"Command: `{record['command']}`", ""]
    lines += [_table(curve_summary(curve)), ""] if curve is not None else ["No training log found.", ""]
    lines += ["Not measured here: VoxelMorph trained with this evaluator against MI (Table 2's four directions)."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# The run


def tidy(table: pd.DataFrame, name: str, meta: EvaluatorMeta, settings: Settings) -> pd.DataFrame:
    """The registration rows with the evaluator and settings in front, keys first, then the metrics."""
    table = table.assign(evaluator=name, evaluator_modality=meta.modality, profile=settings.profile,
                         iterations=settings.iterations)
    keys = ["evaluator", "evaluator_modality", "profile", "phantom_version", "variant", "direction", "method", "pair",
            "iterations"]
    return table[keys + [c for c in table.columns if c not in keys]]


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False), suffix=".tmp.csv")


def prepare_folder(out: Path, settings_record: dict[str, Any], resume: bool, overwrite: bool) -> pd.DataFrame | None:
    """Check ``out`` for earlier results; the finished blocks of an interrupted run when resuming."""
    partial, settings_file = out / PARTIAL, out / "settings.json"
    if resume:
        if not partial.exists():
            raise FileNotFoundError(f"{out} holds no interrupted run ({PARTIAL}): run without --resume")
        earlier = json.loads(settings_file.read_text()) if settings_file.exists() else None
        if earlier != settings_record:
            raise ValueError(f"{out} holds a run with other settings ({settings_file}): run it again with those, "
                             "or use another --out")
        return pd.read_csv(partial)
    existing = [f for f in (*FILES, PARTIAL) if (out / f).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds results ({', '.join(existing)}): pass --resume to continue an "
                              "interrupted run, --overwrite to replace them, or another --out")
    partial.unlink(missing_ok=True)  # --overwrite: an interrupted run's blocks are not this run's
    atomic_write_json(settings_record, settings_file)
    return None


def measure(evaluator: str | Path, out: str | Path | None = None, settings: Settings | None = None,
            resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict[str, Path]:
    """Measure one evaluator (see the module docstring); returns the written files by name."""
    settings = settings or Settings()
    check_settings(settings)
    name = evaluator_name(evaluator)
    out = Path(out) if out is not None else RESULTS / name / (
        f"phantom-v{settings.phantom_version}" + ("" if settings.flips == "none" else f"-flips-{settings.flips}"))
    model, meta = load_evaluator_for(evaluator, settings.profile)
    directions(meta.modality, settings.partner)  # a bad partner fails before any work
    record = {"evaluator": str(evaluator), "name": name, **asdict(settings)}
    if settings.flips == "none":
        record.pop("flips")  # as recorded before the option existed, so those runs still resume
    done = prepare_folder(out, json.loads(json.dumps(record)), resume, overwrite)
    rank = ranking(model, meta, settings)
    table = registration(model, meta, settings, done, save=lambda t: _write_csv(t, out / PARTIAL), progress=progress)
    table = tidy(table, name, meta, settings)
    rank.insert(0, "evaluator", name)
    curve = learning_curve(evaluator)
    written = {"registration": out / "registration.csv", "ranking": out / "ranking.csv"}
    _write_csv(table, written["registration"])
    _write_csv(rank, written["ranking"])
    if curve is not None:
        written["learning_curve"] = out / "learning_curve.csv"
        _write_csv(curve, written["learning_curve"])
    else:
        (out / "learning_curve.csv").unlink(missing_ok=True)  # --overwrite: an earlier evaluator's curve
    text = summary_markdown(name, training_record(meta), settings, rank, table, curve)
    written["summary"] = atomic_write(out / "summary.md", lambda tmp: Path(tmp).write_text(text))
    (out / PARTIAL).unlink(missing_ok=True)
    return written


def check_settings(settings: Settings) -> None:
    """One-line errors for settings that cannot run."""
    if settings.phantom_version not in PHANTOM_VERSIONS:
        raise ValueError(f"unknown phantom version {settings.phantom_version}: choose one of "
                         f"{', '.join(map(str, PHANTOM_VERSIONS))}")
    if settings.variants and settings.phantom_version < 2:
        raise ValueError("the held-out variants are test sets of phantom version 2: pass --phantom-version 2 "
                         "or --variants none")
    unknown = [v for v in settings.variants if v not in variant_names()]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(variant_names())} or all")
    bad_methods = [m for m in settings.variant_methods if m not in METHODS]
    if bad_methods:
        raise ValueError(f"unknown variant method(s) {bad_methods}: choose from {', '.join(METHODS)}")
    if settings.pairs < 1:
        raise ValueError(f"--pairs must be at least 1, not {settings.pairs}")
    if settings.iterations < MIN_ITERATIONS:
        raise ValueError(f"--iterations must be at least {MIN_ITERATIONS} (multires: an affine stage and 3 levels), "
                         f"not {settings.iterations}")


def parse_variants(words: list[str] | None, version: int) -> tuple[str, ...]:
    """``all`` / ``none`` / names; default all for version 2, none for version 1."""
    if words is None:
        words = ["all"] if version >= 2 else ["none"]
    if words == ["all"]:
        return variant_names()
    if words == ["none"]:
        return ()
    return tuple(words)


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evaluator", help="a shipped evaluator name (phantom-t1-2d) or a checkpoint .pt file")
    parser.add_argument("--phantom-version", type=int, default=PHANTOM_VERSION, choices=PHANTOM_VERSIONS)
    parser.add_argument("--variants", nargs="+", metavar="NAME",
                        help="version 2's held-out test sets: all, none or names (default: all with version 2)")
    parser.add_argument("--variant-methods", nargs="+", default=["imse"], choices=METHODS,
                        help="methods run on the variants (default imse; add mi to see how hard a variant is)")
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    parser.add_argument("--pairs", type=int, default=8, help="test pairs per direction (default 8)")
    parser.add_argument("--iterations", type=int, default=200, help="optimisation steps per registration")
    parser.add_argument("--partner", choices=MODALITIES, help="the other modality (default: t2 for t1, t1 otherwise)")
    parser.add_argument("--flips", default="none", choices=("none", "point", "axes"),
                        help="IMSE's test-time mirror averaging (default none: the plain evaluator)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results/evaluator_transfer/"
                                                  "<evaluator>/phantom-v<version>)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace the results in --out")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = Settings(profile=args.profile, pairs=args.pairs, iterations=args.iterations,
                        phantom_version=args.phantom_version,
                        variants=parse_variants(args.variants, args.phantom_version),
                        variant_methods=tuple(args.variant_methods), partner=args.partner, flips=args.flips)
    try:
        written = measure(args.evaluator, args.out, settings, args.resume, args.overwrite, not args.no_progress)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    print(written["summary"].read_text())
    return written


if __name__ == "__main__":
    main()
