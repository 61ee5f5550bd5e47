"""Distant supervision (Mintz et al. 2009): sentence bags labelled by the relations of the *training* graph.

A *bag* is every sentence of a corpus mentioning one ordered entity pair ``(head, tail)``. Its label is the set
of relations ``r`` with ``(head, r, tail)`` in ``dataset.train`` -- multi-label, and the "no relation" class
``NA`` (index ``num_relations``) when there is none. Valid and test triples are never read: a held-out fact
that the corpus happens to state is labelled ``NA`` like any other unobserved fact, so no evaluation link leaks
into labels, features or the graph. (The ``relation`` field a corpus sentence may carry is *not* used either:
distant supervision knows only the KG.)

Sentences are tokenized once (:func:`kgreason.data.corpus.tokenize_with_offsets`) and stored as padded tensors::

    tokens    LongTensor[num_sentences, L]   word ids (PAD = 0), cut at ``max_len`` tokens
    pos_head  LongTensor[num_sentences, L]   relative position to the head mention, clipped, shifted (PAD = 0)
    pos_tail  LongTensor[num_sentences, L]   same for the tail mention
    segments  LongTensor[num_sentences, L]   piecewise segment 1, 2, 3 (PAD = 0), see :func:`segment_ids`
    lengths   LongTensor[num_sentences]

Bags are CSR: the sentences of bag ``b`` are ``bag_sentences[bag_ptr[b]:bag_ptr[b + 1]]``; ``pairs[b]`` is its
``(head_id, tail_id)`` and ``labels[b]`` its multi-hot ``BoolTensor[R + 1]`` (column ``R`` = NA).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from kgreason.data.corpus import Corpus, CorpusSentence, WordVocabulary, tokenize_with_offsets
from kgreason.data.dataset import Dataset
from kgreason.typing import BoolTensor, LongTensor

__all__ = [
    "NA_LABEL",
    "BagBatch",
    "BagDataset",
    "build_bag_dataset",
    "distant_labels",
    "relative_positions",
    "segment_ids",
]

#: Label of the "no relation" class (index ``num_relations`` of every label / score matrix).
NA_LABEL = "NA"


# ---- per-token features (vectorised over sentences) --------------------------------------------------------


def relative_positions(length: LongTensor, span: LongTensor, max_len: int, max_distance: int) -> LongTensor:
    """Position ids of every token relative to a mention, for the position embeddings.

    Args:
        length: ``LongTensor[n]`` number of tokens of each sentence (``<= max_len``).
        span: ``LongTensor[n, 2]`` token span ``[start, end)`` of the mention (may reach past ``length`` when the
            sentence was cut).
        max_len: padded length ``L``.
        max_distance: distances are clipped to ``[-max_distance, max_distance]``.

    Returns:
        ``LongTensor[n, L]``: ``clip(d) + max_distance + 1`` with ``d = i - start`` before the mention, ``0``
        inside it and ``i - (end - 1)`` after it; padding tokens get ``0`` (so ids lie in
        ``[0, 2 * max_distance + 1]``, ``0`` = PAD).
    """
    idx = torch.arange(max_len, device=length.device).unsqueeze(0)
    start, last = span[:, :1], span[:, 1:] - 1
    dist = torch.where(idx < start, idx - start, torch.where(idx > last, idx - last, torch.zeros_like(idx)))
    pos = dist.clamp(-max_distance, max_distance) + max_distance + 1
    return torch.where(idx < length.unsqueeze(1), pos, torch.zeros_like(pos))


def segment_ids(length: LongTensor, head_span: LongTensor, tail_span: LongTensor, max_len: int) -> LongTensor:
    """Piecewise segment of every token: ``1`` up to the end of the first mention (in text order), ``2`` after it
    up to the end of the second mention, ``3`` after the second mention, ``0`` for padding (Zeng et al. 2015:
    each mention closes its piece).

    ``length: LongTensor[n]``, ``head_span``/``tail_span: LongTensor[n, 2]`` token spans -> ``LongTensor[n, L]``.
    A piece may be empty (e.g. a sentence ending with its second mention); pooling treats that as zeros.
    """
    idx = torch.arange(max_len, device=length.device).unsqueeze(0)
    head_first = head_span[:, 0] <= tail_span[:, 0]
    first_end = torch.where(head_first, head_span[:, 1], tail_span[:, 1]).unsqueeze(1)
    second_end = torch.where(head_first, tail_span[:, 1], head_span[:, 1]).unsqueeze(1)
    seg = 1 + (idx >= first_end).long() + (idx >= second_end).long()
    return torch.where(idx < length.unsqueeze(1), seg, torch.zeros_like(seg))


# ---- labels -------------------------------------------------------------------------------------------------


def distant_labels(pairs: LongTensor, triples: LongTensor, num_relations: int) -> BoolTensor:
    """Multi-hot relation labels of entity pairs from a set of triples.

    Args:
        pairs: ``LongTensor[B, 2]`` ordered ``(head, tail)`` pairs.
        triples: ``LongTensor[n, 3]`` ``(head, relation, tail)`` with base relations ``0..R-1``.
        num_relations: ``R``.

    Returns:
        ``BoolTensor[B, R + 1]``: ``labels[b, r]`` iff ``(pairs[b, 0], r, pairs[b, 1])`` is in ``triples``;
        column ``R`` (NA) is set exactly for the pairs with no relation. Vectorised (sorted keys + searchsorted).
    """
    device = pairs.device
    labels = torch.zeros(len(pairs), num_relations + 1, dtype=torch.bool, device=device)
    if len(pairs) and len(triples):
        triples = triples.to(device)
        scale = int(max(int(pairs.max()), int(triples[:, [0, 2]].max()))) + 1
        pair_keys = pairs[:, 0] * scale + pairs[:, 1]
        order = torch.argsort(pair_keys)
        sorted_keys = pair_keys[order]
        t_keys = triples[:, 0] * scale + triples[:, 2]
        pos = torch.searchsorted(sorted_keys, t_keys).clamp(max=len(pairs) - 1)
        hit = sorted_keys[pos] == t_keys
        labels[order[pos[hit]], triples[hit, 1]] = True
    labels[:, num_relations] = ~labels[:, :num_relations].any(dim=1)
    return labels


# ---- the dataset of bags ------------------------------------------------------------------------------------


@dataclass
class BagBatch:
    """The sentences of some bags, ready for the encoder (all tensors on one device).

    ``tokens``/``pos_head``/``pos_tail``/``segments``: ``LongTensor[S, L]`` (``L`` trimmed to the longest
    sentence of the batch); ``sentence_index: LongTensor[B, N]`` rows into those ``S`` sentences (padded with 0,
    ``N`` = largest bag), ``sentence_mask: BoolTensor[B, N]``; ``bags: LongTensor[B]`` bag ids and
    ``sentence_ids: LongTensor[S]`` corpus sentence ids (positions in :attr:`BagDataset.texts`).
    """

    tokens: LongTensor
    pos_head: LongTensor
    pos_tail: LongTensor
    segments: LongTensor
    sentence_index: LongTensor
    sentence_mask: BoolTensor
    bags: LongTensor
    sentence_ids: LongTensor

    @property
    def num_bags(self) -> int:
        return int(self.sentence_index.shape[0])

    @property
    def num_sentences(self) -> int:
        return int(self.tokens.shape[0])


@dataclass
class BagDataset:
    """Sentence bags with distant-supervision labels, as tensors (see the module docstring for the layout).

    Sentence tensors are shared between a dataset and its :meth:`subset` s; ``bag_*``, ``pairs`` and ``labels``
    are per bag. ``num_relations`` is ``R`` (base relations); ``na_index == R``. ``texts[i]`` is the text of
    sentence ``i`` (for explanations), ``relation_labels`` the ``R + 1`` class names (``NA`` last).
    """

    tokens: LongTensor
    pos_head: LongTensor
    pos_tail: LongTensor
    segments: LongTensor
    lengths: LongTensor
    bag_ptr: LongTensor
    bag_sentences: LongTensor
    pairs: LongTensor
    labels: BoolTensor
    num_relations: int
    words: WordVocabulary
    texts: list[str]
    relation_labels: list[str]
    max_len: int
    max_distance: int
    num_skipped: int = 0
    metadata: dict[str, object] = field(default_factory=dict)

    # ---- basics ---------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of bags."""
        return int(self.pairs.shape[0])

    @property
    def num_sentences(self) -> int:
        """Sentences held by the bags of this dataset."""
        return int(self.bag_sentences.numel())

    @property
    def na_index(self) -> int:
        """Column of the "no relation" class in ``labels`` and in every score matrix."""
        return self.num_relations

    @property
    def num_classes(self) -> int:
        """``R + 1`` (relations plus NA)."""
        return self.num_relations + 1

    @property
    def num_positions(self) -> int:
        """Size of a position-embedding table: ``2 * max_distance + 2`` (PAD = 0)."""
        return 2 * self.max_distance + 2

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    @property
    def bag_sizes(self) -> LongTensor:
        """``LongTensor[B]`` sentences per bag."""
        return self.bag_ptr[1:] - self.bag_ptr[:-1]

    def to(self, device: str | torch.device) -> BagDataset:
        """A copy with every tensor on ``device`` (the word vocabulary and texts are shared)."""
        device = torch.device(device)
        moved = {
            name: getattr(self, name).to(device)
            for name in ("tokens", "pos_head", "pos_tail", "segments", "lengths", "bag_ptr", "bag_sentences",
                         "pairs", "labels")
        }  # fmt: skip
        return replace(self, **moved)

    # ---- views ----------------------------------------------------------------------------------------------

    def subset(self, bags: LongTensor) -> BagDataset:
        """The bags ``bags`` (``LongTensor[n]``, in that order), sharing the sentence tensors."""
        bags = bags.to(self.device).long()
        index, mask = self.bag_sentence_index(bags)
        counts = mask.sum(dim=1)
        ptr = torch.zeros(len(bags) + 1, dtype=torch.long, device=self.device)
        ptr[1:] = torch.cumsum(counts, 0)
        return replace(
            self,
            bag_ptr=ptr,
            bag_sentences=index[mask],
            pairs=self.pairs[bags],
            labels=self.labels[bags],
            metadata=dict(self.metadata),
        )

    def split(self, heldout_fraction: float = 0.2, seed: int = 0) -> tuple[BagDataset, BagDataset]:
        """Random split of the bags (entity pairs) into ``(train, heldout)`` for held-out evaluation.

        Both keep their distant-supervision labels (the held-out evaluation of Mintz et al.); no entity pair is
        in both. Deterministic per ``seed``.
        """
        if not 0.0 < heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=gen).to(self.device)
        n_held = max(1, round(heldout_fraction * len(self)))
        held, train = perm[:n_held].sort().values, perm[n_held:].sort().values
        return self.subset(train), self.subset(held)

    def with_labels(self, labels: BoolTensor) -> BagDataset:
        """The same bags with other labels (``BoolTensor[B, R + 1]``), e.g. from :meth:`label_with`."""
        if tuple(labels.shape) != tuple(self.labels.shape):
            raise ValueError(f"labels must have shape {tuple(self.labels.shape)}, got {tuple(labels.shape)}")
        return replace(self, labels=labels.to(self.device).bool())

    def label_with(self, triples: LongTensor) -> BoolTensor:
        """Labels of these bags from another set of triples, ``BoolTensor[B, R + 1]``.

        For *evaluation* only (e.g. a generated dataset's full ground truth, to measure how many extracted facts
        are true); training labels always come from the training graph (:func:`build_bag_dataset`).
        """
        return distant_labels(self.pairs, triples.to(self.device), self.num_relations)

    def bag_sentence_index(self, bags: LongTensor) -> tuple[LongTensor, BoolTensor]:
        """Sentence ids of ``bags`` padded to the largest: ``(LongTensor[n, N], BoolTensor[n, N])`` (pad = 0)."""
        bags = bags.to(self.device).long()
        start = self.bag_ptr[bags]
        counts = self.bag_ptr[bags + 1] - start
        width = int(counts.max()) if len(bags) else 0
        offs = torch.arange(width, device=self.device)
        mask = offs.unsqueeze(0) < counts.unsqueeze(1)
        flat = (start.unsqueeze(1) + offs.unsqueeze(0)).clamp(max=max(self.num_sentences - 1, 0))
        index = torch.where(mask, self.bag_sentences[flat], torch.zeros_like(flat))
        return index, mask

    def batch(self, bags: LongTensor, device: torch.device | str | None = None) -> BagBatch:
        """Gather the sentences of ``bags`` (``LongTensor[B]``) into a :class:`BagBatch` on ``device``
        (default: this dataset's device); the token dimension is cut to the longest sentence gathered."""
        bags = bags.to(self.device).long()
        index, mask = self.bag_sentence_index(bags)
        sent_ids = index[mask]
        local = torch.zeros_like(index)
        local[mask] = torch.arange(len(sent_ids), device=self.device)
        width = max(int(self.lengths[sent_ids].max()) if len(sent_ids) else 1, 1)
        out = BagBatch(
            tokens=self.tokens[sent_ids, :width],
            pos_head=self.pos_head[sent_ids, :width],
            pos_tail=self.pos_tail[sent_ids, :width],
            segments=self.segments[sent_ids, :width],
            sentence_index=local,
            sentence_mask=mask,
            bags=bags,
            sentence_ids=sent_ids,
        )
        if device is not None and torch.device(device) != self.device:
            out = BagBatch(**{k: v.to(device) for k, v in vars(out).items()})
        return out

    def relation_counts(self) -> LongTensor:
        """``LongTensor[R + 1]``: bags labelled with each class (NA last)."""
        return self.labels.long().sum(dim=0)

    def summary(self) -> str:
        positives = int((~self.labels[:, self.na_index]).sum())
        return (
            f"{len(self)} bags ({positives} with a relation, {len(self) - positives} NA), "
            f"{self.num_sentences} sentences, {len(self.words)} words, {self.num_relations} relations + NA"
        )


