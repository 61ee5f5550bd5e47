"""The interface every KGE scoring model implements, shared scoring kernels, and the model registry ``MODELS``.

A model scores triples ``(head, relation, tail)``; scores are logits (higher is better, apply a sigmoid for
probabilities). Subclasses implement one method, :meth:`KGEModel._score_t` (tails of ``(h, r)`` queries, against
all entities, a shared candidate list or per-query candidates); the public methods are built on it:

* ``score_hrt(hrt[b,3]) -> [b]`` is ``_score_t`` with one candidate per query, so it agrees with ``score_t``;
* ``score_h`` with ``inverse_relations=True`` is ``score_t((t, r + R))`` (reciprocal relations); otherwise
  the model's own head-side scoring (``_score_h``, native where the scoring function allows, else exact but
  slow: every candidate triple through the tail path, in chunks);
* ``score_r`` likewise (``_score_r``).

Inverse relation ids are ``r + R`` throughout kgreason (``R = num_relations``, the base relations).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from kgreason.models.initializers import INITIALIZERS
from kgreason.models.kernels import gathered_dot, gathered_l1, gathered_l2
from kgreason.models.regularizers import REGULARIZERS, Regularizer
from kgreason.registry import Registry

__all__ = [
    "DENSE_CANDIDATE_RATIO",
    "DENSE_CANDIDATE_RATIO_L1",
    "MAX_BROADCAST_ELEMENTS",
    "MODELS",
    "KGEModel",
    "as_complex",
    "as_real",
    "complex_l1_distances",
    "dot_scores",
    "fast_dropout",
    "gather",
    "lp_distances",
    "register_model",
]

#: Largest ``[batch, candidates, dim]`` intermediate a broadcasting kernel materialises at once (elements).
MAX_BROADCAST_ELEMENTS = 2**24

#: Per-query candidates ``index[b, k]`` are scored by scoring every entity with one matmul and picking
#: ``[b, k]`` when the table has at most this many rows per candidate (``n <= ratio * k``); a matmul over all
#: rows beats gathering ``[b, k, d]`` rows (and back-propagating into them) well beyond ``n = k``. Measured
#: forward + backward on CPU, ``b = 512``, ``d = 256``, 2 threads: ``k = 33, n = 135`` dense 1.2 ms vs gathered
#: 11.7 ms; ``k = 2, n = 135`` dense 0.9 ms vs gathered 0.6 ms; ``k = 2, n = 300`` 1.8 ms vs 0.4 ms.
DENSE_CANDIDATE_RATIO = 32
#: The same for the L1 kernels, which have no matmul form (exact distances to every row cost ``b * n * d``, as
#: much as the gathered rows only when ``n <= k``).
DENSE_CANDIDATE_RATIO_L1 = 1


# ---- scoring kernels shared by the models ---------------------------------------------------------------------


def gather(weight: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """Rows of ``weight[n, ...]``: all of them (``index=None``), ``[k, ...]`` for ``index[k]``,
    ``[b, k, ...]`` for ``index[b, k]``."""
    if index is None:
        return weight
    return F.embedding(index, weight) if weight.dim() == 2 else weight[index]


def _dense(table: torch.Tensor, index: torch.Tensor, ratio: int) -> bool:
    return table.shape[0] <= ratio * index.shape[1]


def dot_scores(query: torch.Tensor, table: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
    """Dot products of ``query[b, d]`` with rows of ``table[n, d]``.

    ``index=None``: every row, ``[b, n]``, one matmul; ``index[k]`` (shared by the batch): ``[b, k]``, one
    matmul against the ``k`` rows; ``index[b, k]`` (per query): ``[b, k]``, dot products with the gathered
    ``[b, k, d]`` rows (:func:`kgreason.models.kernels.gathered_dot`), or one matmul against the whole table and
    a pick when that is cheaper (:data:`DENSE_CANDIDATE_RATIO`).
    """
    if index is None:
        return query @ table.t()
    if index.dim() == 1:
        return query @ gather(table, index).t()
    if _dense(table, index, DENSE_CANDIDATE_RATIO):
        return (query @ table.t()).gather(1, index)
    return gathered_dot(query, table, index)


def lp_distances(
    query: torch.Tensor, table: torch.Tensor, p: float, index: torch.Tensor | None = None
) -> torch.Tensor:
    """``||query_i - row||_p`` for ``query[b, d]`` and rows of ``table[n, d]`` selected as in
    :func:`dot_scores` (``[b, n]`` or ``[b, k]``), via :func:`torch.cdist` (for ``p=2`` it expands
    ``|q|^2 - 2 q.e + |e|^2`` into a matmul; ``p=1`` is computed exactly)."""
    if index is None:
        return torch.cdist(query, table, p=p)
    if index.dim() == 1:
        return torch.cdist(query, gather(table, index), p=p)
    if _dense(table, index, DENSE_CANDIDATE_RATIO if p == 2 else DENSE_CANDIDATE_RATIO_L1):
        return torch.cdist(query, table, p=p).gather(1, index)
    if p == 1:
        return gathered_l1(query, table, index)
    if p == 2:
        return gathered_l2(query, table, index)
    return torch.cdist(query.unsqueeze(1), gather(table, index), p=p).squeeze(1)


def complex_l1_distances(
    query: torch.Tensor, table: torch.Tensor, index: torch.Tensor | None = None
) -> torch.Tensor:
    """``sum_j |query_ij - e_j|`` (sum of complex moduli) for complex ``query[b, d]`` and rows of the complex
    ``table[n, d]`` selected as in :func:`dot_scores` (``[b, n]`` or ``[b, k]``).

    No matmul form exists, so ``[b, n, d]`` differences are materialised, at most :data:`MAX_BROADCAST_ELEMENTS`
    elements at a time (chunks over the rows).
    """
    if index is not None and index.dim() == 2:
        if not _dense(table, index, DENSE_CANDIDATE_RATIO_L1):
            # indexing, not F.embedding: the table is complex, which embedding's autograd does not support
            return (query.unsqueeze(1) - table[index]).abs().sum(dim=-1)
        return complex_l1_distances(query, table).gather(1, index)
    rows = table if index is None else table[index]  # complex: indexing, not F.embedding
    b, d = query.shape
    n = rows.shape[0]
    chunk = max(1, MAX_BROADCAST_ELEMENTS // max(1, b * d))
    q = query.unsqueeze(1)
    parts = [(q - rows[i : i + chunk].unsqueeze(0)).abs().sum(dim=-1) for i in range(0, n, chunk)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout, as :func:`torch.nn.functional.dropout`: each entry kept with probability ``1 - p`` and
    scaled by ``1 / (1 - p)``; ``x`` itself when not ``training`` or ``p == 0``. The mask comes from
    ``torch.rand`` (vectorised) instead of ``bernoulli_``, which on CPU takes 2-3x longer -- for the embedding
    dropout of ComplEx, more than the rest of a training step on small graphs. Uses the global torch RNG."""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return x * torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))


