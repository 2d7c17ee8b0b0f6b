"""Shipped or trained here: how every study page gets a model (evaluator, network, translator).

The rule, written once: a page trains its models here on its data set in the smoke profile (no
models are shipped at its image size) or when asked (``train=True``); otherwise it uses the
shipped ones, which know the phantom only, so another data set is refused with a clear error
(:func:`imse_study.evaluator.pretrained.refuse_shipped`). A model already trained in the work
folder is reused, so that two pages (or both directions of a bidirectional network) pay for one
training. Every page shows where its models came from (:attr:`PageModel.source`) and the
command that reproduces or trains them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PageModel", "obtain", "obtain_evaluator", "shipped_text", "trained_text", "trains_here"]


@dataclass(frozen=True)
class PageModel:
    """A model a page uses: the model (None when it is not loaded or not available), its file or
    shipped name (None when missing), where it came from (the page's text) and the command that
    reproduces it (or, when missing, trains it); ``meta``: the loaded model's metadata."""

    model: Any
    path: str | Path | None
    source: str
    command: str = ""
    meta: Any = None

    @property
    def steps(self) -> int | None:
        return getattr(self.meta, "steps", None)

    @property
    def available(self) -> bool:
        return self.model is not None or self.path is not None

    @property
    def status(self) -> str:
        return self.source if self.available else f"not available (train it with: {self.command})"


def trains_here(profile: str, train: bool) -> bool:
    """Train here (``train``, or the smoke profile, which has no shipped models) or use the shipped ones."""
    return bool(train) or profile == "smoke"


def shipped_text(name: str, what: str = "") -> str:
    """``shipped evaluator `phantom-t1-2d``` (``what`` names the kind; empty: none)."""
    return f"shipped {what + ' ' if what else ''}`{name}`"


def trained_text(profile: str, steps: int | None = None) -> str:
    """``trained here (120 steps, profile smoke)``; without ``steps`` when the model was not loaded."""
    return f"trained here ({f'{steps} steps, ' if steps is not None else ''}profile {profile})"


def obtain(
    *, train: bool, profile: str, dataset: str, shipped: Callable[[], str | Path | None],
    trained: Path | Sequence[Path], fit: Callable[[], object],
    load: Callable[[str | Path], tuple[Any, Any]] | None = None, command: str | None = None,
    kinds: str = "evaluators", what: str = "", missing: str = "not shipped",
) -> PageModel:
    """A page's model by the rule of this module.

    ``shipped()`` gives the shipped name or file (None: not shipped; the result then has no model
    and says ``missing``). ``trained``: the checkpoint a training here writes (or several that
    would do, the first is the one ``fit()`` writes). ``load(path)`` gives ``(model, meta)``
    (``meta.steps``, ``meta.command``); without it nothing is loaded. ``command``: what the page
    shows to reproduce it (None: the loaded model's own). ``kinds``/``what`` name the models in
    the refusal and in the source text.
    """
    if not trains_here(profile, train):
        from imse_study.evaluator.pretrained import refuse_shipped

        refuse_shipped(dataset, kinds)
        found = shipped()
        if found is None:
            return PageModel(None, None, missing, command or "")
        model, meta = load(found) if load else (None, None)
        return PageModel(model, found, shipped_text(Path(found).name, what), _command(command, meta), meta)
    candidates = [trained] if isinstance(trained, Path) else list(trained)
    done = next((c for c in candidates if c.exists()), None)
    if done is None:
        fit()
        done = candidates[0]
    model, meta = load(done) if load else (None, None)
    return PageModel(model, done, trained_text(profile, getattr(meta, "steps", None)), _command(command, meta), meta)


def _command(command: str | None, meta: Any) -> str:
    return command if command is not None else (getattr(meta, "command", "") or "")


def evaluator_command(modality: str, dim: int, profile: str, out: str, extra: str = "") -> str:
    """The command that trains an evaluator like the shipped ones (``extra``: more options)."""
    return f"imse-study train-evaluator --modality {modality} --dim {dim} --profile {profile}{extra} --out {out}"


def obtain_evaluator(
    modality: str, dim: int = 2, profile: str = "quick", train: bool = False, seed: int = 0,
    dataset: str = "phantom", root: str | None = None, out: str | Path | None = None, name: str | None = None,
    load: bool = True, command: str | None = None, missing: str = "not shipped", what: str = "evaluator",
    **training: Any,
) -> PageModel:
    """The evaluator trained on ``modality``: the shipped ``name`` (default ``phantom-<modality>-<dim>d``)
    or one trained here into ``out`` (default: a temporary folder; reused when it holds one) on
    ``dataset`` (data folder ``root``). ``training`` goes to :func:`~imse_study.evaluator.train.train_evaluator`
    (``n_range``, ``noise``). ``load=False`` returns the name or path only (``model`` None; a
    missing shipped one says ``missing``); a missing one that must be loaded is an error."""
    from imse_study.evaluator.pretrained import available_pretrained, load_any, pretrained_path
    from imse_study.evaluator.train import train_evaluator

    name = name or f"phantom-{modality}-{dim}d"
    folder = Path(out) if out else None

    def fit() -> None:
        train_evaluator(folder, modality, dim, profile, seed=seed, progress=False, dataset=dataset, root=root,
                        **training)

    def shipped() -> str | None:
        if name in available_pretrained():
            return name
        if load:
            pretrained_path(name)  # raises, naming the shipped evaluators
        return None

    if folder is None and trains_here(profile, train):
        folder = Path(tempfile.mkdtemp(prefix="imse-evaluator-"))
    checkpoint = (folder or Path(".")) / "evaluator.pt"
    found = obtain(train=train, profile=profile, dataset=dataset,
                   shipped=shipped, trained=checkpoint, fit=fit,
                   load=(lambda p: load_any(str(p))) if load else None, command=command, what=what,
                   missing=missing)
    if found.model is not None:
        found.model.eval()
    return found
