# %% [markdown]
# # 3. Layers and backprop: LayerNorm, softmax and attention, GELU
#
# **Learning goal:** derive the backward pass of three layers, compare the slow, obvious
# version (build the Jacobian, loop over rows) with the vectorized one minibert uses, and
# check every gradient live against central differences.
#
# The derivations are written out in `docs/backprop.md`, with each final formula next to
# the line of code that computes it. Runs in a few seconds on a 2-core CPU.

# %%
import time
_start = time.perf_counter()
import minibert as mb  # before numpy: OpenBLAS reads its thread settings once, as numpy loads it (README, Speed)
%matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
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
# `(L(x + eps) - L(x - eps)) / (2 eps)`. In float64, a correct backward of one layer agrees
# to about 2e-9 or better; over the whole model the worst tensor is near 1e-8 (below).
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
# Attention puts softmax between two matrix products and adds a mask to the scores of
# padded *keys*. minibert adds the most negative float of the dtype (Hugging Face's choice;
# google's code adds -10000). Either way exp() of a padded score underflows to 0, so after
# the softmax a padded key's weight is exactly 0, and so is its gradient. Below, sequence 2
# has only 3 real tokens out of 7.

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
# Exact GELU is `x * Phi(x)`, Phi the standard normal CDF. Its derivative follows from the
# product rule and `Phi' = phi`, the standard normal density `exp(-x^2/2) / sqrt(2 pi)`:
# `d/dx [x Phi(x)] = Phi(x) + x * phi(x)`.
#
# Which GELU is BERT's? Google's first release used this exact (erf) form, and so does
# Hugging Face's `"gelu"` (the one minibert uses); google's later code and Hugging Face's
# `"gelu_new"` use the tanh form `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`. The
# right panel shows how far apart they are: at most about 5e-4.

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

# %% [markdown]
# ## Your turn: five backward passes
#
# Each function below takes `(dout, cache)` exactly as minibert's does: `cache` is what
# minibert's forward returned (print it to see what is inside). The check compares your
# gradients with minibert's and with central differences, on edge cases too: a sequence of
# length 1, a row with one real token, float64 and float32 inputs. Until you write a
# function, its check says "not solved yet"; the derivations are above and in
# `docs/backprop.md`.
#
# **Exercise 1.** Softmax: `cache` is the output `out` of the forward.

# %% tags=["exercise"]
from minibert import exercises

def softmax_backward(dout, cache):
    """dout: (N..., C) -> dx: (N..., C)"""
    ### BEGIN SOLUTION
    out = cache
    return out * (dout - (dout * out).sum(axis=-1, keepdims=True))
    ### END SOLUTION

# %% tags=["check"]
exercises.check("softmax_backward", softmax_backward)

# %% [markdown]
# **Exercise 2.** LayerNorm: `cache` is `(x_hat, rstd, gamma)`; return `(dx, dgamma, dbeta)`.

# %% tags=["exercise"]
def layernorm_backward(dout, cache):
    """dout: (N..., H) -> dx: (N..., H), dgamma: (H,), dbeta: (H,)"""
    ### BEGIN SOLUTION
    x_hat, rstd, gamma = cache
    H = x_hat.shape[-1]
    dx_hat = dout * gamma
    dx = rstd * (dx_hat - dx_hat.mean(axis=-1, keepdims=True)
                 - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True))
    return dx, (dout * x_hat).reshape(-1, H).sum(axis=0), dout.reshape(-1, H).sum(axis=0)
    ### END SOLUTION

# %% tags=["check"]
exercises.check("layernorm_backward", layernorm_backward)

# %% [markdown]
# **Exercise 3.** GELU: `cache` is `(x, Phi(x))`. The normal density is
# `phi(x) = exp(-x^2 / 2) / sqrt(2 pi)`.

# %% tags=["exercise"]
def gelu_backward(dout, cache):
    """dout: (N...) -> dx: (N...)"""
    ### BEGIN SOLUTION
    x, cdf = cache
    return dout * (cdf + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi))
    ### END SOLUTION

# %% tags=["check"]
exercises.check("gelu_backward", gelu_backward)

# %% [markdown]
# **Exercise 4.** Cross-entropy with per-row weights (a weight of 0 ignores the row, as
# unmasked positions are ignored by the MLM loss): `cache` is
# `(softmax of the logits, labels, weights, sum of the weights)`, and `dloss` a number.

