"""GPT vs BERT vs ELMo: the blanks have one answer in the world, each model reads only the side
its objective allows, ELMo's combination is a product, and `minibert compare` refuses bad input."""

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import minibert as mb
from minibert.cli import main
from minibert.compare import (BLANK, RELATIONS, blank_sentences, chance_levels, combine_directions, compare,
                              encode_blanks, language_model_scores, masked_lm_scores)
from minibert.data.corpus import Fact, World, city_facts, country_facts, document_facts
from minibert.lm import BertLMHeadModel
from minibert.train import PretrainConfig, pretrain

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 32, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
QUIET = dict(progress=False, echo=lambda *a: None)


@pytest.fixture(scope="module")
def world():
    docs = mb.generate_corpus(3000, seed=0)
    return docs, mb.WordPieceTokenizer(mb.train_wordpiece([" ".join(d) for d in docs], 4000))


# ------------------------------------------------------------------ the blanks
def test_every_blank_has_exactly_one_answer_in_the_world():
    """Every sentence of a relation's template the world writes states one of the relation's
    pairs, every pair is written, and the pairs are one-to-one: so either word decides the
    other, and a blank has exactly one right answer."""
    sentences = {s.lower() for seed in (0, 1, 2) for d in mb.generate_corpus(3000, seed=seed) for s in d}
    for rel in RELATIONS:
        template = re.escape(rel.template.lower()).replace(r"\{first\}", r"([\w ]+)").replace(r"\{second\}", r"([\w ]+)")
        written = {m.groups() for s in sentences if (m := re.fullmatch(template, s))}
        assert written == set(rel.pairs), (rel.name, written ^ set(rel.pairs))
        assert len({a for a, _ in rel.pairs}) == len({b for _, b in rel.pairs}) == len(rel.pairs)
    for blank in blank_sentences():  # and each blank sentence is its relation's template with one word left out
        rel = next(r for r in RELATIONS if r.name == blank.relation)
        pair = next(p for p in rel.pairs if blank.answer in p)
        filled = Fact(rel.template.format(first=pair[0], second=pair[1])).sentence
        assert blank.text.replace(BLANK, blank.answer).lower() == filled.lower()
        assert (blank.answer == pair[0]) == (blank.decided_by == "after")


def test_blanks_are_one_token_and_come_in_both_directions(world):
    _, tokenizer = world
    sentences = blank_sentences(tokenizer)
    after = [s for s in sentences if s.decided_by == "after"]
    before = [s for s in sentences if s.decided_by == "before"]
    assert len(after) == len(before) >= 30  # all but "maple syrup", which is two words
    assert all(len(tokenizer.tokenize(s.answer)) == 1 for s in sentences)
    batch, positions, answers = encode_blanks(sentences, tokenizer)
    assert (batch["input_ids"][np.arange(len(sentences)), positions] == tokenizer.mask_id).all()
    assert tokenizer.convert_ids_to_tokens(answers.tolist()) == [s.answer for s in sentences]
    # (a) and (b) blank the two words of the same facts
    assert sorted((s.relation, s.text.replace(BLANK, s.answer).lower()) for s in after) == \
        sorted((s.relation, s.text.replace(BLANK, s.answer).lower()) for s in before)


def test_chance_levels_by_hand():
    from minibert.compare import BlankSentence

    s = [BlankSentence("x", "a", "before", "r", ("a", "b")), BlankSentence("x", "a", "before", "r", ("a", "b")),
         BlankSentence("x", "b", "before", "r", ("a", "b")), BlankSentence("x", "c", "before", "q", ("c", "d", "e", "f"))]
    levels = chance_levels(s)
    assert levels["uniform_guess"] == pytest.approx((1 / 2 + 1 / 2 + 1 / 2 + 1 / 4) / 4)
    assert levels["most_frequent_answer"] == pytest.approx((2 + 1) / 4)  # "a" twice in r, "c" once in q


# ------------------------------------------------------------------ how the models fill a blank
def test_elmo_combination_is_a_product_on_a_toy_distribution():
    p_forward = np.array([[0.90, 0.08, 0.02]])  # from the words before: surely word 0
    p_backward = np.array([[0.001, 0.30, 0.699]])  # from the words after: word 0 is nearly impossible
    scores = combine_directions(np.log(p_forward) + 5.0, np.log(p_backward) - 2.0)  # logits, any offset
    np.testing.assert_allclose(scores, np.log(p_forward) + np.log(p_backward), rtol=1e-12)
    # the product picks word 1 (0.024 vs 0.0009 and 0.014); a mixture (p_f + p_b) / 2 would pick word 0
    assert scores.argmax() == 1 and ((p_forward + p_backward) / 2).argmax() == 0


