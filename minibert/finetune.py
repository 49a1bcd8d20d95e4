"""Fine-tuning: question answering and sentence(-pair) classification, starting from a
minibert pre-training run, a Hugging Face BERT folder, or random weights ("scratch").

Transfer learning in one experiment: fine-tune the same model, on the same labelled data,
for the same steps with the same seed, once from a pre-training run and once from scratch,
and compare the held-out scores (`minibert finetune ... --init RUN` vs `--init scratch`).

The tasks themselves are records in minibert/tasks.py; the loop is minibert/loop.py, the
same one pre-training runs.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backend
from .config import BertConfig, check_options
from .io import remove_stale_temporaries, write_text_atomic
from .loop import refuse_if_too_big, train_loop
from .optim import AdamW
from .runs import (folder_kept_only_if_used, has_checkpoint, keep_metrics_up_to, load_optimizer_state, load_run,
                   new_run_folder, read_metrics, read_train_config, run_kind)
from .squad import collate_features, held_out_warning, make_features, predict_answers
from .tasks import Task, get_task
from .tokenization import WordPieceTokenizer, train_wordpiece


@dataclass(frozen=True)
class FinetuneConfig:
    task: str = "qa"  # a name in minibert.tasks.TASKS: "qa", "classify" or a tiny-GLUE task ("paraphrase", ...)
    init: str = "scratch"  # a minibert run folder, a Hugging Face BERT folder, or "scratch"
    data: str | None = None  # SQuAD JSON (qa) or JSONL (classify); None = generated from the world
    eval_data: str | None = None  # None = hold out eval_fraction of data
    num_examples: int = 3000  # size of the generated data
    eval_fraction: float = 0.1
    out: str = "runs/finetune"
    vocab: str | None = None  # scratch only: a vocab.txt (default: train one on the data)
    model: str = "tiny"  # scratch only: a preset or a config.json
    steps: int = 300  # ~50 s for the tiny model on 2 CPU cores
    batch_size: int = 32
    seq_length: int = 128
    lr: float = 1e-3
    warmup_steps: int | None = None  # None = 10% of steps
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    doc_stride: int = 64
    max_query_length: int = 32
    max_answer_length: int = 30
    version_2: bool = False  # SQuAD 2.0: questions may have no answer ([CLS]); on when the data has such questions
    eval_interval: int = 50
    log_interval: int = 10
    checkpoint_interval: int = 300
    seed: int = 0
    backend: str = "numpy"

    def validate(self):
        """Every option in its range, before anything is written."""
        get_task(self.task)
        check_options(self, FINETUNE_RULES)
        for name in ("out", "init", "data", "eval_data", "vocab", "model"):
            if getattr(self, name) == "":
                raise ValueError(f"--{name.replace('_', '-')} must not be empty")


FINETUNE_RULES = {
    "num_examples": (2, 10_000_000, "generated labelled examples"), "eval_fraction": (0.001, 0.9, "share held out"),
    "steps": (1, 100_000_000, "training steps"), "batch_size": (1, 1_000_000, "examples per batch"),
    "seq_length": (8, 4096, "tokens per sequence"), "lr": (1e-12, None, "peak learning rate"),
    "warmup_steps": (0, 100_000_000, "steps"), "weight_decay": (0.0, 1.0, "AdamW's decay per unit lr"),
    "max_grad_norm": (1e-12, 1e12, "global gradient norm"), "doc_stride": (1, 4096, "tokens"),
    "max_query_length": (1, 4096, "tokens"), "max_answer_length": (1, 4096, "tokens"),
    "eval_interval": (1, None, "steps"), "log_interval": (1, None, "steps"),
    "checkpoint_interval": (1, None, "steps"), "seed": (0, 2**63 - 1, "a seed"),
}


# ------------------------------------------------------------------ data and model
def load_task_data(cfg: FinetuneConfig, task: Task):
    """(train examples, eval examples, label names or None, skipped reports)."""
    if cfg.data is None:
        examples, names = task.generate(cfg.num_examples, cfg.seed)
        skipped = []
    else:
        examples, names, skipped = task.read(cfg.data)
    if cfg.eval_data is not None:
        eval_examples, _, eval_skipped = task.read(cfg.eval_data)
        skipped = skipped + eval_skipped
        train = examples
    else:
        n_eval = max(1, int(len(examples) * cfg.eval_fraction))
        train, eval_examples = examples[:-n_eval], examples[-n_eval:]
    if not train:
        raise ValueError(f"{cfg.data or 'the generated data'}: no training examples left after holding out "
                         f"{len(eval_examples)} for evaluation")
    return train, eval_examples, names, skipped


def from_pretraining_run(cls, run_dir, seed: int = 0, **kwargs):
    """A fine-tuning model whose encoder (and pooler, where it has one) comes from a minibert
    pre-training run; its head is freshly initialized (listed in model.newly_initialized).
    A left-to-right LM's run gives a causal model whose pooler reads the last real token."""
    pretrained = load_run(run_dir, kind="pretrain")
    objective = pretrained.train_config.get("objective", "mlm_nsp")  # runs from before objectives are mlm_nsp
    if objective == "right_to_left":
        raise ValueError(f"{run_dir}: a right-to-left language model (objective right_to_left) is used only as frozen "
                         "features (ELMo's backward model), not fine-tuned; use an mlm_nsp or left_to_right run")
    model = cls(pretrained.model.config, seed=seed, **kwargs)
    if objective == "left_to_right":  # GPT: fine-tune the causal encoder as it was trained, and let a
        model.causal, model.pool_at = True, "last"  # classifier read the last token, the one that has read everything
    encoder = {k: backend.to_host(v) for k, v in pretrained.model.params.items() if k in model.params}
    model.load_params(encoder, source=str(run_dir), strict=False)
    model.newly_initialized = sorted({k.split(".")[0] for k in model.params if k not in encoder})
    return model, pretrained.tokenizer


