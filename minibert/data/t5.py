"""T5's pre-training objective and its text-to-text tasks, on the world's text (no model).

Span corruption (Raffel et al. 2020, section 3.1.4): drop 15% of the tokens in spans of mean
length 3; each dropped span becomes one sentinel in the input, and the target lists the
sentinels with the words they hide:

    tokens   oslo is the capital of norway and it is famous for its harbor .
    inputs   oslo is the <extra_id_0> norway and it is famous <extra_id_1> harbor .
    targets  <extra_id_0> capital of <extra_id_1> for its <extra_id_2>

BERT, on the same sentence, keeps every position and predicts the chosen tokens there
(`side_by_side` prints both). T5's decoder writes the short target instead of scoring the
whole sequence, and a span is one prediction of several words.

Text to text (section 2.4): every task is an input string with a task prefix and a target
string, e.g. "cola sentence: ..." -> "acceptable"; one encoder-decoder can then learn all of
them. minibert has no encoder-decoder; these functions only show the data.
"""

from __future__ import annotations

import numpy as np

SENTINEL = "<extra_id_{}>"  # T5's sentinel tokens, numbered from 0 in each sequence


def sentinel(i: int) -> str:
    return SENTINEL.format(i)


# ------------------------------------------------------------------ span corruption
def segment_lengths(num_items: int, num_segments: int, rng) -> np.ndarray:
    """Split num_items into num_segments positive lengths, every split equally likely:
    choose num_segments - 1 of the num_items - 1 gaps between items as the cuts.   -> (num_segments,)"""
    cuts = np.sort(rng.choice(num_items - 1, size=num_segments - 1, replace=False)) + 1  # cut before item c
    return np.diff(np.concatenate([[0], cuts, [num_items]]))


def noise_spans(length: int, rng, noise_density: float = 0.15, mean_span_length: float = 3.0) -> list:
    """Where T5 drops tokens: [(start, end)] noise spans, end exclusive, ascending, disjoint.

    noise = round(length * density) tokens (at least 1 and at most length - 1, so something is
    dropped and something kept), in spans = round(noise / mean_span_length) spans (at least 1).
    The noise and the kept tokens are each split at random into that many runs, and the runs
    alternate, kept first: kept_0 noise_0 kept_1 noise_1 ... (T5's random_spans_noise_mask).
    Python's round, like tf.round, rounds halves to even. As in T5's code, the first run is
    kept and the last is noise, so the last token is always dropped: on T5's packed 512-token
    sequences that hardly matters; on one short sentence it shows.
    """
    if length < 2:
        raise ValueError(f"span corruption needs at least 2 tokens, got {length}")
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_spans = max(int(round(num_noise / mean_span_length)), 1)
    num_spans = min(num_spans, num_noise, length - num_noise)  # every run holds at least one token
    noise = segment_lengths(num_noise, num_spans, rng)  # (num_spans,)
    kept = segment_lengths(length - num_noise, num_spans, rng)  # (num_spans,)
    spans, start = [], 0
    for k, n in zip(kept, noise):
        start += int(k)
        spans.append((start, start + int(n)))
        start += int(n)
    return spans


def span_corruption(tokens, spans) -> tuple:
    """(inputs, targets): each span of tokens replaced by the next sentinel; the targets are
    each sentinel followed by the tokens it hides, closed by one more sentinel."""
    inputs, targets, last = [], [], 0
    for i, (start, end) in enumerate(spans):
        inputs += [*tokens[last:start], sentinel(i)]
        targets += [sentinel(i), *tokens[start:end]]
        last = end
    return inputs + list(tokens[last:]), targets + [sentinel(len(spans))]


def undo_span_corruption(inputs, targets) -> list:
    """The original tokens from span_corruption's (inputs, targets): each sentinel of the
    inputs replaced by what follows it in the targets."""
    hidden, current = {}, None
    for token in targets:
        if token.startswith("<extra_id_"):
            current = hidden.setdefault(token, [])
        elif current is not None:
            current.append(token)
    return [t for token in inputs for t in (hidden[token] if token in hidden else [token])]


def side_by_side(tokens, tokenizer, seed: int = 0) -> dict:
    """BERT's masking and T5's span corruption of the same tokens, as strings (for a notebook).

    tokens: WordPiece tokens without [CLS]/[SEP]. BERT: the sequence it reads and the tokens
    it must predict at their positions; T5: its input and target."""
    from .masking import mask_tokens

    rng = np.random.default_rng(seed)
    bert = mask_tokens(tokens, tokenizer, rng=rng)
    inputs, targets = span_corruption(tokens, noise_spans(len(tokens), rng))
    return {"text": " ".join(tokens),
            "bert input": " ".join(bert.tokens),
            "bert predicts": ", ".join(f"{label} at {p}" for p, label in zip(bert.positions, bert.labels)),
            "t5 input": " ".join(inputs),
            "t5 target": " ".join(targets)}


# ------------------------------------------------------------------ every task as text to text
# the tiny GLUE's tasks under the names and target words of T5's GLUE tasks (its appendix D);
# "entities" (CoNLL NER) is not one of T5's tasks: its target lists each entity with its kind
T5_TASKS = {  # task -> (prefix, target word of each label)
    "acceptable": ("cola", ("unacceptable", "acceptable")),
    "paraphrase": ("mrpc", ("not_equivalent", "equivalent")),
    "entailment": ("rte", ("not_entailment", "entailment")),
    "entities": ("ner", None),
}


def entity_target(words, tags) -> str:
    """BIO tags -> "Oslo CITY ; Norway COUNTRY" (each entity's words, then its kind); "" if none."""
    entities, current = [], None
    for word, tag in zip(words, tags):
        if tag.startswith("I-") and current is not None and current[1] == tag[2:]:
            current[0].append(word)
            continue
        current = ([word], tag[2:]) if tag != "O" else None
        if current is not None:
            entities.append(current)
    return " ; ".join(f"{' '.join(ws)} {kind}" for ws, kind in entities)


def text_to_text(task_name: str, example: dict) -> tuple:
    """(input text, target text) of one example, T5's way.

    task_name: a tiny GLUE task (minibert.data.glue.GLUE_TASKS) or "qa". example: as the task's
    generator makes it: {"text", "label"}, {"text", "text_b", "label"}, {"words", "tags"}, or
    SQuAD's {"question", "context", "answers"}.
    """
    if task_name == "qa":  # T5 gives SQuAD no task name, only the two fields
        return f"question: {example['question']} context: {example['context']}", example["answers"][0]["text"]
    if task_name not in T5_TASKS:
        raise ValueError(f"unknown task {task_name!r}; one of {', '.join([*T5_TASKS, 'qa'])}")
    prefix, targets = T5_TASKS[task_name]
    if targets is None:
        return f"{prefix} sentence: {' '.join(example['words'])}", entity_target(example["words"], example["tags"])
    if "text_b" in example:
        return f"{prefix} sentence1: {example['text']} sentence2: {example['text_b']}", targets[example["label"]]
    return f"{prefix} sentence: {example['text']}", targets[example["label"]]
