"""Fine-tuning heads: question answering (start/end logits over the tokens), sentence
(-pair) classification (a dense layer on the pooled [CLS] vector) and token classification
(a dense layer on every token, for NER). All reuse the pre-trained encoder unchanged and
add one small layer with its own backward."""

from __future__ import annotations

import numpy as np

from . import backend
from .layers import cross_entropy_backward, cross_entropy_forward, dropout_backward, dropout_forward
from .layers import linear_backward, linear_forward
from .model import BertModel, BertOutput

IGNORE_INDEX = -100  # a label that is not a target (padding, [CLS], a word's later pieces): PyTorch's default


def label_config(num_labels: int, names=None) -> dict:
    """The label fields of a Hugging Face config.json for a classifier with num_labels classes
    (names: one per class; default transformers' LABEL_0, LABEL_1, ...)."""
    names = list(names) if names is not None else [f"LABEL_{i}" for i in range(num_labels)]
    if len(names) != num_labels or len(set(names)) != num_labels:
        raise ValueError(f"need {num_labels} distinct label names, got {names!r}")
    return {"num_labels": num_labels, "id2label": {str(i): name for i, name in enumerate(names)},
            "label2id": {name: i for i, name in enumerate(names)}}


class BertForQuestionAnswering(BertModel):
    """logits = sequence_output @ W + b: (B, T, 2) -> start_logits, end_logits (B, T).

    batch: the encoder's inputs; optionally `answer_mask` (B, T), 1 where an answer may start
    or end (the context's tokens, and [CLS] for "no answer"): the other positions, padding
    and the question, get the most negative float and so zero probability. For the loss,
    `start_positions` and `end_positions` (B,). loss = (CE(start) + CE(end)) / 2.
    """

    add_pooling_layer = False

    def _init_heads(self, init) -> None:
        self._add_dense(init, "qa", self.config.hidden_size, 2)

    def forward(self, batch: dict, training: bool = False, rng=None, output_attentions: bool = False) -> BertOutput:
        p = self.params
        xp = backend.array_module(p["embeddings.word"])
        seq, _, attentions, enc_cache = self._encode(batch, training, self._rng(training, rng), output_attentions)
        logits, qa_cache = linear_forward(seq, p["qa.W"], p["qa.b"])  # (B, T, 2)
        start, end = logits[..., 0], logits[..., 1]  # (B, T) each
        if batch.get("answer_mask") is not None:
            blocked = (xp.asarray(batch["answer_mask"]) == 0).astype(self.dtype) * xp.finfo(self.dtype).min
            start, end = start + blocked, end + blocked
        out = BertOutput(sequence_output=seq, attentions=attentions)
        out.extras.update(start_logits=start, end_logits=end)
        self._cache = None
        if batch.get("start_positions") is not None:
            s_loss, s_cache = cross_entropy_forward(start, xp.asarray(batch["start_positions"]))
            e_loss, e_cache = cross_entropy_forward(end, xp.asarray(batch["end_positions"]))
            out.loss = (s_loss + e_loss) / 2
            self._cache = {"enc": enc_cache, "qa": qa_cache, "ce": (s_cache, e_cache)}
        return out

    def backward(self) -> dict:
        cache = self._take_cache()
        s_cache, e_cache = cache["ce"]
        dstart = cross_entropy_backward(0.5, s_cache)  # (B, T); blocked positions get exactly 0
        dend = cross_entropy_backward(0.5, e_cache)
        xp = backend.array_module(dstart)
        dlogits = xp.stack([dstart, dend], axis=-1)  # (B, T, 2)
        grads = {}
        dseq, grads["qa.W"], grads["qa.b"] = linear_backward(dlogits, cache["qa"])
        dword = self._encode_backward(dseq, None, cache["enc"], grads)
        grads["embeddings.word"] = self._word_lookup_backward(dword, cache["enc"])
        return grads


class _Classifier(BertModel):
    """What the sequence and token classifiers share: num_labels classes and one dense layer
    "classifier" (hidden -> num_labels), saved with transformers' label fields."""

    def __init__(self, config, num_labels: int = 2, seed: int = 0, dtype=np.float32):
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2 (classification), got {num_labels}")
        self.num_labels = num_labels
        self.label_names = None  # the classes' names for an export (id2label); None = LABEL_0, LABEL_1, ...
        super().__init__(config, seed=seed, dtype=dtype)

    def _init_heads(self, init) -> None:
        self._add_dense(init, "classifier", self.config.hidden_size, self.num_labels)

    def hf_config_extras(self) -> dict:
        return label_config(self.num_labels, self.label_names)


