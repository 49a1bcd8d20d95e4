"""Issue 15: nothing a user types can lose their work or show them a traceback.

Each test feeds one kind of bad input (or a failure halfway through a write) and checks
for one clear line naming the file, field or value, with nothing lost or overwritten.
"""

import errno
import json
import os
import stat

import numpy as np
import pytest
from safetensors import SafetensorError
from safetensors.numpy import save_file

import minibert as mb
from minibert import io, predict, squad
from minibert.data import documents, instances, labels

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "oslo", "is", "in", "norway", "where", "?", ".",
         "sep", "unk", "mask", "[", "]", "a", "b", "x", "the", "city"]


@pytest.fixture
def tok():
    return mb.WordPieceTokenizer(VOCAB)


def tiny_config():
    return mb.BertConfig(vocab_size=len(VOCAB), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=64)


def one_line(e) -> str:
    """The message the command line prints: it must be one line."""
    message = str(e.value)
    assert "\n" not in message, message
    return message


# ================================================================== io.py: writing
def test_atomic_writes_get_the_users_normal_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        io.write_text_atomic(tmp_path / "a.json", "{}")
        io.save_arrays(tmp_path / "p.safetensors", {"w": np.zeros(2)})
    finally:
        os.umask(old)
    for name in ("a.json", "p.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640  # 0666 & ~027, as open() gives
    os.chmod(tmp_path / "a.json", 0o600)  # made private on purpose: a rewrite keeps it so, as open() would
    io.write_text_atomic(tmp_path / "a.json", "[]")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o600


def test_atomic_write_syncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    io.write_text_atomic(tmp_path / "a.txt", "x")
    assert synced == [False, True]  # the file's bytes, then the folder's entry for the new name


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"),
                                     SafetensorError("Error while serializing: IoError(No space left on device)")],
                         ids=["ENOSPC", "SafetensorError"])
def test_full_disk_while_saving_arrays_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, failure):
    path = tmp_path / "params.safetensors"
    io.save_arrays(path, {"w": np.ones(3)})
    before = path.read_bytes()

    def half_written(arrays, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 10)  # a few bytes made it, then the disk was full
        raise failure

    monkeypatch.setattr(io, "save_file", half_written)
    with pytest.raises(io.CheckpointError) as e:
        io.save_arrays(path, {"w": np.zeros(3)})
    message = one_line(e)
    assert str(path) in message and "space" in message.lower()
    assert path.read_bytes() == before  # the previous file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["params.safetensors"]  # no temporary file left


def test_full_disk_while_writing_text_names_the_file(tmp_path, monkeypatch):
    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as e:
        io.atomic_write(tmp_path / "config.json", full)
    assert e.value.errno == errno.ENOSPC and str(tmp_path / "config.json") in one_line(e)
    assert list(tmp_path.iterdir()) == []


def test_a_checksum_can_be_required(tmp_path):
    foreign = tmp_path / "model.safetensors"  # as transformers writes it: no minibert_sha256
    save_file({"w": np.zeros(2, np.float32)}, str(foreign), metadata={"format": "pt"})
    arrays, _ = io.load_arrays(foreign)  # Hugging Face files load without one
    assert arrays["w"].shape == (2,)
    with pytest.raises(io.CheckpointError, match=r"model.safetensors: .*checksum") as e:
        io.load_arrays(foreign, require_checksum=True)
    one_line(e)
    ours = tmp_path / "params.safetensors"
    io.save_arrays(ours, {"w": np.zeros(2)})
    io.load_arrays(ours, require_checksum=True)


