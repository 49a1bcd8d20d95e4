"""BERT's masked-LM corruption: choose ~15% of the tokens, then replace 80% of the chosen
with [MASK], 10% with a random token, and leave 10% unchanged. The model must predict the
original token at every chosen position.

Why not always [MASK]? [MASK] never appears when the model is fine-tuned; the random and
unchanged 10%s make it keep a good representation of every input token, since it cannot
tell which tokens were tampered with (Devlin, google-research/bert #169).

Strategies for *which* tokens are chosen:
  "exact"       google's: exactly min(max_predictions, max(1, round(n * mask_prob))) tokens,
                n counting [CLS] and [SEP] (Python's round: half to even)
  "bernoulli"   Hugging Face's: every candidate independently with probability mask_prob
                (the count varies and can be 0)
  "whole_word"  google's whole-word masking: a word's "##" pieces are chosen together;
                a word that would overshoot the exact budget is skipped
  "span"        contiguous spans with geometric lengths (SpanBERT-style), up to the exact
                budget; the 80/10/10 decision is made once per span
[CLS], [SEP] and [PAD] are never chosen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

NEVER_MASKED = frozenset(("[CLS]", "[SEP]", "[PAD]"))
STRATEGIES = ("exact", "bernoulli", "whole_word", "span")
KINDS = ("mask", "random", "keep")  # what happened at a chosen position


@dataclass(frozen=True)
class MaskingConfig:
    strategy: str = "exact"
    mask_prob: float = 0.15  # share of tokens chosen for prediction
    mask_token_prob: float = 0.8  # of the chosen: replaced by [MASK]
    random_token_prob: float = 0.1  # of the chosen: replaced by a random token (the rest: unchanged)
    max_predictions: int | None = 20  # google's max_predictions_per_seq; None = no cap
    random_from: str = "non_special"  # "non_special" or "all" (both references draw from all)
    span_p: float = 0.2  # span lengths ~ Geometric(span_p): mean 1 / span_p = 5
    max_span: int = 10

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"masking strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if not 0.0 < self.mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in (0, 1], got {self.mask_prob}")
        if self.mask_token_prob < 0 or self.random_token_prob < 0 or self.mask_token_prob + self.random_token_prob > 1:
            raise ValueError("mask_token_prob and random_token_prob must be >= 0 and sum to at most 1, got "
                             f"{self.mask_token_prob} and {self.random_token_prob}")
        if self.max_predictions is not None and self.max_predictions < 1:
            raise ValueError(f"max_predictions must be >= 1 or None, got {self.max_predictions}")
        if self.random_from not in ("non_special", "all"):
            raise ValueError(f"random_from must be 'non_special' or 'all', got {self.random_from!r}")
        if not 0.0 < self.span_p <= 1.0 or self.max_span < 1:
            raise ValueError("span_p must be in (0, 1] and max_span >= 1")


@dataclass
class MaskedTokens:
    tokens: list  # the corrupted sequence the model sees
    positions: list  # chosen positions, ascending
    labels: list  # the original token at each chosen position
    kinds: list  # "mask", "random" or "keep" for each chosen position
    spans: list = field(default_factory=list)  # (start, end) of each chosen unit, end exclusive


def exact_count(num_tokens: int, mask_prob: float, max_predictions: int | None) -> int:
    """google's budget: min(max_predictions, max(1, round(num_tokens * mask_prob)))."""
    n = max(1, int(round(num_tokens * mask_prob)))
    return n if max_predictions is None else min(max_predictions, n)


_BRACKETED = re.compile(r"^\[.*\]$")


def replacement_vocab(tokenizer, random_from: str = "non_special") -> list:
    """The tokens a random replacement is drawn from (cached on the tokenizer)."""
    key = f"_replacement_vocab_{random_from}"
    cached = getattr(tokenizer, key, None)
    if cached is None:
        cached = [t for t in tokenizer.inv_vocab if random_from == "all" or not _BRACKETED.match(t)]
        setattr(tokenizer, key, cached)
    return cached


def _choose(tokens, candidates, config, rng, budget):
    """The chosen units: lists of positions, each list masked together."""
    if config.strategy == "exact":
        order = rng.permutation(len(candidates))[:budget]
        return [[candidates[j]] for j in order]
    if config.strategy == "bernoulli":
        chosen = [i for i, u in zip(candidates, rng.random(len(candidates))) if u < config.mask_prob]
        if config.max_predictions is not None and len(chosen) > config.max_predictions:
            chosen = sorted(rng.choice(chosen, size=config.max_predictions, replace=False).tolist())
        return [[i] for i in chosen]
    if config.strategy == "whole_word":
        words = []
        for i in candidates:
            if words and tokens[i].startswith("##") and words[-1][-1] == i - 1:
                words[-1].append(i)  # a continuation piece joins the word before it
            else:
                words.append([i])
        units, count = [], 0
        for j in rng.permutation(len(words)):
            if count >= budget:
                break
            if count + len(words[j]) > budget:
                continue  # google skips a word that would overshoot
            units.append(words[j])
            count += len(words[j])
        return units
    # span: draw a length and a start, keep the part that runs over free candidates
    free = np.zeros(len(tokens) + 1, dtype=bool)
    free[candidates] = True
    units, count = [], 0
    for _ in range(20 * budget + 20):  # bounded: a crowded sequence may not fit the whole budget
        if count >= budget:
            break
        length = min(int(rng.geometric(config.span_p)), config.max_span, budget - count)
        start = candidates[int(rng.integers(len(candidates)))]
        end = start
        while end < start + length and free[end]:
            end += 1
        if end == start:
            continue
        free[start:end] = False
        units.append(list(range(start, end)))
        count += end - start
    return units


def mask_tokens(tokens, tokenizer, strategy: str = "exact", mask_prob: float = 0.15, rng=None,
                **options) -> MaskedTokens:
    """Corrupt one token list for masked-LM training.

    tokens: e.g. ["[CLS]", "the", "cat", "[SEP]"]; tokenizer: gives the vocabulary for random
    replacements; rng: a numpy Generator or an int seed. Further options are the fields of
    MaskingConfig (mask_token_prob, random_token_prob, max_predictions, random_from, span_p,
    max_span); `config=` passes a whole MaskingConfig instead.
    """
    config = options.pop("config", None) or MaskingConfig(strategy=strategy, mask_prob=mask_prob, **options)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    tokens = list(tokens)
    candidates = [i for i, t in enumerate(tokens) if t not in NEVER_MASKED]
    num_real = sum(t != "[PAD]" for t in tokens)
    budget = min(exact_count(num_real, config.mask_prob, config.max_predictions), len(candidates))
    units = _choose(tokens, candidates, config, rng, budget) if candidates else []

    vocab = replacement_vocab(tokenizer, config.random_from)
    out = list(tokens)
    decided = {}
    per_unit = config.strategy == "span"
    for unit in units:
        for k, i in enumerate(unit):
            if k == 0 or not per_unit:
                u = rng.random()
                kind = "mask" if u < config.mask_token_prob else (
                    "random" if u < config.mask_token_prob + config.random_token_prob else "keep")
            decided[i] = kind
            if kind == "mask":
                out[i] = "[MASK]"
            elif kind == "random":
                out[i] = vocab[int(rng.integers(len(vocab)))]
    positions = sorted(decided)
    return MaskedTokens(tokens=out, positions=positions, labels=[tokens[i] for i in positions],
                        kinds=[decided[i] for i in positions],
                        spans=sorted((u[0], u[-1] + 1) for u in units))
