"""PCNN-ATT sentence-bag encoder (Zeng et al. 2015; Lin et al. 2016) and its multi-instance pre-training.

Sentence ``i`` of a bag: word embeddings (optionally pre-trained, :func:`kgreason.data.corpus.load_word2vec_text`)
concatenated with two 5-d position embeddings (relative to the head and tail mention), a 1-D convolution
(230 filters, kernel 3, "same" padding), max pooling over each of the three pieces cut by the mentions
(:func:`piecewise_max_pool`, one ``scatter_reduce``), ``tanh``: ``x_i in R^{3F}``.

Selective attention over the sentences of a bag with relation query ``q_r`` (``relation_query[r]``)::

    alpha_{r,i} = softmax_i(x_i . q_r),   s_r = sum_i alpha_{r,i} x_i,   logits_r = M s_r + b     (M: [C, 3F])

* training (:meth:`PCNNAttention.forward` with ``query``): ``r`` is the bag's label relation, dropout 0.5 on
  ``s_r``, cross-entropy over the ``C = R + 1`` classes (NA last);
* inference (``query=None``): every relation attends for itself, giving ``logits[b, q, c]``; the score of
  relation ``r`` for bag ``b`` is ``logits[b, r, r]`` (and its probability ``softmax_c(logits[b, r, :])[r]``,
  as in OpenNRE's test). Computed without materialising ``[B, C, 3F]``: ``logits[b,q,c] = sum_i alpha[b,i,q]
  (x_i . M_c) + b_c``.

Bags are processed padded to the largest bag of a batch (:class:`~kgreason.open.distant_supervision.BagBatch`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kgreason.open.distant_supervision import BagBatch, BagDataset
from kgreason.open.metrics import heldout_metrics
from kgreason.training.callbacks import TrainingCallback
from kgreason.training.loop import TrainingHistory, TrainingLoop
from kgreason.typing import BoolTensor, FloatTensor, LongTensor

__all__ = [
    "ExtractorPretrainingLoop",
    "PCNNAttention",
    "bag_chunks",
    "class_weights",
    "distant_supervision_loss",
    "evaluate_extractor",
    "piecewise_max_pool",
    "predict_bags",
    "pretrain_extractor",
    "training_instances",
]

NUM_PIECES = 3


def piecewise_max_pool(features: FloatTensor, segments: LongTensor) -> FloatTensor:
    """Max of ``features`` over each of the three pieces of every sentence.

    Args:
        features: ``FloatTensor[S, F, L]`` (convolution output).
        segments: ``LongTensor[S, L]`` piece id ``1..3`` of each token, ``0`` for padding (ignored).

    Returns:
        ``FloatTensor[S, F, 3]``; an empty piece pools to ``0``. One vectorised ``index_reduce("amax")`` over
        rows of ``F`` channels (token ``l`` of sentence ``s`` goes to row ``4 s + segment``); gradients flow to
        the maxima (split evenly among exact ties).
    """
    s, f, length = features.shape
    rows = features.transpose(1, 2).reshape(s * length, f)
    target = (segments + (NUM_PIECES + 1) * torch.arange(s, device=segments.device).unsqueeze(1)).reshape(-1)
    out = features.new_zeros(s * (NUM_PIECES + 1), f)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*index_reduce.*beta.*")
        out = out.index_reduce(0, target, rows, "amax", include_self=False)
    return out.view(s, NUM_PIECES + 1, f)[:, 1:].transpose(1, 2)


class PCNNAttention(nn.Module):
    """PCNN encoder with selective attention over sentence bags.

    Args:
        num_words: word vocabulary size (PAD = 0).
        num_classes: ``R + 1`` (relations plus NA, NA last).
        num_positions: rows of each position table (``BagDataset.num_positions``; PAD = 0).
        word_dim: word embedding size (50 in the reference); ignored when ``word_vectors`` is given.
        position_dim: size of each of the two position embeddings (5).
        num_filters: convolution filters ``F`` (230); a sentence is ``3F``-dimensional.
        kernel_size: convolution width (3, odd).
        dropout: dropout on bag representations during training (0.5).
        word_vectors: optional ``FloatTensor[num_words, dim]`` initial word embeddings.
        freeze_words: keep the word embeddings fixed.
    """

    def __init__(
        self,
        num_words: int,
        num_classes: int,
        num_positions: int,
        word_dim: int = 50,
        position_dim: int = 5,
        num_filters: int = 230,
        kernel_size: int = 3,
        dropout: float = 0.5,
        word_vectors: FloatTensor | None = None,
        freeze_words: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (same-length convolution), got {kernel_size}")
        if word_vectors is not None:
            if word_vectors.shape[0] != num_words:
                raise ValueError(f"word_vectors has {word_vectors.shape[0]} rows for {num_words} words")
            word_dim = int(word_vectors.shape[1])
        self.num_classes = num_classes
        self.num_filters = num_filters
        self.config: dict[str, Any] = {
            "num_words": num_words,
            "num_classes": num_classes,
            "num_positions": num_positions,
            "word_dim": word_dim,
            "position_dim": position_dim,
            "num_filters": num_filters,
            "kernel_size": kernel_size,
            "dropout": dropout,
            "freeze_words": freeze_words,
        }
        self.word_embedding = nn.Embedding(num_words, word_dim, padding_idx=0)
        self.head_position = nn.Embedding(num_positions, position_dim, padding_idx=0)
        self.tail_position = nn.Embedding(num_positions, position_dim, padding_idx=0)
        self.conv = nn.Conv1d(word_dim + 2 * position_dim, num_filters, kernel_size, padding=kernel_size // 2)
        self.relation_query = nn.Parameter(torch.empty(num_classes, NUM_PIECES * num_filters))
        self.classifier = nn.Linear(NUM_PIECES * num_filters, num_classes)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()
        if word_vectors is not None:
            with torch.no_grad():
                self.word_embedding.weight.copy_(word_vectors)
                self.word_embedding.weight[0].zero_()
        self.word_embedding.weight.requires_grad_(not freeze_words)

    @classmethod
    def from_bag_dataset(cls, bags: BagDataset, **kwargs: Any) -> PCNNAttention:
        """A model sized for ``bags`` (its word vocabulary, classes and position range)."""
        return cls(len(bags.words), bags.num_classes, bags.num_positions, **kwargs)

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.word_embedding.weight)
        nn.init.xavier_uniform_(self.head_position.weight)
        nn.init.xavier_uniform_(self.tail_position.weight)
        for emb in (self.word_embedding, self.head_position, self.tail_position):
            with torch.no_grad():
                emb.weight[0].zero_()
        nn.init.xavier_uniform_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)  # type: ignore[arg-type]
        nn.init.xavier_uniform_(self.relation_query)
        nn.init.xavier_uniform_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)  # type: ignore[arg-type]

    # ---- sentences ----------------------------------------------------------------------------------------

    def encode_sentences(
        self, tokens: LongTensor, pos_head: LongTensor, pos_tail: LongTensor, segments: LongTensor
    ) -> FloatTensor:
        """Sentence representations ``FloatTensor[S, 3F]`` from ``LongTensor[S, L]`` inputs."""
        x = torch.cat(
            [self.word_embedding(tokens), self.head_position(pos_head), self.tail_position(pos_tail)], dim=-1
        )
        conv = self.conv(x.transpose(1, 2))  # [S, F, L]
        pooled = piecewise_max_pool(conv, segments)  # [S, F, 3]
        return torch.tanh(pooled.reshape(pooled.shape[0], -1))

    # ---- bags ---------------------------------------------------------------------------------------------

    def attention(
        self, sentences: FloatTensor, index: LongTensor, mask: BoolTensor, query: LongTensor | None = None
    ) -> FloatTensor:
        """Attention weights over the sentences of each bag.

        ``sentences: FloatTensor[S, 3F]``, ``index: LongTensor[B, N]`` rows of ``sentences`` per bag,
        ``mask: BoolTensor[B, N]``. With ``query: LongTensor[B]`` -> ``FloatTensor[B, N]``; without ->
        ``FloatTensor[B, N, C]`` (one distribution per relation query). Weights are 0 at padding and sum to 1
        over each bag's sentences.
        """
        xb = sentences[index]  # [B, N, d]
        if query is not None:
            energy = (xb * self.relation_query[query].unsqueeze(1)).sum(-1)
            return torch.softmax(energy.masked_fill(~mask, -math.inf), dim=1)
        energy = xb @ self.relation_query.T  # [B, N, C]
        return torch.softmax(energy.masked_fill(~mask.unsqueeze(-1), -math.inf), dim=1)

    def bag_logits(
        self, sentences: FloatTensor, index: LongTensor, mask: BoolTensor, query: LongTensor | None = None
    ) -> FloatTensor:
        """Class logits of bags (see :meth:`attention` for the arguments).

        With ``query: LongTensor[B]`` (training: the label relation): ``FloatTensor[B, C]``, dropout on the bag
        representation. Without: ``FloatTensor[B, C, C]``, ``[b, q, c]`` = logit of class ``c`` for the bag
        representation attended by relation ``q`` (dropout, if training, on the sentence representations).
        """
        if query is not None:
            alpha = self.attention(sentences, index, mask, query)
            bag = (alpha.unsqueeze(-1) * sentences[index]).sum(1)
            return self.classifier(self.dropout(bag))
        sentences = self.dropout(sentences)
        alpha = self.attention(sentences, index, mask)  # [B, N, C]
        per_sentence = sentences[index] @ self.classifier.weight.T  # [B, N, C]
        return torch.einsum("bnq,bnc->bqc", alpha, per_sentence) + self.classifier.bias

    def forward(self, batch: BagBatch, query: LongTensor | None = None) -> FloatTensor:
        """Logits of the bags of ``batch``: ``[B, C]`` with ``query: LongTensor[B]``, else ``[B, C, C]``."""
        x = self.encode_sentences(batch.tokens, batch.pos_head, batch.pos_tail, batch.segments)
        return self.bag_logits(x, batch.sentence_index, batch.sentence_mask, query)

    def relation_scores(self, batch: BagBatch) -> tuple[FloatTensor, FloatTensor]:
        """Per-relation attention scores of the bags of ``batch``.

        Returns ``(logits, probs)``, both ``FloatTensor[B, C]``: ``logits[b, r]`` = logit of ``r`` with ``r`` as
        attention query, ``probs[b, r]`` = its softmax probability over the ``C`` classes under that query.
        """
        full = self(batch)  # [B, C, C]
        diag = torch.diagonal(full, dim1=1, dim2=2)
        probs = torch.diagonal(torch.softmax(full, dim=-1), dim1=1, dim2=2)
        return diag, probs


# ---- batched inference and evaluation -----------------------------------------------------------------------


def bag_chunks(
    bags: BagDataset, bag_ids: LongTensor | None = None, max_sentences: int = 4096
) -> list[LongTensor]:
    """``bag_ids`` (default: all bags) cut into consecutive chunks of about ``max_sentences`` sentences.

    A bag joins the chunk in which its first sentence falls (cumulative counts cut at multiples of
    ``max_sentences``), so a chunk holds fewer than ``max_sentences`` plus one bag's sentences. Vectorised.
    """
    if bag_ids is None:
        bag_ids = torch.arange(len(bags), device=bags.device)
    bag_ids = bag_ids.to(bags.device)
    if bag_ids.numel() == 0:
        return []
    sizes = bags.bag_sizes[bag_ids]
    ends = torch.cumsum(sizes, 0)
    chunk = torch.div(ends - sizes, max_sentences, rounding_mode="floor")
    _, counts = torch.unique_consecutive(chunk, return_counts=True)
    return list(torch.split(bag_ids, counts.tolist()))


@torch.no_grad()
def predict_bags(
    model: PCNNAttention,
    bags: BagDataset,
    bag_ids: LongTensor | None = None,
    max_sentences: int = 4096,
    device: torch.device | str | None = None,
) -> tuple[FloatTensor, FloatTensor]:
    """Per-relation scores of ``bag_ids`` (default: all bags) in eval mode, batched by ``max_sentences``.

    Returns ``(logits, probs)``: ``FloatTensor[n, C]`` each (see :meth:`PCNNAttention.relation_scores`), on the
    model's device. The model's train/eval mode is restored afterwards.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits, probs = [], []
        for chunk in bag_chunks(bags, bag_ids, max_sentences):
            lg, pr = model.relation_scores(bags.batch(chunk, device=device))
            logits.append(lg)
            probs.append(pr)
    finally:
        model.train(was_training)
    if not logits:
        empty = torch.zeros(0, bags.num_classes, device=device)
        return empty, empty.clone()
    return torch.cat(logits), torch.cat(probs)