def as_complex(x: torch.Tensor) -> torch.Tensor:
    """Real ``[..., 2d]`` with interleaved (real, imaginary) pairs -> complex ``[..., d]`` (a view)."""
    return torch.view_as_complex(x.unflatten(-1, (-1, 2)))


def as_real(z: torch.Tensor) -> torch.Tensor:
    """Complex ``[..., d]`` -> real ``[..., 2d]`` with interleaved (real, imaginary) pairs; inverse of
    :func:`as_complex`. The real dot product of ``as_real(a)`` and ``as_real(b)`` is ``Re(sum a conj(b))``."""
    return torch.view_as_real(z).flatten(-2)


# ---- the interface ----------------------------------------------------------------------------------------------


def _check_index(x: torch.Tensor, columns: int, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != columns:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} must be a LongTensor[batch, {columns}], got {shape}")
    if x.dtype not in (torch.long, torch.int32):
        raise TypeError(f"{what} must hold integer ids (torch.long), got {x.dtype}")


def _check_candidates(c: torch.Tensor | None, batch: int, what: str) -> None:
    if c is None:
        return
    if c.dtype not in (torch.long, torch.int32):
        raise TypeError(f"{what} must hold integer ids (torch.long), got {c.dtype}")
    if c.dim() == 1 or (c.dim() == 2 and c.shape[0] == batch):
        return
    raise ValueError(
        f"{what} must be LongTensor[{batch}, k] (per query) or [k] (shared), got {tuple(c.shape)}"
    )


