"""The array module switch: NumPy by default, CuPy when asked.

Layer code never imports numpy or cupy to *make* arrays; it asks for the module that
owns its inputs (`array_module(x)`) and calls the same functions on it. The handful of
operations whose spelling differs between the two libraries live here and nowhere else:

    erf            scipy.special.erf         vs cupyx.scipy.special.erf
    keep_mask      16 random bits per item   vs uniform floats (dropout)
    scatter_add    numpy.add.at's result     vs cupyx.scatter_add
    to_host        the array itself          vs cupy.asnumpy
    default_rng    numpy.random.Generator    vs cupy.random.Generator
    by_rows        row blocks on all cores   vs one call (the GPU is already parallel)
    matmul         a stack split over cores  vs one call

A module whose arrays live on a device is described by a `DeviceModule` and registered
here; its arrays are then recognized by their type. CuPy registers when it is chosen; the
tests register a strict stand-in for CuPy the same way (`use_device_module`), so the GPU
code path runs on every machine.

On the CPU, `by_rows` spreads the elementwise layers, and `matmul` attention's stacks of small
matrix products, over MINIBERT_THREADS threads (default: every core this process may use;
1 = off), with bit-identical results for any count.

Choose the backend with `minibert.set_backend("cupy")` or the environment variable
`MINIBERT_BACKEND=cupy`. Asking for CuPy where it cannot work is an error, never a silent
fall back to the CPU.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

# Read once, when numpy loads OpenBLAS: after each matrix product OpenBLAS's idle workers spin
# for ~0.1 s by default, holding the cores that by_rows's threads need next (measured on the
# mini step: threads then gained nothing; with 4, the elementwise layers took 35-45% less).
# It only takes effect when minibert is imported before numpy; a value already set is kept.
_blas_spins = "numpy" in sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in os.environ  # numpy came first: too late
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

BACKENDS = ("numpy", "cupy")


@dataclass(frozen=True)
class DeviceModule:
    """An array module whose arrays live off the host: CuPy, or a test's stand-in for it.

    xp: the module, with NumPy's functions under their names plus asnumpy and random.default_rng
    ndarray: its array type, by which array_module recognizes its arrays
    scatter_add, erf: the two operations it spells differently from NumPy
    """

    name: str
    xp: Any
    ndarray: type
    scatter_add: Callable
    erf: Callable


_devices: list[DeviceModule] = []  # every device module registered so far: their arrays stay recognized
_device: DeviceModule | None = None  # the active one; None for numpy
_xp = np


class BackendError(RuntimeError):
    """The requested array backend cannot be used on this machine."""


def _cupy_device() -> DeviceModule:
    try:
        import cupy
    except ImportError as e:
        raise BackendError(
            "backend 'cupy' was requested but cupy is not installed "
            f"({e}); install it with: pip install 'minibert[gpu]' (CUDA 12, the same as "
            "'minibert[gpu-cuda12]') or pip install 'minibert[gpu-cuda13]' (CUDA 13); it needs an "
            "NVIDIA GPU. Or use the default backend 'numpy'"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError when there is no driver
        raise BackendError(
            f"backend 'cupy' was requested and cupy is installed, but no GPU is usable ({e}); "
            "check `nvidia-smi`, and that the cupy package matches the CUDA version it shows "
            "(cupy-cuda12x or cupy-cuda13x), or use the default backend 'numpy'"
        ) from None
    if count == 0:
        raise BackendError(
            "backend 'cupy' was requested and cupy is installed, but it sees no GPU; "
            "check `nvidia-smi`, or use the default backend 'numpy'"
        )
    import cupyx
    import cupyx.scipy.special

    return DeviceModule("cupy", cupy, cupy.ndarray, cupyx.scatter_add, cupyx.scipy.special.erf)


def _register(device: DeviceModule) -> DeviceModule:
    if all(d.ndarray is not device.ndarray for d in _devices):
        _devices.append(device)
    return device


def _activate(device: DeviceModule | None) -> None:
    global _device, _xp
    _device = None if device is None else _register(device)
    _xp = np if device is None else device.xp


def set_backend(name: str) -> None:
    """Make `name` ("numpy" or "cupy") the module new parameters and batches live in."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    _activate(_cupy_device() if name == "cupy" else None)


