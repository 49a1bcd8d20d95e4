"""The GPU code path, on every machine: minibert on a strict stand-in for CuPy (strict_device.py).

The stand-in refuses every implicit move to the host, as CuPy does, and counts the explicit
ones. On it: every layer's float64 gradient check, the whole model's gradients (equal to
NumPy's, bit for bit), the number of host transfers in one training step, and the pieces
of benchmarks/gpu_check.py that need no GPU.
"""

import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from minibert import BertConfig, BertForPreTraining, backend, selfcheck
from minibert.gradcheck import gradcheck
from minibert.layers import dropout_forward
from minibert.optim import AdamW, clip_by_global_norm

from . import strict_device as sd
from .conftest import CUPY, assert_gradcheck
from .test_model import ODD, make_batch

ROOT = Path(__file__).resolve().parent.parent
STRICT = backend.DeviceModule("strict", sd, sd.ndarray, sd.scatter_add, sd.erf)  # as CuPy registers
MAX_TRANSFERS_PER_STEP = 1  # the global gradient norm, which clipping compares on the host


@pytest.fixture
def on_double():
    """The stand-in is the active backend for one test; the previous backend afterwards."""
    previous = backend.get_backend()
    backend.use_device_module(STRICT)
    sd.reset_transfers()
    yield sd
    backend.set_backend(previous)


# ---------------------------------------------------------------- the stand-in itself
def test_the_double_refuses_implicit_host_conversion():
    sd.reset_transfers()  # counted from here, whatever ran before
    x = sd.asarray(np.arange(6.0).reshape(2, 3))
    host = np.ones(3)
    message = "Implicit conversion to a NumPy array is not allowed"
    for implicit in (lambda: np.asarray(x), lambda: np.array([x, x]), lambda: np.float32(x),
                     lambda: np.add(x, host), lambda: host + x, lambda: x * host, lambda: np.linalg.norm(x)):
        with pytest.raises(TypeError):
            implicit()
    with pytest.raises(TypeError, match=message):
        np.asarray(x)
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        np.add(x, host)
    assert sd.transfers() == 0  # nothing reached the host
    # what CuPy allows: device with device, Python and NumPy scalars, NumPy's ufuncs on device arrays
    assert isinstance(x + np.float64(2.0) * x - 1, sd.ndarray) and isinstance(np.exp(x), sd.ndarray)
    total = x.sum()
    assert isinstance(total, sd.ndarray) and total.shape == ()  # a 0-d device array, not a NumPy scalar
    assert sd.transfers() == 0


def test_the_double_counts_every_explicit_host_transfer():
    x = sd.asarray(np.arange(6.0).reshape(2, 3))
    sd.reset_transfers()
    assert isinstance(x.get(), np.ndarray) and isinstance(sd.asnumpy(x), np.ndarray)
    assert float(x.sum()) == 15.0 and int(x.max()) == 5 and bool(x.min() == 0) and x[1, 2].item() == 5.0
    assert x.tolist()[0] == [0.0, 1.0, 2.0]
    assert x[x > 2].shape == (3,)  # the result's size is read back from the device
    assert sd.transfer_log() == {"get": 2, "float": 1, "int": 1, "bool": 1, "item": 1, "tolist": 1, "boolean index": 1}


def test_backend_recognizes_the_double_as_it_recognizes_cupy(on_double):
    x = backend.to_device(np.arange(4.0))
    assert isinstance(x, sd.ndarray) and backend.array_module(x) is sd and backend.get_backend() == "strict"
    assert isinstance(backend.erf(x), sd.ndarray) and isinstance(backend.default_rng(0), sd.Generator)
    host = backend.to_host(x)
    assert isinstance(host, np.ndarray) and sd.transfers() == 1
    backend.set_backend("numpy")  # its arrays stay recognized, as CuPy's do once registered
    assert backend.array_module(np.ones(2), x) is sd and backend.array_module(np.ones(2)) is np
    with pytest.raises(ValueError, match="unknown backend 'strict'"):
        backend.set_backend("strict")  # a test-only module: not reachable by name (CLI, MINIBERT_BACKEND)


def test_dropout_with_a_host_rng_on_the_device_is_a_clear_error(on_double):
    x = sd.ones((2, 3))
    with pytest.raises(TypeError, match="backend.default_rng"):
        dropout_forward(x, 0.5, True, np.random.default_rng(0))
    out, mask = dropout_forward(x, 0.5, True, backend.default_rng(0))
    assert isinstance(out, sd.ndarray) and isinstance(mask, sd.ndarray)


# ---------------------------------------------------------------- gradient checks on the double
class _HostRngOnDevice:
    """numpy.random.default_rng(seed) whose draws are handed to the device: the same numbers."""

    def __init__(self, seed):
        self._rng = np.random.default_rng(seed)

    def standard_normal(self, *args, **kwargs):
        return sd.asarray(self._rng.standard_normal(*args, **kwargs))

    def integers(self, *args, **kwargs):
        return sd.asarray(self._rng.integers(*args, **kwargs))

    def random(self, *args, **kwargs):
        return sd.asarray(self._rng.random(*args, **kwargs))


