"""Everything in this project that only a machine with an NVIDIA GPU can check, in one command.

    PYTHONPATH=. python benchmarks/gpu_check.py OUT        # from a checkout; no network needed

Needs CuPy (pip install '.[gpu-cuda12]' or '.[gpu-cuda13]') and PyTorch with CUDA (and
transformers) for the side-by-side benchmark. Writes into OUT:

  tests.txt          the test suite run with MINIBERT_BACKEND=cupy
  pretrain.txt       the output of a short `minibert pretrain --backend cupy --steps 200`,
  pretrain/          and its run folder
  results.json       one training step (forward, backward, global-norm clipping, AdamW) of
  results.md         minibert on CuPy against PyTorch eager on CUDA doing the same work, float32,
                     TF32 off, medians over interleaved rounds; device, date and versions

On a machine without a GPU it prints "no GPU: nothing to run", writes nothing, and exits 0.
The pieces are importable, so the tests run the minibert side on a stand-in for CuPy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from train_step import make_batch  # this folder is on sys.path when the script runs
from vs_pytorch import minibert_stepper, torch_eager_stepper

ROOT = Path(__file__).resolve().parent.parent
# (config, batch, length, masked predictions per sequence: BERT's 20 at 128 and 80 at 512)
CASES = [("tiny", 32, 128, 20), ("mini", 32, 128, 20), ("base", 32, 128, 20), ("base", 32, 512, 80)]
VOCAB = 30522


def find_gpu() -> str | None:
    """The GPU's name if CuPy can use one; None on a machine without a GPU. A GPU without
    CuPy is an error: this script exists to check the CuPy path."""
    try:
        import cupy
    except ImportError:
        if shutil.which("nvidia-smi") is None:
            return None
        sys.exit("gpu_check: nvidia-smi is here but cupy is not installed: "
                 "pip install '.[gpu-cuda12]' (CUDA 12) or '.[gpu-cuda13]' (CUDA 13)")
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return None
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    except Exception:  # CUDARuntimeError: no driver, no device
        return None
    return name.decode() if isinstance(name, bytes) else str(name)


def run_logged(cmd, log: Path, env=None, timeout=None) -> dict:
    """Run a command from the checkout, its output into `log`; its exit status and last lines.
    A command still running after `timeout` seconds is stopped, and reported as "timeout"."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)
        output, status = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as e:
        output = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        status = f"timeout after {timeout} s"
    log.write_text(output)
    tail = [line for line in output.splitlines() if line.strip()][-12:]
    return {"command": " ".join(map(str, cmd)), "returncode": status,
            "seconds": round(time.perf_counter() - t0, 1), "tail": tail}


def run_tests(out: Path, timeout: float | None = None) -> dict:
    """(i) The whole test suite, with CuPy as the backend every model and batch is made on;
    spread over 8 processes where pytest-xdist is installed (they share the one GPU)."""
    cmd = [sys.executable, "-m", "pytest", "tests", "-q", "-rs", "-p", "no:cacheprovider"]
    try:
        import xdist  # noqa: F401
        cmd += ["-n", "8"]
    except ImportError:
        pass
    return run_logged(cmd, out / "tests.txt", env={"MINIBERT_BACKEND": "cupy"}, timeout=timeout)


def run_pretrain(out: Path, timeout: float | None = None) -> dict:
    """(ii) A short pre-training run end to end on the GPU, as a user starts one."""
    cmd = [sys.executable, "-m", "minibert", "pretrain", "--backend", "cupy", "--steps", "200",
           "--out", str(out / "pretrain"), "--quiet"]
    return run_logged(cmd, out / "pretrain.txt", timeout=timeout)


def device_batch(batch: dict) -> dict:
    """The batch on the active backend's device, as the torch side's tensors are on theirs."""
    from minibert import backend

    return {k: backend.to_device(v) for k, v in batch.items()}


def minibert_device_stepper(name, batch, V):
    """One minibert training step on the active backend: benchmarks/vs_pytorch.py's minibert_stepper
    (the real forward, backward, clip_by_global_norm and AdamW.step) with the batch already moved."""
    return minibert_stepper(name, device_batch(batch), V)


def median_times(steppers: dict, sync, warmup: int = 3, rounds: int = 10) -> dict:
    """{name: median seconds per step}: warm-up steps, then interleaved rounds so that noise hits
    every contender alike; `sync()` waits for the device before each clock read."""
    for step in steppers.values():
        for _ in range(warmup):
            step()
    times = {k: [] for k in steppers}
    for _ in range(rounds):
        for k, step in steppers.items():
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def benchmark(cases=CASES, V=VOCAB, warmup=3, rounds=10):
    """(iii) minibert on CuPy against PyTorch eager on CUDA: yields one row per case."""
    import cupy
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False  # float32 products in float32 on both sides
    torch.backends.cudnn.allow_tf32 = False

    def sync():
        cupy.cuda.Device().synchronize()
        torch.cuda.synchronize()

    for name, B, T, P in cases:
        batch = make_batch(np.random.default_rng(0), B, T, P, V)
        steppers = {"minibert": minibert_device_stepper(name, batch, V),
                    "torch": torch_eager_stepper(name, batch, V, device="cuda")}
        med = median_times(steppers, sync, warmup, rounds)
        del steppers  # free both models before the next, larger case
        cupy.get_default_memory_pool().free_all_blocks()
        torch.cuda.empty_cache()
        yield {"config": name, "batch": B, "length": T, "predictions": P, "minibert_ms": 1000 * med["minibert"],
               "torch_ms": 1000 * med["torch"], "ratio": med["minibert"] / med["torch"]}


