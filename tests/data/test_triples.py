from pathlib import Path

import pytest
import torch

from kgreason.data import Dataset, TripleFileError, Vocabulary, add_inverse_triples, read_triples
from kgreason.data.vocabulary import UnknownLabelError


def write(p: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    p.write_bytes(text)
    return p


def test_reads_hrt_with_bom_crlf_duplicates_and_no_final_newline(tmp_path: Path) -> None:
    f = write(tmp_path / "t.txt", "\ufeffa\tr\tb\r\nb\tr\tc\r\n\r\na\tr\tb\r\nc\ts\ta")
    lt = read_triples(f)
    assert lt.triples == [("a", "r", "b"), ("b", "r", "c"), ("c", "s", "a")]
    assert lt.lines == [1, 2, 5]
    assert lt.num_duplicates == 1 and lt.duplicate_lines == [4]


def test_column_order_htr(tmp_path: Path) -> None:
    f = write(tmp_path / "t.triples", "a\tb\tr\n")
    assert read_triples(f, column_order="htr").triples == [("a", "r", "b")]
    with pytest.raises(ValueError, match="permutation"):
        read_triples(f, column_order="hhr")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("a\tr\tb\na\tr\n", r"line 2: expected 3 tab-separated columns"),
        ("a\tr\tb\na\t\tb\n", r"line 2: column 2 \(r\) is empty"),
        ("\n\n", r"no triples"),
        (b"a\tr\tb\n\xff\xfe\tr\tb\n", r"line 2: not valid UTF-8"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path: Path, content: str | bytes, match: str) -> None:
    f = write(tmp_path / "bad.txt", content)
    with pytest.raises(TripleFileError, match=match) as info:
        read_triples(f)
    assert "bad.txt" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TripleFileError, match="not found"):
        read_triples(tmp_path / "nope.txt")


def make_dataset_dir(tmp_path: Path, valid: str = "a\tr\tc\n", test: str = "b\ts\ta\n") -> Path:
    d = tmp_path / "toy"
    d.mkdir()
    write(d / "train.txt", "a\tr\tb\nb\tr\tc\nc\ts\ta\n")
    write(d / "valid.txt", valid)
    write(d / "test.txt", test)
    return d


def test_dataset_ids_are_sorted_labels_and_unseen_policy(tmp_path: Path) -> None:
    d = make_dataset_dir(tmp_path, valid="a\tr\tc\nz\tr\ta\na\tq\tb\n")
    ds = Dataset.from_directory(d)
    assert ds.entities.labels == ["a", "b", "c"] and ds.relations.labels == ["r", "s"]
    assert ds.train.dtype == torch.int64
    assert ds.train.tolist() == [[0, 0, 1], [1, 0, 2], [2, 1, 0]]
    assert ds.valid.tolist() == [[0, 0, 2]]
    assert ds.reports["valid"].num_dropped_unseen == 2 and ds.reports["valid"].dropped_lines == [2, 3]
    with pytest.raises(TripleFileError, match=r"valid.txt, line 2: head 'z' not seen"):
        Dataset.from_directory(d, unseen="error")


def test_empty_split_after_dropping_is_an_error(tmp_path: Path) -> None:
    d = make_dataset_dir(tmp_path, test="z\tr\ta\n")
    with pytest.raises(TripleFileError, match="no usable triples in split 'test'"):
        Dataset.from_directory(d)


def test_inverse_relations_and_labels(tmp_path: Path) -> None:
    ds = Dataset.from_directory(make_dataset_dir(tmp_path))
    inv = add_inverse_triples(ds.train, ds.num_relations)
    assert inv.shape == (6, 3)
    assert inv[3].tolist() == [1, 2, 0]
    assert ds.relation_label(2) == "r_inv" and ds.relation_id("s_inv") == 3


def test_vocabulary_roundtrip_and_suggestions(tmp_path: Path) -> None:
    v = Vocabulary.from_labels(["Hawaii", "Ohio", "Texas", "Ohio"], kind="entity")
    assert len(v) == 3 and v.id("Ohio") == 1
    v.save(tmp_path / "e.json")
    assert Vocabulary.load(tmp_path / "e.json") == v
    with pytest.raises(UnknownLabelError, match="Did you mean: 'Hawaii'"):
        v.id("Hawai")


def test_vocabularies_saved_and_checked(tmp_path: Path) -> None:
    ds = Dataset.from_directory(make_dataset_dir(tmp_path))
    ds.save_vocabularies(tmp_path / "run")
    ds.check_vocabularies(tmp_path / "run")
    Vocabulary(["x"]).save(tmp_path / "run" / "entities.json")
    with pytest.raises(ValueError, match="vocabulary differs"):
        ds.check_vocabularies(tmp_path / "run")
