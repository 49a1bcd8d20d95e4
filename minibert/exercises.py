"""Exercises: write a piece of BERT yourself, and let minibert check it.

    from minibert import exercises
    exercises.names()                            # what there is to write
    exercises.check("softmax_backward", mine)    # True if it passes; prints what is wrong if not

Your function takes exactly the arguments of minibert's function of the same name and
returns what it returns, so once yours passes you can read the real one side by side:
`exercises.reference("softmax_backward")` is that function. `check` runs yours on several
cases, edge cases included (a sequence of length 1, a row with one real token, repeated
tokens, float64), and compares it with minibert's own implementation and, for backward
passes, with central differences of the forward. It never raises: a wrong shape, the first
element that differs, a broken rule, or an exception inside your function is printed as one
verdict with a hint.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .data.instances import other_document
from .data.masking import NEVER_MASKED, exact_count, mask_tokens
from .layers import (
    attention_backward,
    attention_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    gelu_backward,
    gelu_forward,
    layernorm_backward,
    layernorm_forward,
    padding_mask_bias,
    softmax_backward,
    softmax_forward,
)
from .squad import best_span
from .tokenization import WordPieceTokenizer
from .tokenization.trainers import bpe_merge
from .tokenization.wordpiece import wordpiece_tokenize


class NotSolved(Exception):
    """The learner's function is still the placeholder."""


class Wrong(Exception):
    """What is wrong, and one hint."""

    def __init__(self, what: str, hint: str = ""):
        super().__init__(what)
        self.what, self.hint = what, hint


@dataclass
class Exercise:
    name: str
    reference: Callable
    task: str  # one line: what to write
    grade: Callable  # grade(fn) -> description of what passed; raises Wrong or NotSolved


EXERCISES: dict[str, Exercise] = {}


def _exercise(name: str, reference: Callable, task: str):
    def register(grade):
        EXERCISES[name] = Exercise(name, reference, task, grade)
        return grade
    return register


def names() -> list[str]:
    """Every exercise, in the order the notebooks meet them."""
    return list(EXERCISES)


def reference(name: str) -> Callable:
    """minibert's own function for the exercise `name`: read it once yours passes."""
    return _get(name).reference


def _get(name: str) -> Exercise:
    if name not in EXERCISES:
        raise KeyError(f"no exercise named {name!r}; exercises.names() lists them: {', '.join(EXERCISES)}")
    return EXERCISES[name]


def check(name: str, fn: Callable) -> bool:
    """Run `fn` on the exercise's cases; print the verdict; True if every case passed.

    With the environment variable MINIBERT_GRADING=1 (for nbgrader's autograder) a failed
    check also raises AssertionError, so the grader marks the cell as failed."""
    ok = _verdict(name, fn)
    if not ok and os.environ.get("MINIBERT_GRADING", "") not in ("", "0"):
        raise AssertionError(f"{name}: not passed")
    return ok


def _verdict(name: str, fn: Callable) -> bool:
    if name not in EXERCISES:
        print(f"{name}: no such exercise; exercises.names() lists them: {', '.join(EXERCISES)}")
        return False
    try:
        passed = EXERCISES[name].grade(fn)
    except NotSolved as e:
        print(f"{name}: not solved yet: {e}")
        return False
    except Wrong as e:
        print(f"{name}: wrong: {e.what}")
        if e.hint:
            print(f"  hint: {e.hint}")
        return False
    print(f"{name}: correct ({passed})")
    return True


# ------------------------------------------------------------------ running the learner's code
def _call(fn, args, case: str):
    """fn(*args) on copies of the arguments (a function that changes its inputs must not change
    the reference's; a random generator is passed as it is, so that its draws go on); its
    exceptions become verdicts."""
    shared = {id(a): a for a in args if isinstance(a, np.random.Generator)}
    try:
        out = fn(*copy.deepcopy(args, shared))
    except NotImplementedError:
        raise NotSolved("the function still raises NotImplementedError; replace that line with your code") from None
    except Exception as e:  # the learner's bug, reported as such
        raise Wrong(f"your function raised {type(e).__name__}: {e} (case: {case})",
                    "run it on that case yourself and read the traceback") from None
    if out is None or out is Ellipsis:
        raise NotSolved("the function returns None; write its body and return the result")
    return out


