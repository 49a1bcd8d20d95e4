"""A model's parameters in and out of files, in minibert's own format (minibert/hf.py does
Hugging Face's): a folder with config.json and params.safetensors, names and shapes
checked on the way in, never a pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import backend
from .config import BertConfig
from .io import CheckpointError, load_arrays, save_arrays, write_text_atomic


def load_params(model, arrays: dict, source: str = "arrays", strict: bool = True) -> list:
    """Copy host arrays into model.params, checking names and shapes. Returns the names not provided.

    strict: every parameter must be provided (False: the missing ones keep their values)."""
    unexpected = sorted(set(arrays) - set(model.params))
    missing = sorted(set(model.params) - set(arrays))
    if unexpected:
        raise CheckpointError(f"{source}: unexpected tensor {unexpected[0]!r}" + _more(unexpected))
    if missing and strict:
        raise CheckpointError(f"{source}: missing tensor {missing[0]!r}" + _more(missing))
    for name, a in arrays.items():
        if tuple(a.shape) != tuple(model.params[name].shape):
            raise CheckpointError(f"{source}: tensor {name!r} has shape {tuple(a.shape)}, "
                                  f"the config needs {tuple(model.params[name].shape)}")
        model.params[name] = backend.to_device(np.asarray(a), dtype=model.dtype)
    return missing


def _more(names: list) -> str:
    return f" (and {len(names) - 1} more)" if len(names) > 1 else ""


def save_model(model, path) -> None:
    """Write path/config.json and path/params.safetensors (minibert's names), each atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_arrays(path / "params.safetensors", model.params, {"class": type(model).__name__})
    write_text_atomic(path / "config.json", json.dumps(model.config.to_dict(), indent=2) + "\n")


def load_model(cls, path, dtype=np.float32):
    """Build cls from a folder written by save_model."""
    path = Path(path)
    config = BertConfig.from_json_file(path / "config.json")
    arrays, _ = load_arrays(path / "params.safetensors", require_checksum=True)
    model = cls(config, dtype=dtype)
    load_params(model, arrays, source=str(path / "params.safetensors"))
    return model
