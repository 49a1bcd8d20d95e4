# %% [markdown]
# # 7. The same training on a GPU
#
# **Learning goal:** see what moving minibert to a GPU changes and what it does not: which
# arrays live on the device, why every read back to the host matters, and how a CPU-only test
# catches one that should not be there; then, where a GPU exists, run the unchanged code on it
# through CuPy and time a training step on the CPU and on the GPU.
#
# The first part runs on any machine, on a strict stand-in for CuPy. The GPU cells check
# `GPU` first and say "skipped" on a machine without CuPy or a GPU. Runs in a few seconds
# on a CPU-only machine.

# %%
import time
_start = time.perf_counter()
import minibert as mb  # before numpy: OpenBLAS reads its thread settings once, as numpy loads it (README, Speed)
import numpy as np
print(f"minibert {mb.__version__}, source fingerprint {mb.source_fingerprint()}")

try:
    mb.set_backend("cupy")
    GPU = True
    print("CuPy is available: running on the GPU")
except mb.BackendError as err:
    GPU = False
    print(f"No GPU here, so the GPU cells below are skipped: {err}")
finally:
    mb.set_backend("numpy")

# %% [markdown]
# ## On any machine: the device path on a stand-in for CuPy
#
# CI machines have no GPU, so minibert's tests run the device code path on a strict stand-in
# for CuPy (`tests/strict_device.py` in the repository): its arrays wrap NumPy arrays, but
# refuse to turn into NumPy arrays implicitly wherever CuPy refuses, and it counts every
# read back to the host. The backend registers it the way it registers CuPy.

# %%
import importlib.util
from pathlib import Path
from minibert import backend

candidates = [Path(mb.__file__).resolve().parents[1] / "tests" / "strict_device.py",
              Path.cwd().parent / "tests" / "strict_device.py"]
found = next((p for p in candidates if p.is_file()), None)
if found is None:
    sd = None
    print("tests/strict_device.py not found (run this notebook from a clone of the repository): part skipped")
else:
    spec = importlib.util.spec_from_file_location("strict_device", found)
    sd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sd)
    STRICT = backend.DeviceModule("strict", sd, sd.ndarray, sd.scatter_add, sd.erf)
    print("stand-in loaded from", found.relative_to(found.parents[1]))

# %% [markdown]
# **What the switch moves.** With the stand-in active, a new model's parameters are device
# arrays (drawn on the host from the seed, then copied over). Batches are built on the host
# by the data pipeline, as NumPy arrays, and `forward` copies them over. What comes out —
# the loss, the hidden states — stays on the device; `backend.to_host` is the explicit way
# back, and an implicit one (`np.asarray`) is refused, as CuPy refuses it.

# %%
def tiny_batch(V=200, B=4, T=16, P=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(5, V, (B, T)), "token_type_ids": np.zeros((B, T), np.int64),
            "attention_mask": np.ones((B, T), np.int64),
            "masked_lm_positions": np.sort(rng.choice(np.arange(1, T), (B, P), replace=True), axis=1),
            "masked_lm_labels": rng.integers(5, V, (B, P)), "masked_lm_weights": np.ones((B, P), np.float32),
            "next_sentence_label": rng.integers(0, 2, B)}

if sd is not None:
    backend.use_device_module(STRICT)
    model = mb.BertForPreTraining(mb.BertConfig.preset("tiny", vocab_size=200))
    w = model.params["embeddings.word"]
    print("a parameter:", type(w).__module__ + "." + type(w).__name__, w.shape)
    out = model.forward(tiny_batch(), training=True, rng=backend.default_rng(0))
    print("the loss:   ", type(out.loss).__module__ + "." + type(out.loss).__name__)
    try:
        np.asarray(w)
    except TypeError as err:
        print("np.asarray(parameter) is refused:", err)
    print("backend.to_host(parameter):", type(backend.to_host(w)).__name__)
    backend.set_backend("numpy")

# %% [markdown]
# **Why read-backs matter.** A GPU runs the kernels the CPU queues, while the CPU goes on
# queueing. Every read back to the host (`float(x)`, `x.item()`, `if x > 0:`, `np.asarray(x)`)
# makes the CPU wait until everything queued so far has finished; while it waits, nothing new
# is queued, and the GPU idles. How long that costs depends on the GPU and the step, but the
# number of read-backs is visible on any machine. minibert's step reads back once: the global
# gradient norm, which clipping compares with its limit. Below, that step next to a careless
# clipping that reads each gradient's norm back separately, for models of 1, 2 and 4 layers.

# %%
from minibert.optim import AdamW, clip_by_global_norm