def _compare(got, want, what: str, case: str, rtol: float, hint: str) -> None:
    """got must be an array of want's shape and dtype, equal to rtol (relative to want's scale)."""
    if not hasattr(got, "shape"):
        raise Wrong(f"{what} is a {type(got).__name__}, expected an array of shape {want.shape} (case: {case})", hint)
    got = np.asarray(got)
    if got.shape != want.shape:
        raise Wrong(f"{what} has shape {got.shape}, expected {want.shape} (case: {case})",
                    "a gradient has the shape of what it differentiates")
    if want.dtype == np.float64 and got.dtype != np.float64:
        raise Wrong(f"{what} is {got.dtype} for float64 inputs (case: {case})",
                    "keep the inputs' dtype: no float32 constants or astype")
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-30)
    close = np.abs(got.astype(np.float64) - want) <= rtol * scale + 1e-30
    if not close.all():
        idx = tuple(int(i) for i in np.argwhere(~close)[0])
        g, w = float(got[idx]), float(want[idx])
        raise Wrong(f"{what}{list(idx)} = {g:.6g}, expected {w:.6g} (differs by {abs(g - w):.3g}; "
                    f"{int((~close).sum())} of {close.size} elements differ; case: {case})", hint)


def _numerical(f, x, dout, eps=1e-6):
    """Central differences of sum(f(x) * dout) with respect to x (float64)."""
    grad = np.zeros_like(x)
    flat, g = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = float((f(x) * dout).sum())
        flat[i] = old - eps
        minus = float((f(x) * dout).sum())
        flat[i] = old
        g[i] = (plus - minus) / (2 * eps)
    return grad


def _tuple(out, n: int, names: str, case: str):
    if n == 1:
        return (out,)
    if not isinstance(out, (tuple, list)) or len(out) != n:
        raise Wrong(f"expected {n} gradients ({names}), got {type(out).__name__}"
                    f"{f' of length {len(out)}' if isinstance(out, (tuple, list)) else ''} (case: {case})",
                    f"return them as a tuple in this order: {names}")
    return tuple(out)


def _backward_cases(fn, cases, n_out: int, names: str, hint: str) -> str:
    """cases: (label, the arguments, minibert's gradients, central differences or None per
    gradient). Compares with both; a gradient that minibert computes in float32 gets a looser tolerance."""
    for label, args, want, numeric in cases:
        got = _tuple(_call(fn, args, label), n_out, names, label)
        for k, (g, w) in enumerate(zip(got, want)):
            name = names.split(", ")[k]
            _compare(g, w, name, label, 1e-4 if np.asarray(w).dtype == np.float32 else 1e-7, hint)
            if numeric is not None and numeric[k] is not None:
                _compare(np.asarray(g, np.float64), numeric[k], name + " (against central differences)", label,
                         1e-5, hint)
    return f"{len(cases)} cases, against minibert and central differences"


# ------------------------------------------------------------------ tokenization
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a", "##a", "h", "##e", "##adquart",
         "##r", "##s", "head", "##quarters", "he", "oslo", "x"]


@_exercise("wordpiece_tokenize", wordpiece_tokenize,
           "split one word into the longest pieces in the vocabulary, '##' on continuations, [UNK] if stuck")
def _grade_wordpiece(fn) -> str:
    vocab = set(VOCAB)
    cases = [("unaffable", "continuations carry '##'"), ("headquarters", "take the longest piece first"),
             ("x", "a word of one character"), ("aaaa", "repeated pieces"), ("unaffablez", "an unmatched rest"),
             ("oslo", "a word that is one piece"), ("q", "a character not in the vocabulary"),
             ("a" * 101, "a word longer than max_chars")]
    for word, about in cases:
        want = wordpiece_tokenize(word, vocab)
        got = _call(fn, (word, vocab), f"{word[:20]!r}")
        if list(got) != want:
            hint = {"continuations carry '##'": "take the longest piece in the vocabulary first; a piece that does "
                                                "not start the word is looked up as '##' + piece",
                    "take the longest piece first": "try the whole rest first, then shorten it from the right",
                    "an unmatched rest": "if some part matches nothing, the whole word is [UNK], not just that part",
                    "a word longer than max_chars": "a word longer than max_chars is [UNK] without trying"}.get(
                        about, "greedy longest-match-first, left to right")
            raise Wrong(f"{word[:20]!r} ({about}) -> {list(got)}, expected {want}", hint)
    return f"{len(cases)} words"


