"""Every figure minibert draws. Each function returns a matplotlib Figure (shown inline in a
notebook); plot_run writes them as PNG files into a run folder.

Each curve comes with its baseline: chance and the best guess without context for the
losses, binomial bands for rates measured on a sample, the from-scratch line for transfer.
The numbers behind a figure come from a plain function (attention_shares, binomial_band,
expected_run_lengths), so they can be tested and printed without drawing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .backend import to_host
from .data import generate_corpus, read_documents, split_documents
from .data.masking import MaskingConfig
from .io import read_json
from .runs import load_run, read_metrics

KIND_LABELS = {"mask": "[MASK]", "random": "random token", "keep": "unchanged"}


# ------------------------------------------------------------------ masking
def binomial_band(p: float, n, k: float = 2.0):
    """p -+ k * sqrt(p (1 - p) / n): where a rate measured on n trials falls (about 95% of the
    time for k = 2) if every trial succeeds with probability p. n: (T,) counts; nan where n = 0.
    Returns (low, high), each (T,)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where(n > 0, np.sqrt(p * (1 - p) / n), np.nan)  # (T,)
    return p - k * sigma, p + k * sigma


def expected_run_lengths(lengths, strategy: str, rate: float, span_p: float = MaskingConfig.span_p,
                         max_span: int = MaskingConfig.max_span) -> np.ndarray:
    """P(a run of consecutive chosen positions has length k), for each k in `lengths`.

    span:   the geometric distribution the strategy draws span lengths from, clipped at max_span:
            P(k) = (1 - q)^(k-1) q for k < max_span, and the rest of the mass at max_span (q = span_p)
    others: what choosing every position independently at `rate` would give: P(k) = (1 - rate) rate^(k-1)
    """
    k = np.asarray(lengths, dtype=float)
    if strategy == "span":
        q = span_p
        return np.where(k < max_span, (1 - q) ** (k - 1) * q, np.where(k == max_span, (1 - q) ** (max_span - 1), 0.0))
    return (1 - rate) * rate ** (k - 1)


def masking_figure(stats: dict) -> Figure:
    """What the masking did: the 80/10/10 split, predictions per sequence, rate by position, span lengths.

    stats: MaskingStatistics.to_dict(config), as in a run's masking_stats.json.
    """
    fig = Figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(2, 2)
    fig.suptitle(f"Masking ({stats['strategy']}): {stats['summary']}", fontsize=9, wrap=True)

    ax = axes[0, 0]
    kinds = list(KIND_LABELS)
    x = np.arange(len(kinds))
    ax.bar(x - 0.2, [stats["kind_shares"][k] for k in kinds], 0.4, label="measured")
    ax.bar(x + 0.2, [stats["expected_shares"][k] for k in kinds], 0.4, label="target", alpha=0.6)
    ax.set_xticks(x, [KIND_LABELS[k] for k in kinds])
    ax.set_ylabel("share of the chosen tokens")
    ax.set_title("What a chosen token becomes")
    ax.legend()

    ax = axes[0, 1]
    chosen = np.array(stats["selected_per_sequence"], dtype=float)
    cands = np.maximum(np.array(stats["candidates_per_sequence"], dtype=float), 1)
    ax.hist(chosen / cands, bins=30)
    ax.axvline(stats["mask_prob"], color="k", linestyle="--", label=f"mask_prob = {stats['mask_prob']}")
    ax.set_xlabel("chosen / maskable tokens, per sequence")
    ax.set_ylabel("sequences")
    ax.set_title("Masked fraction per sequence")
    ax.legend()

    ax = axes[1, 0]
    p = stats["selected_fraction"]
    rate = np.array([np.nan if r is None else r for r in stats["selection_rate_by_position"]])  # (T,)
    positions = np.arange(len(rate))
    if "candidates_by_position" in stats:  # runs before the band was added lack the counts
        low, high = binomial_band(p, stats["candidates_by_position"])
        ax.fill_between(positions, low, high, color="gray", alpha=0.3, linewidth=0,
                        label="±2σ if every position were chosen at the overall rate")
    ax.plot(positions, rate, marker=".", linestyle="none", label="measured")
    ax.axhline(p, color="k", linestyle="--", label=f"overall rate {p:.3f}")
    ax.set_xlabel("position in the sequence")
    ax.set_ylabel("chosen / maskable here")
    ax.set_title("Selection rate by position, against the overall rate")
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    spans = np.array(stats["span_lengths"], dtype=int)
    if len(spans):
        span_p, max_span = stats.get("span_p", MaskingConfig.span_p), stats.get("max_span", MaskingConfig.max_span)
        lengths = np.arange(1, max(spans.max(), max_span if stats["strategy"] == "span" else 1) + 1)
        shares = np.bincount(spans, minlength=lengths[-1] + 1)[1:] / len(spans)
        ax.bar(lengths, shares, label=f"measured ({len(spans)} runs)")
        if stats["strategy"] == "span":
            target = (f"drawn from: geometric, p = {span_p}, clipped at {max_span}\n"
                      "(cut at the budget and at [SEP]; touching spans merge)")
        else:
            target = f"independent choice at rate {p:.3f}:\nP(k) = (1 - p) p^(k-1)"
        ax.plot(lengths, expected_run_lengths(lengths, stats["strategy"], p, span_p, max_span), "ko--",
                markersize=4, label=target)
        ax.legend(fontsize=8)
        if len(lengths) <= 25:
            ax.set_xticks(lengths)
    ax.set_xlabel("length of a run of consecutive masked positions")
    ax.set_ylabel("share of the runs")
    ax.set_title("Masked span lengths")
    return fig


