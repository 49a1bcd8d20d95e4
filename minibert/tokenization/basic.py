"""BERT's BasicTokenizer: clean the text, space out CJK ideographs, lowercase and strip
accents, then split on whitespace and punctuation. No vocabulary is involved yet."""

from __future__ import annotations

import unicodedata


def is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch: str) -> bool:
    # \t \n \r count as whitespace, not control; every other "C*" category is dropped
    # (Hugging Face's rule; google's drops only Cc and Cf).
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # all non-letter/number ASCII counts, e.g. "^", "$" and "`", which Unicode calls symbols
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp: int) -> bool:
    """CJK Unified Ideographs and their extension blocks (not Hangul, Hiragana or Katakana)."""
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def clean_text(text: str) -> str:
    """Drop NUL, U+FFFD and control characters; turn every kind of whitespace into a space."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            continue
        out.append(" " if is_whitespace(ch) else ch)
    return "".join(out)


def space_cjk(text: str) -> str:
    """Each CJK ideograph becomes a word of its own (Chinese is not written with spaces)."""
    return "".join(f" {ch} " if is_cjk(ord(ch)) else ch for ch in text)


def strip_accents(text: str) -> str:
    """"café" -> "cafe": decompose (NFD), then drop the combining marks (category Mn)."""
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")


def split_punctuation(word: str) -> list[str]:
    """"hello,world!!" -> ["hello", ",", "world", "!", "!"]: every punctuation mark stands alone."""
    pieces, current = [], []
    for ch in word:
        if is_punctuation(ch):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(ch)
        else:
            current.append(ch)
    if current:
        pieces.append("".join(current))
    return pieces


class BasicTokenizer:
    """Text -> words and punctuation, before WordPiece.

    do_lower_case: lowercase and (unless strip_accents is False) strip accents.
    never_split: tokens kept whole, such as "[MASK]".
    """

    def __init__(self, do_lower_case: bool = True, never_split=(), strip_accents: bool | None = None,
                 tokenize_chinese_chars: bool = True):
        self.do_lower_case = do_lower_case
        self.never_split = set(never_split)
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars

    def tokenize(self, text: str) -> list[str]:
        text = clean_text(unicodedata.normalize("NFC", text))
        if self.tokenize_chinese_chars:
            text = space_cjk(text)
        words = []
        for word in text.split():
            if word in self.never_split:
                words.append(word)
                continue
            if self.do_lower_case:
                word = word.lower()
                if self.strip_accents is not False:
                    word = strip_accents(word)
            elif self.strip_accents:
                word = strip_accents(word)
            words.extend(split_punctuation(word))
        return words
