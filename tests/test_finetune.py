"""Fine-tuning heads (gradient checks), span decoding (property tests), SQuAD data and metrics."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minibert as mb
from minibert import backend
from minibert.cli import main
from minibert.finetune import FinetuneConfig, answer, finetune
from minibert.runs import load_run
from minibert.gradcheck import gradcheck
from minibert.squad import (
    best_spans,
    exact_match,
    f1_score,
    independent_argmax_span,
    make_features,
    predict_answers,
    read_squad,
    squad_metrics,
    tokenize_with_offsets,
)

from .conftest import assert_gradcheck, ctrl_c_after_two_log_lines

ODD = mb.BertConfig(vocab_size=40, hidden_size=12, num_hidden_layers=2, num_attention_heads=3, intermediate_size=20,
                    type_vocab_size=3, max_position_embeddings=16, initializer_range=0.3)


def encoder_batch(rng, B=3, T=9):
    lengths = np.array([T, 6, 3])[:B]
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.int64)
    return {"input_ids": rng.integers(1, 40, (B, T)) * mask, "token_type_ids": (np.arange(T) > 2).astype(np.int64)[None].repeat(B, 0) * mask,
            "attention_mask": mask}


@pytest.mark.parametrize("training", [False, True], ids=["no-dropout", "fixed-dropout-masks"])
def test_qa_head_gradcheck(training):
    model = mb.BertForQuestionAnswering(ODD, seed=1, dtype=np.float64)
    rng = np.random.default_rng(0)
    batch = encoder_batch(rng)
    batch["answer_mask"] = batch["attention_mask"] * (np.arange(9)[None] != 1)  # position 1: a question token
    batch["start_positions"], batch["end_positions"] = np.array([3, 2, 0]), np.array([5, 4, 0])

    def fn(**params):
        out = model.forward(batch, training=training, rng=backend.default_rng(3))
        return out.loss, lambda d: {k: g * d for k, g in model.backward().items()}
    errors = gradcheck(fn, {}, model.params, max_coords=10)
    assert set(errors) == set(model.params) and "pooler.W" not in errors
    # Two gradients are exactly zero in exact arithmetic: qa.b, and the last LayerNorm's beta,
    # each add the same amount to every position's logit, and a softmax over positions ignores
    # that. Central differences then measure only rounding noise, so check them by size.
    out = model.forward(batch, training=training, rng=backend.default_rng(3))
    grads = model.backward()
    for name in ("qa.b", "layer.1.ffn.ln.beta"):
        assert np.abs(grads[name][0] if name == "qa.b" else grads[name] @ model.params["qa.W"]).max() < 1e-12
        errors.pop(name)
    assert_gradcheck(errors, 1e-5)
    out = model.forward(batch)
    assert out.extras["start_logits"].shape == (3, 9)
    probs = np.exp(out.extras["start_logits"] - out.extras["start_logits"].max(axis=1, keepdims=True))
    assert (probs[batch["answer_mask"] == 0] == 0).all()  # padding and question can never be the answer


@pytest.mark.parametrize("training", [False, True], ids=["no-dropout", "fixed-dropout-masks"])
def test_classification_head_gradcheck(training):
    model = mb.BertForSequenceClassification(ODD, num_labels=5, seed=2, dtype=np.float64)
    batch = encoder_batch(np.random.default_rng(1))
    batch["labels"] = np.array([4, 0, 2])

    def fn(**params):
        out = model.forward(batch, training=training, rng=backend.default_rng(5))
        return out.loss, lambda d: {k: g * d for k, g in model.backward().items()}
    errors = gradcheck(fn, {}, model.params, max_coords=10)
    assert set(errors) == set(model.params)
    assert_gradcheck(errors, 1e-5)
    assert model.forward(batch).extras["logits"].shape == (3, 5)


# ---------------------------------------------------------------- span decoding
def brute_force(s, e, allowed, L):
    best = None
    for i in range(len(s)):
        for j in range(i, min(len(s), i + L)):
            if allowed[i] and allowed[j] and (best is None or s[i] + e[j] > best[2]):
                best = (i, j, s[i] + e[j])
    return best


@settings(max_examples=200, deadline=None)
@given(T=st.integers(1, 40), L=st.integers(1, 12), seed=st.integers(0, 2**32 - 1), n_best=st.integers(1, 10))
def test_best_span_is_valid_and_the_true_argmax(T, L, seed, n_best):
    rng = np.random.default_rng(seed)
    s, e = rng.standard_normal(T), rng.standard_normal(T)
    allowed = rng.random(T) < 0.7
    spans = best_spans(s, e, allowed, L, n_best)
    expected = brute_force(s, e, allowed, L)
    if expected is None:
        assert spans == []
        return
    for i, j, score in spans:
        assert i <= j < i + L and allowed[i] and allowed[j] and score == pytest.approx(s[i] + e[j])
    assert spans[0][2] == pytest.approx(expected[2])  # the true maximum over valid spans
    assert [sc for _, _, sc in spans] == sorted((sc for _, _, sc in spans), reverse=True)


def test_independent_argmax_goes_wrong_where_span_decoding_does_not():
    #           [CLS]  q    [SEP]  c0    c1    c2    c3   [SEP]
    s = np.array([0.0, 0.0, 0.0, 1.0, 0.5, 3.0, 0.2, 0.0])
    e = np.array([0.0, 0.0, 0.0, 4.0, 3.5, 0.1, 0.3, 0.0])
    context = np.array([0, 0, 0, 1, 1, 1, 1, 0], bool)
    i, j = independent_argmax_span(s, e)
    assert j < i  # the naive answer ends before it starts
    best = best_spans(s, e, context, max_answer_length=30, n_best=1)[0]
    assert best[:2] == (3, 3) and best[2] == pytest.approx(5.0)  # 1.0 + 4.0 beats every span starting at c2 (3.0 + 0.3 at best)


# ---------------------------------------------------------------- data and metrics
def test_offsets_point_back_to_the_original_characters():
    tok = mb.WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cafe", "in", "zurich", "is", ".", "good", "##s"])
    text = "Café  in Zürich is goods."
    tokens, offsets = tokenize_with_offsets(tok, text)
    assert tokens == ["cafe", "in", "zurich", "is", "good", "##s", "."]
    assert [text[a:b] for a, b in offsets] == ["Café", "in", "Zürich", "is", "good", "s", "."]


def test_windows_cover_long_contexts_and_the_best_span_across_windows_wins():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "where", "?", "x", "paris", "."]
    tok = mb.WordPieceTokenizer(vocab)
    context = " ".join(["x"] * 40) + " paris ."
    ex = {"id": "a", "question": "where ?", "context": context,
          "answers": [{"text": "paris", "answer_start": context.index("paris")}]}
    features, skipped = make_features([ex], tok, max_seq_length=20, doc_stride=8)
    assert not skipped and len(features) >= 4
    with_answer = [f for f in features if f.start_position > 0]
    assert with_answer and all(tok.inv_vocab[f.input_ids[f.start_position]] == "paris" for f in with_answer)
    # fake logits that point at "paris" only in the window holding it
    starts, ends = [], []
    for f in features:
        s = np.zeros(len(f.input_ids))
        if f.start_position:
            s[f.start_position] = 10.0
        starts.append(s)
        ends.append(s.copy())
    assert predict_answers([ex], features, starts, ends)["a"] == "paris"


def test_squad_reader_errors_and_skips(tmp_path):
    good = {"data": [{"paragraphs": [{"context": "Oslo is in Norway.", "qas": [
        {"id": "1", "question": "Where is Oslo?", "answers": [{"text": "Norway", "answer_start": 11}]},
        {"id": "2", "question": "What is in Norway?", "answers": [{"text": "Oslo", "answer_start": 3}]},
        {"id": "3", "question": "Unanswerable?", "answers": [], "is_impossible": True}]}]}]}
    f = tmp_path / "squad.json"
    f.write_text(json.dumps(good))
    examples, skipped = read_squad(f)
    assert [e["id"] for e in examples] == ["1", "3"] and examples[1]["is_impossible"]
    assert len(skipped) == 2 and "answer_start 3 does not point at 'Oslo'" in skipped[0]
    bad = {"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "1", "answers": []}]}]}]}
    f.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"squad.json: data\[0\].paragraphs\[0\].qas\[0\]: missing 'question'"):
        read_squad(f)
    f.write_text("{not json")
    with pytest.raises(ValueError, match="squad.json: not a valid UTF-8 JSON SQuAD file"):
        read_squad(f)


def test_question_longer_than_the_window_is_a_reported_skip():
    tok = mb.WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
    ex = {"id": "long", "question": " ".join(["a"] * 40), "context": "b b b", "answers": []}
    features, skipped = make_features([ex], tok, max_seq_length=32, max_query_length=16)
    assert features == [] and "long: question of 40 tokens" in skipped[0]


def test_official_metrics():
    assert exact_match("The  Eiffel tower!", "eiffel Tower") == 1.0
    assert f1_score("in the city of Paris", "Paris") == pytest.approx(2 * (1 / 4) * 1 / (1 / 4 + 1))
    examples = [{"id": "1", "answers": [{"text": "Paris"}, {"text": "the city of Paris"}]}, {"id": "2", "answers": []}]
    assert squad_metrics(examples, {"1": "city of Paris", "2": ""}) == {"exact_match": 100.0, "f1": 100.0}


# ---------------------------------------------------------------- the loop and the commands
SMALL = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
         "max_position_embeddings": 128, "vocab_size": None}


@pytest.mark.parametrize("task", ["qa", "classify"])
def test_finetune_end_to_end(tmp_path, task, capsys):
    gen = mb.generate_corpus(60)
    tok = mb.WordPieceTokenizer(mb.train_wordpiece([" ".join(d) + " " + " ".join(q["question"] for q in mb.generate_qa(60))
                                                    for d in gen], 4000))
    tok.save_vocab(tmp_path / "vocab.txt")
    config = {**SMALL, "vocab_size": len(tok)}
    (tmp_path / "config.json").write_text(json.dumps(config))
    cfg = FinetuneConfig(task=task, init="scratch", vocab=str(tmp_path / "vocab.txt"), model=str(tmp_path / "config.json"),
                         out=str(tmp_path / "run"), num_examples=200, steps=30, batch_size=8, eval_interval=15,
                         checkpoint_interval=30, log_interval=5)
    result = finetune(cfg, progress=False, echo=lambda *a: None)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "eval"] == [15, 30]
    assert (tmp_path / "run" / "finetune.png").stat().st_size > 10_000
    key = "exact_match" if task == "qa" else "accuracy"
    assert key in result["eval"]
    run = load_run(tmp_path / "run")
    model, tokenizer, info = run.model, run.tokenizer, run.task
    assert info["task"] == task
    if task == "qa":
        text = answer(model, tokenizer, "Where does Anna live?", "Anna lives in Oslo. She is a baker.")
        assert text == "" or text in "Anna lives in Oslo. She is a baker."
        assert main(["answer", str(tmp_path / "run"), "Where?", "Anna lives in Oslo."]) == 0
        capsys.readouterr()


def test_answers_are_whole_words():
    tok = mb.WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "who", "?", "par", "##rot", "a", "."])
    ex = {"id": "p", "question": "who ?", "context": "a parrot .", "answers": []}
    features, _ = make_features([ex], tok, max_seq_length=16)
    f = features[0]
    rot = [tok.inv_vocab[t] for t in f.input_ids].index("##rot")
    s = np.zeros(len(f.input_ids))
    s[rot] = 5.0  # the model points at the second half of a word only
    assert predict_answers([ex], features, [s], [s.copy()])["p"] == "parrot"


def test_squad_v2_unanswerable_maps_to_cls():
    tok = mb.WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "who", "?", "a", "b"])
    ex = {"id": "n", "question": "who ?", "context": "a b", "answers": [], "is_impossible": True}
    features, _ = make_features([ex], tok, max_seq_length=16)
    assert (features[0].start_position, features[0].end_position) == (0, 0)  # trained to point at [CLS]
    s = np.zeros(len(features[0].input_ids))
    s[0] = 3.0  # [CLS] beats every span
    assert predict_answers([ex], features, [s], [s.copy()], allow_impossible=True)["n"] == ""
    assert predict_answers([ex], features, [s], [s.copy()], allow_impossible=False)["n"] in ("a", "b", "a b")
    assert squad_metrics([ex], {"n": ""}) == {"exact_match": 100.0, "f1": 100.0}


def _scratch_setup(folder):
    """A vocabulary and a small config for fine-tuning from scratch, written into folder."""
    gen = mb.generate_corpus(60)
    tok = mb.WordPieceTokenizer(mb.train_wordpiece([" ".join(d) + " " + " ".join(q["question"] for q in mb.generate_qa(60))
                                                    for d in gen], 4000))
    tok.save_vocab(folder / "vocab.txt")
    (folder / "config.json").write_text(json.dumps({**SMALL, "vocab_size": len(tok)}))
    return dict(init="scratch", vocab=str(folder / "vocab.txt"), model=str(folder / "config.json"))


@pytest.mark.parametrize("task", ["qa", "classify"])
def test_finetune_resume_is_bit_identical(tmp_path, task):
    common = dict(task=task, **_scratch_setup(tmp_path), num_examples=120, steps=16, batch_size=8, eval_interval=8,
                  checkpoint_interval=5, log_interval=2, seq_length=64)
    quiet = dict(progress=False, plots=False, echo=lambda *a: None)
    full = finetune(FinetuneConfig(out=str(tmp_path / "full"), **common), **quiet)
    assert not full["interrupted"] and full["step"] == 16

    def interrupt_at_7(step, stop):
        if step == 7:
            stop()

    part = finetune(FinetuneConfig(out=str(tmp_path / "part"), **common), on_step=interrupt_at_7, **quiet)
    assert part["interrupted"] and part["step"] == 7
    resumed = finetune(resume=str(tmp_path / "part"), **quiet)
    assert resumed["step"] == 16 and not resumed["interrupted"]
    a = load_run(tmp_path / "full").model.params
    b = load_run(tmp_path / "part").model.params
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    steps = lambda run: [json.loads(line)["step"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert steps("part") == steps("full")


def test_finetune_ctrl_c_saves_and_exits_130(tmp_path):
    from minibert.runs import latest_checkpoint

    setup = _scratch_setup(tmp_path)
    out = tmp_path / "run"
    returncode, stdout, stderr = ctrl_c_after_two_log_lines(
        ["finetune", "classify", "--quiet", "--out", str(out), "--vocab", setup["vocab"], "--model", setup["model"],
         "--num-examples", "200", "--batch-size", "8", "--seq-length", "32", "--steps", "100000",
         "--log-interval", "5", "--eval-interval", "100000", "--checkpoint-interval", "100000"], out)
    assert returncode == 130, stderr
    assert "interrupted: saved step" in stderr and "--resume" in stdout
    step = int(stderr.split("saved step ")[1].split()[0])
    assert latest_checkpoint(out).name == f"step-{step:06d}" and step >= 10


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_pooling_the_last_real_token_gradcheck(causal):
    """pool_at="last" (GPT's extract token): the pooler reads each row's last real token. float64 central
    differences against a random upstream gradient on the pooled output."""
    model = mb.BertModel(ODD, seed=4, dtype=np.float64)
    model.causal, model.pool_at = causal, "last"
    batch = encoder_batch(np.random.default_rng(2))  # rows of 9, 6 and 3 real tokens

    def fn(**params):
        out = model.forward(batch)
        return out.pooled_output, lambda d: model.backward(dpooled_output=d)
    out = model.forward(batch)
    last = out.sequence_output[np.arange(3), [8, 5, 2]]  # (B, H)
    expected = np.tanh(last @ model.params["pooler.W"] + model.params["pooler.b"])
    np.testing.assert_allclose(out.pooled_output, expected, rtol=1e-12)
    errors = gradcheck(fn, {}, model.params, max_coords=10)
    assert set(errors) == set(model.params)
    assert_gradcheck(errors, 1e-5)
