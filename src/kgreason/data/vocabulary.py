"""Label <-> id maps with stable ids (sorted labels), saved with every run."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch

from kgreason.io import read_json, write_json
from kgreason.registry import suggest


class UnknownLabelError(KeyError):
    """A label is not in the vocabulary; the message suggests close matches."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Vocabulary:
    """An ordered set of labels; ``id`` is the label's position.

    Build with :meth:`from_labels` for stable ids (sorted, deduplicated) or pass ``labels`` in the order wanted.
    """

    def __init__(self, labels: Sequence[str], kind: str = "label") -> None:
        self.kind = kind
        self._labels = list(labels)
        self._index = {label: i for i, label in enumerate(self._labels)}
        if len(self._index) != len(self._labels):
            raise ValueError(f"duplicate {kind}s in vocabulary")

    @classmethod
    def from_labels(cls, labels: Iterable[str], kind: str = "label") -> Vocabulary:
        return cls(sorted(set(labels)), kind=kind)

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._labels == other._labels

    def __repr__(self) -> str:
        return f"Vocabulary({self.kind}, size={len(self)})"

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    def id(self, label: str) -> int:
        """The id of ``label``; unknown labels raise :class:`UnknownLabelError` with close matches."""
        try:
            return self._index[label]
        except KeyError:
            close = suggest(label, self._labels)
            hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownLabelError(f"Unknown {self.kind} {label!r}.{hint}") from None

    def ids(self, labels: Iterable[str]) -> torch.Tensor:
        return torch.tensor([self.id(x) for x in labels], dtype=torch.long)

    def label(self, i: int) -> str:
        return self._labels[int(i)]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the labels as a JSON list (position = id), atomically."""
        write_json(path, self._labels)

    @classmethod
    def load(cls, path: str | os.PathLike[str], kind: str = "label") -> Vocabulary:
        labels = read_json(path)
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"{path}: a vocabulary file must hold a JSON list of strings")
        return cls(labels, kind=kind)
