"""Built-in demo data: a generated family-tree KG with its full rule closure and a matching text corpus.

Nothing is downloaded: :func:`build_family_dataset` grows several multi-generation families (people with
names, genders, marriages and children) from a local ``random.Random(seed)``, so the same seed always gives
identical tensors. The ground truth is the closure of the family rules (:data:`RULES`) over the generated
parent and spouse facts; the observed KG is a random subset of it, and valid/test hold out facts of the
compositional relations (:data:`QUERY_RELATIONS`) that a 2-3 hop path of the training graph still supports.

:func:`build_family_corpus` writes sentences about the same people for open KG reasoning: it states every
parent/spouse-type fact and about half of the compositional ones — most of them *missing* from the training
graph — in varied templates with noise and distractor sentences, so text can fill the gaps of the graph.
:func:`subsample_train` gives the 20/40/70% training graphs of the CPL experiments.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from kgreason.data.corpus import CorpusSentence, write_corpus_jsonl
from kgreason.data.dataset import Dataset
from kgreason.data.vocabulary import Vocabulary

__all__ = [
    "PRESETS",
    "QUERY_RELATIONS",
    "RULES",
    "SUPPORT_RELATIONS",
    "build_family_corpus",
    "build_family_dataset",
    "subsample_train",
    "write_corpus_jsonl",
]

#: Size presets: number of people generated (the count can exceed it by one newcomer spouse).
PRESETS: dict[str, int] = {"tiny": 60, "small": 200, "default": 450, "large": 2000}

#: Parent- and spouse-type relations (one hop from the generated facts): the bodies of the compositional rules.
SUPPORT_RELATIONS: tuple[str, ...] = (
    "parent_of",
    "father_of",
    "mother_of",
    "son_of",
    "daughter_of",
    "spouse_of",
    "husband_of",
    "wife_of",
)
#: Compositional relations (rules of 2-3 hops); valid/test facts are drawn from these.
QUERY_RELATIONS: tuple[str, ...] = (
    "sibling_of",
    "brother_of",
    "sister_of",
    "grandparent_of",
    "grandfather_of",
    "grandmother_of",
    "grandson_of",
    "granddaughter_of",
    "uncle_of",
    "aunt_of",
    "nephew_of",
    "niece_of",
    "cousin_of",
)
#: The rules whose closure is the ground truth (``r(X, Y)`` reads "X is the r of Y"). The generated facts
#: are ``parent_of`` (from births), ``spouse_of`` (from marriages) and each person's gender.
RULES: tuple[str, ...] = (
    "spouse_of(X, Y) :- spouse_of(Y, X)",
    "father_of(X, Y) :- parent_of(X, Y), male(X)",
    "mother_of(X, Y) :- parent_of(X, Y), female(X)",
    "son_of(X, Y) :- parent_of(Y, X), male(X)",
    "daughter_of(X, Y) :- parent_of(Y, X), female(X)",
    "husband_of(X, Y) :- spouse_of(X, Y), male(X)",
    "wife_of(X, Y) :- spouse_of(X, Y), female(X)",
    "sibling_of(X, Y) :- parent_of(Z, X), parent_of(Z, Y), X != Y",
    "brother_of(X, Y) :- sibling_of(X, Y), male(X)",
    "sister_of(X, Y) :- sibling_of(X, Y), female(X)",
    "grandparent_of(X, Z) :- parent_of(X, Y), parent_of(Y, Z)",
    "grandfather_of(X, Z) :- grandparent_of(X, Z), male(X)",
    "grandmother_of(X, Z) :- grandparent_of(X, Z), female(X)",
    "grandson_of(X, Z) :- grandparent_of(Z, X), male(X)",
    "granddaughter_of(X, Z) :- grandparent_of(Z, X), female(X)",
    "uncle_of(X, Z) :- sibling_of(X, Y), parent_of(Y, Z), male(X)",
    "aunt_of(X, Z) :- sibling_of(X, Y), parent_of(Y, Z), female(X)",
    "uncle_of(X, Z) :- spouse_of(X, W), sibling_of(W, Y), parent_of(Y, Z), male(X)",
    "aunt_of(X, Z) :- spouse_of(X, W), sibling_of(W, Y), parent_of(Y, Z), female(X)",
    "nephew_of(X, Z) :- uncle_of(Z, X), male(X)",
    "nephew_of(X, Z) :- aunt_of(Z, X), male(X)",
    "niece_of(X, Z) :- uncle_of(Z, X), female(X)",
    "niece_of(X, Z) :- aunt_of(Z, X), female(X)",
    "cousin_of(X, Z) :- parent_of(Y, X), sibling_of(Y, W), parent_of(W, Z)",
)

_NUM_GENERATIONS = 4
_CHILDREN = ((1, 2, 3, 4), (20, 35, 30, 15))  # number of children per couple, weights
_P_MARRY = 0.85  # a child of a non-final generation marries
_P_CROSS = 0.35  # ... someone single from an earlier family instead of a newcomer

_MALE_NAMES = (
    "adam alan albert arthur ben carl charles daniel david edward eric frank george henry hugo isaac jack "
    "jacob james john jonas karl leo liam louis lucas mark martin max michael noah oliver oscar owen paul "
    "peter philip ralph robert samuel simon thomas victor walter william"
).split()
_FEMALE_NAMES = (
    "ada alice amelia anna beatrice carla chloe clara diana edith elena eliza emma eva fiona grace hannah "
    "helen irene isabel julia kate laura lena lily lucy mary maya nina nora olivia paula rose ruth sarah "
    "sophie stella susan tessa vera zoe"
).split()
_SURNAMES = (
    "smith jones brown taylor wilson davies evans thomas johnson roberts walker wright robinson thompson "
    "white hughes edwards green hall wood harris lewis martin jackson clarke clark turner hill scott cooper "
    "morris ward moore king watson baker harrison morgan patel young allen mitchell james anderson phillips "
    "lee bell parker davis"
).split()


@dataclass
class _Person:
    first: str
    surname: str
    gender: str  # "male" | "female"
    generation: int
    family: int
    label: str = ""
    father: int | None = None
    mother: int | None = None
    spouse: int | None = None
    children: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.first.capitalize()} {self.surname.capitalize()}"


def _generate_people(num_people: int, rng: random.Random) -> list[_Person]:
    """Families of ``_NUM_GENERATIONS`` generations until at least ``num_people`` people exist."""
    people: list[_Person] = []
    name_counts: Counter[tuple[str, str]] = Counter()
    singles: dict[tuple[int, str], list[int]] = defaultdict(list)  # (generation, gender) -> unmarried people

    def new_person(gender: str, surname: str, generation: int, family: int, father: int | None = None,
                   mother: int | None = None) -> int:  # fmt: skip
        names = _MALE_NAMES if gender == "male" else _FEMALE_NAMES
        first = rng.choice(names)
        for _ in range(8):  # prefer a first name not yet used with this surname
            if (first, surname) not in name_counts:
                break
            first = rng.choice(names)
        name_counts[(first, surname)] += 1
        person = _Person(first, surname, gender, generation, family, father=father, mother=mother)
        person.label = f"{first}_{surname}_{name_counts[(first, surname)]}"
        people.append(person)
        idx = len(people) - 1
        for parent in (father, mother):
            if parent is not None:
                people[parent].children.append(idx)
        return idx

    def ancestors(i: int) -> set[int]:
        out: set[int] = set()
        stack = [i]
        while stack:
            p = people[stack.pop()]
            for a in (p.father, p.mother):
                if a is not None and a not in out:
                    out.add(a)
                    stack.append(a)
        return out

    def marry(a: int, b: int) -> tuple[int, int]:
        people[a].spouse, people[b].spouse = b, a
        return (a, b) if people[a].gender == "male" else (b, a)

    family = 0
    while len(people) < num_people:
        husband = new_person("male", _SURNAMES[family % len(_SURNAMES)], 0, family)
        wife = new_person("female", rng.choice(_SURNAMES), 0, family)
        couples = [marry(husband, wife)]
        for gen in range(1, _NUM_GENERATIONS):
            next_couples: list[tuple[int, int]] = []
            for father, mother in couples:
                for _ in range(rng.choices(*_CHILDREN)[0]):
                    if len(people) >= num_people:  # the last family stays smaller
                        break
                    gender = rng.choice(("male", "female"))
                    child = new_person(gender, people[father].surname, gen, family, father, mother)
                    if gen == _NUM_GENERATIONS - 1:
                        continue
                    if rng.random() >= _P_MARRY:
                        singles[(gen, gender)].append(child)
                        continue
                    other = "female" if gender == "male" else "male"
                    spouse = None
                    pool = singles[(gen, other)]
                    if pool and rng.random() < _P_CROSS:
                        blood = ancestors(child) | {child}
                        ok = [j for j, s in enumerate(pool) if not (ancestors(s) | {s}) & blood]
                        if ok:
                            spouse = pool.pop(rng.choice(ok))
                    if spouse is None:
                        spouse = new_person(other, rng.choice(_SURNAMES), gen, family)
                    next_couples.append(marry(child, spouse))
            couples = next_couples
        family += 1
    return people


def _closure(people: list[_Person]) -> set[tuple[int, str, int]]:
    """All facts entailed by :data:`RULES` over the births and marriages of ``people`` (person indices)."""
    facts: set[tuple[int, str, int]] = set()
    male = [p.gender == "male" for p in people]
    parents = [[a for a in (p.father, p.mother) if a is not None] for p in people]
    siblings: list[set[int]] = [set() for _ in people]
    for i, p in enumerate(people):
        for a in parents[i]:
            facts.add((a, "parent_of", i))
            facts.add((a, "father_of" if male[a] else "mother_of", i))
            facts.add((i, "son_of" if male[i] else "daughter_of", a))
            siblings[i].update(c for c in people[a].children if c != i)
        if p.spouse is not None:
            facts.add((i, "spouse_of", p.spouse))
            facts.add((i, "husband_of" if male[i] else "wife_of", p.spouse))
    for i in range(len(people)):
        for s in siblings[i]:
            facts.add((i, "sibling_of", s))
            facts.add((i, "brother_of" if male[i] else "sister_of", s))
    # blood aunts/uncles: siblings of a parent; by marriage: their spouses
    aunt_uncle: set[tuple[int, int]] = set()
    for i in range(len(people)):
        for a in parents[i]:
            for g in parents[a]:
                facts.add((g, "grandparent_of", i))
                facts.add((g, "grandfather_of" if male[g] else "grandmother_of", i))
                facts.add((i, "grandson_of" if male[i] else "granddaughter_of", g))
            for s in siblings[a]:
                aunt_uncle.add((s, i))
                in_law = people[s].spouse
                if in_law is not None:
                    aunt_uncle.add((in_law, i))
                for c in people[s].children:
                    facts.add((i, "cousin_of", c))
    for x, z in aunt_uncle:
        facts.add((x, "uncle_of" if male[x] else "aunt_of", z))
        facts.add((z, "nephew_of" if male[z] else "niece_of", x))
    return facts


def _resolve_size(size: str | int) -> int:
    if isinstance(size, bool):
        raise TypeError(
            f"size must be a preset name ({', '.join(PRESETS)}) or a number of people, got {size!r}"
        )
    if isinstance(size, int):
        if size < 10:
            raise ValueError(f"size must be at least 10 people, got {size}")
        return size
    if isinstance(size, str) and size.lower() in PRESETS:
        return PRESETS[size.lower()]
    raise ValueError(
        f"Unknown family dataset size {size!r}; choose one of {', '.join(PRESETS)} or a number of people"
    )


def _reachable_2_3(adj: dict[int, set[int]], h: int, t: int) -> bool:
    """Whether ``t`` is reachable from ``h`` by a path of 2 or 3 edges not using a direct ``h``-``t`` edge."""
    first = adj[h] - {t}
    if any(t in adj[y] for y in first):
        return True
    second: set[int] = set()
    for y in first:
        second |= adj[y]
    second -= {h, t}
    return bool(second & (adj[t] - {h}))


def build_family_dataset(
    size: str | int = "default",
    seed: int = 0,
    observed_fraction: float = 0.3,
    support_observed_fraction: float = 0.8,
    num_eval: int | None = None,
    with_corpus: bool = False,
) -> Dataset:
    """A generated family-tree KG with held-out compositional facts; deterministic per ``seed``.

    ``size``: a preset of :data:`PRESETS` (``"tiny"`` ~60 people, ``"small"`` ~200, ``"default"`` ~450,
    ``"large"`` ~2000) or a number of people. Each closure fact of a :data:`SUPPORT_RELATIONS` relation is
    observed with probability ``support_observed_fraction``, each of a :data:`QUERY_RELATIONS` relation with
    ``observed_fraction``; every person and relation keeps at least one training fact. Valid and test hold
    ``num_eval`` facts each (default: half the number of people) of the query relations, none observed,
    each with a path of 2-3 training edges from head to tail; all training facts between a held-out head and
    tail (either direction) are removed too, so no 1-hop shortcut remains. Valid and test share no entity pair;
    they hold fewer than ``num_eval`` facts only when too few candidates qualify.

    ``metadata``: ``ground_truth`` (``LongTensor[n, 3]``, the full closure: every true triple),
    ``rules`` (:data:`RULES`), ``query_relations``, ``people`` (per entity id: ``name``, ``first``,
    ``surname``, ``gender``, ``generation``, ``family``, ``father``/``mother``/``spouse`` labels or ``None``), ``seed``, ``size``,
    ``num_people``; with ``with_corpus=True`` also ``corpus`` (see :func:`build_family_corpus`).
    """
    for name, value in (
        ("observed_fraction", observed_fraction),
        ("support_observed_fraction", support_observed_fraction),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if num_eval is not None and num_eval < 1:
        raise ValueError(f"num_eval must be at least 1, got {num_eval}")
    num_people = _resolve_size(size)
    rng = random.Random(seed)
    people = _generate_people(num_people, rng)
    closure = sorted(_closure(people))

    entities = Vocabulary.from_labels((p.label for p in people), kind="entity")
    relations = Vocabulary.from_labels((*SUPPORT_RELATIONS, *QUERY_RELATIONS), kind="relation")
    pid = [entities.id(p.label) for p in people]  # person index -> entity id
    truth = sorted((pid[h], relations.id(r), pid[t]) for h, r, t in closure)
    support_ids = {relations.id(r) for r in SUPPORT_RELATIONS}

    # ---- observed graph: a random subset of the closure covering every entity and relation ---------------
    train: set[tuple[int, int, int]] = {
        tr
        for tr in truth
        if rng.random() < (support_observed_fraction if tr[1] in support_ids else observed_fraction)
    }
    covered = {x for h, _, t in train for x in (h, t)}
    by_entity: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for tr in truth:
        if tr[1] in support_ids:
            by_entity[tr[0]].append(tr)
    for e in range(len(entities)):
        if e not in covered:
            train.add(rng.choice(by_entity[e]))
    have_rel = {r for _, r, _ in train}
    for r in range(len(relations)):
        if r not in have_rel:
            train.add(rng.choice([tr for tr in truth if tr[1] == r]))

    # ---- held-out facts: unobserved query facts still supported by a 2-3 hop training path ------------------
    n_eval = max(1, num_people // 2) if num_eval is None else num_eval
    adj: dict[int, set[int]] = defaultdict(set)
    pair_triples: dict[frozenset[int], set[tuple[int, int, int]]] = defaultdict(set)
    rel_count: Counter[int] = Counter()
    for h, r, t in train:
        adj[h].add(t)
        adj[t].add(h)
        pair_triples[frozenset((h, t))].add((h, r, t))
        rel_count[r] += 1
    candidates = [tr for tr in truth if tr[1] not in support_ids and tr not in train]
    rng.shuffle(candidates)
    chosen: list[tuple[int, int, int]] = []
    used_pairs: set[frozenset[int]] = set()
    for h, r, t in candidates:
        if len(chosen) >= 2 * n_eval:
            break
        pair = frozenset((h, t))
        if pair in used_pairs or len(adj[h] - {t}) < 1 or len(adj[t] - {h}) < 1:
            continue
        direct = pair_triples.get(pair, set())
        if any(rel_count[dr] <= sum(1 for x in direct if x[1] == dr) for _, dr, _ in direct):
            continue  # would remove the last training fact of a relation
        if not _reachable_2_3(adj, h, t):
            continue
        for tr in direct:
            train.discard(tr)
            rel_count[tr[1]] -= 1
        pair_triples.pop(pair, None)
        adj[h].discard(t)
        adj[t].discard(h)
        used_pairs.add(pair)
        chosen.append((h, r, t))
    # later removals may have cut an earlier path: keep only facts still supported by the final graph
    chosen = [tr for tr in chosen if _reachable_2_3(adj, tr[0], tr[2])]
    if len(chosen) < 2:
        raise ValueError(
            f"family dataset (size={size!r}, seed={seed}): only {len(chosen)} held-out facts with a 2-3 hop "
            "training path; use a larger size or a higher observed fraction"
        )
    n_valid = len(chosen) // 2
    valid, test = sorted(chosen[:n_valid]), sorted(chosen[n_valid:])

    def as_tensor(rows: Iterable[tuple[int, int, int]]) -> torch.Tensor:
        return torch.tensor(sorted(rows), dtype=torch.long).view(-1, 3)

    ds = Dataset(
        name=f"family-{size}" if isinstance(size, str) else f"family-{num_people}",
        entities=entities,
        relations=relations,
        train=as_tensor(train),
        valid=as_tensor(valid),
        test=as_tensor(test),
    )
    label = [p.label for p in people]
    info: list[dict[str, Any]] = [{} for _ in people]
    for i, p in enumerate(people):
        info[pid[i]] = {
            "name": p.name,
            "first": p.first,
            "surname": p.surname,
            "gender": p.gender,
            "generation": p.generation,
            "family": p.family,
            "father": label[p.father] if p.father is not None else None,
            "mother": label[p.mother] if p.mother is not None else None,
            "spouse": label[p.spouse] if p.spouse is not None else None,
        }
    ds.metadata.update(
        ground_truth=as_tensor(truth),
        rules=list(RULES),
        query_relations=list(QUERY_RELATIONS),
        people=info,
        seed=seed,
        size=size,
        num_people=len(people),
        observed_fraction=observed_fraction,
        support_observed_fraction=support_observed_fraction,
    )
    if with_corpus:
        ds.metadata["corpus"] = build_family_corpus(ds, seed=seed)
    return ds


# ---- sub-sampled training graphs ----------------------------------------------------------------------------


def subsample_train(ds: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """A copy of ``ds`` whose training split keeps ``fraction`` of the triples (the 20/40/70/100% graphs).

    Valid, test, vocabularies and metadata (the corpus included) are unchanged. Every entity and relation
    occurring in ``ds.train`` keeps at least one training triple, so the kept count may exceed
    ``round(fraction * n)`` when the fraction is tiny. Kept triples stay in their original order;
    ``metadata["subsample"]`` records ``fraction``, ``seed`` and the original size. Works on any dataset.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    train = ds.train
    n = len(train)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n)
    keep = torch.zeros(n, dtype=torch.bool)
    # the first triple (in random order) touching each entity, and of each relation, is always kept
    entity_rank = torch.cat([rank, rank])
    for index, size, ranks in (
        (torch.cat([train[:, 0], train[:, 2]]), ds.num_entities, entity_rank),
        (train[:, 1], ds.num_relations, rank),
    ):
        best = torch.full((size,), n, dtype=torch.long).scatter_reduce(0, index, ranks, reduce="amin")
        keep[order[best[best < n]]] = True
    target = max(int(round(fraction * n)), int(keep.sum()))
    extra = order[~keep[order]][: target - int(keep.sum())]
    keep[extra] = True
    sub = Dataset(
        name=f"{ds.name}-{round(fraction * 100)}pct",
        entities=ds.entities,
        relations=ds.relations,
        train=train[keep].clone(),
        valid=ds.valid,
        test=ds.test,
        reports=dict(ds.reports),
        corpus_path=ds.corpus_path,
        metadata=dict(ds.metadata),
    )
    sub.metadata["subsample"] = {"fraction": fraction, "seed": seed, "source_train_size": n}
    return sub