def use_device_module(device: DeviceModule) -> None:
    """For tests: make a stand-in for CuPy the active backend, registered as CuPy registers.
    set_backend("numpy") switches back. Not reachable from set_backend, the command line or
    MINIBERT_BACKEND."""
    _activate(device)


def get_backend() -> str:
    """The name of the active backend: "numpy" or "cupy" (or a test's stand-in)."""
    return "numpy" if _device is None else _device.name


def xp():
    """The active array module (numpy or cupy)."""
    return _xp


def _device_of(a) -> DeviceModule | None:
    """The registered device module whose array `a` is, or None (a host array or a scalar)."""
    for device in _devices:
        if isinstance(a, device.ndarray):
            return device
    if type(a).__module__.startswith("cupy"):  # made with cupy before set_backend("cupy"): register it now
        return _register(_cupy_device())
    return None


def array_module(*arrays):
    """The module that owns these arrays: a device module (cupy) if any of them is its array, else numpy."""
    for a in arrays:
        device = _device_of(a)
        if device is not None:
            return device.xp
    return np


def to_device(a, dtype=None):
    """Copy a host array (or nested list) into the active backend, optionally casting."""
    return _xp.asarray(a, dtype=dtype)


def to_host(a):
    """A NumPy array with the same values: for printing, plotting and saving."""
    device = _device_of(a)
    return np.asarray(a) if device is None else device.xp.asnumpy(a)


_SIGN_BIT, _MAGNITUDE_BITS = np.uint32(0x80000000), np.uint32(0x7FFFFFFF)  # of a float32


def erf(x, out=None):
    """The error function, elementwise, keeping the dtype of `x` (into `out` when given).

    float64 (gradient checks): scipy's, exact to double precision. float32 on the CPU: the
    rational approximation of Abramowitz & Stegun 7.1.26, |error| < 1.5e-7 in exact
    arithmetic (below 1e-6 after float32 rounding), computed in cache-sized blocks: 3x
    faster than scipy's float32 erf, which was the largest elementwise cost of a step.
    """
    device = _device_of(x)
    if device is not None:
        if out is None:
            return device.erf(x)
        out[...] = device.erf(x)
        return out
    if x.dtype != np.float32:
        from scipy.special import erf as scipy_erf

        return scipy_erf(x, out=out)
    if out is None:
        out = np.empty_like(x)
    flat_x, flat_out = np.ascontiguousarray(x).reshape(-1), out.reshape(-1)
    # 1 MiB per temporary, by_rows's block: smaller blocks fit a smaller cache but mean more calls, and
    # each call holds the GIL a moment; on two threads 256 KiB blocks ran 1.4x slower than 1 MiB ones
    block = 1 << 18
    t = np.empty(min(block, flat_x.size), np.float32)
    e = np.empty_like(t)
    for start in range(0, flat_x.size, block):
        xs, y = flat_x[start:start + block], flat_out[start:start + block]
        ts, es = t[:xs.size], e[:xs.size]
        np.abs(xs, out=ts)
        np.multiply(ts, ts, out=es)
        np.negative(es, out=es)
        np.exp(es, out=es)  # exp(-x^2)
        ts *= 0.3275911
        ts += 1.0
        np.reciprocal(ts, out=ts)  # t = 1 / (1 + p |x|)
        np.multiply(ts, 1.061405429, out=y)  # Horner: ((((a5 t + a4) t + a3) t + a2) t + a1) t
        y -= 1.453152027
        y *= ts
        y += 1.421413741
        y *= ts
        y -= 0.284496736
        y *= ts
        y += 0.254829592
        y *= ts
        y *= es
        np.subtract(1.0, y, out=y)  # erf(|x|) = 1 - poly(t) exp(-x^2)
        # erf is odd: |y| with the sign of x, np.copysign's result bit for bit, by integer operations
        # on the float's bits (3.5x faster than copysign, which is not vectorized for float32 here)
        y_bits, sign = y.view(np.uint32), ts.view(np.uint32)
        np.bitwise_and(xs.view(np.uint32), _SIGN_BIT, out=sign)
        y_bits &= _MAGNITUDE_BITS
        y_bits |= sign
    return out


# -- the elementwise half of a step on every core --------------------------------------
# NumPy runs each ufunc on one core, but releases the GIL inside its loops: a few Python
# threads, each on its own row blocks, keep every core busy. A hand-off costs 10-50 us, so
# small arrays stay on the calling thread. Blocks are cut from the shape alone (never from
# the thread count) and every block is computed by the same operations, so the results are
# bit-identical with any number of threads, 1 included.


