"""The fact-extraction agent of CPL (Fu et al. 2019, §3.2 and §4.1): suggests corpus edges out of an entity.

State ``s = (b_{e_t}, e_t)``: the current entity and every sentence bag of a pair ``(e_t, e')`` (and, with
``inverse=True``, of ``(e', e_t)``, read as the inverse edge ``(e_t, r + R, e')``). Actions: the candidate edges
``(r, e')`` of those bags, "no relation" excluded, and edges already in the graph (``known_triples``) excluded.
Policy::

    pi(a | s) = softmax_a(A_E W E_b)

with ``E_b`` the PCNN-ATT bag encoding (per-relation selective attention) and ``A_E`` the stacked relation
embeddings of the candidate actions. The encoder's classifier computes exactly this bilinear form
(``logits[b, r] = M_r . s_r + c_r``; a separate ``W`` would fold into ``M``), so the policy logit of action
``(r, e')`` is the pre-trained extraction logit of relation ``r`` for bag ``(e_t, e')``, normalised over all
candidate actions of ``e_t``.

Everything is batched: :meth:`FactExtractor.suggest` scores all bags of all queried entities at once, from a
cache of bag scores that is valid while the encoder's parameters are unchanged (their in-place version
counters, bumped by every optimiser step and ``load_state_dict``; fused optimisers do not bump them, call
:meth:`FactExtractor.invalidate_cache` after their steps). :meth:`FactExtractor.log_prob` recomputes the chosen
actions' log-probabilities with gradients for REINFORCE; with the step-wise reward of CPL and ``gamma = 0`` the
return of a step is its own reward (:func:`reinforce_loss`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from kgreason.open.distant_supervision import BagDataset
from kgreason.open.encoder import PCNNAttention, predict_bags
from kgreason.typing import BoolTensor, FloatTensor, LongTensor

__all__ = ["FactExtractor", "Suggestions", "SupportingSentence", "reinforce_loss"]


class Suggestions(NamedTuple):
    """Edges suggested out of a batch of entities; every tensor is ``[b, k]``, ``mask`` marks real suggestions.

    ``relations``: relation ids (``r`` for ``(e, r, e')`` from a bag ``(e, e')``, ``r + R`` for the inverse edge
    from a bag ``(e', e)``); ``targets``: ``e'``; ``scores``: the extractor's confidence ``p(r | bag)`` (softmax over
    the ``R + 1`` classes under relation ``r``'s attention); ``bags``: the supporting bag (``-1`` where masked; see
    :meth:`FactExtractor.supporting_sentences`); ``log_probs``: ``log pi(a | s)`` under the policy (``-inf`` where
    masked). Masked slots hold relation 0, target 0, score 0.
    """

    relations: LongTensor
    targets: LongTensor
    scores: FloatTensor
    mask: BoolTensor
    bags: LongTensor
    log_probs: FloatTensor


@dataclass(frozen=True)
class SupportingSentence:
    """A corpus sentence supporting an extracted edge: its id, text and attention weight in its bag."""

    sentence_id: int
    text: str
    weight: float


def reinforce_loss(
    log_probs: FloatTensor, rewards: FloatTensor, mask: BoolTensor | None = None
) -> torch.Tensor:
    """REINFORCE loss of the extractor with a step-wise reward and ``gamma = 0``: ``-mean(r_t log pi(a_t|s_t))``.

    ``log_probs``, ``rewards``: same shape (e.g. ``[b, k]`` from :meth:`FactExtractor.log_prob`); ``mask``
    selects the real actions (default: finite log-probabilities). Zero-reward steps add nothing to the gradient,
    as CPL intends (§3.3); the mean is over the selected steps.
    """
    valid = torch.isfinite(log_probs)
    if mask is not None:
        valid = valid & mask
    terms = torch.where(valid, rewards.to(log_probs.dtype) * log_probs, torch.zeros_like(log_probs))
    return -terms.sum() / valid.sum().clamp(min=1)


class FactExtractor(nn.Module):
    """The extraction agent over a corpus of sentence bags.

    Args:
        encoder: a (pre-trained) :class:`~kgreason.open.encoder.PCNNAttention`; its parameters are this module's.
        bags: every bag of the corpus (:func:`~kgreason.open.distant_supervision.build_bag_dataset`).
        num_entities: ``E`` of the KG.
        inverse: also suggest inverse edges ``(e, r + R, e')`` from bags ``(e', e)`` (the reasoning graph has
            inverse edges, so a walker can use both).
        known_triples: ``LongTensor[n, 3]`` edges already in the graph (base relations; with ``inverse`` their
            inverses too) -- never suggested (CPL extracts ``(e_t, r', e') not in G``).
        max_sentences: sentences encoded per forward pass when filling the cache.
    """

    # index buffers (moved by ``.to(device)``; not saved in the state dict)
    _known: torch.Tensor  # sorted keys of known edges
    _ptr: torch.Tensor  # [E + 1] CSR over incidence entries, by source entity
    _inc_bag: torch.Tensor  # [nnz] bag of each entry
    _inc_other: torch.Tensor  # [nnz] the other entity
    _inc_dir: torch.Tensor  # [nnz] 0: the entity is the bag's head, 1: its tail (inverse edge)
    _inc_allowed: torch.Tensor  # [nnz, R] relation not already a known edge
    _pair_keys: torch.Tensor  # sorted head * E + tail of the bags
    _pair_bag: torch.Tensor  # bag id of each sorted key

    def __init__(
        self,
        encoder: PCNNAttention,
        bags: BagDataset,
        num_entities: int,
        inverse: bool = True,
        known_triples: LongTensor | None = None,
        max_sentences: int = 4096,
    ) -> None:
        super().__init__()
        if bags.num_classes != encoder.num_classes:
            raise ValueError(f"encoder has {encoder.num_classes} classes, bags have {bags.num_classes}")
        if len(bags) and int(bags.pairs.max()) >= num_entities:
            raise ValueError(f"bags mention entity id {int(bags.pairs.max())} >= num_entities={num_entities}")
        self.encoder = encoder
        self.bags = bags
        self.num_entities = num_entities
        self.num_relations = bags.num_relations
        self.inverse = inverse
        self.max_sentences = max_sentences
        num_rel, num_ent = self.num_relations, num_entities
        num_rel_total = 2 * num_rel if inverse else num_rel

        pairs = bags.pairs.cpu()
        bag_ids = torch.arange(len(bags))
        src, other, direction = pairs[:, 0], pairs[:, 1], torch.zeros(len(bags), dtype=torch.long)
        if inverse:
            src = torch.cat([src, pairs[:, 1]])
            other = torch.cat([other, pairs[:, 0]])
            direction = torch.cat([direction, torch.ones(len(bags), dtype=torch.long)])
            bag_ids = torch.cat([bag_ids, bag_ids])
        keep = src != other
        src, other, direction, bag_ids = src[keep], other[keep], direction[keep], bag_ids[keep]
        order = torch.argsort(src, stable=True)
        ptr = torch.zeros(num_ent + 1, dtype=torch.long)
        ptr[1:] = torch.cumsum(torch.bincount(src, minlength=num_ent), 0)

        # known edges as sorted keys (h * R' + r) * E + t
        if known_triples is not None and len(known_triples):
            kt = known_triples.cpu().long()
            if inverse:
                kt = torch.cat([kt, torch.stack([kt[:, 2], kt[:, 1] + num_rel, kt[:, 0]], 1)])
            known = torch.unique((kt[:, 0] * num_rel_total + kt[:, 1]) * num_ent + kt[:, 2])
        else:
            known = torch.zeros(0, dtype=torch.long)
        self.register_buffer("_known", known, persistent=False)
        inc_src, inc_other, inc_dir = src[order], other[order], direction[order]
        rel = torch.arange(num_rel).unsqueeze(0) + inc_dir.unsqueeze(1) * num_rel  # [nnz, R]
        allowed = ~self._is_known(inc_src.unsqueeze(1), rel, inc_other.unsqueeze(1))
        self.register_buffer("_ptr", ptr, persistent=False)
        self.register_buffer("_inc_bag", bag_ids[order], persistent=False)
        self.register_buffer("_inc_other", inc_other, persistent=False)
        self.register_buffer("_inc_dir", inc_dir, persistent=False)
        self.register_buffer("_inc_allowed", allowed, persistent=False)
        pair_keys = pairs[:, 0] * num_ent + pairs[:, 1]
        pair_order = torch.argsort(pair_keys)
        self.register_buffer("_pair_keys", pair_keys[pair_order], persistent=False)
        self.register_buffer("_pair_bag", pair_order, persistent=False)
        self._cache_logits: FloatTensor | None = None
        self._cache_probs: FloatTensor | None = None
        self._cache_valid: BoolTensor | None = None
        self._cache_key: tuple[object, ...] | None = None
        self._manual_version = 0
        #: bags encoded since construction (cache misses); for monitoring and tests
        self.num_encoded_bags = 0
        param = next(encoder.parameters(), None)
        if param is not None:
            self.to(param.device)  # index buffers follow the encoder; move both later with ``.to(device)``

    # ---- plumbing -------------------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self._ptr.device

    @property
    def num_actions_relations(self) -> int:
        """Relation ids a suggestion can carry: ``2R`` with ``inverse``, else ``R``."""
        return 2 * self.num_relations if self.inverse else self.num_relations

    def _sync_bags(self) -> None:
        if self.bags.device != self.device:
            self.bags = self.bags.to(self.device)

    def _is_known(self, heads: LongTensor, relations: LongTensor, tails: LongTensor) -> BoolTensor:
        """Whether each (broadcast) edge is in ``known_triples`` (or their inverses)."""
        keys = (heads * self.num_actions_relations + relations) * self.num_entities + tails
        if self._known.numel() == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        pos = torch.searchsorted(self._known, keys.reshape(-1)).clamp(max=self._known.numel() - 1)
        return (self._known[pos] == keys.reshape(-1)).reshape(keys.shape)

    def _entries(self, entities: LongTensor) -> tuple[LongTensor, BoolTensor]:
        """Incidence entries of ``entities`` (``LongTensor[U]``): ``(LongTensor[U, D], BoolTensor[U, D])``."""
        start = self._ptr[entities]
        deg = self._ptr[entities + 1] - start
        width = int(deg.max()) if entities.numel() else 0
        offs = torch.arange(width, device=self.device)
        valid = offs.unsqueeze(0) < deg.unsqueeze(1)
        entry = torch.where(
            valid, start.unsqueeze(1) + offs.unsqueeze(0), torch.zeros_like(valid, dtype=torch.long)
        )
        return entry, valid

    def bag_of(self, heads: LongTensor, tails: LongTensor) -> LongTensor:
        """Bag id of each ordered pair ``(heads[i], tails[i])``, ``-1`` where the corpus has none (any shape)."""
        keys = heads.to(self.device) * self.num_entities + tails.to(self.device)
        if self._pair_keys.numel() == 0:
            return torch.full_like(keys, -1)
        pos = torch.searchsorted(self._pair_keys, keys.reshape(-1)).clamp(max=self._pair_keys.numel() - 1)
        found = self._pair_keys[pos] == keys.reshape(-1)
        return torch.where(found, self._pair_bag[pos], torch.full_like(pos, -1)).reshape(keys.shape)

    def edge_bags(
        self, entities: LongTensor, relations: LongTensor, targets: LongTensor
    ) -> tuple[LongTensor, LongTensor]:
        """For edges ``(entities, relations, targets)`` (broadcastable), the supporting bag (``-1`` if none) and
        the base relation (``relations mod R``), e.g. to explain a suggested edge."""
        entities, relations, targets = (x.to(self.device).long() for x in (entities, relations, targets))
        entities, relations, targets = torch.broadcast_tensors(entities, relations, targets)
        is_inv = relations >= self.num_relations
        heads = torch.where(is_inv, targets, entities)
        tails = torch.where(is_inv, entities, targets)
        bag = self.bag_of(heads, tails)
        bad = (relations < 0) | (relations >= self.num_actions_relations)
        return torch.where(bad, torch.full_like(bag, -1), bag), relations % max(self.num_relations, 1)

    # ---- cached bag scores ----------------------------------------------------------------------------------

    def _parameter_key(self) -> tuple[object, ...]:
        params = tuple((p.data_ptr(), p._version) for p in self.encoder.parameters())
        return (self.device, self._manual_version, params)

    def invalidate_cache(self) -> None:
        """Forget every cached bag score (needed only after updates that bypass version counters)."""
        self._manual_version += 1

    @torch.no_grad()
    def bag_scores(self, bag_ids: LongTensor) -> tuple[FloatTensor, FloatTensor]:
        """Cached per-relation ``(logits, probs)``, ``FloatTensor[..., R + 1]`` each, of ``bag_ids`` (any shape,
        no ``-1``); bags not cached for the current parameters are encoded in batches (eval mode)."""
        self._sync_bags()
        key = self._parameter_key()
        if self._cache_key != key or self._cache_logits is None:
            n, c = len(self.bags), self.bags.num_classes
            self._cache_logits = torch.zeros(n, c, device=self.device)
            self._cache_probs = torch.zeros(n, c, device=self.device)
            self._cache_valid = torch.zeros(n, dtype=torch.bool, device=self.device)
            self._cache_key = key
        assert self._cache_probs is not None and self._cache_valid is not None
        flat = bag_ids.reshape(-1).to(self.device)
        missing = torch.unique(flat[~self._cache_valid[flat]])
        if missing.numel():
            logits, probs = predict_bags(self.encoder, self.bags, missing, self.max_sentences, self.device)
            self._cache_logits[missing] = logits
            self._cache_probs[missing] = probs
            self._cache_valid[missing] = True
            self.num_encoded_bags += int(missing.numel())
        shape = (*bag_ids.shape, self.bags.num_classes)
        return self._cache_logits[flat].reshape(shape), self._cache_probs[flat].reshape(shape)

    # ---- the policy -----------------------------------------------------------------------------------------

    def _action_table(
        self, entities: LongTensor, logits_of: FloatTensor | None = None, local: LongTensor | None = None
    ) -> tuple[LongTensor, BoolTensor, FloatTensor, FloatTensor | None]:
        """Entries ``[U, D]``, allowed ``[U, D, R]``, logits ``[U, D, R]`` and (cached) probs of ``entities``."""
        entry, valid = self._entries(entities)
        bag = self._inc_bag[entry]
        allowed = self._inc_allowed[entry] & valid.unsqueeze(-1)
        if logits_of is None:
            self.bag_scores(bag[valid])  # fills the cache for these bags
            assert self._cache_logits is not None and self._cache_probs is not None
            logits, probs = self._cache_logits[bag], self._cache_probs[bag]
            return entry, allowed, logits[..., : self.num_relations], probs[..., : self.num_relations]
        assert local is not None
        rows = local[torch.where(valid, bag, torch.zeros_like(bag))].clamp(min=0)
        return entry, allowed, logits_of[rows][..., : self.num_relations], None

    @torch.no_grad()
    def suggest(
        self,
        entities: LongTensor,
        k: int = 5,
        threshold: float | None = None,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> Suggestions:
        """Top-``k`` corpus edges out of each entity (one batched pass over all their bags).

        Args:
            entities: ``LongTensor[b]`` current entities (duplicates allowed).
            k: suggestions per entity (fewer real ones where an entity has fewer candidates: see ``mask``).
            threshold: keep only edges with confidence ``p(r | bag) >= threshold``.
            sample: draw ``k`` actions without replacement from ``pi(a | s)`` (Gumbel top-k, one independent draw
                per row, with ``generator``, which must live on :attr:`device`) instead of the ``k`` most
                probable.

        Returns:
            :class:`Suggestions` of ``[b, k]`` tensors, best (or first drawn) first; ties keep bag order.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        entities = entities.to(self.device).long().reshape(-1)
        b, num_rel = entities.numel(), self.num_relations
        uniq, inv = torch.unique(entities, return_inverse=True)
        entry, allowed, logits, probs = self._action_table(uniq)
        assert probs is not None
        u, width = entry.shape
        if width == 0 or num_rel == 0:
            return self._empty(b, k)
        flat_allowed = allowed.reshape(u, width * num_rel)
        flat_logits = logits.reshape(u, width * num_rel).masked_fill(~flat_allowed, -math.inf)
        log_probs = torch.log_softmax(flat_logits, dim=1)
        log_probs = torch.where(flat_allowed, log_probs, torch.full_like(log_probs, -math.inf))
        selectable = flat_allowed
        if threshold is not None:
            selectable = selectable & (probs.reshape(u, width * num_rel) >= threshold)
        rows = inv if sample else torch.arange(u, device=self.device)
        key = (log_probs if sample else flat_logits)[rows]
        if sample:
            uniform = torch.rand(key.shape, device=self.device, generator=generator)
            key = key - torch.log(-torch.log(uniform.clamp(min=1e-20)))
        key = key.masked_fill(~selectable[rows], -math.inf)
        if (
            sample
        ):  # Gumbel keys have no ties (almost surely): a top-k is enough, and much cheaper than a sort
            top = torch.topk(key, min(k, key.shape[1]), dim=1).indices  # [rows, k']
        else:
            top = torch.sort(key, dim=1, descending=True, stable=True).indices[:, :k]  # [rows, k']
        mask = torch.gather(selectable[rows], 1, top)
        slot, rel = torch.div(top, num_rel, rounding_mode="floor"), top % num_rel
        ent = torch.gather(entry[rows], 1, slot)
        out = Suggestions(
            relations=rel + self._inc_dir[ent] * num_rel,
            targets=self._inc_other[ent],
            scores=torch.gather(probs.reshape(u, -1)[rows], 1, top),
            mask=mask,
            bags=self._inc_bag[ent],
            log_probs=torch.gather(log_probs[rows], 1, top),
        )
        if not sample:
            out = Suggestions(*(x[inv] for x in out))
        out = Suggestions(
            relations=out.relations.masked_fill(~out.mask, 0),
            targets=out.targets.masked_fill(~out.mask, 0),
            scores=out.scores.masked_fill(~out.mask, 0.0),
            mask=out.mask,
            bags=out.bags.masked_fill(~out.mask, -1),
            log_probs=out.log_probs.masked_fill(~out.mask, -math.inf),
        )
        if out.mask.shape[1] < k:  # fewer candidate actions than k
            out = Suggestions(*(self._pad(x, k, name) for x, name in zip(out, Suggestions._fields)))
        return out

    def _pad(self, x: torch.Tensor, k: int, name: str) -> torch.Tensor:
        fill = {"mask": False, "bags": -1, "log_probs": -math.inf}.get(name, 0)
        pad = torch.full((x.shape[0], k - x.shape[1]), fill, dtype=x.dtype, device=x.device)
        return torch.cat([x, pad], dim=1)

    def _empty(self, b: int, k: int) -> Suggestions:
        zeros = torch.zeros(b, k, dtype=torch.long, device=self.device)
        return Suggestions(
            relations=zeros,
            targets=zeros.clone(),
            scores=torch.zeros(b, k, device=self.device),
            mask=torch.zeros(b, k, dtype=torch.bool, device=self.device),
            bags=torch.full((b, k), -1, dtype=torch.long, device=self.device),
            log_probs=torch.full((b, k), -math.inf, device=self.device),
        )

    def log_prob(
        self,
        entities: LongTensor,
        relations: LongTensor,
        targets: LongTensor,
        dropout: bool = False,
        pair: bool = False,
    ) -> FloatTensor:
        """``log pi(a | s)`` of chosen actions, with gradients through the encoder.

        Args:
            entities: ``LongTensor[b]``.
            relations, targets: ``LongTensor[b]`` or ``LongTensor[b, k]``: the chosen edges
                ``(entities[i], relations[i, j], targets[i, j])`` (e.g. from :meth:`suggest`).
            dropout: apply the encoder's dropout. By default the encoder runs in eval mode (mode restored after),
                i.e. the very policy :meth:`suggest` acted with.
            pair: the log-probability of the edge's *pair* instead: ``log sum_r pi((r, e') | s)`` over the allowed
                relations of the same bag and direction (what a reward that only says which pairs connect can
                credit; see ``CPLConfig.extractor_credit``).

        Returns:
            ``FloatTensor`` shaped like ``relations``; ``-inf`` for an edge that is not an action of its entity
            (no bag, a known edge, or a relation out of range) -- mask those out of the loss. All bags of the
            entities are re-encoded in one batch (the normaliser needs them).
        """
        self._sync_bags()
        entities = entities.to(self.device).long().reshape(-1)
        squeeze = relations.dim() == 1
        relations = relations.to(self.device).long().reshape(entities.numel(), -1)
        targets = targets.to(self.device).long().reshape(entities.numel(), -1)
        uniq, inv = torch.unique(entities, return_inverse=True)
        entry, valid = self._entries(uniq)
        needed = torch.unique(self._inc_bag[entry][valid])
        if needed.numel() == 0:
            out = torch.full(relations.shape, -math.inf, device=self.device)
            return out.reshape(-1) if squeeze else out
        local = torch.full((len(self.bags),), -1, dtype=torch.long, device=self.device)
        local[needed] = torch.arange(needed.numel(), device=self.device)
        was_training = self.encoder.training
        self.encoder.train(dropout)
        try:
            logits_needed, _ = self.encoder.relation_scores(self.bags.batch(needed))
        finally:
            self.encoder.train(was_training)
        _, allowed, logits, _ = self._action_table(uniq, logits_needed, local)
        flat = logits.reshape(len(uniq), -1).masked_fill(~allowed.reshape(len(uniq), -1), -math.inf)
        log_z = torch.logsumexp(flat, dim=1)  # [U]

        ent = entities.unsqueeze(1).expand_as(relations)
        bag, base = self.edge_bags(ent, relations, targets)
        row = local[bag.clamp(min=0)]
        ok = (
            (bag >= 0) & (row >= 0) & (ent != targets) & ~self._is_known(ent, relations.clamp(min=0), targets)
        )
        if pair:
            # finite fills: an all-masked logsumexp / max would give NaN gradients through torch.where
            pair_lse = torch.logsumexp(logits.masked_fill(~allowed, -1e30), dim=2)  # [U, D]
            direction = (relations >= self.num_relations).long()
            slots = entry[inv]  # [b, D]
            match = (
                valid[inv].unsqueeze(1)
                & (self._inc_other[slots].unsqueeze(1) == targets.unsqueeze(2))
                & (self._inc_dir[slots].unsqueeze(1) == direction.unsqueeze(2))
            )  # [b, k, D]
            scores = pair_lse[inv].unsqueeze(1).expand_as(match).masked_fill(~match, -1e30)
            chosen = scores.amax(dim=2)
            ok = ok & match.any(dim=2)
        else:
            chosen = logits_needed[row.clamp(min=0), base]
        out = torch.where(ok, chosen - log_z[inv].unsqueeze(1), torch.full_like(chosen, -math.inf))
        return out.reshape(-1) if squeeze else out

    # ---- explanations and bulk extraction ------------------------------------------------------------------

    @torch.no_grad()
    def supporting_sentences(
        self, bags: LongTensor, relations: LongTensor, top: int = 3
    ) -> tuple[LongTensor, FloatTensor, BoolTensor]:
        """The sentences of ``bags`` that most support ``relations`` (base or inverse ids), by attention weight.

        ``bags``, ``relations``: ``LongTensor[n]`` (bag ``-1`` gives an empty row). Returns ``(sentence_ids
        LongTensor[n, top], weights FloatTensor[n, top], mask BoolTensor[n, top])``; ``sentence_ids`` index
        :attr:`BagDataset.texts`.
        """
        self._sync_bags()
        bags = bags.to(self.device).long().reshape(-1)
        base = relations.to(self.device).long().reshape(-1) % max(self.num_relations, 1)
        n = bags.numel()
        ids = torch.zeros(n, top, dtype=torch.long, device=self.device)
        weights = torch.zeros(n, top, device=self.device)
        mask = torch.zeros(n, top, dtype=torch.bool, device=self.device)
        real = bags >= 0
        if not bool(real.any()):
            return ids, weights, mask
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            batch = self.bags.batch(bags[real])
            x = self.encoder.encode_sentences(batch.tokens, batch.pos_head, batch.pos_tail, batch.segments)
            alpha = self.encoder.attention(x, batch.sentence_index, batch.sentence_mask, base[real])
        finally:
            self.encoder.train(was_training)
        kk = min(top, alpha.shape[1])
        w, pos = torch.sort(alpha, dim=1, descending=True, stable=True)
        w, pos = w[:, :kk], pos[:, :kk]
        sent = batch.sentence_ids[torch.gather(batch.sentence_index, 1, pos)]
        ids[real, :kk] = sent
        weights[real, :kk] = w
        mask[real, :kk] = torch.gather(batch.sentence_mask, 1, pos)
        return ids.masked_fill(~mask, 0), weights.masked_fill(~mask, 0.0), mask

    def explain(self, entity: int, relation: int, target: int, top: int = 3) -> list[SupportingSentence]:
        """Supporting sentences of the edge ``(entity, relation, target)`` (as suggested; inverse ids allowed),
        best first; empty when the corpus has no bag for it."""
        bag, base = self.edge_bags(torch.tensor([entity]), torch.tensor([relation]), torch.tensor([target]))
        ids, weights, mask = self.supporting_sentences(bag, base, top)
        return [
            SupportingSentence(int(i), self.bags.texts[int(i)], float(w))
            for i, w, m in zip(ids[0].tolist(), weights[0].tolist(), mask[0].tolist())
            if m
        ]

    @torch.no_grad()
    def extract_facts(
        self, threshold: float = 0.5, exclude_known: bool = True
    ) -> tuple[LongTensor, FloatTensor]:
        """Every (bag, relation) fact with confidence ``>= threshold``, NA excluded (the "add all extracted facts"
        baseline). Returns ``(triples LongTensor[n, 3] with base relations, scores FloatTensor[n])``, sorted by
        descending score."""
        _, probs = self.bag_scores(torch.arange(len(self.bags), device=self.device))
        probs = probs[:, : self.num_relations]
        bag, rel = (probs >= threshold).nonzero(as_tuple=True)
        pairs = self.bags.pairs[bag]
        triples = torch.stack([pairs[:, 0], rel, pairs[:, 1]], dim=1)
        scores = probs[bag, rel]
        if exclude_known:
            keep = ~self._is_known(triples[:, 0], triples[:, 1], triples[:, 2])
            triples, scores = triples[keep], scores[keep]
        order = torch.sort(scores, descending=True, stable=True).indices
        return triples[order], scores[order]
