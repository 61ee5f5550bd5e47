"""Open KG reasoning (CPL, Fu et al. 2019): the text side -- distant supervision, the PCNN-ATT bag encoder,
held-out extraction metrics and the fact-extraction agent that suggests corpus edges to the reasoner -- and the
collaboration of the two agents (joint action space, alternating REINFORCE, adaptive sampling, replay), the
baselines (MINERVA, Two-Step) and the trainer (see docs/open.md).

    from kgreason.open import CPLConfig, train_cpl, explain_cpl

    result = train_cpl("family", "runs/cpl", CPLConfig.for_variant("cpl", subsample=0.2))
    for answer in explain_cpl("runs/cpl", "alice_phillips_1", "grandparent_of", top_k=3):
        print(answer)                                                   # text edges marked, with sentences

The pieces:

    from kgreason.open import build_bag_dataset, PCNNAttention, pretrain_extractor, FactExtractor

    bags = build_bag_dataset(dataset.metadata["corpus"], dataset)      # labels from dataset.train only
    train_bags, heldout = bags.split(0.2, seed=0)
    encoder = PCNNAttention.from_bag_dataset(bags)
    history = pretrain_extractor(encoder, train_bags, epochs=10, eval_bags=heldout)
    extractor = FactExtractor(encoder, bags, dataset.num_entities, known_triples=dataset.train)
    s = extractor.suggest(entities, k=5)                               # [b, k] relations/targets/scores/mask
"""

from kgreason.open.baselines import TwoStepSearch, augmented_graph, extracted_facts, select_threshold
from kgreason.open.collaboration import (
    KEPT,
    ORIGIN_NAMES,
    SUGGESTED,
    AdaptiveSampling,
    CollaborativeAgents,
    GuidedSampling,
    TextCandidateSource,
    TextEdgeMemory,
    beam_text_share,
    hops_to,
    reachability_adjacency,
    rewarded_text_edges,
    uses_text,
)
from kgreason.open.config import VARIANTS, CPLConfig, default_reasoner_config
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
from kgreason.open.replay import ReplayBatch, ReplayMemory, replay_log_probs
from kgreason.open.trainer import (
    CPLResult,
    CPLStatsCallback,
    CPLTrainingLoop,
    ExplainedAnswer,
    LoadedCPL,
    SelectionEvaluationCallback,
    TextEvidence,
    cpl_run_dataset,
    decoded_text_share,
    evaluate_cpl_run,
    explain_cpl,
    load_cpl,
    plot_text_share,
    train_cpl,
)

__all__ = [
    "KEPT",
    "NA_LABEL",
    "ORIGIN_NAMES",
    "SUGGESTED",
    "VARIANTS",
    "AdaptiveSampling",
    "CPLConfig",
    "CPLResult",
    "CPLStatsCallback",
    "CPLTrainingLoop",
    "CollaborativeAgents",
    "ExplainedAnswer",
    "GuidedSampling",
    "LoadedCPL",
    "ReplayBatch",
    "ReplayMemory",
    "SelectionEvaluationCallback",
    "TextCandidateSource",
    "TextEdgeMemory",
    "TextEvidence",
    "TwoStepSearch",
    "augmented_graph",
    "beam_text_share",
    "cpl_run_dataset",
    "decoded_text_share",
    "default_reasoner_config",
    "evaluate_cpl_run",
    "explain_cpl",
    "extracted_facts",
    "hops_to",
    "load_cpl",
    "plot_text_share",
    "reachability_adjacency",
    "replay_log_probs",
    "rewarded_text_edges",
    "select_threshold",
    "train_cpl",
    "uses_text",
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
