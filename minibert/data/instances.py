"""Sentence pairs for next-sentence prediction, following google's create_pretraining_data.py.

For each document, sentences are gathered into a chunk until it reaches a target length;
the chunk is cut at a random point: A is the first part. Half the time B is the rest of
the chunk (IsNext, label 0); otherwise B is a run of sentences from a *different*
document (random, label 1) and the unused sentences of the chunk are put back for the
next chunk. The pair is trimmed to fit, always from the longer side.

Two departures from google, both so that labels are never wrong or skewed:
- B's document is drawn once, uniformly from the *other* documents (google draws from all of
  them, retries up to 10 times while it hits A's own, and may then label a true continuation
  as random: NVIDIA DeepLearningExamples #421).
- google forces a random B whenever a chunk holds one sentence, which makes well over
  half the pairs random on short documents. Here the coin is tossed first; an IsNext pair
  whose chunk has one sentence takes the document's next sentence as B (or, at the end of
  the document, the previous sentence as A), and is made random only for a document of
  one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .masking import MaskingConfig, mask_tokens


@dataclass
class Instance:
    tokens: list  # [CLS] A [SEP] B [SEP], masked when masking is static
    token_type_ids: list  # 0 for [CLS] A [SEP], 1 for B [SEP]
    is_random_next: bool  # True: B came from another document (label 1)
    masked_lm_positions: list = field(default_factory=list)
    masked_lm_labels: list = field(default_factory=list)  # original tokens
    masked_lm_kinds: list = field(default_factory=list)  # "mask" / "random" / "keep"
    source: tuple = ()  # (doc of A, first, end sentence of A, doc of B, first, end sentence of B)


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng) -> None:
    """Trim in place until len(a) + len(b) <= max_num_tokens: always the longer side (B on a
    tie), from the front or the back with equal chance, so neither end is favoured."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def tokenize_documents(documents, tokenizer) -> list:
    """Sentences -> token lists; sentences and documents left empty are dropped."""
    out = []
    for doc in documents:
        sentences = [tokenizer.tokenize(s) if isinstance(s, str) else list(s) for s in doc]
        sentences = [s for s in sentences if s]
        if sentences:
            out.append(sentences)
    return out


def create_pretraining_instances(documents, tokenizer, max_seq_length: int = 128, seed: int = 0,
                                 dupe_factor: int = 1, short_seq_prob: float = 0.1,
                                 masking: MaskingConfig | None = MaskingConfig(), balance_nsp: bool = True,
                                 source: str | None = None) -> list:
    """NSP pairs from documents (lists of sentences, as text or as token lists).

    masking: a MaskingConfig for static masking (fixed now, re-drawn in each of the
    dupe_factor passes, as google does), or None to leave instances unmasked for dynamic
    masking at batch time (see collate). balance_nsp=False applies google's rule instead
    (a one-sentence chunk always gets a random B), to compare. Instances come out shuffled.
    source: where the documents came from (a file name), named in the error messages.
    """
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length {max_seq_length} is too small to hold a pair: "
                         "[CLS] A [SEP] B [SEP] needs at least 5 tokens")
    docs = tokenize_documents(documents, tokenizer)
    where = f"{source}: " if source else ""
    if not docs:
        raise ValueError(f"{where}the corpus has no documents (after dropping empty ones)")
    if len(docs) < 2:
        raise ValueError(f"{where}the corpus has only one document: a random next sentence must come from "
                         "another document, so next-sentence pairs need at least two")
    rng = np.random.default_rng(seed)
    instances = []
    for _ in range(dupe_factor):
        for d in range(len(docs)):
            instances.extend(_instances_from_document(docs, d, max_seq_length, short_seq_prob, rng, balance_nsp))
    order = rng.permutation(len(instances))
    instances = [instances[i] for i in order]
    if masking is not None:
        for inst in instances:
            m = mask_tokens(inst.tokens, tokenizer, rng=rng, config=masking)
            inst.tokens, inst.masked_lm_positions, inst.masked_lm_labels, inst.masked_lm_kinds = (
                m.tokens, m.positions, m.labels, m.kinds)
    return instances


def other_document(num_documents: int, d: int, rng) -> int:
    """The document a random sentence B is taken from: any of the num_documents but d, each
    with the same probability. (B from d itself could be the true next sentence, labelled
    "random".) Draws 0..num_documents-2 and steps over d: one draw, no retries."""
    other = int(rng.integers(num_documents - 1))
    return other + (other >= d)


def _instances_from_document(docs, d, max_seq_length, short_seq_prob, rng, balance_nsp=True):
    document = docs[d]
    max_num_tokens = max_seq_length - 3  # room for [CLS], [SEP], [SEP]
    # usually fill the sequence; sometimes (short_seq_prob) aim shorter, so that the model
    # also sees the short inputs of fine-tuning
    target = max_num_tokens if rng.random() >= short_seq_prob else int(rng.integers(2, max_num_tokens + 1))
    instances, chunk, length, first, i = [], [], 0, 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
            is_random = bool(rng.random() < 0.5) or (not balance_nsp and len(chunk) == 1)
            if not is_random and len(chunk) == 1:
                if i + 1 < len(document):  # B = the sentence that follows
                    i += 1
                    chunk.append(document[i])
                elif i > 0:  # the document's last sentence: A = the one before it
                    first -= 1
                    chunk.insert(0, document[first])
                else:
                    is_random = True  # a one-sentence document: only a random B is possible
            tokens_a = [t for s in chunk[:a_end] for t in s]
            if is_random:
                other = other_document(len(docs), d, rng)
                random_doc = docs[other]
                start = int(rng.integers(len(random_doc)))
                tokens_b, end = [], start
                while end < len(random_doc) and len(tokens_b) < target - len(tokens_a):
                    tokens_b.extend(random_doc[end])
                    end += 1
                if not tokens_b:
                    tokens_b, end = list(random_doc[start]), start + 1
                source = (d, first, first + a_end, other, start, end)
                i -= len(chunk) - a_end  # put the unused sentences back
            else:
                tokens_b = [t for s in chunk[a_end:] for t in s]
                source = (d, first, first + a_end, d, first + a_end, first + len(chunk))
            truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            tokens = ["[CLS]", *tokens_a, "[SEP]", *tokens_b, "[SEP]"]
            types = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
            instances.append(Instance(tokens, types, is_random, source=source))
            chunk, length = [], 0
            first = i + 1
        i += 1
    return instances