class _NumpyOnDevice:
    """numpy as selfcheck's cases use it, but making their arrays on the double."""

    random = types.SimpleNamespace(default_rng=_HostRngOnDevice)

    @staticmethod
    def array(a, dtype=None):
        return sd.asarray(np.array(a, dtype))

    def __getattr__(self, name):  # dtypes and anything else: numpy's own
        return getattr(np, name)


def test_every_layer_gradcheck_on_the_double(on_double, monkeypatch):
    """selfcheck's layer cases (`minibert gradcheck`), built on the double: every input, output and
    gradient must be a device array (and ids, masks and labels are: a host one would raise)."""
    backend.set_backend("numpy")
    on_host = selfcheck.layer_checks()
    backend.use_device_module(STRICT)
    seen = set()

    def recording_gradcheck(fn, inputs, params=None, **kwargs):
        seen.update(type(a) for a in {**inputs, **(params or {})}.values())

        def recorded(**arrays):
            out, backward = fn(**arrays)
            seen.add(type(out))

            def back(dout):
                grads = backward(dout)
                seen.update(type(g) for g in grads.values())
                return grads
            return out, back
        return gradcheck(recorded, inputs, params, **kwargs)

    monkeypatch.setattr(selfcheck, "np", _NumpyOnDevice())
    monkeypatch.setattr(selfcheck, "gradcheck", recording_gradcheck)
    on_device = selfcheck.layer_checks()
    assert seen == {sd.ndarray}
    assert {k: set(v) for k, v in on_device.items()} == {k: set(v) for k, v in on_host.items()}
    for layer, errors in on_device.items():
        assert_gradcheck(errors, 1e-6)


@pytest.mark.parametrize("act", ["gelu", "gelu_new"])
def test_whole_model_gradients_on_the_double_equal_numpys(on_double, act):
    """No dropout, so both runs do the same float64 arithmetic: equal bit for bit."""
    batch = make_batch(np.random.default_rng(5), B=3, T=9, P=3)

    def loss_and_grads():
        model = BertForPreTraining(ODD.replace(hidden_act=act), seed=3, dtype=np.float64)
        out = model.forward(batch)
        return model, backend.to_host(out.loss), {k: backend.to_host(g) for k, g in model.backward().items()}

    backend.set_backend("numpy")
    _, ref_loss, ref = loss_and_grads()
    backend.use_device_module(STRICT)
    model, loss, grads = loss_and_grads()
    assert all(isinstance(p, sd.ndarray) for p in model.params.values())
    assert loss == ref_loss and grads.keys() == ref.keys() == model.params.keys()
    for name in ref:
        np.testing.assert_array_equal(grads[name], ref[name], err_msg=name)


def test_whole_model_gradcheck_on_the_double_with_dropout(on_double):
    model = BertForPreTraining(ODD, seed=3, dtype=np.float64)
    batch = make_batch(np.random.default_rng(11), B=3, T=7, P=3)

    def fn(**params):
        out = model.forward(batch, training=True, rng=backend.default_rng(7))  # the same masks every call
        return out.loss, lambda d: {k: g * d for k, g in model.backward().items()}

    errors = gradcheck(fn, {}, model.params, max_coords=8, seed=1)
    assert set(errors) == set(model.params)
    assert_gradcheck(errors, 1e-5)


# ---------------------------------------------------------------- host transfers per step
def step_transfers(num_layers: int, batch_on_device: bool = False) -> dict:
    """Host transfers, by kind, in one training step of a BertForPreTraining on the double. The input
    checks read nothing back while the batch is on the host (as collate makes it); one read per
    checked tensor when it was moved to the device first (as benchmarks/gpu_check.py does)."""
    config = BertConfig(vocab_size=50, hidden_size=12, num_hidden_layers=num_layers, num_attention_heads=3,
                        intermediate_size=20, type_vocab_size=3, max_position_embeddings=24)
    model = BertForPreTraining(config)
    optimizer = AdamW(model.params)
    batch = make_batch(np.random.default_rng(0), B=3, T=10, P=3)  # host arrays, as the data pipeline makes them
    if batch_on_device:
        batch = {k: backend.to_device(v) for k, v in batch.items()}
    sd.reset_transfers()
    model.forward(batch, training=True, rng=backend.default_rng(0))
    grads = model.backward()
    clip_by_global_norm(grads, 1.0)
    optimizer.step(model.params, grads, 1e-3)
    return sd.transfer_log()


def test_host_transfers_per_training_step_do_not_grow_with_depth(on_double):
    """Each transfer is a synchronization on a GPU; one per layer or per tensor would grow with depth."""
    counts = {layers: step_transfers(layers) for layers in (1, 2, 4)}
    print(f"\nhost transfers per training step (1, 2, 4 layers): {counts}")
    assert counts[1] == counts[2] == counts[4], counts
    assert 0 < sum(counts[1].values()) <= MAX_TRANSFERS_PER_STEP, counts[1]


