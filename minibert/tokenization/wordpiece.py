"""WordPiece: split each word into the longest pieces found in the vocabulary, and the
tokenizer users call (text -> ids for `[CLS] A [SEP] B [SEP]`, and back)."""

from __future__ import annotations

import re
from pathlib import Path

from ..io import write_text_atomic
from .basic import BasicTokenizer

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def wordpiece_tokenize(word: str, vocab, unk_token: str = "[UNK]", max_chars: int = 100) -> list[str]:
    """Greedy longest-match-first: "unaffable" -> ["un", "##aff", "##able"].

    Continuation pieces carry "##". If any part of the word cannot be matched, the whole
    word becomes [UNK]; so does a word longer than max_chars.
    """
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        else:  # no prefix of the rest is in the vocabulary
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


class WordPieceTokenizer:
    """BasicTokenizer + WordPiece over a vocab.txt, with BERT's special tokens kept whole."""

    def __init__(self, vocab: list[str], do_lower_case: bool = True, strip_accents: bool | None = None,
                 max_input_chars_per_word: int = 100):
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ValueError(f"vocabulary lacks the special tokens {', '.join(missing)}; "
                             f"a BERT vocab must contain {' '.join(SPECIAL_TOKENS)}")
        self.vocab = {token: i for i, token in enumerate(vocab)}
        if len(self.vocab) != len(vocab):
            dupes = sorted({t for t in vocab if vocab.count(t) > 1})[:3]
            raise ValueError(f"vocabulary has duplicate tokens, e.g. {dupes}")
        self.inv_vocab = list(vocab)
        self.do_lower_case = do_lower_case
        self.basic = BasicTokenizer(do_lower_case, never_split=SPECIAL_TOKENS, strip_accents=strip_accents)
        # the same rules without never_split, for text that is data, not markup: in a question or a
        # context, "[SEP]" typed by a person is the three tokens "[", "sep", "]", as google's
        # BasicTokenizer (which has no never_split) reads it, never a real separator
        self.plain = BasicTokenizer(do_lower_case, strip_accents=strip_accents)
        self.max_input_chars_per_word = max_input_chars_per_word
        self._special_split = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (self.vocab[t] for t in SPECIAL_TOKENS)
        self.special_ids = frozenset((self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id))

    @classmethod
    def from_vocab_file(cls, path, do_lower_case: bool | None = None, **kwargs) -> "WordPieceTokenizer":
        """Read a vocab.txt (one token per line). Casing comes from a tokenizer_config.json beside
        it when there is one and do_lower_case is not given; otherwise lowercase."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: vocab file not found") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: vocab file is not valid UTF-8 ({e})") from None
        vocab = text.split("\n")
        if vocab and vocab[-1] == "":
            vocab.pop()
        vocab = [t.rstrip("\r") for t in vocab]
        if do_lower_case is None:
            do_lower_case = _casing_from_config(path.parent / "tokenizer_config.json")
        try:
            return cls(vocab, do_lower_case=do_lower_case, **kwargs)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def save_vocab(self, path) -> None:
        write_text_atomic(path, "".join(t + "\n" for t in self.inv_vocab))

    def __len__(self) -> int:
        return len(self.inv_vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.inv_vocab)

    def tokenize(self, text: str, special_tokens: bool = True) -> list[str]:
        """Text -> WordPiece tokens. "[MASK]" and the other special tokens typed in text stay whole;
        with special_tokens=False they are plain text: "[SEP]" -> "[", "sep", "]"."""
        if not special_tokens:
            return [piece for word in self.plain.tokenize(text)
                    for piece in wordpiece_tokenize(word, self.vocab, "[UNK]", self.max_input_chars_per_word)]
        tokens = []
        for part in self._special_split.split(text):
            if part in SPECIAL_TOKENS:
                tokens.append(part)
                continue
            for word in self.basic.tokenize(part):
                tokens.extend(wordpiece_tokenize(word, self.vocab, "[UNK]", self.max_input_chars_per_word))
        return tokens

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_id)
        return [self.vocab.get(t, self.unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, int):
            return self.inv_vocab[ids]
        return [self.inv_vocab[int(i)] for i in ids]

    def encode(self, text_a: str, text_b: str | None = None, max_length: int | None = None) -> dict:
        """`[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]` as ids, with segment ids and attention mask.

        With max_length, the longer of A and B loses tokens from its end until the pair fits.
        An empty text_b counts as none, as in Hugging Face.
        """
        a = self.tokenize(text_a)
        b = self.tokenize(text_b) if text_b else None
        if max_length is not None:
            budget = max_length - (3 if b is not None else 2)
            if budget < (2 if b is not None else 1):
                raise ValueError(f"max_length {max_length} is too small to hold the special tokens and any text")
            while len(a) + (len(b) if b else 0) > budget:
                (a if b is None or len(a) > len(b) else b).pop()
        tokens = ["[CLS]", *a, "[SEP]"]
        types = [0] * len(tokens)
        if b is not None:
            tokens += [*b, "[SEP]"]
            types += [1] * (len(b) + 1)
        return {"input_ids": self.convert_tokens_to_ids(tokens), "token_type_ids": types,
                "attention_mask": [1] * len(tokens), "tokens": tokens}

    def batch_encode(self, texts_a, texts_b=None, max_length: int | None = None) -> dict:
        """encode() for several texts (or pairs), padded with [PAD] to the longest: NumPy arrays
        input_ids, token_type_ids, attention_mask of shape (B, T), ready for model.forward."""
        import numpy as np

        texts_b = texts_b if texts_b is not None else [None] * len(texts_a)
        encs = [self.encode(a, b, max_length) for a, b in zip(texts_a, texts_b)]
        T = max(len(e["input_ids"]) for e in encs)
        batch = {k: np.zeros((len(encs), T), np.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
        batch["input_ids"][:] = self.pad_id
        for i, e in enumerate(encs):
            for k in batch:
                batch[k][i, :len(e[k])] = e[k]
        return batch

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Ids -> text, joining "##" pieces to the piece before them."""
        words = []
        for token in self.convert_ids_to_tokens(ids):
            if skip_special_tokens and token in SPECIAL_TOKENS and token != "[UNK]":
                continue
            if token.startswith("##") and words:
                words[-1] += token[2:]
            else:
                words.append(token)
        return " ".join(words)


def _casing_from_config(path: Path) -> bool:
    import json

    if path.is_file():
        try:
            return bool(json.loads(path.read_text(encoding="utf-8")).get("do_lower_case", True))
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"{path}: not a valid JSON tokenizer config") from None
    return True