def test_read_json_on_a_folder_names_it(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder, not a config"):
        io.read_json(tmp_path, "config")


# ================================================================== io.py: JSON lines
def test_read_jsonl_tolerates_only_a_half_written_last_line(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')  # a crash in the middle of a line
    assert io.read_jsonl(f, "metrics file") == [{"step": 1}, {"step": 2}]
    with pytest.raises(ValueError, match=r"metrics.jsonl:3: ") as e:
        io.read_jsonl(f, "metrics file", tolerate_partial_last_line=False)
    one_line(e)
    f.write_text('{"step": 1}\n{"step": 2}')  # complete, only the newline is missing: kept
    assert io.read_jsonl(f, "metrics file") == [{"step": 1}, {"step": 2}]
    f.write_text('{"step": 1}\n{"step": \n{"step": 3}\n')  # a broken line in the middle is not a crash's doing
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a valid JSON line") as e:
        io.read_jsonl(f, "metrics file")
    one_line(e)
    f.write_bytes(b'{"step": 1}\n{"note": "caf\xc3')  # cut inside a UTF-8 character
    assert io.read_jsonl(f, "metrics file") == [{"step": 1}]
    with pytest.raises(FileNotFoundError, match="nothere.jsonl: metrics file not found"):
        io.read_jsonl(tmp_path / "nothere.jsonl", "metrics file")


def test_stale_temporary_files_are_removed(tmp_path):
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    (ckpts / "step-000010").mkdir(parents=True)
    (ckpts / "step-000010" / "params.safetensors").write_text("keep")
    dead = ckpts / ".step-000020.tmp-999999999"  # a pid no process has
    dead.mkdir()
    (dead / "params.safetensors").write_text("half")
    stale = [run / ".metrics.jsonl.k2j4h_9x.tmp", ckpts / ".latest.abcd1234.tmp",
             ckpts / "step-000010" / ".state.json.zz00zz00.tmp"]
    for p in stale:
        p.write_text("half")
    keep = [run / "metrics.jsonl", run / ".hidden", run / "notes.tmp", ckpts / "latest"]
    for p in keep:
        p.write_text("keep")
    removed = io.remove_stale_temporaries(run)
    assert sorted(removed) == sorted([dead, *stale])
    assert not dead.exists() and not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep) and (ckpts / "step-000010" / "params.safetensors").exists()


# ================================================================== hf.py: export never overwrites
@pytest.mark.parametrize("existing", ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
                                      "tokenizer.json", "special_tokens_map.json"])
def test_export_refuses_a_folder_holding_model_files(tmp_path, tok, existing):
    model = mb.BertForPreTraining(tiny_config())
    out = tmp_path / "export"
    out.mkdir()
    (out / existing).write_text("someone else's file")
    with pytest.raises(FileExistsError) as e:
        model.save_pretrained(out, tok)
    message = one_line(e)
    assert str(out) in message and existing in message
    assert [p.name for p in out.iterdir()] == [existing] and (out / existing).read_text() == "someone else's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # and no temporary folder


def test_export_into_a_new_or_empty_folder_still_works(tmp_path, tok):
    model = mb.BertForPreTraining(tiny_config())
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "README.md").write_text("notes")  # an unrelated file is no reason to refuse
    reference = tmp_path / "reference"
    reference.mkdir()  # the mode a plain mkdir gives
    for out in (tmp_path / "new" / "deeper", empty, tmp_path / "other"):
        model.save_pretrained(out, tok)
        names = {p.name for p in out.iterdir()}
        assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"} <= names
        assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)
        again = mb.BertForPreTraining.from_pretrained(out)
        assert np.array_equal(again.params["embeddings.word"], model.params["embeddings.word"])
    assert (tmp_path / "other" / "README.md").read_text() == "notes"
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary folder left


