"""The elementwise half of a step (backend.by_rows) and attention's stacks of small products (backend.matmul)
on every core: results bit-identical with threads on and off.

Each test lowers the size threshold and the block size, so the threaded path really runs on
small arrays, in many blocks whose edges fall in different rows than with one thread.
"""

import threading

import numpy as np
import pytest

from minibert import BertConfig, BertForPreTraining, backend
from minibert import layers as L
from minibert.io import load_arrays
from minibert.optim import AdamW, clip_by_global_norm, global_norm
from minibert.runs import latest_checkpoint
from minibert.train import PretrainConfig, pretrain

from . import strict_device as sd
from .test_model import make_batch
from .test_train import QUICK

ON = dict(n=2, min_size=0, block=700)  # two threads, every array threaded, blocks of a few rows
OFF = dict(n=1)  # one thread, default (large) blocks


def same(a, b):
    """Bit-identical: the same dtype, shape and bytes (so -0.0 differs from 0.0, and NaNs are compared)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_the_threaded_path_runs_every_block_once_on_two_threads():
    x = np.arange(7 * 13 * 5, dtype=np.float32).reshape(7, 13, 5)  # 91 rows of 5
    seen, names = np.zeros(91, int), set()

    def visit(x, out):
        names.add(threading.current_thread().name)
        out[...] = x
        seen[x[:, 0].astype(int) // 5] += 1

    out = np.empty_like(x)
    with backend.thread_settings(**ON):
        backend.by_rows(visit, x, out)
    assert len(names) == 2 and (seen == 1).all() and same(out, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 37, 129])  # odd row counts: blocks end mid-way differently
def test_each_threaded_op_equals_its_single_threaded_result(dtype, rows):
    rng = np.random.default_rng(rows)
    H, F, C = 24, 72, 301
    x = rng.standard_normal((rows, 3, H)).astype(dtype)
    dout = rng.standard_normal((rows, 3, H)).astype(dtype)
    f = rng.standard_normal((rows, 3, F)).astype(dtype) * 3
    df = rng.standard_normal((rows, 3, F)).astype(dtype)
    gamma, beta = rng.standard_normal(H).astype(dtype), rng.standard_normal(H).astype(dtype)
    scores = rng.standard_normal((rows, 2, 5, 7)).astype(dtype) * 4
    dscores = rng.standard_normal((rows, 2, 5, 7)).astype(dtype)
    logits = rng.standard_normal((rows, C)).astype(dtype) * 5
    labels, weights = rng.integers(0, C, rows), (rng.random(rows) < 0.8).astype(dtype)
    W, b = rng.standard_normal((H, F)).astype(dtype), rng.standard_normal(F).astype(dtype)

    def ops():
        out = {}
        out["gelu"], gelu_cache = L.gelu_forward(f)
        out["dgelu"] = L.gelu_backward(df, gelu_cache)
        out["ln"], ln_cache = L.layernorm_forward(x, gamma, beta)
        out["dln"] = L.layernorm_backward(dout, ln_cache)
        out["softmax"], sm_cache = L.softmax_forward(scores)
        out["dsoftmax"] = L.softmax_backward(dscores, sm_cache)
        out["mask"] = L.dropout_mask(np.random.default_rng(5), f.shape, 0.1, dtype)
        out["dropout"], drop_cache = L.dropout_forward(f, 0.1, True, np.random.default_rng(5))
        out["ddropout"] = L.dropout_backward(df, drop_cache)
        out["ce"], ce_cache = L.cross_entropy_forward(logits, labels, weights)
        out["dce"] = L.cross_entropy_backward(0.7, ce_cache)
        out["linear"], _ = L.linear_forward(x, W, b)
        grads = {"a.W": f.copy(), "b.b": b.copy(), "c.W": logits.copy()}
        out["norm"] = global_norm(grads)
        clip_by_global_norm(grads, 0.5)
        out.update({"clipped " + k: g for k, g in grads.items()})
        params = {"a.W": df.copy(), "b.b": b.copy(), "c.W": logits.copy() * 0.1}
        opt = AdamW(params, weight_decay=0.01)
        for step in range(3):
            opt.step(params, {k: g * (step + 1) for k, g in grads.items()}, 1e-2)
        out.update({"adamw " + k: p for k, p in params.items()})
        return out

    with backend.thread_settings(**OFF):
        single = ops()
    with backend.thread_settings(**ON):
        threaded = ops()
    for name in single:
        one, two = single[name], threaded[name]
        for a, b in zip(*((r,) if not isinstance(r, tuple) else r for r in (one, two))):  # dln is (dx, dgamma, dbeta)
            assert same(a, b), f"{name}: threaded result differs from the single-threaded one"
    for name in ("gelu", "dgelu", "ln", "softmax", "dsoftmax", "dropout", "dce"):
        assert single[name].dtype == dtype, name  # no silent float64


def _train(steps, seed=0):
    """A few steps of a tiny model with dropout on: forward, backward, clipping, AdamW."""
    config = BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.1,
                        attention_probs_dropout_prob=0.1)
    model = BertForPreTraining(config, seed=seed)
    opt = AdamW(model.params)
    rng = backend.default_rng(seed)
    for step in range(steps):
        data_rng = np.random.default_rng(step)
        batch = make_batch(data_rng, B=5, T=17, P=3, V=config.vocab_size, types=2)
        batch["input_ids"] = data_rng.integers(1, config.vocab_size, (5, 17)) * batch["attention_mask"]  # ids seen once too
        model.forward(batch, training=True, rng=rng)
        grads = model.backward()
        clip_by_global_norm(grads, 1.0)
        opt.step(model.params, grads, 1e-3)
    return model.params


def test_training_steps_are_bit_identical_with_threads_on_and_off():
    with backend.thread_settings(**OFF):
        off = _train(4)
    with backend.thread_settings(**ON):
        on = _train(4)
    for name in off:
        assert same(off[name], on[name]), name


def test_resume_with_threads_equals_an_uninterrupted_run_without(tmp_path):
    common = dict(steps=8, eval_interval=8, checkpoint_interval=4, **QUICK)
    quiet = dict(progress=False, plots=False, echo=lambda *a: None)
    with backend.thread_settings(**OFF):
        pretrain(PretrainConfig(out=str(tmp_path / "full"), **common), **quiet)
    with backend.thread_settings(**ON):
        part = pretrain(PretrainConfig(out=str(tmp_path / "part"), **common),
                        on_step=lambda step, stop: stop() if step == 5 else None, **quiet)
        assert part.interrupted and part.step == 5
        assert pretrain(resume=str(tmp_path / "part"), **quiet).step == 8
    a, _ = load_arrays(latest_checkpoint(tmp_path / "full") / "params.safetensors")
    b, _ = load_arrays(latest_checkpoint(tmp_path / "part") / "params.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert same(a[name], b[name]), name


def test_on_a_device_the_function_runs_once_on_the_whole_arrays():
    """CuPy's arrays are never split or handed to threads: the GPU is parallel already."""
    x, out = sd.asarray(np.ones((50, 7))), sd.asarray(np.zeros((50, 7)))
    calls = []
    with backend.thread_settings(**ON):
        backend.by_rows(lambda *arrays: calls.append(arrays), x, out)
    assert len(calls) == 1 and calls[0][0] is x and calls[0][1] is out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_shares_a_stack_among_threads_with_blas_on_one_thread(dtype, monkeypatch):
    """Each share runs on its own thread while BLAS is held to one thread, the products equal
    numpy's bit for bit (also written into a strided `out`), and BLAS gets its threads back."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 3, 17, 9)).astype(dtype)
    b = rng.standard_normal((5, 3, 11, 9)).astype(dtype).transpose(0, 1, 3, 2)  # a transposed view, as k^T is
    expected = np.matmul(a, b)
    before = blas_threads()
    calls, real_matmul = [], np.matmul

    def spy(x, y, out=None):
        calls.append((threading.current_thread().name, x.shape[0], blas_threads()))
        return real_matmul(x, y, out=out)

    monkeypatch.setattr(np, "matmul", spy)
    with backend.thread_settings(n=2):
        got = backend.matmul(a, b)
        slots = np.empty((5, 17, 3, 11), dtype)  # heads side by side, as attention's ctx
        backend.matmul(a, b, out=slots.transpose(0, 2, 1, 3))
    monkeypatch.setattr(np, "matmul", real_matmul)
    assert same(got, expected) and same(slots.transpose(0, 2, 1, 3), expected)
    assert len({name for name, _, _ in calls}) == 2, calls  # the calling thread and one worker
    assert sorted(rows for _, rows, _ in calls[:2]) == [2, 3]  # the stack of 5, split 2 + 3
    assert before and all(threads == [1] * len(before) for _, _, threads in calls), calls
    assert blas_threads() == before


def test_matmul_from_many_threads_at_once_gives_blas_its_threads_back():
    """BLAS's thread count is one setting for the process: concurrent callers must not leave it lowered."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((6, 2, 9, 5)), rng.standard_normal((6, 2, 5, 7))
    expected = np.matmul(a, b)
    before = blas_threads()
    with backend.thread_settings(n=2), ThreadPoolExecutor(4) as callers:
        results = list(callers.map(lambda _: backend.matmul(a, b), range(400)))
    assert all(same(r, expected) for r in results)
    assert blas_threads() == before


