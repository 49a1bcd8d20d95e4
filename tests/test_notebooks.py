"""The course notebooks: each runs top to bottom without an error, and the outputs committed
with it were produced by the current code (their first cell prints minibert's source
fingerprint, which must match). Rebuild them with `python notebooks/build.py`.

Two versions come from each source in notebooks/src: the learner's (committed with outputs;
its exercises are placeholders and their checks print "not solved yet") and the
instructor's in notebooks/solutions (the answers in place; each must pass its check)."""

import importlib.util
import json
import re
import time
from pathlib import Path

import pytest

import minibert as mb

HERE = Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
SOURCES = sorted((HERE / "src").glob("[0-9][0-9]_*.py"))
nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install '.[test]')")
jupytext = pytest.importorskip("jupytext", reason="jupytext is not installed (pip install '.[test]')")


def load_build():
    spec = importlib.util.spec_from_file_location("notebook_build", HERE / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_build()


def tagged(nb, tag):
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


def text_of(cell) -> str:
    return "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                   for o in cell.get("outputs", []))


def test_there_are_nine_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]
    assert [p.stem for p in SOURCES] == [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_both_versions_come_from_the_source(src):
    """The committed learner's and instructor's notebooks hold the source's cells: the learner's
    with every solution replaced by the placeholder, the instructor's as written."""
    source = build.read_source(src)
    learner = nbformat.read(str(HERE / f"{src.stem}.ipynb"), as_version=4)
    solutions = nbformat.read(str(HERE / "solutions" / f"{src.stem}.ipynb"), as_version=4)
    assert [c.source for c in learner.cells] == [c.source for c in build.learner_version(source).cells], \
        f"rebuild: python notebooks/build.py {src.stem[:2]}"
    assert [c.source for c in solutions.cells] == [c.source for c in source.cells]
    assert not any("BEGIN SOLUTION" in c.source for c in learner.cells)
    for cell in tagged(learner, "exercise"):
        assert "raise NotImplementedError()" in cell.source and cell.metadata["nbgrader"]["solution"]
    for cell in tagged(learner, "check"):
        assert cell.metadata["nbgrader"]["grade"] and "exercises.check(" in cell.source
    assert len(tagged(learner, "exercise")) == len(tagged(learner, "check"))


def test_every_exercise_of_the_grader_is_in_a_notebook():
    from minibert import exercises

    checked = {re.search(r'exercises\.check\("(\w+)"', c.source).group(1)
               for src in SOURCES for c in tagged(build.read_source(src), "check")}
    assert checked == set(exercises.names())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_checks_say_not_solved_yet(path):
    nb = nbformat.read(str(path), as_version=4)
    for cell in tagged(nb, "check"):
        assert ": not solved yet: " in text_of(cell), text_of(cell)


SOLVED = sorted((HERE / "solutions").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", [p for p in SOLVED if tagged(nbformat.read(str(p), as_version=4), "exercise")],
                         ids=lambda p: p.stem)
def test_every_solution_passes_its_check(path, tmp_path):
    """The instructor's answers, run with the notebook's first cell (its imports), pass."""
    nb = nbformat.read(str(path), as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    nb.cells = [first] + [c for c in nb.cells if {"exercise", "check"} & set(c.metadata.get("tags", []))]
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in tagged(nb, "check"):
        assert ": correct (" in text_of(cell), text_of(cell)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_the_current_code(path):
    nb = json.loads(path.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    printed = "".join("".join(o.get("text", "")) for o in first.get("outputs", []))
    found = re.search(r"source fingerprint ([0-9a-f]{12})", printed)
    assert found, f"{path.name}: the first cell's output has no source fingerprint"
    assert found.group(1) == mb.source_fingerprint(), (
        f"{path.name} was executed with other code; rebuild: python notebooks/build.py {path.name[:2]}")
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("outputs") is not None and c.get("execution_count") for c in code_cells), "cells not run"
    if not path.name.startswith(("01", "07")):  # tokenization and GPU draw nothing
        assert any("image/png" in o.get("data", {}) for c in code_cells for o in c["outputs"]), "no plot in the outputs"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for all notebooks, so 06 reuses the pre-training run of 04, as in the course."""
    return tmp_path_factory.mktemp("notebooks")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, workdir):
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    print(f"{path.name}: {time.perf_counter() - start:.0f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert not errors
    for cell in tagged(nb, "check"):  # an unsolved exercise says so, and the notebook goes on
        assert ": not solved yet: " in text_of(cell), text_of(cell)
