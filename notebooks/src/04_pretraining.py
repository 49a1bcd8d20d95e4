# %% [markdown]
# # 4. Pre-training a tiny BERT, and watching it learn
#
# **Learning goal:** pre-train a 2-layer BERT with both of BERT's objectives — masked
# language modelling (MLM) and next-sentence prediction (NSP) — on minibert's generated
# corpus; read the masking statistics and the loss and accuracy curves against their
# chance levels; look at what the attention heads do; and ask the model to fill in masks
# and judge sentence pairs.
#
# Runs in about 2 minutes on a 2-core CPU (133 s when last built, on an AMD EPYC), with no download. The command line does the
# same with `minibert pretrain`.

# %%
import time
_start = time.perf_counter()
import minibert as mb  # before numpy: OpenBLAS reads its thread settings once, as numpy loads it (README, Speed)
%matplotlib inline
import math
import shutil
from pathlib import Path
import numpy as np
from minibert.train import PretrainConfig, pretrain
from minibert.plots import attention_example, attention_figure, masking_figure, training_figure
from minibert.runs import read_metrics
from minibert.predict import fill_mask, next_sentence_probability
print(f"minibert {mb.__version__}, source fingerprint {mb.source_fingerprint()}")

# %% [markdown]
# ## The data
#
# Each generated document tells a few facts about one person, city, country, company,
# sports club, animal, dish or festival. Facts hold across documents (Oslo is always in
# Norway), so masked words can be inferred from context, and each document keeps to its
# subject, so a sentence from another document usually does not fit.

# %%
docs = mb.generate_corpus(3000, seed=0)
for doc in docs[:3]:
    print(" ".join(doc), "\n")

# %% [markdown]
# ## Train
#
# 1,700 steps of 32 sequences of up to 64 tokens; AdamW (β2 0.98) with a learning rate of
# 2.5e-3, warmed up over the first 10% of steps and then decayed linearly to 0; masks re-drawn for every batch.
# That last choice is RoBERTa's (dynamic masking). Original BERT masked each example once,
# when its data files were written, and wrote every document 10 times with different masks
# (`dupe_factor` 10), so its model saw each sentence under at most 10 masks.
# `--no-dynamic-masking` fixes each example's masks once, as original BERT did (without
# the 10 copies).

# %%
RUN = Path("runs/notebook-pretrain")
if RUN.exists():
    shutil.rmtree(RUN)  # start fresh, so the outputs below come from this run
config = PretrainConfig(out=str(RUN), seed=0)  # the defaults of `minibert pretrain`
result = pretrain(config, progress=False)

# %% [markdown]
# ## The pairs it trained on
#
# Every training example is a pair `[CLS] A [SEP] B [SEP]`. A document is cut into chunks of
# about one sequence's length; A is the first few sentences of a chunk (how many is drawn at
# random). With probability 1/2, B is the rest of the chunk and the label is IsNext;
# otherwise B is a run of sentences from **another document**, beginning at a random sentence
# of it, and the label is NotNext. That other document is drawn uniformly from all documents
# except A's own (you write that draw at the end of this notebook). The segment ids
# (`token_type_ids`) are 0 for `[CLS] A [SEP]` and 1 for `B [SEP]`.
#
# Below, pairs built the same way from the first ten documents, with the run's tokenizer;
# `source` says which document and sentences A and B came from. A pair longer than the
# sequence (64 tokens, less the 3 special ones) is cut one token at a time from the longer of
# A and B, at its front or its back at random (google's rule), so a segment can begin or end
# in the middle of a sentence.

# %%
pairs = mb.create_pretraining_instances(docs[:10], result.tokenizer, max_seq_length=64, seed=0, masking=None)
for inst in pairs[:4]:
    doc_a, a_from, a_to, doc_b, b_from, b_to = inst.source
    sep = inst.tokens.index("[SEP]")
    print(f"{'NotNext' if inst.is_random_next else 'IsNext'}: A = document {doc_a}, sentences {a_from}..{a_to - 1};"
          f" B = document {doc_b}, sentences {b_from}..{b_to - 1}")
    print("   A:", " ".join(inst.tokens[1:sep]))
    print("   B:", " ".join(inst.tokens[sep + 1:-1]))
    print("   token_type_ids:", "".join(map(str, inst.token_type_ids)))
