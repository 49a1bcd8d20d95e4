"""Every layer's hand-written backward against central differences (float64), plus the
invariants a correct backward must satisfy, over hypothesis-drawn shapes."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert.gradcheck import gradcheck
from minibert.layers import (
    attention_backward,
    attention_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    dropout_backward,
    dropout_forward,
    dropout_mask,
    embedding_backward,
    embedding_forward,
    gelu_backward,
    gelu_forward,
    gelu_tanh_backward,
    gelu_tanh_forward,
    layernorm_backward,
    layernorm_forward,
    linear_backward,
    linear_forward,
    padding_mask_bias,
    softmax_backward,
    softmax_forward,
    tanh_backward,
    tanh_forward,
)
from minibert.layers.softmax import softmax_backward_slow

from .conftest import assert_gradcheck

TOL = 1e-6
FAST = settings(max_examples=12, deadline=None)

batch = st.integers(1, 4)
seq = st.integers(1, 16)  # length 1 is a real case
hidden = st.sampled_from([3, 5, 7, 9, 13])  # not divisible by 8
seeds = st.integers(0, 2**31 - 1)


def rand(rng, *shape, scale=1.0):
    return rng.standard_normal(shape) * scale


def padding_mask(rng, B, T):
    """Random padding patterns: each row keeps 1..T real tokens; row 0 keeps exactly one."""
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = 1
    return (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)


def fn_of(forward, backward, names, **fixed):
    """Wrap a layer pair into gradcheck's form: fn(**arrays) -> (out, backward(dout) -> dict)."""
    def fn(**arrays):
        out, cache = forward(*[arrays[n] for n in names], **fixed)
        def back(dout):
            grads = backward(dout, cache)
            grads = grads if isinstance(grads, tuple) else (grads,)
            return dict(zip(names, grads))
        return out, back
    return fn


# ---------------------------------------------------------------- gradient checks
@FAST
@given(B=batch, T=seq, I=hidden, O=hidden, seed=seeds)
def test_linear_gradcheck(B, T, I, O, seed):
    rng = np.random.default_rng(seed)
    fn = fn_of(linear_forward, linear_backward, ["x", "W", "b"])
    assert_gradcheck(gradcheck(fn, {"x": rand(rng, B, T, I)}, {"W": rand(rng, I, O), "b": rand(rng, O)}), TOL)


@FAST
@given(B=batch, T=seq, H=hidden, V=st.integers(1, 6), seed=seeds)
def test_embedding_gradcheck_and_total(B, T, H, V, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(B, T))  # few ids: repeats are certain for larger B*T
    E = rand(rng, V, H)

    def fn(E):
        out, cache = embedding_forward(ids, E)
        return out, lambda dout: {"E": embedding_backward(dout, cache)}

    assert_gradcheck(gradcheck(fn, {}, {"E": E}), TOL)
    dout = rand(rng, B, T, H)
    _, cache = embedding_forward(ids, E)
    dE = embedding_backward(dout, cache)
    # every upstream gradient lands somewhere, repeats included
    np.testing.assert_allclose(dE.sum(axis=0), dout.reshape(-1, H).sum(axis=0), rtol=1e-12, atol=1e-12)


def test_embedding_repeated_ids_accumulate():
    E = np.zeros((3, 2))
    ids = np.array([[1, 1, 1, 2]])
    _, cache = embedding_forward(ids, E)
    dE = embedding_backward(np.ones((1, 4, 2)), cache)
    np.testing.assert_array_equal(dE, [[0, 0], [3, 3], [1, 1]])


