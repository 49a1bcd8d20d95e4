"""The `minibert` command: pretrain, plot, fill-mask, nsp, finetune, transfer, glue, answer, export, compare, gradcheck.

Every error a user can cause (a missing file, a bad option, a run folder that exists)
ends as one line `minibert: error: ...` and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from .backend import BACKENDS, BackendError
from .data import CORPUS_FORMATS
from .data.masking import STRATEGIES
from .io import CheckpointError
from .lm import OBJECTIVES
from .loop import TrainingError
from .runs import load_run


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is one line, like every other error of the command."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _text(value: str) -> str:
    """An argument that must hold something: a path, a sentence, a question."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def _at_least_one(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _whole_numbers(minimum: int, example: str):
    """An argparse type: a comma-separated list of whole numbers >= minimum, like `example`."""
    def parse(value: str) -> tuple:
        try:
            numbers = tuple(int(v) for v in value.split(","))
        except ValueError:
            numbers = ()
        if not numbers or min(numbers) < minimum:
            kind = "positive whole numbers" if minimum == 1 else f"whole numbers >= {minimum}"
            raise argparse.ArgumentTypeError(f"must be comma-separated {kind}, e.g. {example}, got {value!r}")
        return numbers
    return parse


_sizes = _whole_numbers(1, "700,2700")  # --sizes of transfer
_seeds = _whole_numbers(0, "0,1,2")  # --seeds of glue


def _names(value: str) -> tuple:
    """A comma-separated list of names: paraphrase,entities."""
    names = tuple(v.strip() for v in value.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"must be comma-separated names, got {value!r}")
    return names


# options whose value is one of a few words: argparse names the option and the choices
CHOICES = {"backend": BACKENDS, "masking": STRATEGIES, "corpus_format": CORPUS_FORMATS, "objective": OBJECTIVES}


def _add_config_options(p: argparse.ArgumentParser, config_cls, help_text=None, skip=()) -> None:
    """One --option per field of a config dataclass, typed and defaulted like the field."""
    help_text = help_text or {}
    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text.get(f.name))
            continue
        kind = {"int": int, "float": float, "str": _text, "str | None": _text, "int | None": int}.get(str(f.type), _text)
        if f.name in CHOICES:
            p.add_argument(flag, choices=CHOICES[f.name], default=f.default, help=help_text.get(f.name, " "))
            continue
        p.add_argument(flag, type=kind, default=f.default, metavar=f.name.upper(), help=help_text.get(f.name, " "))


