"""Small helpers the experiment pages (notebooks/) share: the table of the parameters a run used."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

__all__ = ["data_finding", "parameters_table"]

_SIMPLE = (str, int, float, bool, type(None), list, tuple)


def parameters_table(namespace: Mapping[str, object]) -> pd.DataFrame:
    """The parameters a page ran with, as a small table (one row each, in the order they were set).

    Called right after the parameters cell (and papermill's injected cell, which overrides it), when
    the notebook's variables are its parameters only: plain values (strings, numbers, lists) whose
    names do not start with an underscore; IPython's own names (``In``, ``Out``, ``exit`` ...) and
    modules are left out.
    """
    rows = [{"parameter": k, "value": ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)}
            for k, v in namespace.items()
            if not k.startswith("_") and k not in ("In", "Out") and isinstance(v, _SIMPLE)]
    return pd.DataFrame(rows).set_index("parameter") if rows else pd.DataFrame(columns=["value"])


def data_finding(contrast: pd.DataFrame, sizes: pd.DataFrame | None = None) -> str:
    """The data page's opening finding (Markdown), computed from its contrast table (mean intensity
    per modality and label, one split): for each study pair, the tissue pairs whose brightness order
    flips between its two modalities (what makes the pair multi-modal), and the set sizes."""
    from itertools import combinations

    from imse_study.modalities import PAIRS

    means = contrast.pivot_table(index="label", columns="modality", values="mean_intensity")
    means = means.drop(index="background", errors="ignore")
    lines = ["**What this page shows** (no claim of the paper is tested here):", ""]
    for p in PAIRS.values():
        a, b = p.evaluator, p.other
        if a not in means or b not in means:
            continue
        pairs = list(combinations(means.index, 2))
        flips = [(x, y) for x, y in pairs
                 if (means.loc[x, a] - means.loc[y, a]) * (means.loc[x, b] - means.loc[y, b]) < 0]
        lines.append(f"- {p.title}: {len(flips)} of {len(pairs)} tissue pairs swap their brightness order between "
                     f"{a.upper()} and {b.upper()} (" + ", ".join(f"{x}/{y}" for x, y in flips[:6])
                     + (", ..." if len(flips) > 6 else "") + "): no monotone intensity mapping turns one into the other.")
    if sizes is not None and len(sizes):
        ours = sizes[sizes["data set"].astype(str).str.startswith("phantom")]
        lines.append("- Sets: " + ", ".join(f"{r['split']} {r['items']} items of {r['subjects']} subjects "
                                             f"({r['size']} px)" for _, r in ours.iterrows())
                     + "; the paper's sets are far larger (table below).")
    return "\n".join(lines)