def evaluate_extractor(
    model: PCNNAttention,
    bags: BagDataset,
    ns: Sequence[int | float] = (100, 200, 300),
    max_sentences: int = 4096,
) -> dict[str, float]:
    """Held-out metrics (:func:`~kgreason.open.metrics.heldout_metrics`) of ``model`` on ``bags`` against their
    labels, scoring each (bag, relation) by its per-relation probability; NA excluded."""
    _, probs = predict_bags(model, bags, max_sentences=max_sentences)
    return heldout_metrics(probs, bags.labels.to(probs.device), na_index=bags.na_index, ns=ns)


# ---- multi-instance pre-training ----------------------------------------------------------------------------


def training_instances(bags: BagDataset) -> LongTensor:
    """``LongTensor[n, 2]`` of ``(bag, class)``: one instance per positive relation of a bag, ``(bag, NA)`` for
    an NA bag (OpenNRE keys training bags by ``(head, tail, relation)``)."""
    return bags.labels.nonzero()


def class_weights(bags: BagDataset, power: float = 0.05) -> FloatTensor:
    """``FloatTensor[C]``: ``1 / count_c ** power`` over :func:`training_instances` (1 for absent classes)."""
    counts = bags.labels.sum(dim=0).float()
    return torch.where(counts > 0, counts.clamp(min=1).pow(-power), torch.ones_like(counts))


