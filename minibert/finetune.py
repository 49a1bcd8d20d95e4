"""Fine-tuning: question answering and sentence(-pair) classification, starting from a
minibert pre-training run, a Hugging Face BERT folder, or random weights ("scratch").

Transfer learning in one experiment: fine-tune the same model, on the same labelled data,
for the same steps with the same seed, once from a pre-training run and once from scratch,
and compare the held-out scores (`minibert finetune ... --init RUN` vs `--init scratch`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backend
from .config import BertConfig
from .data import generate_classification, generate_qa
from .heads import BertForQuestionAnswering, BertForSequenceClassification, from_pretraining_run
from .io import load_arrays, write_text_atomic
from .optim import AdamW, clip_by_global_norm, linear_warmup_decay
from .squad import collate_features, make_features, predict_answers, read_squad, squad_metrics
from .tokenization import WordPieceTokenizer, train_wordpiece
from .train import TrainingError, _log, _progress_bar, _StopRequest, latest_checkpoint, save_checkpoint

TASKS = ("qa", "classify")


@dataclass(frozen=True)
class FinetuneConfig:
    task: str = "qa"  # "qa" or "classify"
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
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for name in ("steps", "batch_size", "eval_interval", "log_interval", "checkpoint_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")


# ------------------------------------------------------------------ data
def read_classification(path) -> tuple[list, list]:
    """JSON lines {"text": ..., "text_b": optional, "label": name or index} -> (examples, label names)."""
    path = Path(path)
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: data file not found") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not valid UTF-8 ({e})") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not a JSON object ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "label" not in row:
            raise ValueError(f"{path}:{n}: each line needs a string 'text' and a 'label'")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no examples")
    names = sorted({str(r["label"]) for r in rows}, key=lambda x: (len(x), x))
    index = {name: i for i, name in enumerate(names)}
    return [{"text": r["text"], "text_b": r.get("text_b"), "label": index[str(r["label"])]} for r in rows], names


def load_task_data(cfg: FinetuneConfig):
    """(train examples, eval examples, label names or None, skipped reports)."""
    skipped = []
    if cfg.task == "qa":
        if cfg.data is None:
            examples = generate_qa(cfg.num_examples, seed=cfg.seed)
        else:
            examples, skipped = read_squad(cfg.data)
        names = None
    else:
        if cfg.data is None:
            examples, names = generate_classification(cfg.num_examples, seed=cfg.seed)
        else:
            examples, names = read_classification(cfg.data)
    if cfg.eval_data is not None:
        eval_examples = read_squad(cfg.eval_data)[0] if cfg.task == "qa" else read_classification(cfg.eval_data)[0]
        train = examples
    else:
        n_eval = max(1, int(len(examples) * cfg.eval_fraction))
        train, eval_examples = examples[:-n_eval], examples[-n_eval:]
    if not train:
        raise ValueError("no training examples left")
    return train, eval_examples, names, skipped


def build_model(cfg: FinetuneConfig, num_labels: int | None, texts):
    """(model, tokenizer, where the weights came from)."""
    cls = BertForQuestionAnswering if cfg.task == "qa" else BertForSequenceClassification
    kwargs = {} if cfg.task == "qa" else {"num_labels": num_labels}
    init = Path(cfg.init)
    if cfg.init != "scratch" and (init / "train_config.json").is_file():
        model, tokenizer = from_pretraining_run(cls, init, seed=cfg.seed, **kwargs)
        return model, tokenizer, f"minibert run {init}"
    if cfg.init != "scratch":
        if not init.is_dir():
            raise FileNotFoundError(f"{init}: --init must be a minibert run folder, a Hugging Face BERT folder, or 'scratch'")
        model = cls.from_pretrained(init, seed=cfg.seed, **kwargs)
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
    model = cls(config, seed=cfg.seed, **kwargs)
    model.newly_initialized = ["everything (random initialization)"]
    return model, tokenizer, "random initialization"


def _classification_batch(examples, tokenizer, max_length):
    batch = tokenizer.batch_encode([e["text"] for e in examples], [e.get("text_b") for e in examples], max_length)
    batch["labels"] = np.array([e["label"] for e in examples])
    return batch


# ------------------------------------------------------------------ evaluation
def evaluate_qa(model, examples, features, cfg, batch_size=64):
    starts, ends = [], []
    for i in range(0, len(features), batch_size):
        out = model.forward(collate_features(features[i:i + batch_size]))
        starts += list(backend.to_host(out.extras["start_logits"]))  # one (T,) row per window
        ends += list(backend.to_host(out.extras["end_logits"]))
    impossible = cfg.version_2 or any(e.get("is_impossible") for e in examples)
    predictions = predict_answers(examples, features, starts, ends, cfg.max_answer_length,
                                  allow_impossible=impossible)
    return squad_metrics(examples, predictions), predictions


def evaluate_classification(model, examples, tokenizer, cfg, batch_size=64):
    correct, loss = 0.0, 0.0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        out = model.forward(_classification_batch(chunk, tokenizer, cfg.seq_length))
        correct += float(out.extras["accuracy"]) * len(chunk)
        loss += float(out.loss) * len(chunk)
    return {"accuracy": correct / len(examples), "loss": loss / len(examples)}


# ------------------------------------------------------------------ the loop
def finetune(cfg: FinetuneConfig = FinetuneConfig(), progress: bool = True, plots: bool = True, echo=print) -> dict:
    """Fine-tune; returns {"eval": final held-out metrics, "run_dir", "init", "skipped", "seconds", "model", "tokenizer"}."""
    t_start = time.perf_counter()
    cfg.validate()
    run_dir = Path(cfg.out)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"{run_dir}: the run folder exists and is not empty; choose another --out")
    backend.set_backend(cfg.backend)
    backend.tune_malloc()
    train, held_out, names, skipped = load_task_data(cfg)
    texts = [e.get("context", "") + " " + e.get("question", e.get("text", "")) for e in train]
    model, tokenizer, source = build_model(cfg, len(names) if names else None, texts)
    if model.config.max_position_embeddings < cfg.seq_length:
        raise ValueError(f"--seq-length {cfg.seq_length} exceeds the model's max_position_embeddings "
                         f"{model.config.max_position_embeddings}")

    if cfg.task == "qa":
        train_features, s1 = make_features(train, tokenizer, cfg.seq_length, cfg.doc_stride, cfg.max_query_length)
        eval_features, s2 = make_features(held_out, tokenizer, cfg.seq_length, cfg.doc_stride, cfg.max_query_length)
        skipped += s1 + s2
        eval_ids = {f.example_index for f in eval_features}
        eval_examples = held_out
        if not train_features or not eval_ids:
            raise ValueError("no usable question-answering examples (see the skipped ones above)")
        items = train_features
    else:
        items = train
    if skipped:
        echo(f"skipped {len(skipped)} example(s); first: {skipped[0]}")

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "train_config.json", json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    model.config.to_json_file(run_dir / "config.json")
    tokenizer.save_vocab(run_dir / "vocab.txt")
    write_text_atomic(run_dir / "task.json", json.dumps({"task": cfg.task, "labels": names, "init": source,
                                                        "skipped": skipped}, indent=2) + "\n")
    metrics_path = run_dir / "metrics.jsonl"
    metrics_path.write_text("")
    echo(f"fine-tuning for {cfg.task} from {source}; new: {', '.join(model.newly_initialized) or 'nothing'}")

    optimizer = AdamW(model.params, weight_decay=cfg.weight_decay)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, cfg.steps // 10)
    order, offset, epoch = np.random.default_rng([cfg.seed, 0]).permutation(len(items)), 0, 0
    window = []
    last = None
    bar = _progress_bar(progress, 0, cfg.steps)
    step = 0
    with _StopRequest() as stop:
        while step < cfg.steps and not stop.requested:
            step += 1
            if offset + cfg.batch_size > len(order):
                epoch += 1
                order, offset = np.random.default_rng([cfg.seed, epoch]).permutation(len(items)), 0
            chosen = [items[i] for i in order[offset:offset + cfg.batch_size]]
            offset += cfg.batch_size
            batch = collate_features(chosen) if cfg.task == "qa" else _classification_batch(chosen, tokenizer, cfg.seq_length)
            lr = linear_warmup_decay(step, cfg.lr, warmup, cfg.steps)
            out = model.forward(batch, training=True, rng=backend.default_rng(cfg.seed * 1_000_003 + step))
            loss = float(out.loss)
            if not math.isfinite(loss):
                raise TrainingError(f"the loss became {loss} at step {step}; training stopped; try a lower --lr")
            grads = model.backward()
            clip_by_global_norm(grads, cfg.max_grad_norm)
            optimizer.step(model.params, grads, lr)
            window.append((loss, float(out.extras.get("accuracy", np.nan))))
            if step % cfg.log_interval == 0 or step == cfg.steps:
                record = {"step": step, "split": "train", "loss": float(np.mean([w[0] for w in window])), "lr": lr}
                if cfg.task == "classify":
                    record["accuracy"] = float(np.mean([w[1] for w in window]))
                _log(metrics_path, record)
                bar.set_postfix_str(f"loss {record['loss']:.3f}", refresh=False)
                window = []
            if step % cfg.eval_interval == 0 or step == cfg.steps:
                if cfg.task == "qa":
                    last, _ = evaluate_qa(model, eval_examples, eval_features, cfg)
                else:
                    last = evaluate_classification(model, held_out, tokenizer, cfg)
                _log(metrics_path, {"step": step, "split": "eval", **last})
            if step % cfg.checkpoint_interval == 0 or step == cfg.steps:
                save_checkpoint(run_dir, model, optimizer, {"step": step, "optimizer_step": optimizer.step_count})
            bar.update(1)
    bar.close()
    if stop.requested and step < cfg.steps:
        save_checkpoint(run_dir, model, optimizer, {"step": step, "optimizer_step": optimizer.step_count})
    if last is None:
        last = (evaluate_qa(model, eval_examples, eval_features, cfg)[0] if cfg.task == "qa"
                else evaluate_classification(model, held_out, tokenizer, cfg))
    if plots:
        from .plots import finetune_figure, read_metrics

        finetune_figure({"run": read_metrics(metrics_path)}, cfg.task).savefig(run_dir / "finetune.png", dpi=90)
    seconds = time.perf_counter() - t_start
    scores = ", ".join(f"{k} {v:.3f}" for k, v in last.items())
    echo(f"\nminibert finetune {cfg.task}: {step} steps in {seconds:.0f}s from {source}\nheld-out: {scores}\n"
         f"files in {run_dir}/: metrics.jsonl, finetune.png, checkpoints/")
    return {"eval": last, "run_dir": run_dir, "init": source, "skipped": skipped, "seconds": seconds,
            "model": model, "tokenizer": tokenizer, "step": step}


def load_finetuned(run_dir):
    """(model, tokenizer, task info) from a fine-tuning run folder."""
    run_dir = Path(run_dir)
    ckpt = latest_checkpoint(run_dir)
    task = json.loads((run_dir / "task.json").read_text())
    config = BertConfig.from_json_file(run_dir / "config.json")
    tokenizer = WordPieceTokenizer.from_vocab_file(run_dir / "vocab.txt", do_lower_case=True)
    if task["task"] == "qa":
        model = BertForQuestionAnswering(config)
    else:
        model = BertForSequenceClassification(config, num_labels=len(task["labels"]))
    arrays, _ = load_arrays(ckpt / "params.safetensors")
    model.load_params(arrays, source=str(ckpt / "params.safetensors"))
    return model, tokenizer, task


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


def transfer_experiment(pretrain_run, out, task: str = "qa", progress: bool = False, echo=print, **options) -> dict:
    """The transfer-learning lesson, measured: fine-tune from `pretrain_run` and from scratch
    (same vocabulary, same config, same data, steps and seed), and plot both on one figure.
    Writes out/pretrained/, out/scratch/, out/transfer.png and out/transfer.json."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: the folder exists and is not empty; choose another --out")
    run = Path(pretrain_run)
    results = {}
    for name, init in (("pretrained", str(run)), ("scratch", "scratch")):
        cfg = FinetuneConfig(task=task, init=init, out=str(out / name), vocab=str(run / "vocab.txt"),
                             model=str(run / "config.json"), **options)
        results[name] = finetune(cfg, progress=progress, echo=echo)
    from .plots import finetune_figure, read_metrics

    fig = finetune_figure({f"from {name}": read_metrics(out / name / "metrics.jsonl") for name in results}, task)
    fig.suptitle(f"Transfer learning: fine-tuning from pre-training vs from scratch ({task})")
    fig.savefig(out / "transfer.png", dpi=90)
    summary = {name: {"eval": r["eval"], "seconds": r["seconds"], "steps": r["step"]} for name, r in results.items()}
    write_text_atomic(out / "transfer.json", json.dumps(summary, indent=2) + "\n")
    key = "exact_match" if task == "qa" else "accuracy"
    echo(f"\ntransfer learning ({task}, {results['scratch']['step']} steps each): "
         f"{key} {results['pretrained']['eval'][key]:.3f} from pre-training vs "
         f"{results['scratch']['eval'][key]:.3f} from scratch; plot: {out / 'transfer.png'}")
    return summary
