"""The one table of modalities and study pairs, the shipped-or-trained-here rule, and the checkout finder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imse_study import modalities as M
from imse_study.checkout import ENV_CHECKOUT, find_checkout
from imse_study.study.models import PageModel, obtain, trains_here

PACKAGE = Path(M.__file__).resolve().parent

# --------------------------------------------------------------------------------------------
# The table


def test_pairs_say_what_the_pages_need():
    t1t2, ctmr = M.pair("t1t2"), M.pair("ctmr")
    assert (t1t2.evaluator, t1t2.other, ctmr.evaluator, ctmr.other) == ("t1", "t2", "ct", "t1")
    assert ctmr.directions == (("ct", "t1"), ("t1", "ct")) and t1t2.directions[0] == ("t1", "t2")
    assert t1t2.towards_evaluator == ("t2", "t1") and ctmr.single_modal == ("ct", "ct")
    assert (t1t2.paper_table5, ctmr.paper_table5) == ("t2_to_t1", "mr_to_ct")
    assert [M.paper_row(*d) for d in ctmr.directions] == ["ct_to_mr", "mr_to_ct"]
    assert M.paper_row("t2", "pd") == "t2_to_pd" and M.pair_title("ctmr") == "CT-MR" and M.pair_title("x") == "x"
    assert M.evaluator_modality_of("t2", "ct") == "ct" and M.evaluator_modality_of("t2", "t1") == "t1"


def test_unknown_names_are_one_line_errors_listing_the_known_ones():
    with pytest.raises(ValueError, match=r"^unknown modality pair 't2t1': choose one of t1t2, ctmr$"):
        M.pair("t2t1")
    with pytest.raises(ValueError, match=r"^unknown modality 'flair': choose one of t1, t2, pd, ct$"):
        M.modality("flair")


@given(st.sampled_from([(m.name, alias) for m in M.MODALITY_TABLE.values() for alias in (m.name, *m.aliases)]),
       st.sampled_from([str.lower, str.upper, str.capitalize]))
def test_aliases_in_any_case_name_their_modality(row, case):
    name, alias = row
    assert M.canonical(case(alias)) == name and M.modality(case(alias)).name == name
    assert M.kind_of(case(alias)) == M.MODALITY_TABLE[name].kind


def test_kinds_and_scaling():
    assert M.MR_MODALITIES == ("t1", "t2", "pd") and M.MODALITIES == ("t1", "t2", "pd", "ct")
    assert M.kind_of("CT") == "ct" and M.kind_of("flair") == "mr"  # a manifest's own MR names scale as MR
    assert set(M.SCALING) == set(M.KINDS)


def test_the_table_is_what_the_rest_of_the_package_uses():
    from imse_study.data import phantom
    from imse_study.data.datasets import MODALITY_KINDS
    from imse_study.napari._common import infer_modality
    from imse_study.study import runner, table2, table3, table4, translation

    assert phantom.MODALITIES == M.MODALITIES and MODALITY_KINDS == M.KINDS
    assert infer_modality("sub-1_T2w.nii.gz") == "t2" and infer_modality("subject") is None
    assert {p["modality"] for e in runner.EXPERIMENT_LIST for _, p in e.runs() if "modality" in p} == set(M.PAIRS)
    assert table2.directions("ctmr") == [("ct", "t1"), ("t1", "ct")]
    assert table2.PAPER_ROWS["t1->ct"] == "mr_to_ct" and table4.table4_directions("t1t2") == (("t2", "t1"), ("t1", "t1"))
    assert translation.direction("ctmr").label == "T1 -> CT"
    with pytest.raises(ValueError, match="unknown modality pair"):
        table3.ablation_evaluators("t2t1")


# Modality and pair names written as string literals outside modalities.py. Allowed, each for its reason:
ALLOWED = {
    "data/tissues.py", "data/appearance.py",  # the phantom's MR sequence parameters, a table keyed by weighting
    "losses/similarity.py", "napari/_widgets.py",  # an example name inside an error message
}
LITERAL = re.compile(r"""(?<![\w.])(["'])(t1t2|ctmr|t1|t2|pd|ct|t1w|t2w|pdw|T1w|T2w)\1""")


def test_no_modality_or_pair_literals_outside_the_table():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "modalities.py" or rel in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if LITERAL.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, "take these from imse_study.modalities:\n" + "\n".join(found)


def test_the_literal_check_can_fail():
    assert LITERAL.search('if modality == "ct":') and LITERAL.search("pair = 'ctmr'")
    assert not LITERAL.search('name = "ct_to_mr"') and not LITERAL.search('f"{m}.pt"')


# --------------------------------------------------------------------------------------------
# Shipped or trained here


class _Meta:
    steps, command = 7, "imse-study train-evaluator ..."


def _obtain(tmp_path, calls, **kw):
    checkpoint = tmp_path / "run" / "model.pt"

    def fit():
        calls.append("fit")
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_text("weights")

    options = dict(train=False, profile="quick", dataset="phantom", shipped=lambda: None, trained=checkpoint,
                   fit=fit, load=lambda p: (f"model from {Path(p).name}", _Meta()), command=None)
    return obtain(**{**options, **kw})


def test_obtain_shipped_missing_trained_and_reused(tmp_path):
    calls = []
    missing = _obtain(tmp_path, calls, command="train it")
    assert missing == PageModel(None, None, "not shipped", "train it") and not missing.available
    assert missing.status == "not available (train it with: train it)"
    shipped = _obtain(tmp_path, calls, shipped=lambda: "phantom-t1-2d", what="evaluator")
    assert shipped.source == "shipped evaluator `phantom-t1-2d`" and shipped.model == "model from phantom-t1-2d"
    assert shipped.command == _Meta.command and shipped.steps == 7 and calls == []
    trained = _obtain(tmp_path, calls, profile="smoke", shipped=lambda: pytest.fail("smoke never looks"))
    assert trained.source == "trained here (7 steps, profile smoke)" and calls == ["fit"]
    again = _obtain(tmp_path, calls, train=True, load=None)
    assert again.path == tmp_path / "run" / "model.pt" and again.model is None and calls == ["fit"]  # reused
    assert again.source == "trained here (profile quick)"
    assert trains_here("quick", False) is False and trains_here("paper", True) and trains_here("smoke", False)


def test_obtain_refuses_shipped_models_on_another_data_set(tmp_path):
    with pytest.raises(ValueError, match="shipped registration networks were trained on the phantom"):
        _obtain(tmp_path, [], dataset="brats2019", kinds="registration networks")
    assert _obtain(tmp_path, [], dataset="brats2019", train=True).source.startswith("trained here")


def test_page_evaluator_is_the_shipped_one_in_2d_only():
    from imse_study.study.translation import page_evaluator

    found = page_evaluator("ct")
    assert found.source == "shipped evaluator `phantom-ct-2d`" and found.meta.modality == "ct"
    assert not found.model.training and "train-evaluator" in found.command
    with pytest.raises(ValueError, match="run in 2D"):
        page_evaluator("ct", dim=3)


# --------------------------------------------------------------------------------------------
# The checkout


def test_checkout_from_the_working_folder_the_environment_or_given(tmp_path, monkeypatch):
    repo = find_checkout(start=Path(__file__).parent)
    monkeypatch.delenv(ENV_CHECKOUT, raising=False)
    monkeypatch.chdir(repo / "book")
    assert find_checkout() == repo
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkout of imse-study in .*run from a checkout"):
        find_checkout()
    monkeypatch.setenv(ENV_CHECKOUT, str(repo))
    assert find_checkout() == repo
    with pytest.raises(FileNotFoundError, match="--repo .* is not a checkout"):
        find_checkout(tmp_path)


def test_manifests_come_from_the_checkout_or_the_environment(tmp_path, monkeypatch):
    from imse_study.data.datasets import DatasetError, ENV_MANIFESTS, list_datasets, manifest_dir

    monkeypatch.delenv(ENV_CHECKOUT, raising=False)
    monkeypatch.delenv(ENV_MANIFESTS, raising=False)
    repo = find_checkout(start=Path(__file__).parent)
    monkeypatch.chdir(repo)
    assert manifest_dir() == repo / "data_manifests" and "brats2019" in list_datasets()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=f"run from a checkout.*{ENV_MANIFESTS}"):
        manifest_dir()
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    monkeypatch.setenv(ENV_MANIFESTS, str(tmp_path))
    assert list_datasets() == ["mine"]


def test_claims_cli_takes_its_folders_from_the_checkout_or_arguments(tmp_path, monkeypatch, capsys):
    from imse_study.study import claims

    monkeypatch.delenv(ENV_CHECKOUT, raising=False)
    monkeypatch.chdir(tmp_path)
    assert claims.main([]) == 2 and "run from a checkout" in capsys.readouterr().err
    (tmp_path / "experiments").mkdir()
    assert claims.main(["--experiments", str(tmp_path / "experiments")]) == 0
    assert "**pending**" in (tmp_path / "claims.md").read_text()
