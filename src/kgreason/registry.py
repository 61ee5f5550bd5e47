"""One registry pattern for every pluggable component (models, losses, samplers, datasets, ...).

Components are chosen by name and built with keyword arguments::

    MODELS = Registry[KGEModel]("model")

    @MODELS.register("distmult")
    class DistMult(KGEModel): ...

    model = MODELS.make("DistMult", num_entities=10, num_relations=3)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a name is not registered; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


def normalize_name(name: str) -> str:
    """Case-, dash- and underscore-insensitive key: ``"Self_Adversarial"`` -> ``"selfadversarial"``."""
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


def suggest(name: str, choices: list[str], n: int = 3) -> list[str]:
    """Close matches of ``name`` among ``choices`` (by edit similarity), best first."""
    by_norm = {normalize_name(c): c for c in choices}
    hits = difflib.get_close_matches(normalize_name(name), list(by_norm), n=n, cutoff=0.5)
    direct = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    out: list[str] = []
    for h in [*direct, *(by_norm[h] for h in hits)]:
        if h not in out:
            out.append(h)
    return out[:n]


def unknown_name_message(kind: str, name: str, choices: list[str]) -> str:
    close = suggest(name, choices)
    hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(choices))}."


class Registry(Generic[T]):
    """A name -> factory map with forgiving lookup and helpful errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._names: dict[str, str] = {}

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj, *aliases)
            return obj

        return decorator

    def add(self, name: str, obj: T, *aliases: str) -> None:
        for key in (name, *aliases):
            norm = normalize_name(key)
            if norm in self._items and self._items[norm] is not obj:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[norm] = obj
        self._names[normalize_name(name)] = name

    def names(self) -> list[str]:
        """Canonical names, sorted."""
        return sorted(self._names.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize_name(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        try:
            return self._items[normalize_name(name)]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names())) from None

    def canonical(self, name: str) -> str:
        """The registered spelling of ``name`` (raises like :meth:`get`)."""
        obj = self.get(name)
        for norm, canon in self._names.items():
            if self._items[norm] is obj:
                return canon
        return name

    def make(self, name: str | T, kwargs: dict[str, Any] | None = None, **extra: Any) -> Any:
        """Build ``name`` with ``kwargs`` and ``extra``; an already built object is returned unchanged."""
        if not isinstance(name, str):
            return name
        factory: Any = self.get(name)
        return factory(**{**(kwargs or {}), **extra})
