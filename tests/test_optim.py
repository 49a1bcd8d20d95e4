"""AdamW, the learning-rate schedule and gradient clipping against the update rule written out by hand."""

import math

import numpy as np
import pytest

from minibert.optim import AdamW, clip_by_global_norm, decays, global_norm, linear_warmup_decay


def reference_adamw(p, grads, lrs, wd, b1=0.9, b2=0.999, eps=1e-6, correct=True, decay=True):
    """The textbook loop, one scalar formula per line, float64."""
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t) if correct else m
        v_hat = v / (1 - b2**t) if correct else v
        p = p - lr * (m_hat / (np.sqrt(v_hat) + eps) + (wd * p if decay else 0))
    return p


@pytest.mark.parametrize("correct", [True, False], ids=["bias-corrected", "google-no-correction"])
def test_adamw_matches_hand_written_rule(correct):
    rng = np.random.default_rng(0)
    params = {"layer.0.ffn.in.W": rng.standard_normal((3, 4)), "layer.0.ffn.in.b": rng.standard_normal(4),
              "embeddings.ln.gamma": rng.standard_normal(4)}
    start = {k: v.copy() for k, v in params.items()}
    grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(5)]
    lrs = [0.1, 0.05, 0.2, 0.01, 0.1]
    opt = AdamW(params, weight_decay=0.01, bias_correction=correct)
    for g, lr in zip(grads, lrs):
        opt.step(params, {k: a.copy() for k, a in g.items()}, lr)
    for name in params:
        expected = reference_adamw(start[name], [g[name] for g in grads], lrs, 0.01, correct=correct,
                                   decay=decays(name))
        np.testing.assert_allclose(params[name], expected, rtol=1e-12, atol=1e-14, err_msg=name)


def test_pytorch_adamw_agrees():
    torch = pytest.importorskip("torch", reason="torch is not installed (reference extra)")
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 3))
    grads = [rng.standard_normal((5, 3)) for _ in range(4)]
    tw = torch.tensor(w.copy(), requires_grad=True)
    topt = torch.optim.AdamW([tw], lr=0.05, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01)
    params = {"x.W": w.copy()}
    opt = AdamW(params, weight_decay=0.01)
    for g in grads:
        tw.grad = torch.tensor(g)
        topt.step()
        opt.step(params, {"x.W": g.copy()}, 0.05)
    np.testing.assert_allclose(params["x.W"], tw.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_no_decay_for_biases_and_layernorm():
    assert decays("layer.3.attn.qkv.W") and decays("embeddings.word") and decays("embeddings.position")
    assert not any(decays(n) for n in ["layer.0.attn.qkv.b", "mlm.ln.gamma", "embeddings.ln.beta", "mlm.bias"])


def test_schedule():
    lrs = [linear_warmup_decay(s, 1.0, 10, 110) for s in range(1, 111)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warmup to the peak
    assert lrs[59] == pytest.approx(0.5) and lrs[-1] == 0.0  # then linear decay to 0
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10])) and all(a >= b for a, b in zip(lrs[9:], lrs[10:]))


def test_clip_by_global_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert global_norm(grads) == pytest.approx(5.0)
    before = clip_by_global_norm(grads, 1.0)
    assert before == pytest.approx(5.0) and global_norm(grads) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(grads["a"] / grads["b"][0, 0], [0.75, 0.0])  # direction kept
    small = {"a": np.array([0.3, 0.4])}
    clip_by_global_norm(small, 1.0)
    np.testing.assert_array_equal(small["a"], [0.3, 0.4])
    assert math.isclose(global_norm(small), 0.5)