def build_model(cfg: FinetuneConfig, task: Task, labels, texts):
    """(model, tokenizer, where the weights came from)."""
    cls, options = task.model_class, task.model_options(labels)
    init = Path(cfg.init)
    if cfg.init != "scratch" and (init / "train_config.json").is_file():
        model, tokenizer = from_pretraining_run(cls, init, seed=cfg.seed, **options)
        return model, tokenizer, f"minibert run {init}"
    if cfg.init != "scratch":
        if not init.is_dir():
            raise FileNotFoundError(f"{init}: --init must be a minibert run folder, a Hugging Face BERT folder, or 'scratch'")
        model = cls.from_pretrained(init, seed=cfg.seed, **options)
        return model, WordPieceTokenizer.from_vocab_file(init / "vocab.txt"), f"Hugging Face folder {init}"
    if cfg.vocab is not None:
        tokenizer = WordPieceTokenizer.from_vocab_file(cfg.vocab)
    else:
        tokenizer = WordPieceTokenizer(train_wordpiece(texts, 4000))
    path = Path(cfg.model)
    config = (BertConfig.from_json_file(path) if path.is_file()
              else BertConfig.preset(cfg.model, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_id))
    if config.vocab_size != len(tokenizer):
        raise ValueError(f"{cfg.model}: vocab_size {config.vocab_size} does not match the vocabulary's {len(tokenizer)} tokens")
    model = cls(config, seed=cfg.seed, **options)
    model.newly_initialized = ["everything (random initialization)"]
    return model, tokenizer, "random initialization"


