"""The paper's Table 3: how the Shuffle Remap range of N (control points, Eq. 8) shapes IMSE.

Evaluators trained with N drawn from {2}, [2, 10], [2, 30] and [2, 50] (everything else equal: the
same seed, steps and data) are compared by (a) the ranking check (ROC AUC of mean |E| for aligned
vs misaligned pairs of the other modalities, :func:`imse_study.evaluator.quality.ranking_report`)
and (b) registration of the paper's Table 3 direction with IMSE as the loss, two ways: with one
VoxelMorph per evaluator, as the paper (:func:`ablation_network_table`; the quick profile ships four
equal-budget networks ``vm-t1-ct-imse_sr_n2_<N>-2d``), and with classic optimisation (Eq. 1, our
default multi-resolution mode, :func:`ablation_table`) on the same test pairs, which isolates the
evaluator from network training noise.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imse_study.data.datasets import is_phantom
from imse_study.registration.evaluate import data_flags, evaluate, make_test_pairs, network_registrar, work_folder
from imse_study.modalities import pair
from imse_study.registration.methods import classic_registrar
from imse_study.study.models import evaluator_command, obtain, obtain_evaluator, trains_here

N_RANGES = {"N_2": (2, 2), "N_2_10": (2, 10), "N_2_30": (2, 30), "N_2_50": (2, 50)}
# A pair's Table 3 row: its evaluator's modality, the direction other -> evaluator and the paper's
# row of it (:class:`imse_study.modalities.Pair`). ``modality_pair`` names the pair everywhere
# here (a notebook's ``modality`` parameter), ``evaluator_modality`` the evaluator's modality.


def ablation_name(evaluator_modality: str, dim: int, n_range: tuple[int, int]) -> str:
    """The shipped evaluator of one ablation setting, e.g. ``phantom-ct-2d-n2-30``."""
    return f"phantom-{evaluator_modality}-{dim}d-n{n_range[0]}-{n_range[1]}"


def ablation_evaluators(modality_pair: str, dim: int = 2, profile: str = "quick", train: bool = False,
                        work_dir: str | Path | None = None, seed: int = 0, dataset: str = "phantom",
                        root: str | None = None) -> pd.DataFrame:
    """One evaluator per N range: shipped (quick) or trained here on ``dataset`` (smoke, or ``train=True``).

    Columns: ``setting, n_min, n_max, evaluator`` (a shipped name or a checkpoint path; None when
    missing), ``source`` and ``train_command``. A manifest set refuses the shipped (phantom) ones.
    """
    evaluator_modality = pair(modality_pair).evaluator
    work = work_folder(work_dir, "imse-table3-", dataset) if trains_here(profile, train) else None
    rows = []
    for setting, n_range in N_RANGES.items():
        name = ablation_name(evaluator_modality, dim, n_range)
        command = evaluator_command(evaluator_modality, dim, profile, f"runs/{name}",
                                    f" --epochs 3 --n-range {n_range[0]} {n_range[1]}{data_flags(dataset, root)}")
        found = obtain_evaluator(evaluator_modality, dim, profile, train, seed, dataset, root,
                                 out=work / name if work else None, name=name, load=False, command=command, what="",
                                 n_range=n_range)
        rows.append({"setting": setting, "n_min": n_range[0], "n_max": n_range[1],
                     "evaluator": None if found.path is None else str(found.path), "source": found.source,
                     "train_command": command})
    return pd.DataFrame(rows)


def ablation_table(modality_pair: str, evaluators: pd.DataFrame, dim: int = 2, profile: str = "quick",
                   n_pairs: int | None = 8, mode: str = "multires", iterations: int = 200, dataset: str = "phantom",
                   root: str | None = None, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-pair registration results, ranking AUC) for every available ablation evaluator, on the
    test pairs of ``dataset`` (a manifest set ranks against the direction's other modality only).
    ``progress``: a bar over the registrations (:mod:`imse_study.progress`)."""
    from imse_study.evaluator.pretrained import load_any
    from imse_study.evaluator.quality import ranking_report

    study_pair = pair(modality_pair)
    evaluator_modality, (moving, target) = study_pair.evaluator, study_pair.towards_evaluator
    pairs = make_test_pairs(moving, target, "test", dim, profile, limit=n_pairs, dataset=dataset, root=root)
    others = None if is_phantom(dataset) else [m for m in (moving, target) if m != evaluator_modality]
    registrars, rankings = {}, []
    for row in evaluators[evaluators["evaluator"].notna()].itertuples():
        # once: the registration loss and the ranking share it; it must know this data set
        model, meta = load_any(row.evaluator, dataset=dataset)
        registrars[row.setting] = classic_registrar(
            "imse", pairs, evaluator=model, similarity_options={"evaluator_modality": meta.modality},
            mode=mode, iterations=iterations, progress=False)
        rankings.append(ranking_report(model, evaluator_modality, dim, profile, others=others, dataset=dataset,
                                       root=root).assign(setting=row.setting))
    table = evaluate(registrars, pairs, include_initial=True, progress=progress)
    table.insert(0, "modality_pair", modality_pair)
    ranking = pd.concat(rankings, ignore_index=True) if rankings else pd.DataFrame(
        columns=["reference", "other", "pairs", "auc", "setting"])
    return table, ranking