# ------------------------------------------------------------------ training curves
# the curves of each kind of pre-training run: (row, column, key, title); losses on top, accuracies below
MLM_NSP_PANELS = [(0, 0, "mlm_loss", "Masked LM loss"), (0, 1, "nsp_loss", "Next sentence loss"),
                  (1, 0, "mlm_accuracy", "Masked LM accuracy"), (1, 1, "nsp_accuracy", "Next sentence accuracy")]
LM_PANELS = [(0, 0, "lm_loss", "Next-token loss"), (1, 0, "lm_accuracy", "Next-token accuracy")]


def training_figure(metrics: dict, vocab_size: int, baselines: dict | None = None, dropout: bool = True,
                    max_grad_norm: float | None = None) -> Figure:
    """Loss and accuracy curves (train and held-out) against what guessing scores: MLM and NSP
    for a BERT run, the next token for a language-model run (its records have "lm_loss").
    Then the learning rate, and the gradient norm against the clipping threshold.

    metrics: read_metrics(metrics.jsonl); baselines: a run's baselines.json (None: no guessing
    lines beyond chance); dropout: whether the train numbers were measured with dropout on.
    """
    train, held = metrics["train"], metrics["eval"]
    specs = LM_PANELS if any("lm_loss" in r for r in train + held) else MLM_NSP_PANELS
    columns = max(col for _, col, _, _ in specs) + 2  # the curves, then the learning rate and gradient norm
    fig = Figure(figsize=(4.7 * columns, 8), layout="constrained")
    axes = fig.subplots(2, columns)
    steps = lambda rs: [r["step"] for r in rs]  # noqa: E731
    b = baselines or {}
    chance = (math.log(vocab_size), f"chance: ln V = {math.log(vocab_size):.2f}")
    guesses = {  # key -> [(level, label)]: what a model that ignores its input scores
        "mlm_loss": [chance], "lm_loss": [chance], "mlm_accuracy": [], "lm_accuracy": [],
        "nsp_loss": [(math.log(2), "chance: ln 2 = 0.69")],
        "nsp_accuracy": [(0.5, "chance: 0.5")],
    }
    for task, what in (("mlm", "masked tokens"), ("lm", "next tokens")):
        if f"{task}_unigram_entropy" in b:  # the plateau: the model has learned how often each token occurs
            level = b[f"{task}_unigram_entropy"]
            guesses[f"{task}_loss"].append((level, f"token frequencies only: unigram entropy\n"
                                                   f"of the held-out {what} = {level:.2f}"))
        if f"{task}_most_frequent_token_accuracy" in b:
            level = b[f"{task}_most_frequent_token_accuracy"]
            guesses[f"{task}_accuracy"].append((level, f"always the most frequent token: {level:.3f}"))
    panels = [(axes[row, col], key, title) for row, col, key, title in specs]
    train_label = "train (dropout on)" if dropout else "train (no dropout)"
    for ax, key, title in panels:
        ax.plot(steps(train), [r[key] for r in train], label=train_label, alpha=0.7)
        ax.plot(steps(held), [r[key] for r in held], "o-", label="held-out (dropout off)")
        for (level, label), style in zip(guesses[key], ("--", ":")):
            ax.axhline(level, color="gray", linestyle=style, label=label)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8, loc="upper right" if key.endswith("loss") else "lower right")
    axes[0, 0].set_ylabel("cross-entropy (nats)")
    axes[1, 0].set_ylabel("share predicted right")

    ax = axes[0, -1]
    ax.plot(steps(train), [r["lr"] for r in train])
    ax.set_title("Learning rate (warmup, then linear decay)")
    ax.set_xlabel("step")

    ax = axes[1, -1]
    logged = [r for r in train if r.get("grad_norm") is not None]  # runs before grad_norm was logged have none
    ax.plot(steps(logged), [r["grad_norm"] for r in logged], label="before clipping (mean of each log window)")
    if max_grad_norm is not None:
        ax.axhline(max_grad_norm, color="gray", linestyle="--", label=f"clip threshold {max_grad_norm:g}: "
                                                                        "larger norms are scaled down to it")
    ax.set_ylim(bottom=0)
    ax.set_title("Global gradient norm")
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    fig.suptitle("Pre-training: train numbers are means over each log window of training batches; "
                 "held-out numbers score the same held-out batches each time", fontsize=10)
    return fig


