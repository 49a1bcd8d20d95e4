"""Layer normalization over the last axis: out = gamma * (x - mean) / sqrt(var + eps) + beta."""


def layernorm_forward(x, gamma, beta, eps=1e-12):
    """out = gamma * x_hat + beta,  x_hat = (x - mean(x)) * rstd,  rstd = 1 / sqrt(var(x) + eps)

    x: (N..., H)   gamma, beta: (H,)   ->   out: (N..., H)
    """
    mean = x.mean(axis=-1, keepdims=True)  # (N..., 1)
    xc = x - mean
    var = (xc * xc).mean(axis=-1, keepdims=True)  # (N..., 1), biased like the references
    rstd = 1.0 / (var + eps) ** 0.5  # Python floats keep float32 inputs float32
    x_hat = xc
    x_hat *= rstd  # (N..., H), in place: xc is not needed again
    out = x_hat * gamma
    out += beta
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
    H = x_hat.shape[-1]
    dgamma = (dout * x_hat).reshape(-1, H).sum(axis=0)
    dbeta = dout.reshape(-1, H).sum(axis=0)
    dx_hat = dout * gamma
    dx = dx_hat - dx_hat.mean(axis=-1, keepdims=True)
    dx -= x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True)
    dx *= rstd
    return dx, dgamma, dbeta
