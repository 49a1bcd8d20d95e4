"""Softmax cross-entropy with per-row weights, computed through log-sum-exp."""

from ..backend import array_module


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
    probs = logits - logits.max(axis=1, keepdims=True)  # (N, C), every row's max is 0
    label_shifted = probs[xp.arange(N), labels]  # (N,), taken before probs is overwritten
    xp.exp(probs, out=probs)  # in place: with C = vocabulary size these arrays are large
    sumexp = probs.sum(axis=1, keepdims=True)  # (N, 1), >= 1 so its log is finite
    log_probs_label = label_shifted - xp.log(sumexp[:, 0])  # (N,)
    denom = xp.maximum(weights.sum(), xp.finfo(logits.dtype).tiny)  # no 0 / 0
    loss = -(weights * log_probs_label).sum() / denom
    probs /= sumexp  # softmax(logits): the backward is written in it
    return loss, (probs, labels, weights, denom)


def cross_entropy_backward(dloss, cache):
    """Forward was loss = sum_i w_i * nll_i / sum w, so dlogits_i = (softmax_i - onehot_i) * w_i / sum w * dloss.

    dloss: () or float   ->   dlogits: (N, C)
    """
    probs, labels, weights, denom = cache
    xp = array_module(probs)
    N = probs.shape[0]
    dlogits = probs.copy()  # a copy, so the cache stays valid (a second call gives the same answer)
    dlogits[xp.arange(N), labels] -= 1.0
    dlogits *= (weights * (dloss / denom))[:, None]
    return dlogits
