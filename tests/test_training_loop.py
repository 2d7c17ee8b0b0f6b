"""The one training loop (imse_study.training.run_training) on a toy trainer: exact resume after an
interruption or a time-limit pause, early stopping with best.pt, and the two training-state formats."""

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn

from imse_study.training import (
    EarlyStopping, Trainer, read_payload, run_settings, run_training, save_model_checkpoint, seeded_init, start_run,
)


@dataclass
class ToyMeta:
    seed: int = 0
    steps: int = 0
    epochs: int = 0
    command: str = "toy --epochs 4"
    extra: dict = field(default_factory=dict)


def _save(path, model, meta, train_state=None):
    return save_model_checkpoint(path, model.state_dict(), asdict(meta), train_state)


def _read(path: Path) -> dict:
    return read_payload(path, "toy checkpoint", "train one")


def toy(networks: int = 1, val: list[float] | None = None, shorten: bool = False) -> Trainer:
    """Linear regression(s) on seeded random batches; ``val`` scripts the validation L1 of each epoch."""
    models = {f"net{i}": seeded_init(i, lambda: nn.Linear(3, 1)) for i in range(networks)}
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=0.05) for name, m in models.items()}
    meta = ToyMeta()
    done: list[int] = []

    def step(g: torch.Generator, s: int) -> dict[str, float]:
        x = torch.randn(4, 3, generator=g)
        losses = {}
        for name, model in models.items():
            loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            losses[f"loss_{name}"] = float(loss.detach())
        return losses

    def validate() -> dict[str, float]:
        done.append(1)
        return {"val_l1": val[len(done) - 1]} if val else {}

    def describe(reached: int) -> None:
        meta.command = f"toy --epochs {reached}"

    return Trainer(name="toy", models=models, optimizers=optimizers, keep="net0", meta=meta,
                   settings=run_settings(meta, ("seed",)), save=_save, read=_read, step=step, validate=validate,
                   record_validation=bool(val), learning_rate=lambda s, e: 0.05 / (1 + e), log_lr=True,
                   shorten=describe if shorten else None)


def _train(out, trainer, resume=False, time_limit=None, **kw):
    run = start_run(out, "toy.pt", "toy model", resume=resume, time_limit=time_limit)
    return run_training(run, trainer, seed=3, epochs=4, steps_per_epoch=5, progress=False, **kw)


def _weights(trainer: Trainer) -> list[torch.Tensor]:
    return [t for m in trainer.models.values() for t in m.state_dict().values()]


def _log(path: Path) -> list[str]:  # log.csv without the seconds column
    rows = [line.split(",") for line in path.read_text().splitlines()]
    drop = rows[0].index("seconds")
    return [",".join(r[:drop] + r[drop + 1:]) for r in rows]


@pytest.mark.parametrize("networks", [1, 2])
def test_an_interrupted_run_resumes_exactly(tmp_path, networks):
    full = toy(networks)
    done = _train(tmp_path / "full", full)
    assert done.finished and done.step == 20 and (tmp_path / "full" / "toy.pt").exists()
    first = _train(tmp_path / "part", toy(networks), stop_after_epochs=1)
    assert not first.finished and not (tmp_path / "part" / "toy.pt").exists()
    resumed = toy(networks)
    _train(tmp_path / "part", resumed, resume=True)
    assert all(torch.equal(a, b) for a, b in zip(_weights(full), _weights(resumed)))
    assert _log(tmp_path / "full" / "log.csv") == _log(tmp_path / "part" / "log.csv")
    assert _log(tmp_path / "full" / "log.csv")[0] == f"epoch,step,{','.join(f'loss_net{i}' for i in range(networks))},lr"
    state = torch.load(tmp_path / "part" / "last.pt", weights_only=True)["train_state"]
    assert ("optimizer" in state) == (networks == 1) and ("models" in state) == (networks == 2)


def test_a_time_limit_pauses_a_run_that_resume_finishes(tmp_path):
    paused = _train(tmp_path / "t", toy(), time_limit=1e-9)
    assert (paused.epoch, paused.finished) == (1, False) and not (tmp_path / "t" / "toy.pt").exists()
    resumed, full = toy(), toy()
    assert _train(tmp_path / "t", resumed, resume=True).finished
    _train(tmp_path / "full", full)
    assert all(torch.equal(a, b) for a, b in zip(_weights(full), _weights(resumed)))


def test_a_time_limit_finishes_a_run_that_can_be_shortened(tmp_path):
    trainer = toy(shorten=True)
    done = _train(tmp_path / "t", trainer, time_limit=1e-9)
    assert (done.epoch, done.finished) == (1, True)
    assert _read(tmp_path / "t" / "toy.pt")["meta"]["command"] == "toy --epochs 1"
    with pytest.raises(ValueError, match="positive"):
        _train(tmp_path / "x", toy(), time_limit=0)


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    trainer = toy(val=[3.0, 2.0, 2.5, 2.6, 9.0])
    done = _train(tmp_path / "e", trainer, stopping=EarlyStopping(patience=2))
    assert (done.epoch, done.finished) == (4, True)  # epochs 3 and 4 did not beat epoch 2
    best, final = _read(tmp_path / "e" / "best.pt"), _read(tmp_path / "e" / "toy.pt")
    assert best["meta"]["epochs"] == 2 and best["meta"]["extra"]["validation"] == {"val_l1": 2.0}
    assert final["meta"]["extra"]["best_epoch"] == 2 and final["meta"]["extra"]["stopped_epoch"] == 4
    assert all(torch.equal(best["state_dict"][k], v) for k, v in final["state_dict"].items())
    assert not all(torch.equal(a, b) for a, b in zip(final["state_dict"].values(),
                                                      _read(tmp_path / "e" / "last.pt")["state_dict"].values()))


def test_resume_refuses_other_settings(tmp_path):
    _train(tmp_path / "r", toy(), stop_after_epochs=1)
    other = toy()
    other.settings = {"seed": 1}
    with pytest.raises(ValueError, match="seed=0 .now 1."):
        _train(tmp_path / "r", other, resume=True)
    with pytest.raises(FileExistsError, match="--resume"):
        _train(tmp_path / "r", toy())
