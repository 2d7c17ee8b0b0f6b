"""Every performance benchmark of the study in one run: ratios against references timed in the same run.

The machine is shared and noisy, so no absolute time is a target: each benchmark times our code
and a reference *in the same run* (alternating, medians), and reports the ratio. Results go to one
JSON file (machine facts, load average at start and end, versions, date) and a readable summary;
``benchmarks/plot.py`` turns the JSON into the plots and tables of ``book/performance.md``.

    python benchmarks/run.py [--quick | --smoke] [--only NAME,...] [--out benchmarks/results/latest.json]

Benchmarks (``--only`` takes these names):

``shuffle_remap``  ours against the paper's Algorithm 1 as a plain loop (``tests/reference_shuffle_remap.py``
                   via ``benchmarks/shuffle_remap.py``); wall and CPU-time ratios; agreement check.
``pipeline``       augmented samples per second (Eq. 5's inputs: two random affine + elastic warps and
                   Shuffle Remap, ``imse_study.evaluator.train.make_training_pair``) against evaluator
                   training steps per second (forward + backward + Adam) at the quick and paper sizes.
``scaling``        evaluator forward + backward time and peak memory against image size and width;
                   growth exponent = least-squares slope of log(time) against log(pixels). Each
                   (dim, width) runs in its own subprocess; peak memory = peak resident set during
                   one forward+backward (VmHWM reset via /proc/self/clear_refs) minus the resident set
                   just before it, or ``torch.cuda.max_memory_allocated`` on a GPU.
``registration``   seconds per pair with Dice beside it: VoxelMorph inference, classic IMSE (paper mode and
                   multires), ANTs SyN-MI and elastix, on phantom test pairs t1->t2 and ct->t1.
``optimisations``  before/after ratios: inference without autograd, channels_last, torch.compile.
``gpu``            when ``torch.cuda.is_available()``: the paper-profile sizes on the GPU.

Everything runs on one torch thread (``OMP_NUM_THREADS=1`` is set for subprocesses); ANTs and
elastix are given one thread too, so that seconds compare like with like.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from shuffle_remap import head_like, run_case  # noqa: E402  (benchmarks/shuffle_remap.py)

DEFAULT_OUT = BENCH / "results" / "latest.json"
BENCHMARKS = ("shuffle_remap", "pipeline", "scaling", "registration", "optimisations", "gpu")
SCHEMA = 1

# --------------------------------------------------------------------------------------------
# Settings per mode: full (the committed run, ~15 min on 2 busy cores), quick, smoke (the test)

SETTINGS: dict[str, dict[str, Any]] = {
    "full": {
        "sr_cases": [("2D 240x240 batch 1", (1, 1, 240, 240), 10), ("2D 240x240 batch 8", (8, 1, 240, 240), 10),
                     ("3D 48x128x128 batch 1", (1, 1, 48, 128, 128), 5),
                     ("3D 48x128x128 batch 8", (8, 1, 48, 128, 128), 3)],
        "pipeline_calls": 6, "pipeline_steps": {"quick": 5, "paper": 1}, "paper_step_batch": 1,
        "scaling_sizes": {2: [64, 96, 128, 192, 256], 3: [32, 48, 64, 96, 128]},
        "scaling_widths": [8, 16, 32], "scaling_limit_s": {2: 4.0, 3: 10.0}, "scaling_repeats": {2: 3, 3: 2},
        "registration_pairs": 4, "registration_pairs_slow": 2, "compile": True, "opt_repeats": 7,
    },
    "quick": {
        "sr_cases": [("2D 240x240 batch 1", (1, 1, 240, 240), 5), ("2D 240x240 batch 8", (8, 1, 240, 240), 5),
                     ("3D 48x128x128 batch 1", (1, 1, 48, 128, 128), 3)],
        "pipeline_calls": 3, "pipeline_steps": {"quick": 3, "paper": 1}, "paper_step_batch": 1,
        "scaling_sizes": {2: [64, 96, 128, 192, 256], 3: [32, 48, 64, 96, 128]},
        "scaling_widths": [8, 16, 32], "scaling_limit_s": {2: 1.5, 3: 1.5}, "scaling_repeats": {2: 2, 3: 1},
        "registration_pairs": 1, "compile": False, "opt_repeats": 3,
    },
    "smoke": {
        "sr_cases": [("2D 48x48 batch 2", (2, 1, 48, 48), 2), ("3D 8x16x16 batch 1", (1, 1, 8, 16, 16), 2)],
        "pipeline_calls": 1, "pipeline_steps": {"smoke": 1}, "paper_step_batch": 1,
        "scaling_sizes": {2: [32, 48, 64], 3: [16, 24]}, "scaling_widths": [4],
        "scaling_limit_s": {2: 0.5, 3: 0.5}, "scaling_repeats": {2: 1, 3: 1},
        "registration_pairs": 1, "compile": False, "opt_repeats": 1,
    },
}

# registration rows that no target needs: with "registration_pairs_slow" they run on fewer pairs
SLOW_METHODS = ("classic_imse_paper", "elastix")

TARGETS = {
    "shuffle_remap": 20.0,         # ours at least 20x the loop at N in [40, 50]
    "pipeline": 2.0,               # augmented samples/s >= 2 x samples consumed by training per second
    "network_vs_ants": 50.0,       # VoxelMorph inference >= 50x faster than ANTs SyN (at >= Dice)
    "classic_imse_vs_ants": 2.0,   # classic IMSE within 2x of ANTs SyN's time
}


# --------------------------------------------------------------------------------------------
# Helpers


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_facts() -> dict[str, Any]:
    """What the numbers were measured on."""
    facts = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "niceness": os.nice(0) if hasattr(os, "nice") else None,
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {n: _version(n) for n in ("torch", "numpy", "monai", "antspyx", "itk-elastix", "imse_study",
                                              "scipy", "matplotlib")},
        "git_commit": _git_commit(),
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        facts["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        facts["memory_gib"] = None
    return facts


def _timed(fn: Callable[[], Any], sync: Callable[[], None] | None = None) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def _median_times(fn: Callable[[], Any], repeats: int, warmup: int = 1,
                  sync: Callable[[], None] | None = None) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    times = [_timed(fn, sync) for _ in range(max(1, repeats))]
    return {"wall_s": statistics.median(t[0] for t in times), "cpu_s": statistics.median(t[1] for t in times),
            "repeats": len(times)}


def _alternate(fns: dict[str, Callable[[], Any]], repeats: int, sync: Callable[[], None] | None = None
               ) -> dict[str, dict[str, float]]:
    """Median wall/CPU seconds of each function, alternating call by call after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            times[name].append(_timed(fn, sync))
    return {k: {"wall_s": statistics.median(t[0] for t in v), "cpu_s": statistics.median(t[1] for t in v),
                "repeats": len(v)} for k, v in times.items()}


