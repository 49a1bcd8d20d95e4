# %% [markdown]
# # 2. Masking: how BERT builds its training examples
#
# **Learning goal:** do BERT's masking by hand on one sentence (15% chosen; of those 80%
# `[MASK]`, 10% random, 10% unchanged), then on thousands of sequences; compare the four
# masking strategies with their statistics; see why 80/10/10 and how BERT's masking differs
# from T5's sentinel span corruption; run one of minibert's property-based tests yourself.
#
# Runs in a few seconds on a 2-core CPU, with no download.

# %%
import time
_start = time.perf_counter()
import minibert as mb  # before numpy: OpenBLAS reads its thread settings once, as numpy loads it (README, Speed)
%matplotlib inline
import numpy as np
from minibert.data import exact_count
from minibert.plots import masking_figure
print(f"minibert {mb.__version__}, source fingerprint {mb.source_fingerprint()}")

docs = mb.generate_corpus(1000, seed=0)
tokenizer = mb.WordPieceTokenizer(mb.train_wordpiece([" ".join(d) for d in docs], 4000))

# %% [markdown]
# ## One sentence pair, step by step

# %%
enc = tokenizer.encode("Oslo is a city in Norway.", "It is famous for its harbor and its old bridge.")
tokens = enc["tokens"]
print(tokens)
candidates = [i for i, t in enumerate(tokens) if t not in ("[CLS]", "[SEP]")]
budget = exact_count(len(tokens), 0.15, max_predictions=20)
print(f"{len(tokens)} tokens, {len(candidates)} may be chosen; google's budget: "
      f"max(1, round({len(tokens)} * 0.15)) = {budget}")

# %%
from minibert.data.masking import replacement_vocab

vocab = replacement_vocab(tokenizer)  # what a random replacement is drawn from: no [CLS], [MASK], ...
rng = np.random.default_rng(3)
order = rng.permutation(len(candidates))[:budget]  # google: shuffle the candidates, take the first few
chosen = [candidates[j] for j in order]
print("chosen positions:", chosen, [tokens[i] for i in chosen])
out = list(tokens)
for i in chosen:
    u = rng.random()
    if u < 0.8:
        out[i] = "[MASK]"
    elif u < 0.9:
        out[i] = vocab[int(rng.integers(len(vocab)))]
    print(f"  position {i:2} ({tokens[i]!r}): u = {u:.2f} -> {out[i]!r}")

# %% [markdown]
# `mb.mask_tokens` does exactly this, with the same draws from the generator in the same
# order, so with the same seed it makes the same choices, and it returns what it did.
# (Another order of draws, say `rng.choice(candidates, budget, replace=False)`, would choose
# other positions, just as validly.)

# %%
m = mb.mask_tokens(tokens, tokenizer, strategy="exact", rng=3)
print(" ".join(m.tokens))
print("positions:", m.positions, " labels:", m.labels, " kinds:", m.kinds)
print("the same as by hand:", m.tokens == out)

# %% [markdown]
# ## Why 80 / 10 / 10?
#
# If chosen tokens were always replaced by `[MASK]`, the model would only ever need good
# representations at `[MASK]` positions — and `[MASK]` never appears when the model is
# fine-tuned. Replacing 10% by a random word and leaving 10% unchanged means the model
# cannot tell which of its input tokens are to be predicted, so it has to represent every
# token well; the random 10% also stops it from simply copying the input. That is the
# paper's reason (section 3.1, and the ablation in appendix C.2). In google-research/bert
# issue #169 Devlin adds where the mismatch matters most: for token-level features (SQuAD,
# NER, feature-based use), less for sentence-level tasks like GLUE.
#
# ## Four strategies on many sequences
#
# `exact` is google's count; `bernoulli` is Hugging Face's independent 15% coin per token;
# `whole_word` chooses a word's `##` pieces together; `span` chooses contiguous spans.

# %%
stats = {}
for strategy in ["exact", "bernoulli", "whole_word", "span"]:
    config = mb.MaskingConfig(strategy=strategy, max_predictions=None if strategy == "bernoulli" else 20)
    instances = mb.create_pretraining_instances(docs, tokenizer, max_seq_length=64, seed=1, masking=config)
    s = mb.masking_statistics(instances)
    stats[strategy] = (s, config)
    print(f"{strategy:10}: {s.summary()}")

