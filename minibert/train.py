"""Pre-training: the loop `minibert pretrain` runs, its checkpoints, and resuming.

One step:  batch -> forward (dropout on) -> loss -> backward -> clip the global norm -> AdamW.

A run folder holds everything needed to continue or use the model:

    train_config.json   the PretrainConfig the run was started with
    config.json         the model's BertConfig (Hugging Face layout)
    vocab.txt           the tokenizer's vocabulary
    metrics.jsonl       one JSON object per logged step ("split": "train" or "eval")
    masking_stats.json  what masking did to a sample of training batches
    checkpoints/        step-NNNNNN/ {params, optimizer}.safetensors + state.json, and `latest`
    *.png               the plots (minibert plot RUN_DIR draws them again)

Randomness is derived from (seed, step): the data order from (seed, epoch), each batch's
masks and dropout from (seed, step). So a checkpoint's step and data position are the
whole random state, and a resumed run repeats exactly what an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backend
from .config import BertConfig
from .data import (
    MaskingConfig,
    collate,
    create_pretraining_instances,
    generate_corpus,
    masking_statistics,
    read_documents,
    split_documents,
    tokenize_documents,
)
from .io import CheckpointError, load_arrays, save_arrays, write_text_atomic
from .model import BertForPreTraining
from .optim import AdamW, clip_by_global_norm, linear_warmup_decay
from .tokenization import WordPieceTokenizer, train_wordpiece


class TrainingError(RuntimeError):
    """Training cannot go on (for example the loss became NaN); the message says why and what was kept."""


@dataclass(frozen=True)
class PretrainConfig:
    out: str = "runs/pretrain"  # the run folder
    corpus: str | None = None  # a text file; None = the generated world (no download)
    corpus_format: str = "auto"  # "lines" (google's), "prose", or "auto"
    num_documents: int = 3000  # size of the generated corpus
    eval_fraction: float = 0.1  # documents held out for evaluation
    vocab: str | None = None  # a vocab.txt; None = train a WordPiece vocab on the training documents
    vocab_size: int = 4000  # for a trained vocab (the generated world needs ~3,100: all whole words)
    model: str = "tiny"  # a preset (tiny, mini, small, base) or a config.json (vocab_size may be left out)
    steps: int = 2000  # about 3 minutes on 2 CPU cores
    batch_size: int = 32
    seq_length: int = 64  # 64 doubles the steps per second of 128; the world's documents are short
    lr: float = 2e-3  # high for BERT, right for a 2-layer model trained for minutes
    warmup_steps: int | None = None  # None = 10% of steps
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    bias_correction: bool = True
    masking: str = "exact"  # exact | bernoulli | whole_word | span
    mask_prob: float = 0.15
    mask_token_prob: float = 0.8
    random_token_prob: float = 0.1
    max_predictions: int = 20
    dynamic_masking: bool = True  # re-draw masks for every batch (False: fixed per epoch)
    short_seq_prob: float = 0.1
    eval_interval: int = 250
    eval_batches: int = 20  # 640 held-out pairs: NSP accuracy to about +-0.014
    log_interval: int = 10
    checkpoint_interval: int = 500
    seed: int = 0
    backend: str = "numpy"

    def masking_config(self) -> MaskingConfig:
        return MaskingConfig(strategy=self.masking, mask_prob=self.mask_prob, mask_token_prob=self.mask_token_prob,
                             random_token_prob=self.random_token_prob, max_predictions=self.max_predictions)

    def validate(self) -> None:
        for name in ("steps", "batch_size", "eval_interval", "eval_batches", "log_interval", "checkpoint_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.seq_length < 8:
            raise ValueError(f"--seq-length must be >= 8, got {self.seq_length}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"--eval-fraction must be in (0, 1), got {self.eval_fraction}")
        self.masking_config()  # raises on bad masking options


def _step_seed(seed: int, step: int, stream: int) -> int:
    """An independent seed for each (step, stream): stream 0 masks, stream 1 dropout."""
    return (seed * 1_000_003 + step) * 4 + stream


# ------------------------------------------------------------------ run setup
def load_corpus(cfg: PretrainConfig):
    """(train_documents, eval_documents) as lists of sentences."""
    if cfg.corpus is None:
        docs = generate_corpus(cfg.num_documents, seed=cfg.seed)
    else:
        docs = read_documents(cfg.corpus, cfg.corpus_format)
        if not docs:
            raise ValueError(f"{cfg.corpus}: the corpus is empty (no non-blank lines)")
    if len(docs) < 4:
        raise ValueError(f"{cfg.corpus or 'corpus'}: {len(docs)} document(s); pre-training needs at least 4 "
                         "(random next sentences come from another document, in training and in the held-out split)")
    return split_documents(docs, cfg.eval_fraction if len(docs) * cfg.eval_fraction >= 2 else 2 / len(docs))


def build_tokenizer(cfg: PretrainConfig, train_docs) -> WordPieceTokenizer:
    if cfg.vocab is not None:
        return WordPieceTokenizer.from_vocab_file(cfg.vocab)
    vocab = train_wordpiece((" ".join(d) for d in train_docs), cfg.vocab_size)
    return WordPieceTokenizer(vocab)


def build_model_config(cfg: PretrainConfig, tokenizer) -> BertConfig:
    path = Path(cfg.model)
    if cfg.model.endswith(".json") or path.is_file():
        config = BertConfig.from_json_file(path)
        given = json.loads(path.read_text())
        if "vocab_size" not in given:  # a config without a vocabulary size takes the tokenizer's
            config = config.replace(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_id)
        elif config.vocab_size != len(tokenizer):
            raise ValueError(f"{path}: vocab_size {config.vocab_size} does not match the vocabulary's "
                             f"{len(tokenizer)} tokens")
    else:
        config = BertConfig.preset(cfg.model, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_id)
    if config.max_position_embeddings < cfg.seq_length:
        raise ValueError(f"--seq-length {cfg.seq_length} exceeds the model's max_position_embeddings "
                         f"{config.max_position_embeddings}")
    return config


class BatchStream:
    """Training batches in a fixed order: epoch e re-pairs the sentences with seed (seed, e),
    shuffles, and cuts the pairs into batches. Position = (epoch, offset)."""

    def __init__(self, docs, tokenizer, cfg: PretrainConfig, epoch: int = 0, offset: int = 0):
        self.docs, self.tokenizer, self.cfg = docs, tokenizer, cfg
        self.masking = cfg.masking_config()
        self.epoch, self.offset = epoch, offset
        self.instances = self._make(epoch)

    def _make(self, epoch):
        masking = None if self.cfg.dynamic_masking else self.masking
        return create_pretraining_instances(self.docs, self.tokenizer, self.cfg.seq_length, seed=self.cfg.seed * 1000 + epoch,
                                            short_seq_prob=self.cfg.short_seq_prob, masking=masking)

    def restart(self) -> None:
        """Back to the first batch of epoch 0 (its pairs are kept when they are still here)."""
        if self.epoch != 0:
            self.instances = self._make(0)
        self.epoch, self.offset = 0, 0

    def next(self, step: int) -> dict:
        B = self.cfg.batch_size
        if self.offset + B > len(self.instances):
            self.epoch, self.offset = self.epoch + 1, 0
            self.instances = self._make(self.epoch)
            if len(self.instances) < B:
                raise ValueError(f"the corpus yields only {len(self.instances)} training pairs, fewer than "
                                 f"--batch-size {B}")
        chunk = self.instances[self.offset:self.offset + B]
        self.offset += B
        rng = np.random.default_rng(_step_seed(self.cfg.seed, step, 0))
        masking = self.masking if self.cfg.dynamic_masking else None
        return collate(chunk, self.tokenizer, max_predictions=self.cfg.max_predictions, masking=masking, rng=rng)


def make_eval_batches(eval_docs, tokenizer, cfg: PretrainConfig) -> list:
    """Fixed held-out batches (static masks), so every evaluation scores the same predictions."""
    instances = create_pretraining_instances(eval_docs, tokenizer, cfg.seq_length, seed=cfg.seed + 7919,
                                             dupe_factor=max(1, math.ceil(cfg.eval_batches * cfg.batch_size / max(1, 2 * len(eval_docs)))),
                                             short_seq_prob=cfg.short_seq_prob, masking=cfg.masking_config())
    instances = instances[: cfg.eval_batches * cfg.batch_size]
    B = cfg.batch_size
    return [collate(instances[i:i + B], tokenizer, max_predictions=cfg.max_predictions) for i in range(0, len(instances), B)]


def evaluate(model, batches) -> dict:
    """Held-out metrics: losses and accuracies weighted by predictions (MLM) and pairs (NSP)."""
    sums = dict(mlm_loss=0.0, mlm_correct=0.0, nsp_loss=0.0, nsp_correct=0.0)
    n_pred = n_pairs = 0
    for batch in batches:
        out = model.forward(batch)
        p = float(np.sum(batch["masked_lm_weights"]))
        b = len(batch["next_sentence_label"])
        sums["mlm_loss"] += float(out.mlm_loss) * p
        sums["mlm_correct"] += float(out.mlm_accuracy) * p
        sums["nsp_loss"] += float(out.nsp_loss) * b
        sums["nsp_correct"] += float(out.nsp_accuracy) * b
        n_pred, n_pairs = n_pred + p, n_pairs + b
    return {"mlm_loss": sums["mlm_loss"] / n_pred, "mlm_accuracy": sums["mlm_correct"] / n_pred,
            "nsp_loss": sums["nsp_loss"] / n_pairs, "nsp_accuracy": sums["nsp_correct"] / n_pairs}


def baselines(batches) -> dict:
    """What guessing without a model scores on these batches."""
    labels = np.concatenate([b["masked_lm_labels"][b["masked_lm_weights"] > 0] for b in batches])
    nsp = np.concatenate([b["next_sentence_label"] for b in batches])
    top = np.bincount(labels).argmax()
    return {"mlm_most_frequent_token_accuracy": float((labels == top).mean()), "mlm_most_frequent_token_id": int(top),
            "nsp_majority_accuracy": float(max(nsp.mean(), 1 - nsp.mean()))}


# ------------------------------------------------------------------ checkpoints
def save_checkpoint(run_dir: Path, model, optimizer, state: dict, keep: int = 2) -> Path:
    """Write checkpoints/step-NNNNNN/ under a temporary name, rename it into place, then
    point `latest` at it. A crash at any moment leaves `latest` naming a complete checkpoint."""
    ckpts = run_dir / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:06d}"
    tmp = ckpts / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_arrays(tmp / "params.safetensors", model.params)
    save_arrays(tmp / "optimizer.safetensors", optimizer.state_dict())
    (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    final = ckpts / name
    if final.exists():  # the same step saved again (e.g. Ctrl-C right after a periodic save)
        shutil.rmtree(final)
    os.rename(tmp, final)
    write_text_atomic(ckpts / "latest", name + "\n")
    for old in sorted(p for p in ckpts.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir) -> Path:
    run_dir = Path(run_dir)
    pointer = run_dir / "checkpoints" / "latest"
    if not (run_dir / "train_config.json").is_file() or not pointer.is_file():
        raise CheckpointError(f"{run_dir}: not a minibert run folder (no train_config.json or checkpoints/latest)")
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"{pointer}: names {path.name}, which does not exist")
    return path


def load_run(run_dir, dtype=np.float32):
    """(model, tokenizer, train config, state) from a run folder's latest checkpoint."""
    run_dir = Path(run_dir)
    ckpt = latest_checkpoint(run_dir)
    cfg = PretrainConfig(**json.loads((run_dir / "train_config.json").read_text()))
    tokenizer = WordPieceTokenizer.from_vocab_file(run_dir / "vocab.txt", do_lower_case=True)
    config = BertConfig.from_json_file(run_dir / "config.json")
    if config.vocab_size != len(tokenizer):
        raise CheckpointError(f"{run_dir}: config.json has vocab_size {config.vocab_size} but vocab.txt has "
                              f"{len(tokenizer)} tokens")
    model = BertForPreTraining(config, dtype=dtype)
    arrays, _ = load_arrays(ckpt / "params.safetensors")
    model.load_params(arrays, source=str(ckpt / "params.safetensors"))
    state = json.loads((ckpt / "state.json").read_text())
    return model, tokenizer, cfg, state


