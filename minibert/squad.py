"""Extractive question answering, SQuAD style: read the data, cut long contexts into
overlapping windows, decode the best answer span, and score it as the official script does.

The answer is a span of the context: the model gives every token a start score s_i and an
end score e_j, and the answer is the span (i, j) with the highest s_i + e_j among the
*valid* ones: i <= j, j - i < max_answer_length, both inside the context. Taking the argmax
of s and of e separately (as many tutorials do) can return an end before the start, or a
span in the question.
"""

from __future__ import annotations

import collections
import re
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import read_json
from .tokenization.basic import is_control, is_whitespace, strip_accents
from .tokenization.wordpiece import wordpiece


# ------------------------------------------------------------------ data
def read_squad(path) -> tuple[list, list]:
    """Examples from a SQuAD v1.1 / v2.0 JSON file: (examples, skipped).

    Each example: {"id", "question", "context", "answers": [{"text", "answer_start"}], "is_impossible"}.
    A malformed file is an error naming the file and the place; an answer whose offsets do
    not match its context is skipped and reported in `skipped` (never kept as a wrong label).
    """
    path = Path(path)
    data = read_json(path, "SQuAD file")
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"{path}: a SQuAD file is an object with a 'data' list")
    examples, skipped = [], []
    for a, article in enumerate(data["data"]):
        for p, para in enumerate(_field(article, "paragraphs", list, path, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(para, "context", str, path, where)
            for q, qa in enumerate(_field(para, "qas", list, path, where)):
                here = f"{where}.qas[{q}]"
                question = _field(qa, "question", str, path, here)
                qid = str(qa.get("id", here))
                impossible = bool(qa.get("is_impossible", False))
                answers = [] if impossible else _field(qa, "answers", list, path, here)
                good = []
                for k, ans in enumerate(answers):
                    text = _field(ans, "text", str, path, f"{here}.answers[{k}]")
                    start = _field(ans, "answer_start", int, path, f"{here}.answers[{k}]")
                    if context[start:start + len(text)] != text:
                        skipped.append(f"{path}: {here}.answers[{k}]: answer_start {start} does not point at "
                                       f"{text!r} in the context")
                        continue
                    good.append({"text": text, "answer_start": start})
                if not impossible and not good:
                    skipped.append(f"{path}: {here}: no usable answer; question skipped")
                    continue
                examples.append({"id": qid, "question": question, "context": context, "answers": good,
                                 "is_impossible": impossible})
    return examples, skipped


def _field(obj, key, kind, path, where):
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{path}: {where}: missing '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ValueError(f"{path}: {where}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


# ------------------------------------------------------------------ tokens with character offsets
def tokenize_with_offsets(tokenizer, text: str):
    """WordPiece tokens of text and, for each, its (start, end) character span in text.

    The basic tokenizer lowercases and strips accents, so each character is normalized the
    same way and remembered by its position; tokens are then found in that normalized
    stream, and their positions lead back to the original characters.
    """
    norm, back = [], []
    for k, ch in enumerate(text):
        if ord(ch) in (0, 0xFFFD) or is_control(ch):
            continue
        n = " " if is_whitespace(ch) else ch
        if tokenizer.do_lower_case:
            n = strip_accents(n.lower())
        for c in n:
            norm.append(c)
            back.append(k)
    norm = "".join(norm)
    tokens, offsets, pos = [], [], 0
    for word in tokenizer.basic.tokenize(text):
        at = norm.find(word, pos)
        if at < 0:
            raise ValueError(f"cannot align token {word!r} with the text (unusual Unicode normalization?)")
        pos = at + len(word)
        pieces = wordpiece(word, tokenizer.vocab, "[UNK]", tokenizer.max_input_chars_per_word)
        if pieces == ["[UNK]"]:
            tokens.append("[UNK]")
            offsets.append((back[at], back[pos - 1] + 1))
            continue
        for piece in pieces:
            n = len(piece) - (2 if piece.startswith("##") else 0)
            tokens.append(piece)
            offsets.append((back[at], back[at + n - 1] + 1))
            at += n
    return tokens, offsets


# ------------------------------------------------------------------ windows
@dataclass
class QAFeature:
    example_index: int
    input_ids: list
    token_type_ids: list
    answer_mask: list  # 1 where an answer may start or end: the window's context tokens and [CLS]
    offsets: list  # per token: (start, end) in the context, or None outside the context
    start_position: int  # 0 ([CLS]) when the answer is not in this window or there is none
    end_position: int
    continues: list = None  # per token: True for a "##" piece, which continues the word before it


def make_features(examples, tokenizer, max_seq_length: int = 128, doc_stride: int = 64,
                  max_query_length: int = 32):
    """Cut each example into windows [CLS] question [SEP] context part [SEP].

    Returns (features, skipped): a question longer than max_query_length tokens, or one that
    leaves no room for context, is skipped and reported, never truncated into a different question.
    """
    features, skipped = [], []
    for index, ex in enumerate(examples):
        question = tokenizer.tokenize(ex["question"])
        if len(question) > max_query_length or len(question) + 3 >= max_seq_length:
            skipped.append(f"{ex['id']}: question of {len(question)} tokens is longer than max_query_length "
                           f"{max_query_length} (or leaves no room for the context); skipped")
            continue
        tokens, offsets = tokenize_with_offsets(tokenizer, ex["context"])
        answer = None
        if ex["answers"]:
            a = ex["answers"][0]
            a_start, a_end = a["answer_start"], a["answer_start"] + len(a["text"])
            inside = [t for t, (s, e) in enumerate(offsets) if s < a_end and e > a_start]
            if not inside:
                skipped.append(f"{ex['id']}: the answer {a['text']!r} covers no token; skipped")
                continue
            answer = (inside[0], inside[-1])
        room = max_seq_length - len(question) - 3
        start = 0
        while True:
            span = range(start, min(start + room, len(tokens)))
            ids = ["[CLS]", *question, "[SEP]"]
            head = len(ids)
            ids += [tokens[t] for t in span] + ["[SEP]"]
            types = [0] * head + [1] * (len(span) + 1)
            offs = [None] * head + [offsets[t] for t in span] + [None]
            mask = [1] + [0] * (head - 1) + [1] * len(span) + [0]
            s_pos = e_pos = 0
            if answer is not None and span.start <= answer[0] and answer[1] < span.stop:
                s_pos, e_pos = head + answer[0] - span.start, head + answer[1] - span.start
            features.append(QAFeature(index, tokenizer.convert_tokens_to_ids(ids), types, mask, offs, s_pos, e_pos,
                                      [t.startswith("##") for t in ids]))
            if span.stop >= len(tokens):
                break
            start += doc_stride
    return features, skipped


def collate_features(features, pad_id: int = 0) -> dict:
    B, T = len(features), max(len(f.input_ids) for f in features)
    batch = {k: np.zeros((B, T), np.int64) for k in ("input_ids", "token_type_ids", "attention_mask", "answer_mask")}
    batch["input_ids"][:] = pad_id
    for i, f in enumerate(features):
        n = len(f.input_ids)
        batch["input_ids"][i, :n] = f.input_ids
        batch["token_type_ids"][i, :n] = f.token_type_ids
        batch["attention_mask"][i, :n] = 1
        batch["answer_mask"][i, :n] = f.answer_mask
    batch["start_positions"] = np.array([f.start_position for f in features])
    batch["end_positions"] = np.array([f.end_position for f in features])
    return batch


# ------------------------------------------------------------------ decoding
def best_spans(start_logits, end_logits, allowed, max_answer_length: int = 30, n_best: int = 20):
    """The n_best spans (i, j, s_i + e_j) over valid spans: allowed[i], allowed[j], i <= j < i + max_answer_length.

    start_logits, end_logits, allowed: (T,). Every pair is scored at once in a (T, T) table.
    """
    s, e = np.asarray(start_logits, np.float64), np.asarray(end_logits, np.float64)
    ok = np.asarray(allowed, bool)
    T = len(s)
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    valid = ok[:, None] & ok[None, :] & (j >= i) & (j - i < max_answer_length)
    scores = np.where(valid, s[:, None] + e[None, :], -np.inf)  # (T, T): row = start, column = end
    flat = np.argsort(-scores, axis=None, kind="stable")[:n_best]
    return [(int(k // T), int(k % T), float(scores.flat[k])) for k in flat if np.isfinite(scores.flat[k])]


def predict_answers(examples, features, start_logits, end_logits, max_answer_length: int = 30,
                    n_best: int = 20, allow_impossible: bool = False):
    """The best answer text per example id, across all its windows.

    allow_impossible: SQuAD 2.0: answer "" when [CLS]'s score s_0 + e_0 beats the best span.
    """
    by_example = collections.defaultdict(list)
    for f, s, e in zip(features, start_logits, end_logits):
        by_example[f.example_index].append((f, np.asarray(s), np.asarray(e)))
    answers = {}
    for index, windows in by_example.items():
        ex = examples[index]
        best_text, best_score, null_score = "", -np.inf, -np.inf
        for f, s, e in windows:
            n = len(f.input_ids)
            context = np.array([o is not None for o in f.offsets])
            null_score = max(null_score, float(s[0] + e[0]))
            for i, j, score in best_spans(s[:n], e[:n], context, max_answer_length, n_best):
                if score > best_score:
                    best_score = score
                    i, j = _whole_words(f, i, j)
                    best_text = ex["context"][f.offsets[i][0]:f.offsets[j][1]]
        answers[ex["id"]] = "" if allow_impossible and null_score > best_score else best_text
    return answers


def _whole_words(f: QAFeature, i: int, j: int):
    """Widen a token span to whole words: an answer never starts or ends inside a word."""
    if f.continues is None:
        return i, j
    while i > 0 and f.continues[i] and f.offsets[i - 1] is not None:
        i -= 1
    while j + 1 < len(f.offsets) and f.continues[j + 1] and f.offsets[j + 1] is not None:
        j += 1
    return i, j


def independent_argmax_span(start_logits, end_logits):
    """What a naive decoder does: argmax of s and argmax of e, separately (can give j < i)."""
    return int(np.argmax(start_logits)), int(np.argmax(end_logits))


# ------------------------------------------------------------------ the official metrics
def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD's rules)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction: str, truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(examples, predictions: dict) -> dict:
    """Exact match and F1 in percent, each the max over an example's gold answers ("" if impossible)."""
    em = f1 = 0.0
    for ex in examples:
        golds = [a["text"] for a in ex["answers"]] or [""]
        pred = predictions.get(ex["id"], "")
        em += max(exact_match(pred, g) for g in golds)
        f1 += max(f1_score(pred, g) for g in golds)
    n = max(len(examples), 1)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}