# ---- corpus -------------------------------------------------------------------------------------------------

# "{h}"/"{t}": head/tail mention; "{hp}"/"{tp}": their possessive pronoun (his/her).
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "parent_of": (
        "{h} is a parent of {t}.",
        "{t} is {h}'s child.",
        "{h} raised {t} as a loving parent.",
        "{t} was brought up by {tp} parent {h}.",
    ),
    "father_of": (
        "{h} is the father of {t}.",
        "{t}'s dad, {h}, came to the school play.",
        "{h} taught his child {t} to ride a bike.",
        "{t} inherited the farm from {tp} father {h}.",
    ),
    "mother_of": (
        "{h} is the mother of {t}.",
        "{t}'s mom, {h}, baked a cake for the party.",
        "{h} gave birth to {t} in the spring.",
        "{t} called {tp} mother {h} every Sunday.",
    ),
    "son_of": (
        "{h} is the son of {t}.",
        "{t}'s son {h} moved back home last year.",
        "{h}, son of {t}, opened a bakery.",
    ),
    "daughter_of": (
        "{h} is the daughter of {t}.",
        "{t}'s daughter {h} studied medicine.",
        "{h}, daughter of {t}, won the chess tournament.",
    ),
    "spouse_of": (
        "{h} is married to {t}.",
        "{h} and {t} celebrated their wedding anniversary.",
        "{h} wed {t} in a small ceremony.",
    ),
    "husband_of": (
        "{h} is the husband of {t}.",
        "{t}'s husband, {h}, works as a carpenter.",
        "{h} proposed to {t}, and they have been married ever since.",
    ),
    "wife_of": (
        "{h} is the wife of {t}.",
        "{t}'s wife, {h}, runs the local library.",
        "{h} married {t} after they finished college.",
    ),
    "sibling_of": (
        "{h} and {t} are siblings.",
        "{h} is {t}'s sibling.",
        "{h} grew up in the same house as {hp} sibling {t}.",
    ),
    "brother_of": (
        "{h} is the brother of {t}.",
        "{t} has a brother named {h}.",
        "{t}'s big brother {h} always looked out for {tp} family.",
    ),
    "sister_of": (
        "{h} is the sister of {t}.",
        "{t} has a sister named {h}.",
        "{t}'s sister {h} lives across town.",
    ),
    "grandparent_of": (
        "{h} is a grandparent of {t}.",
        "{t} spent the holidays with {tp} grandparent {h}.",
    ),
    "grandfather_of": (
        "{h} is the grandfather of {t}.",
        "{t}'s grandpa {h} tells the best stories.",
        "{h} took his grandchild {t} fishing.",
    ),
    "grandmother_of": (
        "{h} is the grandmother of {t}.",
        "{t}'s grandma {h} knits warm sweaters.",
        "{h} read bedtime stories to her grandchild {t}.",
    ),
    "grandson_of": (
        "{h} is the grandson of {t}.",
        "{t}'s grandson {h} visits every summer.",
    ),
    "granddaughter_of": (
        "{h} is the granddaughter of {t}.",
        "{t}'s granddaughter {h} sings in the choir.",
    ),
    "uncle_of": (
        "{h} is the uncle of {t}.",
        "{t}'s uncle {h} owns a boat.",
        "Uncle {h} took {t} to the zoo.",
    ),
    "aunt_of": (
        "{h} is the aunt of {t}.",
        "{t}'s aunt {h} sends postcards from abroad.",
        "Aunt {h} babysat {t} on weekends.",
    ),
    "nephew_of": (
        "{h} is the nephew of {t}.",
        "{t} has a nephew named {h}.",
        "{t}'s nephew, {h}, helped with the harvest.",
    ),
    "niece_of": (
        "{h} is the niece of {t}.",
        "{t} has a niece named {h}.",
        "{t}'s niece, {h}, plays the violin.",
    ),
    "cousin_of": (
        "{h} and {t} are cousins.",
        "{h} is a cousin of {t}.",
        "{h} spent the summer with {hp} cousin {t}.",
    ),
}
_DISTRACTORS: tuple[str, ...] = (
    "{h} and {t} attended the same school.",
    "{h} met {t} at the market on Saturday.",
    "{h} sat next to {t} on the train.",
    "{h} wrote a letter to {t}.",
    "{h} and {t} both volunteer at the animal shelter.",
    "{t} borrowed a ladder from {h}.",
    "At the town meeting, {h} disagreed with {t}.",
)
_PREFIXES: tuple[str, ...] = (
    "",
    "",
    "",
    "According to the parish records, ",
    "As the local paper reported, ",
    "Everyone in town knows that ",
    "It is said that ",
)
_FIELD_RE = re.compile(r"(\{h\}|\{t\}|\{hp\}|\{tp\})")
_WORD_RE = re.compile(r"[A-Za-z]+")


