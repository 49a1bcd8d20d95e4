"""Reading and writing arrays safely: safetensors only (never pickle), atomic, checksummed."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from .backend import to_host


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, tampered with or does not fit the model."""


def read_json(path, what: str = "file"):
    """Parse a UTF-8 JSON file; a missing or malformed one is an error naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a valid UTF-8 JSON {what} ({e})") from None


def atomic_write(path, write) -> None:
    """Call write(tmp_path), then rename tmp_path to path in one step.

    A crash (or Ctrl-C) while writing leaves the old file untouched: readers see either
    the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _checksum(arrays: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_arrays(path, arrays: dict, metadata: dict | None = None) -> None:
    """Write a dict of arrays (numpy or cupy) to a .safetensors file, atomically.

    A sha256 of every tensor goes into the header, so that load_arrays can tell a
    tampered or bit-flipped file from a good one (safetensors itself checks only sizes).
    """
    host = {name: np.ascontiguousarray(to_host(a)) for name, a in arrays.items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    meta["minibert_sha256"] = _checksum(host)
    atomic_write(path, lambda tmp: save_file(host, tmp, metadata=meta))


def load_arrays(path, verify: bool = True):
    """Read a .safetensors file: returns (arrays as numpy, metadata dict)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        arrays = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {e}") from None
    expected = meta.get("minibert_sha256")
    if verify and expected is not None and _checksum(arrays) != expected:
        raise CheckpointError(f"{path}: checksum mismatch: the file was modified or corrupted after it was written")
    return arrays, meta
