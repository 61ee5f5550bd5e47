"""Corpus reading/writing (JSON lines and NYT10), bags, tokenizer, word vocabulary, word2vec vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kgreason.data import Vocabulary
from kgreason.data.corpus import (
    Corpus,
    CorpusFormatError,
    CorpusSentence,
    WordVocabulary,
    char_span_to_token_span,
    group_bags,
    load_word2vec_text,
    read_corpus,
    tokenize,
    write_corpus_jsonl,
)

ENTITIES = Vocabulary.from_labels(["alice_smith_1", "bob_smith_1", "carol_jones_1"], kind="entity")


def sentence(
    head: str, tail: str, text: str, hw: str, tw: str, relation: str | None = None
) -> CorpusSentence:
    hs, ts = text.index(hw), text.index(tw)
    return CorpusSentence(head, tail, text, (hs, hs + len(hw)), (ts, ts + len(tw)), relation)


SENTENCES = [
    sentence(
        "alice_smith_1",
        "bob_smith_1",
        "Alice Smith is the mother of Bob Smith.",
        "Alice Smith",
        "Bob Smith",
        "mother_of",
    ),
    sentence("bob_smith_1", "alice_smith_1", "Bob's mom, Alice, baked a cake.", "Bob", "Alice", "son_of"),
    sentence("alice_smith_1", "carol_jones_1", "Alice met Carol at the market.", "Alice", "Carol"),
    sentence("alice_smith_1", "bob_smith_1", "alice smith raised bob.", "alice smith", "bob", "parent_of"),
]


def write_lines(path: Path, records: list[object]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8"
    )
    return path


def record(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "head": "alice_smith_1",
        "tail": "bob_smith_1",
        "head_span": [0, 11],
        "tail_span": [29, 38],
        "text": "Alice Smith is the mother of Bob Smith.",
        "relation": "mother_of",
    }
    base.update(overrides)
    return base


# ---- JSON lines ---------------------------------------------------------------------------------------------


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    assert write_corpus_jsonl(SENTENCES, path) == 4
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file
    corpus = read_corpus(path)
    assert isinstance(corpus, Corpus) and corpus.sentences == SENTENCES and len(corpus) == 4
    assert corpus[0].head_mention == "Alice Smith" and corpus[0].tail_mention == "Bob Smith"
    assert corpus[2].relation is None
    assert corpus.relations() == ["mother_of", "parent_of", "son_of"]
    first = json.loads(path.read_text().splitlines()[0])
    assert first == record()


def test_token_spans_and_optional_words(tmp_path: Path) -> None:
    rec = record(head_token_span=[0, 2], tail_token_span=[6, 8], head_word="Alice Smith")
    del rec["head_span"], rec["tail_span"]
    corpus = read_corpus(write_lines(tmp_path / "c.jsonl", [rec, "", "   "]), format="jsonl")
    (s,) = corpus.sentences
    assert s.head_span == (0, 11) and s.tail_span == (29, 38)
    assert s.token_spans() == ((0, 2), (6, 8))
    assert s.tokens()[6:8] == ["bob", "smith"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"head": "alice_smith_1",', "invalid JSON"),
        (record(tail=None), "'tail' must be a non-empty string"),
        ({k: v for k, v in record().items() if k != "text"}, "missing key"),
        ({k: v for k, v in record().items() if k != "tail_span"}, "missing key 'tail_span'"),
        (record(tail_span=[29, 99]), "out of range"),
        (record(tail_span=[30, 29]), "out of range"),
        (record(tail_span="29-38"), "two integers"),
        (record(tail_span=[5, 20]), "overlap"),
        (record(tail_span=[11, 12]), "only whitespace"),
        (record(head_word="Alice"), "does not match head_word"),
        (record(relation=3), "'relation'"),
        (record(head_span=None), "two integers"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, bad: object, message: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [record(), "", bad])
    with pytest.raises(CorpusFormatError, match=message) as info:
        read_corpus(path, format="jsonl")
    assert f"{path}, line 3" in str(info.value)


def test_bad_token_span(tmp_path: Path) -> None:
    rec = record(head_token_span=[0, 40])
    del rec["head_span"]
    with pytest.raises(
        CorpusFormatError, match=r"line 1: head_token_span: token span \[0, 40\] out of range"
    ):
        read_corpus(write_lines(tmp_path / "c.jsonl", [rec]))


def test_skip_malformed_and_unknown_entities(tmp_path: Path) -> None:
    unknown = record(head="zed_unknown_1")
    path = write_lines(
        tmp_path / "c.jsonl", [record(), "not json", unknown, record(tail_span=[0, 99]), record()]
    )
    corpus = read_corpus(path, entities=ENTITIES, errors="skip")
    assert len(corpus) == 2
    assert corpus.num_skipped_malformed == 2
    assert corpus.num_skipped_unknown == 1 and corpus.unknown_entities == {"zed_unknown_1"}
    assert "1 skipped for 1 entities not in the KG" in corpus.summary()
    with pytest.raises(CorpusFormatError, match="line 2"):
        read_corpus(path, entities=ENTITIES)


def test_missing_file_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(CorpusFormatError, match="not found"):
        read_corpus(tmp_path / "nope.jsonl")
    (tmp_path / "bin.jsonl").write_bytes(b'{"a": 1}\n\xff\xfe')
    with pytest.raises(CorpusFormatError, match="line 2: not valid UTF-8"):
        read_corpus(tmp_path / "bin.jsonl")
    with pytest.raises(ValueError, match="format"):
        read_corpus(tmp_path / "bin.jsonl", format="xml")  # type: ignore[arg-type]


# ---- NYT10 --------------------------------------------------------------------------------------------------

NYT10 = [
    {
        "sentence": "the chairman of microsoft , bill_gates , said on monday . ###END###",
        "head": {"word": "bill_gates", "id": "m.017nt"},
        "tail": {"word": "microsoft", "id": "m.04sv4"},
        "relation": "/business/person/company",
    },
    {
        "sentence": "Bill Gates visited New York City last week.",
        "head": {"word": "Bill_Gates", "id": "m.017nt"},
        "tail": {"word": "new_york_city", "id": "m.02_286"},
        "relation": "NA",
    },
    {
        "sentence": "Nobody from Seattle was there.",
        "head": {"word": "seattle", "id": "m.0d9jr"},
        "tail": {"word": "nobody", "id": "m.unknown"},
        "relation": "NA",
    },
]


def test_nyt10_list_with_id_vocabulary(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(NYT10, indent=2))
    vocab = Vocabulary.from_labels(["m.017nt", "m.04sv4", "m.02_286", "m.0d9jr"])
    corpus = read_corpus(path, entities=vocab)  # auto-detected
    assert len(corpus) == 2 and corpus.num_skipped_unknown == 1 and corpus.unknown_entities == {"m.unknown"}
    a, b = corpus.sentences
    assert a.text == "the chairman of microsoft , bill_gates , said on monday ."
    assert (a.head, a.tail, a.relation) == ("m.017nt", "m.04sv4", "/business/person/company")
    assert a.head_mention == "bill_gates" and a.tail_mention == "microsoft"
    assert b.head_mention == "Bill Gates" and b.tail_mention == "New York City" and b.relation is None
    assert a.token_spans() == ((5, 6), (3, 4))


def test_nyt10_word_labels_and_json_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "nyt.jsonl", NYT10[:2])
    vocab = Vocabulary.from_labels(["bill_gates", "microsoft", "new_york_city"])
    corpus = read_corpus(path, entities=vocab)
    assert [(s.head, s.tail) for s in corpus] == [
        ("bill_gates", "microsoft"),
        ("bill_gates", "new_york_city"),
    ]
    no_vocab = read_corpus(path, format="nyt10")
    assert no_vocab[0].head == "m.017nt"  # the id, when there is no vocabulary to consult


def test_nyt10_errors_name_the_entry(tmp_path: Path) -> None:
    bad = [NYT10[0], {**NYT10[1], "sentence": "Someone else visited."}]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(CorpusFormatError, match=r"entry 1: head word 'Bill_Gates' not found"):
        read_corpus(path)
    skipped = read_corpus(path, errors="skip")
    assert len(skipped) == 1 and skipped.num_skipped_malformed == 1
    path.write_text(json.dumps([{"sentence": "x", "head": "bill"}]))
    with pytest.raises(CorpusFormatError, match=r"entry 0: missing key\(s\) 'tail'"):
        read_corpus(path, format="nyt10")
    path.write_text('[{"sentence": ')
    with pytest.raises(CorpusFormatError, match="line 1: invalid JSON"):
        read_corpus(path)


def test_nyt10_tail_inside_head_name(tmp_path: Path) -> None:
    rec = {
        "sentence": "york university is in new york .",
        "head": {"word": "york_university", "id": "a"},
        "tail": {"word": "york", "id": "b"},
        "relation": "located_in",
    }
    path = write_lines(tmp_path / "n.jsonl", [rec])
    (s,) = read_corpus(path, format="nyt10")
    assert s.head_mention == "york university" and s.head_span == (0, 15)
    assert s.tail_span == (26, 30)


# ---- bags ---------------------------------------------------------------------------------------------------


def test_group_bags(tmp_path: Path) -> None:
    bags = group_bags(SENTENCES, ENTITIES)
    a, b, c = (ENTITIES.id(x) for x in ("alice_smith_1", "bob_smith_1", "carol_jones_1"))
    assert bags == dict(sorted({(a, b): [0, 3], (b, a): [1], (a, c): [2]}.items()))
    assert list(bags) == sorted(bags)
    write_corpus_jsonl(SENTENCES, tmp_path / "c.jsonl")
    assert group_bags(read_corpus(tmp_path / "c.jsonl", entities=ENTITIES)) == bags
    with pytest.raises(ValueError, match="vocabulary"):
        group_bags(SENTENCES)


# ---- tokens and words ---------------------------------------------------------------------------------------


def test_tokenize() -> None:
    text = "Bob's mom, Alice-May, paid $3.50 for bill_gates!"
    expected = ["bob", "'", "s", "mom", ",", "alice", "-", "may", ",", "paid", "$", "3", ".", "50", "for"]
    assert tokenize(text) == [*expected, "bill_gates", "!"]
    assert tokenize(text) == tokenize(text)
    assert tokenize("") == []
    assert char_span_to_token_span(text, (11, 20)) == (5, 8)  # "Alice-May"
    with pytest.raises(ValueError, match="covers no token"):
        char_span_to_token_span("a  b", (1, 3))


def test_word_vocabulary(tmp_path: Path) -> None:
    vocab = WordVocabulary.build(SENTENCES, min_count=2)
    assert vocab.words[:2] == ["<pad>", "<unk>"] and vocab.PAD == 0 and vocab.UNK == 1
    # frequency first, ties alphabetical
    assert vocab.words[2:] == [".", "alice", "bob", "smith", ",", "the"]
    assert all(w in vocab for w in ("alice", "bob", "."))
    assert "market" not in vocab and vocab.id("market") == WordVocabulary.UNK
    assert vocab.encode(["alice", "zzz", "bob"], max_length=2) == [vocab.id("alice"), 1]
    assert WordVocabulary.build(["a b a", "b c"], max_size=3).words == ["<pad>", "<unk>", "a"]
    vocab.save(tmp_path / "words.json")
    assert WordVocabulary.load(tmp_path / "words.json") == vocab
    (tmp_path / "bad.json").write_text('["a", "b"]')
    with pytest.raises(ValueError, match="bad.json"):
        WordVocabulary.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="min_count"):
        WordVocabulary.build([], min_count=0)


def test_load_word2vec_text(tmp_path: Path) -> None:
    vocab = WordVocabulary.build(["alice met bob", "bob met carol"])
    path = tmp_path / "vec.txt"
    path.write_text("4 3\nalice 1 2 3\nBOB 4 5 6\nbob 7 8 9\nunused 0 0 0\n")
    emb = load_word2vec_text(path, vocab, seed=0)
    assert emb.shape == (len(vocab), 3) and emb.dtype == torch.float32
    assert torch.equal(emb[vocab.id("alice")], torch.tensor([1.0, 2, 3]))
    assert torch.equal(emb[vocab.id("bob")], torch.tensor([7.0, 8, 9]))  # exact match beats lower-cased
    assert torch.equal(emb[WordVocabulary.PAD], torch.zeros(3))
    assert torch.equal(emb, load_word2vec_text(path, vocab, seed=0))  # deterministic random rows
    assert not torch.equal(emb[vocab.id("carol")], load_word2vec_text(path, vocab, seed=1)[vocab.id("carol")])
    # without a header, and a lower-cased fallback
    path.write_text("ALICE 1 2\nCarol 3 4\n")
    emb = load_word2vec_text(path, vocab)
    assert torch.equal(emb[vocab.id("alice")], torch.tensor([1.0, 2])) and emb.shape[1] == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("2 3\nalice 1 2 3\nbob 1 2\n", "line 3: expected 3 values for word 'bob', found 2"),
        ("alice 1 2\nbob 1 x\n", "line 2: non-numeric"),
        ("alice 1 nan\n", "line 1: non-finite"),
        ("zebra 1 2\n", "none of the"),
        ("", "no word vectors"),
        ("2 0\n", "line 1: header dimension"),
    ],
)
def test_word2vec_errors(tmp_path: Path, content: str, message: str) -> None:
    vocab = WordVocabulary.build(["alice bob"])
    path = tmp_path / "vec.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        load_word2vec_text(path, vocab)
    assert str(path) in str(info.value)


def test_word2vec_binary_and_missing(tmp_path: Path) -> None:
    vocab = WordVocabulary.build(["alice"])
    (tmp_path / "vec.bin").write_bytes(b"2 3\nalice \x00\x80\xff\xfe")
    with pytest.raises(ValueError, match="binary word2vec"):
        load_word2vec_text(tmp_path / "vec.bin", vocab)
    with pytest.raises(ValueError, match="not found"):
        load_word2vec_text(tmp_path / "none.txt", vocab)
