"""One pre-training step of minibert against PyTorch doing the same work, side by side.

    python benchmarks/vs_pytorch.py            # tiny and mini, batch 32, length 128, 20 predictions

Three contenders per config, same batch, same thread count, timed in interleaved rounds
(so machine noise hits all of them alike), medians reported:

  minibert             forward + backward + global-norm clipping + AdamW, NumPy float32
  torch eager          the same work: transformers' BertModel encoder, the MLM head applied to
                       the gathered masked positions only, NSP, clip_grad_norm_, torch.optim.AdamW
  transformers usual   BertForPreTraining(labels=...) as usually called: scores all B*T positions

Needs the reference extra (torch, transformers). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from train_step import make_batch, shape_options  # shared with the other benchmark (this folder is on sys.path)


def minibert_stepper(name, batch, V):
    import minibert as mb
    from minibert.optim import AdamW, clip_by_global_norm

    model = mb.BertForPreTraining(mb.BertConfig.preset(name, vocab_size=V))
    opt = AdamW(model.params)
    rng = mb.backend.default_rng(0)  # dropout masks are drawn where the parameters live (numpy or cupy)

    def step():
        model.forward(batch, training=True, rng=rng)
        grads = model.backward()
        clip_by_global_norm(grads, 1.0)
        opt.step(model.params, grads, 1e-4)
    return step


def _transformers_config(name, V):
    import transformers

    import minibert as mb

    c = mb.BertConfig.preset(name, vocab_size=V)
    return transformers.BertConfig(**{k: v for k, v in c.to_dict().items() if k not in ("architectures",)})


def torch_eager_stepper(name, batch, V, device="cpu"):
    """The same work as minibert_stepper in PyTorch eager mode: transformers' BertModel encoder, the
    MLM head on the gathered masked positions only, NSP, clip_grad_norm_, torch.optim.AdamW."""
    import torch
    import transformers

    t = {k: torch.tensor(v, device=device) for k, v in batch.items()}
    rows = torch.arange(t["input_ids"].shape[0], device=device)[:, None]
    # eager mode (no torch.compile), default attention
    model = transformers.BertForPreTraining(_transformers_config(name, V)).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, eps=1e-6, weight_decay=0.01)
    ce = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        seq, pooled = model.bert(input_ids=t["input_ids"], token_type_ids=t["token_type_ids"],
                                 attention_mask=t["attention_mask"], return_dict=False)[:2]
        h = seq[rows, t["masked_lm_positions"]]  # (B, P, H): only the masked positions
        logits = model.cls.predictions(h)
        loss = ce(logits.reshape(-1, V), t["masked_lm_labels"].reshape(-1))
        loss = loss + ce(model.cls.seq_relationship(pooled), t["next_sentence_label"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return step


def transformers_usual_stepper(name, batch, V):
    """BertForPreTraining(labels=...) as usually called: it scores all B*T positions."""
    import torch
    import transformers

    t = {k: torch.tensor(v) for k, v in batch.items()}
    rows = torch.arange(t["input_ids"].shape[0])[:, None]
    model = transformers.BertForPreTraining(_transformers_config(name, V)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, eps=1e-6, weight_decay=0.01)
    labels = torch.full_like(t["input_ids"], -100)
    labels[rows, t["masked_lm_positions"]] = t["masked_lm_labels"]

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=t["input_ids"], token_type_ids=t["token_type_ids"], attention_mask=t["attention_mask"],
                    labels=labels, next_sentence_label=t["next_sentence_label"])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shape_options(ap)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--tune-malloc", action=argparse.BooleanOptionalAction, default=True,
                    help="keep freed memory in the process, as minibert pretrain does (affects all three)")
    args = ap.parse_args()
    if args.tune_malloc:
        from minibert.backend import tune_malloc

        tune_malloc()

    import torch

    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(args.threads)
        blas = ", ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info())
    except ImportError:
        blas = "threadpoolctl not installed"
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, {args.threads} threads; numpy {np.__version__} [{blas}]; "
          f"torch {torch.__version__}")
    print(f"batch {args.batch_size}, length {args.seq_length}, {args.predictions} predictions/sequence, vocab "
          f"{args.vocab_size}; median over {args.rounds} interleaved rounds; malloc tuned: {args.tune_malloc}\n")
    print(f"{'config':<6} {'minibert':>10} {'torch eager':>12} {'transformers':>13}   {'minibert/eager':>15} {'minibert/transformers':>22}")
    for name in args.configs:
        V = args.vocab_size
        batch = make_batch(np.random.default_rng(0), args.batch_size, args.seq_length, args.predictions, V)
        steppers = {"minibert": minibert_stepper(name, batch, V), "eager": torch_eager_stepper(name, batch, V),
                    "usual": transformers_usual_stepper(name, batch, V)}
        for step in steppers.values():  # warm up
            step()
        times = {k: [] for k in steppers}
        for _ in range(args.rounds):
            for k, step in steppers.items():
                t0 = time.perf_counter()
                step()
                times[k].append(time.perf_counter() - t0)
        med = {k: float(np.median(v)) for k, v in times.items()}
        print(f"{name:<6} {med['minibert']:>9.3f}s {med['eager']:>11.3f}s {med['usual']:>12.3f}s   "
              f"{med['minibert'] / med['eager']:>15.2f} {med['minibert'] / med['usual']:>22.2f}")


if __name__ == "__main__":
    main()