def network_method(n_range: tuple[int, int]) -> str:
    """The zoo's method name of the VoxelMorph trained with one ablation evaluator (``imse_sr_n2_30``)."""
    return f"imse_sr_n{n_range[0]}_{n_range[1]}"


NETWORK_EPOCHS = 4  # the shipped ablation networks: 400 steps each (quick), the same for every N


def ablation_networks(modality_pair: str, evaluators: pd.DataFrame, dim: int = 2, profile: str = "quick",
                      train: bool = False, work_dir: str | Path | None = None, seed: int = 0, dataset: str = "phantom",
                      root: str | None = None) -> pd.DataFrame:
    """One VoxelMorph (Eq. 6-7, IMSE loss) per ablation evaluator, for the Table 3 direction.

    Shipped networks are used in the quick profile; the smoke profile (or ``train=True``) trains them
    here on ``dataset`` with the evaluators of ``evaluators``. Columns: ``setting, network`` (a
    checkpoint path or None), ``source``, ``train_command``. A manifest set refuses the shipped ones.
    """
    from imse_study.registration.learned import train_registration
    from imse_study.study.zoo import network_path

    found_pair = pair(modality_pair)
    moving, target = found_pair.towards_evaluator
    work = work_folder(work_dir, "imse-table3-", dataset)
    rows = []
    for row in evaluators.itertuples():
        method = network_method((row.n_min, row.n_max))
        evaluator = ablation_name(found_pair.evaluator, dim, (row.n_min, row.n_max))
        if not is_phantom(dataset):  # the shipped ablation evaluators know the phantom only
            evaluator = f"runs/{evaluator}/evaluator.pt"
        command = (f"imse-study train-registration --similarity imse --moving {moving} --target {target} --dim {dim} "
                   f"--profile {profile}{data_flags(dataset, root)} --evaluator {evaluator} "
                   f"--epochs {NETWORK_EPOCHS} --out runs/vm-{moving}-{target}-{method}")
        entry = {"setting": row.setting, "network": None, "source": "not shipped", "train_command": command}
        out = work / f"vm-{moving}-{target}-{method}"
        if not trains_here(profile, train) or row.evaluator is not None:  # trained here: with its evaluator only
            found = obtain(
                train=train, profile=profile, dataset=dataset, kinds="registration networks", command=command,
                shipped=lambda m=method: network_path(m, moving, target, dim, profile), trained=out / "network.pt",
                fit=lambda o=out, e=row.evaluator: train_registration(
                    o, "imse", moving, target, dim=dim, profile=profile, similarity_options={"evaluator": e},
                    seed=seed, epochs=None if profile == "smoke" else NETWORK_EPOCHS, progress=False,
                    dataset=dataset, root=root))
            entry.update(network=None if found.path is None else str(found.path), source=found.source)
        rows.append(entry)
    return pd.DataFrame(rows)


def ablation_network_table(modality_pair: str, networks: pd.DataFrame, dim: int = 2, profile: str = "quick",
                           n_pairs: int | None = None, dataset: str = "phantom", root: str | None = None,
                           progress: bool = False) -> pd.DataFrame:
    """Per-pair results of every available ablation network on the Table 3 direction's test pairs of
    ``dataset``; ``progress``: a bar over the registrations."""
    from imse_study.registration.learned import load_network

    moving, target = pair(modality_pair).towards_evaluator
    pairs = make_test_pairs(moving, target, "test", dim, profile, limit=n_pairs, dataset=dataset, root=root)
    registrars = {row.setting: network_registrar(load_network(row.network)[0])
                  for row in networks.itertuples() if row.network is not None}
    table = evaluate(registrars, pairs, include_initial=True, progress=progress)
    table.insert(0, "modality_pair", modality_pair)
    return table