# %% tags=["exercise"]
def cross_entropy_backward(dloss, cache):
    """dloss: () -> dlogits: (N, C)"""
    ### BEGIN SOLUTION
    probs, labels, weights, denom = cache
    dlogits = probs.copy()
    dlogits[np.arange(len(labels)), labels] -= 1.0
    return dlogits * (weights * (dloss / denom))[:, None]
    ### END SOLUTION

# %% tags=["check"]
exercises.check("cross_entropy_backward", cross_entropy_backward)

# %% [markdown]
# **Exercise 5.** Attention, the longest one: `cache` is a dict (`q`, `k`, `v`, `probs`, and
# the caches of the two projections and of dropout). Use `linear_backward` for the
# projections and your own softmax backward; go through the forward in reverse.

# %% tags=["exercise"]
from minibert.layers.linear import linear_backward
from minibert.layers.dropout import dropout_backward

def attention_backward(dout, cache):
    """dout: (B, T, H) -> dx, dW_qkv, db_qkv, dW_o, db_o"""
    ### BEGIN SOLUTION
    q, k, v, probs = cache["q"], cache["k"], cache["v"], cache["probs"]
    B, A, T, D = q.shape
    dctx, dW_o, db_o = linear_backward(dout, cache["out"])
    dctx = dctx.reshape(B, T, A, D).transpose(0, 2, 1, 3)
    dropped = probs if cache["dropout"] is None else probs * cache["dropout"]
    dv = dropped.transpose(0, 1, 3, 2) @ dctx
    dprobs = dropout_backward(dctx @ v.transpose(0, 1, 3, 2), cache["dropout"])
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True)) / np.sqrt(D)
    dq, dk = dscores @ k, dscores.transpose(0, 1, 3, 2) @ q
    dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(B, T, 3 * A * D)
    dx, dW_qkv, db_qkv = linear_backward(dqkv, cache["qkv"])
    return dx, dW_qkv, db_qkv, dW_o, db_o
    ### END SOLUTION

# %% tags=["check"]
exercises.check("attention_backward", attention_backward)

# %% [markdown]
# ## Break it: two bugs worth seeing once
#
# **Without 1/sqrt(D).** The score `q . k` of two random vectors with unit-variance
# entries has variance `D`: with `D = 64` a standard deviation of 8. The softmax of such
# scores puts most of the weight on one key, and its gradient shrinks, since
# `out * (dout - ...)` is near 0 wherever `out` is near 0 or 1. Below, 32 queries over 32
# keys: with the scaling, the largest weight of a row is about 0.17 on average. Set
# `SCALE = 1.0`, run the cell again, and it becomes about 0.8, while the mean gradient
# falls to about a third.

# %%
from minibert import layers  # minibert's own layers: the exercises above reuse their names

SCALE = 1 / np.sqrt(64)  # set to 1.0 to break it
q, k = np.random.default_rng(1).standard_normal((2, 32, 64))
probs, cache = layers.softmax_forward(SCALE * q @ k.T)
dx = layers.softmax_backward(np.random.default_rng(2).standard_normal(probs.shape), cache)
print(f"scale {SCALE:.3f}: largest weight per row, mean {probs.max(axis=1).mean():.2f}; "
      f"mean |gradient| {np.abs(dx).mean():.4f}")

# %% [markdown]
# **`+=` on a fancy index.** The embedding backward adds each position's gradient into the
# row of its token. With NumPy, `dE[ids] += dout` is *not* that: when a token occurs twice,
# the second write replaces the first instead of adding to it. `np.add.at` adds. Below,
# the gradient check's relative error is about 3e-10; set `FANCY = True`, run again, and
# it jumps to about 0.2: token 3's row got only one of its two gradients.

# %%
FANCY = False  # set to True to break it
ids = np.array([[3, 1, 3, 0]])  # token 3 occurs twice
E = np.random.default_rng(3).standard_normal((5, 4))

def embedding_fn(E):
    def backward(dout):
        dE = np.zeros_like(E)
        if FANCY:
            dE[ids.reshape(-1)] += dout.reshape(-1, 4)
        else:
            np.add.at(dE, ids.reshape(-1), dout.reshape(-1, 4))
        return {"E": dE}
    return E[ids], backward

print(mb.gradcheck(embedding_fn, {}, {"E": E}))

# %%
print(f"This notebook ran in {time.perf_counter() - _start:.0f} s.")
