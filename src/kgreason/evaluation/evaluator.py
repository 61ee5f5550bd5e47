"""Filtered rank-based evaluation of any :class:`Scorer` (a KGE model, a beam-search walker, ...)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import torch
from torch import nn
from tqdm.auto import tqdm

from kgreason.distributed.context import all_gather_objects, all_reduce, get_context
from kgreason.distributed.sampler import shard_bounds
from kgreason.evaluation.metrics import ALL_SIDES, HITS_AT, SIDES, metrics_from_ranks
from kgreason.evaluation.ranks import RANK_TYPES, FilterIndex, Side, _check_triples, compute_ranks
from kgreason.io import atomic_torch_save, read_json, write_json

if TYPE_CHECKING:
    from kgreason.data.dataset import Dataset

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
RANKS_FILE = "ranks.pt"


@runtime_checkable
class Scorer(Protocol):
    """What evaluation consumes: scores of every entity as the missing head or tail (higher = better)."""

    def score_t(self, hr: torch.Tensor) -> torch.Tensor:
        """``hr: LongTensor[b, 2]`` of (head, relation) -> ``FloatTensor[b, E]`` tail scores."""
        ...

    def score_h(self, rt: torch.Tensor) -> torch.Tensor:
        """``rt: LongTensor[b, 2]`` of (relation, tail) -> ``FloatTensor[b, E]`` head scores."""
        ...


@dataclass
class EvaluationResult:
    """Metrics and per-query ranks of one evaluation.

    Attributes:
        metrics: ``{"{side}.{rank_type}.{metric}": value}`` (see :mod:`kgreason.evaluation.metrics`).
        ranks: ``{side: {rank_type: FloatTensor[n]}}`` on the CPU, row ``i`` being the query of ``triples[i]``
            (head side: ``(?, r, t)``, tail side: ``(h, r, ?)``).
        triples: ``LongTensor[n, 3]``, the evaluated triples (CPU).
        num_candidates: ``{side: LongTensor[n]}``, entities left after filtering (true answer included).
    """

    metrics: dict[str, float]
    ranks: dict[str, dict[str, torch.Tensor]]
    triples: torch.Tensor
    num_candidates: dict[str, torch.Tensor] | None = field(default=None)

    def __getitem__(self, key: str) -> float:
        try:
            return self.metrics[key]
        except KeyError:
            raise KeyError(
                f"no metric {key!r}; keys look like 'both.realistic.mrr' (sides: {self.sides})"
            ) from None

    @property
    def sides(self) -> list[str]:
        """Evaluated sides among head/tail, in that order."""
        return [s for s in SIDES if s in self.ranks]

    def save(self, path: str | os.PathLike[str], include_ranks: bool = False) -> Path:
        """Write ``metrics.json`` (a flat JSON object of :attr:`metrics`) atomically.

        ``path`` is a directory (files ``metrics.json`` and, with ``include_ranks``, ``ranks.pt`` inside it)
        or a file ending in ``.json`` (ranks then go to ``<stem>.ranks.pt`` beside it). Returns the metrics
        file's path.
        """
        metrics_path, ranks_path = _result_paths(path)
        write_json(metrics_path, self.metrics)
        if include_ranks:
            atomic_torch_save(
                {"ranks": self.ranks, "triples": self.triples, "num_candidates": self.num_candidates},
                ranks_path,
            )
        return metrics_path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EvaluationResult:
        """Read what :meth:`save` wrote; without a ranks file, ``ranks`` is empty and ``triples`` is ``[0, 3]``."""
        metrics_path, ranks_path = _result_paths(path)
        metrics = read_json(metrics_path)
        if not isinstance(metrics, dict):
            raise ValueError(f"{metrics_path}: expected a JSON object of metrics")
        if ranks_path.exists():
            saved: dict[str, Any] = torch.load(ranks_path, map_location="cpu", weights_only=True)
            return cls(
                {k: float(v) for k, v in metrics.items()},
                saved["ranks"],
                saved["triples"],
                saved["num_candidates"],
            )
        return cls({k: float(v) for k, v in metrics.items()}, {}, torch.empty(0, 3, dtype=torch.long))

    def format(self, rank_types: Sequence[str] = ("realistic",), digits: int = 4) -> str:
        """A compact text table: one row per (side, rank type), columns MRR, MR, Hits@k."""
        header = ["side", "rank", "MRR", "MR", *(f"H@{k}" for k in HITS_AT)]
        rows = [header]
        for side in ALL_SIDES:
            for rank_type in rank_types:
                prefix = f"{side}.{rank_type}."
                if f"{prefix}mrr" not in self.metrics:
                    continue
                values = [self.metrics[f"{prefix}mrr"], self.metrics[f"{prefix}mr"]]
                values += [self.metrics[f"{prefix}hits_at_{k}"] for k in HITS_AT]
                cells = [
                    f"{values[0]:.{digits}f}",
                    f"{values[1]:.1f}",
                    *(f"{v:.{digits}f}" for v in values[2:]),
                ]
                rows.append([side, rank_type, *cells])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
            for r in rows
        ]
        return "\n".join(line.rstrip() for line in lines)

    def __str__(self) -> str:
        return self.format()


def _result_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix == ".json":
        return path, path.with_name(f"{path.stem}.{RANKS_FILE}")
    return path / METRICS_FILE, path / RANKS_FILE


def _concat(parts: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat`` of the non-empty ``parts`` (an empty shard may carry another dtype)."""
    full = [p for p in parts if p.numel()]
    return torch.cat(full) if full else parts[0]


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