def careless_clip(grads, max_norm):
    """The same arithmetic as clip_by_global_norm, with one read-back per gradient."""
    norm = sum(float((g * g).sum()) for g in grads.values()) ** 0.5
    if norm > max_norm:
        for g in grads.values():
            g *= max_norm / norm
    return norm

def read_backs(num_layers, clip):
    backend.use_device_module(STRICT)
    model = mb.BertForPreTraining(mb.BertConfig.preset("tiny", vocab_size=200, num_hidden_layers=num_layers))
    optimizer = AdamW(model.params)
    sd.reset_transfers()
    model.forward(tiny_batch(), training=True, rng=backend.default_rng(0))
    grads = model.backward()
    clip(grads, 1.0)
    optimizer.step(model.params, grads, 1e-3)
    backend.set_backend("numpy")
    return sd.transfers()

if sd is not None:
    for layers in (1, 2, 4):
        print(f"{layers} layer(s): minibert's step {read_backs(layers, clip_by_global_norm)} read-back(s), "
              f"with the careless clipping {read_backs(layers, careless_clip)}")

# %% [markdown]
# The careless count grows with the number of parameter tensors, so with depth. That is the
# property a CPU-only test can pin down: `tests/test_device.py` runs a training step on the
# stand-in for 1, 2 and 4 layers and fails if the count differs between them or exceeds one.
# The stand-in also fails any code that hands a device array to NumPy; the tests run every
# layer's gradient check on it, and pre-training, resume, the plots, fill-mask, fine-tuning
# and export, in every CI job.

# %% [markdown]
# ## One training step, CPU vs GPU
#
# `set_backend` decides where new parameters and batches live; the layers follow their
# inputs. The parameters are drawn on the host from the same seed, so both models start
# from identical weights.

# %%
from minibert.optim import AdamW, clip_by_global_norm

def time_step(backend, preset="mini", B=32, T=128, P=20, V=30522, steps=5):
    mb.set_backend(backend)
    model = mb.BertForPreTraining(mb.BertConfig.preset(preset, vocab_size=V))
    rng = np.random.default_rng(0)
    batch = {"input_ids": rng.integers(5, V, (B, T)), "token_type_ids": np.zeros((B, T), np.int64),
             "attention_mask": np.ones((B, T), np.int64),
             "masked_lm_positions": np.sort(rng.integers(1, T, (B, P)), axis=1),
             "masked_lm_labels": rng.integers(5, V, (B, P)), "masked_lm_weights": np.ones((B, P), np.float32),
             "next_sentence_label": rng.integers(0, 2, B)}
    opt = AdamW(model.params)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        out = model.forward(batch, training=True)
        grads = model.backward()
        clip_by_global_norm(grads, 1.0)
        opt.step(model.params, grads, 1e-4)
        float(out.loss)  # waits for the GPU to finish
        times.append(time.perf_counter() - t0)
    mb.set_backend("numpy")
    return float(np.median(times[1:]))

if GPU:
    cpu, gpu = time_step("numpy"), time_step("cupy")
    print(f"mini, batch 32 x 128: CPU {cpu:.3f} s/step, GPU {gpu:.3f} s/step ({cpu / gpu:.1f}x)")
else:
    print("skipped: no GPU")

# %% [markdown]
# ## Pre-training on the GPU
#
# The command line takes `--backend cupy`: `minibert pretrain --backend cupy`.

# %%
if GPU:
    from minibert.train import PretrainConfig, pretrain
    import shutil
    shutil.rmtree("runs/notebook-gpu", ignore_errors=True)
    result = pretrain(PretrainConfig(out="runs/notebook-gpu", steps=300, backend="cupy"), progress=False)
else:
    print("skipped: no GPU")

# %% [markdown]
# ## Recorded results from a real GPU
#
# The GPU cells above ran wherever this notebook last ran, with or without a GPU. Results
# measured on a real GPU by `benchmarks/gpu_check.py` (the test suite on CuPy, a
# pre-training run, CPU vs GPU step times) are kept in `docs/gpu-results.md`, with the device,
# the date and the command; they are shown here, labelled as recorded, when that file exists.

# %%
recorded = Path(mb.__file__).resolve().parents[1] / "docs" / "gpu-results.md"
if recorded.is_file():
    from IPython.display import Markdown, display
    display(Markdown("**Recorded, not measured by this notebook:**\n\n" + recorded.read_text()))
else:
    print("No results from a real GPU are recorded yet: no GPU has run benchmarks/gpu_check.py for this version.")

# %%
print(f"This notebook ran in {time.perf_counter() - _start:.0f} s.")
