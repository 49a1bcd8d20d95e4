"""Embedding lookup: out[b, t] = E[ids[b, t]]."""

from ..backend import array_module, scatter_add


def embedding_forward(ids, E):
    """out = E[ids]

    ids: (N...) int   E: (V, H)   ->   out: (N..., H)
    """
    return E[ids], (ids, E.shape)  # only the ids and the table's shape are needed later


def embedding_backward(dout, cache, dE=None):
    """Forward was a row lookup, so each row's gradient flows back to the row it came from.

    A token that appears k times receives the sum of its k upstream gradients, which is
    why this is a scatter-*add*: `dE[ids] += dout` would keep only one of them.

    dout: (N..., H)   ->   dE: (V, H). Pass dE to add into an existing gradient (a tied
    table already holding another use's share) instead of a new one.
    """
    ids, shape = cache
    if dE is None:
        dE = array_module(dout).zeros(shape, dtype=dout.dtype)
    scatter_add(dE, ids.reshape(-1), dout.reshape(-1, shape[1]))
    return dE
