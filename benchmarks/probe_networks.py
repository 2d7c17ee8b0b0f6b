"""Trained VoxelMorph networks on the phantom's test pairs (a Table 2 preview, not a speed test).

    python benchmarks/probe_networks.py runs/vm-t1t2-imse runs/vm-t1t2-mi ... [--limit 64] [--out table.csv]

Each run folder holds a ``network.pt`` from ``imse-study train-registration``. Bidirectional networks
are evaluated in both directions. Prints mean ± std of Dice, HD95 (mm), ||grad phi|| and the
non-positive Jacobian fraction per direction and method, and inference seconds per pair.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from imse_study.registration import evaluate, load_network, make_test_pairs, network_registrar, summarise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="test pairs per direction (default all)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    networks: dict[tuple[str, str], dict] = {}
    for run in args.runs:
        path = run / "network.pt"
        if not path.exists():
            print(f"skip {run}: no network.pt yet")
            continue
        model, meta = load_network(path)
        directions = [(meta.moving_modality, meta.target_modality)]
        if meta.bidirectional:
            directions.append((meta.target_modality, meta.moving_modality))
        for direction in directions:
            networks.setdefault(direction, {})[meta.similarity] = network_registrar(model)
    tables = []
    for (moving, target), methods in networks.items():
        pairs = make_test_pairs(moving, target, limit=args.limit)
        tables.append(evaluate(methods, pairs, progress=False))
    table = pd.concat(tables, ignore_index=True)
    with pd.option_context("display.width", 160, "display.precision", 4):
        print(summarise(table))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