def _render(
    template: str, head: tuple[str, str], tail: tuple[str, str], prefix: str
) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """Fill ``template`` with ``(mention, pronoun)`` of head and tail; returns text and the two spans."""
    values = {"{h}": head[0], "{t}": tail[0], "{hp}": head[1], "{tp}": tail[1]}
    text = prefix
    spans: dict[str, tuple[int, int]] = {}
    for piece in _FIELD_RE.split(template):
        value = values.get(piece, piece)
        if piece in ("{h}", "{t}"):
            spans[piece] = (len(text), len(text) + len(value))
        text += value
    return text, spans["{h}"], spans["{t}"]


def _add_noise(text: str, spans: tuple[tuple[int, int], ...], rng: random.Random, noise: float) -> str:
    """Lower-case the sentence and/or swap two letters of a word outside the entity mentions (lengths kept)."""
    if rng.random() < noise:
        text = text.lower()
    if rng.random() < noise:
        words = [
            (s, e)
            for s, e in ((m.start(), m.end()) for m in _WORD_RE.finditer(text))
            if e - s >= 4 and all(e <= a or s >= b for a, b in spans)
        ]
        if words:
            s, e = rng.choice(words)
            k = rng.randrange(s + 1, e - 2)
            text = text[:k] + text[k + 1] + text[k] + text[k + 2 :]
    return text