def _threads_from_environment() -> int:
    """MINIBERT_THREADS if set (1 = off), else the cores this process may run on, or 1 where numpy
    was imported before minibert: OpenBLAS's idle threads then spin for 0.1 s after each product and
    ours would fight them for the cores (a mini step took 1.05 s with 2 threads, 0.95 s with 1, and
    0.86 s with minibert imported first)."""
    if os.environ.get("MINIBERT_THREADS"):
        return max(1, int(os.environ["MINIBERT_THREADS"]))
    if _blas_spins and _openblas_with_threads():
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _openblas_with_threads() -> bool:
    """Whether numpy's BLAS is OpenBLAS running more than one thread (whose idle threads spin)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return True  # cannot tell: assume the common case, numpy's own OpenBLAS
    return any(lib.get("internal_api") == "openblas" and lib.get("num_threads", 1) > 1 for lib in threadpool_info())


threads = _threads_from_environment()  # worker threads for by_rows; 1 = off
min_parallel_size = 1 << 17  # elements: smaller arrays are not worth a hand-off (tests lower it)
block_bytes = 1 << 20  # of each array per block: about a core's L2 cache; measured as fast as 256 KiB, with fewer calls
_pool: ThreadPoolExecutor | None = None
_pool_size, _pool_pid = 0, 0  # its workers, and the process that made it (a forked child makes its own)
_in_worker = threading.local()  # set in the pool's threads: a by_rows inside fn runs there, unsplit


@contextmanager
def thread_settings(n: int | None = None, min_size: int | None = None, block: int | None = None):
    """Temporarily change `threads`, `min_parallel_size` or `block_bytes` (benchmarks and tests)."""
    global threads, min_parallel_size, block_bytes
    saved = threads, min_parallel_size, block_bytes
    threads = saved[0] if n is None else max(1, int(n))
    min_parallel_size = saved[1] if min_size is None else int(min_size)
    block_bytes = saved[2] if block is None else int(block)
    try:
        yield
    finally:
        threads, min_parallel_size, block_bytes = saved


def _rows(a):
    """a viewed as rows: (rows, last axis), a 1-D array as it is. None if that would need a copy."""
    if a.ndim == 0 or not a.flags.c_contiguous:
        return None
    return a if a.ndim == 1 else a.reshape(-1, a.shape[-1])


def by_rows(fn, *arrays) -> None:
    """Call fn(*blocks) on matching blocks of rows of `arrays`, spread over `threads` threads.

    fn must work row by row: elementwise, or reducing along the last axis within a row,
    writing its results into one of the arrays (in place). The arrays share their leading
    dimensions, the row count (`x` of (N, H) with `rstd` of (N, 1); 1-D arrays count each
    element as a row). On a device (CuPy), and for non-contiguous arrays or arrays of one
    block, fn simply runs once on the whole arrays; arrays below `min_parallel_size`
    elements, or with threads = 1, run block by block on the calling thread.
    """
    views = [_rows(a) if isinstance(a, np.ndarray) else None for a in arrays]
    if any(v is None for v in views) or len({v.shape[0] for v in views}) != 1:
        fn(*arrays)  # a device array, a copy-needing view, or mismatched rows: one plain call
        return
    n_rows = views[0].shape[0]
    row_bytes = max(v[:1].nbytes for v in views)
    per_block = max(1, block_bytes // max(1, row_bytes))
    starts = range(0, n_rows, per_block)
    if len(starts) <= 1:
        fn(*arrays)
        return
    if arrays[0].size < min_parallel_size or threads == 1 or getattr(_in_worker, "active", False):
        for start in starts:  # cache-sized blocks on this thread
            fn(*(v[start:start + per_block] for v in views))
        return

    def run(first, last):  # blocks first..last-1, one after the other
        for start in starts[first:last]:
            fn(*(v[start:start + per_block] for v in views))

    def run_in_worker(first, last):
        _in_worker.active = True
        run(first, last)

    n = min(threads, len(starts))
    bounds = [len(starts) * i // n for i in range(n + 1)]
    futures = [_worker_pool(n).submit(run_in_worker, bounds[i], bounds[i + 1]) for i in range(1, n)]
    run(bounds[0], bounds[1])  # the calling thread takes the first share
    for f in futures:
        f.result()  # re-raises an exception from a worker


# -- stacks of small matrix products (attention) on every core ---------------------------
# Attention multiplies B*A small matrices, (T, D) @ (D, T) and the like: one BLAS call each.
# OpenBLAS splits every such call over its threads and gains nothing on a product this small
# (mini at 32 x 128: QK^T 4.5 ms with 2 BLAS threads, 4.3 ms with 1). Giving each of our
# threads its own share of the stack, with BLAS held to one thread meanwhile, runs them side
# by side instead: 2.1 ms. Each small product is computed the same way either way, so the
# result is bit-identical for any thread count (tested).

_blas = None  # threadpoolctl's handle on the BLAS numpy uses; False where it cannot set its threads
_blas_lock = threading.Lock()  # held while a matmul has lowered BLAS's thread count


def _blas_threads():
    """threadpoolctl's handle on the BLAS libraries loaded, to set their thread count; None where it cannot."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas = ThreadpoolController().select(user_api="blas") or False
        except Exception:  # threadpoolctl missing or unable to read this process: products stay as they are
            _blas = False
    return _blas or None


