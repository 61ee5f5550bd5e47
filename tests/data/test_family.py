"""The generated family KG: determinism, rule closure, held-out facts, corpus, sub-sampled graphs."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch

from kgreason.data import Dataset
from kgreason.data.corpus import read_corpus
from kgreason.data.family import (
    PRESETS,
    QUERY_RELATIONS,
    SUPPORT_RELATIONS,
    build_family_corpus,
    build_family_dataset,
    subsample_train,
    write_corpus_jsonl,
)


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    return build_family_dataset("tiny", seed=0, with_corpus=True)


@pytest.fixture(scope="module")
def small() -> Dataset:
    return build_family_dataset("small", seed=1, with_corpus=True)


def as_set(t: torch.Tensor) -> set[tuple[int, int, int]]:
    return {tuple(x) for x in t.tolist()}


def by_relation(ds: Dataset, triples: set[tuple[int, int, int]], label: str) -> set[tuple[int, int]]:
    r = ds.relation_id(label)
    return {(h, t) for h, rr, t in triples if rr == r}


# ---- determinism --------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_dataset_and_corpus() -> None:
    a = build_family_dataset("tiny", seed=3, with_corpus=True)
    b = build_family_dataset("tiny", seed=3, with_corpus=True)
    for split in ("train", "valid", "test"):
        assert torch.equal(a.split(split), b.split(split))
    assert torch.equal(a.metadata["ground_truth"], b.metadata["ground_truth"])
    assert a.entities == b.entities and a.relations == b.relations
    assert a.metadata["corpus"] == b.metadata["corpus"]


def test_different_seeds_differ() -> None:
    a = build_family_dataset("tiny", seed=0)
    b = build_family_dataset("tiny", seed=1)
    assert a.entities != b.entities or not torch.equal(a.train, b.train)
    assert not torch.equal(a.metadata["ground_truth"], b.metadata["ground_truth"])


def test_global_rng_untouched() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_family_dataset("tiny", seed=5, with_corpus=True)
    assert torch.equal(torch.rand(3), expected)


# ---- sizes and metadata -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_presets_have_about_the_requested_number_of_people(size: str) -> None:
    ds = build_family_dataset(size, seed=0)
    assert PRESETS[size] <= ds.num_entities <= PRESETS[size] + 1
    assert ds.num_entities == ds.metadata["num_people"] == len(ds.metadata["people"])
    assert ds.num_relations == len(SUPPORT_RELATIONS) + len(QUERY_RELATIONS)
    assert len(ds.train) > 5 * ds.num_entities


def test_default_preset_fits_the_cpu_budget() -> None:
    ds = build_family_dataset(seed=0)
    assert 300 <= ds.num_entities <= 600
    assert 3000 <= len(ds.train) <= 6000
    assert len(ds.valid) > 100 and len(ds.test) > 100


def test_numeric_size_and_errors() -> None:
    ds = build_family_dataset(80, seed=2, num_eval=10)
    assert 80 <= ds.num_entities <= 81
    assert len(ds.valid) == 10 and len(ds.test) == 10
    assert ds.name == "family-80"
    with pytest.raises(ValueError, match="tiny"):
        build_family_dataset("huge")
    with pytest.raises(ValueError, match="at least 10"):
        build_family_dataset(3)
    with pytest.raises(ValueError, match="observed_fraction"):
        build_family_dataset("tiny", observed_fraction=1.5)


def test_metadata(tiny: Dataset) -> None:
    md = tiny.metadata
    assert md["seed"] == 0 and md["size"] == "tiny"
    assert all(isinstance(r, str) and ":-" in r for r in md["rules"])
    assert any(r.startswith("grandparent_of") for r in md["rules"])
    assert md["query_relations"] == list(QUERY_RELATIONS)
    gt = md["ground_truth"]
    assert gt.dtype == torch.long and gt.shape[1] == 3
    # labels are readable and unique: first_surname_n
    for label, person in zip(tiny.entities.labels, md["people"]):
        first, surname, n = label.rsplit("_", 2)
        assert person["name"] == f"{first.capitalize()} {surname.capitalize()}" and n.isdigit()


# ---- closure ------------------------------------------------------------------------------------------------


def test_closure_matches_an_independent_computation(small: Dataset) -> None:
    ds = small
    people = ds.metadata["people"]
    eid = ds.entities.id
    truth = as_set(ds.metadata["ground_truth"])
    male = {i for i, p in enumerate(people) if p["gender"] == "male"}
    parent = {(eid(p[k]), i) for i, p in enumerate(people) for k in ("father", "mother") if p[k] is not None}
    spouse = {(i, eid(p["spouse"])) for i, p in enumerate(people) if p["spouse"] is not None}
    children = defaultdict(set)
    for a, c in parent:
        children[a].add(c)

    def compose(a: set[tuple[int, int]], b: set[tuple[int, int]]) -> set[tuple[int, int]]:
        out = defaultdict(set)
        for x, y in b:
            out[x].add(y)
        return {(x, z) for x, y in a for z in out[y]}

    inverse_parent = {(c, a) for a, c in parent}
    sibling = {(x, y) for x, y in compose(inverse_parent, parent) if x != y}
    grandparent = compose(parent, parent)
    blood = compose(sibling, parent)
    aunt_uncle = blood | compose(spouse, blood)
    cousin = compose(compose(inverse_parent, sibling), parent)

    assert by_relation(ds, truth, "parent_of") == parent
    assert by_relation(ds, truth, "spouse_of") == spouse == {(y, x) for x, y in spouse}
    assert by_relation(ds, truth, "father_of") == {(x, y) for x, y in parent if x in male}
    assert by_relation(ds, truth, "daughter_of") == {(y, x) for x, y in parent if y not in male}
    assert by_relation(ds, truth, "sibling_of") == sibling
    assert by_relation(ds, truth, "sister_of") == {(x, y) for x, y in sibling if x not in male}
    assert by_relation(ds, truth, "grandparent_of") == grandparent
    assert by_relation(ds, truth, "grandmother_of") == {(x, y) for x, y in grandparent if x not in male}
    assert by_relation(ds, truth, "grandson_of") == {(y, x) for x, y in grandparent if y in male}
    assert by_relation(ds, truth, "uncle_of") == {(x, y) for x, y in aunt_uncle if x in male}
    assert by_relation(ds, truth, "aunt_of") == {(x, y) for x, y in aunt_uncle if x not in male}
    assert by_relation(ds, truth, "niece_of") == {(y, x) for x, y in aunt_uncle if y not in male}
    assert by_relation(ds, truth, "cousin_of") == cousin
    assert cousin and aunt_uncle - blood  # the generator makes cousins and aunts/uncles by marriage
    # multi-generation families, cross-family marriages, no one married to a blood relative
    assert max(p["generation"] for p in people) == 3
    assert not spouse & (sibling | cousin | parent | grandparent)


# ---- splits -------------------------------------------------------------------------------------------------


def reachable_2_3(train: torch.Tensor, h: int, t: int) -> bool:
    adj = defaultdict(set)
    for a, _, b in train.tolist():
        if {a, b} != {h, t}:
            adj[a].add(b)
            adj[b].add(a)
    frontier, seen = {h}, {h}
    for hops in (1, 2, 3):
        frontier = {y for x in frontier for y in adj[x]} - seen
        if t in frontier:
            return hops >= 2
        seen |= frontier
    return False


@pytest.mark.parametrize("seed", [0, 1])
def test_splits_are_true_held_out_and_supported_by_train_paths(seed: int) -> None:
    ds = build_family_dataset("tiny", seed=seed)
    truth, train = as_set(ds.metadata["ground_truth"]), as_set(ds.train)
    valid, test = as_set(ds.valid), as_set(ds.test)
    assert train <= truth and valid <= truth and test <= truth
    assert not (valid | test) & train and not valid & test
    query = {ds.relation_id(r) for r in QUERY_RELATIONS}
    assert {r for _, r, _ in valid | test} <= query
    train_pairs = {frozenset((h, t)) for h, _, t in train}
    valid_pairs, test_pairs = ({frozenset((h, t)) for h, _, t in s} for s in (valid, test))
    assert not (valid_pairs | test_pairs) & train_pairs  # no 1-hop shortcut
    assert not valid_pairs & test_pairs
    # every entity and relation appears in train
    assert set(ds.train[:, [0, 2]].unique().tolist()) == set(range(ds.num_entities))
    assert set(ds.train[:, 1].unique().tolist()) == set(range(ds.num_relations))
    # the graph is only a part of the truth, and held-out tails are reachable in 2-3 hops
    assert len(train) < 0.7 * len(truth)
    reachable = [reachable_2_3(ds.train, h, t) for h, _, t in valid | test]
    assert sum(reachable) >= 0.9 * len(reachable)


# ---- corpus -------------------------------------------------------------------------------------------------


def test_corpus_sentences_are_well_formed(tiny: Dataset) -> None:
    corpus = tiny.metadata["corpus"]
    people = {label: p for label, p in zip(tiny.entities.labels, tiny.metadata["people"])}
    truth = set(tiny.triples_as_labels(tiny.metadata["ground_truth"]))
    assert len(corpus) > len(tiny.train)
    for s in corpus:
        for label, mention in ((s.head, s.head_mention), (s.tail, s.tail_mention)):
            assert mention.lower() in (people[label]["name"].lower(), people[label]["first"])
        if s.relation is not None:
            assert (s.head, s.relation, s.tail) in truth
    labelled = [s for s in corpus if s.relation is not None]
    assert {s.relation for s in labelled} == set(SUPPORT_RELATIONS) | set(QUERY_RELATIONS)
    # varied templates: several sentence shapes per relation once names are removed
    shapes = defaultdict(set)
    for s in labelled:
        a, b = sorted([s.head_span, s.tail_span])
        shapes[s.relation].add((s.text[: a[0]] + "#" + s.text[a[1] : b[0]] + "#" + s.text[b[1] :]).lower())
    assert all(len(v) >= 2 for v in shapes.values())
    # noise and distractors
    assert any(s.text == s.text.lower() for s in corpus)
    distractors = [s for s in corpus if s.relation is None]
    assert 0.05 * len(corpus) < len(distractors) < 0.3 * len(corpus)
    related = {(h, t) for h, _, t in truth}
    assert any((s.head, s.tail) in related for s in distractors)
    assert any((s.head, s.tail) not in related for s in distractors)


def test_corpus_fills_graph_gaps_but_never_states_held_out_pairs(small: Dataset) -> None:
    ds = small
    corpus = ds.metadata["corpus"]
    truth = set(ds.triples_as_labels(ds.metadata["ground_truth"]))
    train = set(ds.triples_as_labels(ds.train))
    heldout = ds.triples_as_labels(torch.cat([ds.valid, ds.test]))
    eval_pairs = {frozenset((h, t)) for h, _, t in heldout}
    stated = {(s.head, s.relation, s.tail) for s in corpus if s.relation is not None}
    assert not any(frozenset((s.head, s.tail)) in eval_pairs for s in corpus)
    text_only = stated - train
    assert len(text_only) > 0.3 * len(stated)  # many stated facts are missing from the graph
    # every parent/spouse-type fact missing from the graph is in the text
    support_missing = {
        (h, r, t)
        for h, r, t in truth - train
        if r in SUPPORT_RELATIONS and frozenset((h, t)) not in eval_pairs
    }
    assert support_missing and support_missing <= stated
    # for held-out grandparents, a parent link missing from the graph is often recoverable from text
    parent = defaultdict(set)
    for h, r, t in truth:
        if r == "parent_of":
            parent[h].add(t)
    filled = 0
    for h, r, t in heldout:
        if r == "grandparent_of":
            middle = next(y for y in parent[h] if t in parent[y])
            links = {(h, "parent_of", middle), (middle, "parent_of", t)}
            assert links <= stated | train
            filled += bool(links - train)
    assert filled > 0


def test_corpus_options(tiny: Dataset) -> None:
    with_pairs = build_family_corpus(tiny, seed=0, include_eval_pairs=True, distractor_fraction=0.0)
    assert all(s.relation is not None for s in with_pairs)
    eval_pairs = {frozenset((h, t)) for h, _, t in tiny.triples_as_labels(torch.cat([tiny.valid, tiny.test]))}
    assert any(frozenset((s.head, s.tail)) in eval_pairs for s in with_pairs)
    assert build_family_corpus(tiny, seed=1) != tiny.metadata["corpus"]
    with pytest.raises(ValueError, match="family metadata"):
        build_family_corpus(Dataset.from_tensors("x", *(torch.tensor([[0, 0, 1]]),) * 3))


def test_corpus_round_trip_through_jsonl(tiny: Dataset, tmp_path) -> None:
    path = tmp_path / "corpus.jsonl"
    assert write_corpus_jsonl(tiny.metadata["corpus"], path) == len(tiny.metadata["corpus"])
    corpus = read_corpus(path, entities=tiny.entities)
    assert corpus.sentences == tiny.metadata["corpus"]
    assert corpus.num_skipped_unknown == 0


# ---- sub-sampled training graphs ------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.2, 0.4, 0.7, 1.0])
def test_subsample_train(small: Dataset, fraction: float) -> None:
    sub = subsample_train(small, fraction, seed=0)
    n = len(small.train)
    assert len(sub.train) == round(fraction * n)
    assert as_set(sub.train) <= as_set(small.train)
    assert torch.equal(sub.valid, small.valid) and torch.equal(sub.test, small.test)
    assert sub.entities == small.entities and sub.relations == small.relations
    assert set(sub.train[:, [0, 2]].unique().tolist()) == set(range(small.num_entities))
    assert set(sub.train[:, 1].unique().tolist()) == set(range(small.num_relations))
    assert sub.metadata["subsample"] == {"fraction": fraction, "seed": 0, "source_train_size": n}
    assert sub.metadata["corpus"] is small.metadata["corpus"]
    assert torch.equal(subsample_train(small, fraction, seed=0).train, sub.train)
    if fraction < 1:
        assert not torch.equal(subsample_train(small, fraction, seed=1).train, sub.train)
        # facts dropped from the graph are still stated in the text
        dropped = set(small.triples_as_labels(small.train)) - set(small.triples_as_labels(sub.train))
        stated = {(s.head, s.relation, s.tail) for s in small.metadata["corpus"]}
        dropped_support = {x for x in dropped if x[1] in SUPPORT_RELATIONS}
        assert dropped_support and dropped_support <= stated


def test_subsample_generic_dataset_keeps_coverage_and_rejects_bad_fraction() -> None:
    train = torch.tensor([[i % 7, i % 3, (i * 5 + 1) % 7] for i in range(40)])
    ds = Dataset.from_tensors("toy", train, train[:2], train[2:4], num_entities=7, num_relations=3)
    sub = subsample_train(ds, 0.05, seed=0)
    assert len(sub.train) >= 3  # coverage wins over the tiny fraction
    assert set(sub.train[:, [0, 2]].unique().tolist()) == set(range(7))
    assert set(sub.train[:, 1].unique().tolist()) == {0, 1, 2}
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            subsample_train(ds, bad)
