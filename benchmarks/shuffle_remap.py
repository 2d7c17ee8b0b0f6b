"""Shuffle Remap speed: ``imse_study.augment.shuffle_remap`` against the paper's Algorithm 1 loop.

Both are timed in the same run on one torch thread, alternating in blocks of 5 calls (each block
after one untimed call, so each is measured in its steady state; ``--interleaved`` alternates
single calls instead), as medians of wall-clock time and of the thread's CPU time (which other jobs
on a shared machine disturb less). Cases: 2D 240 x 240 (batch 1 and 8) and 3D 48 x 128 x 128
(batch 1; batch 8 with ``--with-3d-batch8``), with ``N`` drawn from [2, 50] and from [40, 50].
The reference is Algorithm 1 applied per sample in a Python loop
(``tests/reference_shuffle_remap.py``), drawing its own random numbers; ours draws them with a
``torch.Generator``. The image is a synthetic head-like slice/volume in [-1, 1): background exactly
-1, a smooth random interior. Each case also checks that both agree given the same parameters.

    python benchmarks/shuffle_remap.py [--repeats K] [--out results.json] [--with-3d-batch8]
                                       [--interleaved]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reference_shuffle_remap import reference_batch, reference_with_params  # noqa: E402

from imse_study.augment.intensity import shuffle_remap  # noqa: E402
from imse_study.augment.spatial import gaussian_smooth  # noqa: E402


def head_like(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """(B, 1, *spatial) in [-1, 1): an ellipsoid of smooth random intensities on a -1 background."""
    g = torch.Generator().manual_seed(seed)
    batch, spatial = shape[0], shape[2:]
    noise = torch.rand(batch, 1, *spatial, generator=g)
    field = gaussian_smooth(noise, sigma=max(spatial) / 40) + 0.02 * noise
    flat = field.view(batch, -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    inside = ((flat - lo) / (hi - lo) * 1.8 - 0.9).view_as(field)
    axes = [torch.linspace(-1, 1, n) for n in spatial]
    radius = sum(a**2 for a in torch.meshgrid(*axes, indexing="ij")) / 0.85**2
    return torch.where(radius <= 1.0, inside, torch.full_like(inside, -1.0))


_BLOCK = 5  # calls per timing block


def _time(fn) -> tuple[float, float]:
    """(wall seconds, this thread's CPU seconds): CPU time is robust to other jobs on the box."""
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - wall, time.thread_time() - cpu


def _timings(fn, calls: int) -> list[tuple[float, float]]:
    return [_time(fn) for _ in range(calls)]


def run_case(name: str, shape: tuple[int, ...], n_range: tuple[int, int], repeats: int,
             seed: int, interleaved: bool = False) -> dict:
    """Timings of ours and the loop reference, alternating in blocks of ``_BLOCK`` calls (or call
    by call with ``interleaved``), plus an agreement check on shared parameters."""
    x = head_like(shape, seed)
    gen = torch.Generator().manual_seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)
    out, params = shuffle_remap(x, n_range, gen, return_params=True)
    max_diff = float((out - reference_with_params(x, params)).abs().max())

    def ours_call():
        shuffle_remap(x, n_range, gen)

    def reference_call():
        reference_batch(x, *n_range)

    ours, ref = [], []
    block = 1 if interleaved else _BLOCK
    for done in range(0, repeats, block):
        calls = min(block, repeats - done)
        if not interleaved:  # one untimed call: each block measures its steady state
            ours_call()
        ours.extend(_timings(ours_call, calls))
        if not interleaved:
            reference_call()
        ref.extend(_timings(reference_call, calls))
    row = {"case": name, "shape": list(shape), "n_range": list(n_range), "repeats": repeats,
           "timing": "interleaved" if interleaved else f"blocks of {_BLOCK}"}
    for kind, col in (("wall", 0), ("cpu", 1)):
        o = statistics.median(t[col] for t in ours)
        r = statistics.median(t[col] for t in ref)
        row.update({f"ours_ms_{kind}": o * 1e3, f"reference_ms_{kind}": r * 1e3,
                    f"ratio_{kind}": r / o})
    row["max_abs_diff_vs_reference"] = max_diff
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per case (median)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--with-3d-batch8", action="store_true",
                        help="also time a batch of 8 volumes (the loop reference takes ~1 s a call)")
    parser.add_argument("--interleaved", action="store_true",
                        help="alternate single calls instead of blocks (each call then starts with "
                             "caches the other implementation left)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    sizes = [("2D 240x240 batch 1", (1, 1, 240, 240)), ("2D 240x240 batch 8", (8, 1, 240, 240)),
             ("3D 48x128x128 batch 1", (1, 1, 48, 128, 128))]
    if args.with_3d_batch8:
        sizes.append(("3D 48x128x128 batch 8", (8, 1, 48, 128, 128)))
    results = []
    header = (f"{'case':24s} {'N':>8s} {'ours ms':>9s} {'loop ms':>9s} {'ratio':>7s} "
              f"{'cpu ratio':>9s} {'max |diff|':>11s}")
    print(header)
    print("-" * len(header))
    for name, shape in sizes:
        for n_range in ((2, 50), (40, 50)):
            row = run_case(name, shape, n_range, args.repeats, args.seed, args.interleaved)
            results.append(row)
            print(f"{name:24s} {str(list(n_range)):>8s} {row['ours_ms_wall']:9.3f} "
                  f"{row['reference_ms_wall']:9.2f} {row['ratio_wall']:7.1f} {row['ratio_cpu']:9.1f} "
                  f"{row['max_abs_diff_vs_reference']:11.2e}", flush=True)
    if args.out is not None:
        payload = {"benchmark": "shuffle_remap", "torch": torch.__version__, "threads": 1,
                   "machine": platform.machine(), "processor": platform.processor(),
                   "python": platform.python_version(), "results": results}
        args.out.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
