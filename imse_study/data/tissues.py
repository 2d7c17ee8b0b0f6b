"""Tissue properties and MR sequences of the phantom: one table, each number with its source.

Version 2 of the phantom (:data:`TISSUES`, :data:`SEQUENCES`) gives every tissue a relative proton
density, T1 and T2 at 1.5 T and at 3 T, and a CT number. MR images follow the spin-echo signal
equation ``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)`` with clinical sequence parameters; CT images are
the CT numbers. Partial volume mixes these per voxel by tissue fraction.

Sources (values are in vivo unless said otherwise; where reports differ we give the range and the
value chosen inside it):

* Bottomley PA, Foster TH, Argersinger RE, Pfeifer LM. A review of normal tissue hydrogen NMR
  relaxation times and relaxation mechanisms from 1-100 MHz. Med Phys 1984;11:425-448. Its fits
  ``T1 = A * f**B`` (f in Hz; grey matter A = 0.00116 s, B = 0.376; white matter A = 0.00071 s,
  B = 0.382) give GM 1.00 s / WM 0.68 s at 1.5 T and GM 1.30 s / WM 0.89 s at 3 T.
* Wansapura JP, Holland SK, Dunn RS, Ball WS. NMR relaxation times in the human brain at 3.0 tesla.
  JMRI 1999;9:531-538: GM T1 1331 ms, WM T1 832 ms, GM T2 110 ms, WM T2 80 ms at 3 T.
* Marques JP et al. MP2RAGE, a self bias-field corrected sequence for improved segmentation and
  T1-mapping at high field. NeuroImage 2010;49:1271-1281: GM 1.35 s, WM 0.81 s at 3 T.
* Stanisz GJ et al. T1, T2 relaxation and magnetization transfer in tissue at 3T. MRM
  2005;54:507-512 (tissue samples at 1.5 and 3 T): GM T1 1124 / 1820 ms, WM T1 884 / 1084 ms,
  GM T2 95 / 99 ms, WM T2 72 / 69 ms, skeletal muscle T1 1008 / 1412 ms, T2 44 / 50 ms.
  These are higher T1s than in vivo; they are the held-out ``other-tissue`` variant's table
  (:data:`STANISZ_2005`), not the training table.
* Gold GE et al. Musculoskeletal MRI at 3.0 T: relaxation times and image contrast. AJR
  2004;183:343-351: subcutaneous fat T1 343 / 382 ms, T2 58 / 68 ms; skeletal muscle T1 1130 /
  1420 ms, T2 35 / 32 ms (1.5 / 3 T).
* Rooney WD et al. Magnetic field and tissue dependencies of human brain longitudinal 1H2O
  relaxation in vivo. MRM 2007;57:308-318: CSF T1 about 4.3 s, nearly independent of field.
* Ernst T, Kreis R, Ross BD. Absolute quantitation of water and metabolites in the human brain.
  I. Compartments and water. J Magn Reson B 1993;102:1-8: water content GM 0.78, WM 0.65,
  CSF 0.97, i.e. 0.80 and 0.67 relative to CSF.
* Henkelman RM et al. Why fat is bright in RARE and fast spin-echo imaging. JMRI 1992;2:533-540:
  the closely spaced refocusing pulses of fast spin echo (FSE) suppress the J-coupling modulation
  that dephases fat between the widely spaced echoes of conventional spin echo, so fat decays
  slower and is bright on T2 and PD FSE. We model this with an effective FSE T2 of fat
  (:attr:`Tissue.fse_t2_ms`); its value is our choice, not a measurement: long enough that fat
  lies between grey matter and CSF on T2 FSE at TE 100 ms, as clinical T2 FSE shows.
* CT numbers: the Hounsfield scale defines air -1000 HU and water 0 HU; the soft-tissue values are
  the usual textbook ranges for non-contrast head CT (fat -150 to -50, CSF 0 to 15, WM 20 to 30,
  GM 35 to 45, muscle 35 to 55, cortical bone about 1000 to 2000 HU depending on kVp and
  thickness).

Version 1 of the phantom keeps its own frozen table (:data:`V1_TISSUES`, :data:`V1_SEQUENCES`):
changing it would change version 1's data, which the shipped models were trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

FIELDS_T = (1.5, 3.0)  # the field strengths the table covers


@dataclass(frozen=True)
class Relaxation:
    """T1 and T2 (ms) of a tissue at one field strength; ``fse_t2_ms`` is the T2 to use under fast
    spin echo where it differs (fat, see the module docstring), else ``None``."""

    t1_ms: float
    t2_ms: float
    fse_t2_ms: float | None = None


@dataclass(frozen=True)
class Tissue:
    """One tissue: relative proton density (CSF = 1), relaxation at 1.5 T and 3 T, CT number (HU)."""

    pd: float
    hu: float
    relaxation: dict[float, Relaxation]
    source: str = field(default="", compare=False)

    def at(self, field_t: float) -> Relaxation:
        """The relaxation times at ``field_t`` tesla (1.5 or 3)."""
        try:
            return self.relaxation[field_t]
        except KeyError:
            raise ValueError(f"no relaxation times at {field_t} T: choose one of {FIELDS_T}") from None


def _tissue(pd: float, hu: float, at_1_5: Relaxation, at_3: Relaxation, source: str) -> Tissue:
    return Tissue(pd=pd, hu=hu, relaxation={1.5: at_1_5, 3.0: at_3}, source=source)


# The version 2 table. Bone's T1 does not matter: with T2 of about 0.5 ms it gives no signal at
# any TE used here. "skin" stands for skin, galea and muscle of the scalp.
TISSUES: dict[str, Tissue] = {
    "air": _tissue(0.0, -1000.0, Relaxation(1000.0, 1.0), Relaxation(1000.0, 1.0),
                   "no protons; -1000 HU by the definition of the Hounsfield scale"),
    "csf": _tissue(1.00, 10.0, Relaxation(4300.0, 2000.0), Relaxation(4300.0, 1500.0),
                   "PD: the reference (Ernst 1993: water 0.97); T1 4.3 s at both fields (Rooney 2007); "
                   "T2 long, reported 0.7-2 s by method and partial volume: 2000 / 1500 ms chosen, it barely "
                   "matters at TE <= 140 ms; HU 0-15, 10 chosen"),
    "gm": _tissue(0.80, 38.0, Relaxation(1000.0, 100.0), Relaxation(1330.0, 100.0),
                  "PD 0.78/0.97 (Ernst 1993); T1 1.5 T 1000 (Bottomley 1984 fit; Stanisz 2005 ex vivo 1124), "
                  "3 T 1330 (Wansapura 1999 1331, Marques 2010 1350, Bottomley fit 1300); T2 95-110 at both "
                  "fields (Stanisz 2005 95/99, Wansapura 1999 110): 100; HU 35-45, 38 chosen"),
    "wm": _tissue(0.67, 28.0, Relaxation(680.0, 78.0), Relaxation(840.0, 75.0),
                  "PD 0.65/0.97 (Ernst 1993); T1 1.5 T 680 (Bottomley 1984 fit; Stanisz 2005 ex vivo 884), "
                  "3 T 840 (Wansapura 1999 832, Marques 2010 810, Bottomley fit 890); T2 69-80 (Stanisz 2005 "
                  "72/69, Wansapura 1999 80): 78 / 75; HU 20-30, 28 chosen"),
    "fat": _tissue(0.90, -100.0, Relaxation(343.0, 58.0, fse_t2_ms=150.0), Relaxation(382.0, 68.0, fse_t2_ms=140.0),
                   "T1 and conventional-SE T2 of subcutaneous fat (Gold 2004); FSE T2 an effective value "
                   "(Henkelman 1992, see above); PD 0.9: triglyceride holds about 0.96 of water's hydrogen "
                   "per volume (triolein C57H104O6, 885 g/mol, 0.91 g/mL), adipose tissue a little less; "
                   "HU -150 to -50, -100 chosen"),
    "skin": _tissue(0.75, 45.0, Relaxation(1070.0, 40.0), Relaxation(1415.0, 40.0),
                    "skeletal muscle as the stand-in for skin, galea and muscle: T1 1.5 T 1008-1130, 3 T "
                    "1412-1420 (Stanisz 2005, Gold 2004); T2 32-50 (same sources): 40; PD about 0.75 (muscle "
                    "is about 75 % water); HU 35-55, 45 chosen"),
    "bone": _tissue(0.20, 1500.0, Relaxation(250.0, 0.5), Relaxation(250.0, 0.5),
                    "cortical bone: about 20 % water by volume and T2* of about 0.5 ms, so no signal at "
                    "clinical TE (its T1 is then irrelevant); HU about 1000-2000, 1500 chosen"),
}

# The held-out "other-tissue" variant: Stanisz et al. 2005's tissue-sample values for brain and
# muscle (the other tissues keep the table above). Training never draws these.
STANISZ_2005: dict[str, Tissue] = {
    **TISSUES,
    "gm": replace(TISSUES["gm"], relaxation={1.5: Relaxation(1124.0, 95.0), 3.0: Relaxation(1820.0, 99.0)},
                  source="Stanisz 2005, tissue samples"),
    "wm": replace(TISSUES["wm"], relaxation={1.5: Relaxation(884.0, 72.0), 3.0: Relaxation(1084.0, 69.0)},
                  source="Stanisz 2005, tissue samples"),
    "skin": replace(TISSUES["skin"], relaxation={1.5: Relaxation(1008.0, 44.0), 3.0: Relaxation(1412.0, 50.0)},
                    source="Stanisz 2005, skeletal muscle"),
}

TISSUE_TABLES: dict[str, dict[str, Tissue]] = {"literature": TISSUES, "stanisz2005": STANISZ_2005}


@dataclass(frozen=True)
class Sequence:
    """A spin-echo sequence: repetition and echo time (ms), and whether it is fast spin echo."""

    tr_ms: float
    te_ms: float
    fast_spin_echo: bool


# Typical clinical brain protocols. PD needs a long TR: CSF's T1 of about 4.3 s leaves CSF darker
# than grey matter at TR 3000 ms; long-TR PD FSE (TR 5-8 s, TE about 10 ms) shows CSF brightest
# of the brain tissues and fat bright, as the measured real PD scans do.
SEQUENCES: dict[str, Sequence] = {
    "t1": Sequence(tr_ms=500.0, te_ms=10.0, fast_spin_echo=False),
    "t2": Sequence(tr_ms=4000.0, te_ms=100.0, fast_spin_echo=True),
    "pd": Sequence(tr_ms=7000.0, te_ms=10.0, fast_spin_echo=True),
}


def spin_echo(pd: float, t1_ms: float, t2_ms: float, tr_ms: float, te_ms: float) -> float:
    """The spin-echo signal ``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)``."""
    return pd * (1.0 - math.exp(-tr_ms / t1_ms)) * math.exp(-te_ms / t2_ms)


def mr_signal(tissue: Tissue, sequence: Sequence, field_t: float) -> float:
    """Signal of ``tissue`` under ``sequence`` at ``field_t`` tesla (FSE uses the FSE T2 of fat)."""
    relax = tissue.at(field_t)
    t2 = relax.fse_t2_ms if sequence.fast_spin_echo and relax.fse_t2_ms is not None else relax.t2_ms
    return spin_echo(tissue.pd, relax.t1_ms, t2, sequence.tr_ms, sequence.te_ms)


# --------------------------------------------------------------------------------------------
# Version 1 (frozen). Its own note: "Approximate 1.5 T values (e.g. Wansapura et al., JMRI 1999;
# Bojorquez et al., MRI 2017; the BrainWeb simulator's tables) and typical CT numbers. "scalp"
# mixes skin and subcutaneous fat, which makes it bright on T1; cortical bone has almost no MR
# signal and a high CT number." Its T2 uses conventional spin echo (fat mid-grey on T2) and its PD
# TR of 5000 ms leaves CSF darker than grey matter: version 2 corrects both.


@dataclass(frozen=True)
class V1Tissue:
    """Version 1's tissue: proton density (relative), T1 and T2 (ms), CT number (HU)."""

    pd: float
    t1_ms: float
    t2_ms: float
    hu: float


V1_TISSUES: dict[str, V1Tissue] = {
    "air": V1Tissue(pd=0.0, t1_ms=1000.0, t2_ms=1.0, hu=-1000.0),
    "scalp": V1Tissue(pd=0.90, t1_ms=300.0, t2_ms=85.0, hu=-40.0),
    "skull": V1Tissue(pd=0.08, t1_ms=300.0, t2_ms=2.0, hu=1100.0),
    "csf": V1Tissue(pd=1.00, t1_ms=4000.0, t2_ms=2000.0, hu=8.0),
    "gm": V1Tissue(pd=0.82, t1_ms=1200.0, t2_ms=95.0, hu=40.0),
    "wm": V1Tissue(pd=0.70, t1_ms=650.0, t2_ms=80.0, hu=28.0),
}

# Version 1's spin-echo sequences (TR, TE in ms).
V1_SEQUENCES: dict[str, tuple[float, float]] = {"t1": (500.0, 12.0), "t2": (4000.0, 100.0), "pd": (5000.0, 12.0)}
