"""Fine-tuning tasks as records. A task says which model it trains, where its labelled data
comes from, how examples become batches, how it is evaluated and which number is its
headline; the fine-tuning code looks the task up once and never asks which task it runs.
Adding a task means adding a record to TASKS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import backend
from .data import GLUE_TASKS, generate_classification, generate_qa, parse_label
from .io import iter_jsonl
from .heads import IGNORE_INDEX, BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification
from .squad import collate_features, make_features, predict_answers, read_squad, squad_metrics


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    model_class: type
    headline: str  # the held-out metric that sums the task up
    unit: str  # what the held-out figures are counted in ("questions")
    generate: Callable  # (n, seed) -> (examples, label names or None): labelled data from the generated world
    read: Callable  # path -> (examples, label names or None, skipped reports): a user's file
    prepare: Callable  # (examples, tokenizer, cfg) -> (items, skipped): what training batches are cut from
    make_batch: Callable  # (items, tokenizer, cfg) -> batch of host arrays, labels included
    evaluate: Callable  # (model, examples, items, tokenizer, cfg) -> held-out metrics {name: float}
    step_numbers: Callable  # out -> the numbers of a training step to log

    def model_options(self, labels) -> dict:
        """Keyword arguments of model_class beyond the config (the number of classes)."""
        return {} if labels is None else {"num_labels": len(labels)}


# ------------------------------------------------------------------ question answering (SQuAD)
def _generate_qa(n, seed):
    return generate_qa(n, seed=seed), None


def _read_qa(path):
    examples, skipped = read_squad(path)
    return examples, None, skipped


def _qa_features(examples, tokenizer, cfg):
    return make_features(examples, tokenizer, cfg.seq_length, cfg.doc_stride, cfg.max_query_length)


def evaluate_qa(model, examples, features, tokenizer, cfg, batch_size=64):
    """Exact match and F1 (SQuAD's official definitions) of the best valid span per question."""
    starts, ends = [], []
    for i in range(0, len(features), batch_size):
        out = model.forward(collate_features(features[i:i + batch_size]))
        starts += list(backend.to_host(out.extras["start_logits"]))  # one (T,) row per window
        ends += list(backend.to_host(out.extras["end_logits"]))
    impossible = cfg.version_2 or any(e.get("is_impossible") for e in examples)
    predictions = predict_answers(examples, features, starts, ends, cfg.max_answer_length,
                                  allow_impossible=impossible)
    return squad_metrics(examples, predictions)


# ------------------------------------------------------------------ classification of a sentence or a pair
def _generate_classification(n, seed):
    return generate_classification(n, seed=seed)


def read_classification(path) -> tuple[list, list, list]:
    """JSON lines {"text": ..., "text_b": optional, "label": name or index} -> (examples, label names, [])."""
    path = Path(path)
    rows = []
    for n, row in iter_jsonl(path, "data file", tolerate_partial_last_line=False):  # a user's file: every line counts
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "label" not in row:
            raise ValueError(f"{path}:{n}: each line needs a string 'text' and a 'label'")
        if row.get("text_b") is not None and not isinstance(row["text_b"], str):
            raise ValueError(f"{path}:{n}: 'text_b' must be a string (or left out)")
        rows.append({**row, "label": parse_label(row["label"], path, n)})
    if not rows:
        raise ValueError(f"{path}: no examples")
    names = sorted({r["label"] for r in rows}, key=lambda x: (len(x), x))
    index = {name: i for i, name in enumerate(names)}
    return [{"text": r["text"], "text_b": r.get("text_b"), "label": index[r["label"]]} for r in rows], names, []


def _examples_as_items(examples, tokenizer, cfg):
    return examples, []


def classification_batch(examples, tokenizer, cfg):
    batch = tokenizer.batch_encode([e["text"] for e in examples], [e.get("text_b") for e in examples], cfg.seq_length)
    batch["labels"] = np.array([e["label"] for e in examples])
    return batch


def loss_and_accuracy(out) -> dict:
    """The numbers of a classifier's training step to log."""
    return {"loss": float(out.loss), "accuracy": float(out.extras["accuracy"])}


def evaluate_classification(model, examples, items, tokenizer, cfg, batch_size=64):
    """Accuracy and mean cross-entropy over the held-out examples."""
    correct, loss = 0.0, 0.0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        out = model.forward(classification_batch(chunk, tokenizer, cfg))
        correct += float(out.extras["accuracy"]) * len(chunk)
        loss += float(out.loss) * len(chunk)
    return {"accuracy": correct / len(examples), "loss": loss / len(examples)}


# ------------------------------------------------------------------ the tiny GLUE (minibert/data/glue.py)
# The four tasks have fixed label sets, so a user's file names labels the task already knows.
GLUE_HEADLINES = {"acceptable": "mcc", "paraphrase": "f1", "entailment": "accuracy", "entities": "entity_f1"}


def label_index(value, names, path, line: int, what: str = "label") -> int:
    """A label given as one of `names` or as its index -> the index; anything else is a ValueError at path:line."""
    if isinstance(value, str) and value in names:
        return names.index(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return value
    raise ValueError(f"{path}:{line}: unknown {what} {value!r}; this task's {what}s are {', '.join(map(repr, names))}"
                     + (f" (or 0..{len(names) - 1})" if what == "label" else ""))


def read_glue_sentences(path, names) -> tuple[list, list, list]:
    """JSON lines {"text", "text_b"?, "label"}, label one of `names` or its index -> (examples, names, [])."""
    path, examples = Path(path), []
    for n, row in iter_jsonl(path, "data file", tolerate_partial_last_line=False):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "label" not in row:
            raise ValueError(f"{path}:{n}: each line needs a string 'text' and a 'label'")
        if row.get("text_b") is not None and not isinstance(row["text_b"], str):
            raise ValueError(f"{path}:{n}: 'text_b' must be a string (or left out)")
        examples.append({"text": row["text"], "text_b": row.get("text_b"), "label": label_index(row["label"], names, path, n)})
    if not examples:
        raise ValueError(f"{path}: no examples")
    return examples, list(names), []


def read_tagged_words(path, tags) -> tuple[list, list, list]:
    """JSON lines {"words": [...], "tags": [...]}, one tag of `tags` per word -> (examples, tags, [])."""
    path, examples = Path(path), []
    for n, row in iter_jsonl(path, "data file", tolerate_partial_last_line=False):
        words, given = (row.get("words"), row.get("tags")) if isinstance(row, dict) else (None, None)
        if not (isinstance(words, list) and isinstance(given, list) and words
                and all(isinstance(w, str) and w.strip() for w in words)):
            raise ValueError(f"{path}:{n}: each line needs 'words' (a non-empty list of non-empty strings) and 'tags'")
        if len(words) != len(given):
            raise ValueError(f"{path}:{n}: {len(words)} words but {len(given)} tags; give one tag per word")
        examples.append({"words": words, "tags": [tags[label_index(t, tags, path, n, "tag")] for t in given]})
    if not examples:
        raise ValueError(f"{path}: no examples")
    return examples, list(tags), []


def align_tags(words, tag_ids, tokenizer, seq_length: int) -> dict:
    """Words and their tag indices -> WordPiece ids, with a label on each word's first piece only.

    [CLS] w1 w1' w2 ... [SEP]: labels (T,) = IGNORE_INDEX, t1, IGNORE_INDEX, t2, ..., IGNORE_INDEX.
    first (W,): the position of each word's first piece (-1 for a word cut off by seq_length,
    which is predicted "O" and never trained on). A word with no piece reads as [UNK].
    """
    ids, labels, first = [tokenizer.cls_id], [IGNORE_INDEX], []
    for word, tag in zip(words, tag_ids):
        pieces = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word, special_tokens=False)) or [tokenizer.unk_id]
        if len(ids) + len(pieces) > seq_length - 1:  # room for the closing [SEP]
            first.append(-1)
            continue
        first.append(len(ids))
        ids += pieces
        labels += [tag] + [IGNORE_INDEX] * (len(pieces) - 1)
    return {"input_ids": ids + [tokenizer.sep_id], "labels": labels + [IGNORE_INDEX], "first": first}


