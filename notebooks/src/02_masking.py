# %% [markdown]
# # 2. Masking: how BERT builds its training examples
#
# **Learning goal:** do BERT's masking by hand on one sentence (15% chosen; of those 80%
# `[MASK]`, 10% random, 10% unchanged), then on thousands of sequences; compare the four
# masking strategies with their statistics; see why 80/10/10 and how BERT's masking differs
# from T5's sentinel span corruption; run one of minibert's property-based tests yourself.
#
# Runs in about 10 seconds on a 2-core CPU, with no download.

# %%
import time
_start = time.perf_counter()
%matplotlib inline
import numpy as np
import minibert as mb
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
rng = np.random.default_rng(3)
chosen = sorted(int(i) for i in rng.choice(candidates, size=budget, replace=False))
print("chosen positions:", chosen, [tokens[i] for i in chosen])
for i in chosen:
    u = rng.random()
    what = "[MASK]" if u < 0.8 else ("a random token" if u < 0.9 else "unchanged")
    print(f"  position {i:2} ({tokens[i]!r}): u = {u:.2f} -> {what}")

# %% [markdown]
# `mb.mask_tokens` does exactly this, and returns what it did:

# %%
m = mb.mask_tokens(tokens, tokenizer, strategy="exact", rng=3)
print(" ".join(m.tokens))
print("positions:", m.positions, " labels:", m.labels, " kinds:", m.kinds)

# %% [markdown]
# ## Why 80 / 10 / 10?
#
# If chosen tokens were always replaced by `[MASK]`, the model would only ever need good
# representations at `[MASK]` positions — and `[MASK]` never appears when the model is
# fine-tuned. Replacing 10% by a random word and leaving 10% unchanged means the model
# cannot tell which of its input tokens are to be predicted, so it has to represent every
# token well (Devlin, google-research/bert #169). The random 10% also stops it from simply
# copying the input.
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
# Things to notice: `exact` gives every sequence (almost) the same share, while `bernoulli`
# spreads it out (and sometimes chooses nothing). The selection rate by position is flat
# for all of them — no position is favoured. Span masking produces long runs of
# consecutive masked tokens; the other strategies mostly single tokens. (`whole_word` equals
# `exact` here: this vocabulary holds every word of the corpus whole, so no word has `##`
# pieces. With a smaller vocabulary the two differ.)
#
# ## BERT's masking vs T5's span corruption
#
# The course's graded exercise builds T5-style inputs: each chosen *span* is replaced by
# one sentinel token, and the model must generate the spans, each after its sentinel, as a
# separate output sequence. Here is that corruption next to BERT's on the same spans:

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
bert = mb.mask_tokens(["[CLS]"] + words + ["[SEP]"], tokenizer, strategy="span", rng=0)
print("T5 input :", " ".join(t5_in))
print("T5 target:", " ".join(t5_out))
print("BERT input (span strategy):", " ".join(bert.tokens))
print("BERT predicts, in place, at positions", bert.positions, ":", bert.labels)

# %% [markdown]
# T5's input gets *shorter* and its answers are *generated* by a decoder; BERT's input keeps
# its length and an encoder predicts every chosen token where it stands.
#
# ## A property-based test, run here
#
# minibert's tests don't check masking on a few hand-picked examples: `hypothesis` generates
# hundreds of token lists, probabilities and seeds, and checks properties that must always
# hold. Here is one of them: *no special token is ever chosen, labels are the original
# tokens, and nothing else changes.*

# %%
from hypothesis import given, settings, strategies as st

words_and_specials = st.lists(st.sampled_from(["the", "city", "##s", "oslo", "[UNK]", "[MASK]"]), max_size=200)

@settings(max_examples=300, deadline=None)
@given(body=words_and_specials, strategy=st.sampled_from(["exact", "bernoulli", "whole_word", "span"]),
       p=st.floats(0.01, 0.5), seed=st.integers(0, 2**32 - 1))
def masking_keeps_its_promises(body, strategy, p, seed):
    tokens = ["[CLS]", *body, "[SEP]"]
    m = mb.mask_tokens(tokens, tokenizer, strategy=strategy, mask_prob=p, rng=seed)
    assert all(tokens[i] not in ("[CLS]", "[SEP]") for i in m.positions)
    assert m.labels == [tokens[i] for i in m.positions]
    assert all(m.tokens[i] == tokens[i] for i in range(len(tokens)) if i not in m.positions)

masking_keeps_its_promises()
print("300 generated cases: every property held")

# %% [markdown]
# **Exercise.** Over 20,000 chosen positions, what share became `[MASK]`? It should be
# within 1% of 80% (the standard deviation of the share is about 0.3%). Compute `mask_share`.

# %%
kinds = []
rng = np.random.default_rng(0)
while len(kinds) < 20_000:
    kinds += mb.mask_tokens(tokens, tokenizer, rng=rng, max_predictions=None).kinds
mask_share = np.mean([k == "mask" for k in kinds])  # your answer
assert abs(mask_share - 0.8) < 0.01
print(f"[MASK] share: {mask_share:.3f}")

# %%
print(f"This notebook ran in {time.perf_counter() - _start:.0f} s.")