@pytest.mark.parametrize("where", ["new", "empty"])
def test_an_export_that_fails_halfway_leaves_no_partial_set(tmp_path, tok, monkeypatch, where):
    model = mb.BertForPreTraining(tiny_config())
    out = tmp_path / "export"
    if where == "empty":
        out.mkdir()

    def full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mb.WordPieceTokenizer, "save_vocab", full)  # weights and config are written by then
    with pytest.raises(OSError):
        model.save_pretrained(out, tok)
    assert (not out.exists()) if where == "new" else list(out.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ([] if where == "new" else ["export"])


# ================================================================== squad.py: layouts
NESTED = {"version": "v2.0", "data": [{"title": "Oslo", "paragraphs": [{"context": "Oslo is in Norway.", "qas": [
    {"id": "1", "question": "Where is Oslo?", "answers": [{"text": "Norway", "answer_start": 11}]},
    {"id": "2", "question": "Where is Bergen?", "answers": [], "is_impossible": True}]}]}]}
# what Hugging Face `datasets` holds (load_dataset("squad_v2")): one row per question, answers as columns
ROWS = [{"id": "1", "title": "Oslo", "context": "Oslo is in Norway.", "question": "Where is Oslo?",
         "answers": {"text": ["Norway"], "answer_start": [11]}},
        {"id": "2", "title": "Oslo", "context": "Oslo is in Norway.", "question": "Where is Bergen?",
         "answers": {"text": [], "answer_start": []}}]


@pytest.mark.parametrize("layout", ["nested", "flat data", "json list", "json lines"])
def test_squad_reads_the_nested_and_the_flat_layouts(tmp_path, layout):
    f = tmp_path / "squad.json"
    if layout == "nested":
        f.write_text(json.dumps(NESTED))
    elif layout == "flat data":
        f.write_text(json.dumps({"data": ROWS}))
    elif layout == "json list":  # Dataset.to_json(path, lines=False)
        f.write_text(json.dumps(ROWS))
    else:  # Dataset.to_json(path): JSON lines, one row per line (datasets' default)
        f.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    examples, skipped = squad.read_squad(f)
    assert not skipped
    assert [(e["id"], e["question"], e["context"], e["answers"], e["is_impossible"]) for e in examples] == [
        ("1", "Where is Oslo?", "Oslo is in Norway.", [{"text": "Norway", "answer_start": 11}], False),
        ("2", "Where is Bergen?", "Oslo is in Norway.", [], True)]


@pytest.mark.parametrize("content", ['{"version": 1}', '[1, 2]', '{"data": [{"text": "hello"}]}', '"text"'])
def test_squad_other_layouts_are_refused_listing_the_accepted_ones(tmp_path, content):
    f = tmp_path / "data.json"
    f.write_text(content)
    with pytest.raises(ValueError) as e:
        squad.read_squad(f)
    message = one_line(e)
    assert str(f) in message and "paragraphs" in message and "answers" in message


def test_squad_flat_row_errors_name_the_row(tmp_path):
    f = tmp_path / "rows.jsonl"
    rows = [ROWS[0], {**ROWS[0], "answers": {"text": ["Norway"]}}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"rows.jsonl:2: answers: .*answer_start") as e:
        squad.read_squad(f)
    one_line(e)
    f.write_text(json.dumps(ROWS[0]) + "\n{broken\n")
    with pytest.raises(ValueError, match=r"rows.jsonl:2: not a valid JSON line") as e:
        squad.read_squad(f)


def test_squad_negative_answer_start_is_skipped(tmp_path):
    data = json.loads(json.dumps(NESTED))
    qa = data["data"][0]["paragraphs"][0]["qas"][0]
    qa["answers"] = [{"text": "Norway", "answer_start": -7}]  # "Oslo is in Norway."[-7:-1] == "Norway"
    f = tmp_path / "squad.json"
    f.write_text(json.dumps(data))
    examples, skipped = squad.read_squad(f)
    assert [e["id"] for e in examples] == ["2"]
    assert "answer_start -7" in skipped[0] and "negative" in skipped[0]
    rows = [{**ROWS[0], "answers": {"text": ["Norway"], "answer_start": [-7]}}, ROWS[1]]
    f.write_text(json.dumps(rows))
    examples, skipped = squad.read_squad(f)
    assert [e["id"] for e in examples] == ["2"] and "negative" in skipped[0]


def test_squad_empty_data_context_or_question(tmp_path):
    f = tmp_path / "squad.json"
    f.write_text(json.dumps({"data": []}))
    with pytest.raises(ValueError, match=r"squad.json: no questions") as e:
        squad.read_squad(f)
    one_line(e)
    data = {"data": [{"paragraphs": [
        {"context": "Oslo is in Norway.", "qas": [
            {"id": "q", "question": "  ", "answers": [{"text": "Oslo", "answer_start": 0}]},
            {"id": "ok", "question": "Where?", "answers": [{"text": "Oslo", "answer_start": 0}]}]},
        {"context": "", "qas": [{"id": "c", "question": "What?", "answers": [], "is_impossible": True}]}]}]}
    f.write_text(json.dumps(data))
    examples, skipped = squad.read_squad(f)
    assert [e["id"] for e in examples] == ["ok"]
    assert "data[0].paragraphs[0].qas[0].question: empty" in skipped[0]
    assert "data[0].paragraphs[1].context: empty" in skipped[1]
    data["data"][0]["paragraphs"][0]["qas"].pop()  # now nothing usable is left
    f.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"squad.json: no usable questions.*question: empty") as e:
        squad.read_squad(f)
    one_line(e)


