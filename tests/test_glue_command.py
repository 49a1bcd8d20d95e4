"""`minibert glue` and the tiny-GLUE fine-tuning tasks from the command line: a tiny end-to-end
run, and bad input, each refused with one line `minibert: error: ...`, a non-zero exit and
no folder left behind."""

import json

import numpy as np
import pytest

from minibert.cli import main
from minibert.runs import load_run

from .conftest import tiny_pretrain_run

SMALL_MODEL = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
               "max_position_embeddings": 64}
TINY = ["--steps", "2", "--batch-size", "4", "--seq-length", "32", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny pre-training run and a tiny fine-tuning run of a tiny-GLUE task."""
    base = tmp_path_factory.mktemp("glue")
    pre = tiny_pretrain_run(base / "pretrain-run", SMALL_MODEL, 300)
    fine = base / "finetune-run"
    assert main(["finetune", "entities", "--init", str(pre), "--out", str(fine), "--num-examples", "40",
                 "--eval-interval", "2", *TINY]) == 0
    return {"pretrain": pre, "finetune": fine, "base": base}


def test_glue_prints_the_table_and_writes_it(runs, tmp_path, capsys):
    out = tmp_path / "glue"
    assert main(["glue", str(runs["pretrain"]), "--out", str(out), "--tasks", "paraphrase,entities",
                 "--train-examples", "30", "--held-out", "30", "--seeds", "0,1", "--frozen", "--multitask", *TINY]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "glue.json").read_text())
    assert summary["columns"] == ["pretrained", "scratch", "frozen", "frozen_random", "multitask"]
    assert list(summary["tasks"]) == ["paraphrase", "entities"]
    for column in summary["columns"]:
        per_task = [summary["tasks"][t][column] for t in ("paraphrase", "entities")]
        assert all(len(scores) == 2 for scores in per_task)  # one score per seed
        # GLUE's average: per seed, the mean of the task scores
        assert summary["average"][column] == pytest.approx([(a + b) / 2 for a, b in zip(*per_task)])
    table = (out / "glue.md").read_text().splitlines()
    assert table[0] == "| task | like | metric | pre-trained | scratch | frozen | frozen random | multi-task |"
    assert table[2].startswith("| paraphrase | MRPC | F1 |") and table[-1].startswith("| average |")
    assert "±" in table[2] and "average" in printed and "multi-task" in printed
    for name in ("paraphrase-pretrained-seed0", "entities-scratch-seed1", "multitask-seed1"):
        assert (out / name / "checkpoints" / "latest").is_file()
    ran = load_run(out / "entities-pretrained-seed1")  # a single-task run is an ordinary fine-tuning run
    assert ran.task["task"] == "entities" and ran.task["labels"][0] == "O"


def refused(capsys, argv, *needles, code=None) -> str:
    """Run the command; it must fail with one line naming what was wrong."""
    status = main(argv) if code is None else pytest.raises(SystemExit, main, argv).value.code
    err = capsys.readouterr().err
    assert status != 0 and (code is None or status == code)
    prefix = "minibert: error: " if code is None else f"minibert {argv[0]}: error: "  # argparse names the subcommand
    assert len(err.splitlines()) == 1 and err.startswith(prefix), err
    for needle in needles:
        assert needle in err, err
    return err


def test_bad_glue_and_finetune_arguments_are_one_line_and_leave_nothing(runs, tmp_path, capsys):
    out = tmp_path / "out"
    pre, fine = str(runs["pretrain"]), str(runs["finetune"])
    refused(capsys, ["glue", pre, "--out", str(out), "--tasks", "nope"], "--tasks", "'nope'")
    refused(capsys, ["glue", pre, "--out", str(out), "--seeds", "0,x"], "--seeds", code=2)
    refused(capsys, ["finetune", "nope", "--out", str(out)], "'nope'", code=2)
    refused(capsys, ["glue", str(runs["base"]), "--out", str(out)], str(runs["base"]), "not a minibert run")
    refused(capsys, ["glue", fine, "--out", str(out)], fine, "pre-training run")
    refused(capsys, ["finetune", "paraphrase", "--init", fine, "--out", str(out), *TINY], fine)
    assert not out.exists()


@pytest.mark.parametrize("task, line, needles", [
    ("paraphrase", {"text": "A.", "text_b": "B.", "label": "maybe"}, [":2:", "'maybe'", "'paraphrase'"]),
    ("paraphrase", {"text": "A.", "text_b": "B.", "label": 2}, [":2:", "2"]),
    ("acceptable", {"sentence": "A."}, [":2:", "'text'"]),
    ("entities", {"words": ["Anna", "sleeps"], "tags": ["B-PER"]}, [":2:", "2 words but 1 tags"]),
    ("entities", {"words": ["Anna", "sleeps"], "tags": ["B-PER", "X-LOC"]}, [":2:", "'X-LOC'", "'B-CITY'"]),
])
def test_a_bad_labelled_file_names_the_file_line_and_value(runs, tmp_path, capsys, task, line, needles):
    good = ({"words": ["Anna", "Berg", "sleeps"], "tags": ["B-PER", "I-PER", "O"]} if task == "entities"
            else {"text": "Oslo is in Norway.", "text_b": "Oslo lies in Norway.", "label": "paraphrase"}
            if task == "paraphrase" else {"text": "Oslo is in Norway.", "label": 1})
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n")
    out = tmp_path / "out"
    refused(capsys, ["finetune", task, "--init", str(runs["pretrain"]), "--data", str(data), "--out", str(out), *TINY],
            str(data), *needles)
    assert not out.exists()


def test_a_malformed_line_names_the_file_and_line(runs, tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text('{"words": ["Oslo"], "tags": ["B-CITY"]}\n{"words": ["Oslo"], \n')
    out = tmp_path / "out"
    refused(capsys, ["finetune", "entities", "--init", str(runs["pretrain"]), "--data", str(data), "--out", str(out),
                     *TINY], f"{data}:2")
    assert not out.exists()


@pytest.mark.parametrize("objective", ["left_to_right", "right_to_left"])
def test_a_language_model_run_as_init(tmp_path, capsys, objective):
    """GPT-style fine-tuning: a left-to-right run gives a causal classifier that pools the last real
    token, recorded in task.json so load_run rebuilds it; a right-to-left run is refused."""
    pre = tiny_pretrain_run(tmp_path / "lm", SMALL_MODEL, 300, "--objective", objective)
    out = tmp_path / "fine"
    argv = ["finetune", "paraphrase", "--init", str(pre), "--out", str(out), "--num-examples", "40",
            "--eval-interval", "2", *TINY]
    if objective == "right_to_left":
        refused(capsys, argv, str(pre), "right-to-left", "frozen features")
        assert not out.exists()
        return
    assert main(argv) == 0
    info = json.loads((out / "task.json").read_text())
    assert info["model_attributes"] == {"causal": True, "pool_at": "last"}
    run = load_run(out)
    assert run.model.causal and run.model.pool_at == "last"
    # the pooler reads each row's last real token ([SEP]), not [CLS]
    batch = run.tokenizer.batch_encode(["Oslo is in Norway.", "Oslo."], None, 32)
    out = run.model.forward(batch)
    last = out.sequence_output[[0, 1], batch["attention_mask"].sum(axis=1) - 1]  # (B, H)
    expected = np.tanh(last @ run.model.params["pooler.W"] + run.model.params["pooler.b"])
    np.testing.assert_allclose(out.pooled_output, expected, rtol=1e-5, atol=1e-6)
