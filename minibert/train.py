"""Pre-training: what `minibert pretrain` runs. Start a run (or resume one), hand the model,
its batches and its evaluation to the shared loop in minibert/loop.py, then report.

The objective picks the model and what is scored, on the same [CLS] A [SEP] B [SEP] pairs:
"mlm_nsp" (BERT: masked tokens and the next-sentence label), "left_to_right" (GPT: every next
token, no masking) or "right_to_left" (the same, reading each pair backwards). The
differences are data, kept in one record per objective (OBJECTIVE_RECORDS).

The run folder's files are described in minibert/runs.py; the step itself, the random
streams and Ctrl-C in minibert/loop.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, ClassVar
from pathlib import Path

import numpy as np

from . import backend
from .config import BertConfig, check_options
from .data import (
    CORPUS_FORMATS,
    MaskingConfig,
    collate,
    create_pretraining_instances,
    generate_corpus,
    masking_statistics,
    read_documents,
    split_documents,
    tokenize_documents,
)
from .io import remove_stale_temporaries, write_text_atomic
from .lm import OBJECTIVES, pretraining_model
from .loop import MASKING_SAMPLE, MASKS, TrainingError, refuse_if_too_big, step_seed, train_loop
from .optim import AdamW
from .runs import (has_checkpoint, keep_metrics_up_to, load_optimizer_state, load_run, new_run_folder,
                   read_train_config, run_kind)
from .tokenization import WordPieceTokenizer, train_wordpiece

__all__ = ["PretrainConfig", "PretrainResult", "TrainingError", "pretrain", "summary"]


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
    objective: str = "mlm_nsp"  # mlm_nsp (BERT), left_to_right (GPT), right_to_left (GPT reading backwards)
    steps: int = 1700  # about 2 minutes on 2 CPU cores
    batch_size: int = 32
    seq_length: int = 64  # 64 doubles the steps per second of 128; the world's documents are short
    lr: float = 2.5e-3  # high for BERT, right for a 2-layer model trained for two minutes
    warmup_steps: int | None = None  # None = 10% of steps
    weight_decay: float = 0.01
    adam_beta2: float = 0.98  # RoBERTa's; with BERT's 0.999 this short run's masked LM stalls above lr 2e-3
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
    corpus_sha256: str | None = None  # recorded at the start, so that --resume can tell a changed corpus
    # what runs written before a field existed used: their train_config.json lacks it (read_train_config)
    OLDER_RUNS: ClassVar[dict] = {"adam_beta2": 0.999}

    @property
    def language_model(self) -> bool:
        """True for the next-token objectives: no masking, every real token is a target."""
        return self.objective != "mlm_nsp"

    def masking_config(self) -> MaskingConfig:
        return MaskingConfig(strategy=self.masking, mask_prob=self.mask_prob, mask_token_prob=self.mask_token_prob,
                             random_token_prob=self.random_token_prob, max_predictions=self.max_predictions)

    def validate(self) -> None:
        """Every option in its range, before anything is written."""
        check_options(self, PRETRAIN_RULES)
        if self.objective not in OBJECTIVES:
            raise ValueError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.corpus_format not in CORPUS_FORMATS:
            raise ValueError(f"--corpus-format must be auto, lines or prose, got {self.corpus_format!r}")
        for name in ("out", "corpus", "vocab", "model"):
            if getattr(self, name) == "":
                raise ValueError(f"--{name} must not be empty")
        if self.mask_token_prob + self.random_token_prob > 1:
            raise ValueError(f"--mask-token-prob and --random-token-prob must sum to at most 1, got "
                             f"{self.mask_token_prob} + {self.random_token_prob}")
        self.masking_config()  # raises on bad masking options


MAX_SEQ = 4096  # no preset's position table is longer than 512; this only stops nonsense early
PRETRAIN_RULES = {
    "num_documents": (4, 10_000_000, "documents of the generated world"),
    "eval_fraction": (0.001, 0.9, "share of documents held out"),
    "vocab_size": (64, 1_000_000, "tokens of the trained vocabulary"),
    "steps": (1, 100_000_000, "training steps"), "batch_size": (1, 1_000_000, "pairs per batch"),
    "seq_length": (8, MAX_SEQ, "tokens per sequence"), "lr": (1e-12, None, "peak learning rate"),
    "warmup_steps": (0, 100_000_000, "steps"), "weight_decay": (0.0, 1.0, "AdamW's decay per unit lr"),
    "adam_beta2": (0.0, 0.9999, "the decay of Adam's second moment"),
    "max_grad_norm": (1e-12, 1e12, "global gradient norm"), "mask_prob": (1e-6, 1.0, "a probability above 0"),
    "mask_token_prob": (0.0, 1.0, "a probability"), "random_token_prob": (0.0, 1.0, "a probability"),
    "max_predictions": (1, MAX_SEQ, "predictions per sequence"), "short_seq_prob": (0.0, 1.0, "a probability"),
    "eval_interval": (1, None, "steps"), "eval_batches": (1, 100_000, "held-out batches"),
    "log_interval": (1, None, "steps"), "checkpoint_interval": (1, None, "steps"), "seed": (0, 2**63 - 1, "a seed"),
}


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
    if config.type_vocab_size < 2:  # segment A is 0, segment B is 1
        raise ValueError(f"{cfg.model}: type_vocab_size {config.type_vocab_size}; next-sentence pairs need 2 "
                         "segment types")
    return config


class BatchStream:
    """Training batches in a fixed order: epoch e re-pairs the sentences with seed (seed, e),
    shuffles, and cuts the pairs into batches. Position = (epoch, offset)."""

    def __init__(self, docs, tokenizer, cfg: PretrainConfig, epoch: int = 0, offset: int = 0):
        self.docs, self.tokenizer, self.cfg = docs, tokenizer, cfg
        self.masking = None if cfg.language_model else cfg.masking_config()  # a language model reads the text as it is
        self.epoch, self.offset = epoch, offset
        self.instances = self._make(epoch)

    def _make(self, epoch):
        masking = None if self.cfg.dynamic_masking else self.masking
        return create_pretraining_instances(self.docs, self.tokenizer, self.cfg.seq_length, seed=self.cfg.seed * 1000 + epoch,
                                            short_seq_prob=self.cfg.short_seq_prob, masking=masking, source=self.cfg.corpus)

    def position(self) -> dict:
        """Where the next batch comes from (saved in checkpoints)."""
        return {"epoch": self.epoch, "offset": self.offset}

    def next(self, step: int, stream: int = MASKS) -> dict:
        """The next batch, its masks drawn with the seed of (seed, step, stream)."""
        B = self.cfg.batch_size
        if self.offset + B > len(self.instances):
            self.epoch, self.offset = self.epoch + 1, 0
            self.instances = self._make(self.epoch)
            if len(self.instances) < B:
                raise ValueError(f"the corpus yields only {len(self.instances)} training pairs, fewer than "
                                 f"--batch-size {B}")
        chunk = self.instances[self.offset:self.offset + B]
        self.offset += B
        rng = np.random.default_rng(step_seed(self.cfg.seed, step, stream))
        masking = self.masking if self.cfg.dynamic_masking else None
        # padded to this batch's most predictions, not to max_predictions (the masking's cap): at length 64
        # a sequence has at most 10, and the MLM head scores every slot, padding included
        return collate(chunk, self.tokenizer, masking=masking, rng=rng)


def make_eval_batches(eval_docs, tokenizer, cfg: PretrainConfig) -> list:
    """Fixed held-out batches (static masks; none for a language model), so every evaluation
    scores the same predictions."""
    masking = None if cfg.language_model else cfg.masking_config()
    instances = create_pretraining_instances(eval_docs, tokenizer, cfg.seq_length, seed=cfg.seed + 7919,
                                             dupe_factor=max(1, math.ceil(cfg.eval_batches * cfg.batch_size / max(1, 2 * len(eval_docs)))),
                                             short_seq_prob=cfg.short_seq_prob, masking=masking, source=cfg.corpus)
    instances = instances[: cfg.eval_batches * cfg.batch_size]
    B = cfg.batch_size
    return [collate(instances[i:i + B], tokenizer) for i in range(0, len(instances), B)]  # P: as in BatchStream.next


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


def evaluate_lm(model, batches) -> dict:
    """Held-out next-token loss and accuracy of a language model, weighted by scored tokens
    (every real token but the first one read)."""
    loss = correct = n = 0.0
    for batch in batches:
        out = model.forward(batch)
        k = float(out.extras["num_scored"])
        loss, correct, n = loss + float(out.loss) * k, correct + float(out.extras["accuracy"]) * k, n + k
    return {"lm_loss": loss / n, "lm_accuracy": correct / n}


def unigram_entropy(token_ids) -> float:
    """H = -sum_v p_v ln p_v (nats), p_v the share of token v in token_ids: the MLM loss of a model
    that ignores the context and predicts how often each token occurs (the early plateau)."""
    counts = np.bincount(np.asarray(token_ids).ravel())
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def baselines(batches) -> dict:
    """What guessing without a model scores on these batches: the most frequent masked token
    (MLM accuracy), the unigram entropy of the masked tokens (MLM loss), the majority (NSP)."""
    labels = np.concatenate([b["masked_lm_labels"][b["masked_lm_weights"] > 0] for b in batches])
    nsp = np.concatenate([b["next_sentence_label"] for b in batches])
    top = np.bincount(labels).argmax()
    return {"mlm_most_frequent_token_accuracy": float((labels == top).mean()), "mlm_most_frequent_token_id": int(top),
            "mlm_unigram_entropy": unigram_entropy(labels), "nsp_majority_accuracy": float(max(nsp.mean(), 1 - nsp.mean()))}


def lm_baselines(batches, right_to_left: bool = False) -> dict:
    """What guessing without a model scores on a language model's targets: every real token but
    the first one read ([CLS] left to right, the last [SEP] right to left)."""
    rows = [ids[mask != 0] for b in batches for ids, mask in zip(b["input_ids"], b["attention_mask"])]
    targets = np.concatenate([r[:-1] if right_to_left else r[1:] for r in rows])
    top = np.bincount(targets).argmax()
    return {"lm_most_frequent_token_accuracy": float((targets == top).mean()), "lm_most_frequent_token_id": int(top),
            "lm_unigram_entropy": unigram_entropy(targets)}


def mlm_nsp_numbers(out) -> dict:
    return {k: float(getattr(out, k)) for k in ("mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy")}


def lm_numbers(out) -> dict:
    return {"lm_loss": float(out.loss), "lm_accuracy": float(out.extras["accuracy"])}


@dataclass(frozen=True)
class Objective:
    """What differs between pre-training objectives; the loop and the run folder are the same."""

    step_numbers: Callable  # a training step's output -> the numbers logged
    evaluate: Callable  # (model, held-out batches) -> held-out metrics
    baselines: Callable  # held-out batches -> what guessing scores on them


OBJECTIVE_RECORDS = {
    "mlm_nsp": Objective(mlm_nsp_numbers, evaluate, baselines),
    "left_to_right": Objective(lm_numbers, evaluate_lm, partial(lm_baselines, right_to_left=False)),
    "right_to_left": Objective(lm_numbers, evaluate_lm, partial(lm_baselines, right_to_left=True)),
}


def sample_masking_statistics(train_tok, tokenizer, cfg: PretrainConfig, max_batches: int = 50):
    """What the masking does to the first training batches (about 2,000 sequences), each masked
    with its own seed from the stream MASKING_SAMPLE, so the training batches' masks stay untouched."""
    stream = BatchStream(train_tok, tokenizer, cfg)
    sample = [stream.next(i, MASKING_SAMPLE) for i in range(1, min(max_batches, 2000 // cfg.batch_size + 1) + 1)]
    return masking_statistics(sample, tokenizer)


# ------------------------------------------------------------------ starting and resuming
@dataclass
class Session:
    """Everything a pre-training run needs, from a fresh start or a checkpoint."""

    cfg: PretrainConfig
    run_dir: Path
    model: object  # BertForPreTraining, or BertLMHeadModel for a language-model objective
    tokenizer: WordPieceTokenizer
    optimizer: AdamW
    stream: BatchStream
    eval_batches: list
    start_step: int


def start_run(cfg: PretrainConfig, run_dir: Path) -> Session:
    """A new run in run_dir (already created, empty): data, vocabulary, model and the run's first files."""
    train_docs, eval_docs = load_corpus(cfg)
    tokenizer = build_tokenizer(cfg, train_docs)
    config = build_model_config(cfg, tokenizer)
    model = pretraining_model(cfg.objective, config, seed=cfg.seed)
    # held-out pairs are made up front as Python lists: about 100 bytes a token
    predictions = cfg.seq_length if cfg.language_model else cfg.max_predictions  # a language model scores every position
    refuse_if_too_big(model, cfg.batch_size, cfg.seq_length, predictions,
                      extra_bytes=100 * cfg.eval_batches * cfg.batch_size * cfg.seq_length)
    train_tok = tokenize_documents(train_docs, tokenizer)
    write_text_atomic(run_dir / "train_config.json", json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    config.to_json_file(run_dir / "config.json")
    tokenizer.save_vocab(run_dir / "vocab.txt")
    (run_dir / "metrics.jsonl").write_text("")
    if not cfg.language_model:  # a language model masks nothing
        stats = sample_masking_statistics(train_tok, tokenizer, cfg)
        write_text_atomic(run_dir / "masking_stats.json", json.dumps(stats.to_dict(cfg.masking_config())) + "\n")
    eval_batches = make_eval_batches(eval_docs, tokenizer, cfg)
    # what guessing scores on the held-out batches, for the plots to draw against
    guesses = OBJECTIVE_RECORDS[cfg.objective].baselines(eval_batches)
    write_text_atomic(run_dir / "baselines.json", json.dumps(guesses, indent=2) + "\n")
    optimizer = AdamW(model.params, weight_decay=cfg.weight_decay, beta2=cfg.adam_beta2, bias_correction=cfg.bias_correction)
    return Session(cfg, run_dir, model, tokenizer, optimizer, BatchStream(train_tok, tokenizer, cfg), eval_batches, 0)


def file_sha256(path) -> str | None:
    """The sha256 of a file's bytes (None if it cannot be read: the reader then says why)."""
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def resume_run(run_dir: Path, echo=print, allow_changed_corpus: bool = False) -> Session:
    """The run in run_dir, at its latest checkpoint: parameters, optimizer, step and data position."""
    cfg = read_train_config(run_dir, PretrainConfig)
    if cfg.corpus is not None and cfg.corpus_sha256 is not None and not allow_changed_corpus:
        if file_sha256(cfg.corpus) != cfg.corpus_sha256:
            raise ValueError(f"{cfg.corpus}: the corpus changed (or is gone) since {run_dir} started, so resuming "
                             "would not repeat the uninterrupted run; restore it, or pass --allow-changed-corpus")
    remove_stale_temporaries(run_dir / "checkpoints")  # what a killed run left half-written
    remove_stale_temporaries(run_dir)
    backend.set_backend(cfg.backend)  # before the model is built: its arrays go to the run's device
    run = load_run(run_dir, kind="pretrain")
    train_docs, eval_docs = load_corpus(cfg)
    train_tok = tokenize_documents(train_docs, run.tokenizer)
    optimizer = AdamW(run.model.params, weight_decay=cfg.weight_decay, beta2=cfg.adam_beta2,
                      bias_correction=cfg.bias_correction)
    optimizer.load_state_dict(load_optimizer_state(run_dir), run.state["optimizer_step"])
    step = run.state["step"]
    stream = BatchStream(train_tok, run.tokenizer, cfg, run.state["epoch"], run.state["offset"])
    keep_metrics_up_to(run_dir / "metrics.jsonl", step)  # the steps after the checkpoint are about to be redone
    echo(f"resuming {run_dir} from step {step} of {cfg.steps}")
    return Session(cfg, run_dir, run.model, run.tokenizer, optimizer, stream,
                   make_eval_batches(eval_docs, run.tokenizer, cfg), step)


# ------------------------------------------------------------------ the run
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
    files: tuple = ()  # what the run folder holds for the reader, e.g. ("metrics.jsonl", "training.png")


def pretrain(cfg: PretrainConfig = PretrainConfig(), resume: str | None = None, progress: bool = True,
             plots: bool = True, on_step=None, echo=print, allow_changed_corpus: bool = False) -> PretrainResult:
    """Pre-train a BERT with MLM + NSP, or a language model (cfg.objective). Returns the final
    held-out metrics and where the files are.

    resume: a run folder to continue from its latest checkpoint (its own train_config.json
    is used). on_step(step, stop): called after every step; stop() asks the loop to save and
    stop as Ctrl-C does (tests use it to interrupt at a chosen step).
    """
    start_time = time.perf_counter()
    restart = False
    if resume is not None:
        run_dir = Path(resume)
        if run_kind(run_dir) == "pretrain" and not has_checkpoint(run_dir):  # e.g. killed before its first checkpoint
            cfg, restart = read_train_config(run_dir, PretrainConfig), True
            cfg = dataclasses.replace(cfg, out=str(run_dir))
            echo(f"{run_dir} has no checkpoint yet: starting it again from step 0")
    if resume is not None and not restart:
        session = resume_run(Path(resume), echo, allow_changed_corpus)
        result = _train(session, progress, on_step)
    else:
        cfg.validate()
        if cfg.corpus is not None:  # the absolute path, so that --resume works from any folder; and its hash
            corpus = Path(cfg.corpus).resolve()
            cfg = dataclasses.replace(cfg, corpus=str(corpus), corpus_sha256=file_sha256(corpus))
        backend.set_backend(cfg.backend)
        # the folder is removed again if the run fails before its first checkpoint
        with new_run_folder(Path(cfg.out), restart=restart) as run_dir:
            session = start_run(cfg, run_dir)
            result = _train(session, progress, on_step)
    if plots and not result.interrupted:
        from .plots import plot_run

        plot_run(session.run_dir, model=session.model, tokenizer=session.tokenizer)
    files = tuple(sorted(p.name for p in session.run_dir.iterdir() if not p.name.startswith(".")))
    result = dataclasses.replace(result, seconds=time.perf_counter() - start_time, files=files)
    echo(summary(result, session.model.config))
    return result


def pretrained_run(path, **overrides) -> Path:
    """The pre-training run at `path` (notebook 4's, which later notebooks build on), trained here
    first with the defaults if the folder holds no checkpoint, after removing what a run that
    stopped before its first checkpoint left. overrides: PretrainConfig fields (tests make it small)."""
    path = Path(path)
    if not has_checkpoint(path):
        if path.is_dir() and any(path.iterdir()):
            if not (path / "train_config.json").is_file():  # never remove what is not a run
                raise FileExistsError(f"{path}: exists and is not a minibert run; move it, or choose another folder")
            shutil.rmtree(path)
        pretrain(PretrainConfig(**{"out": str(path), "seed": 0, **overrides}), progress=False)
    return path


def _train(session: Session, progress: bool, on_step) -> PretrainResult:
    """The shared loop with pre-training's batches, evaluation and logged numbers."""
    backend.tune_malloc()
    s = session
    objective = OBJECTIVE_RECORDS[s.cfg.objective]
    loop = train_loop(s.model, s.optimizer, s.stream, s.cfg, s.run_dir, lambda: objective.evaluate(s.model, s.eval_batches),
                      objective.step_numbers, start_step=s.start_step, progress=progress, desc="pretrain", on_step=on_step)
    last_eval = loop.last_eval if loop.last_eval is not None else objective.evaluate(s.model, s.eval_batches)
    return PretrainResult(s.run_dir, loop.step, last_eval, objective.baselines(s.eval_batches), 0.0, loop.interrupted,
                          s.model, s.tokenizer)


def summary(result: PretrainResult, config: BertConfig) -> str:
    e, b = result.eval_metrics, result.baselines
    m, s = divmod(int(result.seconds), 60)
    status = "interrupted at" if result.interrupted else "finished"
    shown = [f for f in result.files if f.endswith((".jsonl", ".png"))] + ["checkpoints/"]
    lines = [
        "",
        f"minibert pretrain {status} step {result.step} in {m}m{s:02d}s "
        f"({config.num_hidden_layers} layers, hidden {config.hidden_size}, vocab {config.vocab_size})",
        "held-out results:",
        *_result_lines(e, b, config),
        f"files in {result.run_dir}/: {', '.join(shown)}",
    ]
    if result.interrupted:
        lines.append(f"continue with: minibert pretrain --resume {result.run_dir}")
    elif "lm_loss" in e:
        lines.append("a language model: fill-mask and nsp need an mlm_nsp run; `minibert compare` scores it next to BERT")
    else:
        lines.append(f'try: minibert fill-mask {result.run_dir} "Oslo is the capital of [MASK]."')
    return "\n".join(lines)


def _result_lines(e: dict, b: dict, config: BertConfig) -> list:
    """The held-out numbers of the summary, each next to what guessing scores."""
    chance = f"(chance ln V = {math.log(config.vocab_size):.2f})"
    if "lm_loss" in e:
        return [f"  next-token accuracy {e['lm_accuracy']:.3f}   (most frequent token: "
                f"{b['lm_most_frequent_token_accuracy']:.3f})   next-token loss {e['lm_loss']:.3f} {chance}"]
    return [
        f"  MLM accuracy {e['mlm_accuracy']:.3f}   (most frequent token: {b['mlm_most_frequent_token_accuracy']:.3f})"
        f"   MLM loss {e['mlm_loss']:.3f} {chance}",
        f"  NSP accuracy {e['nsp_accuracy']:.3f}   (majority guess: {b['nsp_majority_accuracy']:.3f})"
        f"        NSP loss {e['nsp_loss']:.3f} (chance ln 2 = {math.log(2):.2f})",
    ]
