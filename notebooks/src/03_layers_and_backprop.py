# %% [markdown]
# # 3. Layers and backprop: LayerNorm, softmax and attention, GELU
#
# **Learning goal:** derive the backward pass of three layers, compare the slow, obvious
# version (build the Jacobian, loop over rows) with the vectorized one minibert uses, and
# check every gradient live against central differences.
#
# The derivations are written out in `docs/backprop.md`, with each final formula next to
# the line of code that computes it. Runs in about 5 seconds on a 2-core CPU.

# %%
import time
_start = time.perf_counter()
%matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
import minibert as mb
from minibert.layers import (layernorm_forward, layernorm_backward, softmax_forward, softmax_backward,
                             gelu_forward, gelu_backward, gelu_tanh_forward, attention_forward,
                             attention_backward, padding_mask_bias)
from minibert.layers.softmax import softmax_backward_slow
print(f"minibert {mb.__version__}, source fingerprint {mb.source_fingerprint()}")
rng = np.random.default_rng(0)

# %% [markdown]
# ## How a gradient is checked
#
# Pick a random upstream gradient `G` (the same shape as the output) and define the scalar
# `L = sum(out * G)`. The backward pass, given `G`, must return `dL/dinput`. Central
# differences estimate the same number one coordinate at a time:
# `(L(x + eps) - L(x - eps)) / (2 eps)`. In float64, a correct backward agrees to about 1e-9.
# (An all-ones `G` would hide errors that cancel across outputs.)

# %% [markdown]
# ## LayerNorm
#
# Forward: `x_hat = (x - mean) * rstd`, `out = gamma * x_hat + beta`. Every `x_hat[j]`
# depends on every `x[i]` through the mean and the variance, so the Jacobian of one row is
# a full `H x H` matrix:
# `d x_hat[j] / d x[i] = rstd * (delta_ij - 1/H - x_hat[i] x_hat[j] / H)`.
#
# The slow way builds it; minibert's way multiplies it out in closed form:
# `dx = rstd * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))`.

# %%
def layernorm_backward_slow(dout, x_hat, rstd, gamma):
    """Build each row's Jacobian explicitly and multiply: O(H^2) per row, but obviously right."""
    N, H = x_hat.shape
    dx = np.empty_like(dout)
    for n in range(N):
        J = rstd[n, 0] * (np.eye(H) - 1.0 / H - np.outer(x_hat[n], x_hat[n]) / H)  # J[j, i] = d x_hat_j / d x_i
        dx[n] = J.T @ (dout[n] * gamma)
    return dx

x, gamma, beta = rng.standard_normal((6, 10)), rng.standard_normal(10), rng.standard_normal(10)
out, cache = layernorm_forward(x, gamma, beta)
dout = rng.standard_normal(out.shape)
dx, dgamma, dbeta = layernorm_backward(dout, cache)
x_hat, rstd, _ = cache
print("slow == fast:", np.allclose(dx, layernorm_backward_slow(dout, x_hat, rstd, gamma), atol=1e-12))
print("each row of dx sums to 0:", np.abs(dx.sum(axis=1)).max())

# %%
def layernorm_fn(x, gamma, beta):
    out, cache = layernorm_forward(x, gamma, beta)
    return out, lambda d: dict(zip(["x", "gamma", "beta"], layernorm_backward(d, cache)))

mb.gradcheck(layernorm_fn, {"x": x}, {"gamma": gamma, "beta": beta})

# %% [markdown]
# ## Softmax, and attention
#
# `out = softmax(x)` has Jacobian `diag(out) - out out^T`. Applying it to `dout` needs no
# matrix: `dx = out * (dout - sum(dout * out))`.

# %%
x = rng.standard_normal((200, 64))
out, cache = softmax_forward(x)
dout = rng.standard_normal(out.shape)
for name, fn in [("slow (Jacobian per row)", softmax_backward_slow), ("vectorized", softmax_backward)]:
    t0 = time.perf_counter()
    for _ in range(5):
        result = fn(dout, cache)
    print(f"{name:25} {1000 * (time.perf_counter() - t0) / 5:7.2f} ms")