@_exercise("bpe_merge", bpe_merge, "apply one BPE merge (a, b) -> ab to a word's list of symbols, left to right")
def _grade_bpe(fn) -> str:
    cases = [(["l", "o", "w", "</w>"], ("l", "o"), "one occurrence"),
             (["a", "a", "a", "</w>"], ("a", "a"), "overlapping pairs"),
             (["l", "o", "l", "o", "</w>"], ("l", "o"), "two occurrences"),
             (["x", "</w>"], ("l", "o"), "no occurrence"), (["x"], ("x", "x"), "a single symbol"),
             (["lo", "w", "</w>"], ("lo", "w"), "merged symbols merge again"),
             (["l", "o"], ("o", "l"), "the pair in the wrong order")]
    for symbols, pair, about in cases:
        want = bpe_merge(symbols, pair)
        got = _call(fn, (symbols, pair), f"{symbols}, {pair}")
        if list(got) != want:
            hint = {"overlapping pairs": "scan left to right and skip past a merged pair: a symbol is merged once",
                    "two occurrences": "merge every occurrence, not only the first"}.get(
                        about, "compare adjacent symbols with the pair, in order")
            raise Wrong(f"{symbols} with {pair} ({about}) -> {list(got)}, expected {want}", hint)
    return f"{len(cases)} words"


# ------------------------------------------------------------------ masking and NSP
def _masking_tokenizer():
    words = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "away", "and", "then", "slept"]
    return WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])


def _within(count: int, n: int, p: float, what: str, hint: str) -> None:
    """count ~ Binomial(n, p): refuse if it is more than 5 standard deviations off (a correct
    implementation fails this about once in 1.7 million checks)."""
    sd = (n * p * (1 - p)) ** 0.5
    if abs(count - n * p) > 5 * sd:
        raise Wrong(f"{what}: {count} of {n} ({count / n:.3f}), expected {p:.3f} +- {5 * sd / n:.3f} "
                    "(5 standard deviations of the binomial)", hint)


@_exercise("mask_tokens", mask_tokens,
           "choose 15% of the non-special tokens; replace 80% of them by [MASK], 10% by a random token, keep 10%")
def _grade_masking(fn) -> str:
    tok = _masking_tokenizer()
    sentence = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]", "a", "dog", "ran", "far", "away", "and",
                "then", "the", "dog", "slept", "[SEP]", "[PAD]", "[PAD]"]
    edge = {"one real token": ["[CLS]", "cat", "[SEP]"], "repeated tokens": ["[CLS]"] + ["the"] * 12 + ["[SEP]"],
            "padding": sentence}
    for label, tokens in edge.items():
        out = _call(fn, (tokens, tok, "exact", 0.15, 0), label)
        _masking_rules(out, tokens, label)
    # statistics over many draws, one seed each
    draws, chosen, at_position = 2000, Counter(), Counter()
    eligible = [i for i, t in enumerate(sentence) if t not in NEVER_MASKED]
    for seed in range(draws):
        out = _call(fn, (sentence, tok, "exact", 0.15, seed), f"seed {seed}")
        _masking_rules(out, sentence, f"seed {seed}")
        for i in out.positions:
            at_position[i] += 1
            chosen["mask" if out.tokens[i] == "[MASK]" else "same" if out.tokens[i] == sentence[i] else "random"] += 1
    n = sum(chosen.values())
    if len({tuple(_call(fn, (sentence, tok, "exact", 0.15, s), "seed").positions) for s in range(5)}) == 1:
        raise Wrong("five different seeds chose the same positions", "draw the positions with rng, the generator given")
    _within(chosen["mask"], n, 0.8, "chosen tokens replaced by [MASK]", "of the chosen tokens, 80% become [MASK]")
    # a random replacement can be the token itself (1 in the size of the replacement vocabulary)
    p_same = 0.1 + 0.1 / 13
    _within(chosen["same"], n, p_same, "chosen tokens left as they were",
            "10% of the chosen tokens stay unchanged (the model must not trust unmasked tokens blindly)")
    share = draws * exact_count(sum(t != "[PAD]" for t in sentence), 0.15, None) / len(eligible)
    for i in eligible:  # every eligible position equally likely: a binomial with p = share / draws
        _within(at_position[i], draws, share / draws, f"position {i} ({sentence[i]!r}) chosen",
                "choose uniformly among the non-special positions")
    return f"3 edge cases and {draws} draws: rules, the 80/10/10 split, flat selection"


