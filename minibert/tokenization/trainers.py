"""Learning a subword vocabulary from text: WordPiece (BERT) and BPE (GPT-2, the course's lab).

Both start from single characters and repeatedly merge the pair of adjacent symbols with
the best score; they differ in the score:

    BPE        count(a, b)                            the most frequent pair
    WordPiece  count(a, b) / (count(a) * count(b))    the pair most likely to belong together:
                                                      frequent together, rare apart

Words are counted first (after BasicTokenizer), so every step works on distinct words
weighted by their frequency, never on the running text.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from .basic import BasicTokenizer
from .wordpiece import SPECIAL_TOKENS


def count_words(texts, do_lower_case: bool = True) -> Counter:
    basic = BasicTokenizer(do_lower_case)
    counts = Counter()
    for text in texts:
        counts.update(basic.tokenize(text))
    return counts


# ---------------------------------------------------------------- WordPiece
def _merge_symbols(a: str, b: str) -> str:
    return a + (b[2:] if b.startswith("##") else b)  # "##ing" glued to "walk" is "walking"


def train_wordpiece(texts, vocab_size: int, do_lower_case: bool = True, min_frequency: int = 1) -> list[str]:
    """A WordPiece vocabulary (special tokens first) of at most vocab_size tokens.

    Each word starts as its first character plus "##"-prefixed continuation characters;
    merges are chosen by count(ab) / (count(a) count(b)) until the vocabulary is full or no
    pair is left. Returns the tokens in id order, ready for vocab.txt.
    """
    counts = {w: c for w, c in count_words(texts, do_lower_case).items() if c >= min_frequency}
    words = [[w[0]] + ["##" + ch for ch in w[1:]] for w in counts]  # symbols of each distinct word
    freqs = list(counts.values())
    alphabet = sorted({s for symbols in words for s in symbols})
    vocab = list(SPECIAL_TOKENS) + alphabet
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size {vocab_size} is smaller than the special tokens plus the "
                         f"{len(alphabet)} characters of the text ({len(vocab)})")
    known = set(vocab)

    # pair -> count, symbol -> count, and pair -> the words where it occurs, kept up to date
    pair_count, symbol_count, where = Counter(), Counter(), defaultdict(set)
    for i, (symbols, f) in enumerate(zip(words, freqs)):
        for s in symbols:
            symbol_count[s] += f
        for pair in zip(symbols, symbols[1:]):
            pair_count[pair] += f
            where[pair].add(i)

    while len(vocab) < vocab_size and pair_count:
        best = max(pair_count, key=lambda p: (pair_count[p] / (symbol_count[p[0]] * symbol_count[p[1]]), p))
        merged = _merge_symbols(*best)
        for i in list(where.pop(best, ())):
            symbols, f = words[i], freqs[i]
            for pair in zip(symbols, symbols[1:]):  # forget this word's old pairs ...
                pair_count[pair] -= f
                if pair_count[pair] <= 0:
                    del pair_count[pair]
                where[pair].discard(i)
            for s in symbols:
                symbol_count[s] -= f
            out, j = [], 0
            while j < len(symbols):
                if j + 1 < len(symbols) and (symbols[j], symbols[j + 1]) == best:
                    out.append(merged)
                    j += 2
                else:
                    out.append(symbols[j])
                    j += 1
            words[i] = out
            for s in out:  # ... and count its new ones
                symbol_count[s] += f
            for pair in zip(out, out[1:]):
                pair_count[pair] += f
                where[pair].add(i)
        pair_count.pop(best, None)
        if merged not in known:
            vocab.append(merged)
            known.add(merged)
    return vocab


# ---------------------------------------------------------------- BPE (Sennrich et al. 2016)
def get_stats(vocab: dict) -> Counter:
    """Count adjacent symbol pairs. vocab maps "l o w </w>" (symbols separated by spaces) -> count."""
    pairs = Counter()
    for word, freq in vocab.items():
        symbols = word.split()
        for pair in zip(symbols, symbols[1:]):
            pairs[pair] += freq
    return pairs


def merge_vocab(pair: tuple, vocab: dict) -> dict:
    """Replace every adjacent occurrence of `pair` by the merged symbol, in every word."""
    pattern = re.compile(r"(?<!\S)" + re.escape(" ".join(pair)) + r"(?!\S)")
    return {pattern.sub("".join(pair), word): freq for word, freq in vocab.items()}


def train_bpe(texts, num_merges: int, do_lower_case: bool = True):
    """Learn up to num_merges BPE merges. Returns (merges, symbols): merges in the order
    learned, and the final set of symbols (characters, merged pieces, "</w>" word ends)."""
    vocab = {" ".join(word) + " </w>": c for word, c in count_words(texts, do_lower_case).items()}
    merges = []
    for _ in range(num_merges):
        pairs = get_stats(vocab)
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        vocab = merge_vocab(best, vocab)
        merges.append(best)
    symbols = sorted({s for word in vocab for s in word.split()})
    return merges, symbols


def bpe_merge(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    """One merge step: every adjacent (a, b) in `symbols` becomes the one symbol a + b,
    scanning left to right, so "a a a" with ("a", "a") gives "aa a" (a symbol is merged once).

    ["l", "o", "w", "</w>"], ("l", "o")  ->  ["lo", "w", "</w>"]
    """
    a, b = pair
    i, out = 0, []
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def bpe_encode(word: str, merges) -> list[str]:
    """Split one word with learned merges, applied in the order they were learned."""
    symbols = list(word) + ["</w>"]
    for pair in merges:
        symbols = bpe_merge(symbols, pair)
    return symbols
