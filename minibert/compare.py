"""GPT vs BERT vs ELMo, measured: three pre-training objectives on the same world, tokenizer,
model size, steps and seed, scored on the same blanks.

A blank is a word of a sentence the world writes, chosen so that its answer is decided

    (a) only by the words AFTER it:   "[BLANK] is the capital of norway ."     -> oslo
    (b) only by the words BEFORE it:  "oslo is the capital of [BLANK] ."       -> norway

and each model fills it the only way its objective allows:

    BERT (mlm_nsp)          [MASK] at the blank; the MLM head's argmax over the vocabulary
    GPT (left_to_right)     the next-token prediction at the token before the blank: sees (b)'s clue, not (a)'s
    ELMo (both directions)  argmax_w  log p_forward(w | words before) + log p_backward(w | words after)
    no pre-training         BertForPreTraining with random weights, scored as BERT

ELMo's two language models never read both sides in one network; they meet only here, at
the output, as a product of their two distributions (`combine_directions`).

`compare` trains the three runs (or takes three existing ones) and writes the table of
compare.md / compare.json: the blanks, the tiny GLUE average of a probe on frozen features
(`minibert.tinyglue.probe`), and the tiny GLUE average fine-tuned (`minibert.tinyglue.run_glue`)
from the BERT run, from the GPT-style run (causal, reading the last token) and from scratch.
ELMo's row has no fine-tuned score: its features are meant to be used frozen.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend import to_host
from .data.corpus import COUNTRIES, COUNTRY_TRAITS, Fact
from .io import write_text_atomic
from .lm import ElmoFeatures
from .model import BertForPreTraining
from .runs import folder_kept_only_if_used, load_run

BLANK = "[BLANK]"
# the runs' folders in DIR, and the objective each is pre-trained with
RUN_NAMES = {"bert": "mlm_nsp", "left_to_right": "left_to_right", "right_to_left": "right_to_left"}


# ------------------------------------------------------------------ the blanks
@dataclass(frozen=True)
class Relation:
    """A fact the world writes in one sentence, with a word before and a word after:
    template "{first} is the capital of {second}." and the (first, second) pairs it holds for.
    Each pair is one-to-one, so either word decides the other."""

    name: str
    template: str
    pairs: tuple


RELATIONS = (  # templates as minibert/data/corpus.py writes them (city_facts, country_facts)
    Relation("capital", "{first} is the capital of {second}.", tuple((v[3], c) for c, v in COUNTRIES.items())),
    Relation("language", "The main language of {first} is {second}.", tuple((c, v[1]) for c, v in COUNTRIES.items())),
    Relation("known for", "{first} is a country known for its {second}.",
             tuple((c, t[0]) for c, t in COUNTRY_TRAITS.items())),
)


@dataclass(frozen=True)
class BlankSentence:
    """text: a sentence with BLANK in place of `answer`; decided_by: "after" (a) or "before" (b);
    candidates: every word the world puts in that slot of the relation."""

    text: str
    answer: str
    decided_by: str
    relation: str
    candidates: tuple


def blank_sentences(tokenizer=None) -> list:
    """Both blanks of every fact of RELATIONS, (a) first. With a tokenizer, only the facts
    whose two words are each one WordPiece token (a model predicts one token per position)."""
    out = {"after": [], "before": []}
    for rel in RELATIONS:
        first_words, second_words = tuple(p[0] for p in rel.pairs), tuple(p[1] for p in rel.pairs)
        for first, second in rel.pairs:
            if tokenizer is not None and not all(len(tokenizer.tokenize(w)) == 1 for w in (first, second)):
                continue
            # Fact writes the sentence as the corpus does ("Oslo is the capital of Norway.")
            out["after"].append(BlankSentence(Fact(rel.template.format(first=BLANK, second=second)).sentence,
                                              first, "after", rel.name, first_words))
            out["before"].append(BlankSentence(Fact(rel.template.format(first=first, second=BLANK)).sentence,
                                               second, "before", rel.name, second_words))
    return out["after"] + out["before"]


def chance_levels(sentences) -> dict:
    """What guessing scores without reading the clue: a uniform guess among the slot's candidates
    (mean of 1 / candidates), and always the most frequent answer of each relation's slot."""
    uniform = float(np.mean([1 / len(s.candidates) for s in sentences]))
    groups = {}
    for s in sentences:
        groups.setdefault(s.relation, []).append(s.answer)
    most_frequent = sum(max(answers.count(a) for a in answers) for answers in groups.values()) / len(sentences)
    return {"uniform_guess": uniform, "most_frequent_answer": most_frequent}