def _masking_rules(out, tokens, label):
    for attr in ("tokens", "positions", "labels"):
        if not hasattr(out, attr):
            raise Wrong(f"the result has no .{attr} (case: {label})",
                        "return a MaskedTokens(tokens=..., positions=..., labels=..., kinds=..., spans=...)")
    if len(out.tokens) != len(tokens):
        raise Wrong(f"{len(out.tokens)} tokens out for {len(tokens)} in (case: {label})", "replace tokens; never drop or add")
    bad = [i for i in out.positions if tokens[i] in NEVER_MASKED]
    if bad:
        raise Wrong(f"position {bad[0]} ({tokens[bad[0]]}) was chosen (case: {label})",
                    "[CLS], [SEP] and [PAD] are never chosen")
    real = sum(t != "[PAD]" for t in tokens)
    want = exact_count(real, 0.15, None)
    if len(set(out.positions)) != want or len(out.positions) != want:
        raise Wrong(f"{len(out.positions)} positions chosen, expected {want} distinct = max(1, round(0.15 * {real} "
                    f"real tokens)) (case: {label})", "choose without replacement, google's exact count")
    if list(out.labels) != [tokens[i] for i in out.positions]:
        raise Wrong(f"labels {list(out.labels)} are not the original tokens at the chosen positions (case: {label})",
                    "the label is what was there before masking")
    changed = [i for i, (a, b) in enumerate(zip(out.tokens, tokens)) if a != b and i not in set(out.positions)]
    if changed:
        raise Wrong(f"position {changed[0]} changed but was not chosen (case: {label})", "only chosen tokens change")


@_exercise("other_document", other_document,
           "pick the document a random sentence B comes from: any document but this one, uniformly")
def _grade_other_document(fn) -> str:
    draws = 0
    for n, d in ((2, 0), (2, 1), (5, 0), (5, 4), (7, 3)):
        rng = np.random.default_rng(n * 10 + d)
        picks = Counter(int(_call(fn, (n, d, rng), f"num_documents {n}, d {d}")) for _ in range(4000))
        draws += 4000
        if d in picks:
            raise Wrong(f"with {n} documents and d = {d}, document {d} itself was picked {picks[d]} times of 4000",
                        "B from the same document may be its real next sentence: never pick d")
        outside = [k for k in picks if not 0 <= k < n]
        if outside:
            raise Wrong(f"document {outside[0]} picked, but there are only {n} (0..{n - 1})", "stay in range")
        for k in range(n):
            if k != d:
                _within(picks[k], 4000, 1 / (n - 1), f"with {n} documents and d = {d}, document {k}",
                        "every other document equally likely")
    return f"{draws} draws: never the same document, uniform over the others"


# ------------------------------------------------------------------ backward passes
def _rng(seed=0):
    return np.random.default_rng(seed)


