"""The config of an open-KG-reasoning run (CPL, Fu et al. 2019), its variants, baselines and ablations.

One :class:`CPLConfig` describes a whole run and is saved as ``config.json``; the reasoner's settings are a nested
:class:`~kgreason.reasoning.config.WalkerConfig` (the same policy, REINFORCE, beam search and evaluation as the
walker). Variants (:data:`VARIANTS`) are plain configs::

    cfg = CPLConfig.for_variant("cpl")                       # the full framework
    cfg = CPLConfig.for_variant("minerva", subsample=0.2)    # the reasoner on the KG alone
    cfg = CPLConfig.for_variant("two_step")                  # PCNN-ATT extraction above a tuned threshold + walker
    cfg = CPLConfig.for_variant("no_replay")                 # ablations of Fig. 5

| variant | method | adaptive sampling | replay | extractor trained |
|---|---|---|---|---|
| ``cpl`` | cpl | yes | yes | yes |
| ``no_adaptive_sampling`` | cpl | no | yes | yes |
| ``no_replay`` | cpl | yes | no | yes |
| ``frozen_extractor`` | cpl | yes | yes | no |
| ``no_adaptive_sampling_frozen`` (Fig. 5's CPL1) | cpl | no | yes | no |
| ``minerva`` | minerva | | | |
| ``two_step`` | two_step | | | |
"""

# NB: no ``from __future__ import annotations`` here: :func:`kgreason.config.config_from_dict` needs the real
# field types to rebuild the nested WalkerConfig.

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kgreason.reasoning.config import WalkerConfig
from kgreason.registry import Registry

__all__ = ["CPL_RESUMABLE_KEYS", "METHODS", "VARIANTS", "CPLConfig", "default_reasoner_config"]

#: the training methods: CPL itself and the two baselines
METHODS = ("cpl", "minerva", "two_step")
#: what the extractor's reward reinforces (``CPLConfig.extractor_credit``)
EXTRACTOR_CREDITS = ("edge", "pair")
#: what steers the adaptive-sampling walks (:attr:`CPLConfig.adaptive_sampling_mode`)
ADAPTIVE_SAMPLING_MODES = ("policy", "guided")

#: fields that may change when a run is resumed (they do not change what is computed)
CPL_RESUMABLE_KEYS = frozenset(
    {"epochs", "device", "checkpoint_every", "data_dir", "corpus_path", "eval_batch_size"}
)


def default_reasoner_config() -> WalkerConfig:
    """The reasoner of the built-in ``family`` data: MINERVA's design (binary reward, no action dropout, moving-
    average baseline) at a size that trains a joint epoch in seconds on one CPU thread.

    ``dataset``, ``reward_model_dir``, ``reward_shaping``, ``epochs``, ``eval_every``, ``early_stopping`` and
    ``patience`` of the nested config are not used by CPL (see :class:`CPLConfig`).
    """
    return WalkerConfig(
        dataset="family",
        reward_shaping=False,
        num_steps=3,
        num_rollouts=20,
        max_actions=None,
        embedding_dim=64,
        history_dim=64,
        history_layers=1,
        embedding_dropout=0.0,
        ff_dropout=0.0,
        entity_scoring="dense",
        action_dropout=0.0,
        entropy_weight=0.02,
        baseline="moving_average",
        batch_size=128,
        lr=2e-3,
        grad_clip_norm=5.0,
        beam_size=64,
        eval_batch_size=64,
        track_paths=False,
        mask_known_answers=False,  # MINERVA's and CPL's test code decode over every edge
    )