@FAST
@given(B=batch, T=seq, H=hidden, seed=seeds)
def test_layernorm_gradcheck_and_dx_sums_to_zero(B, T, H, seed):
    rng = np.random.default_rng(seed)
    x, gamma, beta = rand(rng, B, T, H), rand(rng, H), rand(rng, H)
    fn = fn_of(layernorm_forward, layernorm_backward, ["x", "gamma", "beta"], eps=1e-12)
    if H > 1:
        assert_gradcheck(gradcheck(fn, {"x": x}, {"gamma": gamma, "beta": beta}), TOL)
    _, cache = layernorm_forward(x, gamma, beta)
    dx, _, _ = layernorm_backward(rand(rng, B, T, H), cache)
    np.testing.assert_allclose(dx.sum(axis=-1), 0.0, atol=1e-10)


def test_layernorm_eps_is_used():
    x = np.array([[1.0, 1.0, 1.0 + 1e-3]])
    out_small, _ = layernorm_forward(x, np.ones(3), np.zeros(3), eps=1e-12)
    out_big, _ = layernorm_forward(x, np.ones(3), np.zeros(3), eps=1.0)
    assert np.abs(out_small).max() > 1.0 > np.abs(out_big).max()


@FAST
@given(B=batch, T=seq, H=hidden, seed=seeds)
def test_activation_gradchecks(B, T, H, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, B, T, H, scale=2.0)
    for forward, backward in [(gelu_forward, gelu_backward), (gelu_tanh_forward, gelu_tanh_backward),
                              (tanh_forward, tanh_backward)]:
        errors = gradcheck(fn_of(forward, backward, ["x"]), {"x": x.copy()})
        assert_gradcheck(errors, TOL)


def test_gelu_exact_matches_x_times_normal_cdf():
    x = np.linspace(-8, 8, 2001)
    expected = np.array([v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
    out, _ = gelu_forward(x)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_gelu_tanh_matches_its_formula():
    x = np.linspace(-8, 8, 2001)
    expected = [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))) for v in x]
    out, _ = gelu_tanh_forward(x)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    exact, _ = gelu_forward(x)
    assert 1e-4 < np.abs(out - exact).max() < 1e-3  # the two forms differ by ~5e-4 at most