def matmul(a, b, out=None):
    """a @ b for stacks of matrices (..., n, k) @ (..., k, m), written into `out` when given.

    On the CPU, with more than one thread and a stack of at least two, the stack's first axis
    is shared out among `threads` threads, each product on one core; otherwise it is `a @ b`.
    """
    xp = array_module(a, b)
    if xp is not np:  # a device: one call (written into `out` by assignment, which every array library has)
        if out is None:
            return xp.matmul(a, b)
        out[...] = xp.matmul(a, b)
        return out
    shape = a.shape[:-1] + b.shape[-1:]
    n = min(threads, a.shape[0]) if a.ndim >= 3 and a.shape[:-2] == b.shape[:-2] else 1
    blas = _blas_threads() if n > 1 and not getattr(_in_worker, "active", False) else None
    # BLAS's thread count is one setting for the whole process: one caller at a time may lower it
    if blas is None or (out is not None and out.shape != shape) or not _blas_lock.acquire(blocking=False):
        return np.matmul(a, b, out=out)  # (numpy's own error for a wrong `out`)
    try:
        if out is None:
            out = np.empty(shape, np.result_type(a, b))
        bounds = [a.shape[0] * i // n for i in range(n + 1)]

        def share(i):  # products bounds[i]..bounds[i+1]-1 of the stack
            np.matmul(a[bounds[i]:bounds[i + 1]], b[bounds[i]:bounds[i + 1]], out=out[bounds[i]:bounds[i + 1]])

        with blas.limit(limits=1):  # BLAS on one thread until the last share is done, then as before
            futures = [_worker_pool(n).submit(share, i) for i in range(1, n)]
            try:
                share(0)  # the calling thread takes the first share
            finally:
                wait(futures)  # every share done (or failed) before BLAS gets its threads back
            for f in futures:
                f.result()  # re-raises an exception from a worker
    finally:
        _blas_lock.release()
    return out


def _worker_pool(n: int) -> ThreadPoolExecutor:
    """The pool of n - 1 workers shared by by_rows and matmul: made on first use, grown if `threads` grew."""
    global _pool, _pool_size, _pool_pid
    if _pool_size < n - 1 or _pool_pid != os.getpid():  # a forked child makes its own
        _pool = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="minibert")
        _pool_size, _pool_pid = n - 1, os.getpid()
    return _pool