COMMON_HELP = {
    "out": "run folder to create (must not exist, or be empty)",
    "steps": "training steps (one batch each)", "batch_size": "sequences (or pairs) per batch",
    "seq_length": "tokens per sequence, padding included", "lr": "peak learning rate of AdamW",
    "warmup_steps": "steps of linear warmup (default: 10%% of --steps)", "weight_decay": "AdamW's decoupled weight decay",
    "max_grad_norm": "clip the global gradient norm to this", "eval_interval": "evaluate on held-out data every N steps",
    "log_interval": "write a line to metrics.jsonl every N steps", "checkpoint_interval": "save a checkpoint every N steps",
    "seed": "seed of every random choice (data order, masks, dropout, initialization)",
    "backend": "array library: numpy (CPU) or cupy (NVIDIA GPU)", "eval_fraction": "share held out for evaluation",
}
PRETRAIN_HELP = {
    **COMMON_HELP,
    "corpus": "text file (default: the generated world, no download)",
    "corpus_format": "lines (one sentence per line, blank line between documents), prose, or auto",
    "num_documents": "documents of the generated world (without --corpus)",
    "vocab": "an existing vocab.txt (default: train a WordPiece vocab on the corpus)",
    "vocab_size": "tokens of the trained WordPiece vocabulary",
    "model": "config preset (tiny, mini, small, base) or a config.json",
    "objective": "mlm_nsp: BERT's masked LM + next sentence; left_to_right: GPT's next token; "
                 "right_to_left: the next token reading backwards (ELMo's second direction)",
    "bias_correction": "Adam's bias correction of the moments (google's BERT had none)",
    "adam_beta2": "decay of Adam's running mean of squared gradients (BERT: 0.999, RoBERTa: 0.98)",
    "masking": "exact, bernoulli, whole_word or span", "mask_prob": "share of tokens chosen for prediction",
    "mask_token_prob": "share of the chosen tokens replaced by [MASK]",
    "random_token_prob": "share of the chosen tokens replaced by a random token",
    "max_predictions": "at most this many predictions per sequence",
    "dynamic_masking": "draw new masks for every batch (--no-dynamic-masking: fixed per epoch)",
    "short_seq_prob": "share of pairs cut shorter than --seq-length, as in google's data",
    "eval_batches": "held-out batches scored at each evaluation",
}
FINETUNE_HELP = {
    **COMMON_HELP,
    "init": "a minibert pre-training run, a Hugging Face BERT folder, or scratch",
    "data": "SQuAD v1.1/v2.0 JSON (qa) or JSON lines with text, text_b, label (classify); default: generated",
    "eval_data": "held-out data in the same format (default: hold out --eval-fraction of --data)",
    "num_examples": "generated labelled examples (without --data)",
    "vocab": "scratch only: a vocab.txt", "model": "scratch only: a preset or a config.json",
    "doc_stride": "qa: tokens between the starts of two windows over a long context",
    "max_query_length": "qa: questions are cut to this many tokens",
    "max_answer_length": "qa: longest answer span, in tokens",
    "version_2": "qa: allow 'no answer' (SQuAD 2.0); on by itself when the data has unanswerable questions",
}


def _pretrain(args) -> int:
    from .train import PretrainConfig, pretrain  # the training loop loads only for training commands

    names = {f.name for f in dataclasses.fields(PretrainConfig)}
    if args.resume is not None:
        _refuse_options_with_resume(args, PretrainConfig)
    cfg = PretrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    result = pretrain(cfg, resume=args.resume, progress=not args.quiet, allow_changed_corpus=args.allow_changed_corpus)
    if result.interrupted:
        print(f"interrupted: saved step {result.step}", file=sys.stderr)
        return 130
    return 0


def _refuse_options_with_resume(args, config_cls) -> None:
    """--resume continues a run with the options it was started with; any other is refused, not ignored."""
    given = [f.name for f in dataclasses.fields(config_cls)
             if f.name in vars(args) and vars(args)[f.name] not in (None, f.default)]
    if given or getattr(args, "task", None):
        name = given[0] if given else "task"
        raise ValueError(f"--resume continues a run with the options it was started with (its train_config.json); "
                         f"drop --{name.replace('_', '-')}")


def _plot(args) -> int:
    from .plots import plot_run  # matplotlib loads only when a command draws

    figures = plot_run(args.run_dir)
    print(f"wrote {', '.join(name + '.png' for name in figures)} in {args.run_dir}")
    return 0


def _fill_mask(args) -> int:
    from .predict import fill_mask

    run = load_run(args.run_dir, kind="pretrain", objective="mlm_nsp")
    model, tokenizer = run.model, run.tokenizer
    for k, predictions in enumerate(fill_mask(model, tokenizer, args.text, args.top_k), start=1):
        print(f"[MASK] #{k}: " + ", ".join(f"{tok} ({p:.1%})" for tok, p in predictions))
    return 0


def _nsp(args) -> int:
    from .predict import next_sentence_probability

    run = load_run(args.run_dir, kind="pretrain", objective="mlm_nsp")
    model, tokenizer = run.model, run.tokenizer
    p = next_sentence_probability(model, tokenizer, args.sentence_a, args.sentence_b)
    print(f"P(IsNext) = {p:.3f}: {'B follows A' if p >= 0.5 else 'B looks like a random sentence'}")
    return 0