def build_family_corpus(
    ds: Dataset,
    seed: int = 0,
    fact_fraction: float = 0.5,
    distractor_fraction: float = 0.15,
    noise: float = 0.1,
    include_eval_pairs: bool = False,
) -> list[CorpusSentence]:
    """Sentences about the people of a family dataset from :func:`build_family_dataset`.

    Every true fact of a :data:`SUPPORT_RELATIONS` relation is stated (a second time with probability 0.3),
    each true fact of a :data:`QUERY_RELATIONS` relation with probability ``fact_fraction`` — whether it is in
    the training graph or not, so text also states facts the graph lacks (and keeps stating those dropped by
    :func:`subsample_train`). Unless ``include_eval_pairs``, no sentence mentions an entity pair of a valid or
    test fact, so a held-out answer is never given away by one sentence. Sentences use several templates per
    relation, full or first-name mentions, optional lead-ins, and with probability ``noise`` each lower-casing
    and a letter-swap typo (never inside a mention). ``distractor_fraction`` adds sentences (relation ``None``)
    that mention a pair without stating a relation: half about pairs that are related (misleading
    co-occurrence), half about unrelated people. Labels are entity labels of ``ds``; order is shuffled.
    Deterministic per ``seed``.
    """
    people = ds.metadata.get("people")
    truth = ds.metadata.get("ground_truth")
    if people is None or truth is None:
        raise ValueError(f"dataset {ds.name!r} has no family metadata; build it with build_family_dataset()")
    for name, value in (
        ("fact_fraction", fact_fraction),
        ("distractor_fraction", distractor_fraction),
        ("noise", noise),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    rng = random.Random(f"family-corpus-{seed}")
    support = {ds.relations.id(r) for r in SUPPORT_RELATIONS}
    eval_pairs: set[frozenset[int]] = set()
    if not include_eval_pairs:
        eval_pairs = {frozenset((h, t)) for h, _, t in torch.cat([ds.valid, ds.test]).tolist()}

    def mention(e: int) -> tuple[str, str]:
        p = people[e]
        name = p["name"] if rng.random() < 0.75 else p["first"].capitalize()
        return name, "his" if p["gender"] == "male" else "her"

    def sentence(h: int, t: int, template: str, relation: str | None) -> CorpusSentence:
        text, hs, ts = _render(template, mention(h), mention(t), rng.choice(_PREFIXES))
        text = _add_noise(text, (hs, ts), rng, noise)
        return CorpusSentence(ds.entities.label(h), ds.entities.label(t), text, hs, ts, relation)

    out: list[CorpusSentence] = []
    related: list[tuple[int, int]] = []
    for h, r, t in truth.tolist():
        if frozenset((h, t)) in eval_pairs:
            continue
        related.append((h, t))
        label = ds.relations.label(r)
        repeats = (2 if rng.random() < 0.3 else 1) if r in support else int(rng.random() < fact_fraction)
        for _ in range(repeats):
            out.append(sentence(h, t, rng.choice(_TEMPLATES[label]), label))
    related_set = set(related)
    n_distract = round(distractor_fraction * len(out))
    n = ds.num_entities
    for k in range(n_distract):
        if k % 2 == 0 and related:
            h, t = rng.choice(related)
        else:
            for _ in range(100):
                h, t = rng.randrange(n), rng.randrange(n)
                if h != t and (h, t) not in related_set and frozenset((h, t)) not in eval_pairs:
                    break
            else:
                continue
        out.append(sentence(h, t, rng.choice(_DISTRACTORS), None))
    rng.shuffle(out)
    return out
