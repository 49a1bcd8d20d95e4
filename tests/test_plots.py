"""The figures and the numbers behind them: guessing baselines, binomial bands, where the heads
look, and the figures a pre-training run and a transfer experiment write."""

import json
import math

import numpy as np
import pytest
from matplotlib.image import imread

from minibert.data.corpus import generate_corpus, split_documents
from minibert.cli import main
from minibert.finetune import transfer_experiment
from minibert.plots import (SHARES, attention_shares, binomial_band, expected_run_lengths, head_shares,
                            held_out_pairs, plot_run)
from minibert.runs import load_run
from minibert.train import PretrainConfig, baselines, pretrain, unigram_entropy

MODEL = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
         "max_position_embeddings": 64}
QUIET = dict(progress=False, echo=lambda *a: None)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A few steps of a real pre-training run, its figures not drawn yet."""
    base = tmp_path_factory.mktemp("tiny")
    (base / "model.json").write_text(json.dumps(MODEL))
    cfg = PretrainConfig(out=str(base / "run"), model=str(base / "model.json"), num_documents=40, seq_length=32,
                         batch_size=8, eval_batches=2, vocab_size=300, log_interval=2, eval_interval=4,
                         checkpoint_interval=6, steps=6, seed=2)
    pretrain(cfg, plots=False, **QUIET)
    return base / "run"


# ------------------------------------------------------------------ the numbers
def test_unigram_entropy_by_hand():
    # shares 1/2, 1/4, 1/4: H = -(1/2 ln 1/2 + 2 * 1/4 ln 1/4) = 1.5 ln 2
    assert unigram_entropy([7, 7, 3, 5]) == pytest.approx(1.5 * math.log(2), abs=1e-12)
    assert unigram_entropy([4, 4, 4]) == 0.0
    batch = {"masked_lm_labels": np.array([[7, 7, 9], [3, 5, 1]]), "masked_lm_weights": np.array([[1, 1, 0], [1, 1, 0]]),
             "next_sentence_label": np.array([0, 1])}
    b = baselines([batch])  # the weight-0 slots (9, 1) are padding, not targets
    assert b["mlm_unigram_entropy"] == pytest.approx(1.5 * math.log(2), abs=1e-12)
    assert b["mlm_most_frequent_token_accuracy"] == 0.5 and b["mlm_most_frequent_token_id"] == 7


def _pair_batch():
    """Two pairs, the second padded: [CLS] a a [SEP] b [SEP] and [CLS] a [SEP] b [SEP] [PAD]."""
    CLS, SEP, PAD = 2, 3, 0
    return {"input_ids": np.array([[CLS, 10, 11, SEP, 12, SEP], [CLS, 10, SEP, 12, SEP, PAD]]),
            "token_type_ids": np.array([[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0]]),
            "attention_mask": np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]])}, CLS, SEP


def _hand_attention(batch, pattern):
    """(B, T, T) rows that put all weight on one key per query: pattern(i, b) -> key position."""
    B, T = batch["input_ids"].shape
    att = np.zeros((B, T, T))
    for b in range(B):
        for i in range(T):
            att[b, i, pattern(i, b)] = 1.0
    return att


def test_attention_shares_of_hand_built_heads():
    batch, CLS, SEP = _pair_batch()
    lengths = batch["attention_mask"].sum(1)
    previous = _hand_attention(batch, lambda i, b: max(i - 1, 0))  # query 0 has no previous: itself
    following = _hand_attention(batch, lambda i, b: min(i + 1, lengths[b] - 1))
    on_cls = _hand_attention(batch, lambda i, b: 0)
    # head 0 of layer 1: previous token; head 1: next token; layer 2: [CLS] and even attention to segment B
    seg_b = (batch["token_type_ids"] == 1) & (batch["attention_mask"] == 1)  # (B, T)
    to_b = np.repeat((seg_b / seg_b.sum(1, keepdims=True))[:, None, :], 6, axis=1)  # (B, T, T)
    attentions = [np.stack([previous, following], axis=1), np.stack([on_cls, to_b], axis=1)]  # per layer (B, A, T, T)
    shares = attention_shares(attentions, batch, CLS, SEP)
    assert set(shares) == set(SHARES)
    for name, value in shares.items():
        assert value.shape == (2, 2) and np.all((value >= 0) & (value <= 1 + 1e-12)), name
    assert shares["previous"][0, 0] == pytest.approx(1.0) and shares["next"][0, 0] == 0.0
    assert shares["next"][0, 1] == pytest.approx(1.0) and shares["previous"][0, 1] == 0.0
    assert shares["cls"][1, 0] == pytest.approx(1.0) and shares["sep"][1, 0] == 0.0
    # [CLS] is in segment A: the queries of segment B (2 + 2 of the 11 real ones) look at the other segment
    assert shares["other_segment"][1, 0] == pytest.approx(4 / 11)
    # even attention over segment B: segment A's 7 queries give all of it to the other segment, and
    # to [SEP] the share that the last [SEP] holds in segment B (1/2 in the first pair, 1/2 in the second)
    assert shares["other_segment"][1, 1] == pytest.approx(7 / 11)
    assert shares["sep"][1, 1] == pytest.approx(0.5)


def test_binomial_band_width():
    low, high = binomial_band(0.15, [100, 0, 400])
    assert high[0] - low[0] == pytest.approx(4 * math.sqrt(0.15 * 0.85 / 100))
    assert np.isnan(low[1]) and np.isnan(high[1])  # no candidates: no band
    assert (high[2] - low[2]) == pytest.approx((high[0] - low[0]) / 2)  # 4 times the trials, half the width
    assert low[0] < 0.15 < high[0]


def test_expected_run_lengths():
    k = np.arange(1, 11)
    span = expected_run_lengths(k, "span", 0.15, span_p=0.2, max_span=10)
    assert span[0] == pytest.approx(0.2) and span.sum() == pytest.approx(1.0)  # the clip keeps the tail at 10
    assert expected_run_lengths([11], "span", 0.15, span_p=0.2, max_span=10)[0] == 0.0
    independent = expected_run_lengths(np.arange(1, 200), "exact", 0.15)
    assert independent[0] == pytest.approx(0.85) and independent.sum() == pytest.approx(1.0)


# ------------------------------------------------------------------ a run folder
def test_plot_run_writes_every_figure_and_works_without_baselines(tiny_run):
    saved = json.loads((tiny_run / "baselines.json").read_text())
    assert 0 < saved["mlm_unigram_entropy"] < math.log(len((tiny_run / "vocab.txt").read_text().split()))
    stats = json.loads((tiny_run / "masking_stats.json").read_text())
    assert sum(stats["candidates_by_position"]) == sum(stats["candidates_per_sequence"])
    assert len(stats["candidates_by_position"]) == len(stats["selection_rate_by_position"])

    figures = plot_run(tiny_run)
    assert set(figures) == {"masking", "training", "attention", "heads"}
    for name in ("masking", "training", "attention", "heads"):
        image = imread(tiny_run / f"{name}.png")
        assert image.ndim == 3 and min(image.shape[:2]) > 150, name
    (tiny_run / "baselines.json").unlink()  # a run from before the file existed
    (tiny_run / "training.png").unlink()
    plot_run(tiny_run)
    assert (tiny_run / "training.png").is_file()


@pytest.mark.parametrize("objective", ["left_to_right", "right_to_left"])
def test_plot_run_of_a_language_model(tmp_path, objective, capsys):
    """A language-model run: next-token curves against their guessing lines; no masking.png (nothing
    is masked) and no heads.png; attention.png only when it reads left to right."""
    (tmp_path / "model.json").write_text(json.dumps(MODEL))
    cfg = PretrainConfig(out=str(tmp_path / "run"), model=str(tmp_path / "model.json"), objective=objective,
                         num_documents=40, seq_length=32, batch_size=8, eval_batches=2, vocab_size=300,
                         log_interval=2, eval_interval=4, checkpoint_interval=6, steps=6, seed=2)
    pretrain(cfg, plots=False, **QUIET)
    run = tmp_path / "run"
    figures = plot_run(run)
    expected = {"training", "attention"} if objective == "left_to_right" else {"training"}
    assert set(figures) == expected
    assert {p.name for p in run.glob("*.png")} == {f"{name}.png" for name in expected}
    axes = {ax.get_title(): ax for ax in figures["training"].axes}
    assert {"Next-token loss", "Next-token accuracy"} <= set(axes) and not any("Masked" in t for t in axes)
    guessing = json.loads((run / "baselines.json").read_text())
    legend = " ".join(t.get_text() for t in axes["Next-token accuracy"].get_legend().get_texts())
    assert f"always the most frequent token: {guessing['lm_most_frequent_token_accuracy']:.3f}" in legend
    assert main(["plot", str(run)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {', '.join(n + '.png' for n in figures)} in {run}"


def test_head_shares_come_from_held_out_pairs(tiny_run):
    pairs = held_out_pairs(tiny_run, n=64)
    held = split_documents(generate_corpus(40, seed=2), 0.1)[1]
    assert 0 < len(pairs) <= 64
    assert all(any(a in d and d.index(a) + 1 < len(d) and d[d.index(a) + 1] == b for d in held) for a, b in pairs)
    run = load_run(tiny_run)
    shares = head_shares(run.model, run.tokenizer, pairs, batch_size=3)  # several batches of different lengths
    whole = head_shares(run.model, run.tokenizer, pairs, batch_size=len(pairs))
    for name in SHARES:
        assert shares[name].shape == (2, 2)
        np.testing.assert_allclose(shares[name], whole[name], rtol=1e-5, atol=1e-6)


def test_transfer_at_two_sizes_writes_the_plot_and_every_score(tiny_run, tmp_path):
    out = tmp_path / "transfer"
    summary = transfer_experiment(tiny_run, out, sizes=(18, 6), steps=2, batch_size=4, seq_length=48,
                                  eval_interval=2, **QUIET)
    assert summary["held_out"] == 2  # 10% of the largest size's 18 + 2 examples, for every size
    saved = json.loads((out / "transfer.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert set(saved["sizes"]) == {"6", "18"}
    for size, runs in saved["sizes"].items():
        for start in ("pretrained", "scratch"):
            assert {"exact_match", "f1"} <= set(runs[start]["eval"])
            cfg = json.loads((out / f"{start}-{size}" / "train_config.json").read_text())
            held_out = max(1, int(cfg["num_examples"] * cfg["eval_fraction"]))
            assert (cfg["num_examples"] - held_out, held_out) == (int(size), 2)  # sizes count training questions
    image = imread(out / "transfer.png")
    assert image.shape[1] > image.shape[0] > 300  # about 7 x 4 inches
    assert (out / "curves.png").is_file()


def test_transfer_refuses_bad_sizes_before_writing(tiny_run, tmp_path):
    for sizes in ((), (0, 5), (2.5,), (10**30,)):
        with pytest.raises(ValueError, match="--sizes"):
            transfer_experiment(tiny_run, tmp_path / "out", sizes=sizes, steps=2, **QUIET)
    assert not (tmp_path / "out").exists()
