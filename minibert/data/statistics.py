"""The numbers that show what masking and pair creation did: the plots draw these."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .masking import KINDS


@dataclass
class MaskingStatistics:
    num_sequences: int
    num_candidates: int  # tokens that could be chosen (not [CLS], [SEP], padding)
    num_selected: int
    kind_counts: dict  # "mask" / "random" / "keep" -> count
    selected_per_sequence: np.ndarray  # (S,)
    candidates_per_sequence: np.ndarray  # (S,)
    selection_rate_by_position: np.ndarray  # (T,): chosen / candidates at each position (nan where none)
    candidates_by_position: np.ndarray  # (T,): candidates at each position, the n of the rate's binomial band
    span_lengths: np.ndarray  # lengths of runs of consecutive chosen positions
    num_random_next: int
    sequence_lengths: np.ndarray  # (S,) real tokens per sequence

    @property
    def selected_fraction(self) -> float:
        return self.num_selected / max(self.num_candidates, 1)

    @property
    def kind_shares(self) -> dict:
        return {k: self.kind_counts[k] / max(self.num_selected, 1) for k in KINDS}

    @property
    def random_next_share(self) -> float:
        return self.num_random_next / max(self.num_sequences, 1)

    def to_dict(self, config=None) -> dict:
        """Plain numbers and lists (JSON-ready), with the targets of `config` (a MaskingConfig)
        for the plots to draw against."""
        from .masking import MaskingConfig

        config = config or MaskingConfig()
        keep = 1.0 - config.mask_token_prob - config.random_token_prob
        return {
            "strategy": config.strategy, "mask_prob": config.mask_prob,
            "expected_shares": {"mask": config.mask_token_prob, "random": config.random_token_prob, "keep": keep},
            "kind_shares": self.kind_shares, "selected_fraction": self.selected_fraction,
            "selected_per_sequence": self.selected_per_sequence.tolist(),
            "candidates_per_sequence": self.candidates_per_sequence.tolist(),
            "selection_rate_by_position": [None if np.isnan(r) else float(r) for r in self.selection_rate_by_position],
            "candidates_by_position": [int(n) for n in self.candidates_by_position],
            "span_p": config.span_p, "max_span": config.max_span,
            "span_lengths": self.span_lengths.tolist(), "random_next_share": self.random_next_share,
            "sequence_lengths": self.sequence_lengths.tolist(), "summary": self.summary(),
        }

    def summary(self) -> str:
        s = self.kind_shares
        return (f"{self.num_sequences} sequences, {self.num_candidates} candidate tokens, "
                f"{self.num_selected} chosen ({self.selected_fraction:.1%}); of the chosen: "
                f"[MASK] {s['mask']:.1%}, random {s['random']:.1%}, unchanged {s['keep']:.1%}; "
                f"{self.selected_per_sequence.mean():.1f} predictions per sequence; "
                f"random next sentence {self.random_next_share:.1%}; "
                f"mean length {self.sequence_lengths.mean():.1f} tokens")


def _runs(positions) -> list:
    runs, last = [], None
    for p in positions:
        if last is not None and p == last + 1:
            runs[-1] += 1
        else:
            runs.append(1)
        last = p
    return runs


def masking_statistics(items, tokenizer=None) -> MaskingStatistics:
    """Statistics of a list of Instances, or of a list of batch dicts from collate().

    For batches, pass the tokenizer: candidates are then the real tokens that are not
    [CLS] or [SEP].
    """
    rows = []  # (length, candidate mask, chosen positions, kinds, is_random)
    for item in items:
        if isinstance(item, dict):
            if tokenizer is None:
                raise ValueError("masking_statistics of batches needs the tokenizer")
            ids, am = item["input_ids"], item["attention_mask"]
            special = np.isin(ids, [tokenizer.cls_id, tokenizer.sep_id]) | (am == 0)
            for b in range(ids.shape[0]):
                real = item["masked_lm_weights"][b] > 0
                rows.append((int(am[b].sum()), ~special[b], item["masked_lm_positions"][b][real].tolist(),
                             [KINDS[k] for k in item["masked_lm_kinds"][b][real]], bool(item["next_sentence_label"][b])))
        else:
            cand = np.array([t not in ("[CLS]", "[SEP]", "[PAD]") for t in item.tokens])
            rows.append((len(item.tokens), cand, list(item.masked_lm_positions), list(item.masked_lm_kinds),
                         bool(item.is_random_next)))
    if not rows:
        raise ValueError("no instances or batches to summarize")
    T = max(len(r[1]) for r in rows)
    cand_at, chosen_at = np.zeros(T), np.zeros(T)
    kind_counts = {k: 0 for k in KINDS}
    spans = []
    for _, cand, positions, kinds, _ in rows:
        cand_at[: len(cand)] += cand
        chosen_at[positions] += 1
        for k in kinds:
            kind_counts[k] += 1
        spans += _runs(positions)
    with np.errstate(invalid="ignore", divide="ignore"):
        by_position = np.where(cand_at > 0, chosen_at / cand_at, np.nan)
    return MaskingStatistics(
        num_sequences=len(rows), num_candidates=int(cand_at.sum()), num_selected=int(chosen_at.sum()),
        kind_counts=kind_counts, selected_per_sequence=np.array([len(r[2]) for r in rows]),
        candidates_per_sequence=np.array([int(r[1].sum()) for r in rows]), selection_rate_by_position=by_position,
        candidates_by_position=cand_at.astype(np.int64),
        span_lengths=np.array(spans, dtype=np.int64), num_random_next=sum(r[4] for r in rows),
        sequence_lengths=np.array([r[0] for r in rows]),
    )
