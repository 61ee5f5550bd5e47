"""The walker's policy network (Lin et al. 2018, eq. 2-4).

* Entity and relation embeddings (Xavier init). Relation ids: ``0..2R-1`` base and inverse relations, ``2R`` =
  ``NO_OP``, ``2R + 1`` = ``START`` (the special ``r_0`` of eq. 2).
* A multi-layer LSTM path encoder over ``[r_i; e_i]``: ``h_0 = LSTM(0, [r_0; e_s])``, ``h_t = LSTM(h_{t-1}, a_{t-1})``.
* ``pi(a | s_t) = softmax(A_t W2 ReLU(W1 [e_t; h_t; r_q]))`` over the valid actions.

Speed (the reason this is not a plain ``nn.LSTM`` + concatenation):

* The score of action ``(r, e)`` is ``x . [R(r); E(e)] = x_r . R(r) + x_e . E(e)`` with ``x = W2 ReLU(W1 s)``. We
  compute ``x_r @ R^T`` (and ``x_e @ E^T`` when the entity table is small relative to the action space) once per
  walker and gather scalars — no ``[walkers, actions, 2d]`` tensor is built (``entity_scoring="dense"``). For
  large entity tables ``entity_scoring="gather"`` gathers the ``[walkers, actions, d]`` target embeddings and
  multiplies them in one batched product (without dropout on the gathered tensor). ``"auto"`` picks by size.
* Linear maps of embedding lookups are computed on the (small) table and gathered; the sums of several gathered
  rows (relation, entity, recurrent term, bias) are one ``embedding_bag`` call.
* The LSTM's recurrent term ``W_hh h_{t-1}`` is computed once per *parent* prefix (e.g. once per query for the
  first step, shared by all its rollouts) and gathered, see :meth:`WalkerPolicy.advance`.
* Embedding dropout has two modes. ``"table"``: dropout is applied to the embedding *tables* once per forward pass
  (:meth:`WalkerPolicy.tables`), so every use of an entity within one batch shares a mask and the table tricks
  above apply. ``"per_use"`` (the reference code's behaviour): every gathered embedding gets its own mask. On the
  state side (LSTM input, ``e_t``, ``r_q``) the embeddings are gathered per walker and dropped exactly; on the
  action side the dropped-out score ``x . (m * v) / (1 - p)`` is replaced by its Gaussian stand-in
  ``x . v + sqrt(p / (1 - p) * (x^2) . (v^2)) * N(0, 1)`` (same mean and variance, the "local
  reparameterisation" of Kingma et al. 2015), which needs two more ``[W, 2d] x [2d, table]`` products instead of
  a ``[W, A, 2d]`` tensor. The first step, computed once per query, shares its noise among the query's rollouts.
  About 0.7x the training throughput of ``"table"`` on Kinship (docs/benchmarks.md). Feed-forward dropout is
  per walker in both modes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from kgreason.reasoning.masks import dropout
from kgreason.typing import BoolTensor, FloatTensor, LongTensor

EntityScoring = Literal["auto", "dense", "gather"]
EmbeddingDropoutMode = Literal["table", "per_use"]

__all__ = [
    "MASKED_LOGIT",
    "EntityScoring",
    "HistoryState",
    "PolicyTables",
    "WalkerPolicy",
    "gathered_dot",
    "load_policy",
    "masked_log_softmax",
    "save_policy",
]


@dataclass
class PolicyTables:
    """The (dropped-out) embedding tables of one forward pass.

    ``entity: FloatTensor[E, d_e]``, ``relation: FloatTensor[2R + 2, d_r]``; ``folded`` caches the tables with
    ``W2`` folded in (see :meth:`WalkerPolicy.scores`) once they are first needed in this pass.
    """

    entity: FloatTensor
    relation: FloatTensor
    folded: tuple[FloatTensor, FloatTensor, FloatTensor, FloatTensor] | None = None
    #: ``> 0``: the tables are the raw weights and every gathered embedding gets its own dropout mask at this
    #: rate (``embedding_dropout_mode="per_use"`` in training)
    use_dropout: float = 0.0


@dataclass
class HistoryState:
    """LSTM state of ``P`` path prefixes: per layer ``h[l], c[l]: FloatTensor[P, history_dim]``."""

    h: list[FloatTensor]
    c: list[FloatTensor]

    @property
    def top(self) -> FloatTensor:
        """``FloatTensor[P, history_dim]``: the last layer's hidden state (``h_t`` of eq. 3)."""
        return self.h[-1]

    def __len__(self) -> int:
        return int(self.h[0].shape[0])

    def index(self, rows: LongTensor) -> HistoryState:
        """The states of ``rows`` (``LongTensor[P']``)."""
        return HistoryState([x[rows] for x in self.h], [x[rows] for x in self.c])