# ------------------------------------------------------------------ attention
def attention_figure(attentions, tokens, max_heads: int = 12, max_tokens: int = 40) -> Figure:
    """Every head of every layer for one sequence: row = layer, column = head; a row of a
    heat map is one query token, and its colors say how much it looks at each key token.
    The white lines separate segment A (up to the first [SEP]) from segment B.

    attentions: per layer, (A, T, T) or (1, A, T, T); tokens: the T tokens (the first
    max_tokens are drawn, so that their labels stay readable).
    """
    maps = [to_host(a)[0] if to_host(a).ndim == 4 else to_host(a) for a in attentions]
    L, A = len(maps), min(maps[0].shape[0], max_heads)
    tokens = list(tokens)[:max_tokens]
    n = len(tokens)
    inches = max(2.5, 0.2 * n)  # one heat map: about 0.2 inch (14 points) per token
    fontsize = min(9.0, 0.7 * 72 * inches / n)  # a label takes at most 70% of its row
    sep = tokens.index("[SEP]") if "[SEP]" in tokens[:-1] else None  # a line only if segment B follows
    fig = Figure(figsize=((inches + 1.1) * A + 1.5, (inches + 1.2) * L), layout="constrained")
    axes = np.array(fig.subplots(L, A, squeeze=False))
    for layer in range(L):
        for head in range(A):
            ax = axes[layer, head]
            im = ax.imshow(maps[layer][head][:n, :n], cmap="viridis", vmin=0, vmax=1)
            if sep is not None:
                ax.axhline(sep + 0.5, color="white", linewidth=1)
                ax.axvline(sep + 0.5, color="white", linewidth=1)
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=10)
            ax.set_xticks(range(n), tokens, rotation=90, fontsize=fontsize)
            ax.set_yticks(range(n), tokens, fontsize=fontsize)
    fig.colorbar(im, ax=axes, shrink=0.6, label="attention weight (each row sums to 1)")
    shown = "" if n == len(maps[0][0]) else f" (the first {n} of {len(maps[0][0])} tokens)"
    fig.suptitle(f"Where each token (row) looks (columns){shown}; white lines: segment A | segment B")
    return fig


