"""Run under torchrun: train the smoke evaluator on every rank, then compare the ranks' weights.

Usage: python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_check.py OUT_DIR
Rank 0 writes OUT_DIR/ranks.json with each rank's weight checksum and step count.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from imse_study.evaluator.train import train_evaluator

torch.set_num_threads(1)
out = Path(sys.argv[1])
result = train_evaluator(out / "run", modality="t1", dim=2, profile="smoke", progress=False)
flat = torch.cat([p.detach().flatten() for p in result.model.parameters()])
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
