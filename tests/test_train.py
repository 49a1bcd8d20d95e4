"""The pre-training loop: it learns, writes its files, resumes exactly, and fails clearly."""

import json
import math
import shutil
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
    return _small_run(tmp_path_factory.mktemp("fill"), steps=1000, seq_length=32, lr=2.5e-3, eval_interval=500,
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


@pytest.mark.parametrize("objective", ["mlm_nsp", "left_to_right", "right_to_left"])
def test_resume_is_bit_identical(tmp_path, objective):
    common = dict(steps=24, eval_interval=12, checkpoint_interval=10, objective=objective, **QUICK)
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


# ------------------------------------------------------------------ language-model objectives
TINY_LM = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
           "max_position_embeddings": 32, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory):
    """A left-to-right and a right-to-left run of 30 steps, and a BERT run of 2 steps, tiny."""
    base = tmp_path_factory.mktemp("lm")
    (base / "model.json").write_text(json.dumps(TINY_LM))
    common = dict(model=str(base / "model.json"), num_documents=200, seq_length=32, batch_size=16, eval_batches=2,
                  log_interval=5, eval_interval=15, lr=5e-3, seed=5)
    results = {}
    for objective, steps in (("left_to_right", 30), ("right_to_left", 30), ("mlm_nsp", 2)):
        lines = []
        results[objective] = pretrain(PretrainConfig(out=str(base / objective), objective=objective, steps=steps,
                                                     **common), progress=False, echo=lines.append), "\n".join(lines)
    return base, results


def test_language_model_runs_log_next_token_numbers(lm_runs):
    base, results = lm_runs
    for objective in ("left_to_right", "right_to_left"):
        run = base / objective
        result, printed = results[objective]
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records if r["split"] == "eval"] == [15, 30]
        for r in records:
            assert {"lm_loss", "lm_accuracy"} <= set(r) and not {"mlm_loss", "nsp_loss"} & set(r)
        guesses = json.loads((run / "baselines.json").read_text())
        assert set(guesses) == {"lm_most_frequent_token_accuracy", "lm_most_frequent_token_id", "lm_unigram_entropy"}
        assert not (run / "masking_stats.json").exists()  # nothing is masked
        # 30 steps already beat always guessing the most frequent next token
        assert result.eval_metrics["lm_accuracy"] > guesses["lm_most_frequent_token_accuracy"]
        assert result.eval_metrics["lm_loss"] < math.log(result.model.config.vocab_size)
        assert "next-token accuracy" in printed and "MLM" not in printed
        assert json.loads((run / "train_config.json").read_text())["objective"] == objective


def test_load_run_rebuilds_the_language_model(lm_runs):
    base, _ = lm_runs
    for objective, backwards in (("left_to_right", False), ("right_to_left", True)):
        model = load_run(base / objective).model
        assert isinstance(model, mb.BertLMHeadModel) and model.right_to_left == backwards
    assert type(load_run(base / "mlm_nsp").model) is mb.BertForPreTraining


def test_a_run_from_before_objectives_loads_as_bert(lm_runs, tmp_path):
    base, _ = lm_runs
    old = tmp_path / "old"
    shutil.copytree(base / "mlm_nsp", old)
    config = json.loads((old / "train_config.json").read_text())
    del config["objective"]  # what runs wrote before the field existed
    (old / "train_config.json").write_text(json.dumps(config))
    assert type(load_run(old).model) is mb.BertForPreTraining
    config["objective"] = "masked_everything"
    (old / "train_config.json").write_text(json.dumps(config))
    with pytest.raises(mb.io.CheckpointError, match="train_config.json: unknown pre-training objective 'masked_everything'"):
        load_run(old)


def test_a_run_from_before_adam_beta2_resumes_with_the_beta2_it_was_trained_with(tmp_path, monkeypatch):
    """Runs written before --adam-beta2 existed were trained with AdamW's 0.999; resuming one must
    not switch it to the new default."""
    from minibert import train as train_module
    from minibert.runs import read_train_config

    common = dict(steps=6, eval_interval=6, checkpoint_interval=3, **QUICK)
    part = pretrain(PretrainConfig(out=str(tmp_path / "old"), **common), progress=False, plots=False,
                    on_step=lambda step, stop: stop() if step == 3 else None, echo=lambda *a: None)
    assert part.interrupted and PretrainConfig().adam_beta2 == 0.98
    config = json.loads((tmp_path / "old" / "train_config.json").read_text())
    assert config.pop("adam_beta2") == 0.98  # a new run records it
    (tmp_path / "old" / "train_config.json").write_text(json.dumps(config))  # as an older run wrote it
    assert read_train_config(tmp_path / "old", PretrainConfig).adam_beta2 == 0.999
    made = []
    monkeypatch.setattr(train_module, "AdamW", lambda *a, **k: made.append(k) or mb.optim.AdamW(*a, **k))
    pretrain(resume=str(tmp_path / "old"), progress=False, plots=False, echo=lambda *a: None)
    assert [k["beta2"] for k in made] == [0.999]


