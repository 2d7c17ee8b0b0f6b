"""The benchmark runner (``benchmarks/run.py``) in its smoke mode: the JSON's structure and the
agreement of Shuffle Remap with the paper's loop. Correctness only: no timing is asserted here."""

from __future__ import annotations

import json
import math

import pytest
import torch
from benchscripts import load_benchmark

@pytest.fixture(scope="module")
def smoke_result(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runner = load_benchmark("run")
        out = tmp_path_factory.mktemp("bench") / "smoke.json"
        runner.main(["--smoke", "--only", "shuffle_remap", "--out", str(out), "--no-plot"])
    finally:
        torch.set_num_threads(threads)
    return out, json.loads(out.read_text())


def test_json_structure(smoke_result):
    _, res = smoke_result
    assert res["schema"] == 1 and res["mode"] == "smoke"
    machine = res["machine"]
    for key in ("date", "cpu_model", "cores", "torch_threads", "load_average_start", "load_average_end",
                "versions", "python", "cuda_available"):
        assert key in machine, key
    assert machine["torch_threads"] == 1
    assert machine["versions"]["torch"]
    assert list(res["benchmarks"]) == ["shuffle_remap"]
    bench = res["benchmarks"]["shuffle_remap"]
    assert "error" not in bench
    assert {tuple(c["n_range"]) for c in bench["cases"]} == {(2, 50), (40, 50)}
    for case in bench["cases"]:
        for key in ("ours_ms_wall", "reference_ms_wall", "ratio_wall", "ours_ms_cpu", "reference_ms_cpu", "ratio_cpu"):
            assert math.isfinite(case[key]) and case[key] > 0, key
    targeted = [r for r in res["ratios"] if r["target"] is not None]
    assert targeted and all(r["target"] == 20.0 and "[40,50]" in r["name"] for r in targeted)
    assert all(isinstance(r["met"], bool) for r in targeted)


def test_loop_reference_and_ours_agree(smoke_result):
    _, res = smoke_result
    for case in res["benchmarks"]["shuffle_remap"]["cases"]:
        # Eq. 8 with a precomputed slope vs Algorithm 1's division: a few float32 ulps
        assert case["max_abs_diff_vs_reference"] <= 1e-6, case["case"]


def test_plot_writes_tables_and_images(smoke_result, tmp_path):
    path, res = smoke_result
    plot = load_benchmark("plot")
    tables, images = plot.main([str(path), "--images", str(tmp_path / "img"), "--tables", str(tmp_path / "t.md")])
    text = tables.read_text()
    for section in ("machine", "targets", "shuffle_remap"):
        assert f"<!-- section: {section} -->" in text and f"<!-- end: {section} -->" in text
    first = res["benchmarks"]["shuffle_remap"]["cases"][0]
    assert f"{first['ratio_wall']:.1f}" in text  # the table's numbers are the JSON's
    assert [p.name for p in images] == ["shuffle_remap.png"] and images[0].stat().st_size > 0
