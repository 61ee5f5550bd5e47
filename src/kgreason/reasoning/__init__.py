"""Multi-hop reasoning by walking the graph (Lin et al. 2018, "Multi-Hop Knowledge Graph Reasoning with Reward
Shaping"): walk environment, policy network, REINFORCE with action dropout, knowledge-based reward shaping,
beam-search decoding, reasoning paths and the analyses of the paper. See docs/reasoning.md.

    from kgreason.reasoning import WalkerConfig, train_walker, explain
    result = train_walker("umls", "runs/umls-conve", "runs/umls-walker", WalkerConfig.preset("umls"))
"""

from kgreason.reasoning.analysis import (
    PathDiversityCallback,
    path_keys,
    relation_type_breakdown,
    seen_breakdown,
)
from kgreason.reasoning.beam_search import BeamSearchResult, BeamStep, WalkerScorer, beam_search
from kgreason.reasoning.config import ABLATIONS, PRESETS, WalkerConfig
from kgreason.reasoning.environment import (
    GRAPH_ORIGIN,
    ActionSpace,
    CandidateSource,
    Episode,
    ExtraActions,
    Queries,
    WalkEnvironment,
)
from kgreason.reasoning.paths import Answer, Path, PathStep, answers_from_beam, format_path
from kgreason.reasoning.policy import HistoryState, PolicyTables, WalkerPolicy, load_policy, save_policy
from kgreason.reasoning.reinforce import (
    MovingAverageBaseline,
    Rollout,
    action_dropout_distribution,
    reinforce_loss,
    sample_actions,
    sample_rollouts,
)
from kgreason.reasoning.reward import RewardShaper, binary_reward, shaped_reward
from kgreason.reasoning.trainer import (
    LoadedWalker,
    RewardStatsCallback,
    WalkerResult,
    WalkerTrainingLoop,
    build_environment,
    evaluate_walker_run,
    explain,
    load_walker,
    train_walker,
)

__all__ = [
    "ABLATIONS",
    "GRAPH_ORIGIN",
    "PRESETS",
    "ActionSpace",
    "Answer",
    "BeamSearchResult",
    "BeamStep",
    "CandidateSource",
    "Episode",
    "ExtraActions",
    "HistoryState",
    "LoadedWalker",
    "MovingAverageBaseline",
    "Path",
    "PathDiversityCallback",
    "PathStep",
    "PolicyTables",
    "Queries",
    "RewardShaper",
    "RewardStatsCallback",
    "Rollout",
    "WalkEnvironment",
    "WalkerConfig",
    "WalkerPolicy",
    "WalkerResult",
    "WalkerScorer",
    "WalkerTrainingLoop",
    "action_dropout_distribution",
    "answers_from_beam",
    "beam_search",
    "binary_reward",
    "build_environment",
    "evaluate_walker_run",
    "explain",
    "format_path",
    "load_policy",
    "load_walker",
    "path_keys",
    "reinforce_loss",
    "relation_type_breakdown",
    "sample_actions",
    "sample_rollouts",
    "save_policy",
    "seen_breakdown",
    "shaped_reward",
    "train_walker",
]
