"""Open KG reasoning (CPL, Fu et al. 2019): the text side -- distant supervision, the PCNN-ATT bag encoder,
held-out extraction metrics and the fact-extraction agent that suggests corpus edges to the reasoner.

    from kgreason.open import build_bag_dataset, PCNNAttention, pretrain_extractor, FactExtractor

    bags = build_bag_dataset(dataset.metadata["corpus"], dataset)      # labels from dataset.train only
    train_bags, heldout = bags.split(0.2, seed=0)
    encoder = PCNNAttention.from_bag_dataset(bags)
    history = pretrain_extractor(encoder, train_bags, epochs=10, eval_bags=heldout)
    extractor = FactExtractor(encoder, bags, dataset.num_entities, known_triples=dataset.train)
    s = extractor.suggest(entities, k=5)                               # [b, k] relations/targets/scores/mask
"""

from kgreason.open.distant_supervision import (
    NA_LABEL,
    BagBatch,
    BagDataset,
    build_bag_dataset,
    distant_labels,
    relative_positions,
    segment_ids,
)
from kgreason.open.encoder import (
    ExtractorPretrainingLoop,
    PCNNAttention,
    bag_chunks,
    class_weights,
    evaluate_extractor,
    piecewise_max_pool,
    predict_bags,
    pretrain_extractor,
    training_instances,
)
from kgreason.open.extractor import FactExtractor, Suggestions, SupportingSentence, reinforce_loss
from kgreason.open.metrics import (
    average_precision,
    heldout_metrics,
    pr_auc,
    precision_at_n,
    precision_recall_curve,
    ranked_predictions,
)

__all__ = [
    "NA_LABEL",
    "BagBatch",
    "BagDataset",
    "ExtractorPretrainingLoop",
    "FactExtractor",
    "PCNNAttention",
    "Suggestions",
    "SupportingSentence",
    "average_precision",
    "bag_chunks",
    "build_bag_dataset",
    "class_weights",
    "distant_labels",
    "evaluate_extractor",
    "heldout_metrics",
    "piecewise_max_pool",
    "pr_auc",
    "precision_at_n",
    "precision_recall_curve",
    "predict_bags",
    "pretrain_extractor",
    "ranked_predictions",
    "reinforce_loss",
    "relative_positions",
    "segment_ids",
    "training_instances",
]
