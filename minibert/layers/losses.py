"""Softmax cross-entropy with per-row weights, computed through log-sum-exp."""

from ..backend import array_module, by_rows


def cross_entropy_forward(logits, labels, weights=None):
    """loss = sum_i w_i * (-log softmax(logits_i)[labels_i]) / sum_i w_i

    logits: (N, C)   labels: (N,) int   weights: (N,), 0 = ignored (default all 1)
    ->   loss: () scalar array; 0 (not NaN) when every weight is 0

    log softmax is computed as logits - logsumexp(logits), with the row max subtracted
    first, so it stays finite for logits of any magnitude.
    """
    xp = array_module(logits)
    N, C = logits.shape
    if weights is None:
        weights = xp.ones(N, dtype=logits.dtype)
    weights = weights.astype(logits.dtype, copy=False)
    labels = xp.where(weights != 0, labels, 0)  # ignored rows may carry any label (e.g. -100)
    probs = xp.empty_like(logits)  # (N, C); with C = vocabulary size these arrays are large
    row_max, sumexp = xp.empty((N, 1), logits.dtype), xp.empty((N, 1), logits.dtype)

    def softmax(logits, probs, row_max, sumexp):  # one block of rows, in place
        row_max[...] = logits.max(axis=1, keepdims=True)
        xp.subtract(logits, row_max, out=probs)  # every row's max is 0
        xp.exp(probs, out=probs)
        sumexp[...] = probs.sum(axis=1, keepdims=True)  # >= 1 so its log is finite
        probs /= sumexp  # softmax(logits): the backward is written in it

    by_rows(softmax, logits, probs, row_max, sumexp)
    label_shifted = logits[xp.arange(N), labels] - row_max[:, 0]  # (N,)
    log_probs_label = label_shifted - xp.log(sumexp[:, 0])  # (N,)
    denom = xp.maximum(weights.sum(), xp.finfo(logits.dtype).tiny)  # no 0 / 0
    loss = -(weights * log_probs_label).sum() / denom
    return loss, (probs, labels, weights, denom)


def cross_entropy_backward(dloss, cache):
    """Forward was loss = sum_i w_i * nll_i / sum w, so dlogits_i = (softmax_i - onehot_i) * w_i / sum w * dloss.

    dloss: () or float   ->   dlogits: (N, C)
    """
    probs, labels, weights, denom = cache
    xp = array_module(probs)
    dlogits = xp.empty_like(probs)  # new, so the cache stays valid (a second call gives the same answer)

    def softmax_minus_onehot(probs, labels, row_scale, dlogits):  # one block of rows, times row_scale
        xp.multiply(probs, row_scale[:, None], out=dlogits)
        dlogits[xp.arange(len(labels)), labels] -= row_scale

    by_rows(softmax_minus_onehot, probs, labels, weights * (dloss / denom), dlogits)
    return dlogits
