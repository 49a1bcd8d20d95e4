"""The tiny GLUE as a benchmark: `minibert glue RUN_DIR` scores a pre-training run on the four
tasks of minibert/data/glue.py, the way GLUE scores an encoder.

For each task, three ways to use the encoder, each against its baseline:

    fine-tuned      the whole model trained on the task (minibert/finetune.py), from the run
                    and from scratch (same vocabulary, config, data, steps and seed)
    frozen          the encoder untouched; a softmax regression on its features (probe()),
                    for the run's encoder and for a random one
    multi-task      ONE encoder with one head per task, trained on batches of every task in turn

One table sums it up: a row per task (its GLUE metric x 100) and GLUE's average of the rows.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from . import backend
from .data import GLUE_TASKS
from .finetune import FinetuneConfig, finetune, from_pretraining_run, load_task_data, prepare_data, ShuffledBatches
from .io import write_text_atomic
from .layers import cross_entropy_backward, cross_entropy_forward, linear_backward, linear_forward
from .loop import train_loop
from .model import BertModel
from .optim import AdamW
from .runs import folder_kept_only_if_used, load_run, new_run_folder, run_kind
from .tasks import GLUE_HEADLINES, align_tags, get_task, tagging_batch

# What `minibert glue` runs with unless told otherwise: GLUE's sentences are short (48 tokens
# hold every pair). 200 labelled training examples per task, scored on 500 held out: GLUE's
# tasks are small, and it is where labels are few that pre-training shows. Measured on the
# default pre-training run of 2026-11-26 (2,000 steps; seeds 0 and 1): with 2,000 training
# examples the model from scratch also reaches 99-100 on acceptable and entities, and the
# averages were 72.4 +- 5.5 (pre-trained) vs 70.1 +- 7.0 (scratch, seeds 0-2); with 200 they
# were 74.9 +- 1.3 vs 67.7 +- 0.4.
GLUE_DEFAULTS = {"seq_length": 48, "batch_size": 32, "lr": 1e-3}
GLUE_TRAIN_EXAMPLES, GLUE_HELD_OUT = 200, 500
GLUE_STEPS = 200  # per task and start; the measured table is in the README, under "A tiny GLUE"


# ------------------------------------------------------------------ frozen features
def pooled_features(featurize, tokenizer, kind: str, examples, labels, seq_length: int, batch_size: int = 64):
    """A frozen encoder's features, one row per thing to classify.

    Sentences and pairs: the mean of the real tokens' vectors, (N, D), and labels (N,).
    Tagging: the vector of each word's first piece, (words, D), tag indices (words,), and per
    sentence the rows of its words (-1 for a word cut off by seq_length).
    """
    rows, targets, where = [], [], []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        if kind == "tagging":
            items = [align_tags(e["words"], [labels.index(t) for t in e["tags"]], tokenizer, seq_length) for e in chunk]
            states = np.asarray(featurize(tagging_batch(items, tokenizer, None)), np.float64)  # (B, T, D)
            for state, item, example in zip(states, items, chunk):
                where.append(_rows_of_words(item["first"], len(rows)))
                rows += list(state[[f for f in item["first"] if f >= 0]])  # (words kept, D)
                targets += [labels.index(t) for t, f in zip(example["tags"], item["first"]) if f >= 0]
        else:
            batch = tokenizer.batch_encode([e["text"] for e in chunk], [e.get("text_b") for e in chunk], seq_length)
            states = np.asarray(featurize(batch), np.float64)  # (B, T, D)
            mask = batch["attention_mask"][..., None]  # (B, T, 1)
            rows += list((states * mask).sum(axis=1) / mask.sum(axis=1))  # (B, D): mean of the real tokens
            targets += [e["label"] for e in chunk]
    return np.array(rows), np.array(targets), where


def _rows_of_words(first, offset: int) -> list:
    """Each word's row among the kept words (counting from offset), or -1 for a word that was cut off."""
    out, row = [], offset
    for f in first:
        out.append(row if f >= 0 else -1)
        row += f >= 0
    return out


