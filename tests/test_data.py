"""Documents, the generated corpus, NSP pairs, masking (property-based and statistical),
batching and statistics."""

import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minibert as mb
from minibert.data import exact_count, split_documents, tokenize_documents
from minibert.data.masking import NEVER_MASKED

# ---------------------------------------------------------------- a tokenizer for the tests
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "run", "##s", "##ing", "##ed", "big", "red", "un", "##like", "."]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
TOK = mb.WordPieceTokenizer(VOCAB)


@pytest.fixture(scope="module")
def world():
    docs = mb.generate_corpus(1200, seed=0)
    vocab = mb.train_wordpiece([" ".join(d) for d in docs], 3000)
    return docs, mb.WordPieceTokenizer(vocab)


# ---------------------------------------------------------------- documents
def test_read_documents_google_format(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("First sentence.\nSecond sentence.\n\n\n\nOther doc, one line.\n\n   \n")
    assert mb.read_documents(f) == [["First sentence.", "Second sentence."], ["Other doc, one line."]]


def test_read_documents_prose(tmp_path):
    f = tmp_path / "prose.txt"
    f.write_text("It rains. We stay in! Do we read? Yes, we\nread books.\n\nA new paragraph. It ends here.\n")
    assert mb.read_documents(f) == [["It rains.", "We stay in!", "Do we read?", "Yes, we read books."],
                                    ["A new paragraph.", "It ends here."]]
    assert mb.read_documents(f, format="lines")[0] == ["It rains. We stay in! Do we read? Yes, we", "read books."]


def test_read_documents_errors(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("good line\nsecond line\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt:3: not valid UTF-8 \(byte 0xe9"):
        mb.read_documents(bad)
    with pytest.raises(FileNotFoundError, match="missing.txt: corpus file not found"):
        mb.read_documents(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert mb.read_documents(empty) == []


# ---------------------------------------------------------------- the generated corpus
def test_generated_corpus_is_deterministic_and_varied():
    docs = mb.generate_corpus(3000, seed=0)
    assert docs == mb.generate_corpus(3000, seed=0) and docs != mb.generate_corpus(3000, seed=1)
    lengths = [len(d) for d in docs]
    assert min(lengths) >= 4 and max(lengths) <= 10
    words = {w for d in docs for s in d for w in s.lower().replace(".", " ").replace(",", " ").split()}
    assert len(words) > 800  # a vocabulary big enough not to be trivial
    train, held_out = split_documents(docs, 0.1)
    assert len(held_out) == 300 and train + held_out == docs


# Written here by hand, not taken from corpus.py: the plural of every animal the world writes about.
ANIMAL_PLURALS = {"wolf": "wolves", "owl": "owls", "beaver": "beavers", "penguin": "penguins", "camel": "camels",
                  "frog": "frogs", "dolphin": "dolphins", "squirrel": "squirrels", "eagle": "eagles", "bee": "bees",
                  "bear": "bears", "seal": "seals", "lizard": "lizards", "deer": "deer"}


def _starts_with_vowel_sound(word: str) -> bool:
    # English spelling, for this world's words: "unit", "university", "euro" start with a "y" sound, "hour" with a vowel
    return word.startswith(("a", "e", "i", "o", "hour")) or (word.startswith("u") and not word.startswith(("uni", "use")))


def test_generated_english_uses_the_right_article_and_plural():
    qa = mb.generate_qa(3000, seed=0)
    text = " ".join([s for d in mb.generate_corpus(20000, seed=0) for s in d] + [ex["question"] for ex in qa])
    wrong = Counter(f"{m[1]} {m[2]}" for m in re.finditer(r"\b(an?) ([a-z]+)", text, flags=re.IGNORECASE)
                    if (m[1].lower() == "an") != _starts_with_vowel_sound(m[2].lower()))
    assert not wrong, f"wrong article: {wrong.most_common(10)}"
    jobs = Counter(re.findall(r"\b(?:works as|is) an? ([A-Za-z]+)", text))
    assert jobs and all(job.islower() for job in jobs), f"a job written as a name: {[j for j in jobs if not j.islower()]}"
    assert set(ANIMAL_PLURALS) == set(mb.data.corpus.ANIMALS), "an animal was added: write its plural above"
    words = Counter(re.findall(r"[a-z]+", text.lower()))
    for singular, plural in ANIMAL_PLURALS.items():
        assert words[plural] > 0, f"the plural {plural!r} never appears"
        if singular + "s" != plural:
            assert words[singular + "s"] == 0, f"{singular + 's'!r} appears {words[singular + 's']} times; the plural is {plural!r}"


def test_generated_qa_spans_point_at_the_answer():
    examples = mb.generate_qa(400, seed=0)
    assert len(examples) == 400
    for ex in examples:
        ans = ex["answers"][0]
        assert ex["context"][ans["answer_start"]: ans["answer_start"] + len(ans["text"])] == ans["text"]
        assert ex["question"].endswith("?")


# ---------------------------------------------------------------- masking: properties
@st.composite
def tokens_strategy(draw):
    """A vocabulary drawn from WORDS (a different one each example), then text over it."""
    vocab = draw(st.lists(st.sampled_from(WORDS), min_size=1, unique=True))
    return draw(st.lists(st.sampled_from(vocab + ["[UNK]", "[MASK]"]), min_size=0, max_size=509))


def build_sequence(body, split, pad):
    split = min(split, len(body))
    return ["[CLS]", *body[:split], "[SEP]", *body[split:], "[SEP]"] + ["[PAD]"] * pad


@settings(max_examples=200, deadline=None)
@given(body=tokens_strategy(), split=st.integers(0, 509), pad=st.integers(0, 3),
       strategy=st.sampled_from(["exact", "bernoulli", "whole_word", "span"]),
       p=st.floats(0.01, 0.5), max_pred=st.one_of(st.none(), st.integers(1, 80)), seed=st.integers(0, 2**32 - 1))
def test_masking_properties(body, split, pad, strategy, p, max_pred, seed):
    tokens = build_sequence(body, split, pad)
    m = mb.mask_tokens(tokens, TOK, strategy=strategy, mask_prob=p, rng=seed, max_predictions=max_pred)
    n_real = len(tokens) - pad
    candidates = [i for i, t in enumerate(tokens) if t not in NEVER_MASKED]
    budget = min(exact_count(n_real, p, max_pred), len(candidates))
    # positions sorted, unique, never special or padding
    assert m.positions == sorted(set(m.positions))
    assert all(tokens[i] not in NEVER_MASKED for i in m.positions)
    # labels are the originals; nothing outside the chosen positions changes
    assert m.labels == [tokens[i] for i in m.positions]
    chosen = set(m.positions)
    assert all(m.tokens[i] == tokens[i] for i in range(len(tokens)) if i not in chosen)
    assert len(m.tokens) == len(tokens) and len(m.kinds) == len(m.positions)
    for i, kind in zip(m.positions, m.kinds):
        assert (kind == "mask") == (m.tokens[i] == "[MASK]") or tokens[i] == "[MASK]" or m.tokens[i] == "[MASK]"
        if kind == "keep":
            assert m.tokens[i] == tokens[i]
    if strategy == "exact":
        assert len(m.positions) == budget  # google's count, exactly
    elif strategy == "bernoulli":
        assert max_pred is None or len(m.positions) <= max_pred
    else:
        assert len(m.positions) <= budget
    if strategy == "whole_word":  # never splits a word
        for i in m.positions:
            j = i
            while j + 1 < len(tokens) and tokens[j + 1].startswith("##") and tokens[j + 1] not in NEVER_MASKED:
                j += 1
                assert j in chosen
            if tokens[i].startswith("##") and i - 1 in candidates:
                assert i - 1 in chosen
    if strategy == "span":  # spans contiguous, inside the sequence, over candidates only
        covered = []
        for start, end in m.spans:
            assert 0 < start < end <= len(tokens)
            assert all(tokens[k] not in NEVER_MASKED for k in range(start, end))
            covered += range(start, end)
        assert sorted(covered) == m.positions
    again = mb.mask_tokens(tokens, TOK, strategy=strategy, mask_prob=p, rng=seed, max_predictions=max_pred)
    assert again == m  # same seed, same result


def test_exact_count_uses_pythons_round():
    assert exact_count(10, 0.15, 20) == 2  # round(1.5) = 2
    assert exact_count(30, 0.15, 20) == 4  # round(4.5) = 4: half to even, as google's Python 3 does
    assert exact_count(3, 0.15, 20) == 1  # at least one
    assert exact_count(512, 0.15, 20) == 20  # capped


def test_masking_config_errors():
    with pytest.raises(ValueError, match="strategy must be one of"):
        mb.MaskingConfig(strategy="t5")
    with pytest.raises(ValueError, match="sum to at most 1"):
        mb.MaskingConfig(mask_token_prob=0.8, random_token_prob=0.3)


def test_random_replacements_avoid_special_tokens_by_default():
    tokens = ["[CLS]"] + ["the"] * 200 + ["[SEP]"]
    for random_from, allowed in [("non_special", set(WORDS)), ("all", set(VOCAB))]:
        seen = set()
        for seed in range(200):
            m = mb.mask_tokens(tokens, TOK, rng=seed, mask_token_prob=0.0, random_token_prob=1.0,
                               random_from=random_from, max_predictions=None)
            seen |= {m.tokens[i] for i in m.positions}
        assert seen <= allowed
        if random_from == "all":
            assert seen & {"[MASK]", "[UNK]", "[CLS]"}  # both references draw these too


# ---------------------------------------------------------------- masking: statistics
def test_80_10_10_shares_over_100k_predictions():
    # Each chosen position is [MASK] / random / unchanged with p = 0.8 / 0.1 / 0.1. Over
    # n >= 100,000 positions a share's standard deviation is at most sqrt(0.8 * 0.2 / n) = 0.00126,
    # so a 1% bound is ~8 standard deviations: a correct implementation fails with
    # probability < 1e-14, while a 2% error in a share (e.g. 0.1 read as 0.12) cannot pass.
    rng = np.random.default_rng(12345)
    body = WORDS * 9  # 135 tokens
    kinds = []
    while len(kinds) < 100_000:
        kinds += mb.mask_tokens(["[CLS]", *body, "[SEP]"], TOK, rng=rng, max_predictions=None).kinds
    kinds = np.array(kinds)
    for kind, expected in [("mask", 0.8), ("random", 0.1), ("keep", 0.1)]:
        assert abs((kinds == kind).mean() - expected) < 0.01, (kind, (kinds == kind).mean())


def test_bernoulli_selection_rate():
    # Over N = 400,000 candidates the selected share has std sqrt(0.15 * 0.85 / N) = 0.00056;
    # the 0.5% bound is ~9 standard deviations.
    rng = np.random.default_rng(2024)
    tokens = ["[CLS]", *(WORDS * 26), "[SEP]"]  # 390 candidates
    selected = candidates = 0
    while candidates < 400_000:
        m = mb.mask_tokens(tokens, TOK, strategy="bernoulli", rng=rng, max_predictions=None)
        selected += len(m.positions)
        candidates += len(tokens) - 2
    assert abs(selected / candidates - 0.15) < 0.005


# ---------------------------------------------------------------- NSP pairs
def test_nsp_pairs_are_balanced_and_true(world):
    docs, tok = world
    instances = mb.create_pretraining_instances(docs, tok, max_seq_length=64, seed=7, dupe_factor=8, masking=None)
    # ~19,000 pairs: the random share's std is sqrt(0.25 / 18000) <= 0.0037, and 2% is > 5 std
    assert len(instances) > 18_000
    share = np.mean([i.is_random_next for i in instances])
    assert abs(share - 0.5) < 0.02, share
    tokenized = tokenize_documents(docs, tok)
    for inst in instances:
        assert len(inst.tokens) <= 64
        sep = inst.tokens.index("[SEP]")
        assert inst.tokens[0] == "[CLS]" and inst.tokens[-1] == "[SEP]" and inst.tokens.count("[SEP]") == 2
        assert inst.token_type_ids == [0] * (sep + 1) + [1] * (len(inst.tokens) - sep - 1)
        a_doc, a0, a1, b_doc, b0, b1 = inst.source
        a_text = [t for s in tokenized[a_doc][a0:a1] for t in s]
        b_text = [t for s in tokenized[b_doc][b0:b1] for t in s]
        a, b = inst.tokens[1:sep], inst.tokens[sep + 1:-1]
        assert a and b
        assert _is_slice(a, a_text) and _is_slice(b, b_text)  # truncation only trims the ends
        if inst.is_random_next:
            assert b_doc != a_doc  # never the same document
        else:
            assert b_doc == a_doc and b0 == a1  # really the next sentences


def _is_slice(part, whole):
    n = len(part)
    return any(whole[i:i + n] == part for i in range(len(whole) - n + 1))


def test_truncate_seq_pair_trims_longer_side():
    a, b = list(range(10)), list(range(3))
    mb.data.truncate_seq_pair(a, b, 8, np.random.default_rng(0))
    assert len(a) == 5 and len(b) == 3


def test_static_and_dynamic_masking(world):
    docs, tok = world
    static = mb.create_pretraining_instances(docs[:100], tok, max_seq_length=48, seed=1)
    assert all(inst.masked_lm_positions for inst in static)
    plain = mb.create_pretraining_instances(docs[:100], tok, max_seq_length=48, seed=1, masking=None)
    rng = np.random.default_rng(0)
    b1 = mb.collate(plain[:8], tok, masking=mb.MaskingConfig(), rng=rng)
    b2 = mb.collate(plain[:8], tok, masking=mb.MaskingConfig(), rng=rng)
    assert not np.array_equal(b1["masked_lm_positions"], b2["masked_lm_positions"])  # re-drawn each time
    with pytest.raises(ValueError, match="dynamic masking needs unmasked instances"):
        mb.collate(static[:2], tok, masking=mb.MaskingConfig(), rng=rng)


def test_bad_corpora_are_clear_errors(world):
    _, tok = world
    with pytest.raises(ValueError, match="corpus has no documents"):
        mb.create_pretraining_instances([], tok)
    with pytest.raises(ValueError, match="corpus has no documents"):
        mb.create_pretraining_instances([[""], []], tok)
    with pytest.raises(ValueError, match="only one document.*at least two"):
        mb.create_pretraining_instances([["One sentence.", "Two sentences."]], tok)
    with pytest.raises(ValueError, match="max_seq_length 4 is too small"):
        mb.create_pretraining_instances([["a b."], ["c d."]], tok, max_seq_length=4)


# ---------------------------------------------------------------- batching and statistics
def test_collate_layout(world):
    docs, tok = world
    instances = mb.create_pretraining_instances(docs[:50], tok, max_seq_length=40, seed=3)
    batch = mb.collate(instances[:5], tok, pad_to=40, max_predictions=20)
    assert batch["input_ids"].shape == (5, 40) and batch["masked_lm_positions"].shape == (5, 20)
    for b, inst in enumerate(instances[:5]):
        n, p = len(inst.tokens), len(inst.masked_lm_positions)
        assert batch["attention_mask"][b].sum() == n and (batch["input_ids"][b, n:] == tok.pad_id).all()
        assert tok.convert_ids_to_tokens(batch["masked_lm_labels"][b, :p]) == inst.masked_lm_labels
        assert batch["masked_lm_weights"][b, :p].sum() == p and batch["masked_lm_weights"][b, p:].sum() == 0
        assert batch["next_sentence_label"][b] == int(inst.is_random_next)
    with pytest.raises(ValueError, match="pad_to=10 is shorter"):
        mb.collate(instances[:5], tok, pad_to=10)


def test_statistics_agree_for_instances_and_batches(world):
    docs, tok = world
    instances = mb.create_pretraining_instances(docs[:200], tok, max_seq_length=64, seed=5)
    batches = [mb.collate(instances[i:i + 16], tok) for i in range(0, len(instances), 16)]
    s1, s2 = mb.masking_statistics(instances), mb.masking_statistics(batches, tok)
    assert (s1.num_selected, s1.num_candidates, s1.kind_counts, s1.num_random_next) == (
        s2.num_selected, s2.num_candidates, s2.kind_counts, s2.num_random_next)
    np.testing.assert_array_equal(s1.selected_per_sequence, s2.selected_per_sequence)
    assert 0.14 < s1.selected_fraction < 0.19 and "chosen" in s1.summary()
    span = mb.create_pretraining_instances(docs[:200], tok, max_seq_length=64, seed=5,
                                           masking=mb.MaskingConfig(strategy="span"))
    assert mb.masking_statistics(span).span_lengths.mean() > 2.0  # spans, not single tokens


def test_googles_rule_skews_nsp_labels_and_minibert_does_not(world):
    docs, tok = world
    google = mb.create_pretraining_instances(docs, tok, max_seq_length=64, seed=7, dupe_factor=8, masking=None,
                                             balance_nsp=False)
    share = np.mean([i.is_random_next for i in google])
    # google forces a random B for every one-sentence chunk: far more than half are random here
    assert share > 0.55, share
    assert all(i.source[3] != i.source[0] for i in google if i.is_random_next)
