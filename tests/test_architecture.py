"""The shape of the package: no import cycles, no private names across modules, the training
loop imported only by training code and the command line, and docs that quote code that exists."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from minibert.selfcheck import model_check_case

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "minibert"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list:
    """(imported module, imported names) for every import in the file, function-level ones included."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            if target.startswith("minibert"):
                # `from . import backend` imports the module minibert.backend
                for name in names:
                    sub = f"{target}.{name}"
                    if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).is_file() or \
                            (PACKAGE.parent / sub.replace(".", "/")).is_dir():
                        found.append((sub, []))
                found.append((target, names))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("minibert")]
    return found


def import_graph() -> dict:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        graph[module_name(path)] = {t for t, _ in imports_of(path) if t != module_name(path)}
    return graph


def find_cycle(graph: dict):
    """A list of modules forming an import cycle, or None. A package's __init__ is left out as a
    target: `from .data import x` inside minibert.data's own modules is how packages re-export."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph or (PACKAGE.parent / nxt.replace(".", "/")).is_dir() and node.startswith(nxt + "."):
                continue
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_private_names_across_modules():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for target, names in imports_of(path):
            offenders += [f"{module_name(path)} imports {target}.{n}" for n in names if n.startswith("_")]
    assert not offenders, offenders


def test_only_training_code_and_the_cli_import_the_training_loop():
    loop_modules = {"minibert.train", "minibert.finetune", "minibert.loop"}
    allowed = loop_modules | {"minibert.cli", "minibert.tinyglue"}  # tinyglue: the glue command's fine-tuning runs
    graph = import_graph()
    offenders = [f"{m} imports {t}" for m, targets in graph.items() for t in targets
                 if t in loop_modules and m not in allowed]
    assert not offenders, offenders


# ------------------------------------------------------------------ docs quote code that exists
DOCS = ["docs/backprop.md", "docs/architecture.md", "docs/gpu.md"]
FILE = re.compile(r"`((?:minibert|tests|benchmarks)/[\w/]+\.py)`")
CODE = re.compile(r"`([^`\n]+)`")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# the docs' math notation, not code: sum_H, mean_H, x_j, label_i, delta_ij, onehot; and Python's own words
MATH = re.compile(r"(sum|mean)(_\w*)?|\w*_(i|j|k|n|ij|jk)|_\w+|onehot|self")
EXTERNAL = {"padding_idx"}  # names of other projects' code (PyTorch, Hugging Face)


def quoted_identifiers(doc: Path):
    """(identifier, the files the doc points at before it) for every identifier inside backticks."""
    text = doc.read_text()
    heading, paragraph = [], []
    for line in text.splitlines():
        files = FILE.findall(line)
        stripped = line.lstrip()
        if stripped.startswith("#"):  # a heading names the files of its section
            heading = paragraph = files
            current = files
        elif stripped.startswith("|"):  # a table row, the files of that row (else the section's)
            current = files or heading
        else:  # a paragraph: the files it names, else the section's
            paragraph = files or (paragraph if stripped else heading)
            current = paragraph
        for code in CODE.findall(line):
            if FILE.fullmatch(f"`{code}`") or re.fullmatch(r"[\w/]+\.py", code):
                continue  # a file name, not code
            for name in IDENTIFIER.findall(re.sub(r"\"[^\"]*\"|'[^']*'", "", code)):
                yield name, tuple(current), code


def missing_identifiers(doc: Path):
    """Quoted identifiers of at least 3 characters with an underscore or a call/attribute use that appear in
    none of the files the doc points at (or the whole package when it points at none)."""
    sources = {}
    missing = []
    for name, files, code in quoted_identifiers(doc):
        if len(name) < 3 or MATH.fullmatch(name) or name in EXTERNAL or not ("_" in name or f"{name}(" in code or f".{name}" in code or f"{name}." in code
                                 or f"{name}[" in code):
            continue  # a single letter or a plain word of the math, such as `mean` in a formula
        paths = [ROOT / f for f in files] or list(PACKAGE.rglob("*.py"))
        text = "".join(sources.setdefault(p, p.read_text() if p.is_file() else "") for p in paths)
        if not re.search(rf"\b{re.escape(name)}\b", text):
            missing.append(f"{name} (in `{code}`, looked in {', '.join(files) or 'minibert/'})")
    return missing


@pytest.mark.parametrize("doc", DOCS)
def test_docs_quote_only_code_that_exists(doc):
    missing = missing_identifiers(ROOT / doc)
    assert not missing, f"{doc} quotes names its files do not have: {missing}"


def test_the_doc_check_catches_a_made_up_name(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("## LayerNorm — `minibert/layers/layernorm.py`\n\n`dx_hat = dout * gamma`, then `dword[pad_id] = 0.0`\n")
    assert [m.split()[0] for m in missing_identifiers(doc)] == ["dword", "pad_id"]


# ------------------------------------------------------------------ the learner-facing gradient check
def test_gradcheck_whole_model_case_uses_segments_and_padding():
    model, batch = model_check_case()
    types, mask = np.asarray(batch["token_type_ids"]), np.asarray(batch["attention_mask"])
    assert len(np.unique(types[mask == 1])) >= 2, "the whole-model check must use at least two segment types"
    assert (mask == 0).any(), "the whole-model check must include padding"
    model.forward(batch, training=True, rng=np.random.default_rng(0))
    grads = model.backward()
    used = np.unique(types[mask == 1])
    rows = np.abs(grads["embeddings.token_type"][used]).sum(axis=1)
    assert (rows > 0).all(), f"token-type gradient rows {used} should all be non-zero, got sums {rows}"
