"""Run folders: what `minibert pretrain` and `minibert finetune` write, and the one place
that finds and reads it back (the training loop, the plots and the command line all use it).

    train_config.json   what the run was started with (PretrainConfig or FinetuneConfig, as JSON)
    config.json         the model's BertConfig (Hugging Face layout)
    vocab.txt           the tokenizer's vocabulary
    task.json           fine-tuning runs only: the task, its labels and the model class
    metrics.jsonl       one JSON object per logged step ("split": "train" or "eval")
    masking_stats.json  pre-training runs only: what masking did to a sample of batches
    baselines.json      pre-training runs only: what guessing scores on the held-out batches (for the plots)
    checkpoints/        step-NNNNNN/ {params, optimizer}.safetensors + state.json, and `latest`
    *.png               the plots

A folder with task.json is a fine-tuning run; one without it, a pre-training run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import BertConfig
from .heads import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification
from .io import CheckpointError, iter_jsonl, load_arrays, read_json, save_arrays, write_text_atomic
from .lm import pretraining_model
from .model import BertForPreTraining
from .tokenization import WordPieceTokenizer

MODEL_CLASSES = {cls.__name__: cls for cls in (BertForPreTraining, BertForQuestionAnswering,
                                               BertForSequenceClassification, BertForTokenClassification)}
CHECKPOINT_NAME = re.compile(r"step-\d{6}")


@dataclass
class Run:
    """A run folder's latest checkpoint, loaded."""

    path: Path
    kind: str  # "pretrain" or "finetune"
    model: object
    tokenizer: WordPieceTokenizer
    train_config: dict  # train_config.json as written
    state: dict  # the checkpoint's state.json: step, data position, optimizer step
    task: dict | None = None  # fine-tuning runs: task.json


def run_kind(run_dir) -> str:
    """"pretrain" or "finetune"; an error naming the folder if it is not a minibert run."""
    run_dir = Path(run_dir)
    if not (run_dir / "train_config.json").is_file():
        raise CheckpointError(f"{run_dir}: not a minibert run folder (no train_config.json)")
    return "finetune" if (run_dir / "task.json").is_file() else "pretrain"


def read_train_config(run_dir, config_cls):
    """The config a run was started with: its train_config.json as a config_cls (PretrainConfig or
    FinetuneConfig). A field the class does not have is an error naming the file and the field; a
    field the file lacks (the run is older than the field) takes the value such runs used,
    config_cls.OLDER_RUNS, or else the field's default."""
    path = Path(run_dir) / "train_config.json"
    saved = read_json(path, "training configuration")
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(saved) - names) if isinstance(saved, dict) else []
    if not isinstance(saved, dict) or unknown:
        raise CheckpointError(f"{path}: not a {config_cls.__name__}" +
                              (f" (unknown field {unknown[0]!r})" if unknown else ""))
    return config_cls(**{**getattr(config_cls, "OLDER_RUNS", {}), **saved})


def has_checkpoint(run_dir) -> bool:
    return (Path(run_dir) / "checkpoints" / "latest").is_file()


