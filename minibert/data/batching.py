"""Instances -> the batch dict the model takes, padded to a common length."""

from __future__ import annotations

import numpy as np

from .masking import KINDS, MaskingConfig, mask_tokens


def collate(instances, tokenizer, pad_to: int | None = None, max_predictions: int | None = None,
            masking: MaskingConfig | None = None, rng=None) -> dict:
    """Stack instances into NumPy arrays:

        input_ids, token_type_ids, attention_mask   (B, T)  T = longest instance, or pad_to
        masked_lm_positions, masked_lm_labels       (B, P)  P = most predictions, or max_predictions
        masked_lm_weights                           (B, P)  1.0 real prediction, 0.0 padding
        masked_lm_kinds                             (B, P)  0 [MASK], 1 random, 2 unchanged, -1 padding
        next_sentence_label                         (B,)    0 B follows A, 1 B is random

    masking: dynamic masking, re-drawn here from rng at every call (the instances must be
    unmasked); None uses the masks stored in the instances (static masking).
    """
    if not instances:
        raise ValueError("cannot collate an empty list of instances")
    rows = []
    for inst in instances:
        if masking is not None:
            if inst.masked_lm_positions:
                raise ValueError("dynamic masking needs unmasked instances (create them with masking=None)")
            m = mask_tokens(inst.tokens, tokenizer, rng=rng, config=masking)
            rows.append((m.tokens, m.positions, m.labels, m.kinds))
        else:
            rows.append((inst.tokens, inst.masked_lm_positions, inst.masked_lm_labels, inst.masked_lm_kinds))
    B = len(rows)
    T = max(len(r[0]) for r in rows)
    if pad_to is not None:
        if pad_to < T:
            raise ValueError(f"pad_to={pad_to} is shorter than the longest instance ({T} tokens)")
        T = pad_to
    P = max(1, max(len(r[1]) for r in rows))
    if max_predictions is not None:
        if max_predictions < P:
            raise ValueError(f"max_predictions={max_predictions} is smaller than an instance's {P} predictions")
        P = max_predictions
    batch = {
        "input_ids": np.full((B, T), tokenizer.pad_id, dtype=np.int64),
        "token_type_ids": np.zeros((B, T), dtype=np.int64),
        "attention_mask": np.zeros((B, T), dtype=np.int64),
        "masked_lm_positions": np.zeros((B, P), dtype=np.int64),
        "masked_lm_labels": np.zeros((B, P), dtype=np.int64),
        "masked_lm_weights": np.zeros((B, P), dtype=np.float32),
        "masked_lm_kinds": np.full((B, P), -1, dtype=np.int8),
        "next_sentence_label": np.array([int(inst.is_random_next) for inst in instances], dtype=np.int64),
    }
    kind_id = {k: i for i, k in enumerate(KINDS)}
    for b, ((tokens, positions, labels, kinds), inst) in enumerate(zip(rows, instances)):
        n, p = len(tokens), len(positions)
        batch["input_ids"][b, :n] = tokenizer.convert_tokens_to_ids(tokens)
        batch["token_type_ids"][b, :n] = inst.token_type_ids
        batch["attention_mask"][b, :n] = 1
        batch["masked_lm_positions"][b, :p] = positions
        batch["masked_lm_labels"][b, :p] = tokenizer.convert_tokens_to_ids(labels)
        batch["masked_lm_weights"][b, :p] = 1.0
        batch["masked_lm_kinds"][b, :p] = [kind_id[k] for k in kinds]
    return batch