class KGEModel(nn.Module, abc.ABC):
    """A knowledge-graph embedding model: scores of ``(head, relation, tail)`` triples as logits.

    Args:
        num_entities: ``E``; entity ids ``0..E-1``.
        num_relations: ``R``, the number of *base* relations.
        embedding_dim: size of the entity embeddings (complex components for ComplEx / RotatE).
        inverse_relations: embed ``2R`` relations (``r + R`` is the inverse of ``r``) and score heads as
            tails of the inverse relation: ``score_h((r, t)) == score_t((t, r + R))``. The training loop must
            then feed inverse triples (``kgreason.data.add_inverse_triples``).
        regularizer: name in :data:`kgreason.models.regularizers.REGULARIZERS` (``"lp"``, ``"n3"``) or ``None``.
        regularizer_kwargs: its keyword arguments (e.g. ``{"weight": 1e-3}``).
        entity_initializer, relation_initializer: names in :data:`kgreason.models.initializers.INITIALIZERS`
            for the entity and relation tables (``"xavier_normal_per_row"``, ...); ``None`` keeps the model's
            default (its paper code's: torch's Xavier over the whole table).

    Regularisation: in training mode with gradients enabled, every scoring call adds the regulariser's penalty on
    the embeddings it looked up (query heads and relations, and the candidate rows when a candidate subset is
    given) to an accumulator; :meth:`regularization_term` returns the sum **accumulated since its last call**
    and resets it. Call it once per batch (every training step), after the scoring calls.

    Class attributes: ``name`` (registry name), ``default_training`` (training defaults the pipeline uses when
    the user gives none: loop, loss, optimiser, learning rate, ...; treat as read-only).
    """

    name: ClassVar[str] = ""
    default_training: ClassVar[dict[str, Any]] = {}
    #: rows scored at once by the exact-but-slow fallbacks of ``_score_h`` / ``_score_r``
    fallback_chunk_rows: ClassVar[int] = 4096

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        embedding_dim: int,
        inverse_relations: bool,
        regularizer: str | None = None,
        regularizer_kwargs: dict[str, Any] | None = None,
        entity_initializer: str | None = None,
        relation_initializer: str | None = None,
    ) -> None:
        super().__init__()
        for label, value in (
            ("num_entities", num_entities),
            ("num_relations", num_relations),
            ("embedding_dim", embedding_dim),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        self.num_entities = int(num_entities)
        self.num_relations = int(num_relations)
        self.embedding_dim = int(embedding_dim)
        self.inverse_relations = bool(inverse_relations)
        self.regularizer: Regularizer | None = (
            REGULARIZERS.make(regularizer, regularizer_kwargs) if regularizer is not None else None
        )
        self._regularizer_name = REGULARIZERS.canonical(regularizer) if regularizer is not None else None
        self._regularization_sum: torch.Tensor | None = None
        self._extra_config: dict[str, Any] = {}
        self._initializers: dict[str, str | None] = {
            "entity": INITIALIZERS.canonical(entity_initializer) if entity_initializer is not None else None,
            "relation": INITIALIZERS.canonical(relation_initializer)
            if relation_initializer is not None
            else None,
        }

    # ---- what subclasses implement ------------------------------------------------------------------------------

    @abc.abstractmethod
    def _score_t(self, h: torch.Tensor, r: torch.Tensor, tails: torch.Tensor | None) -> torch.Tensor:
        """Scores of tails for queries ``(h[b], r[b])``; ``r`` may be any embedded relation id.

        ``tails=None``: every entity, ``[b, E]``; ``tails[k]``: a shared candidate list, ``[b, k]``;
        ``tails[b, k]``: per-query candidates, ``[b, k]``. Call ``self._regularize(...)`` on the rows used.
        """

    @abc.abstractmethod
    def reset_parameters(self) -> None:
        """(Re-)initialise every parameter and buffer from the global torch RNG."""

    def _score_h(self, r: torch.Tensor, t: torch.Tensor, heads: torch.Tensor | None) -> torch.Tensor:
        """Scores of heads for ``(r[b], t[b])`` without reciprocal relations; shapes as :meth:`_score_t`.

        Default: exact but slow, every candidate triple through ``_score_t`` (models override it natively).
        """
        if heads is None:
            cand = torch.arange(self.num_entities, device=t.device).unsqueeze(0)
        else:
            cand = heads.unsqueeze(0) if heads.dim() == 1 else heads
        return self._score_triples(cand, r.unsqueeze(1), t.unsqueeze(1))

    def _score_r(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Scores of every embedded relation for ``(h[b], t[b])``: ``[b, num_relations_embedded]``.

        Default: exact but slow, every candidate triple through ``_score_t``.
        """
        rels = torch.arange(self.num_relations_embedded, device=h.device).unsqueeze(0)
        return self._score_triples(h.unsqueeze(1), rels, t.unsqueeze(1))

    def _score_triples(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Scores of the triples ``(h, r, t)``, index tensors broadcastable to one shape ``[b, n]`` -> ``[b, n]``,
        through the tail path in chunks of :attr:`fallback_chunk_rows` triples."""
        shape = torch.broadcast_shapes(h.shape, r.shape, t.shape)
        hf, rf, tf = (x.expand(shape).reshape(-1) for x in (h, r, t))
        n, step = hf.shape[0], self.fallback_chunk_rows
        parts = [
            self._score_t(hf[i : i + step], rf[i : i + step], tf[i : i + step, None])[:, 0]
            for i in range(0, n, step)
        ]
        return (parts[0] if len(parts) == 1 else torch.cat(parts)).view(shape)

    # ---- public interface -------------------------------------------------------------------------------------

    @property
    def num_relations_embedded(self) -> int:
        """``2R`` with inverse relations, else ``R``."""
        return 2 * self.num_relations if self.inverse_relations else self.num_relations

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.parameters()).device

    def inverse_relation(self, r: torch.Tensor) -> torch.Tensor:
        """Id of the inverse of each relation id (``r + R`` for base ids, ``r - R`` for inverse ids)."""
        if not self.inverse_relations:
            raise RuntimeError(f"{type(self).__name__} was built with inverse_relations=False")
        return torch.remainder(r + self.num_relations, 2 * self.num_relations)

    def score_hrt(self, hrt: torch.Tensor) -> torch.Tensor:
        """Scores of triples: ``hrt: LongTensor[b, 3]`` -> ``FloatTensor[b]`` (logits)."""
        _check_index(hrt, 3, "hrt")
        return self._score_t(hrt[:, 0], hrt[:, 1], hrt[:, 2:3])[:, 0]

    def forward(self, hrt: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`score_hrt`."""
        return self.score_hrt(hrt)

    def score_t(self, hr: torch.Tensor, tails: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of tails for ``hr: LongTensor[b, 2]`` of (head, relation).

        ``tails=None``: every entity, ``FloatTensor[b, E]``; ``tails: LongTensor[b, k]`` (per query, e.g.
        negatives of sLCWA) or ``LongTensor[k]`` (shared by the batch): ``FloatTensor[b, k]`` with
        ``out[i, j]`` the score of ``(h_i, r_i, tails[i, j])``.
        """
        _check_index(hr, 2, "hr")
        _check_candidates(tails, hr.shape[0], "tails")
        return self._score_t(hr[:, 0], hr[:, 1], tails)

    def score_h(self, rt: torch.Tensor, heads: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of heads for ``rt: LongTensor[b, 2]`` of (relation, tail); shapes as :meth:`score_t`.

        With inverse relations this is ``score_t((t, r + R))``.
        """
        _check_index(rt, 2, "rt")
        _check_candidates(heads, rt.shape[0], "heads")
        r, t = rt[:, 0], rt[:, 1]
        if self.inverse_relations:
            return self._score_t(t, self.inverse_relation(r), heads)
        return self._score_h(r, t, heads)

    def score_h_and_t(
        self, rt: torch.Tensor, heads: torch.Tensor, hr: torch.Tensor, tails: torch.Tensor
    ) -> torch.Tensor:
        """``cat([score_h(rt, heads), score_t(hr, tails)])``: per-query candidates of a head group and a tail
        group with the same number of candidates, ``[b_h + b_t, k]`` (sLCWA training corrupting both sides).

        One call so that a model can score both groups with a single lookup into its entity table (one dense
        table gradient per step instead of two); the default simply makes the two calls."""
        return torch.cat([self.score_h(rt, heads), self.score_t(hr, tails)])

    def _joint_h_and_t(
        self, rt: torch.Tensor, heads: torch.Tensor, hr: torch.Tensor, tails: torch.Tensor
    ) -> bool:
        """Validate the arguments of :meth:`score_h_and_t`; whether a model's one-lookup form of it applies
        (a model without inverse relations, no regulariser collecting, per-query candidate lists of one length)."""
        _check_index(rt, 2, "rt")
        _check_index(hr, 2, "hr")
        _check_candidates(heads, rt.shape[0], "heads")
        _check_candidates(tails, hr.shape[0], "tails")
        return (
            not self.inverse_relations
            and not self._regularizing
            and heads.dim() == 2
            and tails.dim() == 2
            and heads.shape[1] == tails.shape[1]
        )

    def score_r(self, ht: torch.Tensor) -> torch.Tensor:
        """Scores of every embedded relation for ``ht: LongTensor[b, 2]`` of (head, tail):
        ``FloatTensor[b, num_relations_embedded]`` (columns ``R..2R-1`` are the inverse relations, if any)."""
        _check_index(ht, 2, "ht")
        return self._score_r(ht[:, 0], ht[:, 1])

    # ---- regularisation ----------------------------------------------------------------------------------------

    @property
    def _regularizing(self) -> bool:
        """Whether scoring calls now add to the regularisation term (a regulariser, training mode, gradients)."""
        return self.regularizer is not None and self.training and torch.is_grad_enabled()

    def _regularize(self, *factors: torch.Tensor) -> None:
        """Add the regulariser's penalty on ``factors`` (embedding rows a scoring call used) to the accumulator;
        only when :attr:`_regularizing`."""
        if not self._regularizing or not factors:
            return
        assert self.regularizer is not None
        term = self.regularizer(factors)
        self._regularization_sum = (
            term if self._regularization_sum is None else self._regularization_sum + term
        )

    def regularization_term(self) -> torch.Tensor:
        """Penalty accumulated by the scoring calls since the last call (a scalar; zero without a regulariser
        or without scoring calls in training mode); resets the accumulator."""
        term, self._regularization_sum = self._regularization_sum, None
        if term is None:
            p = next(self.parameters())
            return torch.zeros((), device=p.device, dtype=p.dtype)
        return term

    # ---- configuration --------------------------------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": <registry name>, **constructor keyword arguments}`` (JSON-able);
        ``MODELS.make(cfg.pop("name"), cfg)`` rebuilds the model (untrained)."""
        return {
            "name": self.name,
            "num_entities": self.num_entities,
            "num_relations": self.num_relations,
            "embedding_dim": self.embedding_dim,
            "inverse_relations": self.inverse_relations,
            **self._extra_config,
            "regularizer": self._regularizer_name,
            "regularizer_kwargs": self.regularizer.config if self.regularizer is not None else None,
            # only when chosen: configs written before these options existed rebuild and resume unchanged
            **{
                f"{table}_initializer": name for table, name in self._initializers.items() if name is not None
            },
        }

    def extra_repr(self) -> str:
        return (
            f"num_entities={self.num_entities}, num_relations={self.num_relations}, "
            f"embedding_dim={self.embedding_dim}, inverse_relations={self.inverse_relations}"
        )

    # ---- helpers for subclasses ------------------------------------------------------------------------------

    def _initialize(self, table: torch.Tensor, which: str, default: str) -> None:
        """Fill the ``which`` (``"entity"`` / ``"relation"``) table with the chosen initialiser, else ``default``."""
        INITIALIZERS.get(self._initializers[which] or default)(table)

    def _batch_norm(self, bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
        """``bn(x)``, except that a training batch of one row (no batch statistics) uses the running ones."""
        if self.training and x.shape[0] == 1 and x[0].numel() == bn.num_features:
            return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        return bn(x)


MODELS: Registry[type[KGEModel]] = Registry("model")

M = TypeVar("M", bound=type[KGEModel])


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: register a :class:`KGEModel` subclass in :data:`MODELS` under ``name``."""

    def decorator(cls: M) -> M:
        cls.name = name
        MODELS.add(name, cls)
        return cls

    return decorator
