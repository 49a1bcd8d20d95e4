"""Models that read in one direction (minibert/lm.py) and the token-classification head:
the causal mask, central-difference gradient checks in float64, causality itself (a state
never changes when a token it must not read changes), ELMo features, and -100 labels."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert import BertConfig, BertForTokenClassification, BertLMHeadModel, ElmoFeatures, backend
from minibert.gradcheck import gradcheck
from minibert.layers import attention_backward, attention_forward, dropout_mask
from minibert.layers.attention import causal_mask_bias
from minibert.lm import right_to_left_order

from .conftest import assert_gradcheck

TOL = 1e-6
SMALL = BertConfig(vocab_size=40, hidden_size=12, num_hidden_layers=2, num_attention_heads=3, intermediate_size=20,
                   type_vocab_size=3, max_position_embeddings=16, initializer_range=0.3)
# initializer_range 0.3, as tests/test_model.py: at 0.02 many gradients are too small for central differences


def right_padded(rng, B, T, lengths=None):
    """A batch of ids in 1..9 (0 is [PAD]), segments and a right-padding mask; row 0 is full."""
    lengths = np.asarray(lengths if lengths is not None else [T, *rng.integers(1, T + 1, size=B - 1)])
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1, 10, size=(B, T)) * mask
    return {"input_ids": ids, "token_type_ids": rng.integers(0, 3, size=(B, T)) * mask, "attention_mask": mask}


# ---------------------------------------------------------------- the causal mask in the attention layer
def test_causal_mask_bias_blocks_future_and_padded_keys():
    bias = causal_mask_bias(np.array([[1, 1, 1, 0]]), np.float64)
    assert bias.shape == (1, 1, 4, 4)
    blocked = bias[0, 0] == np.finfo(np.float64).min
    np.testing.assert_array_equal(blocked, [[0, 1, 1, 1],   # query 0 reads key 0
                                            [0, 0, 1, 1],   # query 1 reads keys 0, 1
                                            [0, 0, 0, 1],   # query 2 reads keys 0..2
                                            [0, 0, 0, 1]])  # query 3 (padding) reads the real keys
    assert set(np.unique(bias)) == {0.0, np.finfo(np.float64).min}  # never -inf: one value, not a sum
    assert causal_mask_bias(np.ones((2, 3), np.int64), np.float32).dtype == np.float32


def _causal_attention_fn(padding, A, **kw):
    bias = causal_mask_bias(padding, np.float64)
    names = ["x", "W_qkv", "b_qkv", "W_o", "b_o"]

    def fn(x, W_qkv, b_qkv, W_o, b_o):
        out, cache = attention_forward(x, W_qkv, b_qkv, W_o, b_o, bias, A, **kw)
        return out, lambda dout: dict(zip(names, attention_backward(dout, cache)))
    return fn


def _attention_case(rng, B, T, A, D):
    H = A * D
    params = {"W_qkv": rng.standard_normal((H, 3 * H)) * 0.5, "b_qkv": rng.standard_normal(3 * H) * 0.1,
              "W_o": rng.standard_normal((H, H)) * 0.5, "b_o": rng.standard_normal(H) * 0.1}
    return rng.standard_normal((B, T, H)), params, right_padded(rng, B, T)["attention_mask"]


@settings(max_examples=10, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 9), A=st.integers(1, 3), D=st.sampled_from([1, 3]),
       seed=st.integers(0, 2**31 - 1))
def test_causal_attention_gradcheck_with_padding(B, T, A, D, seed):
    rng = np.random.default_rng(seed)
    x, params, mask = _attention_case(rng, max(B, 2), T, A, D)
    mask[-1, 1:] = 0  # the last row: one real token, then padding
    assert_gradcheck(gradcheck(_causal_attention_fn(mask, A), {"x": x}, params), TOL)
    drop = dropout_mask(rng, (x.shape[0], A, T, T), 0.3, np.float64)
    fn = _causal_attention_fn(mask, A, p=0.3, training=True, mask=drop)
    assert_gradcheck(gradcheck(fn, {"x": x}, params), TOL)


def test_causal_attention_sends_no_gradient_back_in_time():
    """The backward needs no new term: future keys have probability exactly 0, so dscores is
    exactly 0 there, and a query's gradient reaches only the positions it read."""
    rng = np.random.default_rng(0)
    x, params, mask = _attention_case(rng, 2, 7, 3, 2)
    out, cache = attention_forward(x, *params.values(), causal_mask_bias(mask, np.float64), 3)
    T = 7
    assert (cache["probs"][:, :, np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0).all()
    for t in range(T):
        dout = np.zeros_like(out)
        dout[:, t] = rng.standard_normal((2, out.shape[-1]))  # only query t is used downstream
        dx = attention_backward(dout, cache)[0]
        assert (dx[:, t + 1:] == 0).all(), t  # later positions got nothing
        assert np.abs(dx[0, : t + 1]).min() > 0  # every earlier position of the full row got something


# ---------------------------------------------------------------- whole-model gradient checks
def loss_fn(model, batch, training):
    def fn(**params):
        out = model.forward(batch, training=training, rng=backend.default_rng(7))  # the same masks every call
        return out.loss, lambda d: {k: g * d for k, g in model.backward().items()}
    return fn


@pytest.mark.parametrize("right_to_left", [False, True], ids=["left-to-right", "right-to-left"])
@pytest.mark.parametrize("training", [False, True], ids=["no-dropout", "fixed-dropout-masks"])
def test_language_model_gradcheck(right_to_left, training):
    model = BertLMHeadModel(SMALL, seed=3, dtype=np.float64, right_to_left=right_to_left)
    batch = right_padded(np.random.default_rng(1), B=3, T=7, lengths=[7, 4, 2])
    errors = gradcheck(loss_fn(model, batch, training), {}, model.params, max_coords=10, seed=2)
    assert set(errors) == set(model.params)  # every parameter tensor checked, the tied table included
    assert_gradcheck(errors, 1e-5)


def test_token_classification_gradcheck():
    model = BertForTokenClassification(SMALL, num_labels=5, seed=4, dtype=np.float64)
    batch = right_padded(np.random.default_rng(2), B=3, T=6, lengths=[6, 4, 1])
    labels = np.random.default_rng(3).integers(0, 5, size=(3, 6))
    labels[batch["attention_mask"] == 0] = -100  # padding is not scored
    labels[:, 0] = -100  # nor [CLS]
    labels[0, 3] = -100  # nor a word's later piece
    batch["labels"] = labels
    for training in (False, True):
        errors = gradcheck(loss_fn(model, batch, training), {}, model.params, max_coords=10, seed=5)
        assert set(errors) == set(model.params)
        assert_gradcheck(errors, 1e-5)


def test_elmo_features_gradcheck():
    """The states' path into a downstream model: backward(dloss=0, dsequence_output=...) in both directions."""
    elmo = ElmoFeatures(BertLMHeadModel(SMALL, seed=5, dtype=np.float64),
                        BertLMHeadModel(SMALL, seed=6, dtype=np.float64, right_to_left=True))
    batch = right_padded(np.random.default_rng(4), B=2, T=6, lengths=[6, 3])
    # nothing downstream reads padded positions (and [PAD]'s embedding row is frozen, as in tests/test_model.py)
    dfeatures = np.random.default_rng(5).standard_normal((2, 6, 24)) * batch["attention_mask"][..., None]

    def fn(**params):
        return elmo.forward(batch), elmo.backward

    errors = gradcheck(fn, {}, elmo.params, max_coords=6, dout=dfeatures)
    head = [k for k in errors if ".mlm." in k]  # the LM heads do not touch the states: exactly 0
    assert head and all(errors.pop(k) == 0.0 for k in head)
    assert_gradcheck(errors, 1e-5)


# ---------------------------------------------------------------- causality
def _states(model, batch):
    out = model.forward(batch)
    return out.sequence_output, out.extras["logits"]


@pytest.mark.parametrize("right_to_left", [False, True], ids=["left-to-right", "right-to-left"])
def test_state_at_t_reads_only_its_side(right_to_left):
    """Left to right: the state and logits at t do not move when a token after t changes, and do
    when a token before t changes. Right to left: the mirror."""
    model = BertLMHeadModel(SMALL, seed=1, dtype=np.float64, right_to_left=right_to_left)
    T = 8
    batch = right_padded(np.random.default_rng(6), B=2, T=T, lengths=[T, 5])
    seq, logits = _states(model, batch)
    for b, L in enumerate([T, 5]):
        for s in range(L):  # change token s of row b
            changed = {k: v.copy() for k, v in batch.items()}
            changed["input_ids"][b, s] = 1 + batch["input_ids"][b, s] % 9  # another real id
            seq2, logits2 = _states(model, changed)
            for t in range(L):
                must_not_read = s > t if not right_to_left else s < t
                moved = max(np.abs(seq2[b, t] - seq[b, t]).max(), np.abs(logits2[b, t] - logits[b, t]).max())
                if must_not_read:
                    assert moved == 0.0, f"row {b}: state {t} changed when token {s} changed"
                else:
                    assert moved > 1e-6, f"row {b}: state {t} ignored token {s}"
            other = 1 - b
            np.testing.assert_array_equal(seq2[other], seq[other])  # rows of a batch never mix


def test_right_to_left_is_left_to_right_on_the_reversed_text():
    l2r = BertLMHeadModel(SMALL, seed=2, dtype=np.float64)
    r2l = BertLMHeadModel(SMALL, seed=2, dtype=np.float64, right_to_left=True)  # the same parameters
    batch = right_padded(np.random.default_rng(7), B=3, T=6, lengths=[6, 4, 2])
    mirrored = {k: v.copy() for k, v in batch.items()}
    for b, L in enumerate([6, 4, 2]):
        for k in ("input_ids", "token_type_ids"):
            mirrored[k][b, :L] = batch[k][b, :L][::-1]
    out, ref = r2l.forward(batch), l2r.forward(mirrored)
    assert float(out.loss) == pytest.approx(float(ref.loss), rel=1e-13)
    for b, L in enumerate([6, 4, 2]):
        np.testing.assert_allclose(out.sequence_output[b, :L], ref.sequence_output[b, :L][::-1], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(out.extras["logits"][b, :L], ref.extras["logits"][b, :L][::-1], rtol=1e-12,
                                   atol=1e-13)
    g, g_ref = r2l.backward(), l2r.backward()
    for k in g:
        np.testing.assert_allclose(g[k], g_ref[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_right_to_left_order():
    order = right_to_left_order(np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]))
    np.testing.assert_array_equal(order, [[2, 1, 0, 3, 4], [4, 3, 2, 1, 0]])
    rows = np.arange(2)[:, None]
    np.testing.assert_array_equal(order[rows, order], np.tile(np.arange(5), (2, 1)))  # its own inverse
    with pytest.raises(ValueError, match="right padding"):
        right_to_left_order(np.array([[0, 1, 1]]))


# ---------------------------------------------------------------- the loss and the features
def test_lm_loss_is_mean_next_token_cross_entropy_over_real_tokens():
    model = BertLMHeadModel(SMALL, seed=0, dtype=np.float64)
    lengths = [7, 3, 1]
    batch = right_padded(np.random.default_rng(8), B=3, T=7, lengths=lengths)
    out = model.forward(batch)
    logits = out.extras["logits"]
    assert logits.shape == (3, 7, SMALL.vocab_size) and out.sequence_output.shape == (3, 7, 12)
    nll = []
    for b, L in enumerate(lengths):
        for t in range(L - 1):  # position t predicts token t + 1; a 1-token row predicts nothing
            row = logits[b, t]
            nll.append(np.log(np.exp(row - row.max()).sum()) + row.max() - row[batch["input_ids"][b, t + 1]])
    assert len(nll) == sum(L - 1 for L in lengths)
    assert float(out.loss) == pytest.approx(np.mean(nll), rel=1e-13)
    # labels can be given, -100 where a token is not a target
    labels = np.where(batch["attention_mask"] == 1, batch["input_ids"], -100)
    assert float(model.forward({**batch, "labels": labels}).loss) == float(out.loss)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 40\) or be -100"):
        model.forward({**batch, "labels": labels + 40})


def test_elmo_features_are_the_two_states_side_by_side():
    l2r = BertLMHeadModel(SMALL, seed=3, dtype=np.float64)
    r2l = BertLMHeadModel(SMALL, seed=4, dtype=np.float64, right_to_left=True)
    elmo = ElmoFeatures(l2r, r2l)
    batch = right_padded(np.random.default_rng(9), B=2, T=5, lengths=[5, 3])
    features = elmo.forward(batch)
    assert features.shape == (2, 5, 2 * SMALL.hidden_size)
    np.testing.assert_array_equal(features[..., :12], l2r.forward(batch).sequence_output)
    np.testing.assert_array_equal(features[..., 12:], r2l.forward(batch).sequence_output)
    # left half at t: tokens 0..t; right half at t: tokens t..L-1
    changed = {k: v.copy() for k, v in batch.items()}
    changed["input_ids"][0, 2] = 1 + batch["input_ids"][0, 2] % 9
    diff = np.abs(elmo.forward(changed) - features)[0]  # (T, 2H), row 0 where token 2 changed
    left, right = diff[:, :12].max(axis=-1) > 0, diff[:, 12:].max(axis=-1) > 0  # (T,) each
    np.testing.assert_array_equal(left, [False, False, True, True, True])
    np.testing.assert_array_equal(right, [True, True, True, False, False])
    assert (left | right).all()  # together, every position has read the changed token
    assert set(elmo.params) == {f"{d}.{k}" for d in ("left_to_right", "right_to_left") for k in l2r.params}
    with pytest.raises(ValueError, match="left-to-right model and a right_to_left=True model"):
        ElmoFeatures(r2l, l2r)


# ---------------------------------------------------------------- the token-classification head
def test_token_classification_ignores_minus_100_and_matches_the_formula():
    model = BertForTokenClassification(SMALL, num_labels=4, seed=0, dtype=np.float64)
    batch = right_padded(np.random.default_rng(10), B=2, T=5, lengths=[5, 3])
    labels = np.array([[-100, 1, 3, 0, -100], [-100, 2, -100, -100, -100]])
    out = model.forward({**batch, "labels": labels})
    logits = out.extras["logits"]
    assert logits.shape == (2, 5, 4) and out.sequence_output.shape == (2, 5, 12)
    scored = labels != -100
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    expected = -np.mean([log_p[b, t, labels[b, t]] for b, t in zip(*np.nonzero(scored))])
    assert float(out.loss) == pytest.approx(expected, rel=1e-13)
    grads = model.backward()
    assert {k: g.shape for k, g in grads.items()} == {k: p.shape for k, p in model.params.items()}
    assert "pooler.W" not in model.params  # every token is read, no [CLS] summary
    # nothing scored: loss 0 (not NaN), gradients 0
    out = model.forward({**batch, "labels": np.full((2, 5), -100)})
    assert float(out.loss) == 0.0 and all((g == 0).all() for g in model.backward().values())
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\) or be -100"):
        model.forward({**batch, "labels": np.full((2, 5), 4)})
    with pytest.raises(ValueError, match="labels has shape"):
        model.forward({**batch, "labels": np.zeros((2,), np.int64)})


def test_float32_stays_float32():
    batch = right_padded(np.random.default_rng(11), B=2, T=5, lengths=[5, 3])
    for model, extra in ((BertLMHeadModel(SMALL, right_to_left=True), {}),
                         (BertForTokenClassification(SMALL, num_labels=3), {"labels": np.ones((2, 5), np.int64)})):
        out = model.forward({**batch, **extra}, training=True)
        outputs = (out.sequence_output, out.extras["logits"], out.loss)
        assert {np.asarray(a).dtype for a in outputs} == {np.dtype(np.float32)}
        assert {g.dtype for g in model.backward().values()} == {np.dtype(np.float32)}