print("same result:", np.allclose(softmax_backward_slow(dout, cache), softmax_backward(dout, cache), atol=1e-12))

# %% [markdown]
# Attention puts softmax between two matrix products and adds a mask: padded *keys* get
# the most negative float, so after the softmax their weight is exactly 0 — and so is
# their gradient. Below, sequence 2 has only 3 real tokens out of 7.

# %%
B, T, H, A = 2, 7, 12, 3
mask = np.array([[1] * 7, [1, 1, 1, 0, 0, 0, 0]])
params = {"W_qkv": rng.standard_normal((H, 3 * H)) * 0.5, "b_qkv": rng.standard_normal(3 * H) * 0.1,
          "W_o": rng.standard_normal((H, H)) * 0.5, "b_o": rng.standard_normal(H) * 0.1}
x = rng.standard_normal((B, T, H))
bias = padding_mask_bias(mask, np.float64)

def attention_fn(x, W_qkv, b_qkv, W_o, b_o):
    out, cache = attention_forward(x, W_qkv, b_qkv, W_o, b_o, bias, A)
    return out, lambda d: dict(zip(["x", "W_qkv", "b_qkv", "W_o", "b_o"], attention_backward(d, cache)))

print(mb.gradcheck(attention_fn, {"x": x}, params))
out, cache = attention_forward(x, *params.values(), bias, A)
print("attention weights of sequence 2, head 1 (rows: queries, columns: keys):")
print(np.round(cache["probs"][1, 0], 3))

# %% [markdown]
# ## GELU
#
# Exact GELU is `x * Phi(x)`, Phi the standard normal CDF; its derivative is
# `Phi(x) + x * phi(x)`. The tanh form approximates it to within about 5e-4.

# %%
xs = np.linspace(-4, 4, 401)
exact, cache = gelu_forward(xs)
approx, _ = gelu_tanh_forward(xs)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(xs, exact, label="GELU (erf)")
axes[0].plot(xs, np.maximum(xs, 0), "--", label="ReLU, for comparison")
axes[0].plot(xs, gelu_backward(np.ones_like(xs), cache), label="derivative")
axes[0].legend(); axes[0].set_xlabel("x"); axes[0].set_title("GELU and its derivative")
axes[1].plot(xs, approx - exact)
axes[1].set_title("tanh form minus exact form"); axes[1].set_xlabel("x")
plt.show()

# %% [markdown]
# ## Every layer, and the whole model, checked at once
#
# `minibert gradcheck` on the command line prints the same table.

# %%
from minibert.selfcheck import layer_checks, model_check

for layer, errors in layer_checks().items():
    print(f"{layer:14}", "  ".join(f"{k} {v:.1e}" for k, v in errors.items()))
errors = model_check()
print(f"whole BertForPreTraining: worst of {len(errors)} tensors {max(errors.values()):.1e}")

# %% [markdown]
# **Exercise.** Break the LayerNorm backward on purpose — drop the last term,
# `x_hat * mean(dx_hat * x_hat)` — and see the gradient check catch it.

# %%
def broken_layernorm_fn(x, gamma, beta):
    out, (x_hat, rstd, g) = layernorm_forward(x, gamma, beta)
    def backward(dout):
        dx_hat = dout * g
        dx = rstd * (dx_hat - dx_hat.mean(axis=-1, keepdims=True))  # the missing term: your bug
        return {"x": dx, "gamma": (dout * x_hat).sum(axis=0), "beta": dout.sum(axis=0)}
    return out, backward

errors = mb.gradcheck(broken_layernorm_fn, {"x": rng.standard_normal((4, 8))},
                      {"gamma": rng.standard_normal(8), "beta": rng.standard_normal(8)})
assert errors["x"] > 1e-3, "the check should catch the bug"
print(errors)

# %%
print(f"This notebook ran in {time.perf_counter() - _start:.0f} s.")
