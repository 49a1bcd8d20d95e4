"""The tiny GLUE's pieces: word -> WordPiece alignment, the frozen-feature probe (against features
that hold the label and features that hold nothing), and the multi-task model's optimizer."""

import numpy as np
import pytest

import minibert as mb
from minibert.data import GLUE_TASKS
from minibert.heads import IGNORE_INDEX
from minibert.tasks import align_tags
from minibert.tinyglue import MultitaskAdamW, MultitaskModel, probe

TASK_TEXTS = [e.get("text", " ".join(e.get("words", []))) + " " + (e.get("text_b") or "")
              for t in GLUE_TASKS.values() for e in t.generate(300, 0)]


@pytest.fixture(scope="module")
def tokenizer():
    return mb.WordPieceTokenizer(mb.train_wordpiece(TASK_TEXTS, 400))


def test_a_words_first_piece_carries_its_tag_and_the_rest_are_ignored(tokenizer):
    words = ["Ingrid", "Lindqvist", "visited", "Trondheim", "."]
    pieces = [tokenizer.tokenize(w, special_tokens=False) for w in words]
    assert any(len(p) > 1 for p in pieces)  # the test needs a word cut into several pieces
    item = align_tags(words, [1, 2, 0, 3, 0], tokenizer, seq_length=64)
    expected = [IGNORE_INDEX]  # [CLS]
    for tag, p in zip([1, 2, 0, 3, 0], pieces):
        expected += [tag] + [IGNORE_INDEX] * (len(p) - 1)
    assert item["labels"] == expected + [IGNORE_INDEX]  # [SEP]
    assert item["input_ids"][0] == tokenizer.cls_id and item["input_ids"][-1] == tokenizer.sep_id
    assert [item["labels"][f] for f in item["first"]] == [1, 2, 0, 3, 0]
    # too short for every word: the words that do not fit are cut off (-1) and never trained on
    short = align_tags(words, [1, 2, 0, 3, 0], tokenizer, seq_length=2 + len(pieces[0]))
    assert short["first"] == [1, -1, -1, -1, -1] and len(short["input_ids"]) == 2 + len(pieces[0])


def label_lookup(tokenizer, task, seq_length, n):
    """featurize(batch) whose features are the examples' labels (+ a little noise), found by the
    token ids: the label is visible in the features by construction."""
    glue = GLUE_TASKS[task]
    labels, rng = list(glue.labels), np.random.default_rng(0)
    table = {}
    for e in glue.generate(n, 0):
        if glue.kind == "tagging":
            item = align_tags(e["words"], [labels.index(t) for t in e["tags"]], tokenizer, seq_length)
            table[tuple(item["input_ids"])] = item["labels"]
        else:
            enc = tokenizer.encode(e["text"], e.get("text_b"), seq_length)
            table[tuple(enc["input_ids"])] = [e["label"]] * len(enc["input_ids"])

    def featurize(batch):
        B, T = batch["input_ids"].shape
        out = 0.1 * rng.standard_normal((B, T, len(labels)))
        for b, row in enumerate(batch["input_ids"]):
            L = int(batch["attention_mask"][b].sum())
            for t, label in enumerate(table[tuple(int(i) for i in row[:L])]):
                if label != IGNORE_INDEX:
                    out[b, t, label] += 1.0
        return out
    return featurize


@pytest.mark.parametrize("task", ["entailment", "entities"])
def test_probe_scores_high_when_the_features_hold_the_label(tokenizer, task):
    n_train, n_eval = 300, 200
    result = probe(label_lookup(tokenizer, task, 48, n_train + n_eval), tokenizer, task, num_train=n_train,
                   num_eval=n_eval, seq_length=48, iterations=100)
    # the label is a clean direction of the features (signal 1, noise 0.1): a linear model must be ~perfect
    assert result["score"] > 0.95 and result["train_accuracy"] > 0.95, result
    assert result["metric"] == {"entailment": "accuracy", "entities": "entity_f1"}[task]


@pytest.mark.parametrize("task", ["entailment", "acceptable"])
def test_probe_is_at_chance_on_features_that_hold_nothing(tokenizer, task):
    rng = np.random.default_rng(1)
    n_eval = 400
    result = probe(lambda batch: rng.standard_normal((*batch["input_ids"].shape, 8)), tokenizer, task,
                   num_train=400, num_eval=n_eval, seq_length=48, iterations=100)
    # predictions independent of balanced gold labels: accuracy has mean 0.5 and sd <= sqrt(0.25 / n) = 0.025,
    # and Matthews' correlation is about N(0, 1/n), sd 0.05. Five standard deviations either way:
    if task == "entailment":
        assert abs(result["score"] - 0.5) < 5 * np.sqrt(0.25 / n_eval), result
    else:
        assert abs(result["score"]) < 5 / np.sqrt(n_eval), result


def test_probe_is_deterministic_for_a_seed(tokenizer):
    featurize = lambda batch: np.sin(batch["input_ids"][..., None] * np.arange(1, 9))  # noqa: E731
    runs = [probe(featurize, tokenizer, "paraphrase", num_train=200, num_eval=100, seed=s, seq_length=48,
                  iterations=30) for s in (3, 3, 4)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


SMALL = mb.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                      max_position_embeddings=16)


def test_a_multitask_step_moves_the_encoder_and_only_its_own_head():
    models = {"paraphrase": mb.BertForSequenceClassification(SMALL, num_labels=2, seed=1),
              "entities": mb.BertForTokenClassification(SMALL, num_labels=9, seed=2)}
    for m in models.values():
        m.newly_initialized = ["classifier"]
    model = MultitaskModel(models)
    assert models["paraphrase"].params["layer.0.ffn.in.W"] is models["entities"].params["layer.0.ffn.in.W"]
    assert "pooler.W" in model.params and "paraphrase.classifier.W" in model.params and "classifier.W" not in model.params
    optimizer = MultitaskAdamW(model, weight_decay=0.01)
    # the encoder (both tasks), what only paraphrase reads (pooler and its head), the tagger's head
    assert sorted(len(names) for names, _ in optimizer.groups) == [2, 4, len(model.params) - 6]
    rng = np.random.default_rng(0)
    batch = {"input_ids": rng.integers(5, 50, (4, 10)), "attention_mask": np.ones((4, 10), np.int64),
             "labels": rng.integers(0, 9, (4, 10)), "task": "entities"}
    before = {k: v.copy() for k, v in model.params.items()}
    model.forward(batch, training=False)
    grads = model.backward()
    assert "entities.classifier.W" in grads and "pooler.W" not in grads
    optimizer.step(model.params, grads, lr=1e-2)
    moved = {k for k in model.params if not np.array_equal(model.params[k], before[k])}
    assert "entities.classifier.W" in moved and "layer.0.ffn.in.W" in moved
    # the other task's head and the pooler (which the tagger does not read) are bit-identical: no
    # Adam momentum and no weight decay reach a parameter whose task had no batch this step
    assert not moved & {"paraphrase.classifier.W", "paraphrase.classifier.b", "pooler.W", "pooler.b"}, moved
