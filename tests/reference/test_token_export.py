"""`minibert export` of fine-tuning runs (a tagger and a sentence-pair classifier of the tiny GLUE),
loaded by transformers' from_pretrained: the same logits in float64 and float32, and the run's
label names as id2label / label2id."""

import json

import numpy as np
import pytest

from minibert.cli import main
from minibert.runs import load_run
from minibert.tasks import align_tags, tagging_batch

torch = pytest.importorskip("torch", reason="torch is not installed (pip install '.[reference]')")
transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install '.[reference]')")
pytestmark = pytest.mark.reference

SMALL_MODEL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
               "max_position_embeddings": 64}
HF_CLASS = {"entities": "BertForTokenClassification", "paraphrase": "BertForSequenceClassification"}


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    (base / "model.json").write_text(json.dumps(SMALL_MODEL))
    assert main(["pretrain", "--out", str(base / "pre"), "--model", str(base / "model.json"), "--num-documents", "40",
                 "--steps", "2", "--batch-size", "4", "--seq-length", "16", "--eval-batches", "1",
                 "--vocab-size", "300", "--quiet"]) == 0
    return base / "pre"


def a_batch(run, task):
    if task == "entities":
        items = [align_tags(w.split(), [0] * len(w.split()), run.tokenizer, 32)
                 for w in ("Anna Berg lives in Oslo .", "Nordvik Systems hired her", "Hi")]
        batch = tagging_batch(items, run.tokenizer, None)
        return {k: v for k, v in batch.items() if k != "labels"}
    return run.tokenizer.batch_encode(["Oslo is a city in Norway.", "Anna works as a baker."],
                                      ["Oslo lies in Norway.", "Anna has a job as a pilot in Bergen."], 32)


@pytest.mark.parametrize("task", ["entities", "paraphrase"])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)], ids=["float64", "float32"])
def test_an_exported_classifier_gives_transformers_the_same_logits(pretrain_run, tmp_path, task, dtype, tol, capsys):
    run_dir, out = tmp_path / "run", tmp_path / "hf"
    assert main(["finetune", task, "--init", str(pretrain_run), "--out", str(run_dir), "--num-examples", "40",
                 "--steps", "3", "--batch-size", "4", "--seq-length", "32", "--eval-interval", "3", "--quiet"]) == 0
    assert main(["export", str(run_dir), str(out)]) == 0
    assert HF_CLASS[task] in capsys.readouterr().out
    run = load_run(run_dir, dtype=dtype)
    hf = getattr(transformers, HF_CLASS[task]).from_pretrained(str(out), attn_implementation="eager").eval()
    hf = hf.double() if dtype == np.float64 else hf.float()
    assert hf.config.id2label == dict(enumerate(run.task["labels"]))
    assert hf.config.label2id == {name: i for i, name in enumerate(run.task["labels"])}
    batch = a_batch(run, task)
    ours = run.model.forward(batch).extras["logits"]
    with torch.no_grad():
        theirs = hf(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
    mask = batch["attention_mask"].astype(bool) if task == "entities" else np.ones(len(ours), bool)
    assert ours.dtype == dtype and ours.shape == theirs.shape
    err = np.abs(ours[mask] - theirs[mask]).max() / np.abs(theirs[mask]).max()
    assert err < tol, f"relative logit difference {err:.2e} >= {tol:.0e}"
