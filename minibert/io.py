"""Reading and writing files safely: safetensors only (never pickle), atomic, checksummed.

Every write goes to a temporary file beside the target and is renamed into place, so a
crash, a Ctrl-C or a full disk leaves the old file whole; every read error names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from .backend import to_host


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, tampered with or does not fit the model."""


class WriteError(CheckpointError, OSError):
    """A file could not be written (a full disk, say); the previous file, if any, is untouched.

    Both a CheckpointError (the command line prints it as one line) and an OSError with the
    errno of the cause (so that code which handles a full disk as an OSError still does).
    reason: the cause alone ("No space left on device"), without the temporary file's name.
    """

    def __init__(self, message: str, reason: str, errno: int | None = None):
        super().__init__(message)
        self.reason, self.errno = reason, errno


def failure_reason(e: BaseException) -> str:
    """Why a write failed, in words: "No space left on device"."""
    if isinstance(e, WriteError):
        return e.reason
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


# ------------------------------------------------------------------ reading JSON
def read_bytes(path, what: str = "file") -> bytes:
    """A file's bytes; a missing file or a folder is an error naming the path and what it should be."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path}: is a folder, not a {what}") from None


def read_json(path, what: str = "file"):
    """Parse a UTF-8 JSON file; a missing or malformed one is an error naming the file."""
    path = Path(path)
    try:
        return json.loads(read_bytes(path, what).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a valid UTF-8 JSON {what} ({e})") from None


def iter_jsonl(path, what: str = "file", tolerate_partial_last_line: bool = True):
    """(line number, value) for each non-blank line of a JSON-lines file.

    A malformed line is an error naming the file and the line, with one exception when
    tolerate_partial_last_line: a last line that has no newline and does not parse. That is
    exactly what a crash in the middle of an append leaves (the bytes of one record, cut
    anywhere, even inside a UTF-8 character), and the records before it are all whole.
    """
    path = Path(path)
    lines = read_bytes(path, what).split(b"\n")  # the last item is b"" when the file ends with a newline
    for number, raw in enumerate(lines, start=1):
        cut_short = number == len(lines) and raw != b""
        try:
            text = raw.decode("utf-8")
            if not text.strip():
                continue
            value = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            if cut_short and tolerate_partial_last_line:
                return
            reason = "not valid UTF-8" if isinstance(e, UnicodeDecodeError) else e.msg
            raise ValueError(f"{path}:{number}: not a valid JSON line in this {what} ({reason})"
                             + (" (the last line, cut short?)" if cut_short else "")) from None
        yield number, value


def read_jsonl(path, what: str = "file", tolerate_partial_last_line: bool = True) -> list:
    """The values of a JSON-lines file, one per non-blank line (see iter_jsonl)."""
    return [value for _, value in iter_jsonl(path, what, tolerate_partial_last_line)]


# ------------------------------------------------------------------ writing atomically
def _umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux shows it
    in /proc); os.umask can only be read by setting it, which another thread could see."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(folder: bool = False) -> int:
    """The permissions open() (0o666) or mkdir() (0o777) would give a new file or folder.
    mkstemp and mkdtemp make theirs private (0o600, 0o700), right for a temporary but not
    for the file it becomes."""
    return (0o777 if folder else 0o666) & ~_umask()


def _mode_of(path: Path) -> int:
    """What open(path, "w") would leave: an existing file keeps its permissions (a user who made
    a file private keeps it private), a new one gets default_mode()."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return default_mode()


def fsync_folder(folder) -> None:
    """Make a rename inside folder durable: the new name is an entry of the folder, which is
    flushed separately from the file's bytes. Some systems (Windows) cannot open a folder
    for this; there the rename is as durable as the system makes it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write) -> None:
    """Call write(tmp_path), then rename tmp_path to path in one step.

    A crash (or Ctrl-C) while writing leaves the old file untouched: readers see either
    the old file or the new one, never half of one. A failed write (a full disk) removes
    the temporary file and raises a WriteError (an OSError) that names path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _mode_of(path))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        # e names the temporary file, or no file at all; the user knows the file by its real name
        reason = failure_reason(e)
        raise WriteError(f"{path}: could not write ({reason}); the previous file, if any, is unchanged",
                         reason, e.errno) from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    fsync_folder(path.parent)


def write_text_atomic(path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


# the temporaries a crash can leave: atomic_write's ".NAME.XXXXXXXX.tmp" (files, or folders
# from tempfile.mkdtemp with the same prefix and suffix) and a checkpoint's ".step-N.tmp-PID"
_ATOMIC_TMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
_CHECKPOINT_TMP = re.compile(r"^\.step-\d+\.tmp-(\d+)$")


def _in_use(pid: int) -> bool:
    """Whether another live process (which may still be writing) has this pid."""
    if pid == os.getpid():
        return False  # this process is only starting: it writes nothing yet
    try:
        os.kill(pid, 0)  # signal 0: no signal, only the check that the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process, or a system that cannot tell: leave it alone
    return True


def remove_stale_temporaries(folder) -> list[Path]:
    """Delete the temporary files and folders an interrupted write left under folder (and its
    subfolders); returns what was removed. Call it when nothing else writes there, e.g. at
    the start of a resumed run. A checkpoint temporary of a process still alive is kept."""
    removed = []
    for root, dirs, files in os.walk(folder):
        for name in [*files, *dirs]:
            checkpoint = _CHECKPOINT_TMP.match(name)
            stale = _ATOMIC_TMP.match(name) or checkpoint and not _in_use(int(checkpoint.group(1)))
            if not stale:
                continue
            p = Path(root) / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                dirs.remove(name)  # do not walk into what was just removed
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


# ------------------------------------------------------------------ arrays
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
    A failed write (a full disk) raises WriteError naming path; the old file stays.
    """
    host = {name: np.ascontiguousarray(to_host(a)) for name, a in arrays.items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    meta["minibert_sha256"] = _checksum(host)
    try:
        atomic_write(path, lambda tmp: save_file(host, tmp, metadata=meta))
    except SafetensorError as e:  # how safetensors reports a full disk: "... IoError(No space left on device)"
        raise WriteError(f"{path}: could not write ({e}); the previous file, if any, is unchanged", str(e)) from e


def load_arrays(path, verify: bool = True, require_checksum: bool = False):
    """Read a .safetensors file: returns (arrays as numpy, metadata dict).

    verify: compare the tensors with the sha256 save_arrays put in the header. A file without
    one loads unchecked, since Hugging Face files are not written by minibert and never
    have it; pass require_checksum=True for files minibert wrote (checkpoints), where a
    missing checksum means the header was rewritten by something else.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        arrays = load_file(str(path))
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {e}") from None
    expected = meta.get("minibert_sha256")
    if expected is None and require_checksum:
        raise CheckpointError(f"{path}: no minibert checksum in the header, so the file cannot be verified "
                              "(not written by minibert, or rewritten by another tool)")
    if verify and expected is not None and _checksum(arrays) != expected:
        raise CheckpointError(f"{path}: checksum mismatch: the file was modified or corrupted after it was written")
    return arrays, meta
