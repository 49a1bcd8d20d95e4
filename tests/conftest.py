"""Shared test helpers: the array modules to run on, and gradient-check assertions."""

import numpy as np
import pytest

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
