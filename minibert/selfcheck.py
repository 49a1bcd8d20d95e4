"""`minibert gradcheck`: check every hand-written backward against central differences, and print the table."""

from __future__ import annotations

import numpy as np

from . import backend
from .config import BertConfig
from .gradcheck import gradcheck
from .layers import (
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
from .model import BertForPreTraining


def _pair(forward, backward, names, **fixed):
    def fn(**arrays):
        out, cache = forward(*[arrays[n] for n in names], **fixed)

        def back(dout):
            grads = backward(dout, cache)
            return dict(zip(names, grads if isinstance(grads, tuple) else (grads,)))
        return out, back
    return fn


def layer_checks(seed: int = 0) -> dict:
    """{layer: {tensor: relative error}} for every layer, on small odd shapes in float64."""
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.standard_normal(s)  # noqa: E731
    B, T, H, A = 2, 5, 9, 3
    mask = np.array([[1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])  # the second row has one real token
    bias = padding_mask_bias(mask, np.float64)
    ids = np.array([[1, 2, 2, 0, 1], [3, 3, 3, 1, 0]])  # repeated ids
    labels, weights = rng.integers(0, 7, 10), (rng.random(10) < 0.7).astype(np.float64)
    attn_dropout = dropout_mask(rng, (B, A, T, T), 0.2, np.float64)

    def embedding(E):
        out, cache = embedding_forward(ids, E)  # the ids are fixed; only the table has a gradient
        return out, lambda dout: {"E": embedding_backward(dout, cache)}

    def attention(**arrays):
        out, cache = attention_forward(*arrays.values(), bias, A, 0.2, True, mask=attn_dropout)
        return out, lambda dout: dict(zip(arrays, attention_backward(dout, cache)))

    def cross_entropy(logits):
        loss, cache = cross_entropy_forward(logits, labels, weights)
        return loss, lambda dloss: {"logits": cross_entropy_backward(dloss, cache)}

    cases = {
        "linear": (_pair(linear_forward, linear_backward, ["x", "W", "b"]), {"x": r(B, T, H), "W": r(H, 7), "b": r(7)}),
        "embedding": (embedding, {"E": r(4, H)}),
        "layernorm": (_pair(layernorm_forward, layernorm_backward, ["x", "gamma", "beta"]),
                      {"x": r(B, T, H), "gamma": r(H), "beta": r(H)}),
        "gelu (erf)": (_pair(gelu_forward, gelu_backward, ["x"]), {"x": 2 * r(B, T, H)}),
        "gelu (tanh)": (_pair(gelu_tanh_forward, gelu_tanh_backward, ["x"]), {"x": 2 * r(B, T, H)}),
        "tanh": (_pair(tanh_forward, tanh_backward, ["x"]), {"x": r(B, T, H)}),
        "softmax": (_pair(softmax_forward, softmax_backward, ["x"]), {"x": 3 * r(B, T, H)}),
        "dropout": (_pair(dropout_forward, dropout_backward, ["x"], p=0.3, training=True,
                          mask=dropout_mask(rng, (B, T, H), 0.3, np.float64)), {"x": r(B, T, H)}),
        "attention": (attention, {"x": r(B, T, H), "W_qkv": 0.5 * r(H, 3 * H), "b_qkv": r(3 * H),
                             "W_o": 0.5 * r(H, H), "b_o": r(H)}),
        "cross-entropy": (cross_entropy, {"logits": 2 * r(10, 7)}),
    }
    return {name: gradcheck(fn, arrays, seed=seed) for name, (fn, arrays) in cases.items()}


def model_check_case(seed: int = 0):
    """(model, batch) of the whole-model check: float64, 3 segment types all used, a padded row."""
    config = BertConfig(vocab_size=40, hidden_size=12, num_hidden_layers=2, num_attention_heads=3,
                        intermediate_size=20, type_vocab_size=3, max_position_embeddings=16, initializer_range=0.3)
    model = BertForPreTraining(config, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    batch = {"input_ids": rng.integers(1, 40, (2, 7)),  # 0 is [PAD]
             "token_type_ids": np.array([[0, 0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 0, 0, 0]]),  # all three segment types
             "attention_mask": np.array([[1] * 7, [1, 1, 1, 1, 0, 0, 0]]),  # the second row is padded
             "masked_lm_positions": np.array([[1, 4], [2, 3]]), "masked_lm_labels": rng.integers(0, 40, (2, 2)),
             "masked_lm_weights": np.array([[1.0, 1.0], [1.0, 0.0]]), "next_sentence_label": np.array([0, 1])}
    return model, batch


def model_check(seed: int = 0) -> dict:
    """{tensor: relative error} for a whole BertForPreTraining with dropout (fixed masks)."""
    model, batch = model_check_case(seed)

    def fn(**params):
        out = model.forward(batch, training=True, rng=backend.default_rng(seed))  # masks on the model's device
        return out.loss, lambda d: {k: g * d for k, g in model.backward().items()}
    return gradcheck(fn, {}, model.params, max_coords=8, seed=seed)


def report(threshold_layers: float = 1e-6, threshold_model: float = 1e-5) -> bool:
    """Print the tables; return True when every error is under its threshold."""
    ok = True
    print("Hand-written backward vs central differences (float64, random upstream gradient)\n")
    print(f"{'layer':<15} {'tensor':<8} {'relative error':>14}")
    for layer, errors in layer_checks().items():
        for tensor, err in errors.items():
            flag = "ok" if err < threshold_layers else "FAIL"
            ok &= err < threshold_layers
            print(f"{layer:<15} {tensor:<8} {err:>14.2e}  {flag}")
    errors = model_check()
    worst = max(errors, key=errors.get)
    ok &= errors[worst] < threshold_model
    print(f"\nwhole BertForPreTraining (dropout on, fixed masks): {len(errors)} parameter tensors, "
          f"worst relative error {errors[worst]:.2e} ({worst})  {'ok' if errors[worst] < threshold_model else 'FAIL'}")
    return ok