def table3_comparison(table: pd.DataFrame, ranking: pd.DataFrame, paper: dict, modality_pair: str,
                      network_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Ours (means over pairs; ranking AUC) beside the paper's Table 3 row, one line per N setting.

    ``network_table`` (from :func:`ablation_network_table`) adds the VoxelMorph columns, the paper's
    own protocol; ``table`` (from :func:`ablation_table`) gives the classic-optimisation columns.
    """
    paper_row = paper.get("table3_shuffle_remap_N", {}).get(pair(modality_pair).paper_table5, {})
    sources = {"VM": network_table, "classic": table}
    means = {k: t.groupby("method")[["dice", "hd95", "grad"]].mean() for k, t in sources.items()
             if t is not None and len(t)}
    auc = ranking.groupby("setting")["auc"].mean() if len(ranking) else pd.Series(dtype=float)
    rows = []
    for setting in N_RANGES:
        if not any(setting in m.index for m in means.values()):
            continue
        theirs = paper_row.get(setting, {})
        row: dict = {"N": setting.removeprefix("N_").replace("_", "–")}
        for metric, label, unit in (("dice", "Dice", ""), ("hd95", "HD95", " mm"), ("grad", "grad", "")):
            for kind, m in means.items():
                row[f"{label}{unit} ({kind})"] = m.loc[setting, metric] if setting in m.index else None
            row[f"{label} (paper)"] = theirs.get(metric)
        row["ranking AUC (ours)"] = auc.get(setting)
        rows.append(row)
    return pd.DataFrame(rows)


def paired_tests(table: pd.DataFrame, reference: str = "N_2_50") -> pd.DataFrame:
    """Each N setting against ``reference`` on the same pairs: mean Dice difference and the p-value
    of a two-sided Wilcoxon signed-rank test (scipy), so that a small gap is not read as a trend."""
    from scipy.stats import wilcoxon

    dice = table[table["method"] != "initial"].pivot_table(index="pair", columns="method", values="dice")
    rows = []
    if reference not in dice:
        return pd.DataFrame(columns=["setting", "versus", "pairs", "dice_difference", "p_value"])
    for setting in N_RANGES:
        if setting == reference or setting not in dice:
            continue
        both = dice[[reference, setting]].dropna()
        diff = both[reference] - both[setting]
        p = float(wilcoxon(both[reference], both[setting]).pvalue) if len(both) >= 5 and diff.abs().sum() > 0 else float("nan")
        rows.append({"setting": setting, "versus": reference, "pairs": len(both),
                     "dice_difference": float(diff.mean()), "p_value": p})
    return pd.DataFrame(rows)


def _trend(comparison: pd.DataFrame, column: str) -> str | None:
    values = comparison[["N", column]].dropna()
    if len(values) < 2:
        return None
    first, last, best = values.iloc[0], values.iloc[-1], values.loc[values[column].idxmax()]
    shape = ("rises monotonically" if values[column].diff().dropna().gt(0).all() else
             "rises" if last[column] > first[column] else "does not rise")
    return (f"Dice {shape} from N = {first['N']} ({first[column]:.3f}) to N = {last['N']} ({last[column]:.3f}); "
            f"the best setting is N = {best['N']} ({best[column]:.3f})")


def _tests_text(tests: pd.DataFrame | None) -> str:
    if tests is None or tests.empty:
        return ""
    parts = [f"{r.setting.removeprefix('N_').replace('_', '–')} {r.dice_difference:+.3f} (p = {r.p_value:.2g})"
             for r in tests.itertuples()]
    return f" N = 2–50 minus each other setting, paired over {int(tests['pairs'].iloc[0])} pairs: " + ", ".join(parts) + "."


def table3_reading(comparison: pd.DataFrame, evaluators: pd.DataFrame, profile: str, mode: str,
                   networks: pd.DataFrame | None = None, tests: dict[str, pd.DataFrame] | None = None) -> str:
    """A short Markdown reading of the ablation, from the numbers."""
    lines = []
    if profile == "smoke":
        lines.append("*Smoke profile: tiny evaluators trained for a few steps; the numbers only show that the page works.*\n")
    missing = evaluators[evaluators["evaluator"].isna()]
    if not missing.empty:
        lines.append(f"Not available (no shipped evaluator): {', '.join(missing['setting'])}; the table above lists "
                     "the commands that train them.\n")
    if networks is not None and networks["network"].isna().any():
        lines.append(f"No network for: {', '.join(networks.loc[networks['network'].isna(), 'setting'])} "
                     "(the networks table gives the training commands).\n")
    if "Dice (VM)" in comparison and (text := _trend(comparison, "Dice (VM)")):
        lines.append(f"With a VoxelMorph trained on each evaluator (the paper's protocol, equal budgets), {text}."
                     + _tests_text((tests or {}).get("VM")))
    if "Dice (classic)" in comparison and (text := _trend(comparison, "Dice (classic)")):
        lines.append(f"With IMSE as the loss of classic {mode} optimisation, {text}."
                     + _tests_text((tests or {}).get("classic")))
    if len(comparison) >= 2:
        lines.append("The paper reports Dice rising monotonically with the range of N (its Table 3).")
        if comparison["ranking AUC (ours)"].notna().any():
            aucs = ", ".join(f"N = {r['N']}: {r['ranking AUC (ours)']:.3f}" for _, r in comparison.iterrows())
            lines.append(f"\nRanking AUC (aligned vs misaligned pairs of the other modalities): {aucs}.")
    return "\n".join(lines)
