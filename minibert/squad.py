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
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import iter_jsonl, read_json
from .tokenization.basic import is_control, is_whitespace, strip_accents
from .tokenization.wordpiece import wordpiece_tokenize


# ------------------------------------------------------------------ data
LAYOUTS = ('SQuAD\'s own {"data": [{"paragraphs": [{"context", "qas": [{"id", "question", "answers"}]}]}]}, '
           'or Hugging Face rows {"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}} '
           'as JSON lines, a JSON list, or a list under "data"')


def read_squad(path) -> tuple[list, list]:
    """Examples from a SQuAD v1.1 / v2.0 file: (examples, skipped).

    Two layouts are read:
      SQuAD's own   {"data": [{"paragraphs": [{"context", "qas": [{"id", "question",
                    "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}
      rows          Hugging Face `datasets`' layout, one object per question: {"id", "question",
                    "context", "answers": {"text": [...], "answer_start": [...]}}, as JSON lines
                    (what Dataset.to_json writes), a JSON list, or a list under "data". Empty
                    answer lists mark an unanswerable question, as in squad_v2.

    Each example: {"id", "question", "context", "answers": [{"text", "answer_start"}], "is_impossible"}.
    A malformed file is an error naming the file and the place; a question with an empty
    context or question text, or an answer whose offsets do not match its context, is
    skipped and reported in `skipped` (never kept as a wrong label).
    """
    path = Path(path)
    questions = _squad_questions(path)
    if not questions:
        raise ValueError(f"{path}: no questions (the list of them is empty)")
    examples, skipped, seen = [], [], set()
    for q in questions:
        if not q["context"].strip():
            problem = f"{q['context_at']}: empty"
        elif not q["question"].strip():
            problem = f"{q['question_at']}: empty"
        elif q["id"] in seen:  # its prediction and another's would overwrite each other
            problem = f"{q['at']}: id {q['id']!r} is used twice"
        else:
            problem = None
        if problem is not None:
            skipped.append(f"{problem}; question skipped")
            continue
        seen.add(q["id"])
        good = []
        for at, text, start in q["answers"]:
            if start < 0:  # context[-7:-1] would "match" through Python's negative indexing
                skipped.append(f"{at}: answer_start {start} is negative")
            elif not text:
                skipped.append(f"{at}: the answer text is empty")
            elif q["context"][start:start + len(text)] != text:
                skipped.append(f"{at}: answer_start {start} does not point at {text!r} in the context")
            else:
                good.append({"text": text, "answer_start": start})
        if not q["is_impossible"] and not good:
            skipped.append(f"{q['at']}: no usable answer; question skipped")
            continue
        examples.append({"id": q["id"], "question": q["question"], "context": q["context"], "answers": good,
                         "is_impossible": q["is_impossible"]})
    if not examples:
        raise ValueError(f"{path}: no usable questions; all {len(questions)} were skipped, the first: "
                         f"{skipped[0]}")
    return examples, skipped


def _squad_questions(path: Path) -> list:
    """Every question of the file, in one form whichever the layout: {"id", "question",
    "context", "answers": [(place, text, start)], "is_impossible"} and the places of the
    question, its text and its context, for messages."""
    data, lines = _read_json_or_lines(path)
    if lines is not None:  # JSON lines: one row per line
        return [_row(row, f"{path}:{n}", f"line {n}") for n, row in lines]
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        items, name = data["data"], "data"
    elif isinstance(data, list):
        items, name = data, ""
    elif isinstance(data, dict) and "question" in data:  # a JSON-lines file of a single row
        return [_row(data, f"{path}:1", "line 1")]
    else:
        raise ValueError(f"{path}: not a SQuAD file; the layouts read are {LAYOUTS}")
    if not items:
        return []
    first = items[0]
    if name and isinstance(first, dict) and "paragraphs" in first:
        return _nested(items, path)
    if not (isinstance(first, dict) and "question" in first):
        raise ValueError(f"{path}: {name}[0] is neither a SQuAD article nor a question row; the layouts read are "
                         f"{LAYOUTS}")
    return [_row(row, f"{path}: {name}[{i}]", f"{name}[{i}]") for i, row in enumerate(items)]


def _read_json_or_lines(path: Path):
    """(value, None) for a JSON file, (None, [(line number, value)]) for a JSON-lines one."""
    try:
        return read_json(path, "SQuAD file"), None
    except ValueError as whole:
        lines = []
        try:
            for n, value in iter_jsonl(path, "SQuAD file", tolerate_partial_last_line=False):
                lines.append((n, value))
        except ValueError as by_line:
            # a broken first line means the file is not JSON lines at all: report it as JSON
            raise (by_line if lines else whole) from None
        return None, lines


