"""Trained networks shipped with the package: registration networks and translators of the study.

The study's quick-profile notebooks load these instead of retraining (the training runs of the
whole Table 2 take hours on 2 CPU cores); every file has a ``.json`` beside it with its metadata,
including the exact command that reproduces it, and ``README.md`` here lists them. The smoke
profile never uses them: it trains tiny networks in seconds so that the training code is exercised.

Names:

* registration networks: ``vm-<moving>-<target>-<method>-<dim>d.pt`` (a network trained with
  ``--bidirectional`` serves both directions);
* translators: ``<kind>-<source>-<target>-<dim>d.pt`` (kind ``cyclegan`` or ``reggan``).

Evaluators stay in :mod:`imse_study.evaluator.pretrained` (``phantom-<modality>-<dim>d[-<variant>]``).
Ship a finished run with ``python -m imse_study.study.zoo RUN_DIR [RUN_DIR ...]``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

ZOO_DIR = Path(__file__).resolve().parent

__all__ = ["ZOO_DIR", "available", "export_cyclegan_back", "network_path", "ship_run", "translator_path"]


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def available(kind: str = "all") -> list[str]:
    """Names (file stems) of the shipped files: ``kind`` = ``network``, ``translator`` or ``all``."""
    stems = sorted(p.stem for p in ZOO_DIR.glob("*.pt"))
    if kind == "network":
        return [s for s in stems if s.startswith("vm-")]
    if kind == "translator":
        return [s for s in stems if not s.startswith("vm-")]
    return stems


def network_path(method: str, moving: str, target: str, dim: int = 2, profile: str = "quick") -> Path | None:
    """The shipped registration network for ``method`` and ``moving -> target``, or None.

    A network trained in the other direction serves when it was trained bidirectionally. Only
    networks of the asked ``profile`` (image size) are returned.
    """
    for a, b in ((moving, target), (target, moving)):
        path = ZOO_DIR / f"vm-{a}-{b}-{method}-{dim}d.pt"
        if not path.exists():
            continue
        meta = _read_json(path.with_suffix(".json"))
        if meta.get("profile") != profile:
            continue
        if (a, b) == (moving, target) or meta.get("bidirectional"):
            return path
    return None


def translator_path(kind: str, source: str, target: str, dim: int = 2, profile: str = "quick") -> Path | None:
    """The shipped ``kind`` translator ``source -> target``, or None."""
    path = ZOO_DIR / f"{kind}-{source}-{target}-{dim}d.pt"
    if path.exists() and _read_json(path.with_suffix(".json")).get("profile") == profile:
        return path
    return None


def _copy_pair(src: Path, name: str, folder: Path = ZOO_DIR) -> Path:
    """Copy a checkpoint, its ``.json`` and its run's ``log.csv`` into ``folder`` as ``name``.*"""
    dest = folder / f"{name}.pt"
    shutil.copyfile(src, dest)
    shutil.copyfile(src.with_suffix(".json"), dest.with_suffix(".json"))
    log = src.parent / "log.csv"
    if log.exists():
        shutil.copyfile(log, folder / f"{name}.log.csv")
    return dest


def export_cyclegan_back(run_dir: str | Path, out: str | Path) -> Path:
    """Write CycleGAN's second generator (target -> source) of a finished run as a translator file.

    CycleGAN trains both directions at once; the run's ``translator.pt`` keeps G (source -> target)
    and ``last.pt`` holds F as well. The exported file has the source and target swapped.
    """
    from imse_study.baselines.translator import Translator, TranslatorMeta, read_translator_payload, save_translator

    run_dir = Path(run_dir)
    payload = read_translator_payload(run_dir / "last.pt")
    meta = TranslatorMeta.from_dict(payload["meta"])
    if meta.kind != "cyclegan":
        raise ValueError(f"{run_dir} is a {meta.kind} run; only CycleGAN has a second generator")
    state = payload.get("train_state") or {}
    if "models" not in state or "generator_back" not in state["models"]:
        raise ValueError(f"{run_dir}/last.pt holds no training state with the second generator")
    model = Translator(meta.dim, meta.width, meta.n_blocks)
    model.load_state_dict(state["models"]["generator_back"])
    meta.source, meta.target = meta.target, meta.source
    meta.extra = {**meta.extra, "note": f"the second generator (F) of the CycleGAN run `{meta.command}`"}
    meta.extra.pop("validation", None)
    return save_translator(out, model, meta)