def attention_example(model, tokenizer, text_a: str, text_b: str):
    """(attentions, tokens) of the model on one sentence pair."""
    batch = tokenizer.batch_encode([text_a], [text_b])
    out = model.forward(batch, output_attentions=True)
    return out.attentions, tokenizer.convert_ids_to_tokens(batch["input_ids"][0])


SHARES = {"cls": "[CLS]", "sep": "[SEP]", "previous": "the previous token", "next": "the next token",
          "other_segment": "the other segment"}


def _share_sums(attentions, batch, cls_id: int, sep_id: int) -> dict:
    """{name: (sum over query tokens of the weight they give to `name`, (L, A); number of those queries)}."""
    att = np.stack([to_host(a) for a in attentions]).astype(np.float64)  # (L, B, A, T, T)
    ids, seg = np.asarray(batch["input_ids"]), np.asarray(batch["token_type_ids"])  # (B, T)
    real = np.asarray(batch["attention_mask"]) > 0  # (B, T); real tokens come first, then padding
    B, T = ids.shape
    query, key = np.arange(T)[:, None], np.arange(T)[None, :]
    has_next = real & np.pad(real[:, 1:], ((0, 0), (0, 1)))  # (B, T)
    cases = {  # name: (which keys count for each query (B, T, T), which queries are averaged over (B, T))
        "cls": (np.broadcast_to((ids == cls_id)[:, None, :], (B, T, T)), real),
        "sep": (np.broadcast_to((ids == sep_id)[:, None, :], (B, T, T)), real),
        "previous": (np.broadcast_to(key == query - 1, (B, T, T)), real & (np.arange(T) > 0)),
        "next": (np.broadcast_to(key == query + 1, (B, T, T)), has_next),
        "other_segment": ((seg[:, :, None] != seg[:, None, :]) & real[:, None, :], real),
    }
    sums = {}
    for name, (keys, queries) in cases.items():
        per_query = np.einsum("lbhij,bij->lbhi", att, keys.astype(np.float64))  # (L, B, A, T)
        sums[name] = (np.einsum("lbhi,bi->lh", per_query, queries.astype(np.float64)), int(queries.sum()))
    return sums


def attention_shares(attentions, batch, cls_id: int, sep_id: int) -> dict:
    """Clark et al. 2019, "What does BERT look at?": for each layer and head, the attention weight
    a token gives, on average, to [CLS], to [SEP], to the token before it, to the token after it,
    and to the tokens of the other segment.

    attentions: per layer, (B, A, T, T); batch: input_ids, token_type_ids, attention_mask, each (B, T).
    Returns {name in SHARES: (L, A) shares in [0, 1]}, averaged over the real tokens (for
    "previous" and "next": over those that have a previous / next token).
    """
    return {name: total / max(count, 1) for name, (total, count) in _share_sums(attentions, batch, cls_id, sep_id).items()}


def head_shares(model, tokenizer, pairs, batch_size: int = 16) -> dict:
    """attention_shares of `model` averaged over sentence pairs [(text_a, text_b), ...], run
    batch_size pairs at a time: {name: (L, A)}."""
    max_length = min(128, model.config.max_position_embeddings)
    totals = {}
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        batch = tokenizer.batch_encode([a for a, _ in chunk], [b for _, b in chunk], max_length=max_length)
        out = model.forward(batch, output_attentions=True)
        for name, (total, count) in _share_sums(out.attentions, batch, tokenizer.cls_id, tokenizer.sep_id).items():
            before = totals.get(name, (0.0, 0))
            totals[name] = (before[0] + total, before[1] + count)
    return {name: total / max(count, 1) for name, (total, count) in totals.items()}


