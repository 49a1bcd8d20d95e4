"""Layer normalization over the last axis: out = gamma * (x - mean) / sqrt(var + eps) + beta."""

from ..backend import array_module, by_rows


def layernorm_forward(x, gamma, beta, eps=1e-12):
    """out = gamma * x_hat + beta,  x_hat = (x - mean(x)) * rstd,  rstd = 1 / sqrt(var(x) + eps)

    x: (N..., H)   gamma, beta: (H,)   ->   out: (N..., H)
    """
    xp = array_module(x)
    out, x_hat = xp.empty_like(x), xp.empty_like(x)  # (N..., H)
    rstd = xp.empty((*x.shape[:-1], 1), x.dtype)  # (N..., 1)

    def layernorm(x, out, x_hat, rstd):  # one block of rows, in place
        xp.subtract(x, x.mean(axis=-1, keepdims=True), out=x_hat)  # x - mean, for now
        var = (x_hat * x_hat).mean(axis=-1, keepdims=True)  # biased like the references
        rstd[...] = 1.0 / (var + eps) ** 0.5  # Python floats keep float32 inputs float32
        x_hat *= rstd
        xp.multiply(x_hat, gamma, out=out)
        out += beta

    by_rows(layernorm, x, out, x_hat, rstd)
    # x_hat and rstd are all the backward needs; mean and var are folded into them
    return out, (x_hat, rstd, gamma)


def layernorm_backward(dout, cache):
    """Forward was out = gamma * x_hat + beta with x_hat = (x - mean) * rstd, so

        dgamma = sum(dout * x_hat),  dbeta = sum(dout),  dx_hat = dout * gamma
        dx = rstd * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))

    The two means remove the directions the normalization cannot move: shifting every
    feature (mean) and scaling every feature (variance). So dx sums to 0 over H.

    dout: (N..., H)   ->   dx: (N..., H), dgamma: (H,), dbeta: (H,)
    """
    x_hat, rstd, gamma = cache
    xp = array_module(x_hat)
    H = x_hat.shape[-1]
    dgamma = (dout * x_hat).reshape(-1, H).sum(axis=0)
    dbeta = dout.reshape(-1, H).sum(axis=0)
    dx = xp.empty_like(x_hat)

    def layernorm_grad(dout, x_hat, rstd, dx):  # one block of rows, in place
        dx_hat = dout * gamma
        xp.subtract(dx_hat, dx_hat.mean(axis=-1, keepdims=True), out=dx)
        dx_hat *= x_hat
        dx -= x_hat * dx_hat.mean(axis=-1, keepdims=True)  # mean(dx_hat * x_hat)
        dx *= rstd

    by_rows(layernorm_grad, dout, x_hat, rstd, dx)
    return dx, dgamma, dbeta
