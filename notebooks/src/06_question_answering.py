# %% [markdown]
# # 6. Question answering, and what pre-training buys
#
# **Learning goal:** fine-tune BERT to find answer spans in a context — from the pre-trained
# model of notebook 4 and from random weights, with the same data, steps and seed, once with
# 700 and once with 2,700 labelled questions — and measure the difference (transfer
# learning). Then see why taking the argmax of the start scores and of the end scores
# separately can go wrong.
#
# Runs in about 2.3 minutes on a 2-core CPU (135 s when last built; plus about 2 minutes if notebook 4's run is missing and
# has to be trained here).

# %%
import time
_start = time.perf_counter()
import minibert as mb  # before numpy: OpenBLAS reads its thread settings once, as numpy loads it (README, Speed)
%matplotlib inline
import shutil
from pathlib import Path
import numpy as np
from minibert.finetune import answer, transfer_experiment
from minibert.squad import best_spans, independent_argmax_span
from minibert.train import pretrained_run
print(f"minibert {mb.__version__}, source fingerprint {mb.source_fingerprint()}")

# %% [markdown]
# ## The data
#
# Questions about the generated world, with the answer marked as a span of the context
# (SQuAD's format: the answer's text and its character offset).

# %%
examples = mb.generate_qa(3000, seed=0)
ex = examples[0]
start = ex["answers"][0]["answer_start"]
print("Q:", ex["question"])
print("context:", ex["context"])
print("answer:", ex["answers"][0], "->", repr(ex["context"][start:start + len(ex["answers"][0]["text"])]))

# %% [markdown]
# ## Transfer learning, measured

# %%
RUN = pretrained_run("runs/notebook-pretrain")  # notebook 4's run; trained here first if it is missing
OUT = Path("runs/notebook-transfer")
shutil.rmtree(OUT, ignore_errors=True)
summary = transfer_experiment(RUN, OUT, task="qa", sizes=(700, 2700), steps=300, seed=0)

# %%
from IPython.display import Image
Image(filename=str(OUT / "transfer.png"))

# %%
for size, runs in summary["sizes"].items():
    for name, r in runs.items():
        print(f"{size:>5} labelled questions, from {name:10}: exact match {r['eval']['exact_match']:.1f}%, "
              f"F1 {r['eval']['f1']:.1f}%")

# %% [markdown]
# The same architecture, the same labelled data, the same number of steps: the only
# difference is where the weights started. Pre-training is worth about 10 points of exact
# match at both sizes (55.0 vs 45.3 with 700 questions, 74.3 vs 63.3 with 2,700; each size
# is scored on its own 300 held-out questions, from the same generator). It does not make up
# for labels here: the model from scratch given 2,700 questions is ahead of the pre-trained
# one given 700. (With the earlier pre-training defaults, 2,000 steps at learning rate 2e-3
# and β2 0.999, pre-training was worth about 20 points: 83.7 and 66.3 against the same 63.3
# and 45.3 from scratch; the README has both.) Pre-training on unlabelled text taught the
# encoder what the world's words mean and how sentences hang together; fine-tuning only
# has to learn where answers are.
#
# ## What the model reads, and what it is trained to say
#
# One question and its context become one input, packed like NSP's sentence pair:
# `[CLS] question [SEP] context [SEP]`, with segment id 0 for `[CLS]`, the question and the
# first `[SEP]`, and 1 for the context and the last `[SEP]`. The head is one linear layer
# that gives every token two scores, a start score `s_i` and an end score `e_i`. The loss is
# the mean of two cross-entropies over the positions of the window: softmax of `s` against
# the true start, and softmax of `e` against the true end.
#
# A window holds at most 128 tokens here (`max_seq_length`). A question longer than 32
# tokens (`max_query_length`) is skipped, with a report (google's run_squad.py cuts it
# instead). A longer context is cut into overlapping windows whose starts are
# `doc_stride` (64) context tokens apart, so that every answer lies whole in some window. A
# window that does not hold the answer is trained to point at `[CLS]` (start = end = 0).

# %%
from minibert.runs import load_run
from minibert.squad import make_features

tokenizer = load_run(OUT / "pretrained-2700", kind="finetune").tokenizer
f = make_features([ex], tokenizer, 128, 64)[0][0]
tokens = tokenizer.convert_ids_to_tokens(f.input_ids)
print(len(tokens), "tokens:", " ".join(tokens))
print("segment ids:", "".join(map(str, f.token_type_ids)))
print(f"the answer: start {f.start_position}, end {f.end_position} ->",
      tokens[f.start_position:f.end_position + 1])

