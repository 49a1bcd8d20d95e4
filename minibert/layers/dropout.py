"""Inverted dropout: zero each element with probability p and scale the rest by 1 / (1 - p)."""

from ..backend import array_module, by_rows, keep_mask


def dropout_mask(rng, shape, p, dtype):
    """A mask already scaled: 0 with probability p, else 1 / (1 - p). Shape (N...)."""
    keep = keep_mask(rng, shape, p)  # (N...) bool
    xp = array_module(keep)
    mask = xp.empty(shape, dtype)
    by_rows(lambda keep, mask: xp.multiply(keep, 1.0 / (1.0 - p), out=mask, dtype=dtype), keep, mask)
    return mask


def dropout_forward(x, p, training, rng=None, mask=None):
    """out = x * mask, the mask scaled so the expected value of out equals x.

    Identity when not training or p == 0 (then the cache is None). Pass `mask` to reuse
    a fixed mask (gradient checks); otherwise it is drawn from `rng`.
    x: (N...) -> out: (N...)
    """
    if not training or p == 0.0:
        return x, None
    if mask is None:
        if rng is None:
            raise ValueError("dropout in training mode needs an rng (or a fixed mask)")
        mask = dropout_mask(rng, x.shape, p, x.dtype)
    if array_module(mask) is not array_module(x):
        raise TypeError("dropout: the mask is not on x's device; draw it with minibert.backend.default_rng(seed), "
                        "which makes arrays where the active backend keeps them")
    out = array_module(x).empty_like(x)
    by_rows(lambda x, mask, out: array_module(x).multiply(x, mask, out=out), x, mask, out)
    return out, mask


def dropout_backward(dout, cache):
    """Forward was out = x * mask, so dx = dout * mask (the same elements are dropped)."""
    mask = cache
    if mask is None:
        return dout
    dx = array_module(dout).empty_like(dout)
    by_rows(lambda dout, mask, dx: array_module(dout).multiply(dout, mask, out=dx), dout, mask, dx)
    return dx
