"""The tiny GLUE's data and metrics: labels known by construction, metrics as GLUE computes them."""

import math
import re
from collections import Counter

import pytest

from minibert.data.corpus import CITY_COUNTRY, COMPANY_NAMES, COUNTRIES, FIRST_NAMES, JOBS, LAST_NAMES, PROPER_NOUNS
from minibert.data.glue import (GLUE_TASKS, accuracy, entity_f1, entity_spans, f1_of_positive, generate_acceptable,
                                generate_entailment, generate_entities, generate_paraphrase, matthews_corrcoef)


# ------------------------------------------------------------------ metrics, against hand computations
def test_matthews_correlation_by_hand():
    gold, pred = [1, 1, 1, 0, 0, 0, 1, 0], [1, 1, 0, 0, 0, 1, 1, 0]  # TP 3, TN 3, FP 1, FN 1
    assert matthews_corrcoef(gold, pred) == pytest.approx((9 - 1) / math.sqrt(4 * 4 * 4 * 4))
    assert matthews_corrcoef(gold, [1 - g for g in gold]) == pytest.approx(-1.0)
    assert matthews_corrcoef(gold, [1] * 8) == 0.0  # a constant guess carries no information


def test_f1_and_accuracy_by_hand():
    gold, pred = [1, 1, 1, 0, 0], [1, 0, 1, 1, 0]  # TP 2, FP 1, FN 1
    assert f1_of_positive(gold, pred) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert f1_of_positive([0, 0], [0, 0]) == 0.0
    assert accuracy(gold, pred) == pytest.approx(3 / 5)


def test_entity_spans_and_f1_by_hand():
    assert entity_spans(["B-PER", "I-PER", "O", "B-CITY", "I-CITY", "B-CITY"]) == \
        {("PER", 0, 1), ("CITY", 3, 4), ("CITY", 5, 5)}
    assert entity_spans(["O", "I-ORG", "I-ORG"]) == {("ORG", 1, 2)}  # an I- without a B- starts one
    assert entity_spans(["B-PER", "I-CITY"]) == {("PER", 0, 0), ("CITY", 1, 1)}
    gold = [["B-PER", "I-PER", "O", "B-CITY"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-CITY"], ["B-ORG", "O"]]  # the person's end is wrong: 2 of 3 right
    assert entity_f1(gold, pred) == pytest.approx(2 * 2 / (3 + 3))
    assert entity_f1(gold, gold) == 1.0


# ------------------------------------------------------------------ the tasks' data
@pytest.mark.parametrize("name", list(GLUE_TASKS))
def test_every_task_is_deterministic_and_balanced(name):
    task = GLUE_TASKS[name]
    examples = task.generate(400, 0)
    assert examples == task.generate(400, 0) and examples != task.generate(400, 1)
    if task.kind == "tagging":
        assert all(len(e["words"]) == len(e["tags"]) and set(e["tags"]) <= set(task.labels) for e in examples)
    else:
        assert Counter(e["label"] for e in examples) == {0: 200, 1: 200}
        assert all(("text_b" in e) == (task.kind == "pair") for e in examples)


def _facts(text):
    """The words that carry a fact in these templates: names and jobs."""
    return Counter(w for w in re.findall(r"[a-z]+", text.lower()) if w in PROPER_NOUNS or w in JOBS)


def test_a_paraphrase_says_the_same_names_and_a_non_paraphrase_changes_one():
    for e in generate_paraphrase(600, seed=0):
        a, b = _facts(e["text"]), _facts(e["text_b"])
        if e["label"] == 1:
            assert a == b, e
        else:
            assert sum((a - b).values()) == 1 and sum((b - a).values()) == 1, e


def test_entailment_follows_exactly_when_the_city_is_in_the_country():
    for e in generate_entailment(600, seed=0):
        city = next(w for w in re.findall(r"[a-z]+", e["text"].lower()) if w in CITY_COUNTRY)
        country = next(w for w in re.findall(r"[a-z]+", e["text_b"].lower()) if w in COUNTRIES)
        assert (CITY_COUNTRY[city] == country) == (e["label"] == 1), e


def test_an_unacceptable_sentence_is_never_one_the_world_writes():
    examples = generate_acceptable(2000, seed=0)
    good = {e["text"] for e in examples if e["label"] == 1}
    bad = [e["text"] for e in examples if e["label"] == 0]
    assert not good & set(bad)
    assert all(re.fullmatch(r"[A-Z0-9][^.]*\.", t) for t in good | set(bad))  # cased and ended alike


def test_every_name_is_tagged_with_its_kind():
    kinds = {**{w: "PER" for w in (*FIRST_NAMES, *LAST_NAMES)}, **{w: "CITY" for w in CITY_COUNTRY},
             **{w: "COUNTRY" for w in COUNTRIES}, **{w: "ORG" for w in COMPANY_NAMES}}
    seen = Counter()
    for e in generate_entities(1000, seed=0):
        for word, tag in zip(e["words"], e["tags"]):
            if word.lower() in kinds:
                assert tag[2:] == kinds[word.lower()], (word, tag, e)
                seen[tag[2:]] += 1
            else:
                assert tag == "O", (word, tag, e)
        for i, tag in enumerate(e["tags"]):
            if tag.startswith("I-"):
                assert e["tags"][i - 1][2:] == tag[2:], e
    assert set(seen) == {"PER", "CITY", "COUNTRY", "ORG"}, seen