def _nested(articles, path: Path) -> list:
    questions = []
    for a, article in enumerate(articles):
        for p, para in enumerate(_field(article, "paragraphs", list, path, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(para, "context", str, path, where)
            for q, qa in enumerate(_field(para, "qas", list, path, where)):
                here = f"{where}.qas[{q}]"
                question = _field(qa, "question", str, path, here)
                impossible = _field(qa, "is_impossible", bool, path, here) if "is_impossible" in qa else False
                answers = []
                for k, ans in enumerate([] if impossible else _field(qa, "answers", list, path, here)):
                    place = f"{here}.answers[{k}]"
                    answers.append((f"{path}: {place}", _field(ans, "text", str, path, place),
                                    _field(ans, "answer_start", int, path, place)))
                questions.append({"id": str(qa.get("id", here)), "question": question, "context": context,
                                  "answers": answers, "is_impossible": impossible, "at": f"{path}: {here}",
                                  "question_at": f"{path}: {here}.question", "context_at": f"{path}: {where}.context"})
    return questions


def _row(row, at: str, default_id: str) -> dict:
    """One Hugging Face row; at = "file:line" or "file: data[i]"."""
    if not isinstance(row, dict):
        raise ValueError(f"{at}: a row is an object with 'question', 'context' and 'answers', got {type(row).__name__}")
    for key in ("question", "context", "answers"):
        if key not in row:
            raise ValueError(f"{at}: missing '{key}'")
    for key in ("question", "context"):
        if not isinstance(row[key], str):
            raise ValueError(f"{at}: {key}: expected str, got {type(row[key]).__name__}")
    answers = row["answers"]
    if isinstance(answers, dict):  # datasets' columns: {"text": [...], "answer_start": [...]}
        texts, starts = answers.get("text"), answers.get("answer_start")
        if not (isinstance(texts, list) and isinstance(starts, list) and len(texts) == len(starts)):
            raise ValueError(f"{at}: answers: needs lists 'text' and 'answer_start' of the same length")
        answers = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
    elif not isinstance(answers, list):
        raise ValueError(f"{at}: answers: expected {{'text': [...], 'answer_start': [...]}}, "
                         f"got {type(answers).__name__}")
    parsed = [(f"{at}: answers[{k}]", _field(ans, "text", str, at, f"answers[{k}]"),
               _field(ans, "answer_start", int, at, f"answers[{k}]")) for k, ans in enumerate(answers)]
    impossible = _field(row, "is_impossible", bool, at) if "is_impossible" in row else not parsed
    return {"id": str(row.get("id", default_id)), "question": row["question"], "context": row["context"],
            "answers": [] if impossible else parsed, "is_impossible": impossible,
            "at": at, "question_at": f"{at}: question", "context_at": f"{at}: context"}


def _field(obj, key, kind, path, where: str = ""):
    """obj[key], which must be of type kind; errors name the file (path) and the place in it (where)."""
    place = f"{path}: {where}" if where else str(path)
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{place}: missing '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ValueError(f"{place}{'.' if where else ': '}{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


# ------------------------------------------------------------------ tokens with character offsets
def tokenize_with_offsets(tokenizer, text: str):
    """WordPiece tokens of text and, for each, its (start, end) character span in text.

    A question or a context is plain text: "[SEP]" typed in it is the tokens "[", "sep", "]"
    (tokenizer.plain, google's BasicTokenizer rules), never a separator that would change
    the [CLS] question [SEP] context [SEP] layout.

    The basic tokenizer lowercases and strips accents, so each character is normalized the
    same way and remembered by its position; tokens are then found in that normalized
    stream, and their positions lead back to the original characters. Both sides are
    compared decomposed (NFD), so "é" typed as one character or as e + accent is one letter.
    """
    basic = tokenizer.plain
    strip = basic.strip_accents if basic.strip_accents is not None else basic.do_lower_case  # BasicTokenizer's rule
    norm, back = [], []
    for k, ch in enumerate(text):
        if ord(ch) in (0, 0xFFFD) or is_control(ch):
            continue
        n = " " if is_whitespace(ch) else ch
        if basic.do_lower_case:
            n = n.lower()
        n = strip_accents(n) if strip else unicodedata.normalize("NFD", n)
        for c in n:
            norm.append(c)
            back.append(k)
    norm = "".join(norm)
    tokens, offsets, pos = [], [], 0
    for word in basic.tokenize(text):
        at = norm.find(unicodedata.normalize("NFD", word), pos)
        if at < 0:
            after = back[pos - 1] + 1 if pos else 0
            raise ValueError(f"cannot find the word {word!r} in the text after character {after}")
        pos = at + len(unicodedata.normalize("NFD", word))
        pieces = wordpiece_tokenize(word, tokenizer.vocab, "[UNK]", tokenizer.max_input_chars_per_word)
        if pieces == ["[UNK]"]:
            tokens.append("[UNK]")
            offsets.append((back[at], back[pos - 1] + 1))
            continue
        for k, piece in enumerate(pieces):
            n = len(unicodedata.normalize("NFD", piece[2:] if k else piece))  # continuation pieces carry "##"
            end = pos if k == len(pieces) - 1 else min(at + n, pos)
            tokens.append(piece)
            offsets.append((back[min(at, end - 1)], back[end - 1] + 1))
            at = end
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
    leaves no room for context, is skipped and reported, never truncated into a different
    question; so is an empty question or context (nothing to ask, nowhere to look).
    """
    features, skipped = [], []
    for index, ex in enumerate(examples):
        question = tokenizer.tokenize(ex["question"], special_tokens=False)  # plain text, as the context
        try:
            tokens, offsets = tokenize_with_offsets(tokenizer, ex["context"])
        except ValueError as e:
            skipped.append(f"{ex['id']}: {e}; skipped")
            continue
        if not tokens or not question:
            skipped.append(f"{ex['id']}: the {'context' if not tokens else 'question'} is empty "
                           "(nothing the tokenizer keeps); skipped")
            continue
        if len(question) > max_query_length or len(question) + 3 >= max_seq_length:
            skipped.append(f"{ex['id']}: question of {len(question)} tokens is longer than max_query_length "
                           f"{max_query_length} (or leaves no room for the context); skipped")
            continue
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
            start += min(doc_stride, room)  # as google's run_squad.py: a stride past the window would skip text
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


def best_span(start_logits, end_logits, allowed, max_answer_length: int = 30) -> tuple[int, int] | None:
    """The valid span (i, j) with the highest start_logits[i] + end_logits[j]: both ends allowed
    (context tokens), i <= j, and at most max_answer_length tokens. None if no span is valid.

    Not argmax(start) and argmax(end) taken apart: those can give an end before the start,
    or a span that leaves the context."""
    spans = best_spans(start_logits, end_logits, allowed, max_answer_length, n_best=1)
    return (spans[0][0], spans[0][1]) if spans else None


def predict_answers(examples, features, start_logits, end_logits, max_answer_length: int = 30,
                    n_best: int = 20, allow_impossible: bool = False):
    """The best answer text per example id, across all its windows.

    allow_impossible: SQuAD 2.0: answer "" when [CLS]'s score s_0 + e_0 beats the best span.
    With several windows, the null score is the *lowest* of theirs, as in google's run_squad.py
    and Hugging Face: a window that does not hold the answer rightly says "no answer here",
    so the window most sure that there is an answer decides.
    """
    by_example = collections.defaultdict(list)
    for f, s, e in zip(features, start_logits, end_logits):
        by_example[f.example_index].append((f, np.asarray(s), np.asarray(e)))
    answers = {}
    for index, windows in by_example.items():
        ex = examples[index]
        best_text, best_score, null_score = "", -np.inf, np.inf
        for f, s, e in windows:
            n = len(f.input_ids)
            context = np.array([o is not None for o in f.offsets])
            null_score = min(null_score, float(s[0] + e[0]))
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


# fewer held-out questions than this, and a difference between two runs is mostly chance
MIN_HELD_OUT = 50


def held_out_warning(n: int, what: str = "questions", minimum: int = MIN_HELD_OUT) -> str | None:
    """A one-line warning when a held-out metric rests on fewer than `minimum` items (n), else None.

    With n items a percentage moves in steps of 100 / n points, and its standard error near
    50% is 50 / sqrt(n) points: 20 questions give steps of 5 and an error of 11.
    For squad_metrics, n is the number of examples given to it.
    """
    if n >= minimum:
        return None
    if n == 0:
        return f"no held-out {what}: there is nothing to measure"
    return (f"the held-out metrics come from only {n} {what}: one of them moves a score by {100 / n:.1f} points "
            f"(standard error up to {50 / n ** 0.5:.0f}); use at least {minimum} to compare runs")