# ---------------------------------------------------------------- benchmarks/gpu_check.py
@pytest.mark.skipif(CUPY is not None or shutil.which("nvidia-smi") is not None,
                    reason="this machine has a GPU: gpu_check.py would run for real")
def test_gpu_check_without_a_gpu_does_nothing(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", str(out)], cwd=ROOT, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no GPU: nothing to run"
    assert not out.exists()


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_check

    return gpu_check


def test_gpu_check_times_the_real_minibert_step_on_the_double(on_double, gpu_check):
    V = 100
    batch = gpu_check.make_batch(np.random.default_rng(0), 2, 12, 3, V)
    step = gpu_check.minibert_device_stepper("tiny", batch, V)
    assert sd.transfers() == 0  # building the model and moving the batch read nothing back
    median = gpu_check.median_times({"minibert": step}, sync=lambda: None, warmup=1, rounds=2)
    assert median["minibert"] > 0
    # three steps, each with the reads of a real training step: it ran on the double
    assert sd.transfers() == 3 * sum(step_transfers(2, batch_on_device=True).values())


def test_gpu_check_writes_its_table(tmp_path, gpu_check):
    run = {"command": "python -m pytest", "returncode": 0, "seconds": 1.0, "tail": ["1 passed"]}
    row = {"config": "base", "batch": 32, "length": 512, "predictions": 80, "minibert_ms": 250.0, "torch_ms": 200.0,
           "ratio": 1.25}
    gpu_check.write_results(tmp_path, {"device": "a GPU", "date": "today", "versions": {"cupy": "14"}, "rounds": 10,
                                       "warmup": 3, "tests": run, "pretrain": run, "steps": [row]})
    assert "| base | 32 x 512 | 250.0 | 200.0 | 1.25 |" in (tmp_path / "results.md").read_text()
    assert gpu_check.format_row(row).split() == ["base", "32", "x", "512", "250.0", "200.0", "1.25"]
    assert (tmp_path / "results.json").exists()


def test_gpu_check_stops_a_phase_that_outruns_its_time_and_keeps_its_output(tmp_path, gpu_check):
    """The GPU machine is lent for minutes: a hung test suite must not take the benchmark with it."""
    cmd = [sys.executable, "-u", "-c", "import time; print('started'); time.sleep(30)"]
    r = gpu_check.run_logged(cmd, tmp_path / "log.txt", timeout=1)
    assert r["returncode"] == "timeout after 1 s" and r["seconds"] < 20
    assert r["tail"] == ["started"] and (tmp_path / "log.txt").read_text().strip() == "started"
    gpu_check.write_results(tmp_path, {"device": "a GPU", "date": "today", "versions": {}, "rounds": 1, "warmup": 1,
                                       "tests": r})  # a partial result: no pretrain, no steps yet
    assert "exit status timeout after 1 s" in (tmp_path / "results.md").read_text()


# ---------------------------------------------------------------- what users run, on the double
def test_pretrain_resume_plots_predict_finetune_and_export_run_on_the_double(on_double, tmp_path, monkeypatch):
    """The commands' code paths with every array on the strict double: any hidden host conversion fails."""
    from minibert.finetune import FinetuneConfig, answer, finetune
    from minibert.predict import fill_mask, next_sentence_probability
    from minibert.runs import load_run
    from minibert.train import PretrainConfig, pretrain

    monkeypatch.setattr(backend, "set_backend", lambda name: None)  # the runs ask for "numpy": keep the double
    quiet = dict(progress=False, echo=lambda *a: None)
    cfg = PretrainConfig(out=str(tmp_path / "pre"), num_documents=60, steps=6, seq_length=32, batch_size=8,
                         eval_batches=1, eval_interval=3, checkpoint_interval=3, log_interval=2, seed=1)
    part = pretrain(cfg, on_step=lambda step, stop: stop() if step == 4 else None, **quiet)
    assert part.interrupted and part.step == 4
    done = pretrain(resume=cfg.out, **quiet)  # resume, then the plots
    assert done.step == 6 and (tmp_path / "pre" / "attention.png").is_file()
    run = load_run(cfg.out)
    assert isinstance(run.model.params["embeddings.word"], sd.ndarray)
    assert fill_mask(run.model, run.tokenizer, "Oslo is a city in [MASK].", top_k=2)[0]
    assert 0.0 <= next_sentence_probability(run.model, run.tokenizer, "Oslo is a city.", "It has a harbor.") <= 1.0
    run.model.save_pretrained(tmp_path / "hf", run.tokenizer)
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    for task in ("qa", "classify"):
        result = finetune(FinetuneConfig(task=task, init=cfg.out, out=str(tmp_path / task), num_examples=60, steps=3,
                                         batch_size=4, seq_length=48, eval_interval=3, log_interval=1), **quiet)
        assert result["step"] == 3 and isinstance(result["model"].params["embeddings.word"], sd.ndarray)
    qa = load_run(tmp_path / "qa")
    assert isinstance(answer(qa.model, qa.tokenizer, "Where does Anna live?", "Anna lives in Oslo."), str)
