"""Shared test helpers: the array modules to run on, and gradient-check assertions."""

import json
from pathlib import Path

import numpy as np
import pytest

from minibert.cli import main
from minibert.gradcheck import format_errors


def _cupy_or_reason():
    try:
        import cupy
    except ImportError:
        return None, "cupy is not installed (pip install 'minibert[gpu-cuda12]' or 'minibert[gpu-cuda13]' on a machine with an NVIDIA GPU)"
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return None, "cupy is installed but sees no GPU"
    except Exception as e:  # no driver
        return None, f"cupy is installed but no GPU is usable: {e}"
    return cupy, None


CUPY, CUPY_SKIP_REASON = _cupy_or_reason()
ARRAY_MODULES = [
    pytest.param(np, id="numpy"),
    pytest.param(CUPY, id="cupy", marks=pytest.mark.skipif(CUPY is None, reason=str(CUPY_SKIP_REASON))),
]


@pytest.fixture(params=ARRAY_MODULES)
def xp(request):
    """Each test using this runs once per available array module (cupy skipped with a reason)."""
    return request.param


def assert_gradcheck(errors, tol):
    """Fail with the table of relative errors if any exceeds tol."""
    worst = max(errors.values())
    assert worst < tol, f"relative error {worst:.2e} >= {tol:.0e}:\n{format_errors(errors, tol)}"


def ctrl_c_after_two_log_lines(args, out):
    """Run `python -m minibert ARGS`, send SIGINT (what Ctrl-C sends) once its metrics.jsonl in `out`
    has two lines, and return (exit code, stdout, stderr)."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "minibert", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        metrics = out / "metrics.jsonl"
        if metrics.is_file() and metrics.read_text().count("\n") >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stdout, stderr


def tiny_pretrain_run(out, model: dict, vocab_size: int, *options) -> Path:
    """A two-step pre-training run of `model` (BertConfig fields in a JSON file beside it), made through
    the command line at `out`: the smallest real run other commands can start from."""
    out = Path(out)
    model_file = out.parent / f"{out.name}-model.json"
    model_file.write_text(json.dumps(model))
    assert main(["pretrain", "--out", str(out), "--model", str(model_file), "--num-documents", "40", "--steps", "2",
                 "--batch-size", "4", "--seq-length", "16", "--eval-batches", "1", "--vocab-size", str(vocab_size),
                 "--quiet", *options]) == 0
    return out