@FAST
@given(B=batch, T=seq, C=hidden, seed=seeds)
def test_softmax_gradcheck_rows_sum_to_zero_and_slow_equals_fast(B, T, C, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, B, T, C, scale=3.0)
    assert_gradcheck(gradcheck(fn_of(softmax_forward, softmax_backward, ["x"]), {"x": x}), TOL)
    out, cache = softmax_forward(x)
    dout = rand(rng, B, T, C)
    dx = softmax_backward(dout, cache)
    np.testing.assert_allclose(dx.sum(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(dx, softmax_backward_slow(dout, cache), rtol=1e-10, atol=1e-12)


@FAST
@given(B=batch, T=seq, H=hidden, p=st.sampled_from([0.1, 0.5]), seed=seeds)
def test_dropout_gradcheck_with_fixed_mask(B, T, H, p, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, B, T, H)
    mask = dropout_mask(rng, x.shape, p, x.dtype)
    fn = fn_of(dropout_forward, dropout_backward, ["x"], p=p, training=True, mask=mask)
    assert_gradcheck(gradcheck(fn, {"x": x}), TOL)


def test_dropout_identity_when_not_training_or_p_zero():
    x = np.arange(12.0).reshape(3, 4)
    for kwargs in [dict(p=0.5, training=False), dict(p=0.0, training=True, rng=np.random.default_rng(0))]:
        out, cache = dropout_forward(x, **kwargs)
        assert out is x and cache is None
        assert dropout_backward(x, cache) is x


def test_dropout_is_inverted_and_drops_p():
    rng = np.random.default_rng(0)
    x = np.ones(200_000, dtype=np.float32)
    out, mask = dropout_forward(x, 0.1, True, rng)
    assert out.dtype == np.float32
    # dropped share: binomial(200k, 0.1) has std 0.00067; 5 std = 0.0034
    assert abs((out == 0).mean() - 0.1) < 0.0034
    np.testing.assert_allclose(out[out != 0], 1 / 0.9, rtol=1e-6)
    with pytest.raises(ValueError, match="rng"):
        dropout_forward(x, 0.1, True)


def _attention_setup(rng, B, T, A, D):
    H = A * D
    x = rand(rng, B, T, H)
    params = {"W_qkv": rand(rng, H, 3 * H, scale=0.5), "b_qkv": rand(rng, 3 * H, scale=0.1),
              "W_o": rand(rng, H, H, scale=0.5), "b_o": rand(rng, H, scale=0.1)}
    mask = padding_mask(rng, B, T)
    return x, params, mask


def _attention_fn(padding, A, **kw):
    bias = padding_mask_bias(padding, np.float64)
    names = ["x", "W_qkv", "b_qkv", "W_o", "b_o"]

    def fn(x, W_qkv, b_qkv, W_o, b_o):
        out, cache = attention_forward(x, W_qkv, b_qkv, W_o, b_o, bias, A, **kw)
        return out, lambda dout: dict(zip(names, attention_backward(dout, cache)))
    return fn


@FAST
@given(B=batch, T=seq, A=st.integers(1, 4), D=st.sampled_from([1, 3, 5]), seed=seeds)
def test_attention_gradcheck(B, T, A, D, seed):
    rng = np.random.default_rng(seed)
    x, params, mask = _attention_setup(rng, B, T, A, D)
    assert_gradcheck(gradcheck(_attention_fn(mask, A), {"x": x}, params), TOL)
    # with dropout on the probabilities, through a fixed mask
    drop = dropout_mask(rng, (B, A, T, T), 0.3, np.float64)
    fn = _attention_fn(mask, A, p=0.3, training=True, mask=drop)
    assert_gradcheck(gradcheck(fn, {"x": x}, params), TOL)


@FAST
@given(B=batch, T=st.integers(2, 16), A=st.integers(1, 4), seed=seeds)
def test_attention_ignores_padded_keys(B, T, A, seed):
    rng = np.random.default_rng(seed)
    x, params, mask = _attention_setup(rng, B, T, A, 3)
    bias = padding_mask_bias(mask, np.float64)
    out, cache = attention_forward(x, *params.values(), bias, A)
    x2 = x.copy()
    x2[mask == 0] = rand(rng, int((mask == 0).sum()), x.shape[-1], scale=100.0)
    out2, _ = attention_forward(x2, *params.values(), bias, A)
    real = mask == 1
    np.testing.assert_array_equal(out[real], out2[real])  # padding changes no real output
    assert (cache["probs"][..., mask[:, None, None, :].repeat(A, 1).repeat(T, 2) == 0] == 0).all()
    # padded positions get no gradient through their role as keys and values
    dout = rand(rng, *out.shape)
    dout[~real] = 0.0  # only real queries are used downstream
    dx = attention_backward(dout, cache)[0]
    assert (dx[~real] == 0).all()


@FAST
@given(N=st.integers(1, 12), C=st.integers(2, 9), seed=seeds)
def test_cross_entropy_gradcheck_and_naive(N, C, seed):
    rng = np.random.default_rng(seed)
    logits = rand(rng, N, C, scale=2.0)
    labels = rng.integers(0, C, size=N)
    weights = rng.integers(0, 2, size=N).astype(np.float64)
    weights[0] = 1.0

    def fn(logits):
        loss, cache = cross_entropy_forward(logits, labels, weights)
        return loss, lambda d: {"logits": cross_entropy_backward(d, cache)}

    assert_gradcheck(gradcheck(fn, {"logits": logits}), TOL)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    naive = -(weights * np.log(p[np.arange(N), labels])).sum() / weights.sum()
    loss, _ = cross_entropy_forward(logits, labels, weights)
    np.testing.assert_allclose(loss, naive, rtol=1e-12)


def test_cross_entropy_large_logits_and_no_weights():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]], dtype=np.float32)
    labels = np.array([1, 1])
    loss, cache = cross_entropy_forward(logits, labels)
    assert np.isfinite(loss) and abs(float(loss) - 1e4) < 1.0  # row 0 costs 2e4, row 1 costs 0
    assert np.isfinite(cross_entropy_backward(1.0, cache)).all()
    loss, cache = cross_entropy_forward(logits, labels, np.zeros(2, np.float32))
    assert float(loss) == 0.0 and (cross_entropy_backward(1.0, cache) == 0).all()


