"""The modalities and the study's modality pairs, in one table (the package's only list of them).

A *modality* is an image contrast: the phantom's MR weightings T1, T2 and PD and CT. Each has a
*kind*, MR or CT, which picks its default scaling to [-1, 1] (MR: 0.5-99.5 percentiles; CT: the
HU window -1000..1500), and aliases that name it in file and layer names (``sub-1_T1w``).

A *pair* is what a study notebook's ``modality`` parameter names (``t1t2`` or ``ctmr``): two
modalities, one of which the evaluator is trained on, as in the paper (section 4.1: T1 for T1-T2,
CT for CT-MR). The CT-MR pair's MR is the phantom's T1 (``other``); a data set with no T1 but one
MR modality lends that one (:func:`imse_study.data.datasets.load_dataset`). Every direction a page
registers or translates follows from the pair:

* Table 2 registers both directions, (evaluator, other) first;
* Tables 3, 4 (multi-modal) and 5 go other -> evaluator (the paper's T2 -> T1 and MR -> CT rows);
* Table 4's single-modal row registers the evaluator's modality with itself.

Modality names outside this table (a manifest's ``flair`` or ``mr``) are allowed wherever images
are only scaled: anything that is not CT is scaled as MR.
"""

from __future__ import annotations

from dataclasses import dataclass

MR = "mr"
CT = "ct"
KINDS = (MR, CT)  # a manifest's modality kinds; the scaling rule of each


@dataclass(frozen=True)
class Modality:
    """One image contrast: its name, kind (MR or CT), title and file-name aliases."""

    name: str
    kind: str
    title: str
    aliases: tuple[str, ...] = ()


_MODALITY_ROWS = (
    Modality("t1", MR, "T1", ("t1w",)),
    Modality("t2", MR, "T2", ("t2w",)),
    Modality("pd", MR, "PD", ("pdw",)),
    Modality(CT, CT, "CT"),
)
MODALITY_TABLE: dict[str, Modality] = {m.name: m for m in _MODALITY_ROWS}
MODALITIES: tuple[str, ...] = tuple(MODALITY_TABLE)  # ("t1", "t2", "pd", "ct"): the phantom's
MR_MODALITIES: tuple[str, ...] = tuple(m.name for m in _MODALITY_ROWS if m.kind == MR)
T1, T2 = "t1", "t2"
CT_PARTNERS = (T1, T2)  # the MR modalities the study pairs with CT (ranking check, translation sources)
SCALING = {MR: "mr: 0.5-99.5 percentiles -> [-1, 1]", CT: "ct: HU window -1000..1500 -> [-1, 1]"}


