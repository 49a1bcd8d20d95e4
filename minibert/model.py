"""BERT: embeddings, a stack of post-LayerNorm encoder layers, the pooler, and the
pre-training heads (masked LM and next-sentence prediction), with one hand-written
backward pass through all of it.

Follow one batch (dimension letters as in minibert/layers/__init__.py):

    input_ids (B, T) --word + position + segment embeddings, LayerNorm, dropout--> x (B, T, H)
    x --num_hidden_layers x [attention, add & norm, feed-forward, add & norm]--> sequence_output (B, T, H)
    sequence_output[:, 0] --dense, tanh--> pooled_output (B, H) --dense--> nsp_logits (B, 2)
    sequence_output at masked positions (B, P, H) --dense, GELU, LayerNorm, @ E^T + bias--> mlm_logits (B, P, V)
    loss = weighted mean MLM cross-entropy + mean NSP cross-entropy

`backward()` walks the same path in reverse and returns a dict of gradients with exactly
the keys of `model.params`. Every gradient is named after the forward tensor it
differentiates: `dffn_in` is the gradient of `ffn_in`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import backend, weights
from .config import BertConfig
from .hf import load_into, save_hf_folder
from .layers import (
    ACTIVATIONS,
    attention_backward,
    attention_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    dropout_backward,
    dropout_forward,
    embedding_backward,
    embedding_forward,
    layernorm_backward,
    layernorm_forward,
    linear_backward,
    linear_forward,
    padding_mask_bias,
    tanh_backward,
    tanh_forward,
)
from .layers.attention import causal_mask_bias


def truncated_normal(rng: np.random.Generator, shape, std: float) -> np.ndarray:
    """Normal(0, std) draws, redrawn until all lie within 2 std (google's initializer)."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * std


@dataclass
class BertOutput:
    """What a forward pass returns. Fields a model does not compute stay None."""

    sequence_output: Any = None  # (B, T, H) last layer's hidden states
    pooled_output: Any = None  # (B, H) tanh(dense(first token))
    attentions: list | None = None  # per layer (B, A, T, T), when asked for
    mlm_logits: Any = None  # (B, P, V) only at the masked positions
    nsp_logits: Any = None  # (B, 2): 0 = B follows A, 1 = B is random
    loss: Any = None  # mlm_loss + nsp_loss
    mlm_loss: Any = None
    nsp_loss: Any = None
    mlm_accuracy: Any = None
    nsp_accuracy: Any = None
    extras: dict = field(default_factory=dict)  # heads of subclasses put their outputs here


class BertModel:
    """The BERT encoder with its pooler. `params` is a flat dict name -> array."""

    add_pooling_layer = True  # question answering reads every position and has no use for a pooler
    causal = False  # True: position t attends only to positions <= t (a left-to-right LM, minibert/lm.py)
    # which token the pooler reads: "first" ([CLS], BERT's), or "last", each row's last real token
    # (GPT's "extract" token: in a causal model it is the only position that has read the whole input)
    pool_at = "first"

    def __init__(self, config: BertConfig, seed: int = 0, dtype=np.float32):
        self.config = config
        self.dtype = np.dtype(dtype)
        self.params: dict = {}
        self.rng = backend.default_rng(seed + 1)  # dropout, when no rng is passed to forward
        self._cache = None
        init = np.random.default_rng(seed)  # parameters are drawn on the host, then moved
        self._init_encoder(init)
        self._init_heads(init)

    # -- parameters ----------------------------------------------------------------
    def _add(self, name: str, host_array: np.ndarray) -> None:
        self.params[name] = backend.to_device(host_array, dtype=self.dtype)

    def _add_dense(self, init, name: str, n_in: int, n_out: int) -> None:
        self._add(f"{name}.W", truncated_normal(init, (n_in, n_out), self.config.initializer_range))
        self._add(f"{name}.b", np.zeros(n_out))

    def _add_layernorm(self, name: str, n: int) -> None:
        self._add(f"{name}.gamma", np.ones(n))
        self._add(f"{name}.beta", np.zeros(n))

    def _init_encoder(self, init) -> None:
        c = self.config
        H, F, std = c.hidden_size, c.intermediate_size, c.initializer_range
        self._add("embeddings.word", truncated_normal(init, (c.vocab_size, H), std))
        self._add("embeddings.position", truncated_normal(init, (c.max_position_embeddings, H), std))
        self._add("embeddings.token_type", truncated_normal(init, (c.type_vocab_size, H), std))
        self._add_layernorm("embeddings.ln", H)
        for i in range(c.num_hidden_layers):
            self._add_dense(init, f"layer.{i}.attn.qkv", H, 3 * H)  # [W_q | W_k | W_v]
            self._add_dense(init, f"layer.{i}.attn.out", H, H)
            self._add_layernorm(f"layer.{i}.attn.ln", H)
            self._add_dense(init, f"layer.{i}.ffn.in", H, F)
            self._add_dense(init, f"layer.{i}.ffn.out", F, H)
            self._add_layernorm(f"layer.{i}.ffn.ln", H)
        if self.add_pooling_layer:
            self._add_dense(init, "pooler", H, H)

    def _init_heads(self, init) -> None:
        """Subclasses add their heads' parameters here."""

    def num_parameters(self) -> int:
        return int(sum(a.size for a in self.params.values()))

    def to(self, dtype) -> "BertModel":
        """Cast every parameter to float32 or float64 (in the same dict)."""
        self.dtype = np.dtype(dtype)
        for name, a in self.params.items():
            self.params[name] = a.astype(self.dtype)
        self._cache = None
        return self

    def zero_grads(self) -> dict:
        xp = backend.array_module(*self.params.values())
        return {name: xp.zeros_like(a) for name, a in self.params.items()}

    # -- encoder -------------------------------------------------------------------
    def _encode(self, batch, training, rng, output_attentions=False):
        """Embeddings, encoder layers and pooler. Returns (sequence_output, pooled_output, attentions, cache)."""
        c, p = self.config, self.params
        ids, types, mask = check_inputs(batch, c, backend.array_module(p["embeddings.word"]))
        T = ids.shape[1]
        # embeddings: word + position + segment, then LayerNorm and dropout
        word, word_cache = embedding_forward(ids, p["embeddings.word"])  # (B, T, H)
        segment, segment_cache = embedding_forward(types, p["embeddings.token_type"])  # (B, T, H)
        embedded = word + segment
        embedded += p["embeddings.position"][:T]  # (T, H) broadcast over the batch
        x, ln_cache = layernorm_forward(embedded, p["embeddings.ln.gamma"], p["embeddings.ln.beta"], c.layer_norm_eps)
        x, drop_cache = dropout_forward(x, c.hidden_dropout_prob, training, rng)
        emb_cache = (word_cache, segment_cache, ln_cache, drop_cache)

        # (B, 1, T, T) when causal (padding and future keys blocked), else (B, 1, 1, T) (padding only)
        mask_bias = causal_mask_bias(mask, self.dtype) if self.causal else padding_mask_bias(mask, self.dtype)
        layer_caches, attentions = [], []
        for i in range(c.num_hidden_layers):
            x, cache = self._layer_forward(i, x, mask_bias, training, rng)
            layer_caches.append(cache)
            if output_attentions:
                attentions.append(cache["attn"]["probs"])
        # pooler: the first token ([CLS]) or each row's last real token -> dense -> tanh
        pooled, pool_cache = None, None
        if self.add_pooling_layer:
            read = self._pooled_positions(mask)  # None: position 0 of every row
            pool_read = x[:, 0] if read is None else x[backend.array_module(x).arange(len(x)), read]  # (B, H)
            pool_in, dense_cache = linear_forward(pool_read, p["pooler.W"], p["pooler.b"])  # (B, H)
            pooled, tanh_cache = tanh_forward(pool_in)
            pool_cache = (dense_cache, tanh_cache, read)
        cache = {"emb": emb_cache, "layers": layer_caches, "pool": pool_cache, "T": T}
        return x, pooled, (attentions if output_attentions else None), cache

    def _pooled_positions(self, mask):
        """The position the pooler reads in each row: None for pool_at "first" (position 0), or
        (B,) the last real token's for "last" (the mask's real tokens come first)."""
        if self.pool_at not in ("first", "last"):
            raise ValueError(f"pool_at must be 'first' or 'last', got {self.pool_at!r}")
        return None if self.pool_at == "first" else (mask != 0).sum(axis=1) - 1

    def _layer_forward(self, i, x, mask_bias, training, rng):
        """One post-LN encoder layer: x -> h = LN(x + attn(x)) -> out = LN(h + ffn(h)).   (B, T, H) -> (B, T, H)"""
        c, p, n = self.config, self.params, f"layer.{i}."
        act_forward, _ = ACTIVATIONS[c.hidden_act]
        attn, attn_cache = attention_forward(
            x, p[n + "attn.qkv.W"], p[n + "attn.qkv.b"], p[n + "attn.out.W"], p[n + "attn.out.b"],
            mask_bias, c.num_attention_heads, c.attention_probs_dropout_prob, training, rng)  # (B, T, H)
        attn_res, attn_drop = dropout_forward(attn, c.hidden_dropout_prob, training, rng)
        attn_res += x  # the residual sum, in place: attn_res = dropout(attn) + x
        h, attn_ln = layernorm_forward(attn_res, p[n + "attn.ln.gamma"], p[n + "attn.ln.beta"], c.layer_norm_eps)
        ffn_in, ffn_in_cache = linear_forward(h, p[n + "ffn.in.W"], p[n + "ffn.in.b"])  # (B, T, F)
        ffn_act, act_cache = act_forward(ffn_in)  # (B, T, F)
        ffn_out, ffn_out_cache = linear_forward(ffn_act, p[n + "ffn.out.W"], p[n + "ffn.out.b"])  # (B, T, H)
        ffn_res, ffn_drop = dropout_forward(ffn_out, c.hidden_dropout_prob, training, rng)
        ffn_res += h  # ffn_res = dropout(ffn_out) + h
        out, ffn_ln = layernorm_forward(ffn_res, p[n + "ffn.ln.gamma"], p[n + "ffn.ln.beta"], c.layer_norm_eps)
        cache = {"attn": attn_cache, "attn_drop": attn_drop, "attn_ln": attn_ln, "ffn_in": ffn_in_cache,
                 "act": act_cache, "ffn_out": ffn_out_cache, "ffn_drop": ffn_drop, "ffn_ln": ffn_ln}
        return out, cache

    def _layer_backward(self, i, dout, cache, grads):
        """Reverse of _layer_forward, line by line from the bottom. dout: (B, T, H) -> dx: (B, T, H)."""
        n = f"layer.{i}."
        _, act_backward = ACTIVATIONS[self.config.hidden_act]
        # out = LN(ffn_res)
        dffn_res, grads[n + "ffn.ln.gamma"], grads[n + "ffn.ln.beta"] = layernorm_backward(dout, cache["ffn_ln"])
        # ffn_res = dropout(ffn_out) + h: the sum passes its gradient to both terms
        dh = dffn_res.copy()
        dffn_out = dropout_backward(dffn_res, cache["ffn_drop"])
        dffn_act, grads[n + "ffn.out.W"], grads[n + "ffn.out.b"] = linear_backward(dffn_out, cache["ffn_out"])
        dffn_in = act_backward(dffn_act, cache["act"])
        dh_through_ffn, grads[n + "ffn.in.W"], grads[n + "ffn.in.b"] = linear_backward(dffn_in, cache["ffn_in"])
        dh += dh_through_ffn  # h was used twice: by the feed-forward and by the residual sum
        # h = LN(attn_res)
        dattn_res, grads[n + "attn.ln.gamma"], grads[n + "attn.ln.beta"] = layernorm_backward(dh, cache["attn_ln"])
        # attn_res = dropout(attn) + x
        dx = dattn_res.copy()
        dattn = dropout_backward(dattn_res, cache["attn_drop"])
        dx_through_attn, grads[n + "attn.qkv.W"], grads[n + "attn.qkv.b"], grads[n + "attn.out.W"], \
            grads[n + "attn.out.b"] = attention_backward(dattn, cache["attn"])
        dx += dx_through_attn  # x was used twice: by attention and by the residual sum
        return dx

    def _encode_backward(self, dseq, dpooled, cache, grads):
        """Reverse of _encode, from sequence_output (B, T, H) and pooled_output (B, H) back to the
        embeddings. Fills every encoder gradient except the word table's and returns `dword`
        (B, T, H), the gradient of the word lookup's output: the model adds it into the table
        with `_word_lookup_backward`, beside any other use of that table (the tied MLM decoder)."""
        p = self.params
        dx = dseq.copy()
        if dpooled is not None:
            dense_cache, tanh_cache, read = cache["pool"]
            dpool_in = tanh_backward(dpooled, tanh_cache)
            dpool_read, grads["pooler.W"], grads["pooler.b"] = linear_backward(dpool_in, dense_cache)
            if read is None:
                dx[:, 0] += dpool_read  # the pooler read the first token
            else:  # one position per row, so a plain indexed add cannot collide
                dx[backend.array_module(dx).arange(len(dx)), read] += dpool_read
        elif self.add_pooling_layer:  # the pooler was not used: its gradient is exactly zero
            xp = backend.array_module(dseq)
            grads["pooler.W"], grads["pooler.b"] = xp.zeros_like(p["pooler.W"]), xp.zeros_like(p["pooler.b"])
        for i in reversed(range(self.config.num_hidden_layers)):
            dx = self._layer_backward(i, dx, cache["layers"][i], grads)
        _, segment_cache, ln_cache, drop_cache = cache["emb"]
        dx = dropout_backward(dx, drop_cache)
        # embedded = word + segment + position: each of the three gets all of dembedded
        dembedded, grads["embeddings.ln.gamma"], grads["embeddings.ln.beta"] = layernorm_backward(dx, ln_cache)
        grads["embeddings.token_type"] = embedding_backward(dembedded, segment_cache)
        dposition = backend.array_module(dembedded).zeros_like(p["embeddings.position"])
        dposition[: cache["T"]] = dembedded.sum(axis=0)  # each position row was used once per sequence
        grads["embeddings.position"] = dposition
        return dembedded  # = dword

    def _word_lookup_backward(self, dword, cache, dtable=None):
        """Add the word lookup's share of the table's gradient into dtable (a new zero table if None).

        Positions holding [PAD] send nothing back, as with Hugging Face's `padding_idx`: padding
        must not carry meaning. That masks only the lookup: a tied decoder that scores [PAD] as
        a candidate still sends its row a gradient (as in PyTorch)."""
        ids, shape = cache["emb"][0]
        real = (ids != self.config.pad_token_id)[..., None]  # (B, T, 1); a multiply, not a boolean index,
        return embedding_backward(dword * real, (ids, shape), dtable)  # which would cost a GPU a host sync

    # -- public API ----------------------------------------------------------------
    def _rng(self, training, rng):
        return rng if rng is not None else (self.rng if training else None)

    def forward(self, batch: dict, training: bool = False, rng=None, output_attentions: bool = False) -> BertOutput:
        """Encode a batch. Keeps what backward(dsequence_output, dpooled_output) needs."""
        seq, pooled, attentions, cache = self._encode(batch, training, self._rng(training, rng), output_attentions)
        self._cache = cache
        return BertOutput(sequence_output=seq, pooled_output=pooled, attentions=attentions)

    def backward(self, dsequence_output=None, dpooled_output=None) -> dict:
        """Gradients of sum(sequence_output * dsequence_output) + sum(pooled_output * dpooled_output)."""
        cache = self._take_cache()
        if dsequence_output is None:
            if dpooled_output is None:
                raise ValueError("backward needs dsequence_output or dpooled_output")
            B, H = dpooled_output.shape
            dsequence_output = backend.array_module(dpooled_output).zeros((B, cache["T"], H), self.dtype)
        grads = {}
        dword = self._encode_backward(dsequence_output, dpooled_output, cache, grads)
        grads["embeddings.word"] = self._word_lookup_backward(dword, cache)
        return grads

    def _take_cache(self):
        if self._cache is None:
            raise RuntimeError(
                "backward() needs a forward() first, and can run once per forward: "
                "call forward() again before the next backward()")
        cache, self._cache = self._cache, None  # a second backward() must not reuse it
        return cache

    # -- files: the code lives in minibert/weights.py (minibert's format) and minibert/hf.py --
    def save(self, path) -> None:
        """Write `path/config.json` and `path/params.safetensors` (minibert's names), atomically."""
        weights.save_model(self, path)

    @classmethod
    def load(cls, path, dtype=np.float32):
        """Read a folder written by save(); never unpickles anything."""
        return weights.load_model(cls, path, dtype)

    def load_params(self, arrays: dict, source: str = "arrays", strict: bool = True) -> list:
        """Copy arrays into params, checking names and shapes. Returns the names not provided."""
        return weights.load_params(self, arrays, source, strict)

    @classmethod
    def from_pretrained(cls, path, dtype=np.float32, seed: int = 0, **kwargs):
        """Load a Hugging Face BERT folder (config.json + model.safetensors). Checkpoints of
        BertModel, BertForPreTraining and BertForMaskedLM load, with or without "bert."; heads
        the checkpoint lacks are freshly initialized and listed in `model.newly_initialized`."""
        return load_into(cls, path, dtype=dtype, seed=seed, **kwargs)

    def save_pretrained(self, path, tokenizer=None):
        """Write a folder transformers' from_pretrained (and, with a tokenizer, AutoTokenizer) loads."""
        return save_hf_folder(self, path, tokenizer)


def mlm_head_forward(hidden, params, config):
    """The masked-LM head: dense, activation, LayerNorm, then scores over the vocabulary with the
    word-embedding table as the decoder (tied) plus a bias.

    hidden: (B, N, H), the encoder's states where predictions are made   ->   logits: (B, N, V)
    """
    B, N, H = hidden.shape
    act_forward, _ = ACTIVATIONS[config.hidden_act]
    dense, dense_cache = linear_forward(hidden, params["mlm.transform.W"], params["mlm.transform.b"])
    act, act_cache = act_forward(dense)
    transformed, ln_cache = layernorm_forward(act, params["mlm.ln.gamma"], params["mlm.ln.beta"], config.layer_norm_eps)
    # the decoder is the word-embedding table; one 2-D product (a 3-D one was 4x slower)
    logits = (transformed.reshape(B * N, H) @ params["embeddings.word"].T).reshape(B, N, -1)  # (B, N, V)
    logits += params["mlm.bias"]
    return logits, (dense_cache, act_cache, ln_cache, transformed)


def mlm_head_backward(dlogits, cache, params, config, grads):
    """dlogits: (B*N, V)   ->   (dhidden (B, N, H), the decoder's share of the word table's gradient (V, H)).
    The head's own gradients (mlm.*) go into `grads`."""
    dense_cache, act_cache, ln_cache, transformed = cache
    B, N, H = transformed.shape
    # forward: logits = transformed @ E^T + bias
    grads["mlm.bias"] = dlogits.sum(axis=0)
    dword_table_as_decoder = dlogits.T @ transformed.reshape(B * N, H)  # (V, H)
    dtransformed = (dlogits @ params["embeddings.word"]).reshape(B, N, H)
    dact, grads["mlm.ln.gamma"], grads["mlm.ln.beta"] = layernorm_backward(dtransformed, ln_cache)
    _, act_backward = ACTIVATIONS[config.hidden_act]
    ddense = act_backward(dact, act_cache)
    dhidden, grads["mlm.transform.W"], grads["mlm.transform.b"] = linear_backward(ddense, dense_cache)
    return dhidden, dword_table_as_decoder


class BertForPreTraining(BertModel):
    """BertModel plus the two pre-training heads and their losses."""

    def _init_heads(self, init) -> None:
        c = self.config
        H = c.hidden_size
        self._add_dense(init, "mlm.transform", H, H)
        self._add_layernorm("mlm.ln", H)
        self._add("mlm.bias", np.zeros(c.vocab_size))  # the decoder's weight is embeddings.word (tied)
        self._add_dense(init, "nsp", H, 2)

    def forward(self, batch: dict, training: bool = False, rng=None, output_attentions: bool = False) -> BertOutput:
        """Encoder, then MLM logits at the masked positions and NSP logits; losses when labels are given."""
        c, p = self.config, self.params
        xp = backend.array_module(p["embeddings.word"])
        rng = self._rng(training, rng)
        seq, pooled, attentions, enc_cache = self._encode(batch, training, rng, output_attentions)
        out = BertOutput(sequence_output=seq, pooled_output=pooled, attentions=attentions)
        cache = {"enc": enc_cache}

        # NSP head: pooled (B, H) -> (B, 2)
        out.nsp_logits, cache["nsp"] = linear_forward(pooled, p["nsp.W"], p["nsp.b"])

        # MLM head, only at the masked positions (google's gather; scoring all T is several times slower)
        if batch.get("masked_lm_positions") is not None:
            positions = xp.asarray(batch["masked_lm_positions"])  # (B, P)
            B, P = positions.shape
            low, high = value_range(batch["masked_lm_positions"])
            if P and (low < 0 or high >= seq.shape[1]):
                raise ValueError(f"masked_lm_positions must lie in [0, {seq.shape[1]})")
            rows = xp.arange(B)[:, None]
            gathered = seq[rows, positions]  # (B, P, H)
            out.mlm_logits, head_cache = mlm_head_forward(gathered, p, c)  # (B, P, V)
            cache["mlm"] = (rows, positions, head_cache)

        labels_given = batch.get("masked_lm_labels") is not None and batch.get("next_sentence_label") is not None
        if labels_given:
            if out.mlm_logits is None:
                raise KeyError("batch has masked_lm_labels but no masked_lm_positions")
            B, P, V = out.mlm_logits.shape
            labels = xp.asarray(batch["masked_lm_labels"]).reshape(-1)
            weights = batch.get("masked_lm_weights")
            weights = xp.ones(B * P, self.dtype) if weights is None else xp.asarray(weights, dtype=self.dtype).reshape(-1)
            out.mlm_loss, mlm_ce = cross_entropy_forward(out.mlm_logits.reshape(B * P, V), labels, weights)
            nsp_labels = xp.asarray(batch["next_sentence_label"]).reshape(-1)
            out.nsp_loss, nsp_ce = cross_entropy_forward(out.nsp_logits, nsp_labels)
            out.loss = out.mlm_loss + out.nsp_loss
            correct = (out.mlm_logits.reshape(B * P, V).argmax(axis=1) == labels).astype(self.dtype)
            out.mlm_accuracy = (correct * weights).sum() / xp.maximum(weights.sum(), 1e-12)
            out.nsp_accuracy = (out.nsp_logits.argmax(axis=1) == nsp_labels).mean()
            cache["ce"] = (mlm_ce, nsp_ce)
            self._cache = cache
        else:
            self._cache = None
        return out

    def backward(self) -> dict:
        """Gradients of out.loss from the last forward with labels: {name: array}, keys of params."""
        cache = self._take_cache()
        p = self.params
        grads = {}
        mlm_ce, nsp_ce = cache["ce"]
        # NSP: loss -> nsp_logits -> pooled
        dnsp_logits = cross_entropy_backward(1.0, nsp_ce)  # (B, 2)
        dpooled, grads["nsp.W"], grads["nsp.b"] = linear_backward(dnsp_logits, cache["nsp"])
        # MLM: loss -> mlm_logits -> the MLM head -> gathered (the masked positions) -> sequence_output
        rows, positions, head_cache = cache["mlm"]
        B, P = positions.shape
        dmlm_logits = cross_entropy_backward(1.0, mlm_ce)  # (B*P, V)
        dgathered, dword_table_as_decoder = mlm_head_backward(dmlm_logits, head_cache, p, self.config, grads)
        H = dgathered.shape[-1]
        enc = cache["enc"]
        xp = backend.array_module(dgathered)
        dseq = xp.zeros((B, enc["T"], H), dtype=dgathered.dtype)
        backend.scatter_add(dseq, (rows.repeat(P, axis=1), positions), dgathered)  # repeated positions add up
        dword = self._encode_backward(dseq, dpooled, enc, grads)
        # the word table is used twice, as the MLM decoder and as the input lookup: its gradient
        # is the sum of both shares (the lookup's is added into the decoder's, in place)
        grads["embeddings.word"] = self._word_lookup_backward(dword, enc, dtable=dword_table_as_decoder)
        return grads


def check_inputs(batch: dict, config: BertConfig, xp):
    """(input_ids, token_type_ids, attention_mask) on the parameters' device, each (B, T), checked against
    the config; token types default to 0 and the mask to all ones."""
    if "input_ids" not in batch:
        raise KeyError("batch has no 'input_ids'")
    ids = xp.asarray(batch["input_ids"])
    if ids.ndim != 2:
        raise ValueError(f"input_ids must have shape (B, T), got {ids.shape}")
    B, T = ids.shape
    types = xp.asarray(batch["token_type_ids"]) if batch.get("token_type_ids") is not None else xp.zeros_like(ids)
    mask = xp.asarray(batch["attention_mask"]) if batch.get("attention_mask") is not None else xp.ones_like(ids)
    if T > config.max_position_embeddings:
        raise ValueError(f"sequence length {T} exceeds max_position_embeddings {config.max_position_embeddings}")
    for name, a, limit in (("input_ids", ids, config.vocab_size), ("token_type_ids", types, config.type_vocab_size)):
        if a.shape != (B, T):
            raise ValueError(f"{name} has shape {a.shape}, expected {(B, T)}")
        low, high = value_range(batch[name]) if batch.get(name) is not None else (0, 0)
        if a.size and (low < 0 or high >= limit):
            raise ValueError(f"{name} must lie in [0, {limit}), got values in [{low}, {high}]")
    if mask.shape != (B, T):
        raise ValueError(f"attention_mask has shape {mask.shape}, expected {(B, T)}")
    return ids, types, mask


def value_range(a) -> tuple:
    """(min, max) of an integer array as Python ints: on the host when the batch is still there
    (as collate makes it), else with one device-to-host read for both."""
    if backend.array_module(a) is np:
        a = np.asarray(a)
        return (int(a.min()), int(a.max())) if a.size else (0, 0)
    xp = backend.array_module(a)
    return tuple(int(v) for v in backend.to_host(xp.stack([a.min(), a.max()]))) if a.size else (0, 0)