class RankBasedEvaluator:
    """Filtered rank-based evaluation (MRR, MR, Hits@1/3/5/10; optimistic, pessimistic, realistic ranks).

    The filter index over ``filter_triples`` is built once; each batch of queries is scored by the scorer,
    the ranks are counted with a few vectorised passes over the ``[batch, E]`` score matrix, and the
    other known answers are subtracted with a sparse gather (see :mod:`kgreason.evaluation.ranks` for the
    tie, ``-inf`` and ``NaN`` conventions).

    Args:
        filter_triples: ``LongTensor[m, 3]`` of all known true triples (train + valid + test), or ``None``
            for raw (unfiltered) ranks.
        num_entities: ``E``; every scorer output must be ``[b, E]``. ``None`` takes it from the scores.
        batch_size: queries scored at once; halved automatically on an out-of-memory error (the reduced
            size is kept for later calls).
        device: where queries are sent to the scorer; ``None`` uses the scorer's own device (its
            ``device`` attribute or its first parameter), else the triples' device.
        distributed: shard the queries over the ranks of a ``torchrun`` run and gather the ranks (every rank
            must then call :meth:`evaluate` with the same triples). ``None``: whenever a process group of more
            than one rank is running; ``False``: never (each rank evaluates everything).

    Sharded evaluation gives exactly the single-process numbers: each rank scores whole batches of
    ``batch_size`` queries (the same batches a single process scores, so the same scores), the per-query ranks
    are gathered in the original order, and the metrics are computed from all of them on every rank.
    """

    def __init__(
        self,
        filter_triples: torch.Tensor | None = None,
        num_entities: int | None = None,
        batch_size: int = 1024,
        device: torch.device | str | None = None,
        distributed: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.distributed = distributed
        self.num_entities = None if num_entities is None else int(num_entities)
        self.batch_size = int(batch_size)
        self.device = None if device is None else torch.device(device)
        self.filter_index: FilterIndex | None = None
        if filter_triples is not None:
            bound = self.num_entities
            if bound is None and len(filter_triples):
                bound = int(filter_triples[:, [0, 2]].max()) + 1
            self.filter_index = FilterIndex(filter_triples, bound if bound is not None else 0)

    def _device_for(self, scorer: Scorer, triples: torch.Tensor) -> torch.device:
        if self.device is not None:
            return self.device
        device = getattr(scorer, "device", None)
        if isinstance(device, torch.device):
            return device
        if isinstance(scorer, nn.Module):
            for tensor in (*scorer.parameters(), *scorer.buffers()):
                return tensor.device
        return triples.device

    def evaluate(
        self,
        scorer: Scorer,
        triples: torch.Tensor,
        sides: Sequence[str] = ("head", "tail"),
        progress: bool = False,
    ) -> EvaluationResult:
        """Rank the true answer of every head and/or tail query of ``triples``.

        Args:
            scorer: any object with ``score_t(hr[b, 2]) -> [b, E]`` and ``score_h(rt[b, 2]) -> [b, E]``;
                an ``nn.Module`` is put in eval mode for the call (its mode is restored afterwards).
            triples: ``LongTensor[n, 3]`` of (head, relation, tail) to evaluate.
            sides: ``"head"`` ranks ``(?, r, t)``, ``"tail"`` ranks ``(h, r, ?)``.
            progress: show a tqdm progress bar.

        Returns:
            :class:`EvaluationResult` with metrics keyed ``{side}.{rank_type}.{metric}`` (``both`` only when
            both sides are evaluated) and the per-query ranks.
        """
        sides = list(dict.fromkeys(sides))
        bad = [s for s in sides if s not in SIDES]
        if bad or not sides:
            raise ValueError(f"sides must be a non-empty subset of {SIDES}, got {list(sides)}")
        bound = (
            self.num_entities if self.num_entities is not None else 2**62
        )  # else checked against the scores
        triples = _check_triples(triples, bound, "triples")
        min_width = int(triples[:, [0, 2]].max()) + 1 if len(triples) else 0
        device = self._device_for(scorer, triples)
        triples_dev = triples.to(device)
        ctx = get_context()
        sharded = ctx.is_distributed and self.distributed is not False
        if sharded:
            # whole batches per rank, cut at the same batch size everywhere (a rank may have halved its own)
            self.batch_size = int(all_reduce([self.batch_size], op="min")[0])
            first, stop = shard_bounds(-(-len(triples) // self.batch_size), ctx.rank, ctx.world_size)
            triples_dev = triples_dev[first * self.batch_size : stop * self.batch_size]

        was_training = isinstance(scorer, nn.Module) and scorer.training
        if isinstance(scorer, nn.Module):
            scorer.eval()
        try:
            with torch.no_grad():
                with tqdm(
                    total=len(triples_dev) * len(sides),
                    disable=not progress or not ctx.is_main,
                    unit="query",
                    desc="evaluate",
                ) as bar:
                    per_side = {
                        side: self._evaluate_side(scorer, triples_dev, side, bar, min_width) for side in sides
                    }
        finally:
            if isinstance(scorer, nn.Module) and was_training:
                scorer.train()
        if sharded:
            shards = all_gather_objects(per_side)  # rank order = query order
            per_side = {
                side: {k: _concat([s[side][k] for s in shards]) for k in per_side[side]} for side in sides
            }

        ranks = {side: {rt: per_side[side][rt] for rt in RANK_TYPES} for side in sides}
        num_candidates = {side: per_side[side]["num_candidates"] for side in sides}
        return EvaluationResult(metrics_from_ranks(ranks), ranks, triples.cpu(), num_candidates)

    def _evaluate_side(
        self, scorer: Scorer, triples: torch.Tensor, side: str, bar: Any, min_width: int
    ) -> dict[str, torch.Tensor]:
        n = len(triples)
        score_fn: Callable[[torch.Tensor], torch.Tensor]
        if side == "tail":
            queries, answers, score_fn = triples[:, :2], triples[:, 2], scorer.score_t
        else:
            queries, answers, score_fn = triples[:, 1:], triples[:, 0], scorer.score_h
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in (*RANK_TYPES, "num_candidates")}
        start = 0
        while start < n:
            stop = min(start + self.batch_size, n)
            try:
                scores = score_fn(queries[start:stop])
                self._check_scores(scores, stop - start, side, min_width)
                filter_rows = filter_entities = None
                if self.filter_index is not None:
                    self.filter_index.to(scores.device)
                    filter_rows, filter_entities = self.filter_index.answers(
                        queries[start:stop].to(scores.device), cast(Side, side)
                    )
                batch = compute_ranks(scores, answers[start:stop], filter_rows, filter_entities)
            except (RuntimeError, torch.OutOfMemoryError) as exc:
                if not _is_out_of_memory(exc) or self.batch_size == 1:
                    raise
                self.batch_size = max(1, self.batch_size // 2)
                scores = None  # type: ignore[assignment]
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                logger.warning("evaluation ran out of memory; retrying with batch_size=%d", self.batch_size)
                continue
            del scores
            for key in RANK_TYPES:
                parts[key].append(getattr(batch, key))
            parts["num_candidates"].append(batch.num_candidates)
            bar.update(stop - start)
            start = stop
        if n == 0:
            return {
                k: torch.empty(0, dtype=torch.long if k == "num_candidates" else torch.float32) for k in parts
            }
        return {k: torch.cat(v).cpu() for k, v in parts.items()}

    def _check_scores(self, scores: torch.Tensor, b: int, side: str, min_width: int) -> None:
        if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[0] != b:
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ValueError(f"score_{side[0]} must return [batch={b}, num_entities], got {shape}")
        if not scores.dtype.is_floating_point:
            raise ValueError(f"score_{side[0]} must return floating-point scores, got {scores.dtype}")
        width = scores.shape[1]
        if self.num_entities is not None and width != self.num_entities:
            raise ValueError(
                f"score_{side[0]} returned {width} columns, expected num_entities={self.num_entities}"
            )
        needed = max(min_width, self.filter_index.num_entities if self.filter_index is not None else 0)
        if width < needed:
            raise ValueError(
                f"score_{side[0]} returned {width} columns but the triples use entity ids up to {needed - 1}"
            )


def evaluate_dataset(
    scorer: Scorer,
    dataset: Dataset,
    split: str = "test",
    sides: Sequence[str] = ("head", "tail"),
    batch_size: int = 1024,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> EvaluationResult:
    """Filtered evaluation of ``dataset.split(split)``, filtering with ``dataset.all_triples()``."""
    evaluator = RankBasedEvaluator(
        dataset.all_triples(), num_entities=dataset.num_entities, batch_size=batch_size, device=device
    )
    return evaluator.evaluate(scorer, dataset.split(split), sides=sides, progress=progress)