@contextmanager
def new_run_folder(run_dir, restart: bool = False):
    """Create the folder of a new run and yield it. If the run fails before it wrote its first
    checkpoint, what it created is removed again, so the same command can simply be run again
    (a run without a checkpoint could be neither resumed nor used).

    An existing folder must be empty, or (restart=True) a run that never reached a checkpoint,
    for example one that was killed: its files are then removed first."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"{run_dir}: exists and is a file, not a folder; choose another --out")
    existed = run_dir.is_dir()
    if existed and any(run_dir.iterdir()):
        if not restart:
            raise FileExistsError(f"{run_dir}: the run folder exists and is not empty; choose another --out, "
                                  f"or continue it with --resume {run_dir}")
        _remove_contents(run_dir)
    created = _make_folders(run_dir, "run folder")
    try:
        yield run_dir
    except BaseException:
        if not has_checkpoint(run_dir):
            if existed:
                _remove_contents(run_dir)
            else:  # the outermost folder this call created, with everything the run wrote
                shutil.rmtree(created[-1], ignore_errors=True)
        raise


@contextmanager
def folder_kept_only_if_used(folder):
    """Create `folder` (and any missing parents) and yield it; if the body fails and the folders
    it created are still empty, remove them, so a failed command leaves nothing behind."""
    folder = Path(folder)
    created = _make_folders(folder, "folder")
    try:
        yield folder
    except BaseException:
        for path in created:  # innermost first
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        raise


def _make_folders(folder: Path, what: str) -> list[Path]:
    """Create `folder` and any missing parents; returns the folders created, innermost first
    (empty if it existed). A folder that cannot be created is one line naming it."""
    created = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        created.append(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FileExistsError(f"{folder}: cannot create the {what} ({e.strerror})") from None
    return created


def _remove_contents(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def latest_checkpoint(run_dir) -> Path:
    """The folder `checkpoints/latest` names. The name must be a checkpoint of this run."""
    run_dir = Path(run_dir)
    pointer = run_dir / "checkpoints" / "latest"
    if not (run_dir / "train_config.json").is_file() or not pointer.is_file():
        raise CheckpointError(f"{run_dir}: not a minibert run folder (no train_config.json or checkpoints/latest)")
    name = pointer.read_text(encoding="utf-8", errors="replace").strip()
    if not CHECKPOINT_NAME.fullmatch(name):  # never follow a path out of the run
        raise CheckpointError(f"{pointer}: names {name!r}, which is not a checkpoint of this run (step-NNNNNN)")
    path = run_dir / "checkpoints" / name
    if not path.is_dir():
        raise CheckpointError(f"{pointer}: names {name}, which does not exist")
    return path


def save_checkpoint(run_dir, model, optimizer, state: dict, keep: int = 2) -> Path:
    """Write checkpoints/step-NNNNNN/ under a temporary name, rename it into place, then
    point `latest` at it. A crash at any moment leaves `latest` naming a complete checkpoint."""
    ckpts = Path(run_dir) / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:06d}"
    tmp = ckpts / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_arrays(tmp / "params.safetensors", model.params)
    save_arrays(tmp / "optimizer.safetensors", optimizer.state_dict())
    (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    final = ckpts / name
    if final.exists():  # the same step saved again (e.g. Ctrl-C right after a periodic save)
        shutil.rmtree(final)
    os.rename(tmp, final)
    write_text_atomic(ckpts / "latest", name + "\n")
    for old in sorted(p for p in ckpts.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_run(run_dir, kind: str | None = None, dtype=np.float32, objective: str | None = None) -> Run:
    """Load a run folder's latest checkpoint. kind ("pretrain" or "finetune"): the kind the
    caller needs; a run of the other kind is an error that says so. objective: the pre-training
    objective the caller needs (e.g. "mlm_nsp" for fill-mask); another is an error too."""
    run_dir = Path(run_dir)
    found = run_kind(run_dir)
    if kind is not None and found != kind:
        wanted = {"pretrain": "a pre-training run (minibert pretrain)", "finetune": "a fine-tuning run (minibert finetune)"}
        raise CheckpointError(f"{run_dir}: this is {wanted[found]}; this command needs {wanted[kind]}")
    ckpt = latest_checkpoint(run_dir)
    train_config = read_json(run_dir / "train_config.json", "training configuration")
    tokenizer = WordPieceTokenizer.from_vocab_file(run_dir / "vocab.txt", do_lower_case=True)
    config = BertConfig.from_json_file(run_dir / "config.json")
    if config.vocab_size != len(tokenizer):
        raise CheckpointError(f"{run_dir}: config.json has vocab_size {config.vocab_size} but vocab.txt has "
                              f"{len(tokenizer)} tokens")
    task = None
    if found == "finetune":
        task = read_json(run_dir / "task.json", "task description")
        cls_name = task.get("model_class")
        if cls_name not in MODEL_CLASSES:
            raise CheckpointError(f"{run_dir / 'task.json'}: unknown model_class {cls_name!r}")
        model = MODEL_CLASSES[cls_name](config, dtype=dtype, **task.get("model_options", {}))
        for name, value in task.get("model_attributes", {}).items():  # a causal encoder, the pooled token
            if name not in ("causal", "pool_at"):
                raise CheckpointError(f"{run_dir / 'task.json'}: unknown model attribute {name!r}")
            setattr(model, name, value)
    else:  # the objective picks the model; runs from before objectives existed are mlm_nsp
        found_objective = train_config.get("objective", "mlm_nsp")
        if objective is not None and found_objective != objective:
            raise CheckpointError(f"{run_dir}: pre-trained with --objective {found_objective}; this command needs "
                                  f"a run pre-trained with --objective {objective}")
        try:
            model = pretraining_model(found_objective, config, dtype=dtype)
        except ValueError as e:
            raise CheckpointError(f"{run_dir / 'train_config.json'}: {e}") from None
    arrays, _ = load_arrays(ckpt / "params.safetensors", require_checksum=True)
    model.load_params(arrays, source=str(ckpt / "params.safetensors"))
    state = read_json(ckpt / "state.json", "checkpoint state")
    return Run(run_dir, found, model, tokenizer, train_config, state, task)


def load_optimizer_state(run_dir) -> dict:
    """The latest checkpoint's optimizer arrays (AdamW's moments), to resume a run."""
    arrays, _ = load_arrays(latest_checkpoint(run_dir) / "optimizer.safetensors", require_checksum=True)
    return arrays


# ------------------------------------------------------------------ metrics.jsonl
def append_metrics(path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_metric_records(path) -> list:
    """Every record of a metrics.jsonl, in order. A last line cut short by a crash is dropped;
    a malformed line anywhere else is an error naming the file and line."""
    records = []
    for n, record in iter_jsonl(path, "metrics file"):
        if not isinstance(record, dict) or "step" not in record or record.get("split") not in ("train", "eval"):
            raise ValueError(f"{path}:{n}: a metrics record needs 'step' and 'split' (train or eval)")
        records.append(record)
    return records


def read_metrics(path) -> dict:
    """metrics.jsonl -> {"train": [records], "eval": [records]}."""
    out = {"train": [], "eval": []}
    for record in read_metric_records(path):
        out[record["split"]].append(record)
    return out


def keep_metrics_up_to(path, step: int) -> None:
    """Drop the records after `step` (a resumed run is about to redo those steps)."""
    kept = [r for r in read_metric_records(path) if r["step"] <= step]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
