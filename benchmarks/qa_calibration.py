"""How trustworthy is ``imse-study qa``? The shipped calibrations on pairs they were not fitted on.

For each evaluator (default: the two shipped 2D ones with a calibration, ``phantom-t1-2d`` checked on
t1 vs t2 and ``phantom-ct-2d`` on ct vs t1) and each test set:

* ``plain``: the held-out test subjects of phantom version 1 (what the evaluators were trained on;
  the calibration was fitted on the train and validation subjects);
* a few held-out variants of phantom version 2 (default ``noisy`` and ``low-res``) that neither the
  evaluator nor the calibration ever saw (version 2's contrasts differ from version 1's as well);

the pairs are built as the calibration builds them (:func:`imse_study.qa.calibration.misaligned_pairs`:
the paper's random field times factors 0 to 2, seeded per pair) and measured:

* ``spearman_abs``: |Spearman rho| of the estimated misalignment with the true mean end-point error
  (target >= 0.95), beside the raw foreground score's and normalised mutual information's (NMI, 32
  bins, scikit-image) for comparison;
* ``failure_auc``: ROC AUC of ``p_failed`` for "Dice more than 0.1 below the aligned pair's"
  (target >= 0.95), beside NMI's;
* ``within_1mm``: the fraction of pairs whose estimate is within 1 mm of the truth (target 80 %),
  also over the pairs with a true error of at most 5 mm (what a registration usually leaves);
* ``interval_coverage``: how often the truth lies in the stated interval (nominal 90 %).

Writes ``benchmarks/results/qa/pairs.csv`` (one row per evaluator x set x pair), ``summary.csv``,
``summary.md`` and ``settings.json``; an existing summary is refused unless ``--overwrite``.

    python benchmarks/qa_calibration.py                      # ~10 min on one thread
    python benchmarks/qa_calibration.py --variants noisy --variant-items 16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imse_study.atomic import atomic_write, atomic_write_json  # noqa: E402
from imse_study.evaluator.pretrained import load_any  # noqa: E402
from imse_study.qa.calibration import Calibration, load_calibration, misaligned_pairs, roc_auc  # noqa: E402
from imse_study.qa.score import nmi  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "qa"
EVALUATORS = ("phantom-t1-2d", "phantom-ct-2d")
VARIANTS = ("noisy", "low-res")
TARGETS = {"spearman_abs": 0.95, "failure_auc": 0.95, "within_1mm": 0.80}
PLAIN = "plain (v1 test)"


def measure(calibration: Calibration, pairs: pd.DataFrame) -> dict:
    """The module docstring's numbers for one set of pairs."""
    score = pairs[calibration.statistic].to_numpy()
    true = pairs["epe_mm"].to_numpy()
    failed = pairs["failed"].to_numpy()
    predicted = calibration.misalignment(score)
    low, high = calibration.interval(score)
    small = true <= 5.0
    return {
        "pairs": len(pairs), "subjects": int(pairs["subject"].nunique()), "failures": int(failed.sum()),
        "statistic": calibration.statistic,
        "spearman_abs": abs(stats.spearmanr(predicted, true).statistic),
        "spearman_abs_foreground_score": abs(stats.spearmanr(pairs["foreground"], true).statistic),
        "spearman_abs_nmi": abs(stats.spearmanr(pairs["nmi"], true).statistic),
        "failure_auc": roc_auc(calibration.p_failed(score)[0], failed),
        "failure_auc_nmi": roc_auc(-pairs["nmi"].to_numpy(), failed),
        "within_1mm": float(np.mean(np.abs(predicted - true) <= 1.0)),
        "within_1mm_true_le_5mm": float(np.mean(np.abs(predicted - true)[small] <= 1.0)) if small.any() else np.nan,
        "median_abs_error_mm": float(np.median(np.abs(predicted - true))),
        "interval_coverage": float(np.mean((true >= low) & (true <= high))),
    }


def markdown(summary: pd.DataFrame, settings: dict) -> str:
    """summary.md: the table, and each target met or not, in words."""
    shown = summary.copy()
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(lambda v: f"{v:.3f}")
    lines = ["# QA calibration on held-out pairs", "",
             f"Evaluators {', '.join(settings['evaluators'])}; factors of the paper's random field "
             f"{settings['factors']}; {settings['seconds']:.0f} s on {settings['threads']} thread(s).", "",
             shown.to_markdown(index=False), "", "## Targets", ""]
    for _, row in summary.iterrows():
        verdicts = [f"{k} {row[k]:.3f} {'>=' if row[k] >= v else '<'} {v} ({'met' if row[k] >= v else 'NOT met'})"
                    for k, v in TARGETS.items()]
        lines.append(f"- {row['evaluator']}, {row['set']}: " + "; ".join(verdicts))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluators", nargs="*", default=list(EVALUATORS))
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help="phantom v2 variants ('none': none)")
    parser.add_argument("--items", type=int, help="at most this many plain test items (default: all)")
    parser.add_argument("--variant-items", type=int, default=32, help="items per variant (default 32)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    variants = [] if args.variants == ["none"] else args.variants
    if (args.out / "summary.md").exists() and not args.overwrite:
        parser.error(f"{args.out} holds results; pass --overwrite to replace them")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    tables, rows = [], []
    for evaluator in args.evaluators:
        calibration = load_calibration(evaluator)
        model, _ = load_any(evaluator)
        factors = calibration.fit.get("factors")
        sets = [(PLAIN, {"limit": args.items})]
        sets += [(f"v2 {v}", {"version": 2, "variant": v, "limit": args.variant_items}) for v in variants]
        for name, options in sets:
            pairs = misaligned_pairs(model, calibration.reference_modality, calibration.other_modality, "test",
                                     factors=factors, extra_scores={"nmi": nmi}, **options)
            tables.append(pairs.assign(evaluator=evaluator, set=name))
            rows.append({"evaluator": evaluator, "set": name, **measure(calibration, pairs)})
    summary = pd.DataFrame(rows)
    settings = {"evaluators": list(args.evaluators), "variants": variants, "items": args.items,
                "variant_items": args.variant_items, "threads": args.threads,
                "factors": load_calibration(args.evaluators[0]).fit.get("factors"),
                "seconds": round(time.perf_counter() - start, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "pairs.csv", lambda tmp: pd.concat(tables).to_csv(tmp, index=False))
    atomic_write(args.out / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False))
    atomic_write(args.out / "summary.md", lambda tmp: Path(tmp).write_text(markdown(summary, settings)))
    atomic_write_json(settings, args.out / "settings.json")
    print(markdown(summary, settings))
    print(json.dumps({"results": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
