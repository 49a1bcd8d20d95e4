"""Every figure minibert draws. Each function returns a matplotlib Figure (shown inline in a
notebook); plot_run writes them as PNG files into a run folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .backend import to_host
from .io import read_json
from .runs import load_run, read_metrics

KIND_LABELS = {"mask": "[MASK]", "random": "random token", "keep": "unchanged"}


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
    rate = np.array([np.nan if r is None else r for r in stats["selection_rate_by_position"]])
    ax.plot(rate, marker=".", linestyle="none")
    ax.axhline(stats["selected_fraction"], color="k", linestyle="--", label="overall rate")
    ax.set_xlabel("position in the sequence")
    ax.set_ylabel("chosen / maskable here")
    ax.set_title("Selection rate by position (should be flat)")
    ax.legend()

    ax = axes[1, 1]
    spans = np.array(stats["span_lengths"], dtype=int)
    if len(spans):
        ax.hist(spans, bins=np.arange(1, spans.max() + 2) - 0.5)
    ax.set_xlabel("length of a run of consecutive masked positions")
    ax.set_ylabel("runs")
    ax.set_title("Masked span lengths")
    return fig


def training_figure(metrics: dict, vocab_size: int) -> Figure:
    """Loss and accuracy curves for MLM and NSP (train and held-out), with chance levels, and the learning rate."""
    fig = Figure(figsize=(14, 8), layout="constrained")
    axes = fig.subplots(2, 3)
    train, held = metrics["train"], metrics["eval"]
    steps = lambda rs: [r["step"] for r in rs]  # noqa: E731
    panels = [
        (axes[0, 0], "mlm_loss", "Masked LM loss", math.log(vocab_size), f"chance: ln V = {math.log(vocab_size):.2f}"),
        (axes[0, 1], "nsp_loss", "Next sentence loss", math.log(2), "chance: ln 2 = 0.69"),
        (axes[1, 0], "mlm_accuracy", "Masked LM accuracy", None, None),
        (axes[1, 1], "nsp_accuracy", "Next sentence accuracy", 0.5, "chance: 0.5"),
    ]
    for ax, key, title, chance, chance_label in panels:
        ax.plot(steps(train), [r[key] for r in train], label="train", alpha=0.7)
        ax.plot(steps(held), [r[key] for r in held], "o-", label="held-out")
        if chance is not None:
            ax.axhline(chance, color="gray", linestyle="--", label=chance_label)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend()
    axes[0, 0].set_ylabel("cross-entropy (nats)")
    axes[1, 0].set_ylabel("share predicted right")
    ax = axes[0, 2]
    ax.plot(steps(train), [r["lr"] for r in train])
    ax.set_title("Learning rate (warmup, then linear decay)")
    ax.set_xlabel("step")
    ax = axes[1, 2]
    ax.plot(steps(train), [r["tokens_per_second"] for r in train])
    ax.set_title("Speed")
    ax.set_xlabel("step")
    ax.set_ylabel("tokens per second")
    return fig


def attention_figure(attentions, tokens, max_heads: int = 12) -> Figure:
    """Every head of every layer for one sequence: row = layer, column = head; a row of a
    heat map is one query token, and its colors say how much it looks at each key token.

    attentions: per layer, (A, T, T) or (1, A, T, T); tokens: the T tokens.
    """
    maps = [to_host(a)[0] if to_host(a).ndim == 4 else to_host(a) for a in attentions]
    L, A = len(maps), min(maps[0].shape[0], max_heads)
    n = len(tokens)
    size = 0.18 * n + 1.5
    fig = Figure(figsize=(size * A + 1, size * L), layout="constrained")
    axes = np.array(fig.subplots(L, A, squeeze=False))
    for layer in range(L):
        for head in range(A):
            ax = axes[layer, head]
            im = ax.imshow(maps[layer][head][:n, :n], cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=9)
            ax.set_xticks(range(n), tokens, rotation=90, fontsize=6)
            ax.set_yticks(range(n), tokens, fontsize=6)
    fig.colorbar(im, ax=axes, shrink=0.6, label="attention weight (each row sums to 1)")
    fig.suptitle("Where each token (row) looks (columns)")
    return fig


def attention_example(model, tokenizer, text_a: str, text_b: str):
    """(attentions, tokens) of the model on one sentence pair."""
    batch = tokenizer.batch_encode([text_a], [text_b])
    out = model.forward(batch, output_attentions=True)
    return out.attentions, tokenizer.convert_ids_to_tokens(batch["input_ids"][0])


def plot_run(run_dir, model=None, tokenizer=None, example=("Oslo is a city in Norway.", "It is famous for its harbor.")) -> dict:
    """Write masking.png, training.png and attention.png into a run folder; returns the figures."""
    run_dir = Path(run_dir)
    if model is None or tokenizer is None:
        run = load_run(run_dir, kind="pretrain")
        model, tokenizer = run.model, run.tokenizer
    figures = {}
    stats_path = run_dir / "masking_stats.json"
    if stats_path.is_file():
        figures["masking"] = masking_figure(read_json(stats_path, "masking statistics"))
    figures["training"] = training_figure(read_metrics(run_dir / "metrics.jsonl"), model.config.vocab_size)
    figures["attention"] = attention_figure(*attention_example(model, tokenizer, *example))
    for name, fig in figures.items():
        fig.savefig(run_dir / f"{name}.png", dpi=90)
    return figures


def finetune_figure(runs: dict) -> Figure:
    """Fine-tuning curves of one or more runs on shared axes: {label: read_metrics(...)}: the loss,
    and each held-out metric the runs logged (exact match and F1 for QA, accuracy for classification).

    With a run from a pre-trained start and one from scratch this is the transfer-learning plot.
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
    titles = {"exact_match": "Held-out exact match (%)", "f1": "Held-out F1 (%)", "accuracy": "Held-out accuracy"}
    for ax, key in zip(axes[1:], keys):
        ax.set_title(titles.get(key, f"Held-out {key}"))
        ax.set_xlabel("step")
        ax.legend()
    return fig