def _call(fn: Callable[..., Any], *args: Any, context: Callable[[], Any] = torch.no_grad) -> Callable[[], Any]:
    """``fn(*args)`` under ``context`` (no autograd by default), as a closure for :func:`_alternate`."""
    def run() -> Any:
        with context():
            return fn(*args)
    return run


def _ratio(name: str, value: float, target: float | None, higher_is_better: bool = True, unit: str = "x",
           note: str = "", met: bool | None = None) -> dict[str, Any]:
    if met is None and target is not None and value == value:
        met = value >= target if higher_is_better else value <= target
    return {"name": name, "value": float(value), "target": target,
            "target_text": None if target is None else f"{'>=' if higher_is_better else '<='} {target:g}{unit}",
            "met": met, "note": note}


def _fit_exponent(sizes: list[int], times: list[float]) -> float | None:
    if len(sizes) < 2:
        return None
    slope, _ = np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(times, float)), 1)
    return float(slope)


# --------------------------------------------------------------------------------------------
# 1. Shuffle Remap


def bench_shuffle_remap(mode: str) -> dict[str, Any]:
    cases, ratios = [], []
    for name, shape, repeats in SETTINGS[mode]["sr_cases"]:
        for n_range in ((2, 50), (40, 50)):
            row = run_case(name, shape, n_range, repeats, seed=0)
            cases.append(row)
            print(f"  {name:24s} N={str(list(n_range)):8s} ours {row['ours_ms_wall']:8.2f} ms  "
                  f"loop {row['reference_ms_wall']:9.2f} ms  ratio wall {row['ratio_wall']:6.1f}  "
                  f"cpu {row['ratio_cpu']:6.1f}  max|diff| {row['max_abs_diff_vs_reference']:.1e}", flush=True)
            if n_range == (40, 50):
                ratios.append(_ratio(f"shuffle_remap {name} N[40,50] (wall)", row["ratio_wall"],
                                     TARGETS["shuffle_remap"], note=f"CPU-time ratio {row['ratio_cpu']:.1f}x"))
            else:
                ratios.append(_ratio(f"shuffle_remap {name} N[2,50] (wall)", row["ratio_wall"], None,
                                     note=f"CPU-time ratio {row['ratio_cpu']:.1f}x"))
    return {"what": "imse_study.augment.shuffle_remap vs Algorithm 1 as a per-sample Python loop; medians of "
                    "blocks of 5 calls after one untimed call each (benchmarks/shuffle_remap.py run_case)",
            "cases": cases, "ratios": ratios}


# --------------------------------------------------------------------------------------------
# 2. Training input pipeline vs training steps


