"""The array module switch: NumPy by default, CuPy when asked.

Layer code never imports numpy or cupy to *make* arrays; it asks for the module that
owns its inputs (`array_module(x)`) and calls the same functions on it. The handful of
operations whose spelling differs between the two libraries live here and nowhere else:

    erf            scipy.special.erf         vs cupyx.scipy.special.erf
    keep_mask      16 random bits per item   vs uniform floats (dropout)
    scatter_add    numpy.add.at              vs cupyx.scatter_add
    to_host        the array itself          vs cupy.asnumpy
    default_rng    numpy.random.Generator    vs cupy.random.Generator

A module whose arrays live on a device is described by a `DeviceModule` and registered
here; its arrays are then recognized by their type. CuPy registers when it is chosen; the
tests register a strict stand-in for CuPy the same way (`use_device_module`), so the GPU
code path runs on every machine.

Choose the backend with `minibert.set_backend("cupy")` or the environment variable
`MINIBERT_BACKEND=cupy`. Asking for CuPy where it cannot work is an error, never a silent
fall back to the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

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


def erf(x):
    """The error function, elementwise, keeping the dtype of `x`.

    float64 (gradient checks): scipy's, exact to double precision. float32 on the CPU: the
    rational approximation of Abramowitz & Stegun 7.1.26, |error| < 1.5e-7 in exact
    arithmetic (below 1e-6 after float32 rounding), computed in cache-sized blocks: 3x
    faster than scipy's float32 erf, which was the largest elementwise cost of a step.
    """
    device = _device_of(x)
    if device is not None:
        return device.erf(x)
    if x.dtype != np.float32:
        from scipy.special import erf as scipy_erf

        return scipy_erf(x)
    out = np.empty_like(x)
    flat_x, flat_out = np.ascontiguousarray(x).reshape(-1), out.reshape(-1)
    block = 65536  # 256 KiB per temporary: every pass below stays in the CPU's cache
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
        np.copysign(y, xs, out=y)  # erf is odd
    return out


def keep_mask(rng, shape, p: float):
    """A boolean array, True with probability 1 - p (which elements dropout keeps).

    NumPy: 16 random bits per element compared with round(p * 65536), twice as fast as
    drawing floats (p is then exact to 1/65536). CuPy: uniform floats.
    """
    if isinstance(rng, np.random.Generator):
        return rng.integers(0, 1 << 16, size=shape, dtype=np.uint16) >= int(round(p * 65536))
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
    """target[indices] += values, where repeated indices accumulate (unlike `+=` on a fancy index)."""
    device = _device_of(target)
    if device is None:
        np.add.at(target, indices, values)
    else:
        device.scatter_add(target, indices, values)


def default_rng(seed):
    """A random generator that makes arrays on the active device (dropout masks, masking)."""
    return _xp.random.default_rng(seed)


set_backend(os.environ.get("MINIBERT_BACKEND", "numpy") or "numpy")