def head_summary_figure(model, tokenizer, pairs) -> Figure:
    """Where each head looks, averaged over sentence pairs: one heat map (layer x head) per target
    of attention_shares, each titled with what a head that spread its attention evenly would score."""
    shares = head_shares(model, tokenizer, pairs)
    # the same numbers for even attention over the real tokens: the line a head must clear to "look at" something
    batch = tokenizer.batch_encode([a for a, _ in pairs], [b for _, b in pairs],
                                   max_length=min(128, model.config.max_position_embeddings))
    real = batch["attention_mask"].astype(np.float64)  # (B, T)
    even = (real[:, None, :] / real.sum(1)[:, None, None]) * real[:, :, None]  # (B, T, T): rows of real queries
    uniform = attention_shares([even[:, None]], batch, tokenizer.cls_id, tokenizer.sep_id)
    L, A = next(iter(shares.values())).shape
    fig = Figure(figsize=(len(SHARES) * max(2.4, 0.45 * A + 1.0) + 1.2, 0.45 * L + 2.6), layout="constrained")
    axes = fig.subplots(1, len(SHARES), squeeze=False)[0]
    for ax, (name, label) in zip(axes, SHARES.items()):
        im = ax.imshow(shares[name], cmap="viridis", vmin=0, vmax=1)
        if L * A <= 150:
            for layer in range(L):
                for head in range(A):
                    value = shares[name][layer, head]
                    ax.text(head, layer, f"{value:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if value > 0.5 else "white")
        ax.set_title(f"to {label}\n(even attention: {float(uniform[name][0, 0]):.2f})", fontsize=10)
        ax.set_xticks(range(A), [str(h + 1) for h in range(A)])
        ax.set_yticks(range(L), [str(layer + 1) for layer in range(L)])
        ax.set_xlabel("head")
    axes[0].set_ylabel("layer")
    fig.colorbar(im, ax=axes, shrink=0.8, label="mean attention weight of a token")
    fig.suptitle(f"Where the heads look: the mean attention weight a token gives to ..., over {len(pairs)} "
                 "sentence pairs\n(as in Clark et al. 2019, What does BERT look at?)", fontsize=11)
    return fig


def held_out_pairs(run_dir, n: int = 64) -> list:
    """Up to n (sentence, next sentence) pairs from a pre-training run's held-out documents,
    taken in turn from each document. Empty if its corpus file cannot be read any more."""
    cfg = read_json(Path(run_dir) / "train_config.json", "training config")
    try:
        docs = (generate_corpus(cfg["num_documents"], seed=cfg["seed"]) if cfg["corpus"] is None
                else read_documents(cfg["corpus"], cfg["corpus_format"]))
    except (OSError, ValueError):
        return []
    # the run held out at least the last round(len * eval_fraction) documents (at least 1; see train.load_corpus)
    held = split_documents(docs, cfg["eval_fraction"])[1]
    longest = max((len(d) for d in held), default=0)
    return [(d[i], d[i + 1]) for i in range(longest - 1) for d in held if i + 1 < len(d)][:n]


# ------------------------------------------------------------------ a run folder
def plot_run(run_dir, model=None, tokenizer=None, example=("Oslo is a city in Norway.", "It is famous for its harbor."),
             pairs=None) -> dict:
    """Write masking.png, training.png, attention.png and heads.png into a pre-training run folder;
    returns the figures. pairs: the sentence pairs heads.png averages over (default: held_out_pairs).

    A language-model run (objective left_to_right or right_to_left) gets training.png only, and
    attention.png when it reads left to right: it masks nothing (no masking.png), and heads.png's
    shares and a right-to-left model's attention maps (in reading order) would need reading
    backwards."""
    run_dir = Path(run_dir)
    if model is None or tokenizer is None:
        run = load_run(run_dir, kind="pretrain")
        model, tokenizer = run.model, run.tokenizer
    config = model.config
    figures = {}
    stats_path = run_dir / "masking_stats.json"
    if stats_path.is_file():
        figures["masking"] = masking_figure(read_json(stats_path, "masking statistics"))
    baselines_path = run_dir / "baselines.json"  # runs before it was written draw no guessing lines
    baselines = read_json(baselines_path, "baselines") if baselines_path.is_file() else None
    train_config = read_json(run_dir / "train_config.json", "training config")
    figures["training"] = training_figure(
        read_metrics(run_dir / "metrics.jsonl"), config.vocab_size, baselines,
        dropout=config.hidden_dropout_prob > 0 or config.attention_probs_dropout_prob > 0,
        max_grad_norm=train_config.get("max_grad_norm"))
    objective = train_config.get("objective", "mlm_nsp")
    if objective != "right_to_left":
        figures["attention"] = attention_figure(*attention_example(model, tokenizer, *example))
    if objective == "mlm_nsp":
        pairs = pairs if pairs is not None else held_out_pairs(run_dir) or [example]
        figures["heads"] = head_summary_figure(model, tokenizer, pairs)
    for name, fig in figures.items():
        fig.savefig(run_dir / f"{name}.png", dpi=90)
    return figures


# ------------------------------------------------------------------ fine-tuning
def finetune_figure(runs: dict) -> Figure:
    """Fine-tuning curves of one or more runs on shared axes: {label: read_metrics(...)}: the loss,
    and each held-out metric the runs logged (exact match and F1 for QA, accuracy for classification).
    """
    first = next(iter(runs.values()))["eval"]
    keys = [k for k in (first[0] if first else {}) if k not in ("step", "split", "loss", "lr", "tokens_per_second")]
    fig = Figure(figsize=(6 * (1 + len(keys)), 4.5), layout="constrained")
    axes = fig.subplots(1, 1 + len(keys), squeeze=False)[0]
    for label, metrics in runs.items():
        train, held = metrics["train"], metrics["eval"]
        line, = axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], alpha=0.6, label=f"{label}: train")
        if held and "loss" in held[0]:
            axes[0].plot([r["step"] for r in held], [r["loss"] for r in held], "o-", color=line.get_color(),
                         label=f"{label}: held-out")
        for ax, key in zip(axes[1:], keys):
            ax.plot([r["step"] for r in held], [r[key] for r in held], "o-", color=line.get_color(), label=label)
    axes[0].set_title("Fine-tuning loss")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("cross-entropy")
    axes[0].legend()
    for ax, key in zip(axes[1:], keys):
        ax.set_title(METRIC_TITLES.get(key, f"Held-out {key}"))
        ax.set_xlabel("step")
        ax.legend()
    return fig


