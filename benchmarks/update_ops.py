"""AdamW, global-norm clipping and the embedding scatter-add of a `mini` step: minibert against PyTorch.

    python benchmarks/update_ops.py

The parameter update and the embedding gradients are the parts of a step that are neither
matrix products nor layers. Each is timed on the `mini` model's shapes (11.3 M parameters in
62 tensors; 4,096 token ids), minibert on 1 thread and on all of them, PyTorch on as many,
the gradients restored before every call (clipping scales them in place). Medians of 15 calls.

Needs the reference extra (torch). A benchmark, not a test.
"""

from __future__ import annotations

import os
import time

import minibert as mb  # before numpy, so its OPENBLAS_THREAD_TIMEOUT applies (see minibert/backend.py)
import numpy as np
from minibert import backend
from minibert.optim import AdamW, clip_by_global_norm


def median_ms(fn, setup=lambda: None, calls=15):
    setup()
    fn()  # warm up
    times = []
    for _ in range(calls):
        setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main():
    import torch

    cores = backend.threads
    torch.set_num_threads(cores)
    model = mb.BertForPreTraining(mb.BertConfig.preset("mini", vocab_size=30522))
    rng = np.random.default_rng(0)
    fresh = {k: rng.standard_normal(p.shape).astype(np.float32) for k, p in model.params.items()}
    grads = {k: g.copy() for k, g in fresh.items()}

    def restore():
        for k in grads:
            np.copyto(grads[k], fresh[k])

    ids = rng.integers(5, 30522, 4096)  # a batch of 32 x 128 random word ids
    text_ids = np.minimum(rng.zipf(1.3, 4096), 30522) - 1  # as in text: a few ids hit hundreds of times
    types = (np.arange(128) >= 64).astype(np.int64)[None].repeat(32, 0).reshape(-1)  # two segments
    rows = rng.standard_normal((4096, 256)).astype(np.float32)
    table, small = np.zeros((30522, 256), np.float32), np.zeros((2, 256), np.float32)

    results = {}
    for n in sorted({1, cores}):
        with backend.thread_settings(n=n):
            opt = AdamW(model.params)
            results[f"clip_by_global_norm, {n} thread(s)"] = median_ms(lambda: clip_by_global_norm(grads, 1.0), restore)
            results[f"AdamW.step, {n} thread(s)"] = median_ms(lambda: opt.step(model.params, grads, 1e-6), restore)
    results["scatter_add, word ids into (30522, 256)"] = median_ms(lambda: backend.scatter_add(table, ids, rows))
    results["scatter_add, Zipf-distributed ids"] = median_ms(lambda: backend.scatter_add(table, text_ids, rows))
    results["np.add.at, Zipf-distributed ids"] = median_ms(lambda: np.add.at(table, text_ids, rows))
    results["scatter_add, token types into (2, 256)"] = median_ms(lambda: backend.scatter_add(small, types, rows))
    results["np.add.at, token types into (2, 256)"] = median_ms(lambda: np.add.at(small, types, rows))

    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in model.params.values()]
    torch_fresh = [torch.from_numpy(g.copy()) for g in fresh.values()]
    for p, g in zip(params, torch_fresh):
        p.grad = g.clone()

    def torch_restore():
        for p, g in zip(params, torch_fresh):
            p.grad.copy_(g)

    results[f"torch clip_grad_norm_, {cores} thread(s)"] = median_ms(lambda: torch.nn.utils.clip_grad_norm_(params, 1.0),
                                                                      torch_restore)
    for foreach, how in ((None, "the default, a loop over tensors on the CPU"), (True, "foreach=True")):
        opt = torch.optim.AdamW(params, lr=1e-6, eps=1e-6, weight_decay=0.01, foreach=foreach)
        results[f"torch AdamW.step ({how}), {cores} thread(s)"] = median_ms(opt.step, torch_restore)
    t_ids, t_types, t_rows = torch.from_numpy(ids), torch.from_numpy(types), torch.from_numpy(rows)
    t_table, t_small = torch.from_numpy(table), torch.from_numpy(small)
    results["torch index_add_, word ids"] = median_ms(lambda: t_table.index_add_(0, t_ids, t_rows))
    results["torch index_add_, Zipf-distributed ids"] = median_ms(
        lambda: t_table.index_add_(0, torch.from_numpy(text_ids), t_rows))
    results["torch index_add_, token types"] = median_ms(lambda: t_small.index_add_(0, t_types, t_rows))

    print(f"{os.cpu_count()} cores; numpy {np.__version__}, torch {torch.__version__}; mini: "
          f"{sum(p.size for p in model.params.values()) / 1e6:.1f} M parameters in {len(grads)} tensors\n")
    for name, ms in results.items():
        print(f"{name:48} {ms:7.2f} ms")


if __name__ == "__main__":
    main()
