"""Issue 15: every `minibert` subcommand, fed hostile arguments.

For each case: a non-zero exit, exactly one line on stderr that names the argument (its flag,
its name or the value given), no traceback, and no file created or changed anywhere but in a
fresh temporary folder (the current folder, which must stay empty, is a fresh one too).

The cases are generated from the commands' own option tables, so a new option is attacked
without anyone writing a case for it: every number option gets the empty string, NaN, both
infinities and a negative number, zero where zero is out of range and a huge number where the
range has a top; every path gets nothing, a folder, a file and a place nobody can write.
"""

import dataclasses
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from minibert.cli import main
from minibert.finetune import FINETUNE_RULES, FinetuneConfig
from minibert.train import PRETRAIN_RULES, PretrainConfig

from .conftest import tiny_pretrain_run

ROOT = Path(__file__).resolve().parent.parent
SKIP_IN_ROOT = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", "build", "runs"}
# A place no one may write, root included (this suite runs as root in CI): sysfs refuses new files.
UNWRITABLE = Path("/sys/minibert-cannot-write-here")
SMALL_MODEL = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
               "max_position_embeddings": 64}


# ------------------------------------------------------------------ the things the cases point at
@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """Inputs every case may name: two real runs, a file, a folder, a binary file, and so on.
    Module-scoped and snapshotted: no case may change them."""
    base = tmp_path_factory.mktemp("places")
    pre = tiny_pretrain_run(base / "pretrain-run", SMALL_MODEL, 200)
    fine = base / "finetune-run"
    assert main(["finetune", "qa", "--init", str(pre), "--out", str(fine), "--num-examples", "20", "--steps", "2",
                 "--batch-size", "4", "--seq-length", "48", "--eval-interval", "2", "--quiet"]) == 0
    (base / "a-file.txt").write_text("a user's notes\n")
    (base / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (base / "empty-folder").mkdir()
    (base / "users-folder").mkdir()
    (base / "users-folder" / "config.json").write_text('{"mine": true}\n')
    return {"pretrain": pre, "finetune": fine, "file": base / "a-file.txt", "binary": base / "binary.bin",
            "folder": base / "empty-folder", "full": base / "users-folder", "nothing": base / "does-not-exist",
            "base": base}


def snapshot(*folders) -> dict:
    """Every file and folder under `folders`: kind, size, modification time, permissions
    (virtual environments, caches and git's own folder not entered)."""
    seen = {}
    for folder in folders:
        for parent, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d not in SKIP_IN_ROOT and not d.endswith(".egg-info")]
            for name in dirs + files:
                path = os.path.join(parent, name)
                st = os.lstat(path)
                seen[path] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return seen


# ------------------------------------------------------------------ the cases
def number_values(field_type: str, low, high) -> list[str]:
    """Hostile spellings for a number option with range [low, high] (None: no bound)."""
    values = ["", "nan", "inf", "-inf", "-5", "three"]
    if low is not None and low > 0:
        values.append("0")
    if high is not None:
        values.append("1" + "0" * 30 if "int" in field_type else "1e30")
    return values


def option_cases(command: str, config_cls, rules: dict, lead: list[str]) -> list:
    fields = {f.name: str(f.type) for f in dataclasses.fields(config_cls)}
    cases = []
    for name, (low, high, _) in rules.items():
        flag = "--" + name.replace("_", "-")
        for value in number_values(fields[name], low, high):
            cases.append(pytest.param(command, [*lead, flag, value], [flag], id=f"{command} {flag} {value!r}"))
    return cases


def path_cases(command: str, flag: str, lead: list[str], kinds: list[str]) -> list:
    """kinds: names in `places`, or "empty" (the empty string) or "unwritable"."""
    return [pytest.param(command, [*lead, flag, kind], [flag, "=" + kind], id=f"{command} {flag} <{kind}>")
            for kind in kinds]


def positional_cases(command: str, name: str, before: list[str], after: list[str], kinds: list[str]) -> list:
    return [pytest.param(command, [*before, kind, *after], [name, "=" + kind], id=f"{command} {name} <{kind}>")
            for kind in kinds]


