"""AdamW with decoupled weight decay, the warmup-then-linear-decay schedule, and clipping
by global gradient norm: the optimizer BERT was trained with."""

from __future__ import annotations

import math

import numpy as np

from .backend import array_module, by_rows


def decays(name: str) -> bool:
    """Weight decay pulls weights toward 0 to keep them small. Biases and LayerNorm's gain and
    shift only move or scale activations, and shrinking a LayerNorm gain toward 0 would
    fight the normalization, so BERT exempts them (embedding tables are decayed)."""
    return not (name.endswith((".b", ".gamma", ".beta")) or name == "mlm.bias")


def global_norm(grads: dict) -> float:
    """sqrt of the sum of every squared gradient entry, over all tensors."""
    # the per-tensor sums are added where they are, in float64, and read once: on a GPU each
    # read is a synchronization, and one per tensor would grow with the model's depth
    squares = sum(sum_of_squares(g).astype(np.float64) for g in grads.values())
    return math.sqrt(float(squares))


def sum_of_squares(g):
    """sum(g * g) over all entries, row by row (so on every core, without a g-sized temporary)."""
    xp = array_module(g)
    if xp is not np or g.ndim < 2:  # CuPy: one kernel already
        return (g * g).sum()
    rows = g.reshape(-1, g.shape[-1])
    row_sums = xp.empty(rows.shape[0], g.dtype)
    by_rows(lambda rows, row_sums: xp.einsum("ij,ij->i", rows, rows, out=row_sums), rows, row_sums)
    return row_sums.sum()


def clip_by_global_norm(grads: dict, max_norm: float) -> float:
    """Scale every gradient by max_norm / norm when norm > max_norm (in place). Returns the norm before clipping.

    One factor for all tensors keeps the update's direction; only its length is capped.
    """
    norm = global_norm(grads)
    if max_norm is not None and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads.values():
            by_rows(lambda g: array_module(g).multiply(g, scale, out=g), g)  # g *= scale
    return norm


def linear_warmup_decay(step: int, peak_lr: float, warmup_steps: int, total_steps: int) -> float:
    """The learning rate for update number `step` (1-based): a linear climb to peak_lr over
    warmup_steps, then a linear fall to 0 at total_steps (Hugging Face's form; google's decay
    line starts at step 0 instead of at the end of warmup)."""
    if warmup_steps > 0 and step <= warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


class AdamW:
    """m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)     (weight decay only where decays(name))

    m_hat, v_hat = m / (1 - b1^t), v / (1 - b2^t) with bias_correction (the default, as in
    PyTorch and Hugging Face); m and v themselves without it (google's BERT optimizer, which
    Devlin called "mostly an oversight"). The state is a dict keyed like the parameters.
    """

    def __init__(self, params: dict, weight_decay: float = 0.01, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-6, bias_correction: bool = True):
        self.weight_decay, self.beta1, self.beta2, self.eps = weight_decay, beta1, beta2, eps
        self.bias_correction = bias_correction
        xp = array_module(*params.values())
        self.step_count = 0
        self.m = {name: xp.zeros_like(p) for name, p in params.items()}
        self.v = {name: xp.zeros_like(p) for name, p in params.items()}

    def step(self, params: dict, grads: dict, lr: float) -> None:
        """Update params in place from grads (same keys)."""
        if grads.keys() != params.keys():
            raise KeyError(f"gradients and parameters differ in keys: {sorted(set(grads) ^ set(params))[:3]}")
        self.step_count += 1
        t, b1, b2 = self.step_count, self.beta1, self.beta2
        c1 = 1.0 - b1**t if self.bias_correction else 1.0
        c2 = 1.0 - b2**t if self.bias_correction else 1.0
        for name, p in params.items():
            decay = self.weight_decay if decays(name) else 0.0

            def adamw(p, g, m, v):  # one block of rows, in place; the constants folded as PyTorch folds them
                if decay:
                    p *= 1.0 - lr * decay  # p - lr * decay * p: the decay term, applied first
                m *= b1
                m += (1.0 - b1) * g
                v *= b2
                v += (1.0 - b2) * (g * g)
                denom = array_module(v).sqrt(v)
                denom *= 1.0 / math.sqrt(c2)
                denom += self.eps  # sqrt(v_hat) + eps
                update = m / denom
                update *= lr / c1  # lr * m_hat / (sqrt(v_hat) + eps)
                p -= update

            by_rows(adamw, p, grads[name], self.m[name], self.v[name])

    def state_dict(self) -> dict:
        """Arrays for a safetensors file: "m.<name>", "v.<name>"; the step count goes elsewhere."""
        return {**{f"m.{k}": a for k, a in self.m.items()}, **{f"v.{k}": a for k, a in self.v.items()}}

    def load_state_dict(self, arrays: dict, step_count: int) -> None:
        xp = array_module(*self.m.values())
        for k in self.m:
            self.m[k] = xp.asarray(arrays[f"m.{k}"], dtype=self.m[k].dtype)
            self.v[k] = xp.asarray(arrays[f"v.{k}"], dtype=self.v[k].dtype)
        self.step_count = step_count