def test_each_direction_reads_only_its_side(world):
    """A left-to-right model's score for a blank must not move when the words after it change,
    a right-to-left one's when the words before it change; BERT's moves for both."""
    _, tokenizer = world
    config = mb.BertConfig(vocab_size=len(tokenizer), **TINY)
    forward, backward = BertLMHeadModel(config, seed=1), BertLMHeadModel(config, seed=2, right_to_left=True)
    bert = mb.BertForPreTraining(config, seed=3)
    sentences = [s for s in blank_sentences(tokenizer) if s.relation == "language"]
    original, positions, _ = encode_blanks(sentences, tokenizer)
    for side, model, moved in (("after", forward, bert), ("before", backward, bert)):
        changed = {k: v.copy() for k, v in original.items()}
        T = (original["attention_mask"].sum(axis=1))  # (N,) real tokens
        for n, p in enumerate(positions):  # another country or language on the other side of the blank
            span = range(p + 1, T[n] - 1) if side == "after" else range(1, p)
            for t in span:
                changed["input_ids"][n, t] = (original["input_ids"][n, t] + 7) % len(tokenizer)
        np.testing.assert_array_equal(language_model_scores(model, original, positions),
                                      language_model_scores(model, changed, positions), err_msg=side)
        assert not np.allclose(masked_lm_scores(moved, original, positions), masked_lm_scores(moved, changed, positions))


def _city_and_country_corpus(path: Path, n: int = 300) -> Path:
    """Documents about cities and countries only, where the blanks' facts come often."""
    world, rng = World(0), random.Random(1)
    docs = [[f.sentence for f in document_facts(world, rng, (city_facts, country_facts)[i % 2])] for i in range(n)]
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n")
    return path


def test_a_trained_left_to_right_model_fills_blanks_decided_before(tmp_path):
    """GPT, trained on the world's text, fills (b) far above chance and (a) not above it: it
    reads the clue of (b), which comes before the blank, and never that of (a). (Measured: one
    layer learns the facts after about 800 steps, suddenly; 1000 steps gave 0.83 on (b).)"""
    (tmp_path / "model.json").write_text(json.dumps({**TINY, "num_hidden_layers": 1}))
    corpus = _city_and_country_corpus(tmp_path / "c.txt")
    cfg = PretrainConfig(out=str(tmp_path / "run"), corpus=str(corpus), objective="left_to_right",
                         model=str(tmp_path / "model.json"), steps=1000, seq_length=32, batch_size=16, lr=1e-2,
                         eval_batches=2, eval_interval=1000, checkpoint_interval=1000, seed=2)
    result = pretrain(cfg, plots=False, **QUIET)
    sentences = blank_sentences(result.tokenizer)
    batch, positions, answers = encode_blanks(sentences, result.tokenizer)
    right = language_model_scores(result.model, batch, positions).argmax(axis=1) == answers
    accuracy = {d: right[[s.decided_by == d for s in sentences]].mean() for d in ("after", "before")}
    chance = max(chance_levels(sentences).values())
    assert accuracy["before"] > 3 * chance, accuracy
    # every (a) blank of a relation has the same words before it, so GPT gives them all one answer
    assert accuracy["after"] <= chance + 1e-9, accuracy


# ------------------------------------------------------------------ minibert compare
@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """Three tiny runs with one vocabulary and config, and a fourth with another vocabulary."""
    base = tmp_path_factory.mktemp("three")
    (base / "model.json").write_text(json.dumps(TINY))
    common = dict(num_documents=120, steps=2, seq_length=32, batch_size=8, eval_batches=1, seed=4)
    first = PretrainConfig(out=str(base / "bert"), model=str(base / "model.json"), **common)
    pretrain(first, plots=False, **QUIET)
    shared = dict(vocab=str(base / "bert" / "vocab.txt"), model=str(base / "bert" / "config.json"), **common)
    for name in ("left_to_right", "right_to_left"):
        pretrain(PretrainConfig(out=str(base / name), objective=name, **shared), plots=False, **QUIET)
    other = dict(common, num_documents=60)
    pretrain(PretrainConfig(out=str(base / "other"), model=str(base / "model.json"), objective="left_to_right", **other),
             plots=False, **QUIET)
    return base


def test_compare_of_existing_runs_writes_the_table(three_runs, tmp_path):
    runs = {k: three_runs / k for k in ("bert", "left_to_right", "right_to_left")}
    result = compare(tmp_path / "cmp", runs=runs, glue_sizes=(40, 20), finetune_steps=2,
                     finetune_options=dict(train_examples=20, held_out=20, seq_length=32), **QUIET)
    assert {p.name for p in (tmp_path / "cmp").iterdir()} == {"compare.json", "compare.md", "glue-bert", "glue-gpt"}
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [row["model"] for row in saved["table"]] == ["BERT (MLM+NSP)", "GPT-style (left to right)",
                                                        "ELMo-style (both directions, concatenated)", "no pre-training"]
    for row in saved["table"]:
        assert 0 <= row["(a) blank decided after"] <= 1 and 0 <= row["(b) blank decided before"] <= 1
        fine_tuned = row["tiny GLUE avg, fine-tuned"]
        assert fine_tuned is None if row["model"].startswith("ELMo") else isinstance(fine_tuned, float)
        assert isinstance(row["tiny GLUE avg, frozen features"], float)
    assert set(saved["glue_frozen"]["elmo"]["tasks"]) == set(mb.data.GLUE_TASKS)
    assert set(saved["glue_finetuned"]) == {"bert", "gpt", "scratch"}
    gpt_run = next((tmp_path / "cmp" / "glue-gpt").glob("acceptable-pretrained-*"))
    from minibert.runs import load_run

    assert load_run(gpt_run, kind="finetune").model.causal  # GPT-style fine-tuning keeps the causal mask
    assert result["blanks"]["num_sentences"]["after"] == result["blanks"]["num_sentences"]["before"] > 0
    text = (tmp_path / "cmp" / "compare.md").read_text()
    assert text.startswith("| model | (a) blank decided after |") and "| no pre-training |" in text