def tagging_batch(items, tokenizer, cfg) -> dict:
    """Aligned items -> input_ids, token_type_ids, attention_mask, labels (B, T), padded to the longest."""
    T = max(len(it["input_ids"]) for it in items)
    batch = {"input_ids": np.full((len(items), T), tokenizer.pad_id), "token_type_ids": np.zeros((len(items), T), np.int64),
             "attention_mask": np.zeros((len(items), T), np.int64), "labels": np.full((len(items), T), IGNORE_INDEX)}
    for i, it in enumerate(items):
        L = len(it["input_ids"])
        batch["input_ids"][i, :L], batch["attention_mask"][i, :L], batch["labels"][i, :L] = it["input_ids"], 1, it["labels"]
    return batch


def predicted_labels(model, items, tokenizer, cfg, make_batch, batch_size=64):
    """(the model's logits for every example, host arrays, and the mean loss)."""
    logits, loss = [], 0.0
    for i in range(0, len(items), batch_size):
        out = model.forward(make_batch(items[i:i + batch_size], tokenizer, cfg))
        logits += list(backend.to_host(out.extras["logits"]))
        loss += float(out.loss) * len(items[i:i + batch_size])
    return logits, loss / len(items)


def glue_sentence_task(name: str) -> Task:
    """The Task record of a sentence (or pair) task of the tiny GLUE: [CLS] -> pooler -> classifier."""
    glue, headline = GLUE_TASKS[name], GLUE_HEADLINES[name]

    def evaluate(model, examples, items, tokenizer, cfg):
        logits, loss = predicted_labels(model, items, tokenizer, cfg, classification_batch)
        gold, pred = [e["label"] for e in examples], [int(row.argmax()) for row in logits]
        return {headline: glue.metric(gold, pred), "accuracy": sum(g == p for g, p in zip(gold, pred)) / len(gold),
                "loss": loss}

    return Task(name=name, description=f"{glue.like}-like: {' or '.join(glue.labels)} ({glue.metric_name})",
                model_class=BertForSequenceClassification, headline=headline, unit="examples",
                generate=lambda n, seed: (glue.generate(n, seed), list(glue.labels)),
                read=lambda path: read_glue_sentences(path, list(glue.labels)), prepare=_examples_as_items,
                make_batch=classification_batch, evaluate=evaluate, step_numbers=loss_and_accuracy)