# %%
masking_figure(stats["exact"][0].to_dict(stats["exact"][1]))

# %%
masking_figure(stats["bernoulli"][0].to_dict(stats["bernoulli"][1]))

# %%
masking_figure(stats["span"][0].to_dict(stats["span"][1]))

# %% [markdown]
# Things to notice:
#
# * `exact` chooses 16.3% of the candidate tokens, not 15%. Google's budget is 15% of the
#   whole sequence, `[CLS]` and both `[SEP]` included (15% of 44.7 tokens on average is
#   6.7; with rounding, 6.8 predictions per sequence), but only the other 41.7 tokens are
#   candidates: 6.8 / 41.7 = 16.3%. `bernoulli` flips a 15% coin per candidate, so its share
#   is 15.0%, and it varies more between sequences (sometimes nothing is chosen).
# * The selection rate by position shows no trend for `exact` and `bernoulli`: it wiggles
#   around its mean from position to position, but no part of the sequence is favoured. For
#   `span` the first positions are chosen less often (0.07 at position 1, about 0.12 at
#   position 2, against about 0.16 further on), because only spans that start there cover
#   them, while a later position is also covered by spans starting before it.
# * Span masking chooses runs of consecutive tokens; the others mostly single tokens.
# * `whole_word` has the same numbers as `exact`: this 4,000-token vocabulary holds every
#   word of the corpus whole, so no word has `##` pieces to keep together. The next cell
#   uses a 1,500-token vocabulary, where some words do have pieces.

# %%
small = mb.WordPieceTokenizer(mb.train_wordpiece([" ".join(d) for d in docs], 1500))
pieces = small.tokenize("Oslo is famous for its harbor and its old bridge.")
print(" ".join(pieces))
for strategy in ("exact", "whole_word"):
    m = mb.mask_tokens(pieces, small, strategy=strategy, mask_prob=0.3, rng=5)
    print(f"{strategy:10}: chose {[pieces[i] for i in m.positions]}")

# %% [markdown]
# With `whole_word`, a word's `##` pieces are chosen together or not at all; `exact` may
# choose one piece of a word and leave its neighbours, which then give the answer away.
#
# ## BERT's masking vs T5's span corruption
#
# The course's graded exercise builds T5-style inputs: each chosen *span* is replaced by
# one sentinel token, and the model must generate the spans, each after its sentinel, as a
# separate output sequence. Here is that corruption next to BERT's masking of the same
# spans (every chosen token replaced by `[MASK]` where it stands; the 80/10/10 rule left out):

# %%
def t5_span_corruption(tokens, spans):
    """T5: each span becomes one sentinel in the input; the target lists the spans."""
    inputs, targets, last = [], [], 0
    for k, (start, end) in enumerate(spans):
        inputs += tokens[last:start] + [f"<extra_id_{k}>"]
        targets += [f"<extra_id_{k}>"] + tokens[start:end]
        last = end
    inputs += tokens[last:]
    return inputs, targets + [f"<extra_id_{len(spans)}>"]

words = "the people of oslo love to eat fish and the weather is often rainy".split()
spans = [(3, 5), (9, 11)]
t5_in, t5_out = t5_span_corruption(words, spans)
inside = [any(start <= i < end for start, end in spans) for i in range(len(words))]
bert_in = ["[MASK]" if chosen else w for w, chosen in zip(words, inside)]
print("T5 input  :", " ".join(t5_in))
print("T5 target :", " ".join(t5_out))
print("BERT input:", " ".join(bert_in))
print("BERT predicts, in place, at positions", [i for i in range(len(words)) if inside[i]], ":",
      [w for w, chosen in zip(words, inside) if chosen])

# %% [markdown]
# T5's input gets *shorter* and its answers are *generated* by a decoder; BERT's input keeps
# its length and an encoder predicts every chosen token where it stands.
#
# ## A property-based test, run here
#
# minibert's tests don't check masking on a few hand-picked examples: `hypothesis` generates
# hundreds of token lists, probabilities and seeds, and checks properties that must always
# hold. Here is one of them: *`[CLS]`, `[SEP]` and `[PAD]` are never chosen, labels are the
# original tokens, and nothing else changes.* (`[UNK]` and `[MASK]` in the text are ordinary
# tokens here: they may be chosen.)

