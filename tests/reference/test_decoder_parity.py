"""minibert's left-to-right language model and token-classification head against transformers'
BertLMHeadModel (is_decoder=True) and BertForTokenClassification, in float64: logits, loss and
every parameter's gradient, on a small random config and on the real all-MiniLM-L6-v2 weights."""

import warnings

import numpy as np
import pytest

import minibert as mb
from minibert.hf import from_hf_state_dict

torch = pytest.importorskip("torch", reason="torch is not installed (pip install '.[reference]')")
transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install '.[reference]')")
pytestmark = pytest.mark.reference

from .test_hf import MINILM, needs_minilm  # noqa: E402 - after the skips, as test_hf needs torch too

SOURCES = ["random", pytest.param("minilm", marks=needs_minilm)]

ODD = dict(vocab_size=300, hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=100,
           type_vocab_size=3, max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
SENTENCES = ["The cat sat on the mat.", "Short.", "Crème brûlée in Zürich costs 12.50 francs!",
             "Transformers changed natural language processing in 2018, when BERT was released by Google."]
TIGHT = 1e-10  # float64 through a few layers of the same arithmetic: measured 1e-15 .. 1e-12


HEAD = ("cls.", "classifier.")  # transformers' names of the heads MiniLM lacks


def perturb(model, only=("",)):
    """Non-trivial biases and LayerNorm parameters (of the names starting with `only`), so their
    gradients are tested too: a fresh head has zero biases and LayerNorm (1, 0)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(only) and (name.endswith("bias") or "LayerNorm" in name):
                p.add_(0.1 * torch.randn_like(p))
    return model


def hf_model(cls, source, seed, **config):
    """transformers' cls in float64, eval mode, from a random small config or from MiniLM (its head random)."""
    torch.manual_seed(seed)
    if source == "random":
        return perturb(cls(transformers.BertConfig(**ODD, initializer_range=0.2, **config)).double().eval())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls.from_pretrained(str(MINILM), attn_implementation="eager", **config)
    return perturb(model.double().eval(), only=HEAD)  # the real encoder as it is


def minibert_copy(hf, cls, source, **kwargs):
    """The same parameters in minibert: all copied from transformers' model (random), or the
    encoder read from MiniLM's folder by minibert's own loader and the fresh head copied (minilm)."""
    config = mb.BertConfig.from_dict(hf.config.to_dict())
    arrays, leftover = from_hf_state_dict(config, {k: v.detach().numpy() for k, v in hf.state_dict().items()})
    assert not leftover, leftover
    if source == "random":
        model = cls(config, dtype=np.float64, **kwargs)
        model.load_params(arrays, source="transformers")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no weights for the masked-LM head": copied next
            model = cls.from_pretrained(MINILM, dtype=np.float64, **kwargs)
        head = {k: v for k, v in arrays.items() if k.startswith(("mlm.", "classifier."))}
        assert head and model.newly_initialized
        model.load_params(head, source="transformers", strict=False)
    return model


def batch_for(source, seed=0):
    """A right-padded batch: tokenized sentences for MiniLM, random ids and segments otherwise."""
    if source == "minilm":
        batch = mb.WordPieceTokenizer.from_vocab_file(MINILM / "vocab.txt").batch_encode(SENTENCES)
        batch = {k: np.asarray(batch[k]) for k in ("input_ids", "token_type_ids", "attention_mask")}
    else:
        rng = np.random.default_rng(seed)
        T = 13
        mask = (np.arange(T)[None] < np.array([13, 9, 4, 2])[:, None]).astype(np.int64)
        ids = rng.integers(5, 300, (4, T)) * mask
        ids[1, 3] = ids[1, 4] = ids[1, 7]  # repeated ids
        batch = {"input_ids": ids, "token_type_ids": rng.integers(0, 3, (4, T)) * mask, "attention_mask": mask}
    assert (batch["attention_mask"] == 0).any()  # padded
    return batch


def torch_inputs(batch):
    return {k: torch.tensor(batch[k]) for k in ("input_ids", "token_type_ids", "attention_mask")}


def gradient_errors(ours, grads, hf):
    """{HF parameter name: relative error of minibert's gradient}, for every parameter transformers has."""
    mine = mb.to_hf_state_dict(ours, grads)
    theirs = {n: p.grad.numpy() for n, p in hf.named_parameters()}
    assert {n.replace("decoder.bias", "bias") for n in theirs} == set(mine)  # every parameter, nothing else
    scale = max(np.linalg.norm(g) for g in theirs.values())
    errors = {}
    for name, g in theirs.items():
        m = mine[name.replace("decoder.bias", "bias")]
        if name.endswith("attention.self.key.bias"):
            # exactly zero in exact arithmetic, causal or not: q . b_k shifts a softmax row's every
            # score (a blocked one stays blocked). Both sides hold rounding noise; both must be ~0.
            assert np.abs(m).max() < 1e-12 * scale and np.abs(g).max() < 1e-12 * scale, name
            continue
        errors[name] = mb.relative_error(m, g)
    return errors


def report(what, **errors):
    print(what + ": " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))


