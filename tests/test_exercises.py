"""The grader learners call: it accepts minibert's own functions and rejects planted mistakes,
each with a verdict that names what is wrong."""

import math

import numpy as np
import pytest

from minibert import exercises
from minibert.data.masking import MaskedTokens
from minibert.layers.linear import linear_backward
from minibert.layers.losses import cross_entropy_backward
from minibert.layers.softmax import softmax_backward


@pytest.mark.parametrize("name", exercises.names())
def test_minibert_s_own_function_passes(name, capsys):
    assert exercises.check(name, exercises.reference(name)), capsys.readouterr().out
    assert capsys.readouterr().out.startswith(f"{name}: correct")


def test_every_exercise_the_issue_names_exists():
    assert {"wordpiece_tokenize", "bpe_merge", "mask_tokens", "other_document", "softmax_backward",
            "layernorm_backward", "gelu_backward", "cross_entropy_backward", "attention_backward",
            "best_span"} <= set(exercises.names())


# ------------------------------------------------------------------ planted mistakes
def wordpiece_shortest_first(word, vocab, unk_token="[UNK]", max_chars=100):
    pieces, start = [], 0
    while start < len(word):
        for end in range(start + 1, len(word) + 1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


def wordpiece_unk_only_the_rest(word, vocab, unk_token="[UNK]", max_chars=100):
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start and (word[start:end] if start == 0 else "##" + word[start:end]) not in vocab:
            end -= 1
        if end == start:
            return pieces + [unk_token]
        pieces.append(word[start:end] if start == 0 else "##" + word[start:end])
        start = end
    return pieces


def bpe_right_to_left(symbols, pair):
    out, i = [], len(symbols) - 1
    while i >= 0:
        if i > 0 and (symbols[i - 1], symbols[i]) == pair:
            out.insert(0, pair[0] + pair[1])
            i -= 2
        else:
            out.insert(0, symbols[i])
            i -= 1
    return out


def bpe_first_only(symbols, pair):
    for i in range(len(symbols) - 1):
        if (symbols[i], symbols[i + 1]) == pair:
            return symbols[:i] + [pair[0] + pair[1]] + symbols[i + 2:]
    return list(symbols)


def masking(can_pick_specials=False, all_mask=False):
    def mask_tokens(tokens, tokenizer, strategy="exact", mask_prob=0.15, rng=None, **options):
        rng = np.random.default_rng(rng)
        candidates = [i for i, t in enumerate(tokens) if can_pick_specials or t not in ("[CLS]", "[SEP]", "[PAD]")]
        n = max(1, round(sum(t != "[PAD]" for t in tokens) * mask_prob))
        positions = sorted(int(i) for i in rng.choice(candidates, size=min(n, len(candidates)), replace=False))
        out = list(tokens)
        words = [w for w in tokenizer.vocab if not w.startswith("[")]
        for i in positions:
            u = 0.0 if all_mask else rng.random()
            out[i] = "[MASK]" if u < 0.8 else words[int(rng.integers(len(words)))] if u < 0.9 else tokens[i]
        return MaskedTokens(tokens=out, positions=positions, labels=[tokens[i] for i in positions],
                            kinds=["mask"] * len(positions), spans=[])
    return mask_tokens


def other_document_may_repeat(num_documents, d, rng):
    return int(rng.integers(num_documents))


def other_document_not_uniform(num_documents, d, rng):
    other = int(rng.integers(num_documents - 1))
    return d + 1 if other == d else other  # never d, but d + 1 comes twice as often


def softmax_without_the_subtraction(dout, cache):
    return dout * cache


def softmax_without_the_output_factor(dout, cache):
    return dout - (dout * cache).sum(axis=-1, keepdims=True)


def layernorm_without_the_x_hat_term(dout, cache):
    x_hat, rstd, gamma = cache
    H = x_hat.shape[-1]
    dx_hat = dout * gamma
    dx = (dx_hat - dx_hat.mean(axis=-1, keepdims=True)) * rstd
    return dx, (dout * x_hat).reshape(-1, H).sum(0), dout.reshape(-1, H).sum(0)


def layernorm_with_dgamma_wrong(dout, cache):
    from minibert.layers.layernorm import layernorm_backward

    dx, _, dbeta = layernorm_backward(dout, cache)
    return dx, dbeta.copy(), dbeta


def gelu_only_phi(dout, cache):
    x, cdf = cache
    return dout * cdf


def gelu_tanh_derivative(dout, cache):
    x, _ = cache
    u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    return dout * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x))


def cross_entropy_mean_over_all_rows(dloss, cache):
    probs, labels, weights, denom = cache
    d = probs.copy()
    d[np.arange(len(labels)), labels] -= 1
    return d * (weights * dloss / len(labels))[:, None]


def cross_entropy_without_the_onehot(dloss, cache):
    probs, labels, weights, denom = cache
    return probs * (weights * dloss / denom)[:, None]


def attention(scale=True, through_softmax=True):
    def attention_backward(dout, cache):
        q, k, v, probs = cache["q"], cache["k"], cache["v"], cache["probs"]
        B, A, T, D = q.shape
        dctx, dW_o, db_o = linear_backward(dout, cache["out"])
        dctx = dctx.reshape(B, T, A, D).transpose(0, 2, 1, 3)
        dprobs = dctx @ v.transpose(0, 1, 3, 2)
        dv = probs.transpose(0, 1, 3, 2) @ dctx
        dscores = softmax_backward(dprobs, probs) if through_softmax else dprobs
        if scale:
            dscores = dscores / math.sqrt(D)
        dq, dk = dscores @ k, dscores.transpose(0, 1, 3, 2) @ q
        dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(B, T, 3 * A * D)
        dx, dW_qkv, db_qkv = linear_backward(dqkv, cache["qkv"])
        return dx, dW_qkv, db_qkv, dW_o, db_o
    return attention_backward