@dataclass
class CPLConfig:
    """Everything that defines an open-KG-reasoning run; saved as ``config.json``.

    Attributes:
        dataset: dataset name (:func:`kgreason.data.registry.load_dataset`) or folder; a built-in generated
            dataset (``family``) is built with its corpus.
        data_dir: where datasets live (default ``$KGREASON_DATA_DIR``).
        corpus_path: the text corpus (``docs/corpus-format.md``); ``None``: the dataset's own (``family``'s
            generated corpus, or ``corpus.jsonl`` beside its triples).
        variant: the name this config was built from (:data:`VARIANTS`; informational).
        method: ``"cpl"``, ``"minerva"`` (reasoner on the KG alone) or ``"two_step"`` (extraction above a
            threshold tuned on valid, then the reasoner on the augmented KG).
        subsample, subsample_seed: keep this fraction of the training triples
            (:func:`kgreason.data.family.subsample_train`; 1.0 = all). Evaluation is still filtered with the
            *full* training split, valid and test (a fact dropped from the training graph is still true).
        reasoner: the reasoner's policy, REINFORCE, beam and batch settings (a :class:`WalkerConfig`; its
            ``epochs``/``eval_every``/``patience``/reward fields are unused: CPL has a binary reward, γ = 1).
        pretrain_epochs: epochs of reasoner pre-training on the KG alone before joint training (§4.2). Short
            on purpose: with the 30-epoch budget every method gets, each extra KG-only epoch is one joint epoch
            fewer, and joint training needs ~15 epochs to level off on the family data (10 pre-training epochs
            cost 12 Hits@10 at 50% against 2; docs/open.md "Shorter reasoner pre-training").
        epochs: total reasoner epochs (pre-training included); every method gets the same number.
        eval_every, patience: validation (tail, filtered MRR) every ``eval_every`` epochs of the selection stage
            (joint training for CPL, every epoch after the first for the baselines); the best validation epoch
            is kept (early stop after ``patience`` evaluations without improvement; ``None``: never stop).
        extractor_word_dim, extractor_position_dim, extractor_filters, extractor_dropout, max_sentence_len:
            PCNN-ATT sizes.
        extractor_pretrain_epochs, extractor_pretrain_lr: distant-supervision pre-training (Adam).
        extractor_lr: Adam learning rate of the extractor during joint training.
        extractor_supervision: weight of the distant-supervision loss (the pre-training objective, on
            ``extractor_supervision_batch`` random training instances) added to the extractor's REINFORCE loss in
            each of its turns, keeping it anchored to the corpus labels while it learns what helps the reasoner
            (the reference code made one supervised step per iteration). 0 turns it off.
        extractor_credit: what the extractor's reward reinforces: ``"edge"`` (the paper: ``log pi`` of the rewarded
            edge ``(r', e')``) or ``"pair"`` (``log`` of the summed policy of every relation of the rewarded edge's
            pair ``(e_t, e')``). The reward says that a walk through ``e'`` reached the answer, not that ``r'`` is
            the right relation (on the family corpus about half the rewarded text edges carry a wrong one); with
            ``"pair"`` the relation within a pair stays as distant supervision ranked it.
        extractor_on_policy: the extractor's reward comes only from the walks of its own turns, whose suggestions it
            sampled from its policy (REINFORCE's on-policy estimate), not from the adaptive-sampling walks (their
            text steps were forced by ``lambda``, so a walk that reached the answer through a wrongly labelled edge
            rewards it) nor from replayed paths (suggested by earlier extractors). ``False`` (the paper, the
            reference code): every text edge of those walks and records is rewarded too.
        suggestions: ``k``, edges the extractor suggests at every step (top-``k``; "no relation" and known
            edges excluded).
        suggestion_threshold: also require confidence ``p(r | bag) >= threshold`` (``None``: top-``k`` only).
        sample_suggestions: in its own training turns the extractor *samples* its ``k`` suggestions from its
            policy (Gumbel top-``k``; exploration for REINFORCE); in the reasoner's turns and at inference it takes
            its ``k`` most probable (the reasoner trains with the extractor it is deployed with).
        reasoner_iterations, extractor_iterations: alternating training: in each cycle of batches, the reasoner
            is trained on the first ``reasoner_iterations`` (extractor frozen), then the extractor on the next
            ``extractor_iterations`` (reasoner frozen).
        freeze_extractor: never train the extractor (ablation).
        adaptive_sampling: initial probability ``lambda`` of drawing a walker's action from the policy restricted
            to the text edges on offer (instead of from the whole policy, or from the actions that can still reach
            the answer: ``adaptive_sampling_mode``) in the extra walks that generate experience (replay, kept
            edges, extractor reward); annealed linearly to 0 over ``adaptive_sampling_epochs`` joint epochs, and
            the extra walks stop with it. 0 turns it off (ablation).
        adaptive_sampling_mode: ``"guided"`` (the default since 2026-12-07; the reference code's warm start: the
            extra walks only take actions from which the training answer can still be reached, over graph edges
            and corpus pairs, and among those text edges with priority ``lambda``;
            :class:`~kgreason.open.collaboration.GuidedSampling`) or ``"policy"`` (the extra walks follow the
            policy, text edges raised by ``lambda``: on the family data CPL scores 7.7 Hits@10 lower with it at
            50%, and adaptive sampling then costs instead of helping; docs/open.md "Guided adaptive sampling").
        replay: keep a replay memory of positive paths (query, actions taken, their origins) and add a
            REINFORCE term on ``replay_batch_size`` of them to every update (ablation: off);
            ``replay_capacity`` records, ``replay_weight`` the weight of the term.
        keep_rewarded_edges: text edges on a positive training path stay available (as text edges, per query,
            never written into the graph); the others are dropped when the agents move on.
        kept_edges_in_graph: kept edges count as graph edges for the extractor (the paper's "rewarded edges stay
            in the graph"): it suggests its top-``k`` *beyond* the kept edges of ``e_t``, and its reward credits only
            its own suggestions, not kept edges taken again. ``False``: its top-``k`` may repeat kept edges and every
            text edge on a positive walk is credited (on the family data the trained extractor's top-8 then
            repeat kept edges 93-94% of the time; with this option both CPL and the frozen extractor score lower there:
            docs/open.md "Fig. 5 as the paper ran it").
        kept_edges_per_entity: at most this many kept edges are offered out of an entity (most rewarded first).
        kept_edge_min_count: a kept edge is offered once it has been rewarded this many times.
        mask_query_pair_text: on a training query ``(e_s, r_q, e_o)`` no text edge between ``e_s`` and ``e_o`` is
            offered (the text analogue of MINERVA's removal of the query edge: a sentence about the query pair
            states the answer, a shortcut held-out queries do not have).
        two_step_thresholds: the thresholds tried by Two-Step (the best on validation is kept).
        two_step_added_queries: Two-Step also trains on its added facts as queries (the augmented KG is its
            training set); ``False``: only the training graph's own triples are queries (a diagnostic).
        seed, device, checkpoint_every.
    """

    dataset: str = "family"
    data_dir: str | None = None
    corpus_path: str | None = None
    variant: str = "cpl"
    method: str = "cpl"
    subsample: float = 1.0
    subsample_seed: int = 0
    reasoner: WalkerConfig = field(default_factory=default_reasoner_config)
    pretrain_epochs: int = 2
    epochs: int = 30
    eval_every: int = 2
    patience: int | None = None
    extractor_word_dim: int = 50
    extractor_position_dim: int = 5
    extractor_filters: int = 100
    extractor_dropout: float = 0.5
    max_sentence_len: int = 120
    extractor_pretrain_epochs: int = 5
    extractor_pretrain_lr: float = 1e-3
    extractor_lr: float = 1e-4
    extractor_supervision: float = 0.0
    extractor_supervision_batch: int = 64
    extractor_credit: str = "edge"
    extractor_on_policy: bool = False
    suggestions: int = 8
    suggestion_threshold: float | None = None
    sample_suggestions: bool = True
    reasoner_iterations: int = 4
    extractor_iterations: int = 1
    freeze_extractor: bool = False
    adaptive_sampling: float = 0.5
    adaptive_sampling_epochs: int = 5
    adaptive_sampling_mode: str = "guided"
    replay: bool = True
    replay_capacity: int = 4000
    replay_batch_size: int = 64
    replay_weight: float = 1.0
    keep_rewarded_edges: bool = True
    kept_edges_in_graph: bool = False
    kept_edges_per_entity: int = 16
    kept_edge_min_count: int = 1
    mask_query_pair_text: bool = True
    two_step_thresholds: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7])
    two_step_added_queries: bool = True
    seed: int = 42
    device: str | None = None
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.reasoner, dict):  # e.g. built from a CLI override dict
            from kgreason.config import config_from_dict

            self.reasoner = config_from_dict(WalkerConfig, self.reasoner)
        if self.extractor_credit not in EXTRACTOR_CREDITS:
            raise ValueError(
                f"extractor_credit must be one of {', '.join(EXTRACTOR_CREDITS)}, got {self.extractor_credit!r}"
            )
        if self.adaptive_sampling_mode not in ADAPTIVE_SAMPLING_MODES:
            raise ValueError(
                f"adaptive_sampling_mode must be one of {', '.join(ADAPTIVE_SAMPLING_MODES)}, "
                f"got {self.adaptive_sampling_mode!r}"
            )
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.reasoner.rerank_weight != 0.0:
            raise ValueError(
                f"reasoner.rerank_weight={self.reasoner.rerank_weight}: re-ranking by a reward model is for "
                "walker runs (kgreason train walker); CPL's reasoner has no KGE reward model"
            )
        if not 0.0 < self.subsample <= 1.0:
            raise ValueError(f"subsample must be in (0, 1], got {self.subsample}")
        if self.epochs < 1 or self.pretrain_epochs < 0:
            raise ValueError(
                f"need epochs >= 1 and pretrain_epochs >= 0, got {self.epochs}, {self.pretrain_epochs}"
            )
        if self.method == "cpl" and self.pretrain_epochs >= self.epochs:
            raise ValueError(
                f"CPL needs joint epochs: epochs ({self.epochs}) must exceed pretrain_epochs ({self.pretrain_epochs})"
            )
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")
        if self.suggestions < 1:
            raise ValueError(f"suggestions must be >= 1, got {self.suggestions}")
        if not 0.0 <= self.adaptive_sampling <= 1.0:
            raise ValueError(f"adaptive_sampling must be in [0, 1], got {self.adaptive_sampling}")
        if self.reasoner_iterations < 1 or self.extractor_iterations < 0:
            raise ValueError("need reasoner_iterations >= 1 and extractor_iterations >= 0")
        if self.replay and (self.replay_capacity < 1 or self.replay_batch_size < 1):
            raise ValueError("replay needs replay_capacity >= 1 and replay_batch_size >= 1")
        if self.method == "two_step" and not self.two_step_thresholds:
            raise ValueError("two_step needs at least one threshold in two_step_thresholds")

    # ---- derived ------------------------------------------------------------------------------------------

    @property
    def joint_epochs(self) -> int:
        """Epochs of joint training (CPL) = ``epochs - pretrain_epochs``."""
        return self.epochs - self.pretrain_epochs

    @property
    def uses_text(self) -> bool:
        """Whether the run reads the corpus (CPL and Two-Step)."""
        return self.method != "minerva"

    @property
    def trains_extractor(self) -> bool:
        return self.method == "cpl" and not self.freeze_extractor and self.extractor_iterations > 0

    def adaptive_sampling_at(self, epoch: int) -> float:
        """``lambda`` in (1-based, counted over all epochs) ``epoch``: 0 before joint training, then annealed
        linearly from :attr:`adaptive_sampling` to 0 over ``adaptive_sampling_epochs`` joint epochs."""
        joint = epoch - self.pretrain_epochs
        if self.method != "cpl" or joint < 1 or self.adaptive_sampling_epochs < 1:
            return 0.0
        return self.adaptive_sampling * max(0.0, 1.0 - (joint - 1) / self.adaptive_sampling_epochs)

    def is_joint_epoch(self, epoch: int) -> bool:
        """Whether (1-based) ``epoch`` is a joint-training epoch (text on)."""
        return self.method == "cpl" and epoch > self.pretrain_epochs

    # ---- variants -----------------------------------------------------------------------------------------

    @classmethod
    def for_variant(cls, name: str = "cpl", **overrides: Any) -> "CPLConfig":
        """A config of variant ``name`` (:data:`VARIANTS`) with ``overrides`` on top."""
        values: dict[str, Any] = dict(VARIANTS.get(name))
        values["variant"] = VARIANTS.canonical(name)
        values.update(overrides)
        return cls(**values)

    def with_variant(self, name: str) -> "CPLConfig":
        """A copy of this config switched to variant ``name`` (every other setting kept)."""
        base = CPLConfig()
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("method", "adaptive_sampling", "replay", "freeze_extractor"):
            values[key] = getattr(base, key)  # undo the previous variant
        values.update(VARIANTS.get(name))
        values["variant"] = VARIANTS.canonical(name)
        values["reasoner"] = dataclasses.replace(self.reasoner)
        return CPLConfig(**values)


#: variants: the full model, the two baselines and the ablations of Fig. 5 (config changes)
VARIANTS: Registry[dict[str, Any]] = Registry("CPL variant")
VARIANTS.add("cpl", {}, "full")
VARIANTS.add("minerva", {"method": "minerva"})
VARIANTS.add("two_step", {"method": "two_step"}, "two-step", "twostep")
VARIANTS.add("no_adaptive_sampling", {"adaptive_sampling": 0.0}, "-as", "no_as")
VARIANTS.add("no_replay", {"replay": False}, "-replay")
VARIANTS.add("frozen_extractor", {"freeze_extractor": True}, "frozen")
VARIANTS.add("no_adaptive_sampling_frozen", {"adaptive_sampling": 0.0, "freeze_extractor": True}, "cpl1")