# ---------------------------------------------------------------- the left-to-right language model
def shifted_loss(logits, labels):
    """transformers' ForCausalLMLoss in float64: it casts the logits to float32 first (logits.float()),
    which would cap any comparison at ~1e-7, so the same shift and mean are written out here."""
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
                                             ignore_index=-100)


@pytest.mark.parametrize("right_to_left", [False, True], ids=["left-to-right", "right-to-left"])
@pytest.mark.parametrize("source", SOURCES)
def test_lm_head_model_matches_transformers(source, right_to_left):
    hf = hf_model(transformers.BertLMHeadModel, source, seed=1, is_decoder=True)
    assert hf.config.is_decoder
    ours = minibert_copy(hf, mb.BertLMHeadModel, source, right_to_left=right_to_left)
    batch = batch_for(source)
    lengths = batch["attention_mask"].sum(axis=1)
    hf_batch = {k: v.copy() for k, v in batch.items()}
    if right_to_left:  # transformers reads the mirrored text; minibert mirrors it inside
        for b, L in enumerate(lengths):
            for k in ("input_ids", "token_type_ids"):
                hf_batch[k][b, :L] = batch[k][b, :L][::-1]
    out = ours.forward(batch)
    grads = ours.backward()

    # labels = input_ids with padding ignored; transformers shifts them inside, as minibert does
    labels = torch.tensor(np.where(hf_batch["attention_mask"] == 1, hf_batch["input_ids"], -100))
    ref = hf(**torch_inputs(hf_batch), labels=labels)
    loss64 = shifted_loss(ref.logits, labels)
    hf.zero_grad()
    loss64.backward()

    theirs = ref.logits.detach().numpy()
    if right_to_left:  # back to the input's order, as minibert returns them
        theirs = np.stack([np.concatenate([t[:L][::-1], t[L:]]) for t, L in zip(theirs, lengths)])
    real = batch["attention_mask"] == 1
    logits_error = mb.relative_error(out.extras["logits"][real], theirs[real])
    loss_error = abs(float(out.loss) - loss64.item()) / loss64.item()
    errors = gradient_errors(ours, grads, hf)
    worst = max(errors, key=errors.get)
    report(f"BertLMHeadModel {source} {'right-to-left' if right_to_left else 'left-to-right'} float64",
           logits=logits_error, loss=loss_error, worst_gradient=errors[worst],
           transformers_float32_loss=abs(float(out.loss) - ref.loss.item()) / ref.loss.item())
    assert logits_error < TIGHT and loss_error < TIGHT
    assert errors[worst] < TIGHT, (worst, errors[worst])
    # transformers' own loss, computed from float32 logits, agrees to float32 precision
    assert ref.loss.dtype == torch.float32 and abs(float(out.loss) - ref.loss.item()) < 1e-6 * ref.loss.item()