def _finetune(args) -> int:
    from .finetune import FinetuneConfig, finetune

    if args.resume is None and args.task is None:
        raise ValueError("finetune needs a task (qa or classify), or --resume RUN_DIR")
    names = {f.name for f in dataclasses.fields(FinetuneConfig)}
    if args.resume is not None:
        _refuse_options_with_resume(args, FinetuneConfig)
    cfg = FinetuneConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})
    result = finetune(cfg, resume=args.resume, progress=not args.quiet)
    if result["interrupted"]:
        print(f"interrupted: saved step {result['step']}", file=sys.stderr)
        return 130
    return 0


def _transfer(args) -> int:
    from .finetune import transfer_experiment

    load_run(args.run_dir, kind="pretrain", objective="mlm_nsp")  # refuse a language model in one line, before any run
    transfer_experiment(args.run_dir, args.out, task=args.task, sizes=args.sizes, progress=not args.quiet,
                        steps=args.steps, seed=args.seed, lr=args.lr, eval_fraction=args.eval_fraction)
    return 0


def _glue(args) -> int:
    from .tinyglue import run_glue

    options = {k: getattr(args, k) for k in ("lr", "batch_size", "seq_length") if getattr(args, k) is not None}
    run_glue(args.run_dir, args.out, tasks=args.tasks, steps=args.steps, seeds=args.seeds, multitask=args.multitask,
             frozen=args.frozen, progress=not args.quiet, train_examples=args.train_examples, held_out=args.held_out,
             **options)
    return 0


def _answer(args) -> int:
    from .finetune import answer

    run = load_run(args.run_dir, kind="finetune")
    if run.task["task"] != "qa":
        raise ValueError(f"{args.run_dir}: a {run.task['task']} run, not a question-answering one")
    text = answer(run.model, run.tokenizer, args.question, args.context)
    print(text if text else "(no answer)")
    return 0


def _export(args) -> int:
    from .runs import run_kind

    if run_kind(args.run_dir) == "finetune":  # a fine-tuned classifier, with its label names
        run = load_run(args.run_dir, kind="finetune")
        if not hasattr(run.model, "label_names"):
            raise ValueError(f"{args.run_dir}: a {run.task['task']} fine-tuning run; export takes a pre-training run "
                             "or a fine-tuned classifier (sequence or token classification)")
        run.model.label_names = list(run.task["labels"]) if run.task.get("labels") else None
    else:
        run = load_run(args.run_dir, kind="pretrain", objective="mlm_nsp")  # what the line below promises
    run.model.save_pretrained(args.out_dir, run.tokenizer)
    name = type(run.model).__name__
    print(f"wrote a Hugging Face BERT folder to {args.out_dir} (transformers.{name}.from_pretrained loads it)")
    return 0


def _compare(args) -> int:
    from .compare import compare
    from .train import PretrainConfig, pretrain

    given = {"bert": args.bert, "left_to_right": args.left_to_right, "right_to_left": args.right_to_left}
    runs = {k: v for k, v in given.items() if v is not None} or None
    base = PretrainConfig(steps=args.steps, seed=args.seed, num_documents=args.num_documents, model=args.model,
                          seq_length=args.seq_length)
    if runs is None:
        base.validate()  # before the folder is made
    else:  # existing runs were trained with their own options: one given here would be ignored, so refuse it
        for name in ("steps", "seed", "num_documents", "model", "seq_length"):
            if getattr(base, name) != getattr(PretrainConfig, name):
                raise ValueError(f"--{name.replace('_', '-')} is for the runs compare trains; existing runs "
                                 "(--bert, --left-to-right, --right-to-left) keep their own")
    if args.finetune_steps < 0:
        raise ValueError(f"--finetune-steps must be 0 (leave the column out) or more, got {args.finetune_steps}")
    compare(args.out, base=base if runs is None else None, runs=runs, pretrain=pretrain, progress=not args.quiet,
            glue=args.glue, finetune_steps=args.finetune_steps)
    return 0