def ship_run(run_dir: str | Path) -> list[Path]:
    """Copy a finished training run into the package: a registration network or translator into the
    zoo, an evaluator into :mod:`imse_study.evaluator.pretrained` under the run folder's name."""
    run_dir = Path(run_dir)
    if (run_dir / "network.pt").exists():
        meta = _read_json(run_dir / "network.json")
        name = f"vm-{meta['moving_modality']}-{meta['target_modality']}-{_network_method(meta)}-{meta['dim']}d"
        return [_copy_pair(run_dir / "network.pt", name)]
    if (run_dir / "translator.pt").exists():
        meta = _read_json(run_dir / "translator.json")
        shipped = [_copy_pair(run_dir / "translator.pt", f"{meta['kind']}-{meta['source']}-{meta['target']}-{meta['dim']}d")]
        if meta["kind"] == "cyclegan":
            back = ZOO_DIR / f"cyclegan-{meta['target']}-{meta['source']}-{meta['dim']}d.pt"
            shipped.append(export_cyclegan_back(run_dir, back))
        return shipped
    if (run_dir / "evaluator.pt").exists():  # evaluators live beside the package's other evaluators
        from imse_study.evaluator.pretrained import PRETRAINED_DIR

        return [_copy_pair(run_dir / "evaluator.pt", run_dir.name, PRETRAINED_DIR)]
    raise ValueError(f"{run_dir} holds no finished registration network (network.pt), translator (translator.pt) "
                     "or evaluator (evaluator.pt); is the training finished?")


def _network_method(meta: dict[str, Any]) -> str:
    """The study's method name of a registration network from its similarity and options."""
    sim, options = meta["similarity"], meta.get("similarity_options", {})
    if sim == "lncc":
        return "ncc"
    if sim == "imse":
        evaluator = Path(str(options.get("evaluator", "")))
        # a shipped name (phantom-ct-2d-bc) or a run's checkpoint (runs/phantom-ct-2d-bc/evaluator.pt)
        label = evaluator.parent.name if evaluator.name == "evaluator.pt" else evaluator.name.removesuffix(".pt")
        if label.endswith("-bc"):
            return "imse_bc"
        ablation = re.search(r"-n(\d+)-(\d+)$", label)
        # a Table 3 evaluator (phantom-ct-2d-n2-30): imse_sr_n2_30, beside the main imse_sr
        return f"imse_sr_n{ablation[1]}_{ablation[2]}" if ablation else "imse_sr"
    if sim == "translated_mae":
        translator = Path(str(options.get("translator", "")))
        return translator.name.split("-")[0] if translator.name.startswith(("cyclegan", "reggan")) else \
            translator.parent.name.split("-")[0]
    return sim


def _last_log_row(stem: str) -> dict[str, Any]:
    import csv

    path = ZOO_DIR / f"{stem}.log.csv"
    if not path.exists():
        return {}
    rows = list(csv.DictReader(path.open()))
    return rows[-1] if rows else {}


def write_readme() -> Path:
    """``README.md`` of the zoo: every shipped file, its budget, last validation figures and command."""
    lines = ["# Shipped networks (the study's quick profile)", "",
             "Written by `python -m imse_study.study.zoo` from the files' metadata. Each `.pt` has a `.json` with "
             "its metadata and a `.log.csv` with the training log. Registration networks: validation Dice "
             "(held-out subjects, fixed random misalignments) before and after. Translators: validation "
             "NMAE / SSIM of the generator (CycleGAN's second generator F has no log of its own).", "",
             "The `-2d` files were trained on 2 CPU cores. The `-3d` files (32 x 64 x 64 volumes) were trained on "
             "one H100 GPU with up to ten runs sharing it, so their train seconds are wall time under that load; "
             "their evaluators (`phantom-{t1,ct}-3d[-bc]`) are in `imse_study/evaluator/pretrained`. The 3D "
             "commands run on a CPU too, but one 3D evaluator step takes about 5 s there.", "",
             "| file | kind | trained | validation | train seconds | reproduce with |", "|---|---|---|---|---|---|"]
    for stem in available():
        meta = _read_json(ZOO_DIR / f"{stem}.json")
        last = _last_log_row(stem)
        if stem.startswith("vm-"):
            kind = f"VoxelMorph, {meta['similarity']}" + (", bidirectional" if meta.get("bidirectional") else "")
            val = (f"Dice {float(last['val_dice_initial']):.3f} → {float(last['val_dice']):.3f}"
                   if "val_dice" in last else "–")
        else:
            kind = f"{meta['kind']} {meta['source']} → {meta['target']}"
            val = (f"NMAE {float(last['val_nmae']):.3f}, SSIM {float(last['val_ssim']):.2f}"
                   if "val_nmae" in last else "–")
        seconds = meta.get("extra", {}).get("train_seconds", "–")
        lines.append(f"| `{stem}` | {kind} | {meta.get('steps', '?')} steps, {meta.get('profile')} | {val} | "
                     f"{seconds} | `{meta.get('command', '')}` |")
    path = ZOO_DIR / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imse_study.study.zoo", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders to ship")
    args = parser.parse_args(argv)
    for run in args.runs:
        try:
            for path in ship_run(run):
                print(f"shipped {path.name} ({path.stat().st_size / 1e6:.2f} MB)")
        except (ValueError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    print(f"listed in {write_readme()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