def test_lm_loss_is_transformers_loss_with_labels_equal_to_input_ids():
    """Without padding, labels=input_ids is exactly transformers' call; with padding, transformers
    would also score the [PAD] ids unless they are set to -100 (minibert ignores them)."""
    hf = hf_model(transformers.BertLMHeadModel, "random", seed=2, is_decoder=True)
    ours = minibert_copy(hf, mb.BertLMHeadModel, "random")
    batch = batch_for("random")
    batch = {k: v[:1] for k, v in batch.items()}  # the full row: no padding
    out = ours.forward(batch)
    ref = hf(**torch_inputs(batch), labels=torch.tensor(batch["input_ids"]))
    assert abs(float(out.loss) - shifted_loss(ref.logits, torch.tensor(batch["input_ids"])).item()) < 1e-13
    assert abs(float(out.loss) - ref.loss.item()) < 1e-6 * ref.loss.item()


# ---------------------------------------------------------------- token classification
@pytest.mark.parametrize("source", SOURCES)
def test_token_classification_matches_transformers(source):
    hf = hf_model(transformers.BertForTokenClassification, source, seed=3, num_labels=5)
    ours = minibert_copy(hf, mb.BertForTokenClassification, source, num_labels=5)
    batch = batch_for(source)
    labels = np.random.default_rng(4).integers(0, 5, batch["input_ids"].shape)
    labels[batch["attention_mask"] == 0] = -100  # padding
    labels[:, 0] = -100  # [CLS]
    labels[0, 2] = -100  # a word's later piece
    out = ours.forward({**batch, "labels": labels})
    grads = ours.backward()
    ref = hf(**torch_inputs(batch), labels=torch.tensor(labels))
    hf.zero_grad()
    ref.loss.backward()
    logits_error = mb.relative_error(out.extras["logits"], ref.logits.detach().numpy())  # every position
    loss_error = abs(float(out.loss) - ref.loss.item()) / ref.loss.item()
    errors = gradient_errors(ours, grads, hf)
    worst = max(errors, key=errors.get)
    report(f"BertForTokenClassification {source} float64", logits=logits_error, loss=loss_error,
           worst_gradient=errors[worst])
    assert ref.loss.dtype == torch.float64
    assert logits_error < TIGHT and loss_error < TIGHT
    assert errors[worst] < TIGHT, (worst, errors[worst])


# ---------------------------------------------------------------- export, both ways
@pytest.mark.parametrize("cls, hf_cls, kwargs", [
    (mb.BertLMHeadModel, "BertLMHeadModel", {}),
    (mb.BertForTokenClassification, "BertForTokenClassification", {"num_labels": 7}),
], ids=["lm", "token-classification"])
def test_transformers_loads_the_exported_folder(tmp_path, cls, hf_cls, kwargs):
    ours = cls(mb.BertConfig(**ODD), seed=5, **kwargs)
    ours.save_pretrained(tmp_path / "out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again, info = getattr(transformers, hf_cls).from_pretrained(str(tmp_path / "out"), output_loading_info=True,
                                                                    attn_implementation="eager")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    if cls is mb.BertLMHeadModel:
        assert again.config.is_decoder  # causal in transformers too
    else:
        assert again.config.num_labels == 7
    batch = batch_for("random")
    out = ours.forward(batch)
    with torch.no_grad():
        ref = again.eval()(**torch_inputs(batch))
    real = batch["attention_mask"] == 1
    np.testing.assert_allclose(out.extras["logits"][real], ref.logits.numpy()[real], rtol=1e-4, atol=1e-5)
    loaded = cls.from_pretrained(tmp_path / "out", **kwargs)  # and back into minibert, nothing fresh
    assert loaded.newly_initialized == []
    for k in ours.params:
        np.testing.assert_array_equal(loaded.params[k], ours.params[k])
