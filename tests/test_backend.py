"""The numpy/cupy switch: clear errors instead of silent fallbacks, and the ops that differ."""

import os
import subprocess
import sys
import types

import numpy as np
import pytest

import minibert
from minibert import backend


@pytest.fixture(autouse=True)
def restore_backend():
    name = backend.get_backend()
    yield
    backend.set_backend(name)


@pytest.mark.skipif(os.environ.get("MINIBERT_BACKEND", "numpy") != "numpy", reason="MINIBERT_BACKEND chose another")
def test_default_is_numpy():
    assert backend.get_backend() == "numpy" and backend.xp() is np


def test_cupy_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(minibert.BackendError, match=r"cupy is not installed.*pip install 'minibert\[gpu\]'"):
        minibert.set_backend("cupy")
    assert backend.get_backend() == "numpy"  # nothing changed


def test_cupy_without_gpu_is_a_clear_error(monkeypatch):
    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(minibert.BackendError, match="no GPU is usable.*cudaErrorNoDevice"):
        minibert.set_backend("cupy")
    assert backend.get_backend() == "numpy"


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        minibert.set_backend("jax")


def test_environment_variable_cupy_without_cupy_fails_loudly():
    env = {**os.environ, "MINIBERT_BACKEND": "cupy"}
    code = "import sys; sys.modules['cupy'] = None; import minibert"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "backend 'cupy' was requested" in proc.stderr


def test_scatter_add_accumulates_repeats(xp):
    target = xp.zeros((4, 2))
    backend.scatter_add(target, xp.asarray([1, 1, 3, 1]), xp.ones((4, 2)))
    np.testing.assert_array_equal(backend.to_host(target), [[0, 0], [3, 3], [0, 0], [1, 1]])


def test_erf_keeps_dtype(xp):
    x = xp.linspace(-3, 3, 7, dtype=xp.float32)
    assert backend.erf(x).dtype == xp.float32
    assert isinstance(backend.to_host(backend.erf(x)), np.ndarray)


def test_cupy_arrays_made_before_set_backend_are_recognized(monkeypatch):
    """An array whose type comes from cupy registers CuPy on first sight, as set_backend("cupy") would."""
    FakeCupyArray = type("ndarray", (), {"__module__": "cupy._core.core"})
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1)
    cupy = types.SimpleNamespace(ndarray=FakeCupyArray, cuda=types.SimpleNamespace(runtime=runtime))
    special = types.SimpleNamespace(erf=lambda x: "cupyx erf")
    cupyx = types.SimpleNamespace(scatter_add=lambda *args: None, scipy=types.SimpleNamespace(special=special))
    for name, module in {"cupy": cupy, "cupyx": cupyx, "cupyx.scipy": cupyx.scipy, "cupyx.scipy.special": special}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(backend, "_devices", [])  # forget this test's fake afterwards
    x = FakeCupyArray()
    assert backend.array_module(np.ones(2), x) is cupy and backend.erf(x) == "cupyx erf"
    assert backend.get_backend() == "numpy"  # recognized, not made the active backend


def test_scatter_add_is_bit_identical_to_add_at():
    """Indices seen once take a plain fancy-index add; repeated ones are added in np.add.at's order:
    rows hit a few times in rounds, rows hit many times (a text's [PAD] or "the") one by one."""
    rng = np.random.default_rng(0)
    target = rng.standard_normal((50, 8)).astype(np.float32)  # not zeros: a tied table's other share
    token_types = (np.arange(128) >= 64).astype(np.int64)[None].repeat(32, 0).reshape(-1)  # 4096 rows into 2
    text_like = np.minimum(rng.zipf(1.3, 2000), 50) - 1  # a few rows hit hundreds of times, many a few times
    few_hits = rng.permutation(np.arange(50).repeat(rng.integers(1, 10, 50)))  # 1 to 9 hits per row, shuffled
    for ids in (rng.integers(0, 50, 300), rng.permutation(50)[:20], np.zeros(7, int), rng.integers(0, 3, 40),
                token_types, rng.integers(0, 9, 1000), np.r_[rng.permutation(50), rng.integers(0, 2, 500)],
                text_like, few_hits, rng.permutation(np.r_[np.arange(50).repeat(8), np.arange(50).repeat(9)])):
        for dtype in (np.float32, np.float64):
            values = (rng.standard_normal((len(ids), 8)) * rng.choice([1e-3, 1.0, 1e4], (len(ids), 1))).astype(dtype)
            expected, got = target.astype(dtype), target.astype(dtype)
            np.add.at(expected, ids, values)
            backend.scatter_add(got, ids, values)
            assert expected.tobytes() == got.tobytes(), (len(ids), dtype)
    # where a sum down axis 0 would not add row after row, or not in the target's dtype: np.add.at itself
    ids = np.r_[np.zeros(600, int), np.ones(400, int)]
    for values, table in ((rng.standard_normal(1000).astype(np.float32), target[:2, 0]),  # 1-D values
                          (rng.standard_normal((1000, 1)).astype(np.float32), target[:2, :1]),  # one column
                          (rng.standard_normal((1000, 8)), target[:2])):  # float64 into a float32 table
        expected, got = table.copy(), table.copy()
        np.add.at(expected, ids, values)
        backend.scatter_add(got, ids, values)
        assert expected.tobytes() == got.tobytes(), values.shape