def _gradcheck(args) -> int:
    from .selfcheck import report

    return 0 if report() else 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="minibert", description="BERT from scratch in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pre-train a BERT with masked LM + next sentence prediction",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    from .train import PretrainConfig

    _add_config_options(p, PretrainConfig, PRETRAIN_HELP, skip=("corpus_sha256",))
    p.add_argument("--resume", metavar="RUN_DIR", type=_text, help="continue a run from its latest checkpoint")
    p.add_argument("--allow-changed-corpus", action="store_true",
                   help="with --resume: go on although the corpus file changed since the run started")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("plot", help="draw a pre-training run's plots again")
    p.add_argument("run_dir", type=_text, help="a pre-training run folder")
    p.set_defaults(func=_plot)

    p = sub.add_parser("fill-mask", help="predict the words behind [MASK]")
    p.add_argument("run_dir", type=_text, help="a pre-training run folder")
    p.add_argument("text", type=_text, help="text with one or more [MASK]")
    p.add_argument("--top-k", type=_at_least_one, default=5, metavar="K", help="predictions shown per [MASK] (default: 5)")
    p.set_defaults(func=_fill_mask)

    p = sub.add_parser("nsp", help="probability that sentence B follows sentence A")
    p.add_argument("run_dir", type=_text, help="a pre-training run folder")
    p.add_argument("sentence_a", type=_text, help="the first sentence")
    p.add_argument("sentence_b", type=_text, help="the sentence that may or may not follow it")
    p.set_defaults(func=_nsp)

    from .finetune import FinetuneConfig
    from .tasks import TASKS

    p = sub.add_parser("finetune", help="fine-tune for question answering (qa) or classification (classify)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("task", nargs="?", choices=list(TASKS), help="what to fine-tune for (not with --resume)")
    _add_config_options(p, FinetuneConfig, FINETUNE_HELP, skip=("task",))
    p.add_argument("--resume", metavar="RUN_DIR", type=_text, help="continue a fine-tuning run from its latest checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_finetune)

    p = sub.add_parser("transfer", help="fine-tune from a pre-training run and from scratch at several data sizes, and compare")
    p.add_argument("run_dir", type=_text, help="a minibert pre-training run")
    p.add_argument("--task", choices=list(TASKS), default="qa", help="what to fine-tune for (default: qa)")
    p.add_argument("--out", default="runs/transfer", type=_text, help="folder for the runs and the plot (default: runs/transfer)")
    p.add_argument("--steps", type=int, default=300, help="fine-tuning steps of each run (default: 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of both runs (default: 0)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: 0.001)")
    p.add_argument("--sizes", type=_sizes, default=(700, 2700), metavar="N,N,...",
                   help="labelled training examples (questions, for qa) of each pair of runs (default: 700,2700)")
    p.add_argument("--eval-fraction", type=float, default=0.1,
                   help="share of the largest size's generated data held out; every size is scored on that many "
                        "(default: 0.1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_transfer)

    from .tinyglue import GLUE_DEFAULTS, GLUE_HELD_OUT, GLUE_STEPS, GLUE_TRAIN_EXAMPLES

    p = sub.add_parser("glue", help="score a pre-training run on the tiny GLUE: fine-tuned vs from scratch, per task")
    p.add_argument("run_dir", type=_text, help="a minibert pre-training run")
    p.add_argument("--out", default="runs/glue", type=_text, help="folder for the runs and the table (default: runs/glue)")
    p.add_argument("--tasks", type=_names, default=None, metavar="NAME,NAME,...",
                   help="tasks to run (default: acceptable,paraphrase,entailment,entities)")
    p.add_argument("--steps", type=_at_least_one, default=GLUE_STEPS, help=f"fine-tuning steps per task and run (default: {GLUE_STEPS})")
    p.add_argument("--seeds", type=_seeds, default=(0,), metavar="N,N,...",
                   help="repeat every run with each seed; the table shows mean ± standard deviation (default: 0)")
    p.add_argument("--frozen", action="store_true", help="add a softmax regression on the frozen encoder's features, "
                                                         "and on a random encoder's")
    p.add_argument("--multitask", action="store_true", help="add one encoder fine-tuned on every task, a head per task")
    for name, kind in (("lr", float), ("batch_size", int), ("seq_length", int)):
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, metavar=name.upper(),
                       help=f"{FINETUNE_HELP.get(name, name)} (default: {GLUE_DEFAULTS[name]})")
    p.add_argument("--train-examples", type=int, default=GLUE_TRAIN_EXAMPLES, metavar="N",
                   help=f"generated labelled examples per task to train on (default: {GLUE_TRAIN_EXAMPLES})")
    p.add_argument("--held-out", type=int, default=GLUE_HELD_OUT, metavar="N",
                   help=f"generated examples per task to score on (default: {GLUE_HELD_OUT})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_glue)

    p = sub.add_parser("answer", help="answer a question about a context with a fine-tuned QA run")
    p.add_argument("run_dir", type=_text, help="a fine-tuning run for qa")
    p.add_argument("question", type=_text, help="the question")
    p.add_argument("context", type=_text, help="the text that holds the answer")
    p.set_defaults(func=_answer)

    p = sub.add_parser("export", help="write a pre-training or fine-tuning run as a Hugging Face BERT folder")
    p.add_argument("run_dir", type=_text, help="a pre-training run, or a fine-tuning run (its labels become id2label)")
    p.add_argument("out_dir", type=_text, help="folder to write (new or empty)")
    p.set_defaults(func=_export)

    p = sub.add_parser("compare", help="GPT vs BERT vs ELMo: pre-train three objectives alike and score blanks and tiny GLUE")
    p.add_argument("--out", required=True, type=_text, help="folder for the three runs, compare.json and compare.md "
                                                            "(new, or empty)")
    p.add_argument("--steps", type=_at_least_one, default=PretrainConfig.steps, help="pre-training steps of each run "
                                                                                    f"(default: {PretrainConfig.steps})")
    p.add_argument("--seed", type=int, default=0, help="seed of every run (default: 0)")
    p.add_argument("--num-documents", type=int, default=PretrainConfig.num_documents,
                   help=f"documents of the generated world (default: {PretrainConfig.num_documents})")
    p.add_argument("--model", type=_text, default=PretrainConfig.model, help="config preset or a config.json "
                                                                             f"(default: {PretrainConfig.model})")
    p.add_argument("--seq-length", type=int, default=PretrainConfig.seq_length,
                   help=f"tokens per pre-training sequence (default: {PretrainConfig.seq_length})")
    p.add_argument("--finetune-steps", type=int, default=200,
                   help="fine-tuning steps per tiny GLUE task for the fine-tuned column; 0 leaves it out (default: 200)")
    for flag, objective in (("--bert", "mlm_nsp"), ("--left-to-right", "left_to_right"), ("--right-to-left", "right_to_left")):
        p.add_argument(flag, metavar="RUN_DIR", type=_text, help=f"an existing {objective} run instead of training one "
                                                                 "(give all three; they must share vocab and config)")
    p.add_argument("--glue", action=argparse.BooleanOptionalAction, default=True,
                   help="the frozen-feature tiny GLUE column (--no-glue: blanks only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_compare)

    p = sub.add_parser("gradcheck", help="check every hand-written backward against central differences")
    p.set_defaults(func=_gradcheck)
    return parser


# OSError covers a missing file, a folder where a file should be, no permission and a full disk
USER_ERRORS = (ValueError, KeyError, OSError, CheckpointError, BackendError)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (*USER_ERRORS, TrainingError) as e:
        message = str(e).replace("\n", " ")
        print(f"minibert: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("minibert: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
