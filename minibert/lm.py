"""Language models that read in one direction, built from BERT's own layers: GPT-style
left to right, its mirror right to left, and ELMo-style features from a pair of them.

Follow one batch (dimension letters as in minibert/layers/__init__.py):

    input_ids (B, T) --embeddings, causal encoder layers--> sequence_output (B, T, H)
    sequence_output --dense, GELU, LayerNorm, @ E^T + bias--> logits (B, T, V)
    logits[:, t] score the token at t + 1: loss = mean cross-entropy over the real next tokens

The encoder is minibert's (minibert/model.py) with `causal = True`: `causal_mask_bias` blocks
every key after the query, so the state at t has read tokens 0..t and nothing else. The
head is the pre-training MLM head with its decoder tied to the word-embedding table. This
is transformers' BertLMHeadModel with `is_decoder=True`, the oracle the tests compare with.

Right to left is the same model reading each sequence's real tokens backwards (ELMo's
backward LM): the tokens are reversed before the encoder and the outputs put back after it,
so `sequence_output[:, t]` has read tokens t..L-1 and `logits[:, t]` scores token t - 1.
A reversal needs no new math, and the model is still one transformers can run (on the
reversed text). The other way, an upper-triangular mask with targets shifted right, would
count positions from the left while reading from the right.
"""

from __future__ import annotations

import numpy as np

from . import backend
from .heads import IGNORE_INDEX
from .layers import cross_entropy_backward, cross_entropy_forward
from .model import BertForPreTraining, BertModel, BertOutput, check_inputs, mlm_head_backward, mlm_head_forward


def right_to_left_order(attention_mask):
    """Indices that reverse each row's real tokens and leave its padding in place.

    attention_mask: (B, T), real tokens first   ->   order: (B, T), a[rows, order] reads a right to left

    Reversing twice restores a row (`order` is its own inverse), so the same gather puts the
    outputs back at their tokens' positions, and the gradients back on the way down.
    """
    xp = backend.array_module(attention_mask)
    T = attention_mask.shape[1]
    lengths = (attention_mask != 0).sum(axis=1, keepdims=True)  # (B, 1)
    t = xp.arange(T)[None, :]  # (1, T)
    if not bool(((t < lengths) == (attention_mask != 0)).all()):
        raise ValueError("a right-to-left model needs right padding: every row's real tokens first, then padding")
    return xp.where(t < lengths, lengths - 1 - t, t)  # (B, T)


def _gather_rows(a, order):
    """a[b, order[b]] for every row b.   a: (B, T) or (B, T, H), order: (B, T) -> a's shape."""
    rows = backend.array_module(a).arange(a.shape[0])[:, None]  # (B, 1)
    return a[rows, order]


class BertLMHeadModel(BertModel):
    """A causal encoder and the tied MLM head, trained to predict each next token.

    batch: input_ids, token_type_ids, attention_mask (B, T), right-padded; optionally `labels`
    (B, T), IGNORE_INDEX (-100) where a token is not a target (default: the input_ids, with
    padding ignored). The shift is done here, as in transformers: position t is scored on
    labels[:, t + 1], and the last position on nothing.
    right_to_left: read each sequence backwards (see the module docstring).
    """

    add_pooling_layer = False  # nothing reads a [CLS] summary
    causal = True

    def __init__(self, config, seed: int = 0, dtype=np.float32, right_to_left: bool = False):
        self.right_to_left = right_to_left
        super().__init__(config, seed=seed, dtype=dtype)

    def _init_heads(self, init) -> None:
        H = self.config.hidden_size
        self._add_dense(init, "mlm.transform", H, H)  # the same names (and HF names) as pre-training's MLM head
        self._add_layernorm("mlm.ln", H)
        self._add("mlm.bias", np.zeros(self.config.vocab_size))  # the decoder's weight is embeddings.word (tied)

    def hf_config_extras(self) -> dict:
        return {"is_decoder": True}  # transformers' BertLMHeadModel is causal only with this

    def forward(self, batch: dict, training: bool = False, rng=None, output_attentions: bool = False) -> BertOutput:
        """-> out.sequence_output (B, T, H), out.extras["logits"] (B, T, V) and out.loss, in the
        input's token order (attentions, when asked for, are in reading order). Also in extras:
        "targets" (B, T), the token each position's logits score (IGNORE_INDEX where none),
        "accuracy", the share of scored positions whose argmax is the target, and "num_scored"."""
        c, p = self.config, self.params
        xp = backend.array_module(p["embeddings.word"])
        ids, types, mask = check_inputs(batch, c, xp)
        B, T = ids.shape
        V = c.vocab_size
        if batch.get("labels") is not None:
            labels = xp.asarray(batch["labels"])
        else:  # the text is its own target; padding is not
            labels = xp.where(mask != 0, ids, IGNORE_INDEX)
        if labels.shape != (B, T):
            raise ValueError(f"labels has shape {labels.shape}, expected {(B, T)}")
        order = right_to_left_order(mask) if self.right_to_left else None
        if order is not None:  # mirror the text; the padding stays at the end
            ids, types, labels = (_gather_rows(a, order) for a in (ids, types, labels))
        seq, _, attentions, enc_cache = self._encode(
            {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}, training, self._rng(training, rng),
            output_attentions)  # (B, T, H) in reading order

        # the MLM head at every position: each one predicts its next token
        logits, head_cache = mlm_head_forward(seq, p, c)  # (B, T, V), tied decoder

        # position t predicts labels[:, t + 1]: shift left, and the last position predicts nothing
        targets = xp.concatenate([labels[:, 1:], xp.full((B, 1), IGNORE_INDEX, labels.dtype)], axis=1)  # (B, T)
        scored = targets != IGNORE_INDEX  # (B, T)
        if bool((scored & ((targets < 0) | (targets >= V))).any()):
            raise ValueError(f"labels must lie in [0, {V}) or be {IGNORE_INDEX}")
        loss, ce_cache = cross_entropy_forward(logits.reshape(B * T, V), targets.reshape(-1),
                                               scored.reshape(-1).astype(self.dtype))
        self._cache = {"enc": enc_cache, "order": order, "head": head_cache,
                       "ce": ce_cache}
        # next-token accuracy over the scored positions (argmax is cheap next to the head's matmul)
        n_scored = scored.sum()
        correct = ((logits.argmax(axis=-1) == targets) & scored).sum()
        if order is not None:  # back to the input's order: state t belongs to token t
            seq, logits, targets = (_gather_rows(a, order) for a in (seq, logits, targets))
        out = BertOutput(sequence_output=seq, attentions=attentions, loss=loss)
        out.extras.update(logits=logits, targets=targets, accuracy=correct / xp.maximum(n_scored, 1),
                          num_scored=n_scored)
        return out

    def backward(self, dloss=1.0, dsequence_output=None) -> dict:
        """Gradients of dloss * out.loss + sum(out.sequence_output * dsequence_output), the
        second term when the states feed a downstream model (ElmoFeatures). Keys of params."""
        cache = self._take_cache()
        p = self.params
        grads = {}
        # forward: loss = cross-entropy(logits, targets); logits = the MLM head at every position
        dlogits = cross_entropy_backward(dloss, cache["ce"])  # (B*T, V); unscored positions get exactly 0
        dseq, dword_table_as_decoder = mlm_head_backward(dlogits, cache["head"], p, self.config, grads)
        if dsequence_output is not None:  # the states' other use; in reading order, as dseq is
            order = cache["order"]
            dseq += dsequence_output if order is None else _gather_rows(dsequence_output, order)
        dword = self._encode_backward(dseq, None, cache["enc"], grads)
        # the word table is the decoder and the input lookup: its gradient is the sum of both shares
        grads["embeddings.word"] = self._word_lookup_backward(dword, cache["enc"], dtable=dword_table_as_decoder)
        return grads