@_exercise("softmax_backward", softmax_backward, "dx from dout for out = softmax(x) over the last axis")
def _grade_softmax(fn) -> str:
    cases = []
    for label, shape, dtype, masked in (("a length-1 row", (1, 1), np.float64, False), ("(2, 3, 5)", (2, 3, 5), np.float64, False),
                                        ("a row with one real score", (2, 4), np.float64, True),
                                        ("float32", (3, 6), np.float32, False)):
        x = _rng(1).normal(size=shape).astype(dtype)
        if masked:
            x[0, 1:] = np.finfo(dtype).min  # one real score: softmax is one-hot, its gradient 0
        dout = _rng(2).normal(size=shape).astype(dtype)
        out, cache = softmax_forward(x.copy())
        want = (softmax_backward(dout, cache),)
        numeric = None
        if dtype == np.float64 and not masked:
            numeric = (_numerical(lambda z: softmax_forward(z.copy())[0], x.copy(), dout),)
        cases.append((label, (dout, cache), want, numeric))
    return _backward_cases(fn, cases, 1, "dx", "dx = out * (dout - sum(dout * out)) along the last axis")


@_exercise("layernorm_backward", layernorm_backward, "dx, dgamma, dbeta for LayerNorm over the last axis")
def _grade_layernorm(fn) -> str:
    cases = []
    for label, shape, dtype in (("one row", (1, 4), np.float64), ("(2, 3, 8)", (2, 3, 8), np.float64),
                                ("float32", (4, 6), np.float32)):
        H = shape[-1]
        x = _rng(1).normal(size=shape).astype(dtype)
        gamma, beta = _rng(3).normal(size=H).astype(dtype), _rng(4).normal(size=H).astype(dtype)
        dout = _rng(2).normal(size=shape).astype(dtype)
        _, cache = layernorm_forward(x.copy(), gamma, beta)
        want = layernorm_backward(dout, cache)
        numeric = None
        if dtype == np.float64:
            numeric = (_numerical(lambda z: layernorm_forward(z.copy(), gamma, beta)[0], x.copy(), dout),
                       _numerical(lambda g: layernorm_forward(x.copy(), g, beta)[0], gamma.copy(), dout), None)
        cases.append((label, (dout, cache), want, numeric))
    return _backward_cases(fn, cases, 3, "dx, dgamma, dbeta",
                           "dx = rstd * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)), dx_hat = dout * gamma")


@_exercise("gelu_backward", gelu_backward, "dx for out = x * Phi(x) (exact GELU)")
def _grade_gelu(fn) -> str:
    cases = []
    for label, x, dtype in (("one value", np.array([0.3]), np.float64),
                            ("(3, 5) with large |x|", _rng(1).normal(size=(3, 5)) * 4, np.float64),
                            ("float32", _rng(5).normal(size=(4, 4)), np.float32)):
        x = x.astype(dtype)
        dout = _rng(2).normal(size=x.shape).astype(dtype)
        _, cache = gelu_forward(x.copy())
        want = (gelu_backward(dout, cache),)
        numeric = (_numerical(lambda z: gelu_forward(z.copy())[0], x.copy(), dout),) if dtype == np.float64 else None
        cases.append((label, (dout, cache), want, numeric))
    return _backward_cases(fn, cases, 1, "dx", "d/dx [x Phi(x)] = Phi(x) + x phi(x), phi the normal density")


@_exercise("cross_entropy_backward", cross_entropy_backward,
           "dlogits for the weighted mean cross-entropy of softmax(logits)")
def _grade_cross_entropy(fn) -> str:
    cases = []
    for label, N, C, dtype, dloss, ignored in (("one row", 1, 4, np.float64, 1.0, ()),
                                               ("(5, 7), two rows ignored", 5, 7, np.float64, 0.7, (1, 3)),
                                               ("float32", 6, 5, np.float32, 1.0, (0,))):
        logits = _rng(1).normal(size=(N, C)).astype(dtype) * 3
        labels = _rng(2).integers(C, size=N)
        weights = np.ones(N, dtype)
        for i in ignored:
            weights[i], labels[i] = 0, -100  # ignored rows may carry any label
        _, cache = cross_entropy_forward(logits.copy(), labels, weights)
        want = (cross_entropy_backward(dloss, cache),)
        numeric = None
        if dtype == np.float64:
            numeric = (_numerical(lambda z: np.asarray(cross_entropy_forward(z.copy(), labels, weights)[0]),
                                  logits.copy(), np.asarray(dloss)),)
        cases.append((label, (dloss, cache), want, numeric))
    return _backward_cases(fn, cases, 1, "dlogits",
                           "dlogits = (softmax - onehot(label)) * weight / sum(weights) * dloss, row by row")


