"""The baselines of CPL's experiments (Fu et al. 2019, §5.1), as configurations of the same trainer.

* **MINERVA** (``CPLConfig.for_variant("minerva")``): the reasoner alone on the (sub-sampled) KG -- the same
  policy, REINFORCE, epochs, beam and validation-based model selection as CPL, without the corpus.
* **Two-Step** (``CPLConfig.for_variant("two_step")``): the PCNN-ATT extractor, pre-trained on distant
  supervision exactly as CPL's, adds every fact it extracts with confidence ``>= threshold`` ("no relation"
  excluded, facts already in the graph and evaluation triples never added) to the training graph; the reasoner is
  then trained on the augmented KG (its triples are the training queries too). The threshold is tuned on the
  validation split: one reasoner per threshold of ``CPLConfig.two_step_thresholds``, the best validation MRR wins
  (:func:`select_threshold`).

The helpers here build the augmented graph; :func:`kgreason.open.trainer.train_cpl` runs the variants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from kgreason.data.graph import ActionGraph
from kgreason.open.extractor import FactExtractor
from kgreason.typing import FloatTensor, LongTensor

__all__ = ["TwoStepSearch", "augmented_graph", "extracted_facts", "select_threshold"]


def extracted_facts(extractor: FactExtractor, threshold: float) -> tuple[LongTensor, FloatTensor]:
    """Every fact the extractor finds in the corpus with confidence ``>= threshold``: ``(triples LongTensor[n, 3]``
    with base relations, ``scores FloatTensor[n])``, best first. "No relation", edges of the extractor's known
    triples (the graph, and the evaluation triples it was given) are excluded; one batched pass over all bags."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return extractor.extract_facts(threshold=threshold, exclude_known=True)


def augmented_graph(
    train: LongTensor,
    extracted: LongTensor,
    num_entities: int,
    num_relations: int,
    max_actions: int | None,
    exclude: LongTensor | None = None,
    device: torch.device | str | None = None,
) -> ActionGraph:
    """The walk graph of ``train`` plus ``extracted`` facts (both ``LongTensor[n, 3]``, base relations); triples of
    ``exclude`` (valid + test) and their inverses are never edges."""
    triples = torch.cat([train.to(extracted.device), extracted]) if extracted.numel() else train
    return ActionGraph.from_triples(
        triples, num_entities, num_relations, max_actions=max_actions, device=device, exclude=exclude
    )


@dataclass
class TwoStepSearch:
    """The threshold search of Two-Step: per threshold, the number of facts added and the best validation metric
    of its reasoner; ``threshold`` is the winner."""

    threshold: float
    metric: str
    valid: dict[float, float] = field(default_factory=dict)
    added: dict[float, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "threshold": self.threshold,
            "metric": self.metric,
            "valid": {str(k): v for k, v in self.valid.items()},
            "added": {str(k): v for k, v in self.added.items()},
        }


def select_threshold(valid: Mapping[float, float]) -> float:
    """The threshold with the best (largest) validation metric; ties go to the higher threshold (fewer added
    edges). Non-finite values never win unless all are."""
    if not valid:
        raise ValueError("no threshold was evaluated")

    def key(item: tuple[float, float]) -> tuple[float, float]:
        th, value = item
        return (value if math.isfinite(value) else -math.inf, th)

    return max(valid.items(), key=key)[0]
