"""The layout's rules (tests/import_graph.py): no import cycles, and the engine never imports the study."""

import import_graph

def test_the_package_has_no_import_cycles():
    assert import_graph.cycles(import_graph.import_graph()) == []


def test_the_engine_never_imports_the_study():
    assert import_graph.engine_to_study(import_graph.import_graph()) == []


def test_the_graph_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "imse_study"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from imse_study import b\n")
    (package / "b.py").write_text("from imse_study.a import f\n")
    graph = import_graph.import_graph(package)
    assert import_graph.cycles(graph) == [["imse_study.a", "imse_study.b"]]


def test_an_engine_module_importing_the_study_is_found(tmp_path):
    package = tmp_path / "imse_study"
    (package / "study").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "study" / "__init__.py").write_text("")
    (package / "study" / "table2.py").write_text("X = 1\n")
    (package / "warp.py").write_text("from imse_study.study.table2 import X\n")
    graph = import_graph.import_graph(package)
    assert import_graph.engine_to_study(graph) == [("imse_study.warp", "imse_study.study.table2")]