class ElmoFeatures:
    """features[:, t] = [left-to-right state at t | right-to-left state at t]: (B, T, 2H).

    ELMo's "shallow" bidirectionality (Peters et al. 2018): two independent language models,
    one per direction, side by side. The left half at t has read tokens 0..t, the right half
    tokens t..L-1; no single network has read both sides, as BERT's masked LM does. ELMo
    mixes every layer with learned softmax weights per task; this takes each model's last
    layer. `params` and `backward()`'s gradients are keyed "left_to_right.<name>" and
    "right_to_left.<name>".
    """

    def __init__(self, left_to_right: BertLMHeadModel, right_to_left: BertLMHeadModel):
        if left_to_right.right_to_left or not right_to_left.right_to_left:
            raise ValueError("ElmoFeatures needs a left-to-right model and a right_to_left=True model, in that order")
        self.models = {"left_to_right": left_to_right, "right_to_left": right_to_left}

    @property
    def params(self) -> dict:
        return {f"{d}.{name}": a for d, model in self.models.items() for name, a in model.params.items()}

    def forward(self, batch: dict, training: bool = False, rng=None):
        """batch: the encoders' inputs (B, T)   ->   features: (B, T, 2H)"""
        states = [model.forward(batch, training, rng).sequence_output for model in self.models.values()]
        xp = backend.array_module(states[0])
        return xp.concatenate(states, axis=-1)  # (B, T, 2H)

    def backward(self, dfeatures) -> dict:
        """dfeatures: (B, T, 2H)   ->   gradients of sum(features * dfeatures), keys of params.
        The language-model losses are not part of it (dloss=0)."""
        H = self.models["left_to_right"].config.hidden_size
        dstates = {"left_to_right": dfeatures[..., :H], "right_to_left": dfeatures[..., H:]}  # undo the concatenation
        return {f"{d}.{name}": g for d, model in self.models.items()
                for name, g in model.backward(dloss=0.0, dsequence_output=dstates[d]).items()}


# ------------------------------------------------------------------ pre-training objectives
OBJECTIVES = ("mlm_nsp", "left_to_right", "right_to_left")  # BERT's, GPT's, and GPT's read backwards


def pretraining_model(objective: str, config, seed: int = 0, dtype=np.float32):
    """The model a pre-training objective trains: BertForPreTraining for "mlm_nsp" (masked LM
    + next sentence), BertLMHeadModel for "left_to_right" and "right_to_left" (next token)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown pre-training objective {objective!r}; one of {', '.join(OBJECTIVES)}")
    if objective == "mlm_nsp":
        return BertForPreTraining(config, seed=seed, dtype=dtype)
    return BertLMHeadModel(config, seed=seed, dtype=dtype, right_to_left=objective == "right_to_left")
