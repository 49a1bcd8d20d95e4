"""Build the course notebooks from notebooks/src/*.py and run them, saving their outputs.

    python notebooks/build.py            # all of them, in order
    python notebooks/build.py 04         # only those whose name starts with 04

Sources use the "percent" format: `# %%` starts a code cell, `# %% [markdown]` a markdown
cell whose lines are comments. Notebooks run with notebooks/ as the working folder, in
order, so later ones can reuse the pre-training run of 04 (they train it themselves when
it is missing). Needs the test extra (nbclient, nbformat, ipykernel).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def parse(source: str):
    """percent-format text -> list of nbformat cells."""
    cells, kind, lines = [], None, []

    def flush():
        if kind is None:
            return
        text = "\n".join(lines).strip("\n")
        if kind == "markdown":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in text.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(text))
        elif text.strip():
            cells.append(nbformat.v4.new_code_cell(text))

    for line in source.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def build(src: Path, workdir: Path = HERE, timeout: int = 900) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = parse(src.read_text())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    client.execute()
    out = HERE / (src.stem + ".ipynb")
    nbformat.write(nb, out)
    return out


if __name__ == "__main__":
    prefix = sys.argv[1] if len(sys.argv) > 1 else ""
    for src in sorted((HERE / "src").glob(f"{prefix}*.py")):
        t0 = time.perf_counter()
        out = build(src)
        print(f"{out.name}: {time.perf_counter() - t0:.0f} s")