class ExtractorPretrainingLoop(TrainingLoop):
    """Distant-supervision pre-training of a :class:`PCNNAttention` on a :class:`BagDataset`.

    A batch is ``LongTensor[b, 2]`` of ``(bag, class)`` instances (:func:`training_instances`), shuffled with
    ``self.generator``. The loss is cross-entropy with the instance's class as attention query and target,
    weighted by ``count_c ** -class_weight_power``; the bag's *other* positive relations are removed from that
    instance's softmax, so a pair holding both ``parent_of`` and ``mother_of`` is not pushed away from either.
    """

    def __init__(
        self,
        model: PCNNAttention,
        bags: BagDataset,
        batch_size: int = 64,
        class_weight_power: float = 0.05,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.bags = bags.to(self.device)
        self.batch_size = batch_size
        self.instances = training_instances(self.bags)
        self.weights = class_weights(self.bags, class_weight_power)

    def batches(self, epoch: int) -> list[LongTensor]:
        perm = torch.randperm(len(self.instances), generator=self.generator, device=self.device)
        return list(torch.split(self.instances[perm], self.batch_size))

    def batch_loss(self, batch: LongTensor) -> torch.Tensor:
        model: PCNNAttention = self.model  # type: ignore[assignment]
        return distant_supervision_loss(model, self.bags, batch, self.weights)


def distant_supervision_loss(
    model: PCNNAttention, bags: BagDataset, instances: LongTensor, weights: FloatTensor | None = None
) -> torch.Tensor:
    """Multi-instance cross-entropy of ``instances: LongTensor[b, 2]`` ``(bag, class)`` rows
    (:func:`training_instances`): the instance's class is the attention query and the target, weighted by
    ``weights[class]``; the bag's *other* positive relations are removed from that instance's softmax (a pair
    holding both ``parent_of`` and ``mother_of`` is not pushed away from either)."""
    bag_ids, target = instances[:, 0], instances[:, 1]
    uniq, inverse = torch.unique(bag_ids, return_inverse=True)
    bb = bags.batch(uniq)
    x = model.encode_sentences(bb.tokens, bb.pos_head, bb.pos_tail, bb.segments)
    logits = model.bag_logits(x, bb.sentence_index[inverse], bb.sentence_mask[inverse], query=target)
    others = bags.labels[bag_ids].clone()
    others[torch.arange(len(instances), device=others.device), target] = False
    logits = logits.masked_fill(others, -math.inf)
    return F.cross_entropy(logits, target, weight=weights)


class _HeldOutCallback(TrainingCallback):
    def __init__(self, bags: BagDataset, every: int, ns: Sequence[int | float], prefix: str) -> None:
        self.bags, self.every, self.ns, self.prefix = bags, every, ns, prefix

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        if epoch % self.every == 0 or epoch == self.loop.num_epochs:
            metrics = evaluate_extractor(self.model, self.bags.to(self.loop.device), self.ns)  # type: ignore[arg-type]
            self.loop.record_metrics(epoch, {f"{self.prefix}.{k}": v for k, v in metrics.items()})


def pretrain_extractor(
    model: PCNNAttention,
    bag_dataset: BagDataset,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    device: torch.device | str | None = None,
    optimizer: str = "adam",
    optimizer_kwargs: dict[str, Any] | None = None,
    class_weight_power: float = 0.05,
    eval_bags: BagDataset | None = None,
    eval_every: int = 1,
    ns: Sequence[int | float] = (100, 200, 300),
    callbacks: Sequence[TrainingCallback] = (),
) -> TrainingHistory:
    """Pre-train ``model`` on the distant-supervision labels of ``bag_dataset`` (multi-instance learning).

    Args:
        model: the encoder (moved to ``device``).
        bag_dataset: training bags (labels from the training graph, :func:`build_bag_dataset`).
        epochs, batch_size, lr, seed: training schedule; ``seed`` fixes the instance order.
        device: ``None``/``"auto"`` = CUDA when available.
        optimizer: any ``torch.optim`` name -- ``"adam"`` (default; converges in a few epochs) or ``"sgd"`` with
            ``lr=0.01`` as in the reference implementation.
        class_weight_power: loss weight ``count_c ** -power`` per class (0 for unweighted; reference 0.05).
        eval_bags: optional held-out bags, evaluated every ``eval_every`` epochs and at the end; the metrics are
            recorded as ``heldout.<metric>`` (e.g. ``heldout.pr_auc``) in ``history.metrics``.

    Returns:
        The :class:`~kgreason.training.loop.TrainingHistory` (per-epoch ``losses``, ``seconds``, ``metrics``).
        The model is left in eval mode.
    """
    cbs: list[TrainingCallback] = list(callbacks)
    if eval_bags is not None:
        cbs.append(_HeldOutCallback(eval_bags, eval_every, ns, "heldout"))
    loop = ExtractorPretrainingLoop(
        model,
        bag_dataset,
        batch_size=batch_size,
        class_weight_power=class_weight_power,
        optimizer=optimizer,
        optimizer_kwargs=optimizer_kwargs,
        lr=lr,
        device=device,
        seed=seed,
        callbacks=cbs,
        config={
            "model": model.config,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "optimizer": optimizer,
            "class_weight_power": class_weight_power,
        },
    )
    loop.train(epochs)
    model.eval()
    return loop.history
