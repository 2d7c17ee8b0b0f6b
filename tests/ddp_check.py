"""Run under torchrun: train a smoke model on every rank, then compare the ranks' weights.

Usage: python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_check.py OUT_DIR [KIND]
KIND: evaluator (default), cyclegan or reggan (a translator: every network of the GAN is compared).
Rank 0 writes OUT_DIR/ranks.json with each rank's weight checksum and step count.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from imse_study.baselines.train import train_translator
from imse_study.evaluator.train import train_evaluator

torch.set_num_threads(1)
out = Path(sys.argv[1])
kind = sys.argv[2] if len(sys.argv) > 2 else "evaluator"
if kind == "evaluator":
    result = train_evaluator(out / "run", modality="t1", dim=2, profile="smoke", progress=False)
    params = list(result.model.parameters())
else:
    result = train_translator(kind, "t2", "t1", out / "run", profile="smoke", progress=False)
    networks = torch.load(out / "run" / "last.pt", weights_only=True)["train_state"]["models"]
    params = [t.float() for state in networks.values() for t in state.values()]
flat = torch.cat([p.detach().flatten() for p in params])
mine = torch.tensor([float(flat.double().sum()), float(flat.double().abs().sum()), float(result.steps)])
gathered = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
dist.all_gather(gathered, mine)
# exact equality of the full weight vectors, checked on rank 0 against rank 1's broadcast copy
other = flat.clone()
dist.broadcast(other, src=1)
if dist.get_rank() == 0:
    report = {"world_size": dist.get_world_size(), "ranks": [g.tolist() for g in gathered],
              "max_abs_difference": float((flat - other).abs().max())}
    (out / "ranks.json").write_text(json.dumps(report))
dist.destroy_process_group()