def test_matmul_errors_like_numpy_and_gives_blas_its_threads_back():
    from threadpoolctl import threadpool_info

    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    a, b = np.ones((4, 2, 3)), np.ones((4, 3, 5))
    with backend.thread_settings(n=2):
        with pytest.raises(ValueError):
            backend.matmul(a, b, out=np.empty((5, 2, 5)))  # one matrix too many: numpy's error, not a half-filled out
        with pytest.raises(ValueError):
            backend.matmul(a, np.ones((4, 4, 5)))  # inner dimensions differ
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == before


def test_matmul_with_one_thread_or_one_matrix_is_plain_matmul():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((1, 4, 6)), rng.standard_normal((1, 6, 3))
    with backend.thread_settings(n=2):
        assert same(backend.matmul(a, b), a @ b) and same(backend.matmul(a[0], b[0]), a[0] @ b[0])
    with backend.thread_settings(n=1):
        c = rng.standard_normal((4, 4, 6))
        assert same(backend.matmul(c, c.transpose(0, 2, 1)), c @ c.transpose(0, 2, 1))


def test_matmul_on_a_device_is_one_call_written_into_out():
    a, b = sd.asarray(np.ones((4, 2, 3))), sd.asarray(np.ones((4, 3, 5)))
    out = sd.asarray(np.zeros((4, 2, 5)))
    with backend.thread_settings(**ON):
        assert backend.matmul(a, b, out=out) is out
    assert (sd.asnumpy(out) == 3).all()
    sd.reset_transfers()  # the one copy to the host above is this test's, not the next one's


@pytest.mark.parametrize("first", ["numpy", "minibert"])
def test_threads_default_to_one_when_numpy_was_imported_first(first):
    """numpy loads OpenBLAS, which reads OPENBLAS_THREAD_TIMEOUT once: imported first, its idle threads
    spin after every product and would fight minibert's for the cores, so minibert keeps to one thread."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "MINIBERT_THREADS")}
    code = f"import {first}; import minibert, os; print(minibert.backend.threads, len(os.sched_getaffinity(0)))"
    threads, cores = map(int, subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                             check=True).stdout.split())
    assert threads == (1 if first == "numpy" else cores)
