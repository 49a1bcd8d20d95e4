"""Multi-head self-attention with a padding mask on the keys, and optionally a causal one."""

import math

from ..backend import array_module, matmul  # matmul(a, b, out) is a @ b (into out), on every core of a CPU
from .dropout import dropout_backward, dropout_forward
from .linear import linear_backward, linear_forward
from .softmax import softmax_backward, softmax_forward


def padding_mask_bias(attention_mask, dtype):
    """The additive mask: 0 where a key is a real token, the most negative float where it is padding.

    attention_mask: (B, T), 1 real / 0 pad   ->   bias: (B, 1, 1, T), broadcast over heads and queries

    With the most negative float (Hugging Face's choice; google adds -10000) exp() of a
    padded score underflows to exactly 0, so padding gets exactly zero weight and zero
    gradient, whatever the scores are.
    """
    xp = array_module(attention_mask)
    bias = (attention_mask == 0).astype(dtype) * xp.finfo(dtype).min
    return bias[:, None, None, :]


def causal_mask_bias(attention_mask, dtype):
    """The padding mask plus a causal one: query t may read key s only if s <= t and s is real.

    attention_mask: (B, T), 1 real / 0 pad   ->   bias: (B, 1, T, T), broadcast over heads

    A left-to-right language model (GPT; Hugging Face's `is_decoder=True`) must not see the
    token it is asked to predict, so every key after the query is blocked like padding: the
    same most negative float, hence exactly zero weight and zero gradient. One blocked/not
    decision per entry, not a sum of two biases: min + min overflows to -inf.
    """
    xp = array_module(attention_mask)
    T = attention_mask.shape[1]
    future = xp.arange(T)[None, :] > xp.arange(T)[:, None]  # (T, T): [t, s] True where key s comes after query t
    padded = (attention_mask == 0)[:, None, :]  # (B, 1, T): padded keys, for every query
    blocked = future[None] | padded  # (B, T, T)
    bias = blocked.astype(dtype) * xp.finfo(dtype).min
    return bias[:, None, :, :]


def attention_forward(x, W_qkv, b_qkv, W_o, b_o, mask_bias, num_heads, p=0.0, training=False, rng=None, mask=None):
    """Self-attention: softmax(Q K^T / sqrt(D) + mask_bias) V, heads concatenated, then projected.

    x: (B, T, H)   W_qkv: (H, 3H)   b_qkv: (3H,)   W_o: (H, H)   b_o: (H,)
    mask_bias: (B, 1, 1, T) from padding_mask_bias, or (B, 1, T, T) from causal_mask_bias
    ->   out: (B, T, H)

    Q, K and V come from one matrix product with the three projections side by side
    (columns [Q | K | V]); p is the dropout on the attention probabilities, and `mask`
    an optional fixed dropout mask of shape (B, A, T, T).
    """
    xp = array_module(x)
    B, T, H = x.shape
    A = num_heads
    D = H // A
    qkv, qkv_cache = linear_forward(x, W_qkv, b_qkv)  # (B, T, 3H)
    qkv = qkv.reshape(B, T, 3, A, D).transpose(2, 0, 3, 1, 4)  # (3, B, A, T, D)
    q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, A, T, D)
    scores = matmul(q, k.transpose(0, 1, 3, 2))  # (B, A, T, T): query t attends to key s
    scores *= 1.0 / math.sqrt(D)
    scores += mask_bias  # padded (and, if causal, future) keys -> -inf-like
    probs, _ = softmax_forward(scores)  # (B, A, T, T), each row sums to 1
    probs_dropped, drop_cache = dropout_forward(probs, p, training, rng, mask)
    ctx = xp.empty((B, T, A, D), v.dtype)  # heads side by side again; every entry is written below,
    matmul(probs_dropped, v, out=ctx.transpose(0, 2, 1, 3))  # ctx = probs_dropped @ v, (B, A, T, D) per head
    ctx = ctx.reshape(B, T, H)
    out, out_cache = linear_forward(ctx, W_o, b_o)  # (B, T, H)
    cache = {
        "qkv": qkv_cache,  # (x, W_qkv) for the input projection
        "q": q, "k": k, "v": v,
        "probs": probs,  # softmax output: the softmax backward is written in it
        "dropout": drop_cache,  # the dropout mask, or None
        "out": out_cache,  # (ctx, W_o) for the output projection
    }
    return out, cache


def attention_backward(dout, cache):
    """Reverse of the forward, line by line.

    dout: (B, T, H)   ->   dx: (B, T, H), dW_qkv: (H, 3H), db_qkv: (3H,), dW_o: (H, H), db_o: (H,)
    """
    xp = array_module(dout)
    q, k, v, probs = cache["q"], cache["k"], cache["v"], cache["probs"]
    B, A, T, D = q.shape
    H = A * D
    # forward: out = ctx @ W_o + b_o
    dctx, dW_o, db_o = linear_backward(dout, cache["out"])
    dctx = dctx.reshape(B, T, A, D).transpose(0, 2, 1, 3)  # (B, A, T, D)
    # forward: ctx = probs_dropped @ v
    probs_dropped = probs if cache["dropout"] is None else probs * cache["dropout"]
    # dq, dk, dv: views into dqkv, laid out as the forward's qkv (B, T, 3, A, D), so that the three
    # products below fill the projection's gradient in place (undoing the head split costs no copy)
    dqkv = xp.empty((B, T, 3, A, D), dout.dtype)
    dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)  # each (B, A, T, D), still empty
    dprobs_dropped = matmul(dctx, v.transpose(0, 1, 3, 2))  # (B, A, T, T)
    matmul(probs_dropped.transpose(0, 1, 3, 2), dctx, out=dv)  # dv = probs_dropped^T @ dctx
    # forward: probs_dropped = dropout(probs); probs = softmax(scores)
    dprobs = dropout_backward(dprobs_dropped, cache["dropout"])
    dscores = softmax_backward(dprobs, probs)  # (B, A, T, T); blocked keys get exactly 0
    # forward: scores = q @ k^T / sqrt(D) + mask_bias (the mask is a constant: no new term, causal or not)
    dscores *= 1.0 / math.sqrt(D)
    matmul(dscores, k, out=dq)  # dq = dscores @ k
    matmul(dscores.transpose(0, 1, 3, 2), q, out=dk)  # dk = dscores^T @ q
    # forward: q, k, v = split of qkv (their slots above already undo the head split and transpose)
    dx, dW_qkv, db_qkv = linear_backward(dqkv.reshape(B, T, 3 * H), cache["qkv"])
    return dx, dW_qkv, db_qkv, dW_o, db_o