@_exercise("attention_backward", attention_backward,
           "dx, dW_qkv, db_qkv, dW_o, db_o for multi-head self-attention with a padding mask")
def _grade_attention(fn) -> str:
    cases = []
    for label, B, T, H, A, lengths, dtype in (("length 1", 1, 1, 4, 2, (1,), np.float64),
                                              ("a row with one real token", 2, 3, 4, 2, (3, 1), np.float64),
                                              ("float32", 2, 4, 8, 2, (4, 2), np.float32)):
        r = _rng(7)
        x = r.normal(size=(B, T, H)).astype(dtype)
        W_qkv, b_qkv = (r.normal(size=(H, 3 * H)) * 0.5).astype(dtype), r.normal(size=3 * H).astype(dtype) * 0.1
        W_o, b_o = (r.normal(size=(H, H)) * 0.5).astype(dtype), r.normal(size=H).astype(dtype) * 0.1
        mask = (np.arange(T)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
        bias = padding_mask_bias(mask, dtype)
        dout = r.normal(size=(B, T, H)).astype(dtype)

        def forward(x=x, W_qkv=W_qkv, b_qkv=b_qkv, W_o=W_o, b_o=b_o):
            return attention_forward(x.copy(), W_qkv, b_qkv, W_o, b_o, bias, A)[0]

        _, cache = attention_forward(x.copy(), W_qkv, b_qkv, W_o, b_o, bias, A)
        want = attention_backward(dout, cache)
        numeric = None
        if dtype == np.float64:
            numeric = (_numerical(lambda z: forward(x=z), x.copy(), dout),
                       _numerical(lambda w: forward(W_qkv=w), W_qkv.copy(), dout), None,
                       _numerical(lambda w: forward(W_o=w), W_o.copy(), dout), None)
        cases.append((label, (dout, cache), want, numeric))
    return _backward_cases(fn, cases, 5, "dx, dW_qkv, db_qkv, dW_o, db_o",
                           "go through the forward in reverse: output projection, probs @ v, softmax, "
                           "the 1/sqrt(D) scaling, q @ k^T, then the input projection")


# ------------------------------------------------------------------ question answering
@_exercise("best_span", best_span, "the best answer span (i, j): allowed ends, i <= j, at most max_answer_length")
def _grade_best_span(fn) -> str:
    cases = [
        ("end before the best start", [0, 1, 5, 0, 0], [0, 4, 0, 1, 0], [0, 1, 1, 1, 1], 30),
        ("a start outside the context", [9, 1, 2, 0, 0], [0, 0, 1, 3, 0], [0, 1, 1, 1, 1], 30),
        ("a span longer than max_answer_length", [0, 5, 0, 0, 1], [0, 0, 0, 0, 5], [0, 1, 1, 1, 1], 2),
        ("a one-token span", [0, 0, 3, 0], [0, 0, 3, 0], [0, 1, 1, 1], 30),
        ("a context of one token", [1.0, 2.0], [0.5, -1.0], [0, 1], 30),
    ]
    for label, s, e, allowed, max_len in cases:
        args = (np.array(s, float), np.array(e, float), np.array(allowed, bool), max_len)
        want = best_span(*args)
        got = _call(fn, args, label)
        if tuple(int(v) for v in got) != want:
            hint = {"end before the best start": "score every valid pair i <= j together; two separate argmaxes "
                                                 "can give an end before the start",
                    "a start outside the context": "both ends must be allowed (context tokens)",
                    "a span longer than max_answer_length": "j - i + 1 <= max_answer_length"}.get(
                        label, "the best valid pair of start_logits[i] + end_logits[j]")
            raise Wrong(f"{label}: got {tuple(got)}, expected {want}", hint)
    return f"{len(cases)} cases"
