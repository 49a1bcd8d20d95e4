"""The pre-training loop: it learns, writes its files, resumes exactly, and fails clearly."""

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

import minibert as mb
from minibert.cli import main
from minibert.io import load_arrays
from minibert.predict import fill_mask, next_sentence_probability
from minibert.runs import latest_checkpoint, load_run
from minibert.train import PretrainConfig, pretrain

from .conftest import ctrl_c_after_two_log_lines

QUICK = dict(num_documents=400, seq_length=32, batch_size=16, eval_batches=4, log_interval=5, seed=3)
# A small model without dropout learns fastest per second; measured on this 2-core machine:
# 600 steps at length 48 take ~30 s and lower NSP loss from 0.69 to ~0.62; 1000 steps at
# length 32 take ~35 s and put the right word in the top 3 for 5 of the 6 sentences below.
SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 256,
         "max_position_embeddings": 64, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def _small_run(folder, **overrides):
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "small.json"
    config.write_text(json.dumps(SMALL))  # no vocab_size: the trained vocabulary's size is used
    cfg = PretrainConfig(out=str(folder / "run"), model=str(config), num_documents=200, batch_size=32,
                         eval_batches=4, log_interval=10, seed=3, **overrides)
    return cfg, pretrain(cfg, progress=False, echo=lambda *a: None)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A short real run: losses must fall, every file must be written."""
    return _small_run(tmp_path_factory.mktemp("short"), steps=600, seq_length=48, lr=3e-3, eval_interval=200,
                      checkpoint_interval=300)


@pytest.fixture(scope="module")
def fill_run(tmp_path_factory):
    """A run long enough to learn the generated world's sentence templates."""
    return _small_run(tmp_path_factory.mktemp("fill"), steps=1000, seq_length=32, lr=2e-3, eval_interval=500,
                      checkpoint_interval=1000)


def test_short_run_learns_and_writes_every_file(short_run):
    cfg, result = short_run
    run = Path(cfg.out)
    assert result.step == 600 and not result.interrupted
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    held = [r for r in records if r["split"] == "eval"]
    for r in records:
        assert {"step", "split", "mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy", "lr", "tokens_per_second"} <= set(r)
    assert [r["step"] for r in held] == [200, 400, 600]
    first, last = train[:3], train[-3:]
    mean = lambda rs, k: np.mean([r[k] for r in rs])  # noqa: E731
    assert mean(first, "nsp_loss") > 0.68  # starts at chance, ln 2 = 0.693
    assert mean(last, "mlm_loss") < mean(first, "mlm_loss") - 2.0
    assert mean(last, "nsp_loss") < mean(first, "nsp_loss") - 0.03
    assert held[-1]["mlm_loss"] < held[0]["mlm_loss"] and held[-1]["nsp_loss"] < 0.685
    for name in ("masking.png", "training.png", "attention.png"):
        image = imread(run / name)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    for name in ("train_config.json", "config.json", "vocab.txt", "masking_stats.json"):
        assert (run / name).is_file()
    ckpt = latest_checkpoint(run)
    assert ckpt.name == "step-000600"
    assert {p.name for p in ckpt.iterdir()} == {"params.safetensors", "optimizer.safetensors", "state.json"}
    assert json.loads((ckpt / "state.json").read_text())["step"] == 600
    assert result.eval_metrics["mlm_accuracy"] > result.baselines["mlm_most_frequent_token_accuracy"]


FILL_MASK_CASES = [  # sentences in the generated world's templates (not copied from its documents)
    ("Every day Anna goes to the bakery, where she bakes [MASK].", "bread"),
    ("The team wears red shirts at home [MASK].", "games"),
    ("Tickets are sold at the old [MASK] in Oslo.", "station"),
    ("Scientists count the wolfs every year to [MASK] them.", "protect"),
    ("It takes about 30 minutes to [MASK].", "prepare"),
    ("About 40 thousand fans come to every home [MASK].", "game"),
]


def test_fill_mask_puts_the_right_word_in_the_top_3(fill_run):
    cfg, _ = fill_run
    run = load_run(cfg.out)
    model, tokenizer = run.model, run.tokenizer
    hits = 0
    for text, word in FILL_MASK_CASES:
        top3 = [tok for tok, _ in fill_mask(model, tokenizer, text, top_k=3)[0]]
        hits += word in top3
    assert hits >= 4, f"only {hits} of {len(FILL_MASK_CASES)} right in the top 3"
    p = next_sentence_probability(model, tokenizer, "Oslo is a city in Norway.", "It is famous for its harbor.")
    assert 0.0 <= p <= 1.0
    with pytest.raises(ValueError, match="no \\[MASK\\]"):
        fill_mask(model, tokenizer, "nothing to fill")


def test_fill_mask_and_nsp_commands(short_run, capsys):
    cfg, _ = short_run
    assert main(["fill-mask", cfg.out, "The team wears red shirts at home [MASK].", "--top-k", "3"]) == 0
    assert capsys.readouterr().out.startswith("[MASK] #1: ")
    assert main(["nsp", cfg.out, "Oslo is a city in Norway.", "It is famous for its harbor."]) == 0
    assert "P(IsNext) = " in capsys.readouterr().out
    assert main(["plot", cfg.out]) == 0
    assert main(["export", cfg.out, str(Path(cfg.out).parent / "hf")]) == 0
    exported = Path(cfg.out).parent / "hf"
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"} <= {p.name for p in exported.iterdir()}
    again = mb.BertForPreTraining.from_pretrained(exported)
    model = load_run(cfg.out).model
    for name, value in model.params.items():
        np.testing.assert_array_equal(again.params[name], value, err_msg=name)