def _window(n_tokens: int, spans: tuple[tuple[int, int], tuple[int, int]], max_len: int) -> int:
    """First token of a ``max_len`` window over a sentence of ``n_tokens``: 0 when both mentions fit from the
    start, else the window ends at the end of the later mention (or starts at the earlier one if both cannot
    fit)."""
    if n_tokens <= max_len:
        return 0
    lo = min(spans[0][0], spans[1][0])
    hi = max(spans[0][1], spans[1][1])
    if hi <= max_len:
        return 0
    return min(hi - max_len, lo)


def build_bag_dataset(
    corpus: Corpus | Sequence[CorpusSentence],
    dataset: Dataset,
    words: WordVocabulary | None = None,
    max_len: int = 120,
    max_distance: int = 60,
    min_count: int = 1,
    exclude_pairs: LongTensor | None = None,
    device: torch.device | str | None = None,
) -> BagDataset:
    """Group ``corpus`` into bags by entity pair, label them from ``dataset.train`` and encode the sentences.

    Args:
        corpus: sentences with entity labels of ``dataset.entities``; sentences naming an unknown entity or the
            same entity twice are skipped (counted in ``num_skipped``).
        dataset: its **training** split alone labels the bags (valid/test are never read).
        words: word vocabulary (default: built from ``corpus`` with ``min_count``).
        max_len: sentences are cut to this many tokens (a window keeping both mentions when possible).
        max_distance: relative positions are clipped to ``[-max_distance, max_distance]``.
        exclude_pairs: optional ``LongTensor[n, 2]`` entity pairs whose bags are dropped (either direction).
        device: where the tensors live (default CPU).

    Returns:
        A :class:`BagDataset` with bags sorted by ``(head, tail)``.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if max_distance < 1:
        raise ValueError(f"max_distance must be >= 1, got {max_distance}")
    sentences = list(corpus.sentences if isinstance(corpus, Corpus) else corpus)
    ents = dataset.entities
    excluded: set[tuple[int, int]] = set()
    if exclude_pairs is not None:
        for h, t in exclude_pairs.tolist():
            excluded.update({(h, t), (t, h)})

    kept: list[CorpusSentence] = []
    heads: list[int] = []
    tails: list[int] = []
    skipped = 0
    for s in sentences:
        if s.head not in ents or s.tail not in ents or s.head == s.tail:
            skipped += 1
            continue
        h, t = ents.id(s.head), ents.id(s.tail)
        if (h, t) in excluded:
            skipped += 1
            continue
        kept.append(s)
        heads.append(h)
        tails.append(t)
    if words is None:
        words = WordVocabulary.build(kept, min_count=min_count)

    # one pass of tokenization: ids, token spans, window
    n = len(kept)
    token_rows: list[list[int]] = []
    spans = torch.zeros(n, 2, 2, dtype=torch.long)
    for i, s in enumerate(kept):
        toks = tokenize_with_offsets(s.text)
        sp = []
        for cs, ce in (s.head_span, s.tail_span):
            hits = [j for j, (_, a, b) in enumerate(toks) if a < ce and b > cs]
            sp.append((hits[0], hits[-1] + 1) if hits else (0, 1))
        start = _window(len(toks), (sp[0], sp[1]), max_len)
        token_rows.append(words.encode([tok for tok, _, _ in toks[start : start + max_len]]))
        spans[i] = torch.tensor(sp) - start
    lengths = torch.tensor([len(r) for r in token_rows], dtype=torch.long)
    width = max(int(lengths.max()) if n else 1, 1)
    tokens = torch.zeros(n, width, dtype=torch.long)
    for i, row in enumerate(token_rows):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    pos_head = relative_positions(lengths, spans[:, 0], width, max_distance)
    pos_tail = relative_positions(lengths, spans[:, 1], width, max_distance)
    segments = segment_ids(lengths, spans[:, 0], spans[:, 1], width)

    # bags: sort sentences by (head, tail), stable (corpus order inside a bag)
    pair_of_sentence = torch.tensor([heads, tails], dtype=torch.long).T.reshape(n, 2)
    key = pair_of_sentence[:, 0] * max(len(ents), 1) + pair_of_sentence[:, 1]
    order = torch.argsort(key, stable=True)
    uniq_keys, counts = torch.unique_consecutive(key[order], return_counts=True)
    bag_ptr = torch.zeros(len(uniq_keys) + 1, dtype=torch.long)
    bag_ptr[1:] = torch.cumsum(counts, 0)
    pairs = torch.stack([uniq_keys // max(len(ents), 1), uniq_keys % max(len(ents), 1)], dim=1)
    labels = distant_labels(pairs, dataset.train, dataset.num_relations)

    out = BagDataset(
        tokens=tokens,
        pos_head=pos_head,
        pos_tail=pos_tail,
        segments=segments,
        lengths=lengths,
        bag_ptr=bag_ptr,
        bag_sentences=order,
        pairs=pairs,
        labels=labels,
        num_relations=dataset.num_relations,
        words=words,
        texts=[s.text for s in kept],
        relation_labels=[*dataset.relations.labels, NA_LABEL],
        max_len=max_len,
        max_distance=max_distance,
        num_skipped=skipped,
        metadata={"dataset": dataset.name, "num_entities": dataset.num_entities},
    )
    return out.to(device) if device is not None else out
