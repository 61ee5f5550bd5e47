"""A dataset: train/valid/test id triples sharing one entity and one relation vocabulary."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from kgreason.data.triples import LabeledTriples, TripleFileError, add_inverse_triples, read_triples
from kgreason.data.vocabulary import Vocabulary

SPLITS = ("train", "valid", "test")
UnseenPolicy = Literal["drop", "error"]
INVERSE_SUFFIX = "_inv"


@dataclass
class SplitReport:
    """What loading did to one split: triples kept, duplicates removed, unseen-entity/relation triples dropped."""

    path: str | None = None
    num_triples: int = 0
    num_duplicates: int = 0
    num_dropped_unseen: int = 0
    dropped_lines: list[int] = field(default_factory=list)


@dataclass
class Dataset:
    """Train/valid/test triples as ``LongTensor[n, 3]`` of (head, relation, tail) ids.

    ``relations`` holds the base relations only; the inverse of relation ``r`` has id ``r + num_relations``
    and label ``label + "_inv"`` (see :meth:`relation_label`). Entities and relations are those of the
    training split: valid/test triples with anything unseen in train are dropped (``unseen="drop"``,
    counted in ``reports``) or rejected (``unseen="error"``).
    """

    name: str
    entities: Vocabulary
    relations: Vocabulary
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    reports: dict[str, SplitReport] = field(default_factory=dict)
    corpus_path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        """Number of base relations (without inverses)."""
        return len(self.relations)

    def split(self, name: str) -> torch.Tensor:
        if name not in SPLITS:
            raise ValueError(f"Unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def all_triples(self) -> torch.Tensor:
        """train + valid + test, ``[n, 3]`` (the filter set of filtered evaluation)."""
        return torch.cat([self.train, self.valid, self.test], dim=0)

    def with_inverse(self, split: str = "train") -> torch.Tensor:
        """``split`` plus its inverse triples (relation ``r + num_relations``)."""
        return add_inverse_triples(self.split(split), self.num_relations)

    def relation_label(self, relation_id: int) -> str:
        """Label of a base or inverse relation id."""
        r = int(relation_id)
        if r >= self.num_relations:
            return self.relations.label(r - self.num_relations) + INVERSE_SUFFIX
        return self.relations.label(r)

    def relation_id(self, label: str) -> int:
        """Id of a relation label; ``label_inv`` gives the inverse id."""
        if label not in self.relations and label.endswith(INVERSE_SUFFIX):
            base = label[: -len(INVERSE_SUFFIX)]
            if base in self.relations:
                return self.relations.id(base) + self.num_relations
        return self.relations.id(label)

    def triples_as_labels(self, triples: torch.Tensor) -> list[tuple[str, str, str]]:
        return [
            (self.entities.label(h), self.relation_label(r), self.entities.label(t))
            for h, r, t in triples.tolist()
        ]

    def save_vocabularies(self, directory: str | os.PathLike[str]) -> None:
        """Write ``entities.json`` and ``relations.json`` (position = id) into ``directory``."""
        directory = Path(directory)
        self.entities.save(directory / "entities.json")
        self.relations.save(directory / "relations.json")

    def check_vocabularies(self, directory: str | os.PathLike[str]) -> None:
        """Raise ``ValueError`` when the vocabularies saved in ``directory`` differ from this dataset's."""
        directory = Path(directory)
        for fname, vocab in (("entities.json", self.entities), ("relations.json", self.relations)):
            saved = Vocabulary.load(directory / fname)
            if saved != vocab:
                raise ValueError(
                    f"{directory / fname}: vocabulary differs from dataset {self.name!r} "
                    f"({len(saved)} saved vs {len(vocab)} now); ids would not match"
                )

    def summary(self) -> str:
        parts = [
            f"{self.name}: {self.num_entities} entities, {self.num_relations} relations",
            f"train {len(self.train)}, valid {len(self.valid)}, test {len(self.test)}",
        ]
        for split, rep in self.reports.items():
            if rep.num_duplicates or rep.num_dropped_unseen:
                parts.append(
                    f"{split}: {rep.num_duplicates} duplicates removed, {rep.num_dropped_unseen} unseen dropped"
                )
        return "; ".join(parts)

    # ---- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_labeled(
        cls,
        name: str,
        train: LabeledTriples,
        valid: LabeledTriples,
        test: LabeledTriples,
        unseen: UnseenPolicy = "drop",
        entities: Vocabulary | None = None,
        relations: Vocabulary | None = None,
    ) -> Dataset:
        """Map labelled splits to ids over the vocabulary of ``train`` (or the vocabularies given)."""
        if unseen not in ("drop", "error"):
            raise ValueError(f"unseen must be 'drop' or 'error', got {unseen!r}")
        if entities is None:
            entities = Vocabulary.from_labels((x for h, _, t in train.triples for x in (h, t)), kind="entity")
        if relations is None:
            relations = Vocabulary.from_labels((r for _, r, _ in train.triples), kind="relation")
        tensors: dict[str, torch.Tensor] = {}
        reports: dict[str, SplitReport] = {}
        ent_idx = {label: i for i, label in enumerate(entities.labels)}
        rel_idx = {label: i for i, label in enumerate(relations.labels)}
        for split, labeled in (("train", train), ("valid", valid), ("test", test)):
            rows: list[tuple[int, int, int]] = []
            report = SplitReport(str(labeled.path), num_duplicates=labeled.num_duplicates)
            for (h, r, t), line in zip(labeled.triples, labeled.lines):
                hi, ri, ti = ent_idx.get(h), rel_idx.get(r), ent_idx.get(t)
                if hi is None or ri is None or ti is None:
                    if unseen == "error" or split == "train":
                        what = [
                            f"{k} {v!r}"
                            for k, v, i in (("head", h, hi), ("relation", r, ri), ("tail", t, ti))
                            if i is None
                        ]
                        raise TripleFileError(
                            f"{labeled.path}, line {line}: {' and '.join(what)} not seen in the training split "
                            "(use unseen='drop' to drop such triples)"
                        )
                    report.num_dropped_unseen += 1
                    report.dropped_lines.append(line)
                    continue
                rows.append((hi, ri, ti))
            if not rows:
                raise TripleFileError(f"{labeled.path}: no usable triples in split {split!r}")
            tensors[split] = torch.tensor(rows, dtype=torch.long)
            report.num_triples = len(rows)
            reports[split] = report
        return cls(name, entities, relations, tensors["train"], tensors["valid"], tensors["test"], reports)

    @classmethod
    def from_directory(
        cls,
        path: str | os.PathLike[str],
        name: str | None = None,
        column_order: str = "hrt",
        unseen: UnseenPolicy = "drop",
        suffix: str = ".txt",
    ) -> Dataset:
        """Load ``train.txt``, ``valid.txt`` and ``test.txt`` (or another ``suffix``) from ``path``."""
        path = Path(path)
        if not path.is_dir():
            raise TripleFileError(f"{path}: dataset directory not found")
        splits = {s: read_triples(path / f"{s}{suffix}", column_order=column_order) for s in SPLITS}
        ds = cls.from_labeled(
            name or path.name, splits["train"], splits["valid"], splits["test"], unseen=unseen
        )
        corpus = path / "corpus.jsonl"
        if corpus.exists():
            ds.corpus_path = corpus
        return ds

    @classmethod
    def from_tensors(
        cls,
        name: str,
        train: torch.Tensor,
        valid: torch.Tensor,
        test: torch.Tensor,
        num_entities: int | None = None,
        num_relations: int | None = None,
    ) -> Dataset:
        """A dataset from id triples with generated labels ``e0, e1, ...`` / ``r0, r1, ...`` (tests, synthetic data)."""
        all_t = torch.cat([train, valid, test])
        ne = num_entities if num_entities is not None else int(all_t[:, [0, 2]].max()) + 1
        nr = num_relations if num_relations is not None else int(all_t[:, 1].max()) + 1
        ents = Vocabulary([f"e{i}" for i in range(ne)], kind="entity")
        rels = Vocabulary([f"r{i}" for i in range(nr)], kind="relation")
        return cls(name, ents, rels, train.long(), valid.long(), test.long())