def glue_tagging_task(name: str) -> Task:
    """The Task record of the tagging task: a tag per word, read from the word's first piece."""
    glue, headline = GLUE_TASKS[name], GLUE_HEADLINES[name]
    tags = list(glue.labels)

    def prepare(examples, tokenizer, cfg):
        return [align_tags(e["words"], [tags.index(t) for t in e["tags"]], tokenizer, cfg.seq_length)
                for e in examples], []

    def evaluate(model, examples, items, tokenizer, cfg):
        logits, loss = predicted_labels(model, items, tokenizer, cfg, tagging_batch)
        pred = [[tags[int(row[f].argmax())] if f >= 0 else "O" for f in it["first"]] for row, it in zip(logits, items)]
        gold = [e["tags"] for e in examples]
        words = sum(len(g) for g in gold)
        correct = sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
        return {headline: glue.metric(gold, pred), "accuracy": correct / words, "loss": loss}

    return Task(name=name, description=f"{glue.like}-like: a BIO tag per word ({glue.metric_name})",
                model_class=BertForTokenClassification, headline=headline, unit="sentences",
                generate=lambda n, seed: (glue.generate(n, seed), tags), read=lambda path: read_tagged_words(path, tags),
                prepare=prepare, make_batch=tagging_batch, evaluate=evaluate, step_numbers=loss_and_accuracy)


TASKS = {
    "qa": Task(
        name="qa", description="extractive question answering (SQuAD): a start and an end for the answer span",
        model_class=BertForQuestionAnswering, headline="exact_match", unit="questions",
        generate=_generate_qa, read=_read_qa, prepare=_qa_features,
        make_batch=lambda features, tokenizer, cfg: collate_features(features),
        evaluate=evaluate_qa, step_numbers=lambda out: {"loss": float(out.loss)}),
    "classify": Task(
        name="classify", description="a label for a sentence or a sentence pair, from the pooled [CLS] vector",
        model_class=BertForSequenceClassification, headline="accuracy", unit="examples",
        generate=_generate_classification, read=read_classification, prepare=_examples_as_items,
        make_batch=classification_batch, evaluate=evaluate_classification,
        step_numbers=loss_and_accuracy),
}
TASKS.update({name: (glue_tagging_task if t.kind == "tagging" else glue_sentence_task)(name)
              for name, t in GLUE_TASKS.items()})


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]