METRIC_TITLES = {"exact_match": "Held-out exact match (%)", "f1": "Held-out F1 (%)", "accuracy": "Held-out accuracy"}
PERCENT_METRICS = {"exact_match", "f1"}  # reported in percent; accuracy is a share


def transfer_figure(summary: dict) -> Figure:
    """The transfer-learning lesson in one plot: the held-out headline metric (exact match for QA)
    against the number of labelled training examples, fine-tuned from pre-training and from
    scratch, each point with its ±2σ binomial error bar.

    summary: a transfer experiment's transfer.json: {"task", "headline", "unit", "steps",
    "held_out", "sizes": {size: {"pretrained": {"eval": {...}}, "scratch": {...}}}}.
    """
    key, n = summary["headline"], summary["held_out"]
    scale = 100.0 if key in PERCENT_METRICS else 1.0
    sizes = sorted(summary["sizes"], key=int)
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for start, label, marker in (("pretrained", "from pre-training", "o-"), ("scratch", "from scratch", "s--")):
        scores = np.array([summary["sizes"][s][start]["eval"][key] for s in sizes])
        p = np.clip(scores / scale, 0, 1)
        ax.errorbar([int(s) for s in sizes], scores, yerr=2 * scale * np.sqrt(p * (1 - p) / n), fmt=marker,
                    capsize=4, linewidth=2, markersize=7, label=label)
    ax.set_xscale("log")
    ax.set_xticks([int(s) for s in sizes], [f"{int(s):,}" for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel(f"labelled training {summary['unit']} (log scale)", fontsize=11)
    ax.set_ylabel(METRIC_TITLES.get(key, key).replace("Held-out ", "held-out "), fontsize=11)
    ax.tick_params(labelsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=10)
    ax.set_title(f"Transfer learning ({summary['task']}): {summary['steps']} fine-tuning steps each;\n"
                 f"scored on {n} held-out {summary['unit']}, bars ±2σ", fontsize=11)
    return fig
