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
from .data import generate_classification, generate_qa, parse_label
from .io import iter_jsonl
from .heads import BertForQuestionAnswering, BertForSequenceClassification
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


def evaluate_classification(model, examples, items, tokenizer, cfg, batch_size=64):
    """Accuracy and mean cross-entropy over the held-out examples."""
    correct, loss = 0.0, 0.0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        out = model.forward(classification_batch(chunk, tokenizer, cfg))
        correct += float(out.extras["accuracy"]) * len(chunk)
        loss += float(out.loss) * len(chunk)
    return {"accuracy": correct / len(examples), "loss": loss / len(examples)}


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
        step_numbers=lambda out: {"loss": float(out.loss), "accuracy": float(out.extras["accuracy"])}),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]
