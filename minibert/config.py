"""BertConfig: every size and switch of the model, with Hugging Face's field names."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522  # rows of the word-embedding table (and MLM outputs)
    hidden_size: int = 768  # H: width of every token's vector
    num_hidden_layers: int = 12  # encoder layers
    num_attention_heads: int = 12  # A; each head has D = H // A dimensions
    intermediate_size: int = 3072  # F: width of the feed-forward layer
    hidden_act: str = "gelu"  # "gelu" = exact erf form, "gelu_new" = tanh form
    hidden_dropout_prob: float = 0.1  # after embeddings, attention output and feed-forward
    attention_probs_dropout_prob: float = 0.1  # on the attention probabilities
    max_position_embeddings: int = 512  # longest sequence the position table covers
    type_vocab_size: int = 2  # segment ids (A = 0, B = 1); google used 16
    initializer_range: float = 0.02  # std of the truncated-normal initialization
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"BertConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"BertConfig.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.hidden_act not in ("gelu", "gelu_new"):
            raise ValueError(f"BertConfig.hidden_act must be 'gelu' or 'gelu_new', got {self.hidden_act!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"BertConfig.{name} must be in [0, 1), got {value!r}")
        if self.initializer_range <= 0 or self.layer_norm_eps <= 0:
            raise ValueError("BertConfig.initializer_range and layer_norm_eps must be positive")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"BertConfig.pad_token_id ({self.pad_token_id}) must be a valid token id")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def replace(self, **changes) -> "BertConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields, plus the keys a Hugging Face config.json carries for a BERT."""
        return {"architectures": ["BertForPreTraining"], "model_type": "bert", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "BertConfig":
        """Build from a dict such as a Hugging Face config.json; keys minibert does not use are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        if d.get("model_type", "bert") != "bert":
            raise ValueError(f"config has model_type {d['model_type']!r}; minibert reads only 'bert'")
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("config position_embedding_type must be 'absolute'")
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_json_file(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json_file(cls, path) -> "BertConfig":
        from .io import read_json

        path = Path(path)
        d = read_json(path, "config")
        if not isinstance(d, dict):
            raise ValueError(f"{path}: a config must be a JSON object")
        try:
            return cls.from_dict(d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from None

    @classmethod
    def preset(cls, name: str, **overrides) -> "BertConfig":
        """A named size: tiny, mini, small or base (BERT-base)."""
        if name not in PRESETS:
            raise ValueError(f"unknown config preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


#                  layers  hidden  heads  intermediate
PRESETS = {
    "tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512),
    "mini": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
    "small": dict(num_hidden_layers=4, hidden_size=512, num_attention_heads=8, intermediate_size=2048),
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
}


# ------------------------------------------------------------------ command-line options
def check_options(cfg, rules: dict) -> None:
    """Refuse an option outside its range before anything runs. rules: field -> (low, high, what),
    with low/high None for no bound; the value must be a finite number in [low, high] (or None where
    the field's default is None). The error names the option as it is typed: --batch-size."""
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    for name, (low, high, what) in rules.items():
        value = getattr(cfg, name)
        flag = "--" + name.replace("_", "-")
        if value is None and defaults[name] is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (
                float("inf"), float("-inf")):
            raise ValueError(f"{flag} must be a finite number ({what}), got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = (f"between {low} and {high}" if low is not None and high is not None
                      else f">= {low}" if low is not None else f"<= {high}")
            raise ValueError(f"{flag} must be {bounds} ({what}), got {value!r}")