def softmax_regression(X, y, num_labels: int, iterations: int, lr: float = 0.05, weight_decay: float = 0.01):
    """Fit logits = X @ W + b by full-batch AdamW on the mean cross-entropy.   X: (N, D), y: (N,) -> params."""
    params = {"probe.W": np.zeros((X.shape[1], num_labels)), "probe.b": np.zeros(num_labels)}
    optimizer = AdamW(params, weight_decay=weight_decay)
    for _ in range(iterations):
        logits, cache = linear_forward(X, params["probe.W"], params["probe.b"])  # (N, C)
        _, ce_cache = cross_entropy_forward(logits, y)
        _, dW, db = linear_backward(cross_entropy_backward(1.0, ce_cache), cache)
        optimizer.step(params, {"probe.W": dW, "probe.b": db}, lr)
    return params


def probe(featurize, tokenizer, task_name, *, num_train=2000, num_eval=500, seed=0, seq_length=64,
          iterations=300) -> dict:
    """Score a frozen encoder on a task: a softmax regression on its features, trained on
    num_train generated examples and scored with the task's GLUE metric on the next num_eval.

    featurize(batch) -> (B, T, D) host array, for a batch of tokenizer.batch_encode's arrays.
    Features are standardized with the training split's mean and std. Deterministic for a seed.
    Returns {"score", "metric" (its short name), "metric_name", "train_accuracy", "eval_accuracy"}.
    """
    if task_name not in GLUE_TASKS:
        raise ValueError(f"unknown tiny-GLUE task {task_name!r}; choose one of {', '.join(GLUE_TASKS)}")
    glue = GLUE_TASKS[task_name]
    examples = glue.generate(num_train + num_eval, seed)
    train, held_out = examples[:num_train], examples[num_train:]
    labels = list(glue.labels)
    X, y, _ = pooled_features(featurize, tokenizer, glue.kind, train, labels, seq_length)
    X_eval, y_eval, where = pooled_features(featurize, tokenizer, glue.kind, held_out, labels, seq_length)
    mean, std = X.mean(axis=0), X.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant feature stays 0 rather than dividing by 0
    params = softmax_regression((X - mean) / std, y, len(labels), iterations)
    predict = lambda A: ((A - mean) / std @ params["probe.W"] + params["probe.b"]).argmax(axis=1)  # noqa: E731
    pred = predict(X_eval)
    if glue.kind == "tagging":  # back to tag sequences; a word cut off is "O"
        gold = [e["tags"] for e in held_out]
        score = glue.metric(gold, [[labels[pred[r]] if r >= 0 else "O" for r in rows] for rows in where])
    else:
        score = glue.metric(list(y_eval), list(pred))
    return {"score": float(score), "metric": GLUE_HEADLINES[task_name], "metric_name": glue.metric_name,
            "train_accuracy": float((predict(X) == y).mean()), "eval_accuracy": float((pred == y_eval).mean())}


def encoder_features(model):
    """featurize for probe(): a batch -> the model's last-layer states (B, T, H) on the host, no dropout."""
    return lambda batch: backend.to_host(model.forward(batch).sequence_output)


# ------------------------------------------------------------------ multi-task fine-tuning
class MultitaskModel:
    """ONE encoder (and pooler) shared by one fine-tuning model per task, each with its own head.

    The task models' encoder entries are the same arrays, so a step on any task moves the
    encoder every task reads. `params` is flat: the shared names as they are, each head's
    under its task ("entities.classifier.W"). A batch says its task in batch["task"].
    """

    def __init__(self, models: dict):
        self.models, self.params = models, {}
        self.readers: dict = {}  # flat name -> the tasks whose loss reaches it
        for task, model in models.items():
            for name in list(model.params):
                if name.split(".")[0] in model.newly_initialized:  # this task's head
                    self.params[f"{task}.{name}"] = model.params[name]
                    self.readers[f"{task}.{name}"] = {task}
                    continue
                if name in self.params:
                    model.params[name] = self.params[name]  # the same array: one encoder
                self.params[name] = model.params[name]
                self.readers.setdefault(name, set()).add(task)
        self.dtype, self._task = next(iter(models.values())).dtype, None

    def forward(self, batch: dict, training: bool = False, rng=None):
        self._task = batch["task"]
        return self.models[self._task].forward({k: v for k, v in batch.items() if k != "task"}, training, rng)

    def backward(self) -> dict:
        """Gradients of the last batch's loss: the shared parameters its model read, and its head."""
        task, grads = self._task, self.models[self._task].backward()
        return {(f"{task}.{name}" if f"{task}.{name}" in self.params else name): g for name, g in grads.items()}