class ShuffledBatches:
    """Batches cut from `items` in a fresh random order each epoch, the order drawn with seed
    (seed, epoch). Position = (epoch, offset), so a checkpoint can say where to go on."""

    def __init__(self, items, make_batch, batch_size: int, seed: int, epoch: int = 0, offset: int = 0):
        self.items, self.make_batch, self.batch_size, self.seed = items, make_batch, batch_size, seed
        self.epoch, self.offset = epoch, offset
        self.order = self._order(epoch)

    def _order(self, epoch):
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.items))

    def position(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def next(self, step: int) -> dict:
        if self.offset + self.batch_size > len(self.order):
            self.epoch, self.offset = self.epoch + 1, 0
            self.order = self._order(self.epoch)
        chosen = [self.items[i] for i in self.order[self.offset:self.offset + self.batch_size]]
        self.offset += self.batch_size
        return self.make_batch(chosen)


# ------------------------------------------------------------------ starting and resuming
@dataclass
class Session:
    """Everything a fine-tuning run needs, from a fresh start or a checkpoint."""

    cfg: FinetuneConfig
    task: Task
    run_dir: Path
    model: object
    tokenizer: WordPieceTokenizer
    optimizer: AdamW
    batches: ShuffledBatches
    evaluate: object  # () -> held-out metrics
    source: str  # where the weights came from
    skipped: list
    start_step: int
    n_held_out: int  # the held-out figures rest on this many examples


def prepare_data(cfg, task, train, held_out, tokenizer):
    """(training items, held-out items, skipped reports) with the run's tokenizer."""
    items, s1 = task.prepare(train, tokenizer, cfg)
    eval_items, s2 = task.prepare(held_out, tokenizer, cfg)
    if not items or not eval_items:
        raise ValueError(f"{cfg.data or 'the generated data'}: no usable {task.name} examples "
                         f"({len(items)} for training, {len(eval_items)} held out; see the skipped ones)")
    return items, eval_items, s1 + s2


def _session(cfg, task, run_dir, model, tokenizer, held_out, items, eval_items, source, skipped, start_step=0,
             position=None) -> Session:
    make_batch = lambda chosen: task.make_batch(chosen, tokenizer, cfg)  # noqa: E731
    batches = ShuffledBatches(items, make_batch, cfg.batch_size, cfg.seed, **(position or {}))
    evaluate = lambda: task.evaluate(model, held_out, eval_items, tokenizer, cfg)  # noqa: E731
    optimizer = AdamW(model.params, weight_decay=cfg.weight_decay)
    return Session(cfg, task, run_dir, model, tokenizer, optimizer, batches, evaluate, source, skipped, start_step,
                   len(held_out))


def example_text(example: dict) -> str:
    """All the text of a labelled example (any task), for training a vocabulary from scratch."""
    parts = (example.get("context"), example.get("question"), example.get("text"), example.get("text_b"))
    return " ".join([p for p in parts if p] + example.get("words", []))


def start_run(cfg: FinetuneConfig, run_dir: Path, echo=print) -> Session:
    task = get_task(cfg.task)
    train, held_out, labels, skipped = load_task_data(cfg, task)
    texts = [example_text(e) for e in train]
    model, tokenizer, source = build_model(cfg, task, labels, texts)
    if model.config.max_position_embeddings < cfg.seq_length:
        raise ValueError(f"--seq-length {cfg.seq_length} exceeds the model's max_position_embeddings "
                         f"{model.config.max_position_embeddings}")
    refuse_if_too_big(model, cfg.batch_size, cfg.seq_length)
    items, eval_items, more = prepare_data(cfg, task, train, held_out, tokenizer)
    skipped = skipped + more
    if skipped:
        echo(f"skipped {len(skipped)} example(s); first: {skipped[0]}")
    warning = held_out_warning(len(held_out), f"{task.unit}")
    if warning:
        echo(f"warning: {warning}")
    write_text_atomic(run_dir / "train_config.json", json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    model.config.to_json_file(run_dir / "config.json")
    tokenizer.save_vocab(run_dir / "vocab.txt")
    task_info = {"task": task.name, "labels": labels, "init": source, "skipped": skipped,
                 "model_class": task.model_class.__name__, "model_options": task.model_options(labels),
                 "model_attributes": {"causal": model.causal, "pool_at": model.pool_at}}  # load_run sets them again
    write_text_atomic(run_dir / "task.json", json.dumps(task_info, indent=2) + "\n")
    (run_dir / "metrics.jsonl").write_text("")
    echo(f"fine-tuning for {task.name} from {source}; new: {', '.join(model.newly_initialized) or 'nothing'}")
    return _session(cfg, task, run_dir, model, tokenizer, held_out, items, eval_items, source, skipped)


def resume_run(run_dir: Path, echo=print) -> Session:
    """The fine-tuning run in run_dir at its latest checkpoint; the data is read and prepared again."""
    cfg = read_train_config(run_dir, FinetuneConfig)
    remove_stale_temporaries(run_dir / "checkpoints")  # what a killed run left half-written
    remove_stale_temporaries(run_dir)
    backend.set_backend(cfg.backend)
    run = load_run(run_dir, kind="finetune")
    task = get_task(run.task["task"])
    train, held_out, _, _ = load_task_data(cfg, task)
    items, eval_items, _ = prepare_data(cfg, task, train, held_out, run.tokenizer)
    step = run.state["step"]
    session = _session(cfg, task, run_dir, run.model, run.tokenizer, held_out, items, eval_items,
                       run.task["init"], run.task["skipped"], step,
                       {"epoch": run.state["epoch"], "offset": run.state["offset"]})
    session.optimizer.load_state_dict(load_optimizer_state(run_dir), run.state["optimizer_step"])
    keep_metrics_up_to(run_dir / "metrics.jsonl", step)
    echo(f"resuming {run_dir} from step {step} of {cfg.steps}")
    return session


# ------------------------------------------------------------------ the run
def finetune(cfg: FinetuneConfig = FinetuneConfig(), resume: str | None = None, progress: bool = True,
             plots: bool = True, on_step=None, echo=print) -> dict:
    """Fine-tune; returns {"eval": final held-out metrics, "run_dir", "init", "skipped", "seconds", "model",
    "tokenizer", "step", "interrupted"}. resume: a fine-tuning run folder to continue from its latest
    checkpoint. on_step(step, stop): called after every step; stop() saves and stops as Ctrl-C does."""
    t_start = time.perf_counter()
    if resume is not None and has_checkpoint(resume):
        session = resume_run(Path(resume), echo)
        loop = _train(session, progress, on_step)
    else:
        restart = False
        if resume is not None:  # a run that never reached its first checkpoint starts again
            cfg, restart = dataclasses.replace(read_train_config(resume, FinetuneConfig), out=str(resume)), True
            echo(f"{resume} has no checkpoint yet: starting it again from step 0")
        cfg.validate()
        backend.set_backend(cfg.backend)
        with new_run_folder(Path(cfg.out), restart=restart) as run_dir:
            session = start_run(cfg, run_dir, echo)
            loop = _train(session, progress, on_step)
    s = session
    last = loop.last_eval if loop.last_eval is not None else s.evaluate()
    if plots:
        from .plots import finetune_figure  # matplotlib loads only when a figure is drawn

        finetune_figure({"run": read_metrics(s.run_dir / "metrics.jsonl")}).savefig(s.run_dir / "finetune.png", dpi=90)
    seconds = time.perf_counter() - t_start
    scores = ", ".join(f"{k} {v:.3f}" for k, v in last.items()) + f" ({s.n_held_out} {s.task.unit})"
    status = f"interrupted at step {loop.step} of {s.cfg.steps}" if loop.interrupted else f"{loop.step} steps"
    lines = [f"\nminibert finetune {s.task.name}: {status} in {seconds:.0f}s from {s.source}",
             f"held-out: {scores}", f"files in {s.run_dir}/: metrics.jsonl, {'finetune.png, ' if plots else ''}checkpoints/"]
    if loop.interrupted:
        lines.append(f"continue with: minibert finetune --resume {s.run_dir}")
    echo("\n".join(lines))
    return {"eval": last, "run_dir": s.run_dir, "init": s.source, "skipped": s.skipped, "seconds": seconds,
            "model": s.model, "tokenizer": s.tokenizer, "step": loop.step, "interrupted": loop.interrupted}


def _train(s: Session, progress: bool, on_step):
    backend.tune_malloc()
    return train_loop(s.model, s.optimizer, s.batches, s.cfg, s.run_dir, s.evaluate, s.task.step_numbers,
                      start_step=s.start_step, progress=progress, desc=f"finetune {s.task.name}", on_step=on_step)


def answer(model, tokenizer, question: str, context: str, max_seq_length: int = 128, doc_stride: int = 64,
           max_answer_length: int = 30) -> str:
    """The answer span for one question about one context (windows and decoding as in training)."""
    example = {"id": "q", "question": question, "context": context, "answers": []}
    features, skipped = make_features([example], tokenizer, min(max_seq_length, model.config.max_position_embeddings),
                                      doc_stride, max_query_length=max_seq_length // 2)
    if skipped:
        raise ValueError(skipped[0])
    out = model.forward(collate_features(features))
    s, e = backend.to_host(out.extras["start_logits"]), backend.to_host(out.extras["end_logits"])
    return predict_answers([example], features, list(s), list(e), max_answer_length)["q"]


def transfer_experiment(pretrain_run, out, task: str = "qa", sizes=(700, 2700), progress: bool = False, echo=print,
                        **options) -> dict:
    """The transfer-learning lesson, measured: for each number of labelled training examples in
    `sizes` (questions, for QA), fine-tune once from `pretrain_run` and once from scratch (same
    vocabulary, config, data, steps and seed), and plot the held-out headline metric against
    the number of examples.

    The data is generated, and a smaller size's training examples are the first ones of a larger
    size's. Every size is scored on the same number of held-out examples, those generated right
    after its training examples: the share eval_fraction (an option, default 0.1) of the largest
    size's data. options: FinetuneConfig fields (steps, lr, seed, ...), the same for every run.
    Writes out/pretrained-<size>/ and out/scratch-<size>/ (each a fine-tuning run),
    out/transfer.png (the headline metric against the size), out/curves.png (the fine-tuning
    curves of the largest size) and out/transfer.json (per size, per start: the held-out metrics).
    """
    out = Path(out)
    for name in ("num_examples", "data", "eval_data"):
        if name in options:
            raise ValueError(f"transfer_experiment sets {name} itself (from sizes, on generated data); leave it out")
    if (not sizes or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes)):
        raise ValueError(f"--sizes must be positive whole numbers of labelled training examples, got {sizes!r}")
    sizes = sorted({int(s) for s in sizes})
    FinetuneConfig(task=task, **options).validate()  # every other option in its range, before anything is written
    eval_fraction = options.pop("eval_fraction", FinetuneConfig.eval_fraction)
    # held out: eval_fraction of the largest size's data, the same number for every size
    held_out = max(1, round(sizes[-1] * eval_fraction / (1 - eval_fraction)))
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: the folder exists and is not empty; choose another --out")
    run = Path(pretrain_run)
    if run_kind(run) != "pretrain":  # before anything is created; names the folder if it is no run at all
        raise ValueError(f"{run}: a fine-tuning run; transfer needs a pre-training run (minibert pretrain)")
    configs = {}
    for size in sizes:
        # load_task_data holds out max(1, int(num_examples * eval_fraction)) of num_examples and trains on
        # the rest; the extra half example keeps int() from rounding held_out down
        num_examples = size + held_out
        fraction = (held_out + 0.5) / num_examples
        if num_examples > FINETUNE_RULES["num_examples"][1] or fraction > FINETUNE_RULES["eval_fraction"][1]:
            raise ValueError(f"--sizes: {size} training examples with {held_out} held out cannot be generated "
                             f"(at most {FINETUNE_RULES['num_examples'][1]:,} examples, at most 90% held out); "
                             "choose another size or --eval-fraction")
        assert num_examples - max(1, int(num_examples * fraction)) == size
        for name, init in (("pretrained", str(run)), ("scratch", "scratch")):
            configs[size, name] = FinetuneConfig(task=task, init=init, out=str(out / f"{name}-{size}"),
                                                 vocab=str(run / "vocab.txt"), model=str(run / "config.json"),
                                                 num_examples=num_examples, eval_fraction=fraction, **options)
    for cfg in configs.values():
        cfg.validate()
    with folder_kept_only_if_used(out):  # a failure before any run wrote anything leaves no folder
        results = {key: finetune(cfg, progress=progress, echo=echo) for key, cfg in configs.items()}
    t = get_task(task)
    steps = configs[sizes[0], "scratch"].steps
    summary = {"task": task, "headline": t.headline, "unit": t.unit, "steps": steps, "held_out": held_out,
               "sizes": {str(size): {name: {"eval": results[size, name]["eval"], "seconds": results[size, name]["seconds"],
                                            "steps": results[size, name]["step"]}
                                     for name in ("pretrained", "scratch")} for size in sizes}}
    write_text_atomic(out / "transfer.json", json.dumps(summary, indent=2) + "\n")
    from .plots import finetune_figure, transfer_figure  # matplotlib loads only when a figure is drawn

    transfer_figure(summary).savefig(out / "transfer.png", dpi=120)
    largest = sizes[-1]
    fig = finetune_figure({f"from {name}": read_metrics(out / f"{name}-{largest}" / "metrics.jsonl")
                           for name in ("pretrained", "scratch")})
    fig.suptitle(f"Fine-tuning from pre-training vs from scratch ({task}, {largest} training {t.unit})")
    fig.savefig(out / "curves.png", dpi=90)
    key = t.headline
    lines = [f"\ntransfer learning ({task}, {steps} steps each, scored on {held_out} held-out {t.unit}):"]
    lines += [f"  {size:>7,} training {t.unit}: {key} {results[size, 'pretrained']['eval'][key]:.3f} from pre-training "
              f"vs {results[size, 'scratch']['eval'][key]:.3f} from scratch" for size in sizes]
    lines.append(f"plot: {out / 'transfer.png'}; fine-tuning curves: {out / 'curves.png'}")
    echo("\n".join(lines))
    return summary