def test_make_features_skips_an_empty_context_or_question(tok):
    examples = [{"id": "c", "question": "where is oslo ?", "context": " \t", "answers": []},
                {"id": "q", "question": "", "context": "oslo is in norway .", "answers": []},
                {"id": "ok", "question": "where ?", "context": "oslo", "answers": []}]
    features, skipped = squad.make_features(examples, tok, max_seq_length=32)
    assert [f.example_index for f in features] == [2]
    assert skipped[0].startswith("c: the context is empty") and skipped[1].startswith("q: the question is empty")


# ================================================================== squad.py: decoding and special-token text
def test_squad2_the_most_confident_window_decides_no_answer(tok):
    """google's run_squad.py and Hugging Face take the *minimum* null score over windows."""
    context = "x x x x x x x x oslo is in norway ."
    ex = {"id": "a", "question": "where ?", "context": context, "answers": []}
    features, _ = squad.make_features([ex], tok, max_seq_length=12, doc_stride=4)
    norway = [k for k, f in enumerate(features) if tok.vocab["norway"] in f.input_ids]
    far = [k for k, f in enumerate(features) if tok.vocab["norway"] not in f.input_ids]
    assert norway and far  # two kinds of window
    starts, ends = [], []
    for k, f in enumerate(features):
        s = np.zeros(len(f.input_ids))
        if k in norway:  # sure the answer is here: the span scores 5, [CLS] only 0
            s[f.input_ids.index(tok.vocab["norway"])] = 2.5
        else:  # this window does not hold the answer, so it votes "no answer" (10)
            s[0] = 5.0
        starts.append(s)
        ends.append(s.copy())
    assert squad.predict_answers([ex], features, starts, ends, allow_impossible=True)["a"] == "norway"
    for s, e in zip(starts, ends):  # every window says "no answer": then there is none
        s[0] = e[0] = 5.0
    assert squad.predict_answers([ex], features, starts, ends, allow_impossible=True)["a"] == ""


@pytest.mark.parametrize("literal", ["[SEP]", "[UNK]", "[MASK]"])
def test_special_token_text_in_a_context_or_question_is_plain_text(tok, literal):
    context = f"Oslo {literal} is in Norway."
    question = f"Where is {literal} Oslo?"
    ex = {"id": "s", "question": question, "context": context,
          "answers": [{"text": "Norway", "answer_start": context.index("Norway")}]}
    features, skipped = squad.make_features([ex], tok, max_seq_length=32)
    assert not skipped and len(features) == 1
    f = features[0]
    assert f.input_ids.count(tok.sep_id) == 2  # the typed text never becomes a separator
    assert f.input_ids.count(tok.mask_id) == 0 and f.input_ids.count(tok.cls_id) == 1
    word = literal[1:-1].lower()
    tokens = tok.convert_ids_to_tokens(f.input_ids)
    assert tokens.count(word) == 2  # "[", word, "]" in the question and in the context
    spans = [context[o[0]:o[1]] for o in f.offsets if o is not None]
    assert spans == ["Oslo", "[", literal[1:-1], "]", "is", "in", "Norway", "."]
    assert tokens[f.start_position] == "norway"
    model = mb.BertForQuestionAnswering(tiny_config())
    from minibert.finetune import answer

    assert answer(model, tok, question, context) in context


