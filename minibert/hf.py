"""Hugging Face BERT checkpoints in and out, through one table of names.

minibert stores a dense layer's weight input-major, W: (in, out), so that the forward
reads `x @ W`; PyTorch's nn.Linear stores (out, in), so every dense weight is transposed
on the way. minibert also keeps Q, K and V side by side in one (H, 3H) matrix (one matmul
instead of three); Hugging Face keeps three (H, H) layers, so that entry is split.

The table teaches the architecture as much as the format: read it top to bottom and you
have walked through BERT.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .backend import to_host
from .config import BertConfig
from .io import (CheckpointError, WriteError, default_mode, failure_reason, fsync_folder, load_arrays, save_arrays,
                 write_text_atomic)

#  minibert name (i = layer)   Hugging Face name (without the "bert." prefix)          how
TABLE = [
    ("embeddings.word",         "embeddings.word_embeddings.weight",                    "same"),
    ("embeddings.position",     "embeddings.position_embeddings.weight",                "same"),
    ("embeddings.token_type",   "embeddings.token_type_embeddings.weight",              "same"),
    ("embeddings.ln.gamma",     "embeddings.LayerNorm.weight",                          "same"),
    ("embeddings.ln.beta",      "embeddings.LayerNorm.bias",                            "same"),
    ("layer.{i}.attn.qkv.W",    "encoder.layer.{i}.attention.self.{query,key,value}.weight", "split3, transpose"),
    ("layer.{i}.attn.qkv.b",    "encoder.layer.{i}.attention.self.{query,key,value}.bias",   "split3"),
    ("layer.{i}.attn.out.W",    "encoder.layer.{i}.attention.output.dense.weight",      "transpose"),
    ("layer.{i}.attn.out.b",    "encoder.layer.{i}.attention.output.dense.bias",        "same"),
    ("layer.{i}.attn.ln.gamma", "encoder.layer.{i}.attention.output.LayerNorm.weight",  "same"),
    ("layer.{i}.attn.ln.beta",  "encoder.layer.{i}.attention.output.LayerNorm.bias",    "same"),
    ("layer.{i}.ffn.in.W",      "encoder.layer.{i}.intermediate.dense.weight",          "transpose"),
    ("layer.{i}.ffn.in.b",      "encoder.layer.{i}.intermediate.dense.bias",            "same"),
    ("layer.{i}.ffn.out.W",     "encoder.layer.{i}.output.dense.weight",                "transpose"),
    ("layer.{i}.ffn.out.b",     "encoder.layer.{i}.output.dense.bias",                  "same"),
    ("layer.{i}.ffn.ln.gamma",  "encoder.layer.{i}.output.LayerNorm.weight",            "same"),
    ("layer.{i}.ffn.ln.beta",   "encoder.layer.{i}.output.LayerNorm.bias",              "same"),
    ("pooler.W",                "pooler.dense.weight",                                  "transpose"),
    ("pooler.b",                "pooler.dense.bias",                                    "same"),
    # heads: outside the encoder, so no "bert." prefix in BertForPreTraining
    # (the MLM head is also BertLMHeadModel's next-token head, minibert/lm.py: the same names)
    ("mlm.transform.W",         "cls.predictions.transform.dense.weight",               "transpose"),
    ("mlm.transform.b",         "cls.predictions.transform.dense.bias",                 "same"),
    ("mlm.ln.gamma",            "cls.predictions.transform.LayerNorm.weight",           "same"),
    ("mlm.ln.beta",             "cls.predictions.transform.LayerNorm.bias",             "same"),
    ("mlm.bias",                "cls.predictions.bias",                                 "same"),  # decoder weight = word embeddings
    ("nsp.W",                   "cls.seq_relationship.weight",                          "transpose"),
    ("nsp.b",                   "cls.seq_relationship.bias",                            "same"),
    ("qa.W",                    "qa_outputs.weight",                                    "transpose"),
    ("qa.b",                    "qa_outputs.bias",                                      "same"),
    # one name for both classifiers: on the pooled [CLS] (sequence) or on every token (token)
    ("classifier.W",            "classifier.weight",                                    "transpose"),
    ("classifier.b",            "classifier.bias",                                      "same"),
]
# tensors other classes add on top of the encoder: {minibert prefix: what a missing one is}
HEADS = {"pooler.": "pooler", "mlm.": "masked-LM head", "nsp.": "next-sentence head",
         "qa.": "question-answering head", "classifier.": "classification head"}
TASK_HEADS = ("mlm.", "nsp.", "qa.", "classifier.")  # outside the "bert." prefix


def _expand(config: BertConfig):
    """(minibert name, [HF names], how) for every parameter of a config."""
    rows = []
    for mini, hf, how in TABLE:
        layers = range(config.num_hidden_layers) if "{i}" in mini else [None]
        for i in layers:
            m, h = (mini.format(i=i), hf.replace("{i}", str(i))) if i is not None else (mini, hf)
            if "{query,key,value}" in h:
                names = [h.replace("{query,key,value}", part) for part in ("query", "key", "value")]
            else:
                names = [h]
            rows.append((m, names, how))
    return rows


def _hf_prefix(mini_name: str, with_bert_prefix: bool) -> str:
    return "bert." if with_bert_prefix and not mini_name.startswith(TASK_HEADS) else ""


def to_hf_state_dict(model, arrays: dict | None = None, with_bert_prefix: bool | None = None) -> dict:
    """Map any dict keyed like model.params (parameters or gradients; None = the parameters)
    to Hugging Face names and layouts, as NumPy arrays.

    The "bert." prefix is used for models with pre-training heads (as BertForPreTraining
    names them) unless with_bert_prefix says otherwise.
    """
    arrays = model.params if arrays is None else arrays
    if with_bert_prefix is None:
        with_bert_prefix = any(k.startswith(TASK_HEADS) for k in model.params)
    out = {}
    for mini, hf_names, how in _expand(model.config):
        if mini not in arrays:
            continue
        a = np.asarray(to_host(arrays[mini]))
        prefix = _hf_prefix(mini, with_bert_prefix)
        parts = np.split(a, 3, axis=-1) if how.startswith("split3") else [a]
        for name, part in zip(hf_names, parts):
            out[prefix + name] = np.ascontiguousarray(part.T if "transpose" in how else part)
    return out


def from_hf_state_dict(config: BertConfig, state: dict) -> dict:
    """The inverse: Hugging Face tensors (any prefix) -> minibert names and layouts. Tensors
    minibert has no place for are returned under their own names, for the caller to reject."""
    state = {_normalize(k): v for k, v in state.items()}
    out, used = {}, set()
    for mini, hf_names, how in _expand(config):
        if not all(n in state for n in hf_names):
            used.update(n for n in hf_names if n in state)  # known names, even if a sibling is missing
            continue
        parts = [np.asarray(state[n]) for n in hf_names]
        used.update(hf_names)
        parts = [p.T if "transpose" in how else p for p in parts]
        out[mini] = np.concatenate(parts, axis=-1) if how.startswith("split3") else parts[0]
    # the MLM decoder's weight is the word-embedding table (tied) and its bias is cls.predictions.bias
    for tied in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias", "embeddings.position_ids"):
        used.add(tied)
    return out, sorted(set(state) - used)


def _normalize(name: str) -> str:
    """Drop the "bert." prefix and old TF-style LayerNorm names (gamma/beta)."""
    if name.startswith("bert."):
        name = name[len("bert."):]
    return name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")


def read_hf_folder(path):
    """(BertConfig, tensors) of a Hugging Face BERT folder. Only safetensors is read, never a pickle."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a folder (expected config.json and model.safetensors)")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not found")
    config = BertConfig.from_json_file(config_path)
    weights = path / "model.safetensors"
    if not weights.is_file():
        if (path / "pytorch_model.bin").is_file():
            raise CheckpointError(
                f"{path}: only pytorch_model.bin is there, a pickle minibert will not load (it can run code). "
                "Convert it once with transformers: "
                "AutoModel.from_pretrained(path).save_pretrained(path, safe_serialization=True)")
        raise FileNotFoundError(f"{weights}: not found")
    arrays, _ = load_arrays(weights)
    return config, arrays


