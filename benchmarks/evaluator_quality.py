"""Quality of trained evaluators on the phantom's TEST subjects (issue figures, not a speed test).

    python benchmarks/evaluator_quality.py                       # the shipped evaluators
    python benchmarks/evaluator_quality.py --evaluator runs/x/evaluator.pt --out quality.json

Prints the ranking AUC (aligned vs misaligned pairs in other modalities) and the translation quality
(NMAE, PSNR, SSIM against the phantom's ground truth, as the paper's Table 5) per evaluator.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from imse_study.evaluator.pretrained import available_pretrained, load_any
from imse_study.evaluator.quality import ranking_report, translation_quality
from imse_study.evaluator.train import ranking_modalities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluator", nargs="*", default=None, help="names or checkpoint files (default: shipped)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--dim", type=int, choices=(2, 3), help="only evaluators of this dimension (default: all)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for name in args.evaluator or available_pretrained():
        model, meta = load_any(name)
        if args.dim and meta.dim != args.dim:
            continue
        ranking = ranking_report(model, meta.modality, meta.dim, args.profile)
        sources = ranking_modalities(meta.modality, ("t1", "t2", "pd", "ct"))
        translation = {s: translation_quality(model, meta.modality, s, meta.dim, args.profile)[["nmae", "psnr", "ssim"]]
                       .mean().round(4).to_dict() for s in sources}
        results[str(name)] = {"modality": meta.modality, "steps": meta.steps,
                              "train_seconds": meta.extra.get("train_seconds"),
                              "ranking_auc": dict(zip(ranking["other"], ranking["auc"].round(4))),
                              "test_pairs": int(ranking["pairs"].iloc[0]), "translation": translation}
        print(f"\n{name} (trained on {meta.modality}, {meta.steps} steps)")
        print(ranking.to_string(index=False))
        for source, row in translation.items():
            print(f"translation {source} -> {meta.modality}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