def _pipeline_case(label: str, size: int, width: int, n_blocks: int, batch: int, step_batch: int,
                   calls: int, steps: int, device: str = "cpu") -> dict[str, Any]:
    from imse_study.evaluator.model import Evaluator
    from imse_study.evaluator.train import make_training_pair

    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    images = head_like((16, 1, size, size), seed=1).to(dev)
    g = torch.Generator(device=dev).manual_seed(0)

    def augment(b: int):
        index = torch.randint(0, images.shape[0], (b,), generator=g, device=dev)
        return make_training_pair(images[index], "shuffle_remap", (2, 50), g)

    pipe = _median_times(lambda: augment(batch), calls, sync=sync)
    torch.manual_seed(0)
    model = Evaluator(2, width, n_blocks).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    inputs, label_ = augment(step_batch)

    def step():
        loss = (model(inputs) - label_).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train = _median_times(step, steps, sync=sync)
    samples_per_s = batch / pipe["wall_s"]
    steps_per_s = 1.0 / train["wall_s"]
    consumed = steps_per_s * step_batch  # samples per second training eats
    return {
        "case": label, "size": [size, size], "width": width, "n_blocks": n_blocks, "device": device,
        "pipeline_batch": batch, "train_step_batch": step_batch,
        "pipeline_s_per_batch": pipe, "train_s_per_step": train,
        "samples_per_s": samples_per_s, "steps_per_s": steps_per_s,
        "ratio": samples_per_s / consumed,
        "ratio_cpu": (batch / pipe["cpu_s"]) / (step_batch / train["cpu_s"]),
        "n_parameters": model.n_parameters,
    }


def bench_pipeline(mode: str) -> dict[str, Any]:
    from imse_study.config import get_profile

    s = SETTINGS[mode]
    cases = []
    for prof_name, steps in s["pipeline_steps"].items():
        prof = get_profile(prof_name)
        cfg, size = prof.evaluator2d, prof.phantom.size2d[0]
        step_batch = cfg.batch_size if prof_name != "paper" else s["paper_step_batch"]
        row = _pipeline_case(prof_name, size, cfg.width, cfg.n_blocks, cfg.batch_size, step_batch,
                             s["pipeline_calls"], steps, "cpu")
        cases.append(row)
        print(f"  {prof_name:6s} {size}px width {cfg.width} blocks {cfg.n_blocks}: "
              f"{row['samples_per_s']:8.1f} samples/s, {row['steps_per_s']:.3f} steps/s (batch {step_batch}) "
              f"-> ratio {row['ratio']:.1f}", flush=True)
    ratios = [_ratio(f"pipeline/training, {c['case']} profile {c['size'][0]}px", c["ratio"], TARGETS["pipeline"],
                     note=f"CPU-time ratio {c['ratio_cpu']:.1f}; training step timed at batch "
                          f"{c['train_step_batch']}, scaled per sample") for c in cases]
    return {"what": "samples/s of make_training_pair (2 random affine+elastic warps + Shuffle Remap N in [2,50]) "
                    "vs evaluator training steps/s (forward+backward+Adam); ratio = samples/s / (steps/s x batch). "
                    "Images: synthetic head-like slices (benchmarks/shuffle_remap.head_like). The paper-size "
                    "step is timed at a smaller batch on CPU (cost is linear in the batch); the ratio is per sample.",
            "cases": cases, "ratios": ratios}


# --------------------------------------------------------------------------------------------
# 3. Evaluator cost against size and width (one subprocess per (dim, width))


