# %% [markdown]
# # 7. The same training on a GPU
#
# **Learning goal:** run minibert's unchanged code on an NVIDIA GPU through CuPy, and time
# a training step on the CPU and on the GPU.
#
# On a machine without CuPy or a GPU this notebook says so and stops cleanly (the cells
# below check `GPU` first). Runs in a few seconds on a CPU-only machine.

# %%
import time
_start = time.perf_counter()
import numpy as np
import minibert as mb
print(f"minibert {mb.__version__}, source fingerprint {mb.source_fingerprint()}")

try:
    mb.set_backend("cupy")
    GPU = True
    print("CuPy is available: running on the GPU")
except mb.BackendError as err:
    GPU = False
    print(f"No GPU here, so this notebook stops: {err}")
finally:
    mb.set_backend("numpy")

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

# %%
print(f"This notebook ran in {time.perf_counter() - _start:.0f} s.")