# ------------------------------------------------------------------ the loop
@dataclass
class PretrainResult:
    run_dir: Path
    step: int
    eval_metrics: dict
    baselines: dict
    seconds: float
    interrupted: bool = False
    model: object = None
    tokenizer: object = None


class _StopRequest:
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


def _log(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def pretrain(cfg: PretrainConfig = PretrainConfig(), resume: str | None = None, progress: bool = True,
             plots: bool = True, on_step=None, echo=print) -> PretrainResult:
    """Pre-train a BERT with MLM + NSP. Returns the final held-out metrics and where the files are.

    resume: a run folder to continue from its latest checkpoint (its own train_config.json
    is used). on_step(step, stop): called after every step; stop() asks the loop to save and
    stop as Ctrl-C does (tests use it to interrupt at a chosen step).
    """
    start_time = time.perf_counter()
    if resume is not None:
        run_dir = Path(resume)
        ckpt = latest_checkpoint(run_dir)
        cfg = PretrainConfig(**json.loads((run_dir / "train_config.json").read_text()))
    else:
        cfg.validate()
        run_dir = Path(cfg.out)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise FileExistsError(f"{run_dir}: the run folder exists and is not empty; choose another --out, "
                                  f"or continue it with --resume {run_dir}")
    backend.set_backend(cfg.backend)
    backend.tune_malloc()

    train_docs, eval_docs = load_corpus(cfg)
    if resume is None:
        tokenizer = build_tokenizer(cfg, train_docs)
        config = build_model_config(cfg, tokenizer)
        model = BertForPreTraining(config, seed=cfg.seed)
    else:
        model, tokenizer, _, state = load_run(run_dir)  # the latest checkpoint's parameters and step
        config = model.config
    train_tok = tokenize_documents(train_docs, tokenizer)
    eval_batches = make_eval_batches(eval_docs, tokenizer, cfg)
    base = baselines(eval_batches)

    optimizer = AdamW(model.params, weight_decay=cfg.weight_decay, bias_correction=cfg.bias_correction)
    metrics_path = run_dir / "metrics.jsonl"
    if resume is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "train_config.json", json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
        config.to_json_file(run_dir / "config.json")
        tokenizer.save_vocab(run_dir / "vocab.txt")
        metrics_path.write_text("")
        step, epoch, offset = 0, 0, 0
        stream = BatchStream(train_tok, tokenizer, cfg)
        sample = [stream.next(10**9 + i) for i in range(min(50, 2000 // cfg.batch_size + 1))]  # steps no run reaches
        stats = masking_statistics(sample, tokenizer)
        _save_masking_stats(run_dir / "masking_stats.json", stats, cfg)
        stream.restart()  # the real stream starts from the beginning
    else:
        opt_arrays, _ = load_arrays(ckpt / "optimizer.safetensors")
        optimizer.load_state_dict(opt_arrays, state["optimizer_step"])
        step, epoch, offset = state["step"], state["epoch"], state["offset"]
        stream = BatchStream(train_tok, tokenizer, cfg, epoch, offset)
        # keep only the metrics up to the checkpoint: the steps after it are about to be redone
        kept = [line for line in metrics_path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        write_text_atomic(metrics_path, "".join(line + "\n" for line in kept))
        echo(f"resuming {run_dir} from step {step} of {cfg.steps}")

    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, cfg.steps // 10)
    last_saved = step
    interrupted = False
    window = _Window()
    last_eval = None

    def snapshot(at_step):
        return {"step": at_step, "epoch": stream.epoch, "offset": stream.offset, "optimizer_step": optimizer.step_count,
                "seed": cfg.seed, "rng": "derived from (seed, step): masks (seed, step, 0), dropout (seed, step, 1), "
                                         "pair order (seed * 1000 + epoch)"}

    bar = _progress_bar(progress, step, cfg.steps)
    with _StopRequest() as stop:
        while step < cfg.steps:
            if stop.requested:
                interrupted = True
                break
            step += 1
            lr = linear_warmup_decay(step, cfg.lr, warmup, cfg.steps)
            batch = stream.next(step)
            t0 = time.perf_counter()
            out = model.forward(batch, training=True, rng=backend.default_rng(_step_seed(cfg.seed, step, 1)))
            loss = float(out.loss)
            if not math.isfinite(loss):
                kept = (f"the last good checkpoint (step {last_saved}) is kept in {run_dir / 'checkpoints'}"
                        if last_saved > 0 else "no checkpoint had been written yet")
                raise TrainingError(f"the loss became {loss} at step {step}; training stopped, {kept}; "
                                    "try a lower --lr")
            grads = model.backward()
            clip_by_global_norm(grads, cfg.max_grad_norm)
            optimizer.step(model.params, grads, lr)
            window.add(out, batch, time.perf_counter() - t0)

            if step % cfg.log_interval == 0 or step == cfg.steps:
                record = {"step": step, "split": "train", **window.means(), "lr": lr}
                _log(metrics_path, record)
                bar.set_postfix_str(f"mlm {record['mlm_loss']:.2f}/{record['mlm_accuracy']:.2f} "
                                    f"nsp {record['nsp_loss']:.2f}/{record['nsp_accuracy']:.2f} "
                                    f"lr {lr:.1e} {record['tokens_per_second']:,.0f} tok/s", refresh=False)
                window = _Window()
            if step % cfg.eval_interval == 0 or step == cfg.steps:
                last_eval = evaluate(model, eval_batches)
                _log(metrics_path, {"step": step, "split": "eval", **last_eval, "lr": lr, "tokens_per_second": None})
            if step % cfg.checkpoint_interval == 0 or step == cfg.steps:
                save_checkpoint(run_dir, model, optimizer, snapshot(step))
                last_saved = step
            bar.update(1)
            if on_step is not None:
                on_step(step, lambda: setattr(stop, "requested", True))
        if stop.requested and step < cfg.steps:
            interrupted = True
        if interrupted and last_saved != step:
            save_checkpoint(run_dir, model, optimizer, snapshot(step))
    bar.close()

    if last_eval is None:
        last_eval = evaluate(model, eval_batches)
    elapsed = time.perf_counter() - start_time
    if plots and not interrupted:
        from .plots import plot_run

        plot_run(run_dir, model=model, tokenizer=tokenizer)
    result = PretrainResult(run_dir, step, last_eval, base, elapsed, interrupted, model, tokenizer)
    echo(summary(result, config))
    return result


class _Window:
    """Running means of the train metrics between two log lines."""

    def __init__(self):
        self.n, self.seconds, self.tokens = 0, 0.0, 0
        self.sums = dict(mlm_loss=0.0, nsp_loss=0.0, mlm_accuracy=0.0, nsp_accuracy=0.0)

    def add(self, out, batch, seconds):
        self.n += 1
        self.seconds += seconds
        self.tokens += int(np.sum(batch["attention_mask"]))
        for k in self.sums:
            self.sums[k] += float(getattr(out, k))

    def means(self):
        return {**{k: v / self.n for k, v in self.sums.items()}, "tokens_per_second": self.tokens / self.seconds}


def _progress_bar(enabled, initial, total):
    from tqdm import tqdm  # the plain bar: tqdm.auto wants ipywidgets in notebooks

    return tqdm(total=total, initial=initial, desc="pretrain", unit="step", disable=not enabled,
                mininterval=1.0, dynamic_ncols=True)


def _save_masking_stats(path, stats, cfg):
    write_text_atomic(path, json.dumps(stats.to_dict(cfg.masking_config())) + "\n")


def summary(result: PretrainResult, config: BertConfig) -> str:
    e, b = result.eval_metrics, result.baselines
    m, s = divmod(int(result.seconds), 60)
    status = "interrupted at" if result.interrupted else "finished"
    lines = [
        "",
        f"minibert pretrain {status} step {result.step} in {m}m{s:02d}s "
        f"({config.num_hidden_layers} layers, hidden {config.hidden_size}, vocab {config.vocab_size})",
        "held-out results:",
        f"  MLM accuracy {e['mlm_accuracy']:.3f}   (most frequent token: {b['mlm_most_frequent_token_accuracy']:.3f})"
        f"   MLM loss {e['mlm_loss']:.3f} (chance ln V = {math.log(config.vocab_size):.2f})",
        f"  NSP accuracy {e['nsp_accuracy']:.3f}   (majority guess: {b['nsp_majority_accuracy']:.3f})"
        f"        NSP loss {e['nsp_loss']:.3f} (chance ln 2 = {math.log(2):.2f})",
        f"files in {result.run_dir}/: metrics.jsonl, training.png, masking.png, attention.png, checkpoints/",
    ]
    if result.interrupted:
        lines.append(f"continue with: minibert pretrain --resume {result.run_dir}")
    else:
        lines.append(f'try: minibert fill-mask {result.run_dir} "Oslo is the capital of [MASK]."')
    return "\n".join(lines)
