"""Run folders after a failure: never stuck, never another run's files, never a silently changed corpus."""

import json
from pathlib import Path

import pytest

from minibert.cli import main
from minibert.runs import latest_checkpoint
from minibert.train import PretrainConfig, pretrain

TINY = dict(num_documents=40, seq_length=32, batch_size=8, eval_batches=1, log_interval=2, eval_interval=4,
            checkpoint_interval=4, steps=4, seed=2)
QUIET = dict(progress=False, plots=False, echo=lambda *a: None)


def corpus(path: Path, n_docs: int = 12) -> Path:
    docs = [f"Town {i} lies by a river.\nIts market opens at {i} o'clock.\nPeople sell fish there." for i in range(n_docs)]
    path.write_text("\n\n".join(docs) + "\n")
    return path


def one_line_error(capsys, argv, *fragments):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and err.startswith("minibert: error: "), err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path, capsys):
    text = corpus(tmp_path / "small.txt", n_docs=4)  # a handful of pairs, fewer than the batch
    out = tmp_path / "run"
    one_line_error(capsys, ["pretrain", "--quiet", "--out", str(out), "--corpus", str(text), "--batch-size", "512",
                            "--seq-length", "32", "--eval-batches", "1"], "training pairs", "--batch-size 512")
    assert not out.exists()  # so the same command, corrected, simply runs
    empty = tmp_path / "empty_dir"
    empty.mkdir()  # a folder the user made stays, emptied of what the run wrote
    one_line_error(capsys, ["pretrain", "--quiet", "--out", str(empty), "--corpus", str(text), "--batch-size", "512",
                            "--seq-length", "32", "--eval-batches", "1"], "training pairs")
    assert empty.is_dir() and not any(empty.iterdir())


def test_a_killed_start_can_be_resumed(tmp_path):
    first = pretrain(PretrainConfig(out=str(tmp_path / "run"), **TINY), **QUIET)
    ckpts = Path(first.run_dir) / "checkpoints"
    for p in ckpts.iterdir():  # what a SIGKILL before the first checkpoint leaves: no checkpoints/
        if p.is_dir():
            for f in p.iterdir():
                f.unlink()
            p.rmdir()
        else:
            p.unlink()
    ckpts.rmdir()
    again = pretrain(resume=str(tmp_path / "run"), **QUIET)
    assert again.step == TINY["steps"] and latest_checkpoint(tmp_path / "run").name == "step-000004"


def test_resume_refuses_other_options_and_a_changed_corpus(tmp_path, capsys, monkeypatch):
    text = corpus(tmp_path / "c.txt")
    monkeypatch.chdir(tmp_path)  # a relative --corpus must be stored absolute
    cfg = PretrainConfig(out=str(tmp_path / "run"), corpus="c.txt", **{**TINY, "steps": 8})
    pretrain(cfg, on_step=lambda step, stop: stop() if step == 4 else None, **QUIET)
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["corpus"] == str(text.resolve()) and len(saved["corpus_sha256"]) == 64
    one_line_error(capsys, ["pretrain", "--resume", str(tmp_path / "run"), "--steps", "100"], "--resume", "--steps")
    text.write_text(text.read_text() + "\nOne more line.\n")
    one_line_error(capsys, ["pretrain", "--quiet", "--resume", str(tmp_path / "run")], "c.txt", "changed",
                   "--allow-changed-corpus")
    assert main(["pretrain", "--quiet", "--resume", str(tmp_path / "run"), "--allow-changed-corpus"]) == 0


def test_a_batch_that_cannot_fit_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    one_line_error(capsys, ["pretrain", "--quiet", "--out", str(out), "--num-documents", "40", "--batch-size", "1000000"],
                   "--batch-size 1000000", "GiB")
    assert not out.exists()


def test_a_checkpoint_pointer_cannot_leave_the_run(tmp_path, capsys):
    pretrain(PretrainConfig(out=str(tmp_path / "a"), **TINY), **QUIET)
    pretrain(PretrainConfig(out=str(tmp_path / "b"), **TINY), **QUIET)
    (tmp_path / "a" / "checkpoints" / "latest").write_text("../../b/checkpoints/step-000004\n")
    one_line_error(capsys, ["fill-mask", str(tmp_path / "a"), "a [MASK]"], "latest", "not a checkpoint of this run")


def test_commands_say_which_kind_of_run_they_need(tmp_path, capsys):
    pretrain(PretrainConfig(out=str(tmp_path / "pre"), **TINY), **QUIET)
    one_line_error(capsys, ["answer", str(tmp_path / "pre"), "Who?", "Anna."], "pre-training run", "fine-tuning run")


@pytest.mark.parametrize("line", ['{"step": 3, "split": "train", "loss": 1.0}\n{"step": 4, "spl'])
def test_a_half_written_metrics_line_does_not_block_resume(tmp_path, line):
    cfg = PretrainConfig(out=str(tmp_path / "run"), **{**TINY, "steps": 8})
    pretrain(cfg, on_step=lambda step, stop: stop() if step == 4 else None, **QUIET)
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:
        f.write(line.split("\n")[1])  # the crash cut the last record short
    assert pretrain(resume=cfg.out, **QUIET).step == 8


@pytest.mark.parametrize("name, content", [
    ("checkpoints/step-000004/state.json", '{"step": 4, "data_pos'),
    ("train_config.json", "{not json"),
    ("train_config.json", '{"steps": 4, "colour": "red"}'),
    ("config.json", '{"hidden_size": 8, '),
])
def test_a_damaged_run_file_is_named(tmp_path, capsys, name, content):
    """A run file that is no longer what minibert wrote: one line naming that file, for every
    command that reads it (resume included), never a bare JSON parser message."""
    pretrain(PretrainConfig(out=str(tmp_path / "run"), **TINY), **QUIET)
    (tmp_path / "run" / name).write_text(content)
    shown = name.split("/")[-1]
    if "colour" in content:  # valid JSON: only resume, which rebuilds the config from it, must refuse
        one_line_error(capsys, ["pretrain", "--quiet", "--resume", str(tmp_path / "run")], shown, "colour")
        return
    one_line_error(capsys, ["fill-mask", str(tmp_path / "run"), "a [MASK]"], shown)
    one_line_error(capsys, ["pretrain", "--quiet", "--resume", str(tmp_path / "run")], shown)


def test_a_model_config_that_cannot_hold_sentence_pairs_is_refused_before_a_folder_exists(tmp_path, capsys):
    model = tmp_path / "one-segment.json"
    model.write_text(json.dumps({"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "intermediate_size": 16, "type_vocab_size": 1}))
    one_line_error(capsys, ["pretrain", "--quiet", "--out", str(tmp_path / "run"), "--model", str(model),
                            "--num-documents", "40"], "type_vocab_size")
    assert not (tmp_path / "run").exists()


def test_an_interrupted_run_lists_only_the_files_it_wrote(tmp_path):
    lines = []
    cfg = PretrainConfig(out=str(tmp_path / "run"), **{**TINY, "steps": 8})
    result = pretrain(cfg, on_step=lambda step, stop: stop() if step == 2 else None, progress=False,
                      echo=lambda *a: lines.append(" ".join(map(str, a))))
    assert result.interrupted
    listing = next(line for line in "\n".join(lines).splitlines() if line.startswith("files in"))
    for plot in ("training.png", "attention.png"):
        assert (plot in listing) == (tmp_path / "run" / plot).exists(), listing
