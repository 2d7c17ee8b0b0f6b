"""Plots and tables of ``book/performance.md`` from the JSON that ``benchmarks/run.py`` writes.

    python benchmarks/plot.py [benchmarks/results/latest.json] [--images book/images/performance]
                              [--tables book/performance_tables.md]

Every number in the book's performance page comes from here: the page includes sections of the
tables file by their markers (``<!-- section: NAME -->`` ... ``<!-- end: NAME -->``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"
DEFAULT_IMAGES = ROOT / "book" / "images" / "performance"
DEFAULT_TABLES = ROOT / "book" / "performance_tables.md"


def _f(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, (int, float)):
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{digits}f}"
    return str(x)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _status(r: dict) -> str:
    return "–" if r.get("met") is None else ("**met**" if r["met"] else "**missed**")


# --------------------------------------------------------------------------------------------
# Tables


def tables(res: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    m = res["machine"]
    v = m.get("versions", {})
    out["machine"] = _table(["fact", "value"], [
        ["date (UTC)", m["date"]], ["mode", res["mode"]], ["command", f"`{res.get('command', '')}`"],
        ["CPU", m["cpu_model"]], ["cores (available)", f"{m['cores']} ({m.get('cores_available')})"],
        ["torch threads", m["torch_threads"]], ["memory (GiB)", m.get("memory_gib")],
        ["load average at start (1, 5, 15 min)", ", ".join(_f(x) for x in m["load_average_start"] or [])],
        ["load average at end", ", ".join(_f(x) for x in m.get("load_average_end") or [])],
        ["GPU", m.get("gpu") or "none"], ["git commit", f"`{(m.get('git_commit') or '')[:12]}`"],
        ["python", m["python"]],
        ["versions", ", ".join(f"{k} {val}" for k, val in v.items() if val)],
        ["whole run (s)", _f(res.get("seconds"), 0)],
    ])
    out["targets"] = _table(["ratio", "measured", "target", "status", "note"], [
        [r["name"], _f(r["value"]), r.get("target_text") or "–", _status(r), r.get("note", "")]
        for r in res["ratios"] if r.get("target") is not None])
    b = res["benchmarks"]

    sr = b.get("shuffle_remap", {})
    if "cases" in sr:
        out["shuffle_remap"] = _table(
            ["case", "N", "ours (ms)", "loop (ms)", "ratio (wall)", "ratio (CPU)", "max abs diff", "repeats"],
            [[c["case"], f"[{c['n_range'][0]}, {c['n_range'][1]}]", _f(c["ours_ms_wall"]),
              _f(c["reference_ms_wall"]), _f(c["ratio_wall"], 1), _f(c["ratio_cpu"], 1),
              f"{c['max_abs_diff_vs_reference']:.1e}", c["repeats"]] for c in sr["cases"]])
    pl = b.get("pipeline", {})
    if "cases" in pl:
        out["pipeline"] = _table(
            ["profile", "size", "width / blocks", "augmentation (s per batch)", "samples/s", "train step (s)",
             "step batch", "samples/s trained", "ratio (wall)", "ratio (CPU)"],
            [[c["case"], f"{c['size'][0]}x{c['size'][1]}", f"{c['width']} / {c['n_blocks']}",
              f"{_f(c['pipeline_s_per_batch']['wall_s'], 3)} (batch {c['pipeline_batch']})", _f(c["samples_per_s"], 1),
              _f(c["train_s_per_step"]["wall_s"], 3), c["train_step_batch"],
              _f(c["steps_per_s"] * c["train_step_batch"], 2), _f(c["ratio"], 1), _f(c["ratio_cpu"], 1)]
             for c in pl["cases"]])
    sc = b.get("scaling", {})
    if "series" in sc:
        rows = []
        for s in sc["series"]:
            if "rows" not in s:
                rows.append([f"{s['dim']}D", s["width"], "error", "", "", ""])
                continue
            for r in s["rows"]:
                if r["skipped"]:
                    rows.append([f"{s['dim']}D", s["width"], r["size"], "skipped", "skipped", r["reason"]])
                else:
                    rows.append([f"{s['dim']}D", s["width"], r["size"], _f(r["wall_s"] * 1e3, 1),
                                 _f(r["peak_mib"], 0), ""])
        out["scaling"] = _table(["dim", "width", "size per side", "fwd+bwd (ms)", "peak memory (MiB)", "note"], rows)
        out["scaling_exponents"] = _table(
            ["dim", "width", "blocks", "sizes timed", "time exponent", "memory exponent"],
            [[f"{s['dim']}D", s["width"], s["n_blocks"],
              ", ".join(str(r["size"]) for r in s.get("rows", []) if not r["skipped"]),
              _f(s.get("time_exponent")), _f(s.get("memory_exponent"))] for s in sc["series"]])
    rg = b.get("registration", {})
    if "summary" in rg:
        out["registration"] = _table(
            ["direction", "method", "pairs", "Dice (mean ± sd)", "s/pair (median)", "s/pair (mean)", "CPU s/pair"],
            [[r["direction"], r["method"], r["pairs"], f"{_f(r['dice_mean'], 3)} ± {_f(r['dice_std'], 3)}",
              _f(r["seconds_median"], 3), _f(r["seconds_mean"], 3), _f(r["cpu_seconds_median"], 3)]
             for r in rg["summary"]])
        out["registration_ratios"] = _table(["ratio", "measured", "target", "status", "note"], [
            [r["name"], _f(r["value"]), r.get("target_text") or "–", _status(r), r.get("note", "")]
            for r in rg["ratios"]])
    op = b.get("optimisations", {})
    if "checks" in op:
        rows = []
        for c in op["checks"]:
            if "times" in c:
                t = ", ".join(f"{k}: {_f(val['wall_s'] * 1e3, 1)} ms" for k, val in c["times"].items())
                extra = f"compile {_f(c['compile_s'], 0)} s" if "compile_s" in c else ""
                rows.append([c["check"], t, extra])
            else:
                rows.append([c["check"], c.get("skipped") or "error: " + c.get("error", "").strip().splitlines()[-1]
                             if c.get("error") or c.get("skipped") else "", ""])
        out["optimisations"] = _table(["check", "median wall time", "other"], rows)
        out["optimisation_ratios"] = _table(["ratio (before / after)", "measured", "note"], [
            [r["name"], _f(r["value"]), r.get("note", "")] for r in op["ratios"]])
    gp = b.get("gpu", {})
    out["gpu"] = (f"No GPU in this run ({gp['skipped']})." if "skipped" in gp else
                  f"GPU: {gp.get('gpu')}\n\n" + "\n".join(f"- {c['case']}: `{json.dumps(c, default=str)[:300]}`"
                                                         for c in gp.get("cases", [])) if gp else "Not run.")
    errors = [f"- `{n}`: {x['error'].strip().splitlines()[-1]}" for n, x in b.items() if "error" in x]
    out["errors"] = "\n".join(errors) if errors else "No benchmark failed in this run."
    return out


def write_tables(res: dict[str, Any], path: Path) -> Path:
    parts = ["<!-- Generated by benchmarks/plot.py from benchmarks/results/latest.json: do not edit by hand. -->", ""]
    for name, text in tables(res).items():
        parts += [f"<!-- section: {name} -->", "", text, "", f"<!-- end: {name} -->", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path


# --------------------------------------------------------------------------------------------
# Plots


def plots(res: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    b = res["benchmarks"]

    def save(fig, name):
        p = folder / name
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)

    sr = b.get("shuffle_remap", {})
    if "cases" in sr:
        import pandas as pd

        df = pd.DataFrame([{"case": c["case"], "N": f"[{c['n_range'][0]}, {c['n_range'][1]}]", "clock": k,
                            "ratio": c[f"ratio_{k}"]} for c in sr["cases"] for k in ("wall", "cpu")])
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, clock in zip(axes, ("wall", "cpu")):
            sns.barplot(df[df.clock == clock], x="case", y="ratio", hue="N", ax=ax)
            ax.axhline(res["targets"]["shuffle_remap"], color="k", ls="--", lw=1, label="target at N in [40, 50]")
            ax.set_yscale("log")
            ax.set_title(f"Shuffle Remap: loop time / ours ({clock} time)")
            ax.set_xlabel("")
            ax.tick_params(axis="x", rotation=15)
            ax.legend(fontsize=8)
        axes[0].set_ylabel("speed-up (x)")
        save(fig, "shuffle_remap.png")

    pl = b.get("pipeline", {})
    if "cases" in pl:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        names = [f"{c['case']}\n{c['size'][0]}px, width {c['width']}" for c in pl["cases"]]
        ax.bar(names, [c["ratio"] for c in pl["cases"]], color=sns.color_palette()[0], label="wall")
        ax.scatter(names, [c["ratio_cpu"] for c in pl["cases"]], color="k", zorder=3, label="CPU time")
        ax.axhline(res["targets"]["pipeline"], color="r", ls="--", lw=1, label="target")
        ax.set_yscale("log")
        ax.set_ylabel("augmented samples/s ÷ trained samples/s")
        ax.set_title("Is the augmentation the bottleneck? (> 1: no)")
        ax.legend(fontsize=8)
        save(fig, "pipeline.png")

    sc = b.get("scaling", {})
    if "series" in sc:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        pal = sns.color_palette()
        for i, s in enumerate(x for x in sc["series"] if "rows" in x):
            done = [r for r in s["rows"] if not r["skipped"]]
            if not done:
                continue
            ls = "-" if s["dim"] == 2 else "--"
            exp = s.get("time_exponent")
            label = f"{s['dim']}D width {s['width']}" + (f" (slope {exp:.2f})" if exp is not None else "")
            axes[0].plot([r["pixels"] for r in done], [r["wall_s"] for r in done], ls, marker="o",
                         color=pal[i % len(pal)], label=label)
            axes[1].plot([r["pixels"] for r in done], [max(r["peak_mib"], 0.1) for r in done], ls, marker="o",
                         color=pal[i % len(pal)], label=f"{s['dim']}D width {s['width']}")
        for ax, ylabel, title in ((axes[0], "forward+backward (s)", "Evaluator time vs pixels"),
                                  (axes[1], "peak memory of the call (MiB)", "Evaluator memory vs pixels")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("pixels / voxels")
            ax.set_ylabel(ylabel)
            ax.set_title(title)
            ax.legend(fontsize=7)
        save(fig, "scaling.png")

    rg = b.get("registration", {})
    if "summary" in rg:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        directions = list(dict.fromkeys(r["direction"] for r in rg["summary"]))
        methods = list(dict.fromkeys(r["method"] for r in rg["summary"] if r["method"] != "initial"))
        pal = dict(zip(methods, sns.color_palette(n_colors=len(methods))))
        for ax, d in zip(axes, directions):
            rows = [r for r in rg["summary"] if r["direction"] == d]
            init = next((r for r in rows if r["method"] == "initial"), None)
            if init is not None:
                ax.axhline(init["dice_mean"], color="grey", ls=":", label="before registration")
            for r in rows:
                if r["method"] == "initial":
                    continue
                ax.errorbar(r["seconds_median"], r["dice_mean"], yerr=r["dice_std"], fmt="o", ms=8,
                            color=pal[r["method"]], label=r["method"])
            ax.set_xscale("log")
            ax.set_xlabel("seconds per pair (median, log)")
            ax.set_title(f"{d}: time vs Dice")
            ax.legend(fontsize=7)
        axes[0].set_ylabel("Dice (mean ± sd over pairs)")
        save(fig, "registration.png")

    op = b.get("optimisations", {})
    if op.get("ratios"):
        fig, ax = plt.subplots(figsize=(8, 0.5 + 0.55 * len(op["ratios"])))
        names = [r["name"] for r in op["ratios"]]
        vals = [r["value"] for r in op["ratios"]]
        ax.barh(names, vals, color=[sns.color_palette()[2] if v > 1 else sns.color_palette()[3] for v in vals])
        ax.axvline(1, color="k", lw=1)
        ax.set_xlabel("before time / after time (> 1: the change is faster)")
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=8)
        save(fig, "optimisations.png")
    return written


def main(argv: list[str] | None = None) -> tuple[Path, list[Path]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", nargs="?", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--tables", type=Path, default=DEFAULT_TABLES)
    args = parser.parse_args(argv)
    res = json.loads(args.json.read_text())
    table_path = write_tables(res, args.tables)
    images = plots(res, args.images)
    print(f"wrote {table_path} and {len(images)} plots in {args.images}")
    return table_path, images


if __name__ == "__main__":
    main()
