"""Distant supervision: bags, train-only labels, sentence tensors (positions, pieces, windows)."""

from __future__ import annotations

import pytest
import torch

from kgreason.data.corpus import CorpusSentence, group_bags
from kgreason.data.dataset import Dataset
from kgreason.data.family import build_family_dataset
from kgreason.open.distant_supervision import (
    build_bag_dataset,
    distant_labels,
    relative_positions,
    segment_ids,
)


def sent(
    head: str, tail: str, text: str, head_word: str, tail_word: str, relation: str | None = None
) -> CorpusSentence:
    hs = text.index(head_word)
    ts = text.index(tail_word)
    return CorpusSentence(head, tail, text, (hs, hs + len(head_word)), (ts, ts + len(tail_word)), relation)


@pytest.fixture()
def toy() -> tuple[Dataset, list[CorpusSentence]]:
    train = torch.tensor([[0, 0, 1], [0, 1, 1], [1, 1, 2], [2, 0, 3], [4, 0, 0]])
    valid = torch.tensor([[2, 1, 3]])
    test = torch.tensor([[3, 1, 4]])  # held out: stated by the corpus below, must stay unlabelled
    ds = Dataset.from_tensors("toy", train, valid, test, num_entities=5, num_relations=2)
    corpus = [
        sent("e0", "e1", "e0 is the parent of e1 .", "e0", "e1", "r0"),
        sent("e0", "e1", "e1 was raised by e0 .", "e0", "e1", "r0"),
        sent("e3", "e4", "e3 is the r1 of e4 , as everyone knows .", "e3", "e4", "r1"),
        sent("e2", "e3", "e2 met e3 at the market .", "e2", "e3", None),
        sent("e1", "e0", "e1 and e0 went fishing .", "e1", "e0", None),
        sent("e9", "e0", "e9 is unknown to e0 .", "e9", "e0", "r0"),
    ]
    return ds, corpus


def bag_of(bags, h: int, t: int) -> int:
    hit = ((bags.pairs[:, 0] == h) & (bags.pairs[:, 1] == t)).nonzero()
    assert len(hit) == 1, (h, t)
    return int(hit[0, 0])


def test_labels_come_from_train_only(toy: tuple[Dataset, list[CorpusSentence]]) -> None:
    ds, corpus = toy
    bags = build_bag_dataset(corpus, ds)
    assert bags.num_relations == 2 and bags.na_index == 2
    assert bags.relation_labels == ["r0", "r1", "NA"]
    assert bags.num_skipped == 1  # e9 is not an entity of the KG
    assert bags.labels[bag_of(bags, 0, 1)].tolist() == [True, True, False]  # multi-label
    # the held-out test fact (e3, r1, e4) is stated by a sentence but is not a training fact -> NA
    assert bags.labels[bag_of(bags, 3, 4)].tolist() == [False, False, True]
    # (e2, r1, e3) is a valid fact; only the training fact (e2, r0, e3) labels the bag
    assert bags.labels[bag_of(bags, 2, 3)].tolist() == [True, False, False]
    # direction matters: (e1, e0) is not a training pair
    assert bags.labels[bag_of(bags, 1, 0)].tolist() == [False, False, True]
    # the relation a sentence carries is ignored: labels come from the KG
    assert bags.labels.sum().item() == 5
    # evaluation may relabel explicitly with other triples
    assert bags.label_with(ds.test)[bag_of(bags, 3, 4)].tolist() == [False, True, False]


