"""Probe: can the evaluator learn at all, in 2D and in 3D, at CPU scale?

The easiest form of Eq. 5 has no intensity noise: the input is (x2, x1) and the label x2 - x1, which
a network can output by subtracting its two input channels. This probe trains the evaluator
(CycleGAN's ResNet generator, :class:`imse_study.evaluator.model.Evaluator`) on that task, or on the
real one (``--noise shuffle_remap``), from the phantom's quick training split, and prints the mean
training L1 beside the mean |label| (what an all-zero output scores) every ``--every`` steps. A loss
that stays at the |label| level means the network has learned nothing.

    python benchmarks/probe_evaluator3d.py --dim 2 --steps 100                # learns (L1 well below |label|)
    python benchmarks/probe_evaluator3d.py --dim 3 --steps 100                # does not, at width 8
    python benchmarks/probe_evaluator3d.py --dim 3 --width 32 --blocks 2 --crop 16 32 32 --steps 250

One torch thread; the batch draws and transforms are the training loop's own (seeded per step).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from imse_study.evaluator.model import Evaluator
from imse_study.evaluator.train import load_images, make_training_pair
from imse_study.training import step_generator


def probe(dim: int, noise: str, width: int, blocks: int, lr: float, steps: int, batch: int, modality: str,
          crop: tuple[int, ...] | None, every: int) -> list[dict]:
    """Train for ``steps`` and return one row per ``every`` steps: step, L1, mean |label|, seconds."""
    images = load_images([modality], "train", dim, "quick", "phantom", None)[modality]
    torch.manual_seed(0)
    model = Evaluator(dim, width, blocks)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    rows, losses, labels, start = [], [], [], time.perf_counter()
    for step in range(steps):
        g = step_generator(0, 0, step)
        x = images[torch.randint(0, images.shape[0], (batch,), generator=g)]
        if crop:  # a centred crop: cheaper steps, same task
            x = x[(...,) + tuple(slice((s - c) // 2, (s - c) // 2 + c) for s, c in zip(x.shape[2:], crop))]
        inputs, label = make_training_pair(x, noise, (2, 50), g)
        loss = (model(inputs) - label).abs().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
        labels.append(float(label.abs().mean()))
        if (step + 1) % every == 0:
            rows.append({"step": step + 1, "l1": np.mean(losses[-every:]), "label_abs": np.mean(labels[-every:]),
                         "seconds": round(time.perf_counter() - start, 1)})
            print(f"step {rows[-1]['step']:5d}  L1 {rows[-1]['l1']:.4f}  mean|label| {rows[-1]['label_abs']:.4f}  "
                  f"{rows[-1]['seconds']:.0f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, choices=(2, 3), default=3)
    parser.add_argument("--noise", choices=("none", "shuffle_remap"), default="none")
    parser.add_argument("--modality", default="ct")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--crop", type=int, nargs="+", help="centred crop size per spatial axis")
    parser.add_argument("--every", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.crop and len(args.crop) != args.dim:
        parser.error(f"--crop needs {args.dim} sizes")
    probe(args.dim, args.noise, args.width, args.blocks, args.lr, args.steps, args.batch, args.modality,
          tuple(args.crop) if args.crop else None, args.every)


if __name__ == "__main__":
    main()