def keep_mask(rng, shape, p: float):
    """A boolean array, True with probability 1 - p (which elements dropout keeps).

    NumPy: 16 random bits per element compared with round(p * 65536), twice as fast as
    drawing floats (p is then exact to 1/65536). CuPy: uniform floats.
    """
    if isinstance(rng, np.random.Generator):
        threshold = int(round(p * 65536))
        size = math.prod(shape)
        bits = rng.bit_generator
        if isinstance(bits, np.random.PCG64) and size % 4 == 0 and np.little_endian and not bits.state["has_uint32"]:
            # the same 16-bit numbers integers() draws (each 64-bit output cut in four, in order;
            # tested), but 1.3 ms instead of 2.2 for attention's 2M at mini: no bounds to check
            return bits.random_raw(size // 4).view(np.uint16).reshape(shape) >= threshold
        return rng.integers(0, 1 << 16, size=shape, dtype=np.uint16) >= threshold
    return rng.random(shape, dtype=np.float32) >= p


def tune_malloc() -> None:
    """Let glibc keep freed memory for reuse instead of returning it to the OS (Linux only).

    A training step allocates and frees the same large arrays every time; by default glibc
    hands big blocks back to the OS and the next step faults them in again, page by page.
    Measured on the mini config: half the page faults, about 3% of the step. Does nothing
    where glibc is not the allocator.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD: blocks below 32 MiB come from the heap
            libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap
    except OSError:
        pass


def scatter_add(target, indices, values) -> None:
    """target[indices] += values, where repeated indices accumulate (unlike `+=` on a fancy index).

    indices: (N,) rows of target, or a tuple of index arrays (as for target[indices]). The result
    is np.add.at's, bit for bit: each entry of target adds its values one after the other, in
    the order they come.
    """
    device = _device_of(target)
    if device is not None:
        device.scatter_add(target, indices, values)
        return
    if isinstance(indices, tuple) and _flattenable(target, indices, values):
        # (rows, columns, ...) into the leading axes: the same adds as flat row numbers, in the same order
        lead, rest = target.shape[:len(indices)], target.shape[len(indices):]
        indices = np.ravel_multi_index(np.broadcast_arrays(*indices), lead).reshape(-1)
        target, values = target.reshape(-1, *rest), np.reshape(values, (-1, *rest))
    if not (isinstance(indices, np.ndarray) and indices.ndim == 1 and indices.dtype.kind in "iu" and indices.size
            and isinstance(values, np.ndarray) and values.shape[:1] == indices.shape and indices.min() >= 0):
        np.add.at(target, indices, values)
        return
    # np.add.at is slow per row (13 ms for 4,096 rows of 256). Rows whose index occurs once need no
    # accumulation: a plain fancy-index add does them (3 ms for random ids)
    counts = np.bincount(indices, minlength=target.shape[0])
    once = counts[indices] == 1
    if once.any():
        target[indices[once]] += values[once]
        indices, values = indices[~once], values[~once]
    if not indices.size:
        return
    # a sum down axis 0 adds row after row only across columns of 2 or more (along one contiguous
    # column numpy sums pairwise), and in the target's dtype only if the values share it
    if not (values.ndim >= 2 and math.prod(values.shape[1:]) > 1 and values.dtype == target.dtype):
        np.add.at(target, indices, values)
        return
    # the repeated ones, in np.add.at's order: group each row's values, first to last (a stable sort)
    order = np.argsort(indices, kind="stable")
    rows = indices[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])  # where each row's group begins
    sizes = np.diff(np.r_[starts, len(rows)])
    rank = np.arange(len(rows)) - np.repeat(starts, sizes)  # 0 for a row's first value, 1 for its second...
    few = np.repeat(sizes <= _FEW_HITS, sizes)
    for k in range(min(_FEW_HITS, int(sizes.max()))):  # round k adds every row's (k+1)-th value: no row twice
        take = order[few & (rank == k)]
        target[indices[take]] += values[take]
    for start, size in zip(starts[sizes > _FEW_HITS], sizes[sizes > _FEW_HITS]):  # the few rows hit many times
        row = rows[start]  # (a text's [PAD], "the", ".": token types' two rows): one sum each, old value first
        target[row] = np.concatenate([target[row][None], values[order[start:start + size]]]).sum(axis=0)


_FEW_HITS = 8  # rows hit at most this often are added in rounds, the rest by a sum of their own


def _flattenable(target, indices: tuple, values) -> bool:
    """Whether target[indices] += values can be read as rows of a flat view: a contiguous target with
    more axes than index arrays, integer indices within its axes, and one value per indexed entry
    (anything else, broadcasting included, is left to np.add.at)."""
    if not (target.flags.c_contiguous and target.ndim > len(indices) and all(
            isinstance(i, np.ndarray) and i.dtype.kind in "iu" and (not i.size or 0 <= i.min() <= i.max() < n)
            for i, n in zip(indices, target.shape))):
        return False
    return np.shape(values) == np.broadcast_shapes(*(i.shape for i in indices)) + target.shape[len(indices):]


def default_rng(seed):
    """A random generator that makes arrays on the active device (dropout masks, masking)."""
    return _xp.random.default_rng(seed)


set_backend(os.environ.get("MINIBERT_BACKEND", "numpy") or "numpy")