def test_valid_and_test_never_affect_the_bags(toy: tuple[Dataset, list[CorpusSentence]]) -> None:
    ds, corpus = toy
    other = Dataset(ds.name, ds.entities, ds.relations, ds.train, ds.test.clone(), torch.tensor([[0, 1, 4]]))
    a, b = build_bag_dataset(corpus, ds), build_bag_dataset(corpus, other)
    for name in ("tokens", "pos_head", "pos_tail", "segments", "bag_ptr", "bag_sentences", "pairs", "labels"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_exclude_pairs_drops_both_directions(toy: tuple[Dataset, list[CorpusSentence]]) -> None:
    ds, corpus = toy
    bags = build_bag_dataset(corpus, ds, exclude_pairs=torch.tensor([[0, 1]]))
    pairs = {tuple(p) for p in bags.pairs.tolist()}
    assert (0, 1) not in pairs and (1, 0) not in pairs and (3, 4) in pairs


def test_bags_are_csr_of_group_bags(toy: tuple[Dataset, list[CorpusSentence]]) -> None:
    ds, corpus = toy
    bags = build_bag_dataset(corpus, ds)
    kept = [s for s in corpus if s.head != "e9"]
    expected = group_bags(kept, ds.entities)
    assert [tuple(p) for p in bags.pairs.tolist()] == list(expected)
    for b, (pair, members) in enumerate(expected.items()):
        got = bags.bag_sentences[bags.bag_ptr[b] : bags.bag_ptr[b + 1]].tolist()
        assert got == members, pair
        assert [bags.texts[i] for i in got] == [kept[i].text for i in members]
    batch = bags.batch(torch.tensor([bag_of(bags, 0, 1), bag_of(bags, 3, 4)]))
    assert batch.sentence_mask.tolist() == [[True, True], [True, False]]
    assert batch.num_sentences == 3 and batch.tokens.shape[1] == int(bags.lengths[batch.sentence_ids].max())
    assert torch.equal(batch.tokens, bags.tokens[batch.sentence_ids, : batch.tokens.shape[1]])


def test_sentence_tensors_by_hand() -> None:
    ds = Dataset.from_tensors(
        "t", torch.tensor([[0, 0, 1]]), torch.tensor([[0, 0, 1]]), torch.tensor([[0, 0, 1]])
    )
    text = "Alice Smith is the mother of Bob Smith."
    s = sent("e0", "e1", text, "Alice Smith", "Bob Smith", "r0")
    short = sent("e1", "e0", "Bob , son of Alice Smith", "Bob", "Alice Smith")  # tail after head, ends on it
    bags = build_bag_dataset([s, short], ds, max_distance=5)
    i = bags.texts.index(text)
    assert bags.lengths[i] == 9
    assert [bags.words.word(w) for w in bags.tokens[i, :9].tolist()] == text.lower().replace(
        ".", " ."
    ).split()
    shift = 5 + 1
    assert (bags.pos_head[i, :9] - shift).tolist() == [0, 0, 1, 2, 3, 4, 5, 5, 5]  # clipped at 5
    assert (bags.pos_tail[i, :9] - shift).tolist() == [-5, -5, -4, -3, -2, -1, 0, 0, 1]
    assert bags.segments[i, :9].tolist() == [1, 1, 2, 2, 2, 2, 2, 2, 3]
    assert (
        bags.tokens[i, 9:].eq(0).all()
        and bags.segments[i, 9:].eq(0).all()
        and bags.pos_head[i, 9:].eq(0).all()
    )
    j = bags.texts.index(short.text)  # bob , son of alice smith : head [0,1), tail [4,6)
    assert bags.segments[j, :6].tolist() == [1, 2, 2, 2, 2, 2]  # third piece empty


def test_feature_functions_vectorised() -> None:
    length = torch.tensor([6, 4])
    head = torch.tensor([[1, 2], [3, 4]])
    tail = torch.tensor([[4, 6], [0, 1]])  # second sentence: tail first
    pos = relative_positions(length, head, max_len=7, max_distance=10)
    assert (pos[0, :6] - 11).tolist() == [-1, 0, 1, 2, 3, 4] and pos[0, 6] == 0
    assert (pos[1, :4] - 11).tolist() == [-3, -2, -1, 0] and pos[1, 4:].eq(0).all()
    seg = segment_ids(length, head, tail, max_len=7)
    assert seg.tolist() == [[1, 1, 2, 2, 2, 2, 0], [1, 2, 2, 2, 0, 0, 0]]


def test_long_sentences_keep_both_mentions_in_the_window() -> None:
    ds = Dataset.from_tensors(
        "t", torch.tensor([[0, 0, 1]]), torch.tensor([[0, 0, 1]]), torch.tensor([[0, 0, 1]])
    )
    filler = " ".join(f"w{i}" for i in range(30))
    text = f"{filler} Ann met Ben today ."
    bags = build_bag_dataset([sent("e0", "e1", text, "Ann", "Ben")], ds, max_len=10, max_distance=20)
    assert bags.tokens.shape[1] == 10 and bags.lengths[0] == 10
    words = [bags.words.word(w) for w in bags.tokens[0].tolist()]
    assert words[-3:] == ["ann", "met", "ben"]
    assert (bags.pos_head[0] - 21).tolist()[-3:] == [0, 1, 2]
    assert (bags.pos_tail[0] - 21).tolist()[-1] == 0


def test_distant_labels_matches_a_set_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    triples = torch.stack(
        [torch.randint(0, 12, (80,), generator=gen), torch.randint(0, 4, (80,), generator=gen),
         torch.randint(0, 12, (80,), generator=gen)], 1
    )  # fmt: skip
    pairs = torch.unique(torch.randint(0, 12, (60, 2), generator=gen), dim=0)
    labels = distant_labels(pairs, triples, 4)
    facts = set(map(tuple, triples.tolist()))
    for (h, t), row in zip(pairs.tolist(), labels.tolist()):
        expect = [(h, r, t) in facts for r in range(4)]
        assert row == [*expect, not any(expect)]


def test_family_bags_never_label_held_out_facts() -> None:
    ds = build_family_dataset("tiny", with_corpus=True)
    bags = build_bag_dataset(ds.metadata["corpus"], ds)
    assert len(bags) > 100 and bags.num_sentences == len(ds.metadata["corpus"])
    assert torch.equal(bags.labels, distant_labels(bags.pairs, ds.train, ds.num_relations))
    labelled = {(h, r, t) for (h, t), row in zip(bags.pairs.tolist(), bags.labels.tolist())
                for r, on in enumerate(row[:-1]) if on}  # fmt: skip
    train = set(map(tuple, ds.train.tolist()))
    assert labelled <= train
    assert not labelled & set(map(tuple, torch.cat([ds.valid, ds.test]).tolist()))
    tr, ho = bags.split(0.25, seed=1)
    assert len(tr) + len(ho) == len(bags) and tr.num_sentences + ho.num_sentences == bags.num_sentences
    assert not {tuple(p) for p in tr.pairs.tolist()} & {tuple(p) for p in ho.pairs.tolist()}
    assert torch.equal(ho.labels, distant_labels(ho.pairs, ds.train, ds.num_relations))
    again, _ = bags.split(0.25, seed=1)
    assert torch.equal(again.pairs, tr.pairs)
