"""One pre-training step of minibert against PyTorch doing the same work, side by side.

    python benchmarks/vs_pytorch.py            # tiny and mini, batch 32, length 128, 20 predictions
    python benchmarks/vs_pytorch.py --scaling  # mini at lengths 64..512, same tokens per batch: time and peak RSS

Three contenders per config, same batch, same thread count, timed in interleaved rounds
(so machine noise hits all of them alike), medians reported:

  minibert             forward + backward + global-norm clipping + AdamW, NumPy float32
  torch eager          the same work: transformers' BertModel encoder, the MLM head applied to
                       the gathered masked positions only, NSP, clip_grad_norm_, torch.optim.AdamW
  transformers usual   BertForPreTraining(labels=...) as usually called: scores all B*T positions

With --scaling: `mini` (or the first of --configs) at lengths 64, 128, 256 and 512, the batch
shrunk so every batch holds the same number of tokens (batch-size x seq-length) and the
predictions per sequence grown with the length; minibert against torch eager, each measured in
a fresh subprocess of its own, so that the peak resident memory (RSS) it reports is that
contender's alone.

minibert's elementwise work runs on MINIBERT_THREADS threads (default: the cores this process
may use; 1 = off); the header says how many it used.

Needs the reference extra (torch, transformers). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import minibert  # noqa: F401  before numpy, so its OPENBLAS_THREAD_TIMEOUT applies (see minibert/backend.py)
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


def _limit_threads(threads, torch_too=True):
    """torch and BLAS on `threads` threads; returns a line describing the BLAS libraries."""
    if torch_too:
        import torch

        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(threads)
        return ", ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info())
    except ImportError:
        return "threadpoolctl not installed"


def measure_one(args):
    """Run in a subprocess by --scaling: time one contender alone, print its median step and peak RSS as JSON."""
    if args.tune_malloc:
        from minibert.backend import tune_malloc

        tune_malloc()
    _limit_threads(args.threads, torch_too=args.measure_one == "eager")  # minibert's RSS without torch loaded
    V = args.vocab_size
    batch = make_batch(np.random.default_rng(0), args.batch_size, args.seq_length, args.predictions, V)
    step = {"minibert": minibert_stepper, "eager": torch_eager_stepper}[args.measure_one](args.configs[0], batch, V)
    step()  # warm up
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": float(np.median(times)), "peak_rss_mib": peak_mib}))


def scaling(args):
    """mini at lengths 64..512 with the same tokens per batch: minibert vs torch eager, each in its own process."""
    tokens = args.batch_size * args.seq_length
    name = args.configs[0]
    print(f"{name}: {tokens} tokens per batch, {args.predictions} predictions per {args.seq_length} tokens, "
          f"median of {args.rounds} steps after one warm-up step, each contender in its own subprocess\n")
    print(f"{'length':>6} {'batch':>6} {'minibert':>10} {'torch eager':>12} {'minibert/eager':>15} "
          f"{'minibert RSS':>13} {'eager RSS':>10}")
    for T in (64, 128, 256, 512):
        B = max(1, tokens // T)
        P = max(1, round(args.predictions * T / args.seq_length))
        result = {}
        for who in ("minibert", "eager"):
            cmd = [sys.executable, __file__, "--measure-one", who, "--configs", name, "--batch-size", str(B),
                   "--seq-length", str(T), "--predictions", str(P), "--vocab-size", str(args.vocab_size),
                   "--rounds", str(args.rounds), "--threads", str(args.threads),
                   "--tune-malloc" if args.tune_malloc else "--no-tune-malloc"]
            env = {**os.environ, "OPENBLAS_NUM_THREADS": str(args.threads)}  # in case threadpoolctl is missing
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
            result[who] = json.loads(out.strip().splitlines()[-1])
        m, e = result["minibert"], result["eager"]
        print(f"{T:>6} {B:>6} {m['seconds']:>9.3f}s {e['seconds']:>11.3f}s {m['seconds'] / e['seconds']:>15.2f} "
              f"{m['peak_rss_mib']:>9.0f} MiB {e['peak_rss_mib']:>6.0f} MiB", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shape_options(ap)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="threads for torch and BLAS (minibert's elementwise threads: MINIBERT_THREADS)")
    ap.add_argument("--tune-malloc", action=argparse.BooleanOptionalAction, default=True,
                    help="keep freed memory in the process, as minibert pretrain does (affects all three)")
    ap.add_argument("--scaling", action="store_true",
                    help="mini (the first of --configs) at lengths 64, 128, 256, 512 with batch-size x seq-length "
                         "tokens per batch: minibert vs torch eager, time and peak RSS, each in its own subprocess")
    ap.add_argument("--measure-one", choices=("minibert", "eager"), help=argparse.SUPPRESS)  # used by --scaling
    args = ap.parse_args()
    if args.measure_one:
        return measure_one(args)
    if args.scaling and args.configs == ["tiny", "mini"]:
        args.configs = ["mini"]
    if args.tune_malloc:
        from minibert.backend import tune_malloc

        tune_malloc()

    import torch

    from minibert import backend

    blas = _limit_threads(args.threads)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, {args.threads} threads; numpy {np.__version__} [{blas}]; "
          f"torch {torch.__version__}; minibert elementwise threads: {backend.threads}")
    if args.scaling:
        return scaling(args)
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