# %%
from hypothesis import given, settings, strategies as st

words_and_specials = st.lists(st.sampled_from(["the", "city", "##s", "oslo", "[UNK]", "[MASK]"]), max_size=200)

@settings(max_examples=300, deadline=None)
@given(body=words_and_specials, strategy=st.sampled_from(["exact", "bernoulli", "whole_word", "span"]),
       p=st.floats(0.01, 0.5), seed=st.integers(0, 2**32 - 1), pad=st.integers(0, 10))
def masking_keeps_its_promises(body, strategy, p, seed, pad):
    tokens = ["[CLS]", *body, "[SEP]"] + ["[PAD]"] * pad
    m = mb.mask_tokens(tokens, tokenizer, strategy=strategy, mask_prob=p, rng=seed)
    assert all(tokens[i] not in ("[CLS]", "[SEP]", "[PAD]") for i in m.positions)
    assert m.labels == [tokens[i] for i in m.positions]
    assert all(m.tokens[i] == tokens[i] for i in range(len(tokens)) if i not in m.positions)

masking_keeps_its_promises()
print("up to 300 generated cases: every property held")

# %% [markdown]
# Over 20,000 chosen positions, the share that became `[MASK]` should be within 1% of 80%:
# the standard deviation of the share is sqrt(0.8 * 0.2 / 20,000), about 0.3%.

# %%
kinds = []
rng = np.random.default_rng(0)
while len(kinds) < 20_000:
    kinds += mb.mask_tokens(tokens, tokenizer, rng=rng, max_predictions=None).kinds
mask_share = np.mean([k == "mask" for k in kinds])
assert abs(mask_share - 0.8) < 0.01
print(f"[MASK] share: {mask_share:.3f}")

# %% [markdown]
# ## Your turn: BERT's masking, by hand
#
# Write `mask_tokens` for the `exact` strategy: choose `exact_count(real tokens, 0.15)`
# positions at random among the tokens that are not `[CLS]`, `[SEP]` or `[PAD]`; replace 80%
# of the chosen by `[MASK]`, 10% by a random token of the vocabulary (not a bracketed special
# token), and leave 10% as they are. Return a `MaskedTokens`. Draw everything from
# `np.random.default_rng(rng)`.
#
# The check cannot compare your choices with minibert's (a different order of draws picks
# other positions, and both are right), so it checks the rules on every draw and the
# statistics over 2,000 draws: the 80/10/10 split and a flat selection rate by position,
# each within 5 standard deviations of its binomial distribution.

# %% tags=["exercise"]
from minibert import exercises
from minibert.data.masking import MaskedTokens, exact_count

def mask_tokens(tokens, tokenizer, strategy="exact", mask_prob=0.15, rng=None, **options):
    """tokens: a list like ["[CLS]", "the", ..., "[SEP]"] -> MaskedTokens(tokens, positions, labels, kinds)."""
    ### BEGIN SOLUTION
    rng = np.random.default_rng(rng)
    candidates = [i for i, t in enumerate(tokens) if t not in ("[CLS]", "[SEP]", "[PAD]")]
    n = min(exact_count(sum(t != "[PAD]" for t in tokens), mask_prob, None), len(candidates))
    positions = sorted(int(i) for i in rng.choice(candidates, size=n, replace=False))
    words = [w for w in tokenizer.vocab if not (w.startswith("[") and w.endswith("]"))]
    out, kinds = list(tokens), []
    for i in positions:
        u = rng.random()
        if u < 0.8:
            out[i], kind = "[MASK]", "mask"
        elif u < 0.9:
            out[i], kind = words[int(rng.integers(len(words)))], "random"
        else:
            kind = "keep"
        kinds.append(kind)
    return MaskedTokens(tokens=out, positions=positions, labels=[tokens[i] for i in positions], kinds=kinds)
    ### END SOLUTION

# %% tags=["check"]
exercises.check("mask_tokens", mask_tokens)

# %%
print(f"This notebook ran in {time.perf_counter() - _start:.0f} s.")