class BertForSequenceClassification(_Classifier):
    """logits = dropout(pooled_output) @ W + b: (B, num_labels), for one sentence or a pair.

    batch: the encoder's inputs and, for the loss, `labels` (B,) in [0, num_labels).
    """

    def forward(self, batch: dict, training: bool = False, rng=None, output_attentions: bool = False) -> BertOutput:
        p = self.params
        xp = backend.array_module(p["embeddings.word"])
        rng = self._rng(training, rng)
        seq, pooled, attentions, enc_cache = self._encode(batch, training, rng, output_attentions)
        h, drop_cache = dropout_forward(pooled, self.config.hidden_dropout_prob, training, rng)
        logits, cls_cache = linear_forward(h, p["classifier.W"], p["classifier.b"])  # (B, C)
        out = BertOutput(sequence_output=seq, pooled_output=pooled, attentions=attentions)
        out.extras["logits"] = logits
        self._cache = None
        if batch.get("labels") is not None:
            labels = xp.asarray(batch["labels"]).reshape(-1)
            if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= self.num_labels):
                raise ValueError(f"labels must lie in [0, {self.num_labels})")
            out.loss, ce_cache = cross_entropy_forward(logits, labels)
            out.extras["accuracy"] = (logits.argmax(axis=1) == labels).mean()
            self._cache = {"enc": enc_cache, "drop": drop_cache, "cls": cls_cache, "ce": ce_cache}
        return out

    def backward(self) -> dict:
        cache = self._take_cache()
        grads = {}
        dlogits = cross_entropy_backward(1.0, cache["ce"])
        dh, grads["classifier.W"], grads["classifier.b"] = linear_backward(dlogits, cache["cls"])
        dpooled = dropout_backward(dh, cache["drop"])
        xp = backend.array_module(dpooled)
        dseq = xp.zeros((dpooled.shape[0], cache["enc"]["T"], dpooled.shape[1]), dpooled.dtype)  # only [CLS] was read
        dword = self._encode_backward(dseq, dpooled, cache["enc"], grads)
        grads["embeddings.word"] = self._word_lookup_backward(dword, cache["enc"])
        return grads


class BertForTokenClassification(_Classifier):
    """logits = dropout(sequence_output) @ W + b: (B, T, num_labels), one label per token.

    batch: the encoder's inputs and, for the loss, `labels` (B, T) in [0, num_labels), or
    IGNORE_INDEX (-100) for tokens that are not scored. loss = mean cross-entropy over the
    scored tokens, as transformers' BertForTokenClassification (0, not NaN, when none is).
    """

    add_pooling_layer = False  # every token is read; no [CLS] summary

    def forward(self, batch: dict, training: bool = False, rng=None, output_attentions: bool = False) -> BertOutput:
        p = self.params
        xp = backend.array_module(p["embeddings.word"])
        rng = self._rng(training, rng)
        seq, _, attentions, enc_cache = self._encode(batch, training, rng, output_attentions)
        h, drop_cache = dropout_forward(seq, self.config.hidden_dropout_prob, training, rng)  # (B, T, H)
        logits, cls_cache = linear_forward(h, p["classifier.W"], p["classifier.b"])  # (B, T, C)
        out = BertOutput(sequence_output=seq, attentions=attentions)
        out.extras["logits"] = logits
        self._cache = None
        if batch.get("labels") is not None:
            B, T, C = logits.shape
            labels = xp.asarray(batch["labels"])
            if labels.shape != (B, T):
                raise ValueError(f"labels has shape {labels.shape}, expected {(B, T)}")
            scored = labels != IGNORE_INDEX  # (B, T)
            if bool((scored & ((labels < 0) | (labels >= C))).any()):
                raise ValueError(f"labels must lie in [0, {C}) or be {IGNORE_INDEX}")
            weights = scored.reshape(-1).astype(self.dtype)  # (B*T,), 0 = not scored
            out.loss, ce_cache = cross_entropy_forward(logits.reshape(B * T, C), labels.reshape(-1), weights)
            correct = (logits.argmax(axis=-1) == labels) & scored
            out.extras["accuracy"] = correct.sum() / max(int(scored.sum()), 1)
            self._cache = {"enc": enc_cache, "drop": drop_cache, "cls": cls_cache, "ce": ce_cache}
        return out

    def backward(self) -> dict:
        cache = self._take_cache()
        grads = {}
        dlogits = cross_entropy_backward(1.0, cache["ce"])  # (B*T, C); unscored tokens get exactly 0
        # forward: logits = h @ W + b, with h = dropout(sequence_output) (B, T, H): dh comes back as (B, T, H)
        dh, grads["classifier.W"], grads["classifier.b"] = linear_backward(dlogits, cache["cls"])
        dseq = dropout_backward(dh, cache["drop"])  # (B, T, H)
        dword = self._encode_backward(dseq, None, cache["enc"], grads)
        grads["embeddings.word"] = self._word_lookup_backward(dword, cache["enc"])
        return grads
