"""The course notebooks: each runs top to bottom without an error, and the outputs committed
with it were produced by the current code (their first cell prints minibert's source
fingerprint, which must match). Rebuild them with `python notebooks/build.py`."""

import json
import re
import time
from pathlib import Path

import pytest

import minibert as mb

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install '.[test]')")


def test_there_are_seven_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


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
