"""The claims page is written from the notebooks' CSVs by fixed rules: check the rules flip with the data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from imse_study.study import claims
from imse_study.study.table2 import NETWORK_METHODS


def _register_csv(path, winner: str, name: str = "02_register_ctmr") -> None:
    rows = []
    for direction in ("ct->t1", "t1->ct"):
        for i in range(3):
            rows.append({"direction": direction, "method": "initial", "pair": i, "dice": 0.3, "hd95": 9.0,
                         "grad": np.nan, "profile": "quick"})
            for k, method in enumerate(NETWORK_METHODS):
                good = method == winner
                rows.append({"direction": direction, "method": method, "pair": i, "dice": 0.8 if good else 0.5 + 0.01 * k,
                             "hd95": 2.0 if good else 5.0, "grad": 0.001 if good else 0.01 + k * 1e-3,
                             "profile": "quick"})
    pd.DataFrame(rows).to_csv(path / f"{name}.csv", index=False)


def _by_key(experiments) -> dict[str, claims.Claim]:
    return {c.key: c for c in claims.registration_claims(experiments)}


def test_registration_claims_follow_the_numbers(tmp_path):
    assert _by_key(tmp_path)["R1"].status == "**pending**"
    _register_csv(tmp_path, "imse_sr")
    found = _by_key(tmp_path)
    assert found["R1"].status == found["R2"].status == found["R3"].status == "**reproduced**"
    assert "0.800" in found["R1"].evidence and "not yet run: T1-T2" in found["R1"].evidence
    _register_csv(tmp_path, "mi")
    found = _by_key(tmp_path)
    assert found["R1"].status == "**not reproduced**"
    assert "best other mi 0.800" in found["R1"].evidence


def test_3d_registration_claims_read_the_3d_pages_only(tmp_path):
    _register_csv(tmp_path, "imse_sr")  # a 2D page alone leaves 3D pending
    assert {c.key: c.status for c in claims.registration_claims(tmp_path, dim=3)}["R1 (3D)"] == "**pending**"
    _register_csv(tmp_path, "mind", "02_register_ctmr_3d")
    found = {c.key: c for c in claims.registration_claims(tmp_path, dim=3)}
    assert found["R1 (3D)"].status == "**not reproduced**" and "02_register_ctmr_3d" in found["R1 (3D)"].evidence
    assert _by_key(tmp_path)["R1"].status == "**reproduced**"


def test_capacity_claim_compares_widths(tmp_path):
    assert claims.capacity_claim(tmp_path).status == "**pending**"
    _register_csv(tmp_path, "mi", "02_register_t1t2")  # width 16: imse_sr 0.5 + 0.01 k
    (tmp_path / "gpu").mkdir()
    for dice, status in ((0.9, "**holds**"), (0.1, "**does not hold**")):
        pd.DataFrame([{"direction": "ct->t1", "method": "imse_sr_w64", "pair": i, "dice": dice, "hd95": 2.0,
                       "grad": 0.01} for i in range(3)]).to_csv(tmp_path / "gpu" / "02_register_t1t2_w64.csv", index=False)
        found = claims.capacity_claim(tmp_path)
        assert found.status == status and f"→ {dice:.3f} (width 64)" in found.evidence


def test_claims_page_is_written_and_escapes_pipes(tmp_path):
    _register_csv(tmp_path, "imse_sr")
    path = claims.write_claims(tmp_path, tmp_path / "claims.md")
    text = path.read_text()
    assert text.startswith("# The paper's claims")
    table_rows = [line for line in text.splitlines() if line.startswith("| R1 | ")]
    assert len(table_rows) == 1 and table_rows[0].count(" | ") == 3  # four cells: no stray pipe
    assert "**pending**" in text  # the notebooks not given here


def _ablation_csv(path, network_dice: list[float], classic_dice: list[float] | None) -> None:
    rows = []
    settings = ["N_2", "N_2_10", "N_2_30", "N_2_50"]
    for kind, values in (("registration_network", network_dice), ("registration", classic_dice)):
        for setting, dice in zip(settings, values or []):
            rows += [{"metric_kind": kind, "method": setting, "pair": i, "dice": dice, "profile": "quick"} for i in range(2)]
    pd.DataFrame(rows).to_csv(path / "06_shuffle_remap_ablation_ctmr.csv", index=False)


def test_ablation_claim_reads_networks_and_classic_rows(tmp_path):
    assert claims.ablation_claim(tmp_path).status == "**pending**"
    _ablation_csv(tmp_path, [0.4, 0.5, 0.6, 0.7], [0.3, 0.4, 0.5, 0.6])
    claim = claims.ablation_claim(tmp_path)
    assert claim.status == "**reproduced**"
    assert "VoxelMorph per evaluator" in claim.evidence and "classic optimisation" in claim.evidence
    _ablation_csv(tmp_path, [0.4, 0.6, 0.5, 0.7], [0.3, 0.4, 0.5, 0.6])  # networks: widest best, not monotone
    assert claims.ablation_claim(tmp_path).status.startswith("**partly**")
    _ablation_csv(tmp_path, [0.7, 0.6, 0.5, 0.4], None)
    assert claims.ablation_claim(tmp_path).status == "**not reproduced**"