RUN_INPUTS = ["empty", "nothing", "file", "folder", "binary"]
CASES = [
    # pretrain: every number option, then every path and word
    *option_cases("pretrain", PretrainConfig, PRETRAIN_RULES, []),
    *path_cases("pretrain", "--out", [], ["empty", "file", "full", "unwritable"]),
    *path_cases("pretrain", "--corpus", [], ["empty", "nothing", "folder", "binary"]),
    *path_cases("pretrain", "--vocab", [], ["empty", "nothing", "folder", "binary"]),
    *path_cases("pretrain", "--model", [], ["empty", "nothing", "folder", "binary", "file"]),
    *path_cases("pretrain", "--resume", [], ["empty", "nothing", "file", "folder", "full", "finetune"]),
    pytest.param("pretrain", ["--masking", "sometimes"], ["--masking"], id="pretrain --masking 'sometimes'"),
    pytest.param("pretrain", ["--corpus-format", "xml"], ["--corpus-format"], id="pretrain --corpus-format 'xml'"),
    pytest.param("pretrain", ["--backend", "abacus"], ["--backend"], id="pretrain --backend 'abacus'"),
    pytest.param("pretrain", ["--resume", "pretrain", "--steps", "5"], ["--steps"], id="pretrain --resume with --steps"),
    pytest.param("pretrain", ["--bogus"], ["--bogus"], id="pretrain --bogus"),
    # finetune
    *option_cases("finetune", FinetuneConfig, FINETUNE_RULES, ["qa"]),
    pytest.param("finetune", ["sing"], ["task"], id="finetune task 'sing'"),
    pytest.param("finetune", [], ["task"], id="finetune without a task"),
    *path_cases("finetune", "--out", ["qa"], ["empty", "file", "full", "unwritable"]),
    *path_cases("finetune", "--init", ["qa"], ["empty", "nothing", "file", "folder", "binary", "finetune"]),
    *path_cases("finetune", "--data", ["qa"], ["empty", "nothing", "folder", "binary", "file"]),
    *path_cases("finetune", "--data", ["classify"], ["empty", "nothing", "folder", "binary", "file"]),
    *path_cases("finetune", "--eval-data", ["qa"], ["empty", "nothing", "folder", "binary"]),
    *path_cases("finetune", "--vocab", ["qa"], ["empty", "nothing", "folder", "binary"]),
    *path_cases("finetune", "--model", ["qa"], ["empty", "nothing", "folder", "binary"]),
    *path_cases("finetune", "--resume", [], ["empty", "nothing", "file", "folder", "full", "pretrain"]),
    pytest.param("finetune", ["--resume", "finetune", "--lr", "0.1"], ["--lr"], id="finetune --resume with --lr"),
    pytest.param("finetune", ["qa", "--backend", "abacus"], ["--backend"], id="finetune --backend 'abacus'"),
    # transfer
    *positional_cases("transfer", "run_dir", [], [], [*RUN_INPUTS, "finetune"]),
    *[pytest.param("transfer", ["pretrain", flag, value], [flag], id=f"transfer {flag} {value!r}")
      for flag, (low, high) in {"--steps": (1, 1), "--seed": (0, 1), "--lr": (1e-12, None),
                                "--sizes": (1, 1), "--eval-fraction": (0.001, 1)}.items()
      for value in number_values("int" if flag in ("--steps", "--seed", "--sizes") else "float", low, high)],
    *[pytest.param("transfer", ["pretrain", "--sizes", v], ["--sizes"], id=f"transfer --sizes {v!r}")
      for v in ["700,", "700,-5", "700 2700"]],
    *path_cases("transfer", "--out", ["pretrain"], ["empty", "file", "full", "unwritable"]),
    pytest.param("transfer", ["pretrain", "--task", "sing"], ["--task"], id="transfer --task 'sing'"),
    # plot, fill-mask, nsp, answer, export, gradcheck
    *positional_cases("plot", "run_dir", [], [], [*RUN_INPUTS, "finetune"]),
    *positional_cases("fill-mask", "run_dir", [], ["oslo is in [MASK] ."], [*RUN_INPUTS, "finetune"]),
    *[pytest.param("fill-mask", ["pretrain", text], ["text", text.strip() or "text"], id=f"fill-mask text {text!r}")
      for text in ["", "   ", "no mask here"]],
    *[pytest.param("fill-mask", ["pretrain", "oslo is in [MASK] .", "--top-k", v], ["--top-k"],
                   id=f"fill-mask --top-k {v!r}") for v in ["", "0", "-5", "nan", "inf", "three"]],
    *positional_cases("nsp", "run_dir", [], ["a b .", "c d ."], [*RUN_INPUTS, "finetune"]),
    *[pytest.param("nsp", ["pretrain", *ab], [which], id=f"nsp {which} {text!r}")
      for which, ab, text in [("sentence_a", ["", "oslo ."], ""), ("sentence_b", ["oslo .", "  "], "  ")]],
    *positional_cases("answer", "run_dir", [], ["where ?", "oslo is in norway ."], [*RUN_INPUTS, "pretrain"]),
    *[pytest.param("answer", ["finetune", *qc], [which], id=f"answer {which} {text!r}")
      for which, qc, text in [("question", ["", "oslo is in norway ."], ""), ("context", ["where ?", " "], " ")]],
    *positional_cases("export", "run_dir", [], ["@fresh/hf"], [*RUN_INPUTS, "finetune"]),
    *positional_cases("export", "out_dir", ["pretrain"], [], ["empty", "file", "full", "unwritable"]),
    pytest.param("gradcheck", ["extra"], ["extra"], id="gradcheck extra"),
    pytest.param("gradcheck", ["--bogus"], ["--bogus"], id="gradcheck --bogus"),
]


