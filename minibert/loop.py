"""The training loop that pre-training and every fine-tuning task share.

One step:  batch -> forward (dropout on) -> loss -> backward -> clip the global norm -> AdamW.

Around the step: the learning-rate schedule, a check that the loss is finite, a line in
metrics.jsonl every `log_interval` steps, a held-out evaluation every `eval_interval`
steps, a checkpoint every `checkpoint_interval` steps, and Ctrl-C, which finishes the
step, saves a checkpoint and stops. What differs between tasks is passed in: where the
batches come from, how to evaluate, and which numbers of a step's output to log.

Randomness is derived from (seed, step): each batch's masks and dropout come from their
own seeds (`step_seed`), and the data order from (seed, epoch). So a checkpoint's step and
data position are the whole random state, and a resumed run repeats exactly what an
uninterrupted one does.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass

import numpy as np

from . import backend
from .optim import clip_by_global_norm, linear_warmup_decay
from .runs import append_metrics, save_checkpoint

# the random streams of a step: each gets its own seed from (seed, step, stream)
MASKS, DROPOUT, MASKING_SAMPLE = 0, 1, 2


def step_seed(seed: int, step: int, stream: int) -> int:
    """An independent seed for each (seed, step, stream)."""
    return (seed * 1_000_003 + step) * 4 + stream


class TrainingError(RuntimeError):
    """Training cannot go on (for example the loss became NaN); the message says why and what was kept."""


class StopRequest:
    """Ctrl-C sets a flag; the loop finishes the step, saves, and stops. A second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self._old = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def progress_bar(enabled: bool, initial: int, total: int, desc: str):
    """A tqdm bar of steps (disabled: a bar that prints nothing)."""
    from tqdm import tqdm  # the plain bar: tqdm.auto wants ipywidgets in notebooks

    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled,
                mininterval=1.0, dynamic_ncols=True)


class MetricsWindow:
    """Running means of a step's numbers between two log lines, and tokens per second."""

    def __init__(self):
        self.n, self.seconds, self.tokens = 0, 0.0, 0
        self.sums: dict = {}

    def add(self, numbers: dict, batch: dict, seconds: float) -> None:
        self.n += 1
        self.seconds += seconds
        self.tokens += int(np.sum(batch["attention_mask"]))
        for k, v in numbers.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def means(self) -> dict:
        return {**{k: v / self.n for k, v in self.sums.items()}, "tokens_per_second": self.tokens / self.seconds}


def step_memory_bytes(model, batch_size: int, seq_length: int, predictions: int = 0) -> int:
    """A rough upper estimate of a training step's memory: parameters, gradients and AdamW's two
    moments, plus what each layer keeps for its backward (about 12 (B, T, H) arrays, 3 (B, T, F)
    arrays and 3 (B, A, T, T) attention maps) and the MLM logits with their softmax."""
    c = model.config
    B, T = batch_size, seq_length
    per_layer = 12 * B * T * c.hidden_size + 3 * B * T * c.intermediate_size + 3 * B * c.num_attention_heads * T * T
    elements = 4 * model.num_parameters() + c.num_hidden_layers * per_layer + 2 * B * predictions * c.vocab_size
    return elements * model.dtype.itemsize


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else None."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def refuse_if_too_big(model, batch_size: int, seq_length: int, predictions: int = 0, extra_bytes: int = 0) -> None:
    """Refuse, with the estimate, a run whose step cannot fit in this machine's free memory,
    rather than discovering it minutes in (or swapping the machine to a halt)."""
    need = step_memory_bytes(model, batch_size, seq_length, predictions) + extra_bytes
    free = available_memory_bytes()
    if free is not None and need > free:
        raise ValueError(f"--batch-size {batch_size} at --seq-length {seq_length} needs about {need / 2**30:.1f} GiB "
                         f"for one training step, and this machine has {free / 2**30:.1f} GiB free; "
                         "use a smaller --batch-size or --seq-length")