def test_compare_trains_three_runs_alike(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps(TINY))
    base = PretrainConfig(model=str(tmp_path / "model.json"), num_documents=120, steps=3, seq_length=32, batch_size=8,
                          eval_batches=1, seed=6)
    result = compare(tmp_path / "cmp", base=base, pretrain=pretrain, glue=False, **QUIET)
    out = tmp_path / "cmp"
    assert {p.name for p in out.iterdir()} == {"bert", "left_to_right", "right_to_left", "compare.json", "compare.md"}
    settings = {name: json.loads((out / name / "train_config.json").read_text()) for name in ("bert", "left_to_right",
                                                                                             "right_to_left")}
    for name, cfg in settings.items():  # the same options but the objective (and the shared vocab and config)
        assert cfg["objective"] == {"bert": "mlm_nsp"}.get(name, name)
        assert (cfg["steps"], cfg["seed"], cfg["num_documents"], cfg["batch_size"]) == (3, 6, 120, 8)
        assert (out / name / "vocab.txt").read_bytes() == (out / "bert" / "vocab.txt").read_bytes()
        assert json.loads((out / name / "config.json").read_text()) == json.loads((out / "bert" / "config.json").read_text())
    assert set(result["seconds"]) == {"bert", "left_to_right", "right_to_left", "total"}
    assert result["glue_frozen"] is None and "frozen features" not in (out / "compare.md").read_text().splitlines()[0]
    text = (out / "compare.md").read_text()  # why the GLUE columns are missing: what was asked, not a missing module
    assert "frozen features: left out (--no-glue)" in text and "fine-tuned: left out (--no-glue)" in text


def _one_line_error(capsys, argv, *fragments):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code != 0, err
    assert len(err.splitlines()) == 1 and err.startswith("minibert"), err
    assert "error: " in err, err
    for fragment in fragments:
        assert fragment in err, err


def test_compare_refuses_bad_input(three_runs, tmp_path, capsys):
    runs = ["--bert", str(three_runs / "bert"), "--left-to-right", str(three_runs / "left_to_right"),
            "--right-to-left", str(three_runs / "right_to_left")]
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    _one_line_error(capsys, ["compare", "--out", str(full), *runs], str(full), "not an empty folder")
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    _one_line_error(capsys, ["compare", "--out", str(a_file), *runs], str(a_file))
    out = tmp_path / "new" / "cmp"
    _one_line_error(capsys, ["compare", "--out", str(out), *runs[:2]], "give all three")
    _one_line_error(capsys, ["compare", "--out", str(out), *runs, "--steps", "5"], "--steps", "keep their own")
    swapped = [runs[0], runs[3], runs[2], runs[1], runs[4], runs[5]]  # a left_to_right run given as BERT
    _one_line_error(capsys, ["compare", "--out", str(out), *swapped], "left_to_right", "--objective mlm_nsp")
    other = [*runs[:2], "--left-to-right", str(three_runs / "other"), *runs[4:]]  # another vocabulary size
    _one_line_error(capsys, ["compare", "--out", str(out), *other], "different vocab.txt")
    swapped_vocab = tmp_path / "swapped"
    shutil.copytree(three_runs / "left_to_right", swapped_vocab)
    lines = (swapped_vocab / "vocab.txt").read_text().splitlines()
    lines[10], lines[11] = lines[11], lines[10]  # the same size, two tokens' ids exchanged
    (swapped_vocab / "vocab.txt").write_text("\n".join(lines) + "\n")
    other = [*runs[:2], "--left-to-right", str(swapped_vocab), *runs[4:]]
    _one_line_error(capsys, ["compare", "--out", str(out), *other], "different vocab.txt")
    not_a_run = tmp_path / "empty_run"
    not_a_run.mkdir()
    _one_line_error(capsys, ["compare", "--out", str(out), "--bert", str(not_a_run), *runs[2:]], "not a minibert run")
    _one_line_error(capsys, ["compare", "--out", str(out), "--steps", "0"], "--steps")
    _one_line_error(capsys, ["compare", "--out", str(out), "--num-documents", "2"], "--num-documents", "got 2")
    assert not (tmp_path / "new").exists()  # nothing half-written
