"""Reading a text corpus into documents (lists of sentences).

Two layouts are understood:
  "lines"  google's pre-training format: one sentence per line, a blank line between documents;
  "prose"  ordinary text: paragraphs separated by blank lines, each split into sentences,
           each paragraph a document.
"auto" (the default) takes "prose" when lines typically hold more than one sentence.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..io import read_bytes
from ..tokenization.basic import clean_text

# a sentence ends at . ! or ? (and closing quotes/brackets), followed by space and a capital, digit or quote
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9\u00C0-\u024F])")


CORPUS_FORMATS = ("auto", "lines", "prose")  # "lines": google's one sentence per line; "prose": paragraphs


def split_sentences(paragraph: str) -> list[str]:
    """A simple rule-based splitter: "It rains. We stay in." -> ["It rains.", "We stay in."]."""
    return [s.strip() for s in _SENTENCE_END.split(paragraph.strip()) if s.strip()]


def _read_lines(path: Path) -> list[str]:
    """The file's lines, decoded as UTF-8; an undecodable byte is an error naming the line."""
    data = read_bytes(path, "corpus file")
    _refuse_non_text(path, data)
    lines = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}:{number}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                             "save the file as UTF-8") from None
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]  # a byte-order mark is not text
    return lines


def _refuse_non_text(path: Path, data: bytes) -> None:
    """A UTF-16 file, or a binary one, is refused here: decoded as UTF-8 it might pass,
    and the tokenizer would silently drop every character of it."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(f"{path}: starts with a UTF-16 byte-order mark; save the file as UTF-8")
    if b"\x00" in data:  # no text file has NUL bytes; binary files and UTF-16 text do
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise ValueError(f"{path}:{line}: a NUL byte: not a UTF-8 text file (binary, or saved as UTF-16?)")
    head = data[:8192]
    controls = sum(b < 32 and b not in b"\t\n\r\x0c" or b == 127 for b in head)
    if controls > len(head) // 10:  # text has almost none; 10% is far beyond any real text
        raise ValueError(f"{path}: {controls} of its first {len(head)} bytes are control characters; "
                         "this looks like a binary file, not text")


def _blocks(lines: list[str]) -> list[list[str]]:
    """Documents: runs of lines between blank lines. A line of nothing the tokenizer keeps
    (control characters, U+FFFD, zero-width spaces) counts as blank: its sentence would be empty."""
    blocks, current = [], []
    for line in lines:
        if clean_text(line).strip():
            current.append(line.strip())
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def read_documents(path, format: str = "auto") -> list[list[str]]:
    """Documents of sentences from a UTF-8 text file; empty documents are dropped."""
    if format not in CORPUS_FORMATS:
        raise ValueError(f"format must be 'auto', 'lines' or 'prose', got {format!r}")
    path = Path(path)
    blocks = _blocks(_read_lines(path))
    if format == "auto":
        lines = [line for block in blocks for line in block]
        multi = sum(len(split_sentences(line)) > 1 for line in lines)
        format = "prose" if lines and multi > len(lines) / 2 else "lines"
    if format == "prose":
        documents = [split_sentences(" ".join(block)) for block in blocks]  # a paragraph may wrap over lines
    else:
        documents = blocks
    return [d for d in documents if d]