@dataclass
class LoopResult:
    step: int  # the last step taken
    last_eval: dict | None  # the last held-out metrics, None if no evaluation ran
    interrupted: bool  # stopped by Ctrl-C (or on_step's stop) before the last step
    last_saved: int  # the step of the latest checkpoint (0: none)


def train_loop(model, optimizer, batches, cfg, run_dir, evaluate, step_numbers, start_step: int = 0,
               progress: bool = True, desc: str = "train", on_step=None) -> LoopResult:
    """Train `model` from `start_step` to `cfg.steps`; returns where it stopped.

    batches: `next(step) -> batch` (host arrays) and `position() -> dict` (where the next batch
        comes from, saved in each checkpoint's state.json).
    cfg: the run's config: steps, lr, warmup_steps (None = 10% of steps), max_grad_norm, seed,
        log_interval, eval_interval, checkpoint_interval.
    evaluate(): held-out metrics as a dict of floats.
    step_numbers(out): the numbers of a step's output to average into each train log line.
    on_step(step, stop): called after every step; stop() asks the loop to save and stop as Ctrl-C does.
    """
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, cfg.steps // 10)
    metrics_path = run_dir / "metrics.jsonl"
    step, last_saved, last_eval = start_step, start_step, None
    window = MetricsWindow()

    def checkpoint(at_step):
        state = {"step": at_step, **batches.position(), "optimizer_step": optimizer.step_count, "seed": cfg.seed,
                 "rng": "derived from (seed, step): masks (seed, step, 0), dropout (seed, step, 1); "
                        "data order from (seed, epoch)"}
        save_checkpoint(run_dir, model, optimizer, state)

    bar = progress_bar(progress, step, cfg.steps, desc)
    with StopRequest() as stop:
        while step < cfg.steps and not stop.requested:
            step += 1
            lr = linear_warmup_decay(step, cfg.lr, warmup, cfg.steps)
            batch = batches.next(step)
            t0 = time.perf_counter()
            out = model.forward(batch, training=True, rng=backend.default_rng(step_seed(cfg.seed, step, DROPOUT)))
            loss = float(out.loss)
            if not math.isfinite(loss):
                kept = (f"the last good checkpoint (step {last_saved}) is kept in {run_dir / 'checkpoints'}"
                        if last_saved > 0 else "no checkpoint had been written yet")
                raise TrainingError(f"the loss became {loss} at step {step}; training stopped, {kept}; "
                                    "try a lower --lr")
            grads = model.backward()
            grad_norm = clip_by_global_norm(grads, cfg.max_grad_norm)
            optimizer.step(model.params, grads, lr)
            window.add({**step_numbers(out), "grad_norm": float(grad_norm)}, batch, time.perf_counter() - t0)

            if step % cfg.log_interval == 0 or step == cfg.steps:
                record = {"step": step, "split": "train", **window.means(), "lr": lr}
                append_metrics(metrics_path, record)
                shown = " ".join(f"{k} {v:.3f}" for k, v in record.items() if k not in ("step", "split", "lr",
                                                                                      "tokens_per_second", "grad_norm"))
                bar.set_postfix_str(f"{shown} lr {lr:.1e} {record['tokens_per_second']:,.0f} tok/s", refresh=False)
                window = MetricsWindow()
            if step % cfg.eval_interval == 0 or step == cfg.steps:
                last_eval = evaluate()
                append_metrics(metrics_path, {"step": step, "split": "eval", **last_eval, "lr": lr,
                                              "tokens_per_second": None})
            if step % cfg.checkpoint_interval == 0 or step == cfg.steps:
                checkpoint(step)
                last_saved = step
            bar.update(1)
            if on_step is not None:
                on_step(step, lambda: setattr(stop, "requested", True))
        interrupted = stop.requested and step < cfg.steps
        if interrupted and last_saved != step:
            checkpoint(step)
            last_saved = step
    bar.close()
    return LoopResult(step, last_eval, interrupted, last_saved)