def _scaling_worker(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs inside a fresh process: forward+backward time and peak memory per ascending size."""

    from imse_study.evaluator.model import Evaluator

    torch.set_num_threads(1)
    dim, width, n_blocks, device = spec["dim"], spec["width"], spec["n_blocks"], spec["device"]
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else None
    torch.manual_seed(0)
    model = Evaluator(dim, width, n_blocks).to(dev).train()

    def status_mib(key: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0  # kB
        return float("nan")

    def reset_peak() -> bool:
        try:  # Linux >= 4.0: writing 5 resets the peak resident set size (VmHWM) to the current one
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    rows, previous = [], None
    for size in spec["sizes"]:
        pixels = size**dim
        if previous is not None:
            predicted = previous["wall_s"] * (pixels / previous["pixels"]) ** 1.1
            if predicted > spec["limit_s"]:
                rows.append({"size": size, "pixels": pixels, "skipped": True,
                             "reason": f"predicted {predicted:.1f} s per forward+backward > limit {spec['limit_s']} s"})
                continue
        x = torch.rand(1, 2, *([size] * dim), device=dev) * 2 - 1

        def fwd_bwd():
            model.zero_grad(set_to_none=True)
            model(x).abs().mean().backward()

        fwd_bwd()  # warm-up, then measure memory of one clean call
        model.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated() / 2**20
            torch.cuda.reset_peak_memory_stats()
            fwd_bwd()
            torch.cuda.synchronize()
            peak, method = torch.cuda.max_memory_allocated() / 2**20 - before, "cuda max_memory_allocated"
        else:
            before = status_mib("VmRSS")
            ok = reset_peak()
            fwd_bwd()
            peak = status_mib("VmHWM") - before if ok else float("nan")
            method = "VmHWM after reset minus VmRSS before" if ok else "unavailable"
        t = _median_times(fwd_bwd, spec["repeats"], warmup=0, sync=sync)
        row = {"size": size, "pixels": pixels, "wall_s": t["wall_s"], "cpu_s": t["cpu_s"],
               "repeats": t["repeats"], "peak_mib": peak, "memory_method": method, "skipped": False}
        rows.append(row)
        previous = row
    return rows


def bench_scaling(mode: str) -> dict[str, Any]:
    from imse_study.config import get_profile

    s = SETTINGS[mode]
    quick = get_profile("quick")
    series, ratios = [], []
    for dim in (2, 3):
        n_blocks = quick.evaluator(dim).n_blocks
        for width in s["scaling_widths"]:
            spec = {"dim": dim, "width": width, "n_blocks": n_blocks, "sizes": s["scaling_sizes"][dim],
                    "limit_s": s["scaling_limit_s"][dim], "repeats": s["scaling_repeats"][dim], "device": "cpu"}
            # a fixed mmap threshold: glibc then returns every large tensor's memory to the OS on free,
            # so the resident set before a size holds the model and input only
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_scaling-worker", json.dumps(spec)],
                                  capture_output=True, text=True, env=env, timeout=1800)
            if proc.returncode != 0:
                series.append({**spec, "error": proc.stderr[-2000:]})
                print(f"  {dim}D width {width}: worker failed\n{proc.stderr[-1000:]}", flush=True)
                continue
            rows = json.loads(proc.stdout.strip().splitlines()[-1])
            done = [r for r in rows if not r["skipped"]]
            exponent = _fit_exponent([r["pixels"] for r in done], [r["wall_s"] for r in done])
            mem_exponent = _fit_exponent([r["pixels"] for r in done if r["peak_mib"] > 1],
                                         [r["peak_mib"] for r in done if r["peak_mib"] > 1])
            series.append({**spec, "rows": rows, "time_exponent": exponent, "memory_exponent": mem_exponent})
            sizes_txt = ", ".join(f"{r['size']}: {r['wall_s'] * 1e3:.0f} ms/{r['peak_mib']:.0f} MiB"
                                  if not r["skipped"] else f"{r['size']}: skipped" for r in rows)
            exp_txt = "n/a" if exponent is None else f"{exponent:.2f}"
            print(f"  {dim}D width {width:2d} blocks {n_blocks}: {sizes_txt}; exponent {exp_txt}", flush=True)
            if exponent is not None:
                ratios.append(_ratio(f"evaluator fwd+bwd growth exponent {dim}D width {width}", exponent, None,
                                     unit="", note="slope of log time vs log pixels; 1 = linear in pixels"))
    return {"what": "evaluator (quick profile's blocks: 6 in 2D, 3 in 3D) forward+backward of a batch of 1, "
                    "median wall/CPU time and peak memory per size; exponent = least-squares slope of log(time) "
                    "against log(pixels). Peak memory on CPU = the process's peak resident set (VmHWM, reset "
                    "through /proc/self/clear_refs just before) during one forward+backward minus the resident "
                    "set just before it: the activations, gradients and workspace of that call; one fresh process "
                    "per (dim, width), glibc's mmap threshold fixed so freed tensors leave the resident set. On a "
                    "GPU: torch.cuda.max_memory_allocated minus memory allocated before the call. Sizes predicted (from the previous size, exponent 1.1) "
                    "to exceed the per-call limit are skipped and marked.",
            "limit_s": {str(k): v for k, v in s["scaling_limit_s"].items()}, "series": series, "ratios": ratios}


# --------------------------------------------------------------------------------------------
# 4. Registration seconds per pair, with Dice


def _cpu_timed(register, store: list[float]):
    def wrapped(moving, target):
        start = time.process_time()
        out = register(moving, target)
        store.append(time.process_time() - start)
        return out
    return wrapped


def bench_registration(mode: str) -> dict[str, Any]:
    from imse_study.study import zoo
    from imse_study.registration.evaluate import evaluate, make_test_pairs, network_registrar
    from imse_study.registration.methods import classic_registrar, external_registrar
    from imse_study.registration.learned import load_network

    import pandas as pd

    n_pairs = SETTINGS[mode]["registration_pairs"]
    few_pairs = SETTINGS[mode].get("registration_pairs_slow", n_pairs)
    summary, tables, ratios = [], [], []
    for moving, target in (("t1", "t2"), ("ct", "t1")):
        pairs = make_test_pairs(moving, target, dim=2, profile="quick", limit=n_pairs)
        methods: dict[str, Any] = {}
        path = zoo.network_path("imse_sr", moving, target)
        if path is not None:
            net, _ = load_network(path)
            methods["voxelmorph_imse_sr"] = network_registrar(net)
            methods["voxelmorph_imse_sr"](pairs.moving[:1], pairs.target[:1])  # warm-up (first-call overhead)
        methods["classic_imse_multires"] = classic_registrar("imse", pairs)
        methods["classic_imse_multires_bf16"] = classic_registrar("imse", pairs,
                                                                  similarity_options={"precision": "bfloat16"})
        methods["classic_imse_paper"] = classic_registrar("imse", pairs, mode="paper", iterations=200, lr=1.0)
        methods["ants_syn_mi"] = external_registrar("ants", pairs, threads=1)
        methods["elastix"] = external_registrar("elastix", pairs, threads=1)
        cpu: dict[str, list[float]] = {k: [] for k in methods}
        timed = {k: _cpu_timed(v, cpu[k]) for k, v in methods.items()}
        # the slowest rows that no target needs at n pairs run on the first few pairs only
        few = {k: timed.pop(k) for k in SLOW_METHODS if k in timed and few_pairs < len(pairs)}
        table = evaluate(timed, pairs, progress=False)
        if few:
            subset = dataclasses.replace(
                pairs, ids=pairs.ids[:few_pairs],
                **{f: getattr(pairs, f)[:few_pairs] for f in ("moving", "target", "moving_labels", "target_labels")})
            table = pd.concat([table, evaluate(few, subset, include_initial=False, progress=False)], ignore_index=True)
        table["cpu_seconds"] = 0.0
        for name, values in cpu.items():
            table.loc[table.method == name, "cpu_seconds"] = values  # evaluate() calls in pair order
        tables.append(table)
        for name in ["initial", *methods]:
            sub = table[table.method == name]
            row = {"direction": pairs.direction, "method": name, "pairs": int(len(sub)),
                   "dice_mean": float(sub.dice.mean()), "dice_std": float(sub.dice.std()) if len(sub) > 1 else 0.0,
                   "seconds_mean": float(sub.seconds.mean()), "seconds_median": float(sub.seconds.median()),
                   "cpu_seconds_median": float(sub.cpu_seconds.median())}
            summary.append(row)
            print(f"  {pairs.direction:7s} {name:22s} Dice {row['dice_mean']:.3f}  "
                  f"{row['seconds_median']:8.3f} s/pair (median of {row['pairs']})", flush=True)
        def matched(method: str) -> tuple[float, float, float, float, int]:
            """Median seconds and mean Dice of ``method`` and of ANTs over the pairs both ran on, and the
            ratio of their median CPU seconds (ANTs / method)."""
            a = table[table.method == method].set_index("pair")
            r = table[table.method == "ants_syn_mi"].set_index("pair")
            common = a.index.intersection(r.index)
            return (float(a.loc[common, "seconds"].median()), float(a.loc[common, "dice"].mean()),
                    float(r.loc[common, "seconds"].median()), float(r.loc[common, "dice"].mean()), len(common),
                    float(r.loc[common, "cpu_seconds"].median() / a.loc[common, "cpu_seconds"].median()))

        if "voxelmorph_imse_sr" in methods:
            vm_s, vm_d, ants_s, ants_d, n, cpu_ratio = matched("voxelmorph_imse_sr")
            speed = ants_s / vm_s
            dice_ok = vm_d >= ants_d
            ratios.append(_ratio(f"registration {pairs.direction}: ANTs SyN s / VoxelMorph s", speed,
                                 TARGETS["network_vs_ants"], met=bool(speed >= TARGETS["network_vs_ants"] and dice_ok),
                                 note=f"Dice VoxelMorph {vm_d:.3f} vs ANTs {ants_d:.3f} ({'>=' if dice_ok else '<'}); "
                                      f"speed part {'met' if speed >= TARGETS['network_vs_ants'] else 'missed'}; "
                                      f"{n} pairs; CPU-time ratio {cpu_ratio:.1f}"))
        fp32_s, fp32_d, *_ = matched("classic_imse_multires")
        bf16_s, bf16_d, *_ = matched("classic_imse_multires_bf16")
        ratios.append(_ratio(f"registration {pairs.direction}: classic IMSE float32 s / bfloat16 s", fp32_s / bf16_s, None,
                             note=f"Dice float32 {fp32_d:.3f} vs bfloat16 {bf16_d:.3f} (evaluator under torch.autocast)"))
        for name in ("classic_imse_multires", "classic_imse_multires_bf16", "classic_imse_paper"):
            m_s, m_d, ants_s, ants_d, n, cpu_ratio = matched(name)
            ratios.append(_ratio(f"registration {pairs.direction}: {name} s / ANTs SyN s", m_s / ants_s,
                                 TARGETS["classic_imse_vs_ants"], higher_is_better=False,
                                 note=f"Dice {m_d:.3f} vs ANTs {ants_d:.3f}; {n} pairs; CPU-time ratio "
                                      f"{1 / cpu_ratio:.1f}"))
    per_pair = pd.concat(tables, ignore_index=True)
    return {"what": "seconds per pair (median over pairs, wall; evaluate()'s timing) and mean Dice over brain "
                    "labels on quick-profile 2D phantom test pairs (120x120, 2 mm); ANTs SyN-MI and elastix "
                    "with threads=1, torch with 1 thread; the VoxelMorph network gets one untimed warm-up call. "
                    "classic IMSE in paper mode and elastix run on the first registration_pairs_slow pairs only",
            "pairs_slow_methods": few_pairs,
            "pairs_per_direction": n_pairs, "summary": summary,
            "per_pair": per_pair[["pair", "direction", "method", "dice", "seconds", "cpu_seconds"]].to_dict("records"),
            "ratios": ratios}


# --------------------------------------------------------------------------------------------
# 5. Optimisation checks (before / after in the same run)


def _compile_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: eager vs torch.compile of the evaluator forward (no grad)."""
    from imse_study.evaluator.model import Evaluator

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = Evaluator(2, spec["width"], spec["n_blocks"]).eval()
    x = torch.rand(spec["batch"], 2, spec["size"], spec["size"]) * 2 - 1
    start = time.perf_counter()
    compiled = torch.compile(model)
    with torch.no_grad():
        compiled(x)
    compile_s = time.perf_counter() - start

    with torch.no_grad():
        diff = float((compiled(x) - model(x)).abs().max())
    t = _alternate({"eager": _call(model, x), "compiled": _call(compiled, x)}, spec["repeats"])
    out = {"compile_s": compile_s, "times": t, "max_abs_diff": diff}

    # what classic IMSE registration does at each step: forward + backward to the input (batch 1,
    # frozen weights, as imse_study.losses.similarity freezes them)
    for p in model.parameters():
        p.requires_grad_(False)
    x1 = x[:1].clone()

    def fb(m):
        def run():
            xi = x1.clone().requires_grad_(True)
            m(xi).abs().mean().backward()
            return xi.grad
        return run

    start = time.perf_counter()
    fb(compiled)()
    out["compile_fwd_bwd_s"] = time.perf_counter() - start
    out["max_abs_diff_grad"] = float((fb(compiled)() - fb(model)()).abs().max())
    out["times_fwd_bwd_input"] = _alternate({"eager": fb(model), "compiled": fb(compiled)}, spec["repeats"] * 2)
    return out


def bench_optimisations(mode: str) -> dict[str, Any]:
    from imse_study.study import zoo
    from imse_study.config import get_profile
    from imse_study.evaluator.model import Evaluator
    from imse_study.registration.evaluate import make_test_pairs
    from imse_study.registration.learned import load_network

    s = SETTINGS[mode]
    reps = s["opt_repeats"]
    checks, ratios = [], []

    # a. network inference: autograd vs no_grad vs inference_mode
    path = zoo.network_path("imse_sr", "t1", "t2")
    if path is not None:
        net, _ = load_network(path)
        pairs = make_test_pairs("t1", "t2", dim=2, profile="quick", limit=1)
        m, t = pairs.moving[:1], pairs.target[:1]

        times = _alternate({"autograd": lambda: net(m, t), "no_grad": _call(net, m, t),
                            "inference_mode": _call(net, m, t, context=torch.inference_mode)}, reps * 3)
        checks.append({"check": "VoxelMorph inference 120x120: autograd vs no_grad vs inference_mode", "times": times})
        ratios.append(_ratio("VoxelMorph inference: autograd s / no_grad s", times["autograd"]["wall_s"]
                             / times["no_grad"]["wall_s"], None, note="network_registrar already uses no_grad"))
        ratios.append(_ratio("VoxelMorph inference: no_grad s / inference_mode s", times["no_grad"]["wall_s"]
                             / times["inference_mode"]["wall_s"], None))

    # b. channels_last for the evaluator forward (quick profile, batch 8, no grad)
    cfg = get_profile("quick").evaluator2d
    size = get_profile("quick").phantom.size2d[0] if mode != "smoke" else 48
    torch.manual_seed(0)
    model = Evaluator(2, cfg.width, cfg.n_blocks).eval()
    model_cl = Evaluator(2, cfg.width, cfg.n_blocks).eval()
    model_cl.load_state_dict(model.state_dict())
    model_cl = model_cl.to(memory_format=torch.channels_last)
    x = torch.rand(cfg.batch_size, 2, size, size) * 2 - 1
    x_cl = x.contiguous(memory_format=torch.channels_last)

    with torch.no_grad():
        diff = float((model(x) - model_cl(x_cl)).abs().max())
    times = _alternate({"contiguous": _call(model, x), "channels_last": _call(model_cl, x_cl)}, reps)
    checks.append({"check": f"evaluator forward {size}x{size} width {cfg.width} batch {cfg.batch_size}: "
                            "contiguous vs channels_last", "times": times, "max_abs_diff": diff})
    ratios.append(_ratio(f"evaluator forward {size}px: contiguous s / channels_last s",
                         times["contiguous"]["wall_s"] / times["channels_last"]["wall_s"], None,
                         note=f"max |diff| {diff:.1e}"))

    # c. the same in training mode (forward+backward), where channels_last would matter for Eq. 5
    model.train(), model_cl.train()

    def fb(mdl, inp):
        def run():
            mdl.zero_grad(set_to_none=True)
            mdl(inp).abs().mean().backward()
        return run

    times = _alternate({"contiguous": fb(model, x), "channels_last": fb(model_cl, x_cl)}, max(1, reps // 2))
    checks.append({"check": f"evaluator forward+backward {size}x{size} width {cfg.width} batch {cfg.batch_size}: "
                            "contiguous vs channels_last", "times": times})
    ratios.append(_ratio(f"evaluator fwd+bwd {size}px: contiguous s / channels_last s",
                         times["contiguous"]["wall_s"] / times["channels_last"]["wall_s"], None))

    # d. torch.compile on CPU (fresh process, with a time limit)
    if s["compile"]:
        spec = {"width": cfg.width, "n_blocks": cfg.n_blocks, "batch": cfg.batch_size, "size": size, "repeats": reps}
        import tempfile

        # a fresh inductor cache: the compile time is that of a first compile on this machine
        cache = tempfile.mkdtemp(prefix="imse_bench_inductor_")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCHINDUCTOR_CACHE_DIR": cache}
        try:
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_compile-worker",
                                   json.dumps(spec)], capture_output=True, text=True, env=env, timeout=420)
            if proc.returncode == 0:
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                checks.append({"check": f"evaluator forward {size}x{size}: eager vs torch.compile (inductor, CPU)",
                               **res})
                ratios.append(_ratio(f"evaluator forward {size}px batch {cfg.batch_size}: eager s / torch.compile s",
                                     res["times"]["eager"]["wall_s"] / res["times"]["compiled"]["wall_s"], None,
                                     note=f"compile (first call, empty cache) {res['compile_s']:.0f} s; max |diff| "
                                          f"{res['max_abs_diff']:.1e}"))
                tf = res["times_fwd_bwd_input"]
                checks.append({"check": f"evaluator forward+backward to the input {size}x{size} batch 1 (a classic "
                                        "IMSE step): eager vs torch.compile", "times": tf,
                               "compile_s": res["compile_fwd_bwd_s"], "max_abs_diff": res["max_abs_diff_grad"]})
                ratios.append(_ratio(f"evaluator fwd+bwd to input {size}px batch 1: eager s / torch.compile s",
                                     tf["eager"]["wall_s"] / tf["compiled"]["wall_s"], None,
                                     note=f"compile of the backward {res['compile_fwd_bwd_s']:.0f} s; max |grad diff| "
                                          f"{res['max_abs_diff_grad']:.1e}"))
            else:
                checks.append({"check": "torch.compile", "error": proc.stderr[-2000:]})
        except subprocess.TimeoutExpired:
            checks.append({"check": "torch.compile", "error": "did not compile and run within 420 s"})
        finally:
            import shutil

            shutil.rmtree(cache, ignore_errors=True)
    else:
        checks.append({"check": "torch.compile", "skipped": f"not run in {mode} mode"})
    for c in checks:
        if "times" in c:
            print("  " + c["check"] + ": " + ", ".join(f"{k} {v['wall_s'] * 1e3:.1f} ms" for k, v in c["times"].items()),
                  flush=True)
        else:
            print("  " + c["check"] + ": " + str(c.get("error", c.get("skipped")))[-300:], flush=True)
    return {"what": "before/after pairs timed alternately in the same process (median wall/CPU); torch.compile "
                    "in a fresh process, its compile time (first call) recorded apart from the steady state",
            "checks": checks, "ratios": ratios}


# --------------------------------------------------------------------------------------------
# 6. GPU


def bench_gpu(mode: str) -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"skipped": "no GPU: torch.cuda.is_available() is False", "ratios": []}
    from imse_study.augment.intensity import shuffle_remap
    from imse_study.config import get_profile
    from imse_study.evaluator.model import Evaluator

    out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "cases": [], "ratios": []}
    paper = get_profile("paper")
    cfg = paper.evaluator2d
    row = _pipeline_case("paper (GPU)", paper.phantom.size2d[0], cfg.width, cfg.n_blocks, cfg.batch_size,
                         cfg.batch_size, 10, 10, "cuda")
    out["cases"].append(row)
    out["ratios"].append(_ratio("GPU pipeline/training, paper profile 240px", row["ratio"], TARGETS["pipeline"]))
    # 3D paper evaluator training step and Shuffle Remap on the GPU
    cfg3 = paper.evaluator3d
    model = Evaluator(3, cfg3.width, cfg3.n_blocks).cuda().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(cfg3.batch_size, 2, *paper.phantom.size3d, device="cuda") * 2 - 1
    torch.cuda.reset_peak_memory_stats()

    def step():
        loss = model(x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = _median_times(step, 5, sync=torch.cuda.synchronize)
    out["cases"].append({"case": "3D paper evaluator training step", "size": list(paper.phantom.size3d),
                         "width": cfg3.width, "n_blocks": cfg3.n_blocks, "batch": cfg3.batch_size, "times": t,
                         "peak_mib": torch.cuda.max_memory_allocated() / 2**20})
    vol = head_like((8, 1, *paper.phantom.size3d), seed=0).cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    t = _median_times(lambda: shuffle_remap(vol, (40, 50), g), 10, sync=torch.cuda.synchronize)
    out["cases"].append({"case": "Shuffle Remap 3D 48x128x128 batch 8 N[40,50] on GPU", "times": t})
    for c in out["cases"]:
        print(f"  GPU {c['case']}: {json.dumps({k: v for k, v in c.items() if k != 'case'}, default=str)[:200]}")
    return out


# --------------------------------------------------------------------------------------------


RUNNERS = {"shuffle_remap": bench_shuffle_remap, "pipeline": bench_pipeline, "scaling": bench_scaling,
           "registration": bench_registration, "optimisations": bench_optimisations, "gpu": bench_gpu}


def run(mode: str = "full", only: list[str] | None = None, out: Path | None = DEFAULT_OUT) -> dict[str, Any]:
    torch.set_num_threads(1)
    names = list(only or BENCHMARKS)
    unknown = [n for n in names if n not in RUNNERS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}: choose from {', '.join(BENCHMARKS)}")
    result: dict[str, Any] = {"schema": SCHEMA, "mode": mode, "command": " ".join(["python", *sys.argv]),
                              "machine": machine_facts(), "targets": TARGETS, "benchmarks": {}}
    m = result["machine"]
    print(f"{m['date']}  {m['cpu_model']}  {m['cores']} cores  torch {m['versions']['torch']}  "
          f"threads {m['torch_threads']}  load {m['load_average_start']}  mode {mode}", flush=True)
    started = time.perf_counter()
    for name in names:
        print(f"\n== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            res = RUNNERS[name](mode)
        except Exception:  # one failing benchmark must not lose the others
            res = {"error": traceback.format_exc(), "ratios": []}
            print(res["error"], flush=True)
        res["seconds"] = time.perf_counter() - t0
        result["benchmarks"][name] = res
    result["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["seconds"] = time.perf_counter() - started
    result["ratios"] = [r | {"benchmark": n} for n, b in result["benchmarks"].items() for r in b.get("ratios", [])]
    print_summary(result)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=_json_default))
        print(f"\nwrote {out}")
    return result


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def print_summary(result: dict[str, Any]) -> None:
    print(f"\n== summary ({result['mode']}, {result['seconds']:.0f} s, load "
          f"{result['machine']['load_average_start']} -> {result['machine']['load_average_end']})")
    for r in result["ratios"]:
        status = "" if r["met"] is None else ("MET   " if r["met"] else "MISSED")
        target = r["target_text"] or ""
        print(f"  {status:6s} {r['value']:9.2f}  {target:9s} {r['name']}" + (f"  [{r['note']}]" if r["note"] else ""))
    for n, b in result["benchmarks"].items():
        if "error" in b:
            print(f"  ERROR in {n}: {b['error'].strip().splitlines()[-1]}")
        elif "skipped" in b:
            print(f"  skipped {n}: {b['skipped']}")


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_scaling-worker"]:
        print(json.dumps(_scaling_worker(json.loads(argv[1]))))
        return None
    if argv[:1] == ["--_compile-worker"]:
        print(json.dumps(_compile_worker(json.loads(argv[1]))))
        return None
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="fewer repeats and sizes (a few minutes)")
    group.add_argument("--smoke", action="store_true", help="tiny sizes, for the test suite (seconds)")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--plot", action=argparse.BooleanOptionalAction, default=None,
                        help="draw the book's plots and tables from the JSON (default: only when --out is the "
                             "default path)")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    result = run(mode, only, args.out)
    plot = args.plot if args.plot is not None else args.out.resolve() == DEFAULT_OUT.resolve()
    if plot:
        import plot as plotting  # benchmarks/plot.py

        plotting.main([str(args.out)])
    return result


if __name__ == "__main__":
    main()
