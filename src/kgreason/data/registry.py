"""Find and load datasets by name: local folders, the download cache, built-in generators, downloadables.

A name is resolved, first match wins, in:

1. ``data_dir`` (argument) or ``$KGREASON_DATA_DIR``: one folder per dataset holding ``train.txt``,
   ``valid.txt`` and ``test.txt`` (the layout of ``shared/data``);
2. the download cache (``$KGREASON_CACHE_DIR`` or ``~/.cache/kgreason/datasets``, same layout);
3. the built-in generated datasets of :data:`BUILTIN_DATASETS` (e.g. ``family``);
4. the downloadable benchmarks of :data:`kgreason.data.download.DATASET_SOURCES` (fetched only when asked,
   ``download=True``).

Folder names match case/dash/underscore-insensitively (``FB15k-237`` finds ``fb15k-237/``). Environment
variables are read at call time; the only module state is the registry of built-in factories.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kgreason.data.dataset import SPLITS, Dataset, UnseenPolicy
from kgreason.data.download import DATASET_SOURCES, default_cache_dir, download_dataset
from kgreason.registry import Registry, UnknownNameError, normalize_name, unknown_name_message

DatasetSourceKind = Literal["data_dir", "cache", "builtin", "downloadable"]

BUILTIN_DATASETS: Registry[Callable[..., Dataset]] = Registry("built-in dataset")


@BUILTIN_DATASETS.register("family")
def _family(size: str | int = "default", seed: int = 0, **kwargs: Any) -> Dataset:
    """Synthetic family-tree KG: :func:`kgreason.data.family.build_family_dataset` (other options pass through)."""
    from kgreason.data.family import build_family_dataset  # lazy: keeps this module importable on its own

    return build_family_dataset(size=size, seed=seed, **kwargs)


class DatasetNotDownloadedError(FileNotFoundError):
    """A known downloadable dataset is not in the cache and ``download=False``."""


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset :func:`list_datasets` can see: its name, where it comes from and (for folders) its path."""

    name: str
    source: DatasetSourceKind
    path: Path | None = None


def data_dir_from_env() -> Path | None:
    """``$KGREASON_DATA_DIR`` as a path, or ``None`` when unset or empty."""
    env = os.environ.get("KGREASON_DATA_DIR")
    return Path(env).expanduser() if env else None