HEADER = f"{'config':<8}{'B x T':>10}{'minibert ms':>13}{'torch ms':>10}{'ratio':>7}"


def format_row(r: dict) -> str:
    shape = f"{r['batch']} x {r['length']}"
    return f"{r['config']:<8}{shape:>10}{r['minibert_ms']:>13.1f}{r['torch_ms']:>10.1f}{r['ratio']:>7.2f}"


def versions() -> dict:
    import cupy

    v = {"python": platform.python_version(), "numpy": np.__version__, "cupy": cupy.__version__,
         "cuda runtime": cupy.cuda.runtime.runtimeGetVersion(), "cuda driver": cupy.cuda.runtime.driverGetVersion()}
    try:
        import torch
        import transformers

        v.update(torch=torch.__version__, torch_cuda=torch.version.cuda, transformers=transformers.__version__)
    except ImportError as e:
        v["torch"] = f"not available ({e})"
    return v


def write_results(out: Path, results: dict) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# minibert on {results['device']}", "", f"{results['date']}; " +
             ", ".join(f"{k} {v}" for k, v in results["versions"].items()), ""]
    for key, title in (("tests", "Test suite with MINIBERT_BACKEND=cupy"), ("pretrain", "minibert pretrain on the GPU")):
        if key not in results:
            continue
        r = results[key]
        lines += [f"## {title}", "", f"`{r['command']}`: exit status {r['returncode']}, {r['seconds']} s", "",
                  "```", *r["tail"], "```", ""]
    lines += ["## One training step: minibert (CuPy) vs PyTorch eager (CUDA)", "",
              "forward, backward, global-norm clipping, AdamW; float32, TF32 off; vocabulary "
              f"{VOCAB}; median of {results['rounds']} interleaved rounds after {results['warmup']} warm-up steps", "",
              "| config | B x T | minibert ms | torch ms | minibert / torch |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['config']} | {r['batch']} x {r['length']} | {r['minibert_ms']:.1f} | {r['torch_ms']:.1f} "
              f"| {r['ratio']:.2f} |" for r in results.get("steps", [])]
    if results.get("benchmark_error"):
        lines += ["", f"benchmark stopped: {results['benchmark_error']}"]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="folder for the logs and results (created)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--tests-timeout", type=float, default=None, help="stop the test suite after this many seconds")
    ap.add_argument("--pretrain-timeout", type=float, default=None, help="stop the pre-training run after this many seconds")
    args = ap.parse_args(argv)
    gpu = find_gpu()
    if gpu is None:
        print("no GPU: nothing to run")
        return 0
    out = Path(args.out).resolve()  # the subprocesses run from the checkout
    out.mkdir(parents=True, exist_ok=True)
    results = {"device": gpu, "date": datetime.datetime.now().isoformat(timespec="seconds"),
               "versions": versions(), "rounds": args.rounds, "warmup": args.warmup}
    print(f"{gpu}; results in {out}/")
    results["tests"] = run_tests(out, args.tests_timeout)
    print(f"tests (MINIBERT_BACKEND=cupy): exit status {results['tests']['returncode']}", flush=True)
    print("\n".join(results["tests"]["tail"][-3:]), flush=True)
    write_results(out, results)  # each phase is kept, whatever happens in the next
    results["pretrain"] = run_pretrain(out, args.pretrain_timeout)
    print(f"pretrain --backend cupy: exit status {results['pretrain']['returncode']}")
    print("\n".join(results["pretrain"]["tail"]), flush=True)
    write_results(out, results)

    from minibert import backend

    backend.set_backend("cupy")
    print("\n" + HEADER, flush=True)
    results["steps"] = []
    try:
        for row in benchmark(warmup=args.warmup, rounds=args.rounds):
            results["steps"].append(row)
            print(format_row(row), flush=True)
            write_results(out, results)
    except Exception as e:  # keep what was measured, and say where it stopped
        results["benchmark_error"] = f"{type(e).__name__}: {e}"
        print(f"benchmark stopped: {results['benchmark_error']}")
    write_results(out, results)
    print(f"\nwrote {out / 'results.json'} and {out / 'results.md'}")
    ok = results["tests"]["returncode"] == 0 and results["pretrain"]["returncode"] == 0
    return 0 if ok and "benchmark_error" not in results else 1


if __name__ == "__main__":
    sys.exit(main())