def test_resume_is_bit_identical(tmp_path):
    common = dict(steps=24, eval_interval=12, checkpoint_interval=10, **QUICK)
    full = pretrain(PretrainConfig(out=str(tmp_path / "full"), **common), progress=False, plots=False, echo=lambda *a: None)
    assert not full.interrupted

    def interrupt_at_13(step, stop):
        if step == 13:
            stop()

    part = pretrain(PretrainConfig(out=str(tmp_path / "part"), **common), progress=False, plots=False,
                    on_step=interrupt_at_13, echo=lambda *a: None)
    assert part.interrupted and part.step == 13
    assert latest_checkpoint(tmp_path / "part").name == "step-000013"
    resumed = pretrain(resume=str(tmp_path / "part"), progress=False, plots=False, echo=lambda *a: None)
    assert resumed.step == 24 and not resumed.interrupted
    a, _ = load_arrays(latest_checkpoint(tmp_path / "full") / "params.safetensors")
    b, _ = load_arrays(latest_checkpoint(tmp_path / "part") / "params.safetensors")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # the metrics log continues where it stopped, without repeated steps
    steps = [json.loads(line)["step"] for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    full_steps = [json.loads(line)["step"] for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert steps == full_steps


def _one_line_error(capsys, argv, *fragments):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0, err
    assert len(err.splitlines()) == 1 and err.startswith("minibert: error: "), err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_bad_input_is_a_clear_one_line_error(tmp_path, capsys):
    out = str(tmp_path / "run")
    _one_line_error(capsys, ["pretrain", "--quiet", "--out", out, "--corpus", str(tmp_path / "nope.txt")],
                    "nope.txt", "not found")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    _one_line_error(capsys, ["pretrain", "--quiet", "--out", out, "--corpus", str(empty)], "empty.txt", "empty")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes(b"Good line.\n\nCaf\xe9.\n")
    _one_line_error(capsys, ["pretrain", "--quiet", "--out", out, "--corpus", str(latin)], "latin1.txt:3", "UTF-8")
    config = tmp_path / "config.json"
    mb.BertConfig.preset("tiny", vocab_size=123).to_json_file(config)
    _one_line_error(capsys, ["pretrain", "--quiet", "--out", out, "--num-documents", "40", "--model", str(config)],
                    "config.json", "vocab_size 123")
    (tmp_path / "notarun").mkdir()
    _one_line_error(capsys, ["pretrain", "--resume", str(tmp_path / "notarun")], "notarun", "not a minibert run")
    _one_line_error(capsys, ["fill-mask", str(tmp_path / "notarun"), "a [MASK]"], "not a minibert run")
    assert not (tmp_path / "run").exists()  # nothing was created by the failed starts


def test_existing_run_is_never_overwritten(short_run, capsys):
    cfg, _ = short_run
    before = {p: p.read_bytes() for p in Path(cfg.out).rglob("*") if p.is_file()}
    _one_line_error(capsys, ["pretrain", "--quiet", "--out", cfg.out], "exists", "--resume")
    after = {p: p.read_bytes() for p in Path(cfg.out).rglob("*") if p.is_file()}
    assert before == after


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "nan"
    err = _one_line_error(capsys, ["pretrain", "--quiet", "--out", str(out), "--num-documents", "200",
                                   "--seq-length", "32", "--batch-size", "8", "--steps", "60", "--warmup-steps", "1",
                                   "--checkpoint-interval", "1", "--eval-interval", "1000", "--lr", "1e30"],
                          "the loss became", "at step", "last good checkpoint")
    step = int(err.split("at step ")[1].split(";")[0])
    kept = latest_checkpoint(out)
    assert int(kept.name.split("-")[1]) < step
    arrays, _ = load_arrays(kept / "params.safetensors")  # loads: checksum intact
    assert all(np.isfinite(a).all() for a in arrays.values())


def test_ctrl_c_saves_and_exits_cleanly(tmp_path):
    import os

    out = tmp_path / "run"
    returncode, stdout, stderr = ctrl_c_after_two_log_lines(
        ["pretrain", "--quiet", "--out", str(out), "--num-documents", "200", "--seq-length", "32", "--batch-size", "8",
         "--steps", "100000", "--log-interval", "5", "--eval-interval", "100000", "--checkpoint-interval", "100000"], out)
    assert returncode == 130, stderr
    assert "interrupted: saved step" in stderr and "--resume" in stdout
    step = int(stderr.split("saved step ")[1].split()[0])
    ckpt = latest_checkpoint(out)
    assert ckpt.name == f"step-{step:06d}" and step >= 10
    arrays, _ = load_arrays(ckpt / "params.safetensors")  # complete and checksummed
    assert arrays and not list(ckpt.parent.glob(".*tmp*"))  # no half-written checkpoint left behind
    assert os.path.getsize(out / "metrics.jsonl") > 0