# %% [markdown]
# Two things in this input come from the pre-training vocabulary, which was trained on the
# generated corpus: the corpus has no questions, so `?` is not in the vocabulary and becomes
# `[UNK]`, and `what` and `does` are not whole tokens in it, so they are split into pieces.
# Fine-tuning has to learn the questions' words from the labelled examples alone.
#
# ## Decoding the answer span, done right
#
# The model scores every token as a possible start (`s_i`) and end (`e_j`) of the answer.
# Taking the two argmaxes separately can give an end *before* the start, or a span outside
# the context. The right answer maximizes `s_i + e_j` over valid spans:
# `i <= j < i + max_answer_length`, both inside the context.

# %%
s = np.array([0.0, 0.0, 0.0, 1.0, 0.5, 3.0, 0.2, 0.0])  # [CLS] q [SEP] c0 c1 c2 c3 [SEP]
e = np.array([0.0, 0.0, 0.0, 4.0, 3.5, 0.1, 0.3, 0.0])
context = np.array([0, 0, 0, 1, 1, 1, 1, 0], bool)
print("independent argmax (start, end):", independent_argmax_span(s, e), "<- ends before it starts")
print("best valid span (start, end, score):", best_spans(s, e, context, n_best=1)[0])

# %% [markdown]
# How often does it happen with the trained models? Count the held-out windows where the
# independent argmaxes give an invalid span.

# %%
from minibert.runs import load_run
from minibert.squad import collate_features, make_features

for name in ("pretrained", "scratch"):
    run = load_run(OUT / f"{name}-2700", kind="finetune")
    model, tokenizer = run.model, run.tokenizer
    features, _ = make_features(examples[-300:], tokenizer, 128, 64)
    out = model.forward(collate_features(features))
    bad = 0
    for k, f in enumerate(features):
        i, j = independent_argmax_span(out.extras["start_logits"][k], out.extras["end_logits"][k])
        bad += j < i or f.offsets[i] is None or f.offsets[j] is None
    print(f"from {name:10}: {bad} of {len(features)} windows get an invalid span from independent argmax")

# %% [markdown]
# ## Ask it
#
# Held-out questions first (the model never saw these contexts), then a context written by
# hand in the style of the generated world.

# %%
run = load_run(OUT / "pretrained-2700", kind="finetune")
model, tokenizer = run.model, run.tokenizer
for ex in examples[-6:]:
    got = answer(model, tokenizer, ex["question"], ex["context"])
    print(f"{ex['question']:48} -> {got!r:18} (gold {ex['answers'][0]['text']!r})")

# %%
context = ("Lena Fischer grew up in Bergen, a city in Norway. Lena works as a pilot at an airport in Bergen. "
           "In her free time Lena enjoys sailing. Lena has a parrot that follows her everywhere.")
for q in ["Where did Lena grow up?", "What does Lena work as?", "What does Lena enjoy in her free time?",
          "Which pet does Lena have?"]:
    print(f"{q:40} -> {answer(model, tokenizer, q, context)}")

# %% [markdown]
# What went wrong. On the held-out questions above, five of six are right; the national
# sport of Italy came out as a wrong span of its context. On the hand-written context the
# first two answers are right, and then the model answers `pilot` to the questions about
# the hobby and the pet: it picked a span it found more likely than the right one, a
# mistake of the kind behind the 26% of held-out questions it gets wrong. Fine-tuning for
# more steps (the `steps` argument of `transfer_experiment`) is the first thing to try.
#
# **Try it.** Write a context of your own in the style of the generated world and ask
# about it. Which kinds of question does the model get wrong?

# %% [markdown]
# ## Your turn: the best answer span
#
# Write the decoding above: the pair `(i, j)` with the highest
# `start_logits[i] + end_logits[j]` among valid spans only: both ends allowed (context
# tokens), `i <= j`, and at most `max_answer_length` tokens. Two separate argmaxes are not
# enough; the check has a case where they give an end before the start.

# %% tags=["exercise"]
from minibert import exercises

def best_span(start_logits, end_logits, allowed, max_answer_length=30):
    """(T,), (T,), (T,) bool -> (i, j), or None if no span is valid"""
    ### BEGIN SOLUTION
    best, best_score = None, -np.inf
    for i in np.flatnonzero(allowed):
        for j in range(i, min(i + max_answer_length, len(end_logits))):
            if allowed[j] and start_logits[i] + end_logits[j] > best_score:
                best, best_score = (int(i), int(j)), start_logits[i] + end_logits[j]
    return best
    ### END SOLUTION

# %% tags=["check"]
exercises.check("best_span", best_span)

# %%
print(f"This notebook ran in {time.perf_counter() - _start:.0f} s.")
