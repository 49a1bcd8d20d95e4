"""Tokens per second of one minibert pre-training step (forward, backward, clipping, AdamW).

    python benchmarks/train_step.py                    # tiny and mini, batch 32, length 128
    python benchmarks/train_step.py --configs tiny --seq-length 64 --vocab-size 3100

Prints the median over timed steps after warm-up steps. This is a benchmark, not a test:
the machine is shared and noisy, so compare numbers measured side by side.
"""

from __future__ import annotations

import argparse
import platform
import time

import minibert as mb  # before numpy, so its OPENBLAS_THREAD_TIMEOUT applies (see minibert/backend.py)
import numpy as np
from minibert.optim import AdamW, clip_by_global_norm


def make_batch(rng, B, T, P, V):
    """Random ids, two segments, P distinct masked positions per sequence."""
    positions = np.sort(np.stack([rng.choice(np.arange(1, T), P, replace=False) for _ in range(B)]), axis=1)
    return {
        "input_ids": rng.integers(5, V, (B, T)), "token_type_ids": (np.arange(T) >= T // 2).astype(np.int64)[None].repeat(B, 0),
        "attention_mask": np.ones((B, T), np.int64), "masked_lm_positions": positions,
        "masked_lm_labels": rng.integers(5, V, (B, P)), "masked_lm_weights": np.ones((B, P), np.float32),
        "next_sentence_label": rng.integers(0, 2, B),
    }


def time_steps(model, batch, steps, warmup):
    opt = AdamW(model.params)
    rng = mb.backend.default_rng(0)  # dropout masks are drawn where the parameters live
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        model.forward(batch, training=True, rng=rng)
        grads = model.backward()
        clip_by_global_norm(grads, 1.0)
        opt.step(model.params, grads, 1e-4)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def shape_options(ap: argparse.ArgumentParser) -> None:
    """The options both benchmarks share: which configs, and the batch's shape."""
    ap.add_argument("--configs", nargs="+", default=["tiny", "mini"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-length", type=int, default=128)
    ap.add_argument("--predictions", type=int, default=20)
    ap.add_argument("--vocab-size", type=int, default=30522)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shape_options(ap)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    mb.backend.tune_malloc()  # as minibert pretrain does
    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}, backend {mb.get_backend()}, "
          f"elementwise threads {mb.backend.threads}")
    print(f"batch {args.batch_size}, length {args.seq_length}, {args.predictions} predictions/sequence, "
          f"vocab {args.vocab_size}; median of {args.steps} steps")
    print(f"{'config':<8}{'params':>12}{'s/step':>10}{'tokens/s':>12}")
    for name in args.configs:
        config = mb.BertConfig.preset(name, vocab_size=args.vocab_size)
        model = mb.BertForPreTraining(config)
        batch = make_batch(np.random.default_rng(0), args.batch_size, args.seq_length, args.predictions, args.vocab_size)
        seconds = time_steps(model, batch, args.steps, args.warmup)
        tokens = args.batch_size * args.seq_length
        print(f"{name:<8}{model.num_parameters():>12,}{seconds:>10.3f}{tokens / seconds:>12,.0f}")


if __name__ == "__main__":
    main()