def resolve(args: list[str], places: dict, fresh: Path) -> list[str]:
    """Turn the names of places into paths; "@fresh" is the fresh folder of the case."""
    named = {**{k: str(v) for k, v in places.items()}, "empty": "", "unwritable": str(UNWRITABLE / "run")}
    out = [named.get(a, a) for a in args]
    return [a.replace("@fresh", str(fresh)) for a in out]


def check_refusal(code, err: str, names: list[str]) -> str:
    """One line naming the argument, a non-zero exit, no traceback; returns the line."""
    assert code not in (0, None), f"exit status {code}: the bad input was accepted"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{err}"
    assert any(n in lines[0] or n.replace("_", " ") in lines[0] for n in names), \
        f"the message does not name {names}: {lines[0]}"
    return lines[0]


@pytest.mark.parametrize("command, args, names", CASES)
def test_hostile_argument_is_one_line_and_changes_nothing(command, args, names, places, tmp_path, monkeypatch,
                                                          capsys):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.chdir(fresh)  # where default output folders (runs/...) would land
    argv = [command, *resolve(args, places, fresh / "out")]
    # "=place": naming the path given counts as naming the argument (for a folder that cannot be
    # created, the parent that refused it may be named instead)
    names = [n for n in (resolve([n[1:]], places, fresh)[0] if n.startswith("=") else n for n in names) if n]
    if any(n.startswith(str(UNWRITABLE)) for n in names):
        names.append(str(UNWRITABLE))
    if command in ("pretrain", "finetune", "transfer") and "--out" not in args and "--resume" not in args:
        argv += ["--out", str(fresh / "out")]
    if command in ("pretrain", "finetune"):
        argv += ["--quiet"]
    before = snapshot(ROOT, places["base"])
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    err = capsys.readouterr().err
    check_refusal(code, err, names)
    assert snapshot(ROOT, places["base"]) == before, "a file outside the fresh folder was created or changed"
    assert list(fresh.iterdir()) == [], f"left behind: {[p.name for p in fresh.iterdir()]}"
    assert not UNWRITABLE.exists()


def test_every_number_option_is_attacked():
    """A number option without a range rule would escape the cases above."""
    for cls, rules in ((PretrainConfig, PRETRAIN_RULES), (FinetuneConfig, FINETUNE_RULES)):
        numbers = {f.name for f in dataclasses.fields(cls) if any(t in str(f.type) for t in ("int", "float"))}
        assert numbers == set(rules), f"{cls.__name__}: {numbers ^ set(rules)}"


@pytest.mark.parametrize("argv, names", [
    (["pretrain", "--steps", "nan"], ["--steps"]),
    (["pretrain", "--lr", "-1"], ["--lr"]),
    (["finetune", "qa", "--init", "does-not-exist"], ["--init", "does-not-exist"]),
    (["fill-mask", "does-not-exist", "[MASK]"], ["does-not-exist"]),
    (["export", "does-not-exist", "out"], ["does-not-exist"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0][0] != "-" else None)
def test_the_installed_command_refuses_in_one_line(argv, names, tmp_path):
    """The same promise through the real entry point, as a user's shell sees it."""
    proc = subprocess.run([sys.executable, "-m", "minibert", *argv], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    check_refusal(proc.returncode, proc.stderr, names)
    assert list(tmp_path.iterdir()) == []