def test_scatter_add_with_a_tuple_of_indices_is_bit_identical_to_add_at():
    """The MLM head's gradient goes back to (row, position) pairs: each row's padding slots repeat
    position 0, so (B, T, H) gets repeated pairs, added in np.add.at's order."""
    rng = np.random.default_rng(1)
    B, T, H, P = 6, 11, 5, 4
    positions = np.zeros((B, P), int)
    for b in range(B):
        k = rng.integers(1, P + 1)
        positions[b, :k] = np.sort(rng.choice(np.arange(1, T), k, replace=False))
    rows = np.arange(B)[:, None].repeat(P, axis=1)
    for dtype in (np.float32, np.float64):
        values = rng.standard_normal((B, P, H)).astype(dtype)
        expected, got = rng.standard_normal((B, T, H)).astype(dtype), None
        got = expected.copy()
        np.add.at(expected, (rows, positions), values)
        backend.scatter_add(got, (rows, positions), values)
        assert expected.tobytes() == got.tobytes(), dtype
    with pytest.raises(IndexError):  # out of range: np.add.at's error, not a silent wrap
        backend.scatter_add(np.zeros((2, 3, 1)), (np.array([0, 1]), np.array([0, 3])), np.ones((2, 1)))


@pytest.mark.parametrize("shape", [(32, 4, 16, 16), (64, 3), (3, 5), (7,), ()])
def test_keep_mask_draws_what_integers_draws(shape):
    """The fast path reads PCG64's raw output as 16-bit numbers: the same numbers, and the
    generator left where integers() leaves it (its next draws agree too)."""
    # The fast path is taken only in the first case; the other two check that it is NOT taken where it
    # would draw other numbers (a waiting half output, another bit generator): they fail if it were.
    philox = lambda seed: np.random.Generator(np.random.Philox(seed))  # noqa: E731  not PCG64: the plain path
    for generator, before in ((np.random.default_rng, "float"), (np.random.default_rng, "uint32"), (philox, "float")):
        fast, reference = generator(3), generator(3)
        for g in (fast, reference):  # whatever was drawn before; one uint32 leaves half a 64-bit output waiting
            g.random() if before == "float" else g.integers(0, 10, size=1, dtype=np.uint32)
        got = backend.keep_mask(fast, shape, 0.1)
        expected = reference.integers(0, 1 << 16, size=shape, dtype=np.uint16) >= 6554
        assert got.shape == expected.shape and (got == expected).all()
        assert (fast.integers(0, 1000, 20) == reference.integers(0, 1000, 20)).all()
        assert fast.random(dtype=np.float32) == reference.random(dtype=np.float32)


def test_by_rows_without_rows_to_split_calls_once():
    calls = []
    with backend.thread_settings(2, min_size=0, block=8):
        backend.by_rows(lambda *a: calls.append(a), np.zeros((0, 3)))  # no rows
        backend.by_rows(lambda *a: calls.append(a), np.zeros((6, 4)), np.zeros((5, 4)))  # rows differ
        backend.by_rows(lambda *a: calls.append(a), np.zeros((6, 4)).T)  # not contiguous
    assert len(calls) == 3 and all(len(a) >= 1 for a in calls)
