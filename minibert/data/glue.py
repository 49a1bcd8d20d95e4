"""A tiny GLUE on the generated world: four labelled tasks whose answers are known, each with
GLUE's kind of metric.

| task        | input             | like GLUE's     | label                                     | metric            |
| ----------- | ----------------- | --------------- | ----------------------------------------- | ----------------- |
| acceptable  | one sentence      | CoLA            | a sentence of the world, or it with two words swapped | Matthews corr. |
| paraphrase  | sentence pair     | MRPC, QQP       | the same fact in another template, or one fact changed | F1 of "yes" |
| entailment  | sentence pair     | RTE             | does B follow from A and what the world always holds | accuracy |
| entities    | one sentence      | (CoNLL NER)     | a tag per word: PER, CITY, COUNTRY, ORG, O (BIO) | entity F1 |

The pair tasks are built so that the surface cannot give the label away: a paraphrase and a
non-paraphrase use the same two templates, and differ in one fact; an entailed and a
non-entailed hypothesis use the same template and differ in one country. Entailment needs
the world's knowledge ("Bergen is in Norway"), which pre-training can supply and a model
from scratch must learn from the labelled pairs alone.

Examples are dicts: {"text", "label"} or {"text", "text_b", "label"} (label an index into the
task's labels), or {"words", "tags"} for tagging (tag names, one per word).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Callable

from .corpus import (CITY_COUNTRY, COMPANY_NAMES, COUNTRIES, DOCUMENT_KINDS, FIRST_NAMES, JOBS, LAST_NAMES,
                     PROPER_NOUNS, World, with_article, capitalize_names, document_facts, pick)


# ------------------------------------------------------------------ metrics, as GLUE reports them
def accuracy(gold, pred) -> float:
    return sum(g == p for g, p in zip(gold, pred)) / max(len(gold), 1)


def f1_of_positive(gold, pred, positive=1) -> float:
    """F1 of the positive class (MRPC, QQP): 2 TP / (2 TP + FP + FN)."""
    tp = sum(g == p == positive for g, p in zip(gold, pred))
    wrong = sum((g == positive) != (p == positive) for g, p in zip(gold, pred))
    return 2 * tp / (2 * tp + wrong) if tp else 0.0


def matthews_corrcoef(gold, pred) -> float:
    """(TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) for two classes (CoLA); 0 when a
    factor is 0, as scikit-learn defines it (a constant prediction carries no information)."""
    tp = sum(g == 1 and p == 1 for g, p in zip(gold, pred))
    tn = sum(g == 0 and p == 0 for g, p in zip(gold, pred))
    fp = sum(g == 0 and p == 1 for g, p in zip(gold, pred))
    fn = sum(g == 1 and p == 0 for g, p in zip(gold, pred))
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denom if denom else 0.0


def entity_spans(tags) -> set:
    """BIO tags -> {(kind, first word, last word)}; an I- without its B- starts an entity (as conlleval)."""
    spans, start, kind = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        inside = tag.startswith("I-") and kind == tag[2:]
        if start is not None and not inside:
            spans.add((kind, start, i - 1))
            start, kind = None, None
        if tag != "O" and not inside:
            start, kind = i, tag[2:]
    return spans


def entity_f1(gold_sequences, pred_sequences) -> float:
    """Entity-level F1 over all sentences (CoNLL): an entity counts only if kind and both ends match."""
    tp = n_gold = n_pred = 0
    for gold, pred in zip(gold_sequences, pred_sequences):
        g, p = entity_spans(gold), entity_spans(pred)
        tp, n_gold, n_pred = tp + len(g & p), n_gold + len(g), n_pred + len(p)
    return 2 * tp / (n_gold + n_pred) if tp else 0.0


# ------------------------------------------------------------------ acceptable (CoLA)
def generate_acceptable(n: int, seed: int = 0) -> list:
    """Sentences of the world (label 1) and the same kind of sentence with two neighbouring
    words swapped (label 0), half and half. A swap almost always breaks the sentence (the
    world's templates have no two words that may trade places); both are cased as sentences."""
    world, rng = World(seed), random.Random(seed + 11)
    examples = []
    while len(examples) < n:
        facts = document_facts(world, rng, DOCUMENT_KINDS[len(examples) % len(DOCUMENT_KINDS)])
        words = pick(rng, facts).sentence[:-1].split()  # without the final period
        label = len(examples) % 2
        if label == 0:
            i = rng.randrange(len(words) - 1)
            if words[i].lower() == words[i + 1].lower() or {words[i].lower(), words[i + 1].lower()} <= PROPER_NOUNS:
                continue  # "Anna Berg" -> "Berg Anna" is still a name
            words[i], words[i + 1] = words[i + 1], words[i]
        # re-cased as a sentence, so that a capital letter in the middle cannot give a swap away
        examples.append({"text": _sentence(" ".join(words) + "."), "label": label})
    return examples


# ------------------------------------------------------------------ paraphrase (MRPC)
# One fact, several ways to say it; {s} is the subject, {o} the object.
PARAPHRASE_TEMPLATES = {
    "city in country": ["{s} is a city in {o}.", "{s} lies in {o}.", "The city of {s} is in {o}."],
    "capital": ["The capital of {s} is {o}.", "{o} is the capital of {s}.", "{s} has {o} as its capital."],
    "company city": ["{s} has its headquarters in {o}.", "{s} is based in {o}.", "The head office of {s} is in {o}."],
    "person job": ["{s} works as {o}.", "{s} has a job as {o}.", "By profession, {s} is {o}."],
    "person city": ["{s} was born in {o}.", "{s} is a native of {o}.", "The birthplace of {s} is {o}."],
}


def _fact_pair(rng, relation):
    """(subject, object, a wrong object) for one relation of the world."""
    if relation == "city in country":
        city = pick(rng, sorted(CITY_COUNTRY))
        return city, CITY_COUNTRY[city], pick(rng, [c for c in COUNTRIES if c != CITY_COUNTRY[city]])
    if relation == "capital":
        country = pick(rng, list(COUNTRIES))
        capital = COUNTRIES[country][3]
        return country, capital, pick(rng, [c for c in CITY_COUNTRY if c != capital])
    if relation == "company city":
        return pick(rng, COMPANY_NAMES), *rng.sample(sorted(CITY_COUNTRY), 2)
    name = f"{pick(rng, list(FIRST_NAMES))} {pick(rng, LAST_NAMES)}"
    if relation == "person job":
        return (name, *(with_article(j) for j in rng.sample(list(JOBS), 2)))
    return name, *rng.sample(sorted(CITY_COUNTRY), 2)


def _sentence(text: str) -> str:
    """Names capitalized, and the first letter: "the capital of norway is oslo." -> "The capital of Norway is Oslo." """
    text = capitalize_names(text.lower())
    return text[:1].upper() + text[1:]


def generate_paraphrase(n: int, seed: int = 0) -> list:
    """Two templates of one relation: the same subject and object (label 1), or the object of
    B changed (label 0). Companies and people are free to be anywhere here: the label depends
    only on the two sentences."""
    rng = random.Random(seed + 12)
    examples = []
    for i in range(n):
        relation = pick(rng, list(PARAPHRASE_TEMPLATES))
        first, second = rng.sample(PARAPHRASE_TEMPLATES[relation], 2)
        s, o, other = _fact_pair(rng, relation)
        label = i % 2
        examples.append({"text": _sentence(first.format(s=s, o=o)),
                         "text_b": _sentence(second.format(s=s, o=o if label else other)), "label": label})
    return examples


# ------------------------------------------------------------------ entailment (RTE)
ENTAILMENT_TEMPLATES = [  # (premise about a city, hypothesis about its country)
    ("{p} was born in {city}.", "{p} was born in {country}."),
    ("{p} works at a school in {city}.", "{p} works in {country}."),
    ("Every summer {p} visits friends in {city}.", "{p} visits {country} every summer."),
    ("{c} opened an office in {city}.", "{c} has an office in {country}."),
    ("The festival takes place in {city}.", "The festival takes place in {country}."),
]


def generate_entailment(n: int, seed: int = 0) -> list:
    """A premise about a city, and a hypothesis about a country: the city's country (label 1,
    it follows) or another country (label 0). Only the world's geography decides."""
    rng = random.Random(seed + 13)
    examples = []
    for i in range(n):
        premise, hypothesis = pick(rng, ENTAILMENT_TEMPLATES)
        city = pick(rng, sorted(CITY_COUNTRY))
        label = i % 2
        country = CITY_COUNTRY[city] if label else pick(rng, [c for c in COUNTRIES if c != CITY_COUNTRY[city]])
        who = {"p": f"{pick(rng, list(FIRST_NAMES))} {pick(rng, LAST_NAMES)}", "c": pick(rng, COMPANY_NAMES)}
        examples.append({"text": _sentence(premise.format(city=city, **who)),
                         "text_b": _sentence(hypothesis.format(country=country, **who)), "label": label})
    return examples


# ------------------------------------------------------------------ entities (NER)
ENTITY_KINDS = ("PER", "CITY", "COUNTRY", "ORG")
ENTITY_TAGS = ("O", *(f"{bi}-{k}" for k in ENTITY_KINDS for bi in "BI"))
_KIND_OF_WORD = {**{w: "PER" for w in (*FIRST_NAMES, *LAST_NAMES)}, **{w: "CITY" for w in CITY_COUNTRY},
                 **{w: "COUNTRY" for w in COUNTRIES}, **{w: "ORG" for w in COMPANY_NAMES}}
_WORDS = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")


def tag_words(sentence: str) -> tuple[list, list]:
    """A sentence of the world -> (words, BIO tags). A first name followed by a last name is one
    person; other neighbouring names are separate entities (a club "Oslo Rovers" is tagged
    CITY for Oslo only: the world writes clubs as a city and a word)."""
    words = _WORDS.findall(sentence)
    tags, previous = [], None
    for w in words:
        kind = _KIND_OF_WORD.get(w.lower()) if w[:1].isupper() else None
        continues = kind == "PER" and previous == "PER" and w.lower() in LAST_NAMES and tags[-1] != "O"
        tags.append("O" if kind is None else f"{'I' if continues else 'B'}-{kind}")
        previous = kind
    return words, tags


def generate_entities(n: int, seed: int = 0) -> list:
    """Sentences of the world with a BIO tag per word; sentences with no entity are kept too."""
    world, rng = World(seed), random.Random(seed + 14)
    examples = []
    while len(examples) < n:
        facts = document_facts(world, rng, DOCUMENT_KINDS[len(examples) % len(DOCUMENT_KINDS)])
        words, tags = tag_words(pick(rng, facts).sentence)
        examples.append({"words": words, "tags": tags})
    return examples


# ------------------------------------------------------------------ the benchmark
@dataclass(frozen=True)
class GlueTask:
    name: str
    kind: str  # "single", "pair" or "tagging"
    like: str  # the GLUE (or CoNLL) task it imitates
    labels: tuple  # label names: index = label; the tag set for tagging
    metric_name: str
    metric: Callable  # (gold, predicted) -> float, on label indices or on tag sequences
    generate: Callable  # (n, seed) -> examples


GLUE_TASKS = {t.name: t for t in (
    GlueTask("acceptable", "single", "CoLA", ("unacceptable", "acceptable"), "Matthews corr.", matthews_corrcoef,
             generate_acceptable),
    GlueTask("paraphrase", "pair", "MRPC", ("different", "paraphrase"), "F1", f1_of_positive, generate_paraphrase),
    GlueTask("entailment", "pair", "RTE", ("not entailed", "entailed"), "accuracy", accuracy, generate_entailment),
    GlueTask("entities", "tagging", "CoNLL-2003 NER", ENTITY_TAGS, "entity F1", entity_f1, generate_entities),
)}
