"""Asking a pre-trained model questions: fill in [MASK]s, and is B the next sentence after A?"""

from __future__ import annotations

import numpy as np

from .backend import to_host


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list:
    """For each [MASK] in text, the top_k (token, probability) predictions, best first."""
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k!r}")
    batch = tokenizer.batch_encode([text])
    positions = np.flatnonzero(batch["input_ids"][0] == tokenizer.mask_id)
    if not len(positions):
        # the tokenizer keeps only the exact text "[MASK]" whole; "[mask]" is three ordinary tokens
        hint = " (in capitals: [MASK])" if "[mask]" in text.lower() else ""
        raise ValueError(f"no [MASK] in {text!r}: write [MASK] where the model should fill in a word{hint}")
    length = batch["input_ids"].shape[1]
    if length > model.config.max_position_embeddings:
        raise ValueError(f"text is {length} tokens long; the model takes at most {model.config.max_position_embeddings}")
    batch["masked_lm_positions"] = positions[None]
    probs = _softmax(to_host(model.forward(batch).mlm_logits)[0].astype(np.float64))  # (P, V)
    results = []
    for row in probs:
        best = np.argsort(-row)[:top_k]
        results.append([(tokenizer.convert_ids_to_tokens(int(i)), float(row[i])) for i in best])
    return results


def next_sentence_probability(model, tokenizer, text_a: str, text_b: str) -> float:
    """P(IsNext): the model's probability that text_b follows text_a (NSP label 0)."""
    # an empty B would be dropped by encode (a single sentence, not a pair), and an empty A
    # leaves [CLS] [SEP] B: either way the question asked is not the one the user meant
    for name, text in (("sentence A", text_a), ("sentence B", text_b)):
        if not tokenizer.tokenize(text):
            raise ValueError(f"{name} is empty (nothing the tokenizer keeps in {text!r}); "
                             "next-sentence prediction needs two sentences")
    batch = tokenizer.batch_encode([text_a], [text_b], max_length=model.config.max_position_embeddings)
    probs = _softmax(to_host(model.forward(batch).nsp_logits)[0].astype(np.float64))
    return float(probs[0])