def encode_blanks(sentences, tokenizer):
    """sentences -> (batch (N, T) with [MASK] at each blank, blank positions (N,), answer ids (N,))."""
    batch = tokenizer.batch_encode([s.text.replace(BLANK, "[MASK]") for s in sentences])
    rows, positions = np.nonzero(batch["input_ids"] == tokenizer.mask_id)
    if not np.array_equal(rows, np.arange(len(sentences))):
        raise ValueError("every blank sentence needs exactly one blank")
    answers = np.array([tokenizer.convert_tokens_to_ids([s.answer])[0] for s in sentences])
    return batch, positions, answers


# ------------------------------------------------------------------ how each model fills a blank
def log_softmax(logits):
    """(N, V) -> log probabilities, in float64 on the host."""
    x = np.asarray(to_host(logits), dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def masked_lm_scores(model, batch, positions):
    """BERT: log p(w | both sides) from the MLM head at each blank.   -> (N, V)"""
    out = model.forward({**batch, "masked_lm_positions": positions[:, None]})
    return log_softmax(out.mlm_logits[:, 0])


def language_model_scores(model, batch, positions):
    """One direction: log p(w | the words on its side) at each blank.   -> (N, V)

    A left-to-right model scores token t at position t - 1 (it has read 0..t-1), a
    right-to-left one at t + 1 (it has read t+1..L-1): neither has read the blank itself."""
    reader = positions + (1 if model.right_to_left else -1)  # (N,)
    logits = to_host(model.forward(batch).extras["logits"])  # (N, T, V), input order
    return log_softmax(logits[np.arange(len(positions)), reader])


def combine_directions(forward_scores, backward_scores):
    """ELMo at the output: log p_forward(w | before) + log p_backward(w | after), (N, V) each.
    A product of the two distributions: a word must be likely from both sides to win."""
    return log_softmax(forward_scores) + log_softmax(backward_scores)


def blank_accuracy(scores, answers, sentences) -> dict:
    """{"after": share right of the (a) blanks, "before": of the (b) blanks}; argmax over the vocabulary."""
    right = scores.argmax(axis=-1) == answers
    return {d: float(np.mean([r for r, s in zip(right, sentences) if s.decided_by == d])) for d in ("after", "before")}


def score_blanks(models: dict, tokenizer) -> dict:
    """models: {"bert", "left_to_right", "right_to_left", "scratch"} -> accuracy of each row on
    (a) and (b), overall and per relation, the sentences' count and chance levels."""
    sentences = blank_sentences(tokenizer)
    if not sentences:
        raise ValueError("no blank sentence has one-token answers in this vocabulary")
    batch, positions, answers = encode_blanks(sentences, tokenizer)
    forward = language_model_scores(models["left_to_right"], batch, positions)
    backward = language_model_scores(models["right_to_left"], batch, positions)
    rows = {
        "bert": masked_lm_scores(models["bert"], batch, positions),
        "gpt": forward,
        "elmo": combine_directions(forward, backward),
        "scratch": masked_lm_scores(models["scratch"], batch, positions),
        "right_to_left_only": backward,  # not a row of the table: the mirror of GPT, for the reader
    }
    chance = {d: chance_levels([s for s in sentences if s.decided_by == d]) for d in ("after", "before")}
    of = lambda rel: [i for i, s in enumerate(sentences) if s.relation == rel]  # noqa: E731 - one relation's rows
    by_relation = {name: {r.name: blank_accuracy(s[of(r.name)], answers[of(r.name)], [sentences[i] for i in of(r.name)])
                          for r in RELATIONS if of(r.name)} for name, s in rows.items()}
    return {"accuracy": {name: blank_accuracy(s, answers, sentences) for name, s in rows.items()},
            "accuracy_by_relation": by_relation,
            "num_sentences": {d: sum(s.decided_by == d for s in sentences) for d in ("after", "before")},
            "chance": chance}


# ------------------------------------------------------------------ features for the frozen probe
def featurizers(models: dict) -> dict:
    """Row -> featurize(batch) -> (B, T, D) host array: the encoder's last layer (BERT, GPT,
    scratch; D = H), ELMo's two directions side by side (D = 2H)."""
    from .tinyglue import encoder_features

    elmo = ElmoFeatures(models["left_to_right"], models["right_to_left"])
    return {"bert": encoder_features(models["bert"]), "gpt": encoder_features(models["left_to_right"]),
            "elmo": lambda batch: to_host(elmo.forward(batch)), "scratch": encoder_features(models["scratch"])}


def frozen_glue(models: dict, tokenizer, seed: int = 0, num_train: int = 400, num_eval: int = 200,
                seq_length: int = 64) -> dict:
    """Row -> {"tasks": {task: score}, "average"}: tinyglue.probe on each model's frozen features."""
    from .data.glue import GLUE_TASKS
    from .tinyglue import probe

    out = {}
    for row, featurize in featurizers(models).items():
        scores = {task: float(probe(featurize, tokenizer, task, num_train=num_train, num_eval=num_eval, seed=seed,
                                    seq_length=seq_length)["score"]) for task in GLUE_TASKS}
        out[row] = {"tasks": scores, "average": float(np.mean(list(scores.values())))}
    return out


# ------------------------------------------------------------------ the runs
def check_runs(paths: dict) -> None:
    """Three existing runs: each the objective of its slot, and all three with the same vocabulary
    and model config (else their scores would not compare like with like)."""
    first = None
    for slot, path in paths.items():
        path = Path(path)
        load_run(path, kind="pretrain", objective=RUN_NAMES[slot])  # one line if it is not a run of that objective
        files = {"vocab.txt": (path / "vocab.txt").read_bytes(),
                 "config.json": json.loads((path / "config.json").read_text())}
        if first is None:
            first = (path, files)
        elif files != first[1]:
            differs = "vocab.txt" if files["vocab.txt"] != first[1]["vocab.txt"] else "config.json"
            raise ValueError(f"{path} and {first[0]} have different {differs}; compared runs must share the "
                             "vocabulary and the model config (pre-train the later ones with --vocab and --model "
                             "pointing at the first run's files)")


def pretrain_three(pretrain, base, out: Path, echo=print, progress: bool = True) -> tuple:
    """Pre-train BERT, then the two language models with the first run's vocab.txt and config.json,
    everything else as in `base` (a PretrainConfig). -> ({slot: run folder}, {slot: seconds}).
    pretrain: minibert.train.pretrain, handed in by the caller (only the command line and the
    training modules import the training loop: tests/test_architecture.py)."""
    paths, seconds = {}, {}
    for slot, objective in RUN_NAMES.items():
        cfg = dataclasses.replace(base, out=str(out / slot), objective=objective)
        if slot != "bert":  # the same tokenizer and model config as the first run
            first = out / "bert"
            cfg = dataclasses.replace(cfg, vocab=str(first / "vocab.txt"), model=str(first / "config.json"))
        echo(f"pre-training {slot} ({objective}) into {cfg.out}")
        t0 = time.perf_counter()
        pretrain(cfg, progress=progress, echo=echo)
        seconds[slot], paths[slot] = time.perf_counter() - t0, out / slot
    return paths, seconds


def load_models(paths: dict) -> tuple:
    """({"bert", "left_to_right", "right_to_left", "scratch"}: models, tokenizer, the BERT run's
    train_config); scratch is the BERT run's config with random weights from the runs' seed."""
    runs = {slot: load_run(path, kind="pretrain") for slot, path in paths.items()}
    models = {slot: run.model for slot, run in runs.items()}
    settings = runs["bert"].train_config
    models["scratch"] = BertForPreTraining(models["bert"].config, seed=settings.get("seed", 0))
    return models, runs["bert"].tokenizer, settings


ROWS = {"bert": "BERT (MLM+NSP)", "gpt": "GPT-style (left to right)",
        "elmo": "ELMo-style (both directions, concatenated)", "scratch": "no pre-training"}
COLUMNS = ("(a) blank decided after", "(b) blank decided before", "tiny GLUE avg, frozen features",
           "tiny GLUE avg, fine-tuned")


def table_rows(blanks: dict, glue_frozen: dict | None, glue_finetuned: dict | None = None) -> list:
    """[{"model", column: value or None}], one per row of ROWS."""
    rows = []
    for key, label in ROWS.items():
        tuned = (glue_finetuned or {}).get(key)
        values = [blanks["accuracy"][key]["after"], blanks["accuracy"][key]["before"],
                  glue_frozen[key]["average"] if glue_frozen else None,
                  tuned["average"] if tuned else None]
        rows.append({"model": label, **dict(zip(COLUMNS, values))})
    return rows


def markdown_table(result: dict) -> str:
    """compare.md: the table, what guessing scores, and where the numbers come from."""
    columns = [c for c in COLUMNS if c != COLUMNS[2] or result["glue_frozen"] is not None]
    show = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["| model | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    lines += [f"| {row['model']} | " + " | ".join(show(row[c]) for c in columns) + " |" for row in result["table"]]
    b = result["blanks"]
    lines += ["", f"{b['num_sentences']['after']} blanks of each kind, answers one token; the model's argmax over the "
                  "whole vocabulary counts."]
    for d, name in (("after", "(a)"), ("before", "(b)")):
        c = b["chance"][d]
        lines.append(f"chance {name}: uniform guess among the slot's candidates {c['uniform_guess']:.3f}, "
                     f"always the most frequent answer {c['most_frequent_answer']:.3f}")
    lines.append("ELMo fills a blank with log p_forward + log p_backward (the directions meet at the output); "
                 "its GLUE features are the two directions' states side by side")
    r2l = b["accuracy"]["right_to_left_only"]
    lines.append(f"the right-to-left model alone (GPT's mirror): (a) {r2l['after']:.3f}, (b) {r2l['before']:.3f}")
    if result["glue_frozen"] is None:
        lines.append("tiny GLUE, frozen features: left out (--no-glue)")
    if result["glue_finetuned"] is None:
        reason = "--no-glue" if result["glue_frozen"] is None else "--finetune-steps 0"
        lines.append(f"tiny GLUE, fine-tuned: left out ({reason})")
    else:
        lines.append(f"tiny GLUE, fine-tuned: {result['finetune_steps']} steps per task (minibert glue); "
                     "ELMo-style: its features are used frozen, not fine-tuned")
    if result["seconds"]:
        lines.append("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in result["seconds"].items()))
    return "\n".join(lines) + "\n"


def finetuned_glue(runs: dict, out: Path, steps: int, seed: int, echo=print, **options) -> dict:
    """Row -> {"tasks": {task: score}, "average"}: the tiny GLUE fine-tuned (run_glue) from the BERT
    run and from scratch, and from the GPT-style run (a causal classifier reading the last token).
    options: run_glue's (train_examples, held_out, lr, ...)."""
    from .tinyglue import run_glue

    quiet = lambda *a, **k: None  # noqa: E731 - the runs' own summaries; the table says it all
    bert = run_glue(runs["bert"], out / "glue-bert", steps=steps, seeds=(seed,), echo=quiet, **options)
    gpt = run_glue(runs["left_to_right"], out / "glue-gpt", steps=steps, seeds=(seed,), starts=("pretrained",),
                   echo=quiet, **options)
    rows = {}
    for row, summary, column in (("bert", bert, "pretrained"), ("gpt", gpt, "pretrained"), ("scratch", bert, "scratch")):
        rows[row] = {"tasks": {t: s[column][0] for t, s in summary["tasks"].items()},
                     "average": summary["average"][column][0]}
    echo(f"fine-tuned the tiny GLUE from bert, gpt and scratch ({steps} steps per task)")
    return rows


def compare(out, base=None, runs: dict | None = None, pretrain=None, echo=print, progress: bool = True,
            glue: bool = True, glue_sizes: tuple = (200, 500), finetune_steps: int = 200,
            finetune_options: dict | None = None) -> dict:
    """The whole comparison into the folder `out` (new, or empty): pre-train the three runs with
    `pretrain` (minibert.train.pretrain) from `base` (a PretrainConfig; its out and objective are
    set here), or take `runs`
    ({"bert", "left_to_right", "right_to_left"}: existing run folders); score; write
    compare.json and compare.md. glue_sizes: the probe's (training, held-out) examples per task, as
    `minibert glue` uses by default;
    finetune_steps: per task, for the fine-tuned column (0: left out), with run_glue's
    finetune_options (train_examples, held_out, lr, ...).
    Returns what compare.json holds."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder; choose another --out")
    if runs is not None:
        if set(runs) != set(RUN_NAMES):
            raise ValueError("--bert, --left-to-right and --right-to-left name existing runs together: give all three")
        check_runs(runs)  # before anything is written
    start = time.perf_counter()
    with folder_kept_only_if_used(out):
        seconds = {}
        if runs is None:
            runs, seconds = pretrain_three(pretrain, base, out, echo, progress)
        models, tokenizer, settings = load_models(runs)
        blanks = score_blanks(models, tokenizer)
        seed, seq_length = settings.get("seed", 0), settings.get("seq_length", 64)
        glue_frozen = frozen_glue(models, tokenizer, seed, *glue_sizes, seq_length) if glue else None
        glue_finetuned = (finetuned_glue(runs, out, finetune_steps, seed, echo, **(finetune_options or {}))
                          if glue and finetune_steps else None)
        result = {"runs": {k: str(v) for k, v in runs.items()}, "blanks": blanks, "glue_frozen": glue_frozen,
                  "glue_finetuned": glue_finetuned, "finetune_steps": finetune_steps, "seconds": seconds}
        result["table"] = table_rows(blanks, glue_frozen, glue_finetuned)
        result["seconds"]["total"] = time.perf_counter() - start
        text = markdown_table(result)
        write_text_atomic(out / "compare.json", json.dumps(result, indent=2) + "\n")
        write_text_atomic(out / "compare.md", text)
    echo(text)
    return result

