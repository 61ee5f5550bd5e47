"""Reading labelled triples from TSV files, with errors that name the file and line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

COLUMN_ORDERS = ("hrt", "htr", "rht", "rth", "thr", "trh")


class TripleFileError(ValueError):
    """A triples file could not be read; the message names the file and, where it applies, the line."""


@dataclass
class LabeledTriples:
    """Triples as labels, in file order, with duplicates already removed.

    ``lines[i]`` is the 1-based line number of ``triples[i]`` in ``path``.
    """

    path: Path
    triples: list[tuple[str, str, str]]
    lines: list[int]
    num_duplicates: int = 0
    duplicate_lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.triples)


def read_triples(
    path: str | os.PathLike[str],
    column_order: str = "hrt",
    allow_empty: bool = False,
) -> LabeledTriples:
    """Read ``head, relation, tail`` triples from a tab-separated file.

    ``column_order`` says which column holds what: ``"hrt"`` (default, ``head<TAB>relation<TAB>tail``) or
    e.g. ``"htr"`` for MultiHopKG's ``*.triples`` files. A UTF-8 BOM and CRLF line ends are accepted; blank
    lines are skipped; duplicate triples are removed and counted. Raises :class:`TripleFileError` for a
    missing or undecodable file, a line without exactly three columns, an empty field, or (unless
    ``allow_empty``) a file without any triple.
    """
    path = Path(path)
    order = column_order.lower()
    if sorted(order) != sorted("hrt") or len(order) != 3:
        raise ValueError(
            f"column_order must be a permutation of 'hrt' (e.g. 'hrt', 'htr'), got {column_order!r}"
        )
    pos = {c: order.index(c) for c in "hrt"}
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TripleFileError(f"{path}: file not found") from None
    except OSError as exc:
        raise TripleFileError(f"{path}: cannot read file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_no = raw[: exc.start].count(b"\n") + 1
        raise TripleFileError(
            f"{path}, line {line_no}: not valid UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from None

    seen: set[tuple[str, str, str]] = set()
    triples: list[tuple[str, str, str]] = []
    lines: list[int] = []
    dup_lines: list[int] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 3:
            raise TripleFileError(
                f"{path}, line {line_no}: expected 3 tab-separated columns ({order}), found {len(cols)}: {line[:80]!r}"
            )
        cols = [c.strip() for c in cols]
        for i, c in enumerate(cols):
            if not c:
                raise TripleFileError(f"{path}, line {line_no}: column {i + 1} ({order[i]}) is empty")
        triple = (cols[pos["h"]], cols[pos["r"]], cols[pos["t"]])
        if triple in seen:
            dup_lines.append(line_no)
            continue
        seen.add(triple)
        triples.append(triple)
        lines.append(line_no)
    if not triples and not allow_empty:
        raise TripleFileError(f"{path}: no triples (the split is empty)")
    return LabeledTriples(path, triples, lines, len(dup_lines), dup_lines)


def add_inverse_triples(triples: torch.Tensor, num_relations: int) -> torch.Tensor:
    """``[n, 3]`` (h, r, t) -> ``[2n, 3]``: the triples, then (t, r + num_relations, h) for each.

    The inverse of relation ``r`` has id ``r + num_relations`` throughout kgreason.
    """
    inv = torch.stack([triples[:, 2], triples[:, 1] + num_relations, triples[:, 0]], dim=1)
    return torch.cat([triples, inv], dim=0)
