import math
import random
from collections import defaultdict

import pytest
import torch

from kgreason.data import Dataset, Vocabulary
from kgreason.data.statistics import (
    dataset_statistics,
    format_table,
    relation_cardinality,
    to_many_mask,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def t(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


# r0: queries (0, r0, ?) -> {1, 2}, (1, r0, ?) -> {2}: xi = 1.5 (not > 1.5: to-one); heads: (?, r0, 1) -> {0},
#     (?, r0, 2) -> {0, 1}: 1.5.  r1: one triple, xi = 1.  r2: (0, r2, ?) -> {1, 2, 3}: 3 (to-many); heads 1.
# r3: no triples. The duplicate of (0, 0, 1) must be counted once.
TOY = t([[0, 0, 1], [0, 0, 2], [1, 0, 2], [0, 0, 1], [0, 1, 3], [0, 2, 1], [0, 2, 2], [0, 2, 3]])


@pytest.mark.parametrize("device", DEVICES)
def test_relation_cardinality_by_hand(device: str) -> None:
    triples = TOY.to(device)
    tail = relation_cardinality(triples, 4)
    head = relation_cardinality(triples, 4, side="head")
    assert tail.device.type == device and tail.dtype == torch.float32 and tail.shape == (4,)
    assert tail[:3].tolist() == [1.5, 1.0, 3.0] and math.isnan(tail[3])
    assert head[:3].tolist() == [1.5, 1.0, 1.0] and math.isnan(head[3])
    assert to_many_mask(triples, 4).tolist() == [False, False, True, False]
    assert to_many_mask(triples, 4, threshold=1.2).tolist() == [True, False, True, False]
    assert to_many_mask(triples, 4, side="head").tolist() == [False, False, False, False]


def test_head_side_equals_tail_side_of_inverse_relations() -> None:
    from kgreason.data import add_inverse_triples

    both = add_inverse_triples(TOY, 4)
    xi = relation_cardinality(both, 8)
    head = relation_cardinality(TOY, 4, side="head")
    torch.testing.assert_close(xi[4:], head, equal_nan=True)


def test_matches_a_plain_python_count_on_random_triples() -> None:
    rng = random.Random(0)
    rows = [[rng.randrange(30), rng.randrange(5), rng.randrange(30)] for _ in range(400)]
    answers: dict[tuple[int, int], set[int]] = defaultdict(set)
    for h, r, tl in rows:
        answers[(h, r)].add(tl)
    expected = []
    for r in range(5):
        sizes = [len(v) for (h, rr), v in answers.items() if rr == r]
        expected.append(sum(sizes) / len(sizes))
    got = relation_cardinality(t(rows), 5)
    assert got.tolist() == pytest.approx(expected, rel=1e-6)


def test_large_ids_use_the_row_unique_fallback() -> None:
    big = 3_000_000_000  # E * E * R overflows one int64 key
    triples = t([[big, 0, 1], [big, 0, 2], [5, 0, 2]])
    assert relation_cardinality(triples, 1).tolist() == [1.5]


@pytest.mark.parametrize(
    ("triples", "num_relations", "match"),
    [
        (torch.zeros(3, 2, dtype=torch.long), 1, r"LongTensor\[n, 3\]"),
        (torch.zeros(3, 3), 1, "integer ids"),
        (t([[0, 3, 1]]), 2, r"relation id 3 out of range \[0, 2\)"),
        (t([[-1, 0, 1]]), 2, "non-negative"),
    ],
)
def test_bad_input_is_rejected(triples: torch.Tensor, num_relations: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        relation_cardinality(triples, num_relations)
    with pytest.raises(ValueError, match="side"):
        relation_cardinality(TOY, 4, side="middle")  # type: ignore[arg-type]


def toy_dataset() -> Dataset:
    train = t([[0, 0, 1], [0, 0, 2], [1, 1, 2], [2, 1, 3], [3, 0, 4]])
    valid = t([[0, 0, 3], [1, 1, 3]])
    test = t([[4, 1, 0]])
    return Dataset.from_tensors("toy", train, valid, test, num_entities=6, num_relations=3)


def test_dataset_statistics_numbers() -> None:
    st = dataset_statistics(toy_dataset())
    assert (st.name, st.num_entities, st.num_relations) == ("toy", 6, 3)
    assert st.num_triples == {"train": 5, "valid": 2, "test": 1}
    # train degrees (in + out): e0 2, e1 2, e2 3, e3 2, e4 1, e5 0
    assert st.degree_mean == pytest.approx(10 / 6)
    assert st.degree_median == 2.0 and st.degree_max == 3 and st.degree_min == 0
    r0, r1, r2 = st.relations
    # r0 over all splits: (0, r0, ?) -> {1, 2, 3}, (3, r0, ?) -> {4}: xi = 2 -> to-many; heads all single: 1
    assert (r0.label, r0.num_triples) == ("r0", {"train": 3, "valid": 1, "test": 0})
    assert r0.tails_per_query == 2.0 and r0.to_many and r0.heads_per_query == 1.0 and not r0.inverse_to_many
    # r1: (1, r1, ?) -> {2, 3}, (2, r1, ?) -> {3}, (4, r1, ?) -> {0}: 4 / 3; heads (?, r1, 3) -> {1, 2}: 4 / 3
    assert r1.tails_per_query == pytest.approx(4 / 3) and not r1.to_many and r1.num_train == 2
    assert math.isnan(r2.tails_per_query) and not r2.to_many and r2.num_train == 0
    assert st.num_to_many == 1
    assert st.to_many_fraction == {"train": pytest.approx(3 / 5), "valid": 0.5, "test": 0.0}


def test_format_table_lists_every_relation_aligned() -> None:
    ds = toy_dataset()
    long_label = "/film/film/other_crew./film/film_crew_gig/film_crew_role/a_very_long_tail"
    ds.relations = Vocabulary([long_label, "r1", "r2"], kind="relation")
    st = dataset_statistics(ds)
    text = format_table(st, max_label_width=30)
    assert text.splitlines()[0] == "Dataset toy"
    assert "mean 1.67  median 2" in text
    assert "1 of 3 relations" in text and "train 60.0%" in text
    rows = [line for line in text.splitlines() if line.strip().startswith(("0 ", "1 ", "2 "))]
    assert len(rows) == 3
    assert rows[0].split()[1] == "..." + long_label[-27:] and len(rows[0].split()[1]) == 30
    assert rows[0].split()[-2:] == ["to-many", "to-one"]
    assert rows[1].split()[-2:] == ["to-one", "to-one"]
    assert rows[2].split()[-4:] == ["nan", "nan", "-", "-"]
    header = next(line for line in text.splitlines() if "xi tail" in line)
    col = header.index("xi tail") + len("xi tail")  # numbers are right-aligned under their header
    assert all(r[col - 4 : col] in ("2.00", "1.33", " nan") for r in rows)


def test_dropped_and_duplicate_counts_are_shown(tmp_path) -> None:
    d = tmp_path / "toy"
    d.mkdir()
    (d / "train.txt").write_text("a\tr\tb\nb\tr\tc\na\tr\tb\n")
    (d / "valid.txt").write_text("a\tr\tc\nz\tr\ta\n")
    (d / "test.txt").write_text("c\tr\ta\n")
    st = dataset_statistics(Dataset.from_directory(d))
    assert st.num_dropped_unseen == {"train": 0, "valid": 1, "test": 0}
    assert st.num_duplicates == {"train": 1, "valid": 0, "test": 0}
    text = format_table(st)
    assert "dropped (unseen in train)" in text and "valid 1" in text
    assert "duplicates removed" in text