class MultitaskAdamW:
    """One AdamW per group of parameters that the same tasks train: the encoder (every task),
    the pooler (the sentence tasks: the tagger has none), each head (its own task).

    A step on one task steps exactly the groups that task's loss reaches. A head whose task
    had no batch this step is not moved, not decayed, and its Adam step count does not grow:
    for the head it is as if that batch never happened, as in its single-task run. (Zero
    gradients for it instead would still move it, by Adam's momentum for about 1/(1 - beta1)
    = 10 more steps, and shrink it by weight decay on every other task's step.)
    """

    def __init__(self, model: MultitaskModel, weight_decay: float):
        groups: dict = {}
        for name, readers in model.readers.items():
            groups.setdefault(frozenset(readers), []).append(name)
        self.groups = [(names, AdamW({n: model.params[n] for n in names}, weight_decay)) for names in groups.values()]
        self.step_count = 0

    def step(self, params: dict, grads: dict, lr: float) -> None:
        """Step the groups this batch's loss reached (its model's backward gave every one of their names)."""
        self.step_count += 1
        for names, optimizer in self.groups:
            if names[0] in grads:
                optimizer.step({n: params[n] for n in names}, {n: grads[n] for n in names}, lr)

    def state_dict(self) -> dict:
        return {k: a for _, optimizer in self.groups for k, a in optimizer.state_dict().items()}


class RoundRobin:
    """Batches of each task in turn: step 1 the first task, step 2 the second, and so on.

    Round-robin rather than T5's examples-proportional sampling: the tasks here have equal
    training sets, where proportional sampling is uniform only on average; in turn, every task
    gets exactly the batches its single-task run gets, so each column compares like with like.
    """

    def __init__(self, batches: dict):
        self.batches, self.names = batches, list(batches)

    def next(self, step: int) -> dict:
        task = self.names[(step - 1) % len(self.names)]
        return {**self.batches[task].next(step), "task": task}

    def position(self) -> dict:
        return {task: b.position() for task, b in self.batches.items()}


def multitask_finetune(run_dir, out, cfgs: dict, progress: bool = False) -> dict:
    """Fine-tune one shared encoder on every task of cfgs ({task: FinetuneConfig}, one seed),
    cfg.steps batches of each; returns {task: held-out metrics}. Writes out/metrics.jsonl and
    a checkpoint of every parameter."""
    models, batches, evaluators = {}, {}, {}
    for name, cfg in cfgs.items():
        task = get_task(name)
        train, held_out, labels, _ = load_task_data(cfg, task)
        model, tokenizer = from_pretraining_run(task.model_class, run_dir, seed=cfg.seed, **task.model_options(labels))
        items, eval_items, _ = prepare_data(cfg, task, train, held_out, tokenizer)
        models[name] = model
        make_batch = lambda chosen, t=task, c=cfg, tok=tokenizer: t.make_batch(chosen, tok, c)  # noqa: E731
        batches[name] = ShuffledBatches(items, make_batch, cfg.batch_size, cfg.seed)
        evaluators[name] = lambda t=task, m=model, h=held_out, e=eval_items, tok=tokenizer, c=cfg: t.evaluate(m, h, e, tok, c)
    model = MultitaskModel(models)
    first = next(iter(cfgs.values()))
    total = first.steps * len(cfgs)  # the single-task runs' batches, all together
    loop_cfg = dataclasses.replace(first, steps=total, warmup_steps=None, eval_interval=total, checkpoint_interval=total)
    evaluate = lambda: {f"{t}.{k}": v for t, ev in evaluators.items() for k, v in ev().items()}  # noqa: E731
    with new_run_folder(out) as run_folder:
        write_text_atomic(run_folder / "multitask.json", json.dumps({"tasks": list(cfgs), "init": str(run_dir),
                                                                     "steps": total, "order": "round-robin"}) + "\n")
        loop = train_loop(model, MultitaskAdamW(model, first.weight_decay), RoundRobin(batches), loop_cfg, run_folder,
                          evaluate, lambda out: {"loss": float(out.loss)}, progress=progress, desc="multi-task")
    return {t: {k.split(".", 1)[1]: v for k, v in loop.last_eval.items() if k.startswith(t + ".")} for t in cfgs}


