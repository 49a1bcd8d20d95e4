"""Build the course notebooks from notebooks/src/*.py, in two versions from one source.

    python notebooks/build.py            # all of them, in order
    python notebooks/build.py 04         # only those whose name starts with 04
    python notebooks/build.py --text-only  # markdown edits only: copy the text, run nothing

Sources are jupytext "percent" files. An exercise is two cells:

    # %% tags=["exercise"]                 the learner writes this function
    def softmax_backward(dout, cache):
        ### BEGIN SOLUTION
        ...the answer...
        ### END SOLUTION

    # %% tags=["check"]                    minibert grades it
    exercises.check("softmax_backward", softmax_backward)

The build writes:
  notebooks/NN_name.ipynb              the learner's version: every solution region replaced by
                                       `raise NotImplementedError()`, executed (outputs committed;
                                       its check cells print "not solved yet")
  notebooks/solutions/NN_name.ipynb    the instructor's version: the answers in place, not executed

Both carry nbgrader's cell metadata (exercise cells are "solution" cells, check cells
autograded "tests" worth one point), so an instructor can put the solutions version in
nbgrader's source/ folder as it is; under nbgrader, set MINIBERT_GRADING=1 so that a failed
check raises. Notebooks run with notebooks/ as the working folder, in order, so later ones
can reuse the pre-training run of 04. Needs the test extra (jupytext, nbclient, nbformat, ipykernel).
"""

from __future__ import annotations

import copy
import re
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
SOLUTIONS = HERE / "solutions"
SOLUTION_REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*\n?", re.S | re.M)
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


def read_source(src: Path):
    """The percent-format source as a notebook (jupytext), with nbgrader's metadata on the
    exercise and check cells."""
    nb = jupytext.reads(src.read_text(), fmt="py:percent")
    nb.metadata = {"kernelspec": KERNEL}
    for k, cell in enumerate(nb.cells):
        cell.id = f"{src.stem[:2]}-{k:02d}"  # stable ids: a rebuild changes only what changed
        tags = cell.metadata.get("tags", [])
        if "exercise" in tags:
            if "### BEGIN SOLUTION" not in cell.source:
                raise ValueError(f"{src.name}: an exercise cell without ### BEGIN SOLUTION: {cell.source[:60]!r}")
            cell.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "task": False,
                                         "schema_version": 3, "grade_id": f"{src.stem}-exercise-{k}"}
        elif "check" in tags:
            cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "task": False,
                                         "points": 1, "schema_version": 3, "grade_id": f"{src.stem}-check-{k}"}
    return nb


def learner_version(nb):
    """Each solution region becomes nbgrader's placeholder, indented like the region."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if "exercise" in cell.metadata.get("tags", []):
            cell.source = SOLUTION_REGION.sub(lambda m: f"{m.group(1)}# YOUR CODE HERE\n"
                                                        f"{m.group(1)}raise NotImplementedError()\n", cell.source)
    return nb


def write_solutions(src: Path) -> Path:
    SOLUTIONS.mkdir(exist_ok=True)
    out = SOLUTIONS / (src.stem + ".ipynb")
    nbformat.write(read_source(src), out)
    return out


def build(src: Path, workdir: Path = HERE, timeout: int = 900) -> Path:
    write_solutions(src)
    nb = learner_version(read_source(src))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    client.execute()
    out = HERE / (src.stem + ".ipynb")
    nbformat.write(nb, out)
    return out


def refresh_text(src: Path) -> Path:
    """Copy the source's markdown cells into the committed learner notebook, without running
    it: for edits of the text alone. Refuses if any code cell differs (then rebuild)."""
    out = HERE / (src.stem + ".ipynb")
    fresh, built = learner_version(read_source(src)), nbformat.read(out, as_version=4)
    if [(c.cell_type, c.source) for c in fresh.cells if c.cell_type == "code"] != \
            [(c.cell_type, c.source) for c in built.cells if c.cell_type == "code"] or len(fresh.cells) != len(built.cells):
        raise SystemExit(f"{src.name}: code cells changed; run python notebooks/build.py {src.stem[:2]}")
    for new, old in zip(fresh.cells, built.cells):
        if old.cell_type == "markdown":
            old.source = new.source
    nbformat.write(built, out)
    write_solutions(src)
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    text_only = "--text-only" in args  # markdown edits: no re-run
    prefix = next((a for a in args if not a.startswith("--")), "")
    for src in sorted((HERE / "src").glob(f"{prefix}*.py")):
        t0 = time.perf_counter()
        out = refresh_text(src) if text_only else build(src)
        print(f"{out.name}: {time.perf_counter() - t0:.0f} s")
