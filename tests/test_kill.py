"""Issue 15: SIGKILL at random moments while a run writes its checkpoints.

A run that saves a checkpoint at every step spends most of its time writing them, so a kill at a
random moment mostly lands inside a write. After every kill the latest checkpoint must load and
resume must work; the temporary files a kill leaves must be gone once the next start has saved.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from minibert.runs import load_run

ROOT = Path(__file__).resolve().parent.parent
KILLS = 20
TEMPORARY = re.compile(r"\.tmp")  # atomic_write's .NAME.XXXXXXXX.tmp and a checkpoint's .step-N.tmp-PID


def temporaries(run_dir: Path) -> set[str]:
    """Temporary files and folders under run_dir; os.walk, unlike Path.rglob, skips a folder that
    the live run renames or removes while it is being listed."""
    found = set()
    for parent, dirs, files in os.walk(run_dir):
        found |= {os.path.relpath(os.path.join(parent, n), run_dir) for n in dirs + files if TEMPORARY.search(n)}
    return found


def latest_step(run_dir: Path) -> int | None:
    try:
        name = (run_dir / "checkpoints" / "latest").read_text().strip()
    except (FileNotFoundError, ValueError):
        return None
    return int(name.removeprefix("step-"))


def wait_for(condition, proc, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"the run ended by itself (exit {proc.returncode})"
        assert time.monotonic() < deadline, f"nothing happened within {seconds} s"
        time.sleep(0.005)


def test_sigkill_while_checkpointing_never_loses_the_latest_checkpoint(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"hidden_size": 16, "num_hidden_layers": 1,
                                                     "num_attention_heads": 2, "intermediate_size": 32,
                                                     "max_position_embeddings": 32}))
    run = tmp_path / "run"
    start = [sys.executable, "-m", "minibert", "pretrain", "--out", str(run), "--model", str(tmp_path / "model.json"),
             "--num-documents", "40", "--vocab-size", "200", "--seq-length", "16", "--batch-size", "4",
             "--steps", "100000", "--checkpoint-interval", "1", "--log-interval", "1", "--eval-interval", "100000",
             "--eval-batches", "1", "--quiet"]
    resume = [sys.executable, "-m", "minibert", "pretrain", "--resume", str(run), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(15)
    steps, left_behind, mid_write = [], set(), 0
    for attempt in range(KILLS):
        before = latest_step(run)
        proc = subprocess.Popen(start if attempt == 0 else resume, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            # the start (or resume) has saved at least once, so it has also cleaned up after the last kill
            wait_for(lambda: (latest_step(run) or -1) > (before if before is not None else -1), proc, 120)
            assert not (left_behind & temporaries(run)), f"kill {attempt}: stale temporaries survived a start"
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        loaded = load_run(run)  # must never fail: `latest` always names a complete checkpoint
        steps.append(loaded.state["step"])
        left_behind = temporaries(run)
        mid_write += bool(left_behind)
    assert steps == sorted(steps) and steps[-1] > steps[0], steps
    print(f"{KILLS} kills, {mid_write} of them inside a write (temporaries left); checkpoints at steps {steps}")