# ------------------------------------------------------------------ the benchmark
COLUMNS = {"pretrained": "pre-trained", "scratch": "scratch", "frozen": "frozen", "frozen_random": "frozen random",
           "multitask": "multi-task"}


def check_glue_tasks(tasks) -> list:
    """The task names asked for (None: all four), each one of the tiny GLUE's."""
    names = list(GLUE_TASKS) if tasks is None else list(tasks)
    unknown = [t for t in names if t not in GLUE_TASKS]
    if not names or unknown:
        raise ValueError(f"--tasks: unknown task {(unknown or [''])[0]!r}; choose from {', '.join(GLUE_TASKS)}")
    return list(dict.fromkeys(names))


def run_glue(run_dir, out, tasks=None, steps=GLUE_STEPS, seeds=(0,), multitask=False, frozen=False, progress=False,
             echo=print, starts=("pretrained", "scratch"), train_examples=GLUE_TRAIN_EXAMPLES, held_out=GLUE_HELD_OUT,
             **options) -> dict:
    """Score a pre-training run on the tiny GLUE; returns the summary written to out/glue.json.

    For each task and seed: fine-tune from run_dir and from scratch (same vocab.txt, config.json,
    data, steps and seed), as run folders out/<task>-<start>-seed<seed>/. frozen: also probe()
    the run's encoder and a random one. multitask: also one shared encoder on every task
    (out/multitask-seed<seed>/), steps batches of each. options: FinetuneConfig fields
    (lr, batch_size, seq_length, ...), over GLUE_DEFAULTS. starts: which fine-tuned columns to
    train ("pretrained", "scratch" or both). train_examples, held_out: generated labelled examples
    per task to train on and to score on (the same split for every column).
    """
    t_start, out, run = time.perf_counter(), Path(out), Path(run_dir)
    names = check_glue_tasks(tasks)
    seeds = tuple(dict.fromkeys(seeds))
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
        raise ValueError(f"--seeds must be whole numbers >= 0, got {seeds!r}")
    for name in ("task", "init", "out", "vocab", "model", "data", "eval_data", "num_examples", "eval_fraction"):
        if name in options:
            raise ValueError(f"run_glue sets {name} itself; leave it out")
    if not starts or set(starts) - {"pretrained", "scratch"}:
        raise ValueError(f"starts must be 'pretrained', 'scratch' or both, got {starts!r}")
    for name, value in (("--train-examples", train_examples), ("--held-out", held_out)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    # load_task_data holds out int(num_examples * eval_fraction): the extra half keeps int() from rounding down
    split = {"num_examples": train_examples + held_out, "eval_fraction": (held_out + 0.5) / (train_examples + held_out)}
    options = {**GLUE_DEFAULTS, **options, **split, "steps": steps}
    FinetuneConfig(**options).validate()  # every option in its range before anything is written
    if run_kind(run) != "pretrain":  # names the folder if it is no run at all
        raise ValueError(f"{run}: a fine-tuning run; glue needs a pre-training run (minibert pretrain)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder; choose another --out")
    quiet = dict(eval_interval=steps, checkpoint_interval=steps, log_interval=max(1, min(10, steps)))
    configs = {(task, start, seed): FinetuneConfig(task=task, init=init, out=str(out / f"{task}-{start}-seed{seed}"),
                                                   vocab=str(run / "vocab.txt"), model=str(run / "config.json"),
                                                   **{**quiet, **options, "seed": seed})
               for seed in seeds for task in names for start, init in (("pretrained", str(run)), ("scratch", "scratch")) if start in starts}
    scores = {task: {column: [] for column in COLUMNS} for task in names}
    with folder_kept_only_if_used(out):  # a failure before any run wrote anything leaves no folder
        for (task, start, seed), cfg in configs.items():
            result = finetune(cfg, progress=progress, plots=False, echo=echo)
            scores[task][start].append(result["eval"][GLUE_HEADLINES[task]])
        if frozen:  # on the fine-tuning runs' data: the same split of the same generated examples
            loaded = load_run(run, kind="pretrain")
            for seed in seeds:
                examples = dict(num_train=train_examples, num_eval=held_out, seed=seed, seq_length=options["seq_length"])
                encoders = {"frozen": loaded.model, "frozen_random": BertModel(loaded.model.config, seed=seed)}
                for task in names:
                    for column, encoder in encoders.items():
                        features = encoder_features(encoder)
                        scores[task][column].append(probe(features, loaded.tokenizer, task, **examples)["score"])
        if multitask:
            for seed in seeds:
                cfgs = {task: configs[task, "pretrained", seed] for task in names}
                for task, metrics in multitask_finetune(run, out / f"multitask-seed{seed}", cfgs, progress).items():
                    scores[task]["multitask"].append(metrics[GLUE_HEADLINES[task]])
        summary = glue_summary(run, names, scores, steps, seeds, time.perf_counter() - t_start)
        summary.update(train_examples=train_examples, held_out=held_out)
        write_text_atomic(out / "glue.json", json.dumps(summary, indent=2) + "\n")
        write_text_atomic(out / "glue.md", "\n".join(glue_table(summary, markdown=True)) + "\n")
    echo("\n".join([f"\ntiny GLUE of {run} ({steps} steps per task, {train_examples} training and {held_out} held-out "
                    f"examples per task, seeds {', '.join(map(str, seeds))}, "
                    f"{summary['seconds']:.0f}s):", *glue_table(summary), f"written: {out / 'glue.md'}, {out / 'glue.json'}"]))
    return summary


def glue_summary(run, names, scores, steps, seeds, seconds) -> dict:
    """Per task and column the scores of every seed, and GLUE's average: per seed the mean of the tasks."""
    columns = [c for c in COLUMNS if scores[names[0]][c]]
    tasks = {task: {"like": GLUE_TASKS[task].like, "metric": GLUE_TASKS[task].metric_name,
                    **{c: scores[task][c] for c in columns}} for task in names}
    average = {c: [float(np.mean([scores[t][c][i] for t in names])) for i in range(len(seeds))] for c in columns}
    return {"run": str(run), "steps": steps, "seeds": list(seeds), "columns": columns, "tasks": tasks,
            "average": average, "seconds": seconds}


def _cell(values) -> str:
    """A score x 100, GLUE's way; with several seeds, mean +- standard deviation."""
    values = 100 * np.asarray(values)
    return f"{values.mean():.1f}" if len(values) == 1 else f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"


def glue_table(summary: dict, markdown: bool = False) -> list:
    """The GLUE-style table as lines: one row per task, then the average."""
    head = ["task", "like", "metric", *(COLUMNS[c] for c in summary["columns"])]
    rows = [[task, t["like"], t["metric"], *(_cell(t[c]) for c in summary["columns"])] for task, t in summary["tasks"].items()]
    rows.append(["average", "GLUE score", "mean of the rows", *(_cell(summary["average"][c]) for c in summary["columns"])])
    if markdown:
        return ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|",
                *("| " + " | ".join(r) + " |" for r in rows)]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in [head, *rows]]