def test_bert_commands_refuse_a_language_model_run(lm_runs, tmp_path, capsys):
    base, _ = lm_runs
    run = str(base / "left_to_right")
    for argv in (["fill-mask", run, "Oslo is the capital of [MASK]."], ["nsp", run, "A a.", "B b."],
                 ["export", run, str(tmp_path / "hf")], ["transfer", run, "--out", str(tmp_path / "tr")]):
        _one_line_error(capsys, argv, run, "--objective left_to_right", "--objective mlm_nsp")
    assert not (tmp_path / "hf").exists() and not (tmp_path / "tr").exists()
    with pytest.raises(SystemExit) as exit_:  # argparse names the option and the choices
        main(["pretrain", "--out", str(tmp_path / "x"), "--objective", "gpt"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and "--objective" in err and "left_to_right" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("right_to_left", [False, True])
def test_next_token_accuracy_by_hand(right_to_left):
    """The model's accuracy and targets against a loop over the tokens: position t scores token
    t + 1 (left to right) or t - 1 (right to left), real tokens only."""
    config = mb.BertConfig(vocab_size=50, **TINY_LM)
    model = mb.BertLMHeadModel(config, seed=0, right_to_left=right_to_left)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 50, size=(3, 9))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    out = model.forward({"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask})
    logits = out.extras["logits"]
    right = scored = 0
    for b in range(3):
        n = int(mask[b].sum())
        for t in range(n):
            target = t - 1 if right_to_left else t + 1
            if 0 <= target < n:
                assert out.extras["targets"][b, t] == ids[b, target]
                right += int(np.argmax(logits[b, t]) == ids[b, target])
                scored += 1
            else:
                assert out.extras["targets"][b, t] == -100
    assert int(out.extras["num_scored"]) == scored
    assert float(out.extras["accuracy"]) == pytest.approx(right / scored)


def test_pretrained_run_trains_only_when_the_folder_has_no_checkpoint(tmp_path, monkeypatch):
    """What notebooks 6, 8 and 9 call: train notebook 4's run if it is missing, else use it as it is."""
    from minibert import train

    run = tmp_path / "runs" / "notebook-pretrain"
    run.mkdir(parents=True)
    (run / "train_config.json").write_text("{}")  # what a run killed before its first checkpoint leaves
    small = dict(steps=4, eval_interval=4, checkpoint_interval=4, **QUICK)
    assert train.pretrained_run(run, **small) == run
    first = latest_checkpoint(run)
    assert first.name == "step-000004" and json.loads((run / "train_config.json").read_text())["steps"] == 4

    def must_not_train(*args, **kwargs):
        raise AssertionError("pretrained_run trained again although the run has a checkpoint")

    monkeypatch.setattr(train, "pretrain", must_not_train)
    assert train.pretrained_run(run, **small) == run and latest_checkpoint(run) == first

    users = tmp_path / "my-notes"  # a folder that is not a run is never removed
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a minibert run"):
        train.pretrained_run(users, **small)
    assert (users / "notes.txt").read_text() == "mine"


def test_batches_are_padded_to_their_own_most_predictions_not_to_the_cap():
    """The MLM head scores every prediction slot, padding included, so a batch carries only as many
    slots as its fullest sequence needs (at length 64 at most 10, not max_predictions' 20); the
    masks themselves are those the cap allows, unchanged."""
    from minibert.data import collate, tokenize_documents
    from minibert.train import BatchStream, build_tokenizer, load_corpus, make_eval_batches
    from minibert.loop import step_seed, MASKS

    cfg = PretrainConfig(**{**QUICK, "seq_length": 64})
    train_docs, eval_docs = load_corpus(cfg)
    tokenizer = build_tokenizer(cfg, train_docs)
    stream = BatchStream(tokenize_documents(train_docs, tokenizer), tokenizer, cfg)
    for step in range(1, 6):
        chunk = stream.instances[stream.offset:stream.offset + cfg.batch_size]
        batch = stream.next(step)
        real = batch["masked_lm_weights"].sum(axis=1)
        assert batch["masked_lm_positions"].shape == (cfg.batch_size, real.max()) and real.max() <= 10 < cfg.max_predictions
        capped = collate(chunk, tokenizer, max_predictions=cfg.max_predictions, masking=cfg.masking_config(),
                         rng=np.random.default_rng(step_seed(cfg.seed, step, MASKS)))
        P = int(real.max())
        for key in ("masked_lm_positions", "masked_lm_labels", "masked_lm_weights"):
            assert (capped[key][:, :P] == batch[key]).all() and not capped["masked_lm_weights"][:, P:].any(), key
        assert (capped["input_ids"] == batch["input_ids"]).all()
    for batch in make_eval_batches(eval_docs, tokenizer, cfg):
        assert batch["masked_lm_positions"].shape[1] == batch["masked_lm_weights"].sum(axis=1).max()