def load_into(model_cls, path, dtype=np.float32, seed: int = 0, **kwargs):
    """Build model_cls from a Hugging Face folder. Encoder tensors are required; heads the
    checkpoint lacks are freshly initialized and reported (model.newly_initialized)."""
    config, state = read_hf_folder(path)
    weights = Path(path) / "model.safetensors"
    model = model_cls(config, seed=seed, dtype=dtype, **kwargs)
    arrays, leftover = from_hf_state_dict(config, state)
    head_tensors = [k for k in leftover if k.startswith(("cls.", "qa_outputs.", "classifier."))]
    unknown = [k for k in leftover if k not in head_tensors]
    if unknown:
        raise CheckpointError(f"{weights}: unexpected tensor {unknown[0]!r}" +
                              (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
    arrays = {k: v for k, v in arrays.items() if k in model.params}  # heads this class does not have
    missing = sorted(set(model.params) - set(arrays))
    encoder_missing = [k for k in missing if not k.startswith(tuple(HEADS))]
    if encoder_missing:
        hf = {m: names for m, names, _ in _expand(config)}
        present = {_normalize(k) for k in state}
        name = next(n for n in hf[encoder_missing[0]] if n not in present)
        raise CheckpointError(f"{weights}: missing tensor {name!r} (minibert {encoder_missing[0]!r})")
    model.load_params(arrays, source=str(weights), strict=False)
    fresh = sorted({HEADS[p] for k in missing for p in HEADS if k.startswith(p)})
    model.newly_initialized = fresh
    if fresh:
        warnings.warn(f"{weights}: no weights for the {', '.join(fresh)}; initialized randomly "
                      "(train before using it)", stacklevel=3)
    return model


# The files of a Hugging Face model folder. One of them already there means the folder holds
# another model: writing ours over it would destroy it, and writing beside it would mix the
# two (AutoTokenizer, for one, prefers a stale tokenizer.json to our vocab.txt).
HF_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
            "tf_model.h5", "flax_model.msgpack", "vocab.txt", "tokenizer_config.json", "tokenizer.json",
            "special_tokens_map.json", "added_tokens.json", "generation_config.json")


def save_hf_folder(model, path, tokenizer=None) -> Path:
    """Write config.json, model.safetensors (Hugging Face names) and, with a tokenizer,
    vocab.txt + tokenizer_config.json, so that transformers' from_pretrained and
    AutoTokenizer load the folder.

    The folder must be new, empty, or free of model files (HF_FILES): an export never
    overwrites. The files are written into a temporary folder beside it and moved in at
    the end, so a failure halfway (a full disk) leaves no partial set behind.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path}: exists and is not a folder; export into a new or empty folder")
    taken = [name for name in HF_FILES if (path / name).exists()] if path.is_dir() else []
    if taken:
        more = f" (and {', '.join(taken[1:])})" if taken[1:] else ""
        raise FileExistsError(f"{path}: already holds {taken[0]}{more}, which the export would overwrite; "
                              "export into a new or empty folder (nothing was written)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        _write_hf_files(model, tmp, tokenizer)
        os.chmod(tmp, default_mode(folder=True))  # mkdtemp's folder is private (0o700)
        _move_into(tmp, path)
    except OSError as e:
        reason = failure_reason(e)
        raise WriteError(f"{path}: export failed ({reason}); nothing was written", reason, e.errno) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # already gone unless something failed
    return path


def _write_hf_files(model, folder: Path, tokenizer) -> None:
    config = {**model.config.to_dict(), "architectures": [type(model).__name__], "position_embedding_type": "absolute",
              **getattr(model, "hf_config_extras", lambda: {})()}
    state = to_hf_state_dict(model)
    save_arrays(folder / "model.safetensors", state, {"format": "pt"})  # transformers wants to know the framework
    write_text_atomic(folder / "config.json", json.dumps(config, indent=2) + "\n")
    if tokenizer is not None:
        tokenizer.save_vocab(folder / "vocab.txt")
        tok_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": tokenizer.do_lower_case,
                      "model_max_length": model.config.max_position_embeddings, "unk_token": "[UNK]",
                      "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}
        write_text_atomic(folder / "tokenizer_config.json", json.dumps(tok_config, indent=2) + "\n")


def _move_into(tmp: Path, path: Path) -> None:
    """Put the finished files of tmp at path."""
    if path.is_dir() and any(path.iterdir()):
        # a folder with other files in it: move ours in one by one. A move within one disk
        # is a rename, which needs no space and cannot fail halfway the way a write can.
        for f in sorted(tmp.iterdir()):
            os.rename(f, path / f.name)
        fsync_folder(path)
    else:
        if path.is_dir():
            path.rmdir()  # an empty folder: not every system renames over one, even empty
        os.rename(tmp, path)  # one step: the folder appears complete, or not at all
    fsync_folder(path.parent)
