"""What a CPU hour buys in evaluator training: step speed by network size, and short learning curves.

Two parts, both on one torch thread with the quick profile's 2D phantom (120 x 120 px) of one modality:

``speed``: one full training step (Eq. 5's pair: warps, Shuffle Remap, optional appearance changes;
forward, L1, backward, Adam) for each configuration, timed in rounds that visit every configuration in
turn (so that load from other jobs on a shared machine falls on all of them alike). Medians of wall
time and of this thread's CPU time per step, and images per CPU second.

``curves``: ``train_evaluator`` itself for ``--steps`` steps per configuration (epochs of
``--every`` steps, each followed by the validation on held-out subjects: Eq. 5's L1 and the ranking
AUC). Every configuration has the same seed, data and validation set.

    python benchmarks/evaluator_budget.py speed [--rounds 2] [--steps 6]
    python benchmarks/evaluator_budget.py curves --configs resnet unet [--steps 600 --every 100]

Results go to ``benchmarks/results/evaluator_budget_<part>.csv`` and a markdown table beside it
(rows of an earlier run of another configuration are kept; a configuration run again replaces its own).
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import platform
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imse_study.augment.intensity import appearance_range  # noqa: E402
from imse_study.evaluator.model import build_evaluator  # noqa: E402
from imse_study.evaluator.train import load_images, make_training_pair, train_evaluator  # noqa: E402
from imse_study.training import step_generator  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

# name -> (arch, width, n_blocks, batch, precision, appearance)
SPEED = {
    "resnet w16 b6 bs8 (quick)": ("resnet", 16, 6, 8, "float32", "none"),
    "resnet w16 b4 bs8": ("resnet", 16, 4, 8, "float32", "none"),
    "resnet w16 b9 bs8": ("resnet", 16, 9, 8, "float32", "none"),
    "resnet w32 b6 bs8": ("resnet", 32, 6, 8, "float32", "none"),
    "resnet w16 b6 bs4": ("resnet", 16, 6, 4, "float32", "none"),
    "resnet w16 b6 bs16": ("resnet", 16, 6, 16, "float32", "none"),
    "unet w16 bs8": ("unet", 16, 0, 8, "float32", "none"),
    "unet w32 bs8": ("unet", 32, 0, 8, "float32", "none"),
    "resnet w16 b6 bs8 bf16": ("resnet", 16, 6, 8, "bfloat16", "none"),
    "unet w16 bs8 bf16": ("unet", 16, 0, 8, "bfloat16", "none"),
    "resnet w16 b6 bs8 +appearance strong": ("resnet", 16, 6, 8, "float32", "strong"),
}

# name -> budget overrides of the quick profile (which is: resnet, width 16, 6 blocks, batch 8, lr 1e-4)
CURVES = {
    "resnet": {},
    "unet": {"arch": "unet"},
    "resnet cosine 5e-4": {"lr_schedule": "cosine", "warmup_steps": 50, "lr": 5e-4},
    "resnet bf16": {"precision": "bfloat16"},
    "unet cosine 5e-4": {"arch": "unet", "lr_schedule": "cosine", "warmup_steps": 50, "lr": 5e-4},
    "resnet 3e-4": {"lr": 3e-4},
}


def _step_timer(spec: tuple, images: torch.Tensor, modality: str):
    """A function doing one training step of ``spec``; returns it and the parameter count."""
    arch, width, blocks, batch, precision, level = spec
    torch.manual_seed(0)
    model = build_evaluator(2, width, blocks, arch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    appearance = appearance_range(level, modality)
    counter = iter(range(10**9))

    def step() -> None:
        g = step_generator(0, 0, next(counter))
        index = torch.randint(0, images.shape[0], (batch,), generator=g)
        inputs, label = make_training_pair(images[index], "shuffle_remap", (2, 50), g, appearance)
        with torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bfloat16" else nullcontext():
            prediction = model(inputs)
        loss = (prediction.float() - label).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, sum(p.numel() for p in model.parameters())


def speed(args: argparse.Namespace) -> list[dict]:
    images = load_images([args.modality], "train", 2, "quick")[args.modality]
    timers = {name: _step_timer(spec, images, args.modality) for name, spec in SPEED.items()}
    wall: dict[str, list[float]] = {n: [] for n in SPEED}
    cpu: dict[str, list[float]] = {n: [] for n in SPEED}
    for _ in range(args.rounds):
        for name, (step, _) in timers.items():
            step()  # untimed: the first call of a round pays for allocations
            for _ in range(args.steps):
                w, c = time.perf_counter(), time.thread_time()
                step()
                wall[name].append(time.perf_counter() - w)
                cpu[name].append(time.thread_time() - c)
            print(f"{name}: {statistics.median(cpu[name]):.3f} s CPU per step", flush=True)
    rows = []
    base = statistics.median(cpu[next(iter(SPEED))])
    for name, spec in SPEED.items():
        c = statistics.median(cpu[name])
        rows.append({"config": name, "arch": spec[0], "width": spec[1], "blocks": spec[2], "batch": spec[3],
                     "precision": spec[4], "appearance": spec[5], "parameters": timers[name][1],
                     "wall_s_per_step": round(statistics.median(wall[name]), 3), "cpu_s_per_step": round(c, 3),
                     "images_per_cpu_s": round(spec[3] / c, 2), "relative_cpu_per_step": round(c / base, 2),
                     "steps_timed": len(cpu[name])})
    return rows


def curves(args: argparse.Namespace) -> list[dict]:
    rows = []
    for name in args.configs:
        budget = {"steps_per_epoch": args.every, **CURVES[name]}
        with tempfile.TemporaryDirectory() as tmp:
            start = time.thread_time()
            run = train_evaluator(Path(tmp) / "run", args.modality, 2, "quick", epochs=args.steps // args.every,
                                  budget=budget, progress=False)
            cpu = time.thread_time() - start
        for row in run.history:
            rows.append({"config": name, "step": row["step"], "train_l1": round(row["train_l1"], 4),
                         "val_l1": round(row["val_l1"], 4), "auc_mean": round(row.get("auc_mean", float("nan")), 4),
                         "train_wall_s": row["seconds"], "run_cpu_s": round(cpu, 1)})
        print(f"{name}: val L1 " + " ".join(f"{r['val_l1']:.4f}" for r in run.history), flush=True)
    return rows


def _write(part: str, rows: list[dict], key: str) -> None:
    """Merge ``rows`` into the part's CSV (replacing rows of the same configuration) and redraw its table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"evaluator_budget_{part}.csv"
    with (Path(tempfile.gettempdir()) / "evaluator_budget.lock").open("w") as lock:  # two runs side by side
        fcntl.flock(lock, fcntl.LOCK_EX)
        _merge(path, rows, key)


def _merge(path: Path, rows: list[dict], key: str) -> None:
    mine = {r[key] for r in rows}
    old: list[dict] = []
    if path.exists():
        with path.open() as f:
            old = list(csv.DictReader(f))
    merged = [r for r in old if r[key] not in mine] + rows
    fields = list(dict.fromkeys(k for r in merged for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(merged)
    machine = f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread"
    lines = [f"{machine}, {time.strftime('%Y-%m-%d')}", "", "| " + " | ".join(fields) + " |",
             "|" + "---|" * len(fields)]
    lines += ["| " + " | ".join(str(r[k]) for k in fields) + " |" for r in merged]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {path} and {path.with_suffix('.md')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("speed")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=6, help="timed steps per configuration and round")
    p.add_argument("--modality", default="t1")
    p = sub.add_parser("curves")
    p.add_argument("--configs", nargs="+", choices=list(CURVES), default=["resnet", "unet", "resnet cosine 5e-4"])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--modality", default="t1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part == "speed":
        _write("speed", speed(args), "config")
    else:
        _write(f"curves_{args.modality}", curves(args), "config")


if __name__ == "__main__":
    main()