@dataclass(frozen=True)
class Pair:
    """A study pair: the evaluator's modality, the other one, and what the paper reports for it."""

    name: str
    title: str
    evaluator: str  # the modality the pair's evaluator is trained on
    other: str  # the pair's other modality (for CT-MR: the MR, i.e. the phantom's T1)
    translation_sources: tuple[str, ...]  # the sources notebook 01 translates from (phantom)
    paper_data: str  # the data the paper's numbers for this pair come from
    paper_names: tuple[tuple[str, str], ...] = ()  # our modality -> the paper's name where it differs

    @property
    def modalities(self) -> tuple[str, str]:
        return self.evaluator, self.other

    @property
    def directions(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """Both registration directions (moving, target) of Table 2, (evaluator, other) first."""
        return (self.evaluator, self.other), (self.other, self.evaluator)

    @property
    def towards_evaluator(self) -> tuple[str, str]:
        """(moving or source, target): other -> evaluator, the direction of Tables 3, 4 and 5."""
        return self.other, self.evaluator

    @property
    def single_modal(self) -> tuple[str, str]:
        """Table 4's single-modal row: the evaluator's modality registered with itself."""
        return self.evaluator, self.evaluator

    def paper_row(self, moving: str, target: str) -> str:
        """The paper's row name of a direction of this pair, e.g. ``t2_to_t1`` or ``mr_to_ct``."""
        names = dict(self.paper_names)
        return f"{names.get(moving, moving)}_to_{names.get(target, target)}"

    @property
    def paper_table5(self) -> str:
        """The paper's Table 5 (and Table 3) row: other -> evaluator."""
        return self.paper_row(*self.towards_evaluator)


T1T2, CTMR = "t1t2", "ctmr"
PAIRS: dict[str, Pair] = {p.name: p for p in (
    Pair(T1T2, "T1-T2", evaluator=T1, other=T2, translation_sources=(T2,), paper_data="BraTS 2019"),
    Pair(CTMR, "CT-MR", evaluator=CT, other=T1, translation_sources=CT_PARTNERS,
         paper_data="its clinical head-and-neck set", paper_names=((T1, MR),)),
)}
EVALUATOR_PREFERENCE = (CT, T1)  # a direction's shipped evaluator: CT's when CT is in it, else T1's


def _unknown(what: str, name: object, known: tuple[str, ...] | list[str]) -> ValueError:
    return ValueError(f"unknown {what} {name!r}: choose one of {', '.join(known)}")


def modality(name: str) -> Modality:
    """The table's row for modality ``name`` (case and aliases as in file names: ``T1w`` is ``t1``)."""
    found = canonical(name)
    if found is None:
        raise _unknown("modality", name, MODALITIES)
    return MODALITY_TABLE[found]


def canonical(token: str) -> str | None:
    """The modality a name or alias means (``T1w`` -> ``t1``, ``CT`` -> ``ct``), or None."""
    text = str(token).lower()
    return next((m.name for m in _MODALITY_ROWS if text == m.name or text in m.aliases), None)


def name_tokens() -> dict[str, str]:
    """Every lower-case name and alias -> its modality (for reading modalities out of file names)."""
    return {token: m.name for m in _MODALITY_ROWS for token in (m.name, *m.aliases)}


def kind_of(name: str) -> str:
    """``ct`` for CT (any case), else ``mr``: how an image of modality ``name`` is scaled; names
    outside the table (a manifest's ``flair``) are MR images."""
    return CT if str(name).lower() == CT else MR


def is_ct(name: str) -> bool:
    """Is modality ``name`` CT (any case)?"""
    return kind_of(name) == CT


def pair(name: str) -> Pair:
    """The study pair a notebook's ``modality`` parameter names (``t1t2`` or ``ctmr``)."""
    try:
        return PAIRS[name]
    except (KeyError, TypeError):
        raise _unknown("modality pair", name, tuple(PAIRS)) from None


def pair_title(name: str) -> str:
    """``T1-T2`` / ``CT-MR`` for a pair; any other name unchanged."""
    return PAIRS[name].title if name in PAIRS else name


def evaluator_modality_of(moving: str, target: str) -> str:
    """The modality whose evaluator a direction uses: CT's if CT is in it, else T1's (the paper's choice)."""
    return CT if CT in (moving, target) else T1


def pair_of(moving: str, target: str) -> Pair | None:
    """The study pair a direction belongs to, or None."""
    return next((p for p in PAIRS.values() if {moving, target} == set(p.modalities)), None)


def paper_row(moving: str, target: str) -> str:
    """The paper's row of a direction (``ct_to_mr`` for ct -> t1); ``<moving>_to_<target>`` outside the pairs."""
    found = pair_of(moving, target)
    return found.paper_row(moving, target) if found else f"{moving}_to_{target}"


def study_partner(evaluator_modality: str) -> str | None:
    """The other modality of the study pair whose evaluator is trained on ``evaluator_modality``
    (t1 -> t2, ct -> t1); None when no pair has that evaluator."""
    found = [p.other for p in PAIRS.values() if p.evaluator == evaluator_modality]
    return found[0] if found else None