#: finite stand-in for ``-inf`` logits of invalid actions in training: their probability is exactly 0 and
#: ``p * log p`` stays 0 (no NaN), so the entropy needs no extra masking
MASKED_LOGIT = -1e30


def masked_log_softmax(logits: FloatTensor, mask: BoolTensor, fill: float = float("-inf")) -> FloatTensor:
    """``log softmax`` over the ``True`` entries of ``mask`` (``[n, A]``); masked entries get ``fill`` first
    (``-inf``: their log-probability is ``-inf``; :data:`MASKED_LOGIT`: a finite, hugely negative value).

    Every row must have at least one ``True`` entry (``NO_OP`` guarantees it).
    """
    return torch.log_softmax(logits.masked_fill(~mask, fill), dim=-1)


#: entries of the ``[rows, A, d]`` block gathered at once by :func:`gathered_dot` (16 MB of float32)
GATHER_CHUNK_ELEMENTS = 2**22


class _GatheredDot(torch.autograd.Function):
    """``out[w, a] = x[w] . table[index[w, a]]`` without keeping a ``[W, A, d]`` tensor (chunked over rows)."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, table, index)  # type: ignore[attr-defined]
        rows = _chunk_rows(index.shape[1], table.shape[1])
        parts = [
            torch.bmm(F.embedding(i, table), xc.unsqueeze(-1)).squeeze(-1)
            for xc, i in zip(x.split(rows), index.split(rows))
        ]
        return torch.cat(parts) if parts else x.new_zeros(index.shape)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x, table, index = ctx.saved_tensors  # type: ignore[attr-defined]
        grad_x = grad_table = None
        needs = ctx.needs_input_grad  # type: ignore[attr-defined]
        if needs[0]:  # sum_a grad[w, a] table[index[w, a]]: one fused embedding bag
            grad_x = F.embedding_bag(index, table, per_sample_weights=grad.to(table.dtype), mode="sum")
        if needs[1]:  # scatter grad[w, a] x[w] into the rows index[w, a], chunk by chunk
            grad_table = torch.zeros_like(table)
            rows = _chunk_rows(index.shape[1], table.shape[1])
            for xc, i, g in zip(x.split(rows), index.split(rows), grad.split(rows)):
                grad_table.index_add_(
                    0, i.reshape(-1), (g.unsqueeze(-1) * xc.unsqueeze(1)).reshape(-1, x.shape[1])
                )
        return grad_x, grad_table, None


def _chunk_rows(num_actions: int, dim: int) -> int:
    return max(1, GATHER_CHUNK_ELEMENTS // max(1, num_actions * dim))


def gathered_dot(x: FloatTensor, table: FloatTensor, index: LongTensor) -> FloatTensor:
    """``out[w, a] = x[w] . table[index[w, a]]`` -> ``FloatTensor[W, A]``, for tables too large to score densely.

    ``x: FloatTensor[W, d]``, ``table: FloatTensor[N, d]``, ``index: LongTensor[W, A]``. Memory stays at one
    chunk of ``[rows, A, d]`` (:data:`GATHER_CHUNK_ELEMENTS`) in the forward and backward passes; the gradient of
    ``x`` is one fused ``embedding_bag``.
    """
    return _GatheredDot.apply(x, table, index)  # type: ignore[no-any-return]


class WalkerPolicy(nn.Module):
    """Policy network ``pi_theta(a_t | s_t)`` of the multi-hop walker.

    Args:
        num_entities: ``E``.
        num_relations: ``R`` base relations (the walker uses ``2R`` edge relations, ``NO_OP`` and ``START``).
        embedding_dim: entity and relation embedding size ``d`` (200 in the paper).
        history_dim: LSTM hidden size (200).
        history_layers: LSTM layers (3).
        embedding_dropout: dropout rate on the embeddings.
        ff_dropout: dropout after each feed-forward layer of the policy MLP.
        entity_scoring: how the entity half of action scores is computed (see the module docstring).
        embedding_dropout_mode: ``"table"`` (one mask per forward pass) or ``"per_use"`` (one per gathered
            embedding); see the module docstring.
    """

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        embedding_dim: int = 200,
        history_dim: int = 200,
        history_layers: int = 3,
        embedding_dropout: float = 0.0,
        ff_dropout: float = 0.0,
        entity_scoring: EntityScoring = "auto",
        embedding_dropout_mode: EmbeddingDropoutMode = "table",
    ) -> None:
        super().__init__()
        if history_layers < 1:
            raise ValueError(f"history_layers must be >= 1, got {history_layers}")
        if embedding_dropout_mode not in ("table", "per_use"):
            raise ValueError(
                f"embedding_dropout_mode must be 'table' or 'per_use', got {embedding_dropout_mode!r}"
            )
        if entity_scoring not in ("auto", "dense", "gather"):
            raise ValueError(f"entity_scoring must be 'auto', 'dense' or 'gather', got {entity_scoring!r}")
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.embedding_dim = embedding_dim
        self.history_dim = history_dim
        self.history_layers = history_layers
        self.entity_scoring: EntityScoring = entity_scoring
        self.embedding_dropout_mode: EmbeddingDropoutMode = embedding_dropout_mode
        self.no_op = 2 * num_relations
        self.start_relation = 2 * num_relations + 1
        d, H = embedding_dim, history_dim
        self.entity_embedding = nn.Embedding(num_entities, d)
        self.relation_embedding = nn.Embedding(2 * num_relations + 2, d)
        # LSTM stack; gate order (input, forget, output, cell) so the three sigmoid gates are contiguous
        self.lstm_ih = nn.ParameterList(
            [nn.Parameter(torch.empty(4 * H, 2 * d if layer == 0 else H)) for layer in range(history_layers)]
        )
        self.lstm_hh = nn.ParameterList([nn.Parameter(torch.empty(4 * H, H)) for _ in range(history_layers)])
        self.lstm_bias = nn.ParameterList([nn.Parameter(torch.empty(4 * H)) for _ in range(history_layers)])
        self.w1 = nn.Linear(d + H + d, 2 * d)
        self.w2 = nn.Linear(2 * d, 2 * d)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.ff_dropout = nn.Dropout(ff_dropout)
        self.reset_parameters()

    # ---- configuration ------------------------------------------------------------------------------------

    def config(self) -> dict[str, object]:
        """Constructor keyword arguments (JSON-ready), for saving and rebuilding the policy."""
        return {
            "num_entities": self.num_entities,
            "num_relations": self.num_relations,
            "embedding_dim": self.embedding_dim,
            "history_dim": self.history_dim,
            "history_layers": self.history_layers,
            "embedding_dropout": float(self.embedding_dropout.p),
            "ff_dropout": float(self.ff_dropout.p),
            "entity_scoring": self.entity_scoring,
            "embedding_dropout_mode": self.embedding_dropout_mode,
        }

    def reset_parameters(self) -> None:
        """Xavier-uniform init of embeddings, LSTM and MLP weights; zero biases."""
        nn.init.xavier_uniform_(self.entity_embedding.weight)
        nn.init.xavier_uniform_(self.relation_embedding.weight)
        for w in [*self.lstm_ih, *self.lstm_hh]:
            for gate in w.data.chunk(4, dim=0):
                nn.init.xavier_uniform_(gate)
        for b in self.lstm_bias:
            nn.init.zeros_(b)
        for lin in (self.w1, self.w2):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    # ---- pieces of a forward pass -------------------------------------------------------------------------

    def tables(self) -> PolicyTables:
        """The embedding tables of one forward pass: with dropout applied to the tables (one mask per pass) in
        ``"table"`` mode; the raw tables, with dropout per gathered embedding later, in ``"per_use"`` mode."""
        p = float(self.embedding_dropout.p)
        if self.embedding_dropout_mode == "per_use" and self.training and p > 0.0:
            return PolicyTables(self.entity_embedding.weight, self.relation_embedding.weight, use_dropout=p)
        return PolicyTables(
            self.embedding_dropout(self.entity_embedding.weight),
            self.embedding_dropout(self.relation_embedding.weight),
        )

    def _lstm(
        self,
        tables: PolicyTables,
        prev: HistoryState | None,
        parent: LongTensor | None,
        relations: LongTensor,
        entities: LongTensor,
    ) -> HistoryState:
        d = self.embedding_dim
        n = relations.shape[0]
        if prev is not None and parent is None:
            parent = torch.arange(n, device=relations.device)
        w0 = self.lstm_ih[0]
        if tables.use_dropout > 0.0:  # per-use dropout: gather, drop, project per walker
            inputs = torch.cat(
                [F.embedding(relations, tables.relation), F.embedding(entities, tables.entity)], 1
            )
            gates = torch.addmm(self.lstm_bias[0], dropout(inputs, tables.use_dropout), w0.t())
            if prev is not None:
                assert parent is not None
                gates = gates + F.embedding(parent, prev.h[0] @ self.lstm_hh[0].t())
            return self._lstm_layers(prev, parent, gates)
        # layer 0: W_ih [R(r); E(e)] + b + W_hh h_prev as ONE embedding bag over the projected tables
        parts = [tables.relation @ w0[:, :d].t() + self.lstm_bias[0]]
        index = [relations]
        offset = parts[0].shape[0]
        entity_table = entities.numel() >= tables.entity.shape[0]
        if entity_table:
            parts.append(tables.entity @ w0[:, d:].t())
            index.append(entities + offset)
            offset += tables.entity.shape[0]
        if prev is not None:
            assert parent is not None
            parts.append(prev.h[0] @ self.lstm_hh[0].t())  # once per parent prefix
            index.append(parent + offset)
        gates = F.embedding_bag(torch.stack(index, dim=1), torch.cat(parts), mode="sum")
        if not entity_table:
            gates = torch.addmm(gates, F.embedding(entities, tables.entity), w0[:, d:].t())
        return self._lstm_layers(prev, parent, gates)

    def _lstm_layers(
        self, prev: HistoryState | None, parent: LongTensor | None, gates: FloatTensor
    ) -> HistoryState:
        """The LSTM cells of every layer, given layer 0's gate pre-activations ``gates: FloatTensor[n, 4H]``."""
        H = self.history_dim
        n = gates.shape[0]
        hs: list[FloatTensor] = []
        cs: list[FloatTensor] = []
        for layer in range(self.history_layers):
            if layer > 0:
                bias = self.lstm_bias[layer]
                if prev is not None:
                    assert parent is not None
                    base = F.embedding(parent, torch.addmm(bias, prev.h[layer], self.lstm_hh[layer].t()))
                else:
                    base = bias.expand(n, 4 * H)
                gates = torch.addmm(base, hs[-1], self.lstm_ih[layer].t())
            ifo, g = gates.split(
                [3 * H, H], dim=1
            )  # split (not slicing): its backward is a cat, no zero-fill
            i, f, o = torch.sigmoid(ifo).split(H, dim=1)
            c = i * torch.tanh(g)
            if prev is not None:
                assert parent is not None
                c = torch.addcmul(c, f, F.embedding(parent, prev.c[layer]))
            hs.append(o * torch.tanh(c))
            cs.append(c)
        return HistoryState(hs, cs)

    def start_history(self, tables: PolicyTables, sources: LongTensor) -> HistoryState:
        """``h_0 = LSTM(0, [r_0; e_s])`` for ``sources: LongTensor[B]`` -> state of ``B`` prefixes."""
        start = torch.full_like(sources, self.start_relation)
        return self._lstm(tables, None, None, start, sources)

    def advance(
        self,
        tables: PolicyTables,
        history: HistoryState,
        parent: LongTensor | None,
        relations: LongTensor,
        entities: LongTensor,
    ) -> HistoryState:
        """One LSTM step after taking actions ``(relations[W], entities[W])``.

        ``history`` holds ``P`` prefixes; walker ``w`` extends prefix ``parent[w]`` (``None``: ``parent = arange``).
        The recurrent products are computed on the ``P`` prefixes, not on the ``W`` walkers.
        """
        return self._lstm(tables, history, parent, relations, entities)

    def hidden(
        self, tables: PolicyTables, history_top: FloatTensor, current: LongTensor, query_relations: LongTensor
    ) -> FloatTensor:
        """``z = ReLU(W1 [e_t; h_t; r_q])`` (with FF dropout) -> ``FloatTensor[W, 2d]``."""
        d, H = self.embedding_dim, self.history_dim
        w = self.w1.weight
        if tables.use_dropout > 0.0:  # per-use dropout of e_t and r_q
            e_t = dropout(F.embedding(current, tables.entity), tables.use_dropout)
            r_q = dropout(F.embedding(query_relations, tables.relation), tables.use_dropout)
            z = torch.addmm(torch.addmm(self.w1.bias, e_t, w[:, :d].t()), r_q, w[:, d + H :].t())
            z = torch.addmm(z, history_top, w[:, d : d + H].t())
            return dropout(torch.relu(z), self.ff_dropout.p, self.training)
        parts = [tables.relation @ w[:, d + H :].t() + self.w1.bias]
        index = [query_relations]
        if current.numel() >= tables.entity.shape[0]:
            parts.append(tables.entity @ w[:, :d].t())
            index.append(current + parts[0].shape[0])
            z = F.embedding_bag(torch.stack(index, dim=1), torch.cat(parts), mode="sum")
        else:
            z = F.embedding(query_relations, parts[0]) + F.embedding(current, tables.entity) @ w[:, :d].t()
        z = torch.addmm(z, history_top, w[:, d : d + H].t())
        return dropout(torch.relu(z), self.ff_dropout.p, self.training)

    def policy_vector(
        self, tables: PolicyTables, history_top: FloatTensor, current: LongTensor, query_relations: LongTensor
    ) -> FloatTensor:
        """``x = W2 ReLU(W1 [e_t; h_t; r_q])`` -> ``FloatTensor[W, 2d]`` (relation half first, then entity half).

        ``history_top: FloatTensor[W, history_dim]``, ``current, query_relations: LongTensor[W]``.
        """
        z = self.hidden(tables, history_top, current, query_relations)
        return dropout(self.w2(z), self.ff_dropout.p, self.training)

    def scores(
        self,
        tables: PolicyTables,
        history_top: FloatTensor,
        current: LongTensor,
        query_relations: LongTensor,
        action_relations: LongTensor,
        action_targets: LongTensor,
    ) -> FloatTensor:
        """Logits of every action ``A_t W2 ReLU(W1 [e_t; h_t; r_q])`` -> ``FloatTensor[W, A]`` (eq. 4).

        The entry point of rollouts and beam search. When no dropout follows ``W2`` (eval mode, or
        ``ff_dropout = 0``) and entities are scored densely, ``W2`` is folded into the tables:
        ``x_r . R(r) = z . (W2_r^T R(r)) + b2_r . R(r)``, so one ``[W, 2d] x [2d, 2R+2+E]`` product replaces
        ``W2`` and the two score products. Otherwise :meth:`policy_vector` then :meth:`action_logits`.
        """
        z = self.hidden(tables, history_top, current, query_relations)
        no_noise = tables.use_dropout == 0.0 and (not self.training or self.ff_dropout.p == 0.0)
        if self._dense_entities(action_targets.shape[1]) and no_noise:
            if tables.folded is None:
                d = self.embedding_dim
                w2, b2 = self.w2.weight, self.w2.bias
                tables.folded = (
                    tables.relation @ w2[:d],
                    tables.relation @ b2[:d],
                    tables.entity @ w2[d:],
                    tables.entity @ b2[d:],
                )
            rel_w, rel_b, ent_w, ent_b = tables.folded
            return torch.gather(torch.addmm(rel_b, z, rel_w.t()), 1, action_relations) + torch.gather(
                torch.addmm(ent_b, z, ent_w.t()), 1, action_targets
            )
        x = dropout(self.w2(z), self.ff_dropout.p, self.training)
        return self.action_logits(tables, x, action_relations, action_targets)

    def action_logits(
        self,
        tables: PolicyTables,
        x: FloatTensor,
        action_relations: LongTensor,
        action_targets: LongTensor,
    ) -> FloatTensor:
        """Unnormalised scores ``x . [R(r); E(e)]`` of every action -> ``FloatTensor[W, A]``.

        ``x: FloatTensor[W, 2d]`` (from :meth:`policy_vector`), ``action_relations, action_targets:
        LongTensor[W, A]``. Computed as ``gather(x_r @ R^T) + gather(x_e @ E^T)`` (dense) or with a batched product
        over the gathered target embeddings (gather); never materialises ``[W, A, 2d]``.
        """
        d = self.embedding_dim
        scores = self._pair_scores(
            x[:, :d], x[:, d:], tables.relation, tables.entity, action_relations, action_targets
        )
        if tables.use_dropout == 0.0:
            return scores
        # per-use dropout of the action embeddings, by its Gaussian approximation (the "local reparameterisation"
        # of Kingma et al. 2015): a dropped-out dot product x . (m * v) / (1 - p) has mean x . v and variance
        # p / (1 - p) * (x^2) . (v^2), which needs no [walkers, actions, d] tensor
        p = tables.use_dropout
        x2 = x * x
        variance = self._pair_scores(
            x2[:, :d],
            x2[:, d:],
            tables.relation.square(),
            tables.entity.square(),
            action_relations,
            action_targets,
        )
        noise = torch.randn_like(scores)
        return scores + noise * torch.sqrt(variance * (p / (1.0 - p)) + 1e-12)

    def _pair_scores(
        self,
        x_r: FloatTensor,
        x_e: FloatTensor,
        relation: FloatTensor,
        entity: FloatTensor,
        action_relations: LongTensor,
        action_targets: LongTensor,
    ) -> FloatTensor:
        """``x_r . relation[action_relations] + x_e . entity[action_targets]`` -> ``FloatTensor[W, A]``."""
        scores = torch.gather(x_r @ relation.t(), 1, action_relations)
        if self._dense_entities(action_targets.shape[1]):
            return scores + torch.gather(x_e @ entity.t(), 1, action_targets)
        return scores + gathered_dot(x_e, entity, action_targets)

    def _dense_entities(self, num_actions: int) -> bool:
        if self.entity_scoring == "dense":
            return True
        if self.entity_scoring == "gather":
            return False
        return self.num_entities <= 8 * num_actions

    def log_probs(
        self,
        tables: PolicyTables,
        history_top: FloatTensor,
        current: LongTensor,
        query_relations: LongTensor,
        action_relations: LongTensor,
        action_targets: LongTensor,
        action_mask: BoolTensor,
    ) -> FloatTensor:
        """``log pi(a | s)`` of every action -> ``FloatTensor[W, A]`` (``-inf`` at invalid actions)."""
        logits = self.scores(tables, history_top, current, query_relations, action_relations, action_targets)
        return masked_log_softmax(logits, action_mask)