def best_span_independent_argmax(start_logits, end_logits, allowed, max_answer_length=30):
    s = np.where(allowed, start_logits, -np.inf)
    e = np.where(allowed, end_logits, -np.inf)
    return int(np.argmax(s)), int(np.argmax(e))


def best_span_ignores_allowed(start_logits, end_logits, allowed, max_answer_length=30):
    from minibert.squad import best_span

    return best_span(start_logits, end_logits, np.ones_like(allowed), max_answer_length)


PLANTED = [
    ("wordpiece_tokenize", wordpiece_shortest_first, "longest piece"),
    ("wordpiece_tokenize", wordpiece_unk_only_the_rest, "the whole word is [UNK]"),
    ("bpe_merge", bpe_right_to_left, "left to right"),
    ("bpe_merge", bpe_first_only, "every occurrence"),
    ("mask_tokens", masking(can_pick_specials=True), "[CLS], [SEP] and [PAD] are never chosen"),
    ("mask_tokens", masking(all_mask=True), "replaced by [MASK]"),
    ("other_document", other_document_may_repeat, "itself was picked"),
    ("other_document", other_document_not_uniform, "equally likely"),
    ("softmax_backward", softmax_without_the_subtraction, "dx["),
    ("softmax_backward", softmax_without_the_output_factor, "dx["),
    ("layernorm_backward", layernorm_without_the_x_hat_term, "dx["),
    ("layernorm_backward", layernorm_with_dgamma_wrong, "dgamma["),
    ("gelu_backward", gelu_only_phi, "dx["),
    ("gelu_backward", gelu_tanh_derivative, "dx["),
    ("cross_entropy_backward", cross_entropy_mean_over_all_rows, "dlogits["),
    ("cross_entropy_backward", cross_entropy_without_the_onehot, "dlogits["),
    ("attention_backward", attention(scale=False), "dx["),
    ("attention_backward", attention(through_softmax=False), "dx["),
    ("best_span", best_span_independent_argmax, "end before the best start"),
    ("best_span", best_span_ignores_allowed, "outside the context"),
]


@pytest.mark.parametrize("name, wrong, says", PLANTED, ids=[f"{n}-{f.__name__}-{i}" for i, (n, f, _) in
                                                            enumerate(PLANTED)])
def test_a_planted_mistake_is_rejected_with_what_is_wrong(name, wrong, says, capsys):
    assert not exercises.check(name, wrong)
    out = capsys.readouterr().out
    assert out.startswith(f"{name}: wrong: ") and says in out, out
    assert "hint: " in out, out


def test_every_exercise_has_two_planted_mistakes():
    counts = {name: sum(n == name for n, _, _ in PLANTED) for name in exercises.names()}
    assert min(counts.values()) >= 2, counts


def test_a_float32_gradient_gets_float32_tolerance(capsys):
    """A right answer computed in float32 in another order can differ from minibert's in its last few
    bits. The grader must judge a float32 gradient at float32 precision, whatever the case's first
    argument is (cross-entropy's first argument is the scalar dloss): here the right answer, off by
    four units in the last place."""
    def cross_entropy_off_by_four_ulps(dloss, cache):
        d = cross_entropy_backward(dloss, cache)
        for _ in range(4):
            d = np.nextafter(d, np.where(d < 0, -np.inf, np.inf).astype(d.dtype))
        return d

    assert exercises.check("cross_entropy_backward", cross_entropy_off_by_four_ulps), capsys.readouterr().out


# ------------------------------------------------------------------ what a learner sees
def test_the_placeholder_is_not_solved_yet(capsys):
    def placeholder(dout, cache):
        raise NotImplementedError

    def ellipsis(dout, cache):
        ...

    for fn in (placeholder, ellipsis):
        assert not exercises.check("softmax_backward", fn)
        assert capsys.readouterr().out.startswith("softmax_backward: not solved yet: ")


def test_an_exception_in_the_learner_s_function_is_reported_with_its_message(capsys):
    def broken(dout, cache):
        return dout @ np.ones((3, 3, 3))

    assert not exercises.check("softmax_backward", broken)
    out = capsys.readouterr().out
    assert "your function raised ValueError" in out and "case:" in out and "Traceback" not in out


def test_a_wrong_shape_is_named(capsys):
    assert not exercises.check("softmax_backward", lambda dout, cache: dout.sum(axis=-1))
    assert "has shape" in capsys.readouterr().out


def test_float32_for_float64_inputs_is_named(capsys):
    assert not exercises.check("gelu_backward", lambda dout, cache: exercises.reference("gelu_backward")(
        dout, cache).astype(np.float32))
    assert "float32 for float64 inputs" in capsys.readouterr().out


def test_a_function_that_changes_its_inputs_cannot_fool_the_check(capsys):
    def overwrite_cache(dout, cache):
        cache *= 0  # the probabilities the reference needs
        return dout * 0

    assert not exercises.check("softmax_backward", overwrite_cache)


def test_an_unknown_name_lists_the_exercises(capsys):
    assert not exercises.check("sofmax_backward", print)
    assert "softmax_backward" in capsys.readouterr().out
    with pytest.raises(KeyError, match="softmax_backward"):
        exercises.reference("sofmax_backward")


def test_under_a_grader_a_failed_check_raises(monkeypatch, capsys):
    monkeypatch.setenv("MINIBERT_GRADING", "1")
    with pytest.raises(AssertionError, match="softmax_backward"):
        exercises.check("softmax_backward", lambda dout, cache: dout)
    assert exercises.check("softmax_backward", exercises.reference("softmax_backward"))