def test_offsets_survive_decomposed_accents_in_a_cased_vocabulary():
    tok = mb.WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Café", "a", "##s"], do_lower_case=False)
    text = "a Cafe\u0301s a"  # "é" typed as e + a combining accent
    tokens, offsets = squad.tokenize_with_offsets(tok, text)
    assert tokens == ["a", "Café", "##s", "a"]
    assert [text[s:e] for s, e in offsets] == ["a", "Cafe\u0301", "s", "a"]


def test_held_out_size_warning():
    assert squad.held_out_warning(500, "questions") is None
    warning = squad.held_out_warning(20, "questions")
    assert "20 questions" in warning and "50" in warning and "\n" not in warning
    assert squad.held_out_warning(0, "questions").startswith("no held-out questions")


# ================================================================== predict.py
@pytest.fixture
def pretrained():
    return mb.BertForPreTraining(tiny_config())


@pytest.mark.parametrize("a, b, which", [("", "oslo is in norway .", "sentence A"),
                                         ("oslo is in norway .", "  ", "sentence B"),
                                         ("oslo", "\u200b", "sentence B")])
def test_nsp_refuses_an_empty_sentence(pretrained, tok, a, b, which):
    with pytest.raises(ValueError, match=which) as e:
        predict.next_sentence_probability(pretrained, tok, a, b)
    one_line(e)


@pytest.mark.parametrize("top_k", [0, -1])
def test_fill_mask_refuses_a_top_k_below_one(pretrained, tok, top_k):
    with pytest.raises(ValueError, match=rf"top_k must be at least 1, got {top_k}"):
        predict.fill_mask(pretrained, tok, "oslo is in [MASK] .", top_k)


def test_fill_mask_without_a_mask_names_the_text(pretrained, tok):
    with pytest.raises(ValueError, match=r"no \[MASK\] in 'oslo is in \[mask\] \.'.*capitals") as e:
        predict.fill_mask(pretrained, tok, "oslo is in [mask] .")
    one_line(e)
    assert len(predict.fill_mask(pretrained, tok, "oslo is in [MASK] .", top_k=3)[0]) == 3


# ================================================================== data/
@pytest.mark.parametrize("content, says", [(b"\x00" * 100, "NUL"), (b"hello\nworld\x00\x00\n", "NUL"),
                                           (bytes(range(1, 32)) * 20, "binary"),
                                           ("hello\nworld\n".encode("utf-16"), "UTF-16"),
                                           (b"ok line\n\xff\xfegarbage", "UTF-8")])
def test_a_binary_corpus_file_is_one_line_naming_the_file(tmp_path, content, says):
    f = tmp_path / "corpus.txt"
    f.write_bytes(content)
    with pytest.raises(ValueError, match=says) as e:
        documents.read_documents(f)
    assert str(f) in one_line(e)


def test_lines_the_tokenizer_drops_count_as_blank(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("\ufffd\ufffd\n\u200b\n\nOslo is in Norway.\n")
    assert documents.read_documents(f) == [["Oslo is in Norway."]]


def test_no_documents_left_names_the_source(tok):
    with pytest.raises(ValueError, match=r"corpus.txt: the corpus has no documents") as e:
        instances.create_pretraining_instances([["\ufffd"], ["\u200b"]], tok, source="corpus.txt")
    one_line(e)
    with pytest.raises(ValueError, match=r"corpus.txt: the corpus has only one document"):
        instances.create_pretraining_instances([["oslo is in norway ."]], tok, source="corpus.txt")


@pytest.mark.parametrize("value, name", [("positive", "positive"), (3, "3"), (0, "0"), (" spaced ", " spaced ")])
def test_parse_label_accepts_strings_and_integers(value, name):
    assert labels.parse_label(value, "train.jsonl", 7) == name


@pytest.mark.parametrize("value, kind", [({"a": 1}, "object"), ([1], "list"), (None, "null"), (1.5, "number"),
                                         (1.0, "number"), (True, "boolean"), (False, "boolean"), ("", "empty")])
def test_parse_label_refuses_everything_else(value, kind):
    with pytest.raises(ValueError, match=rf"train.jsonl:7: 'label' .*{kind}") as e:
        labels.parse_label(value, "train.jsonl", 7)
    one_line(e)