def is_dataset_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder with ``train.txt``, ``valid.txt`` and ``test.txt``."""
    path = Path(path)
    return path.is_dir() and all((path / f"{s}.txt").is_file() for s in SPLITS)


def _folders(root: Path | None) -> list[Path]:
    if root is None or not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and is_dataset_dir(p))


def list_datasets(data_dir: str | os.PathLike[str] | None = None) -> list[DatasetEntry]:
    """Every dataset name :func:`load_dataset` resolves, each once, with the source that wins.

    Order: ``data_dir`` folders, cached folders, built-ins, then downloadables not yet in the cache; within a
    source, sorted by name.
    """
    root = Path(data_dir).expanduser() if data_dir is not None else data_dir_from_env()
    entries: list[DatasetEntry] = []
    seen: set[str] = set()

    def add(name: str, source: DatasetSourceKind, path: Path | None = None) -> None:
        key = normalize_name(name)
        if key not in seen:
            seen.add(key)
            entries.append(DatasetEntry(name, source, path))

    for folder in _folders(root):
        add(folder.name, "data_dir", folder)
    for folder in _folders(default_cache_dir()):
        add(folder.name, "cache", folder)
    for name in BUILTIN_DATASETS.names():
        add(name, "builtin")
    for name in sorted(DATASET_SOURCES):
        add(name, "downloadable")
    return entries


def sized_builtin(name: str) -> tuple[str, str | int] | None:
    """``("family", "default")`` for ``"family-default"`` (``("family", 300)`` for ``"family-300"``): the name a
    built-in generator gives the dataset it builds with a size, split back into generator and size; ``None``
    when ``name`` is no such name."""
    base, sep, size = name.rpartition("-")
    if not sep or not size or base not in BUILTIN_DATASETS:
        return None
    return BUILTIN_DATASETS.canonical(base), int(size) if size.isdigit() else size


def find_dataset(name: str, data_dir: str | os.PathLike[str] | None = None) -> DatasetEntry:
    """The entry :func:`load_dataset` would use for ``name``; unknown names raise
    :class:`~kgreason.registry.UnknownNameError` listing close matches and everything available. A built-in
    generated dataset is also found by the name it gives itself (``family-default``: :func:`sized_builtin`)."""
    entries = list_datasets(data_dir)
    key = normalize_name(name)
    for entry in entries:
        if normalize_name(entry.name) == key:
            return entry
    if sized_builtin(name) is not None:
        return DatasetEntry(name, "builtin")
    known = [e.name for e in entries]
    root = Path(data_dir) if data_dir is not None else data_dir_from_env()
    where = "unset" if root is None else str(root)
    raise UnknownNameError(
        unknown_name_message("dataset", name, known)
        + f" (searched KGREASON_DATA_DIR={where}, cache {default_cache_dir()}; a path to a folder with"
        " train.txt/valid.txt/test.txt also works)"
    )


def _looks_like_path(name: str) -> bool:
    return os.sep in name or "/" in name or name.startswith((".", "~")) or Path(name).is_absolute()


def load_dataset(
    name_or_path: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    column_order: str = "hrt",
    unseen: UnseenPolicy = "drop",
    download: bool = False,
    **builtin_kwargs: Any,
) -> Dataset:
    """Load a dataset by name (see the module docstring for the search order) or from a folder path.

    Args:
        name_or_path: a dataset name, or a folder with ``train.txt``/``valid.txt``/``test.txt``.
        data_dir: overrides ``$KGREASON_DATA_DIR``.
        column_order: column order of the triple files (``"hrt"``, or ``"htr"`` for MultiHopKG's files).
        unseen: what to do with valid/test triples mentioning entities or relations absent from train:
            ``"drop"`` (counted in ``Dataset.reports``) or ``"error"``.
        download: fetch a downloadable benchmark into the cache when it is not there yet.
        **builtin_kwargs: passed to a built-in generator (e.g. ``size=``, ``seed=`` for ``family``); an error
            for file datasets.

    ``Dataset.metadata`` gets ``source`` (``data_dir``/``cache``/``builtin``/``path``) and, for folders, ``path``.
    Raises :class:`~kgreason.registry.UnknownNameError` for unknown names and
    :class:`DatasetNotDownloadedError` for a downloadable dataset not in the cache when ``download=False``.
    """
    raw = os.fspath(name_or_path)
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(raw):
        return _load_folder(Path(raw).expanduser(), None, "path", column_order, unseen, builtin_kwargs)
    try:
        entry = find_dataset(raw, data_dir)
    except UnknownNameError:
        if Path(raw).is_dir():  # a folder in the working directory, named without "./"
            return _load_folder(Path(raw), None, "path", column_order, unseen, builtin_kwargs)
        raise
    if entry.source == "builtin":
        sized = sized_builtin(entry.name) if entry.name not in BUILTIN_DATASETS else None
        if sized is not None:  # "family-default": the generator with that size
            ds = BUILTIN_DATASETS.make(sized[0], {"size": sized[1], **builtin_kwargs})
        else:
            ds = BUILTIN_DATASETS.make(entry.name, builtin_kwargs)
        ds.metadata.setdefault("source", "builtin")
        return ds
    if entry.source == "downloadable":
        if not download:
            raise DatasetNotDownloadedError(
                f"dataset {entry.name!r} is not in the cache {default_cache_dir()}; pass download=True "
                f"(CLI: kgreason datasets download {entry.name}) or put it under KGREASON_DATA_DIR"
            )
        folder = download_dataset(entry.name)
        return _load_folder(folder, entry.name, "cache", column_order, unseen, builtin_kwargs)
    assert entry.path is not None
    return _load_folder(entry.path, entry.name, entry.source, column_order, unseen, builtin_kwargs)


def _load_folder(
    path: Path,
    name: str | None,
    source: str,
    column_order: str,
    unseen: UnseenPolicy,
    builtin_kwargs: dict[str, Any],
) -> Dataset:
    if builtin_kwargs:
        raise TypeError(
            f"{path}: options {', '.join(sorted(builtin_kwargs))} only apply to built-in generated datasets "
            f"({', '.join(BUILTIN_DATASETS.names())})"
        )
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: dataset folder not found")
    missing = [f"{s}.txt" for s in SPLITS if not (path / f"{s}.txt").is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: not a dataset folder, missing {', '.join(missing)}")
    ds = Dataset.from_directory(
        path, name=name or path.resolve().name, column_order=column_order, unseen=unseen
    )
    ds.metadata.setdefault("source", source)
    ds.metadata.setdefault("path", str(path.resolve()))
    return ds