POLICY_STATE_FILE = "model.pt"
POLICY_CONFIG_FILE = "model.json"
POLICY_FORMAT = "kgreason.walker_policy/1"


def save_policy(policy: WalkerPolicy, directory: str | os.PathLike[str]) -> Path:
    """Write ``model.pt`` (state dict) and ``model.json`` (class and constructor kwargs), each atomically."""
    from kgreason.io import atomic_torch_save, write_json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(policy.state_dict(), directory / POLICY_STATE_FILE)
    write_json(
        directory / POLICY_CONFIG_FILE,
        {"format": POLICY_FORMAT, "class": type(policy).__name__, "kwargs": policy.config()},
    )
    return directory


def load_policy(
    directory: str | os.PathLike[str], map_location: str | torch.device | None = None
) -> WalkerPolicy:
    """Rebuild the policy saved by :func:`save_policy` (in eval mode)."""
    from kgreason.io import read_json

    directory = Path(directory)
    cfg_path, state_path = directory / POLICY_CONFIG_FILE, directory / POLICY_STATE_FILE
    for path in (cfg_path, state_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found (not a walker run directory?)")
    meta = read_json(cfg_path)
    if not isinstance(meta, dict) or meta.get("format") != POLICY_FORMAT:
        raise ValueError(f"{cfg_path}: not a walker policy (expected format {POLICY_FORMAT!r})")
    policy = WalkerPolicy(**meta["kwargs"])
    policy.load_state_dict(torch.load(state_path, map_location=map_location, weights_only=True))
    if map_location is not None:
        policy.to(map_location)
    return policy.eval()