# ---------------------------------------------------------------- dtypes and backends
def test_float32_stays_float32(xp):
    rng = np.random.default_rng(0)
    f32 = lambda *s: xp.asarray(rng.standard_normal(s), dtype=xp.float32)
    x = f32(2, 5, 6)
    checks = []
    out, c = linear_forward(x, f32(6, 4), f32(4)); checks += [out, *linear_backward(out, c)]
    out, c = layernorm_forward(x, f32(6), f32(6)); checks += [out, *layernorm_backward(out, c)]
    for fwd, bwd in [(gelu_forward, gelu_backward), (gelu_tanh_forward, gelu_tanh_backward),
                     (tanh_forward, tanh_backward), (softmax_forward, softmax_backward)]:
        out, c = fwd(x); checks += [out, bwd(out, c)]
    bias = padding_mask_bias(xp.asarray([[1, 1, 1, 0, 0], [1] * 5]), xp.float32)
    out, c = attention_forward(x, f32(6, 18), f32(18), f32(6, 6), f32(6), bias, 2, 0.1, True,
                               np.random.default_rng(0) if xp is np else xp.random.default_rng(0))
    checks += [out, c["probs"], *attention_backward(out, c)]
    out, c = embedding_forward(xp.asarray([[0, 1, 1]]), f32(3, 6)); checks += [out, embedding_backward(out, c)]
    loss, c = cross_entropy_forward(f32(4, 3), xp.asarray([0, 1, 2, 0]), xp.ones(4, xp.float32))
    checks += [loss, cross_entropy_backward(1.0, c)]
    assert [a.dtype for a in checks] == [xp.float32] * len(checks)


def test_layers_match_across_array_modules(xp):
    """The same float64 inputs give the same attention output and gradients on every module."""
    rng = np.random.default_rng(1)
    x, params, mask = _attention_setup(rng, 3, 7, 2, 3)
    dout = rand(rng, 3, 7, 6)
    ref_out, ref_cache = attention_forward(x, *params.values(), padding_mask_bias(mask, np.float64), 2)
    ref = attention_backward(dout, ref_cache)
    dev = lambda a: xp.asarray(a)
    out, cache = attention_forward(dev(x), *map(dev, params.values()), padding_mask_bias(dev(mask), xp.float64), 2)
    grads = attention_backward(dev(dout), cache)
    to_np = (lambda a: a) if xp is np else (lambda a: a.get())
    np.testing.assert_allclose(to_np(out), ref_out, rtol=1e-10, atol=1e-12)
    for g, r in zip(grads, ref):
        np.testing.assert_allclose(to_np(g), r, rtol=1e-10, atol=1e-12)


def test_float32_erf_is_accurate_and_blocked_correctly():
    from scipy.special import erf as exact

    from minibert.backend import erf

    x = np.random.default_rng(0).standard_normal(600_003).astype(np.float32) * 3  # 3 blocks and a part of one
    x[:5] = [0.0, -0.0, 1e-8, 50.0, -50.0]
    got = erf(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert np.abs(got - exact(x.astype(np.float64))).max() < 1e-6
    assert not np.signbit(got[x > 0]).any() and np.signbit(got[x < 0]).all()  # erf has the sign of x,
    assert np.signbit(got[:2]).tolist() == [False, True]  # 0.0 and -0.0 too
    assert (erf(-x) == -got).all()  # odd, exactly: the sign is the input's, the magnitude the same
    assert erf(x.reshape(-1, 1)[:100]).shape == (100, 1)  # any shape, non-contiguous-safe
    np.testing.assert_array_equal(erf(x[::2]), erf(np.ascontiguousarray(x[::2])))