random_b = [inst for inst in pairs if inst.is_random_next]
print(f"\n{len(pairs)} pairs from 10 documents, {len(random_b)} with a random B; "
      f"a random B from A's own document: {sum(i.source[3] == i.source[0] for i in random_b)} times")

# %% [markdown]
# ## The model
#
# The `tiny` configuration: 2 encoder layers, hidden size 128, 2 attention heads, a
# feed-forward layer of 512. On top of the encoder sit BERT's two heads: the **pooler**
# (a dense layer and tanh on the `[CLS]` vector) feeding the NSP classifier, and the MLM
# head (a dense layer, GELU and LayerNorm, then scores over the vocabulary). The MLM
# decoder is **tied**: its weight matrix is the word-embedding table itself, so the only
# parameters the MLM output layer adds are one bias per vocabulary entry.

# %%
model = result.model
print({k: v for k, v in model.config.to_dict().items()
       if k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size", "hidden_act")})
parts = {"word embeddings (also the MLM decoder)": ["embeddings.word"],
         "position and segment embeddings, LayerNorm": ["embeddings."],
         **{f"encoder layer {i + 1}": [f"layer.{i}."] for i in range(model.config.num_hidden_layers)},
         "pooler (for NSP)": ["pooler."], "NSP classifier": ["nsp."], "MLM head (transform, LayerNorm, bias)": ["mlm."]}
counted = set()
for part, prefixes in parts.items():
    names = [n for n in model.params if n.startswith(tuple(prefixes)) and n not in counted]
    counted.update(names)
    n = sum(model.params[k].size for k in names)
    print(f"{part:45} {n:>10,}  {n / model.num_parameters():6.1%}")
print(f"{'total':45} {model.num_parameters():>10,}")
print("MLM parameters:", [n for n in model.params if n.startswith("mlm.")], "(no decoder matrix: it is the word embeddings)")

# %% [markdown]
# ## What the masking did
#
# Measured on a sample of the training batches: the `[MASK]`/random/unchanged split should
# sit on 80/10/10, and the selection rate should be flat across positions.

# %%
import json
masking_figure(json.loads((RUN / "masking_stats.json").read_text()))

# %% [markdown]
# ## The curves
#
# Chance levels are drawn in: an untrained MLM is about as unsure as a uniform guess over
# the vocabulary (loss `ln V`), an untrained NSP head answers 50/50 (loss `ln 2`). Two
# baselines are drawn too. The dotted line in the MLM loss is the unigram entropy of the
# masked tokens: the loss of a model that knows how often each token occurs and nothing
# else. Within about 100 steps the MLM loss falls from `ln V` to near that line and stays
# within about 0.2 of it until step 270 or so: the model has learned token frequencies first, and context only then. The
# dashed line in the MLM accuracy is the same kind of guess: always the most frequent token.
# NSP stays near chance for the first few hundred steps and then drops, once the model has
# learned enough about words to tell whether two sentences share a subject. Train curves are
# measured with dropout on, held-out ones with dropout off, which is one reason the held-out
# curve can lie on the better side. The last panel is the gradient norm before clipping:
# above the threshold 1 (dashed), the step is scaled down to it, which here is almost every
# step (the mean of every log window but one is above 1).

# %%
metrics = read_metrics(RUN / "metrics.jsonl")
training_figure(metrics, result.model.config.vocab_size, baselines=result.baselines,
                max_grad_norm=config.max_grad_norm)

# %%
e, b = result.eval_metrics, result.baselines
print(f"held-out MLM accuracy {e['mlm_accuracy']:.3f} (always guessing the most frequent token: "
      f"{b['mlm_most_frequent_token_accuracy']:.3f})")
print(f"held-out NSP accuracy {e['nsp_accuracy']:.3f} (majority guess: {b['nsp_majority_accuracy']:.3f})")

# %% [markdown]
# ## Attention
#
# Each heat map is one head: row = the token that looks, columns = the tokens it looks at;
# the white lines mark where segment A ends. One pair says little about a head, so below it
# comes a summary over 64 held-out sentence pairs, measured as in Clark et al. (2019), "What
# does BERT look at?": for every head, the mean attention weight a token gives to `[CLS]`,
# to `[SEP]`, to the token before it, to the token after it, and to the other segment. Each
# panel's title gives what a head that spread its attention evenly would score; a head
# *looks at* something only where it clearly beats that.

# %%
from minibert.plots import head_shares, head_summary_figure, held_out_pairs
attentions, tokens = attention_example(result.model, result.tokenizer, "Oslo is a city in Norway.",
                                       "It is famous for its harbor.")
attention_figure(attentions, tokens)

# %%
held_pairs = held_out_pairs(RUN, 64)
head_summary_figure(result.model, result.tokenizer, held_pairs)

# %%
shares = head_shares(result.model, result.tokenizer, held_pairs)
print(f"{'share of weight to':18}" + "".join(f"  layer {l + 1} head {h + 1}" for l, h in np.ndindex(shares['cls'].shape)))
for name, s in shares.items():
    print(f"{name:18}" + "".join(f"{v:>16.2f}" for v in s.ravel()))

# %% [markdown]
# No head has specialised as sharply as in BERT-base, but two lean on their neighbours:
# layer 1, head 2 gives 0.29 of its weight to the next token and 0.20 to the previous one,
# about six and four times what even attention would give (0.05); layer 2, head 1 gives 0.23
# to the next token and 0.18 to the previous one. Layer 1, head 1 gives 0.16 to `[SEP]`,
# under twice even (0.09). No head looks at `[CLS]` (0.01 at most, below the even 0.05), and
# every head gives the other segment far less than even attention would (0.11 at most,
# against 0.49): tokens look mostly within their own sentence. Clark et al. found
# previous-token, next-token, `[SEP]` and `[CLS]` heads among the 144 heads of BERT-base.

# %% [markdown]
# ## Ask the model
#
# `fill_mask` returns the model's top guesses for each `[MASK]`; `next_sentence_probability`
# the probability that sentence B follows sentence A.

# %%
for text in ["Tickets are sold at the old [MASK] in Paris.",
             "The team wears red shirts at home [MASK].",
             "Scientists count the wolves every year to [MASK] them.",
             "It takes about 30 minutes to [MASK].",
             "Every day Anna goes to the bakery, where she bakes [MASK].",
             "The people of Oslo love to eat [MASK]."]:
    guesses = fill_mask(result.model, result.tokenizer, text, top_k=3)[0]
    print(f"{text:60} -> " + ", ".join(f"{t} ({p:.0%})" for t, p in guesses))

# %%
a = "Paris is one of the largest cities of France."
for b_text in ["Shops in Paris take the euro.", "The chef Anna Berg wrote a famous book about goulash.",
               "It mostly eats fish."]:
    print(f"P(IsNext) = {next_sentence_probability(result.model, result.tokenizer, a, b_text):.2f}   B: {b_text}")

# %% [markdown]
# Sentence templates are learned first ("sold at the old station", "home games"). A fact
# that holds across documents — a baker always bakes bread — needs longer training: try
# `steps=3000`. What the people of Oslo love to eat is drawn anew for every document of this
# world, so no model can know it; the guesses spread over foods, as they should.
#
# **What NSP learns here.** The model has learned *topic*: a B about a different kind of
# thing than A is easy to reject. This is the criticism that led ALBERT to replace NSP by
# sentence-order prediction, where both sentences always share a topic.
#
# **Exercise.** Train again with `masking="span"` (change `PretrainConfig` above, and give
# it another `out` folder). Does MLM accuracy go up or down? Why might predicting whole
# spans be harder?

# %% [markdown]
# ## Your turn: where a "random" sentence B comes from
#
# For half of the pairs, sentence B is taken from another document. It must never come from
# the same document: there it could be the true next sentence, and the pair would be
# labelled "random" wrongly. Write the draw: any document but `d`, each equally likely, with
# one draw from `rng` (a `np.random.Generator`). The check draws 20,000 times.

# %% tags=["exercise"]
from minibert import exercises

def other_document(num_documents, d, rng):
    """-> the index of a document other than d, uniformly among the num_documents - 1 others"""
    ### BEGIN SOLUTION
    other = int(rng.integers(num_documents - 1))  # 0 .. num_documents - 2
    return other + (other >= d)  # step over d
    ### END SOLUTION

# %% tags=["check"]
exercises.check("other_document", other_document)

# %%
print(f"This notebook ran in {time.perf_counter() - _start:.0f} s.")
