"""T5's span corruption (property-based and statistical) and its text-to-text view of the tasks."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minibert as mb
from minibert.data import noise_spans, side_by_side, span_corruption, text_to_text, undo_span_corruption
from minibert.data.glue import GLUE_TASKS
from minibert.data.t5 import entity_target, segment_lengths, sentinel


# ------------------------------------------------------------------ properties of one draw
@settings(max_examples=300, deadline=None)
@given(length=st.integers(2, 400), density=st.floats(0.01, 0.6), mean=st.floats(1.0, 12.0), seed=st.integers(0, 2**32 - 1))
def test_noise_spans_properties(length, density, mean, seed):
    spans = noise_spans(length, np.random.default_rng(seed), noise_density=density, mean_span_length=mean)
    wanted = round(length * density)
    num_noise = sum(end - start for start, end in spans)
    if 1 <= wanted <= length - 1:
        assert num_noise == wanted  # exactly round(length * density) tokens
    else:  # T5 keeps at least one noise token and at least one kept token
        assert num_noise == (1 if wanted < 1 else length - 1)
    assert len(spans) == min(max(round(num_noise / mean), 1), num_noise, length - num_noise)
    assert spans[0][0] >= 1  # the first run is kept, as in T5
    assert spans[-1][1] == length  # ... and the last is noise
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        assert e0 < s1  # disjoint, ascending, and a kept token between two spans (else they would be one span)
    assert all(0 <= s < e <= length for s, e in spans)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(2, 200), seed=st.integers(0, 2**32 - 1))
def test_span_corruption_puts_back_together(length, seed):
    tokens = [f"w{i}" for i in range(length)]
    spans = noise_spans(length, np.random.default_rng(seed))
    inputs, targets = span_corruption(tokens, spans)
    assert undo_span_corruption(inputs, targets) == tokens
    k = len(spans)
    assert [t for t in inputs if t.startswith("<extra_id_")] == [sentinel(i) for i in range(k)]
    assert [t for t in targets if t.startswith("<extra_id_")] == [sentinel(i) for i in range(k + 1)]
    assert targets[0] == sentinel(0) and targets[-1] == sentinel(k)
    assert len(inputs) == length - sum(e - s for s, e in spans) + k  # each span became one sentinel


def test_span_corruption_by_hand():
    tokens = "thank you for inviting me to your party last week .".split()
    inputs, targets = span_corruption(tokens, [(2, 4), (8, 9)])  # the paper's figure 2, our tokens
    assert inputs == "thank you <extra_id_0> me to your party <extra_id_1> week .".split()
    assert targets == "<extra_id_0> for inviting <extra_id_1> last <extra_id_2>".split()


# ------------------------------------------------------------------ the distribution over many draws
def composition_part_moments(n: int, k: int) -> tuple:
    """Mean and variance of one part when n is split into k positive parts, every split equally
    likely: P(part = l) = C(n - l - 1, k - 2) / C(n - 1, k - 1) (the other k - 1 parts share
    n - l). Derived here from the counts, not from the code under test."""
    if k == 1:
        return float(n), 0.0
    total = math.comb(n - 1, k - 1)
    p = {ell: math.comb(n - ell - 1, k - 2) / total for ell in range(1, n - k + 2)}
    assert abs(sum(p.values()) - 1) < 1e-12
    mean = sum(ell * q for ell, q in p.items())
    return mean, sum((ell - mean) ** 2 * q for ell, q in p.items())


def test_span_lengths_over_many_draws():
    # length 100: 15 noise tokens in round(15 / 3) = 5 spans, 85 kept tokens in 5 runs
    rng, draws = np.random.default_rng(0), 4000
    samples = [noise_spans(100, rng) for _ in range(draws)]
    assert all(sum(e - s for s, e in spans) == 15 and len(spans) == 5 for spans in samples)
    first_span = np.array([spans[0][1] - spans[0][0] for spans in samples])
    first_start = np.array([spans[0][0] for spans in samples])  # the length of the first kept run
    for values, (mean, var) in ((first_span, composition_part_moments(15, 5)),
                                (first_start, composition_part_moments(85, 5))):
        bound = 4 * math.sqrt(var / draws)  # 4 standard errors: a false alarm about once in 16,000 runs
        assert abs(values.mean() - mean) < bound, (values.mean(), mean, bound)
        assert abs(values.var() - var) < 0.2 * var  # the spread, too: not every span of length 3
    assert composition_part_moments(15, 5)[0] == pytest.approx(3.0)  # the mean span length T5 asks for
    # the mean over all spans of all draws is mean_span_length up to the rounding of the span count
    rng = np.random.default_rng(1)
    lengths = [e - s for L in range(20, 300) for s, e in noise_spans(L, rng)]
    assert abs(np.mean(lengths) - 3.0) < 0.15


def test_segment_lengths_is_uniform_over_splits():
    # 5 items in 3 parts: C(4, 2) = 6 splits, each drawn about 1/6 of the time
    rng, draws = np.random.default_rng(2), 6000
    counts = {}
    for _ in range(draws):
        key = tuple(segment_lengths(5, 3, rng))
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6 and all(sum(k) == 5 and min(k) >= 1 for k in counts)
    sd = math.sqrt(draws * (1 / 6) * (5 / 6))
    assert all(abs(c - draws / 6) < 4 * sd for c in counts.values()), counts


# ------------------------------------------------------------------ text to text
def test_text_to_text_for_every_task():
    for name, task in GLUE_TASKS.items():
        for example in task.generate(20, seed=0):
            source, target = text_to_text(name, example)
            assert source.startswith({"acceptable": "cola sentence: ", "paraphrase": "mrpc sentence1: ",
                                      "entailment": "rte sentence1: ", "entities": "ner sentence: "}[name])
            if "label" in example:  # T5's target word for the label the example has
                label = task.labels[example["label"]]
                assert target == {"unacceptable": "unacceptable", "acceptable": "acceptable",
                                  "different": "not_equivalent", "paraphrase": "equivalent",
                                  "not entailed": "not_entailment", "entailed": "entailment"}[label]
            if "text_b" in example:
                assert f" sentence2: {example['text_b']}" in source
    qa = mb.generate_qa(3, seed=0)[0]
    source, target = text_to_text("qa", qa)
    assert source == f"question: {qa['question']} context: {qa['context']}" and target == qa["answers"][0]["text"]
    with pytest.raises(ValueError, match="unknown task 'sst2'"):
        text_to_text("sst2", {"text": "x", "label": 0})


def test_entity_target():
    words = "Anna Berg moved from Oslo in Norway to Saint Paul".split()
    tags = ["B-PER", "I-PER", "O", "O", "B-CITY", "O", "B-COUNTRY", "O", "B-CITY", "I-CITY"]
    assert entity_target(words, tags) == "Anna Berg PER ; Oslo CITY ; Norway COUNTRY ; Saint Paul CITY"
    assert entity_target(["an", "I-CITY", "start"], ["O", "I-CITY", "O"]) == "I-CITY CITY"  # I- without B- starts one
    assert entity_target(["x"], ["O"]) == ""


def test_side_by_side_shows_the_same_sentence_both_ways():
    docs = mb.generate_corpus(40, seed=0)
    tokenizer = mb.WordPieceTokenizer(mb.train_wordpiece([" ".join(d) for d in docs], 3000))
    tokens = tokenizer.tokenize("Oslo is the capital of Norway and it is famous for its harbor.")
    shown = side_by_side(tokens, tokenizer, seed=3)
    assert shown["text"] == " ".join(tokens)
    assert len(shown["bert input"].split()) == len(tokens)  # BERT keeps every position
    inputs, targets = shown["t5 input"].split(), shown["t5 target"].split()
    assert undo_span_corruption(inputs, targets) == tokens and len(inputs) < len(tokens)
