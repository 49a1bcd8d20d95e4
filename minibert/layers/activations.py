"""Elementwise activations: GELU (exact and tanh forms) and tanh."""

import math

from ..backend import array_module, by_rows, erf

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
# Python floats, not numpy scalars: a numpy float64 scalar would upcast float32 arrays.


def gelu_forward(x):
    """Exact GELU (Hugging Face "gelu"): out = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))

    x: (N...)   ->   out: (N...)
    """
    xp = array_module(x)
    out, cdf = xp.empty_like(x), xp.empty_like(x)

    def gelu(x, out, cdf):  # one block of rows, in place
        erf(x * _SQRT_HALF, out=cdf)
        cdf += 1.0
        cdf *= 0.5  # Phi(x), the standard normal CDF
        xp.multiply(x, cdf, out=out)

    by_rows(gelu, x, out, cdf)
    # Phi(x) is kept as well as x: recomputing it costs another erf, the priciest
    # elementwise operation of a training step
    return out, (x, cdf)


def gelu_backward(dout, cache):
    """Forward was out = x * Phi(x), so dout/dx = Phi(x) + x * phi(x), phi the normal pdf."""
    x, cdf = cache
    xp = array_module(x)
    dx = xp.empty_like(x)

    def gelu_grad(x, cdf, dout, dx):  # one block of rows, in place
        xp.multiply(x, x, out=dx)
        dx *= -0.5
        xp.exp(dx, out=dx)
        dx *= _INV_SQRT_2PI  # phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
        dx *= x
        dx += cdf
        dx *= dout

    by_rows(gelu_grad, x, cdf, dout, dx)
    return dx


def gelu_tanh_forward(x):
    """GELU, tanh form (Hugging Face "gelu_new", google's later code):
    out = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
    """
    xp = array_module(x)
    u = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
    return 0.5 * x * (1.0 + xp.tanh(u)), x


def gelu_tanh_backward(dout, cache):
    """Forward was 0.5 x (1 + tanh(u)), so
    dout/dx = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    """
    x = cache
    xp = array_module(x)
    t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
    du = _SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


def tanh_forward(x):
    """out = tanh(x)   (the pooler's activation)"""
    out = array_module(x).tanh(x)
    return out, out  # the derivative is written in terms of the output


def tanh_backward(dout, cache):
    """Forward was out = tanh(x), so dx = dout * (1 - out^2)."""
    out = cache
    return dout * (1.0 - out * out)
