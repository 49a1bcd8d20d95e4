"""Softmax over the last axis."""

from ..backend import array_module, by_rows


def softmax_forward(x):
    """out = exp(x - max x) / sum(exp(x - max x)), over the last axis.

    Subtracting the row maximum changes nothing mathematically and keeps exp from
    overflowing. x: (N..., C) -> out: (N..., C)
    """
    xp = array_module(x)
    out = xp.empty_like(x)

    def softmax(x, out):  # one block of rows, in place
        xp.subtract(x, x.max(axis=-1, keepdims=True), out=out)
        xp.exp(out, out=out)
        out /= out.sum(axis=-1, keepdims=True)

    by_rows(softmax, x, out)
    return out, out  # the Jacobian is written in terms of the output


def softmax_backward(dout, cache):
    """Forward was out = softmax(x). Its Jacobian is diag(out) - out out^T, so

        dx = out * (dout - sum(dout * out))

    one row at a time, without ever building the (C, C) Jacobian. Every row of dx sums
    to 0, since adding a constant to a row of x does not change the softmax.
    dout: (N..., C) -> dx: (N..., C)
    """
    out = cache
    dx = array_module(out).empty_like(out)

    def softmax_grad(dout, out, dx):  # one block of rows, in place
        array_module(out).multiply(dout, out, out=dx)
        dx -= out * dx.sum(axis=-1, keepdims=True)

    by_rows(softmax_grad, dout, out, dx)
    return dx


def softmax_backward_slow(dout, cache):
    """The same gradient, built from the explicit Jacobian row by row: for reading and tests."""
    xp = array_module(dout)
    out = cache
    C = out.shape[-1]
    rows_out, rows_dout = out.reshape(-1, C), dout.reshape(-1, C)
    dx = xp.empty_like(rows_dout)
    for i in range(rows_out.shape[0]):
        s = rows_out[i]
        jacobian = xp.diag(s) - xp.outer(s, s)  # (C, C): d out_j / d x_k
        dx[i] = jacobian.T @ rows_dout[i]
    return dx.reshape(dout.shape)
