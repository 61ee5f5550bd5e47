"""Training CPL (and its baselines), writing the run directory, and explaining answers with text evidence.

    cfg = CPLConfig.for_variant("cpl", subsample=0.2)
    result = train_cpl("family", "runs/family-cpl-20", cfg)          # family comes with its corpus
    print(result.metrics.metrics["tail.realistic.hits_at_10"])       # filtered, tail-only, test
    for answer in explain_cpl("runs/family-cpl-20", "alice_phillips_1", "grandparent_of", top_k=3):
        print(answer)                                                # text edges marked, with their sentences

Stages of a CPL run (Fu et al. 2019, §3.3 and §4.2), all in one
:class:`~kgreason.training.loop.TrainingLoop` (checkpoints, resume and callbacks as every other loop):

1. the extractor is pre-trained on the distant-supervision bags (labels from the *training graph* only);
2. epochs ``1..pretrain_epochs``: the reasoner is pre-trained on the KG alone (MINERVA);
3. the remaining epochs are joint training: the walk environment offers the extractor's suggestions as extra
   actions, batches alternate between training the reasoner (extractor frozen; REINFORCE, γ = 1, plus replayed
   positive paths) and training the extractor (reasoner frozen; REINFORCE, γ = 0, reward 1 for a text edge on a
   positive path); rewarded text edges are kept. Adaptive sampling (annealed) generates extra walks with raised
   text priority whose positive paths feed the replay memory, the kept edges and the extractor's reward -- never
   the reasoner's on-policy gradient, which it would bias.

Model selection uses the **validation** split only (tail queries, filtered MRR, evaluated during joint training);
the test split is decoded once, at the end, with the selected weights. MINERVA and Two-Step are configurations of
the same loop (see :mod:`kgreason.open.baselines`).

Run directory::

    config.json                  the CPLConfig
    entities.json relations.json vocabularies (position = id)
    graph.pt                     the walk graph's triples (Two-Step: augmented) and the extractor's excluded edges
    bags.pt                      the encoded corpus (sentence bags; CPL and Two-Step), so explain needs no corpus
    extractor_pretrained.pt      the extractor after distant supervision (reused when resuming)
    checkpoints/checkpoint.pt    training state (resumed automatically); checkpoints/best_weights.pt
    model.pt model.json          the reasoner (best validation epoch)
    extractor.pt text_edges.pt   the extractor and the kept text edges (CPL; best validation epoch)
    two_step.json                the threshold search (Two-Step)
    losses.csv losses.png        per epoch: loss, rewards, text-path share, kept edges, validation metrics
    text_share.png               Fig. 4: validation Hits@10 and the share of positive paths using a text edge
    metrics.json                 test metrics (tail, filtered): ``tail.{optimistic,pessimistic,realistic}.*``
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kgreason.config import config_from_dict, load_config_dict
from kgreason.data.corpus import CorpusSentence, WordVocabulary, read_corpus
from kgreason.data.dataset import Dataset
from kgreason.data.graph import ActionGraph, isin_rows
from kgreason.data.vocabulary import Vocabulary
from kgreason.evaluation.evaluator import EvaluationResult
from kgreason.io import atomic_torch_save, write_json
from kgreason.open.baselines import TwoStepSearch, augmented_graph, extracted_facts, select_threshold
from kgreason.open.collaboration import (
    ORIGIN_NAMES,
    SUGGESTED,
    AdaptiveSampling,
    CollaborativeAgents,
    GuidedSampling,
    TextCandidateSource,
    TextEdgeMemory,
    beam_text_share,
    reachability_adjacency,
    rewarded_text_edges,
    uses_text,
)
from kgreason.open.config import CPL_RESUMABLE_KEYS, CPLConfig
from kgreason.open.distant_supervision import BagDataset, build_bag_dataset
from kgreason.open.encoder import (
    PCNNAttention,
    class_weights,
    distant_supervision_loss,
    pretrain_extractor,
    training_instances,
)
from kgreason.open.extractor import FactExtractor, SupportingSentence
from kgreason.open.extractor import reinforce_loss as extractor_reinforce_loss
from kgreason.open.replay import ReplayMemory, replay_log_probs
from kgreason.reasoning.beam_search import WalkerScorer, beam_search
from kgreason.reasoning.config import WalkerConfig
from kgreason.reasoning.environment import Queries, WalkEnvironment
from kgreason.reasoning.paths import Answer, answers_from_beam, format_path
from kgreason.reasoning.policy import WalkerPolicy, save_policy
from kgreason.reasoning.reinforce import reinforce_loss, sample_rollouts
from kgreason.reasoning.reward import shaped_reward
from kgreason.reasoning.trainer import (
    GRAPH_FILE,
    LoadedWalker,
    RewardStatsCallback,
    RolloutTrainingLoop,
    build_policy,
    read_walker_files,
    save_graph,
)
from kgreason.training.callbacks import (
    EarlyStoppingCallback,
    EvaluationCallback,
    GradientClippingCallback,
    TrainingCallback,
)
from kgreason.training.loop import TrainingHistory
from kgreason.training.run_dir import (
    CONFIG_FILE,
    best_weights_path,
    check_run_dir,
    checkpoints_dir,
    timed_train,
    write_run_config,
    write_training_outputs,
)
from kgreason.training.utils import resolve_device, set_seed
from kgreason.typing import LongTensor

__all__ = [
    "CPLResult",
    "CPLStatsCallback",
    "CPLTrainingLoop",
    "ExplainedAnswer",
    "LoadedCPL",
    "SelectionEvaluationCallback",
    "TextEvidence",
    "cpl_run_dataset",
    "decoded_text_share",
    "evaluate_cpl_run",
    "explain_cpl",
    "load_cpl",
    "plot_text_share",
    "train_cpl",
]

BAGS_FILE = "bags.pt"
PRETRAINED_EXTRACTOR_FILE = "extractor_pretrained.pt"
EXTRACTOR_FILE = "extractor.pt"
TEXT_EDGES_FILE = "text_edges.pt"
TWO_STEP_FILE = "two_step.json"
TEXT_SHARE_PLOT = "text_share.png"

#: the validation metric that selects the model (tail queries, filtered, realistic MRR)
SELECTION_METRIC = "valid.tail.realistic.mrr"


# ---- the training loop ---------------------------------------------------------------------------------------


class CPLTrainingLoop(RolloutTrainingLoop):
    """Alternating REINFORCE training of the reasoner and the extractor (see the module docstring); batches,
    baseline and ``last_rollout``/``last_rewards`` are the walker's (:class:`RolloutTrainingLoop`).

    A batch is ``LongTensor[b, 3]`` of training triples (queries with answers). Its loss is either the reasoner's
    (REINFORCE with γ = 1 and the walker's entropy bonus and baseline, plus ``replay_weight`` times REINFORCE on
    replayed positive paths) or, in the extractor's turn, the extractor's (REINFORCE with γ = 0 on the text edges
    of positive paths). After each batch ``last_rollout``, ``last_rewards``, ``last_phase`` (``"pretrain"``,
    ``"reasoner"`` or ``"extractor"``) and ``last_text_edges`` describe it (for callbacks).

    Args:
        agents: the reasoner, the extractor (``None`` for the KG-only baselines) and the kept text edges.
        env: the walk environment; for CPL its ``candidate_source`` is ``source``.
        triples: ``LongTensor[n, 3]`` training queries.
        config: the run's :class:`CPLConfig`.
        source: the text candidate source (CPL only); switched on in joint epochs.
        callbacks: training callbacks.
        device: overrides ``config.device``.
    """

    resumable_keys = CPL_RESUMABLE_KEYS

    def __init__(
        self,
        agents: CollaborativeAgents,
        env: WalkEnvironment,
        triples: LongTensor,
        config: CPLConfig,
        source: TextCandidateSource | None = None,
        callbacks: TrainingCallback | Sequence[TrainingCallback] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        dev = resolve_device(device if device is not None else config.device)
        agents.to(dev)
        groups: list[dict[str, Any]] = [
            {"params": list(agents.policy.parameters()), "lr": config.reasoner.lr}
        ]
        if agents.extractor is not None and config.trains_extractor:
            params = [p for p in agents.extractor.parameters() if p.requires_grad]
            groups.append({"params": params, "lr": config.extractor_lr})
        super().__init__(
            agents,
            env,
            triples,
            config.reasoner,
            optimizer=torch.optim.Adam(groups),
            device=dev,
            seed=config.seed,
            callbacks=callbacks,
            config=config,
        )
        self.cpl_config = config
        self.source = source
        if source is not None:
            source.generator = self.generator
            source.enabled = False
        self.adaptive = self._adaptive_hook(env, agents)
        self.ds_instances: LongTensor | None = None  # distant-supervision anchor of the extractor's turns
        self.ds_weights: torch.Tensor | None = None
        if agents.extractor is not None and config.trains_extractor and config.extractor_supervision > 0:
            self.ds_instances = training_instances(agents.extractor.bags).to(self.device)
            self.ds_weights = class_weights(agents.extractor.bags).to(self.device)
        self.replay = (
            ReplayMemory(config.replay_capacity, config.reasoner.num_steps, self.device)
            if config.method == "cpl" and config.replay
            else None
        )
        self.last_phase = "pretrain"
        self.last_text_edges: LongTensor | None = None
        self.last_boosted_hits: tuple[int, int] | None = None  # (positive, all) adaptive-sampling walks

    def _adaptive_hook(self, env: WalkEnvironment, agents: CollaborativeAgents) -> AdaptiveSampling:
        cfg = self.cpl_config
        if cfg.adaptive_sampling_mode != "guided" or cfg.method != "cpl" or cfg.adaptive_sampling == 0:
            return AdaptiveSampling()  # no hop counts needed where lambda stays 0
        pairs = agents.extractor.bags.pairs if agents.extractor is not None else None
        return GuidedSampling(reachability_adjacency(env.graph, pairs), env.num_steps)

    @property
    def agents(self) -> CollaborativeAgents:
        return self.model  # type: ignore[return-value]

    @property
    def policy(self) -> WalkerPolicy:
        return self.agents.policy

    def batches(self, epoch: int) -> Iterator[LongTensor]:
        """Every training query once per epoch for the reasoner (shuffled batches, as the walker's loop); in joint
        epochs where the extractor trains, its turns are *extra* batches of queries drawn at random: after every
        ``reasoner_iterations`` reasoner batches come ``extractor_iterations`` extractor batches. The reasoner so
        gets as many updates as in every other variant (the frozen-extractor ablation included)."""
        cfg = self.cpl_config
        reasoner_batches = super().batches(epoch)
        if self.phase(epoch, cfg.reasoner_iterations) != "extractor":
            yield from reasoner_batches
            return
        n, bs = self.triples.shape[0], cfg.reasoner.batch_size
        for i, batch in enumerate(reasoner_batches, 1):
            yield batch
            if i % cfg.reasoner_iterations == 0:
                for _ in range(cfg.extractor_iterations):
                    pick = torch.randint(
                        n, (min(bs, n),), generator=self.generator, device=self.generator.device
                    )
                    yield self.triples[pick.to(self.device)]

    def phase(self, epoch: int, batch_index: int) -> str:
        """``"pretrain"`` (KG only), ``"reasoner"`` or ``"extractor"`` for batch ``batch_index`` of ``epoch``."""
        cfg = self.cpl_config
        if not cfg.is_joint_epoch(epoch):
            return "pretrain"
        if not cfg.trains_extractor or self.agents.extractor is None:
            return "reasoner"
        cycle = cfg.reasoner_iterations + cfg.extractor_iterations
        return "extractor" if batch_index % cycle >= cfg.reasoner_iterations else "reasoner"

    def set_text(self, enabled: bool, explore: bool = False) -> None:
        """Switch the text candidates on or off, and the extractor's exploration (no-op without a source)."""
        if self.source is not None:
            self.source.enabled = enabled
            self.source.explore = enabled and explore

    def batch_loss(self, batch: LongTensor) -> torch.Tensor:
        cfg, rc = self.cpl_config, self.cpl_config.reasoner
        epoch = self.epoch + 1
        phase = self.phase(epoch, self.batch_index)
        joint = phase != "pretrain"
        self.set_text(joint, explore=phase == "extractor" and cfg.sample_suggestions)
        self.adaptive.rate = cfg.adaptive_sampling_at(epoch)
        episode = self.env.start(Queries.from_triples(batch), training=True)
        grad = contextlib.nullcontext() if phase != "extractor" else torch.no_grad()
        with grad:  # on-policy walks: the reasoner's REINFORCE (and the extractor's reward in its turns)
            rollout = sample_rollouts(
                self.policy,
                episode,
                rc.num_rollouts,
                action_dropout=rc.action_dropout_at(epoch),
                epsilon=rc.action_dropout_epsilon,
                generator=self.generator,
            )
        rewards = shaped_reward(
            episode.queries, rollout.final_entities, rc.num_rollouts, None
        )  # binary, γ = 1
        positive = rewards > 0
        text_edges = rewarded_text_edges(rollout, positive)
        # the extractor's reward: every text edge of a positive walk, or (kept edges in the graph) its suggestions only
        credit_kept = not cfg.kept_edges_in_graph
        # adaptive sampling: extra experience with raised text priority (never in the on-policy gradient)
        boosted, boosted_positive, boosted_edges = None, None, text_edges[:0]
        self.last_boosted_hits = None
        own_turn_only = phase == "extractor" and cfg.extractor_on_policy  # boosted walks would not be used
        if joint and self.adaptive.rate > 0 and not own_turn_only:
            if isinstance(self.adaptive, GuidedSampling):
                assert episode.queries.targets is not None
                self.adaptive.aim(episode.queries.targets, rc.num_rollouts)
            with torch.no_grad():
                boosted = sample_rollouts(
                    self.policy,
                    episode,
                    rc.num_rollouts,
                    action_dropout=rc.action_dropout_at(epoch),
                    epsilon=rc.action_dropout_epsilon,
                    generator=self.generator,
                    sampling_hook=self.adaptive,
                )
            boosted_positive = boosted.hits()
            self.last_boosted_hits = (int(boosted_positive.sum()), int(boosted_positive.numel()))
            boosted_edges = rewarded_text_edges(boosted, boosted_positive)
        replayed = None
        if joint and self.replay is not None and len(self.replay):
            replayed = self.replay.sample(cfg.replay_batch_size, self.generator)
        if phase == "extractor":
            if credit_kept:
                parts = [text_edges, boosted_edges]
            else:
                parts = [rewarded_text_edges(rollout, positive, suggested_only=True)]
                if boosted is not None and boosted_positive is not None:
                    parts.append(rewarded_text_edges(boosted, boosted_positive, suggested_only=True))
            if cfg.extractor_on_policy:
                parts = parts[:1]  # its own turn's walks only
            elif replayed is not None:
                parts.append(replayed.text_edges(None if credit_kept else SUGGESTED))
            loss = self._extractor_loss(torch.cat(parts))
        else:
            baseline = self.baseline_for(rewards)
            loss = reinforce_loss(
                rollout.log_probs,
                rollout.entropy,
                rewards,
                baseline=baseline,
                entropy_weight=rc.entropy_weight_at(epoch),
                normalize_advantage=rc.normalize_advantage,
            )
            if replayed is not None and len(replayed):
                log_probs = replay_log_probs(self.policy, self.env, replayed)  # [n, T], the stored actions
                # replayed paths reached their answer (reward 1); their advantage uses the batch's mean baseline
                mean_baseline = float(baseline.mean()) if isinstance(baseline, torch.Tensor) else baseline
                loss = loss - cfg.replay_weight * (1.0 - mean_baseline) * log_probs.sum(dim=1).mean()
            if self.baseline is not None:
                self.baseline.update(rewards)
        if phase == "reasoner":
            # experience bookkeeping, after the replay draw (a batch is not replayed at once). Only the walks of
            # the reasoner's turns count, where the extractor acts as deployed (its top-k): exploratory draws of
            # the extractor's turns train the extractor, they neither stay in the graph nor enter the replay
            if self.agents.memory is not None:
                self.agents.memory.add(torch.cat([text_edges, boosted_edges]))  # rewarded edges stay
            if self.replay is not None:
                self.replay.add_rollout(rollout, positive)
                if boosted is not None and boosted_positive is not None:
                    self.replay.add_rollout(boosted, boosted_positive)
        self.last_rollout = rollout
        self.last_rewards = rewards.detach()
        self.last_phase = phase
        self.last_text_edges = text_edges
        return loss

    def _extractor_loss(self, edges: LongTensor) -> torch.Tensor:
        """REINFORCE with γ = 0: ``-mean log pi_E(edge | e_t)`` over rewarded text edges (``LongTensor[m, 3]``)."""
        extractor = self.agents.extractor
        assert extractor is not None
        loss = torch.zeros((), device=self.device, requires_grad=True)
        if edges.numel():
            log_probs = extractor.log_prob(
                edges[:, 0], edges[:, 1], edges[:, 2], pair=self.cpl_config.extractor_credit == "pair"
            )
            if bool(torch.isfinite(log_probs).any()):
                loss = extractor_reinforce_loss(log_probs, torch.ones_like(log_probs))
        cfg = self.cpl_config
        if cfg.extractor_supervision > 0 and self.ds_instances is not None and len(self.ds_instances):
            pick = torch.randint(
                len(self.ds_instances),
                (cfg.extractor_supervision_batch,),
                generator=self.generator,
                device=self.generator.device,
            ).to(self.device)
            loss = loss + cfg.extractor_supervision * distant_supervision_loss(
                extractor.encoder, extractor.bags, self.ds_instances[pick], self.ds_weights
            )
        return loss

    def extra_state_dict(self) -> dict[str, Any]:
        return {
            **super().extra_state_dict(),
            "replay": self.replay.state_dict() if self.replay is not None else None,
        }

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        super().load_extra_state_dict(state)
        if self.replay is not None and state.get("replay"):
            self.replay.load_state_dict(state["replay"])


class CPLStatsCallback(TrainingCallback):
    """Per-epoch statistics of a :class:`CPLTrainingLoop` (recorded as loop metrics): ``train.text_path_share``
    (positive walks that took a text edge / positive walks; joint epochs), ``train.reasoner_loss``,
    ``train.extractor_loss``, ``train.kept_edges``, ``train.replay_size``, ``train.adaptive_sampling`` and
    ``train.adaptive_hit_rate`` (share of the adaptive-sampling walks that reach the answer; epochs with any). Also
    invalidates the extractor's score cache after each extractor update."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.positive = 0
        self.text = 0
        self.boosted = [0, 0]  # adaptive-sampling walks: positive, all
        self.losses: dict[str, list[float]] = {"reasoner": [], "extractor": [], "pretrain": []}

    def on_batch(self, epoch: int, batch: Any, batch_loss: float, **kwargs: Any) -> None:
        loop: CPLTrainingLoop = self.loop  # type: ignore[assignment]
        self.losses[loop.last_phase].append(batch_loss)

    def post_batch(self, epoch: int, batch: Any, **kwargs: Any) -> None:
        loop: CPLTrainingLoop = self.loop  # type: ignore[assignment]
        if loop.last_phase == "extractor" and loop.agents.extractor is not None:
            loop.agents.extractor.invalidate_cache()
        if loop.last_boosted_hits is not None:
            self.boosted[0] += loop.last_boosted_hits[0]
            self.boosted[1] += loop.last_boosted_hits[1]
        rollout, rewards = loop.last_rollout, loop.last_rewards
        if rollout is None or rewards is None:
            return
        positive = rewards > 0
        self.positive += int(positive.sum())
        if rollout.origins is not None:
            self.text += int((positive & uses_text(rollout.origins)).sum())

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        loop: CPLTrainingLoop = self.loop  # type: ignore[assignment]
        cfg = loop.cpl_config
        metrics: dict[str, float] = {"train.adaptive_sampling": cfg.adaptive_sampling_at(epoch)}
        for phase in ("reasoner", "extractor"):
            if self.losses[phase]:
                metrics[f"train.{phase}_loss"] = sum(self.losses[phase]) / len(self.losses[phase])
        if cfg.is_joint_epoch(epoch):
            metrics["train.text_path_share"] = self.text / max(self.positive, 1)
        if self.boosted[1]:
            metrics["train.adaptive_hit_rate"] = self.boosted[0] / self.boosted[1]
        if loop.agents.memory is not None:
            metrics["train.kept_edges"] = float(loop.agents.memory.num_offered())
        if loop.replay is not None:
            metrics["train.replay_size"] = float(len(loop.replay))
        loop.record_metrics(epoch, metrics)
        self._reset()


def decoded_text_share(
    policy: WalkerPolicy,
    env: WalkEnvironment,
    triples: LongTensor,
    beam_size: int,
    batch_size: int = 64,
    mask_known_answers: bool = False,
) -> dict[str, float]:
    """Decode ``triples: LongTensor[n, 3]`` (as tail queries) and measure, over the queries whose answer the beam
    reaches, the share whose best path to the answer uses a text edge (Fig. 4's "suggested edge / positive path",
    on decoded paths). Returns ``{"text_path_share", "reached"}`` (``reached``: fraction of queries reached).
    ``mask_known_answers``: decode as :func:`~kgreason.reasoning.beam_search.beam_search` does with it."""
    reached_n, text_n = 0, 0
    triples = triples.to(env.device)
    with torch.no_grad():
        for chunk in triples.split(batch_size):
            result = beam_search(
                policy,
                env,
                Queries(chunk[:, 0], chunk[:, 1]),
                beam_size,
                return_trace=True,
                mask_known_answers=mask_known_answers,
            )
            reached, text = beam_text_share(result, chunk[:, 2])
            reached_n += int(reached.sum())
            text_n += int(text.sum())
    return {"text_path_share": text_n / max(reached_n, 1), "reached": reached_n / max(len(triples), 1)}


class SelectionEvaluationCallback(EvaluationCallback):
    """Validation during the model-selection stage: every ``every`` epochs after epoch ``start`` and at the last
    epoch. With ``text_share`` the decoded text-path share (:func:`decoded_text_share`) is recorded too, as
    ``valid.text_path_share`` and ``valid.reached``."""

    def __init__(
        self,
        evaluator: Any,
        triples: torch.Tensor,
        scorer: Any,
        start: int = 0,
        every: int = 1,
        text_share: WalkerScorer | None = None,
    ) -> None:
        super().__init__(evaluator, triples, scorer=scorer, split="valid", every=every, sides=("tail",))
        self.start = start
        self.text_share = text_share

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        last = epoch == self.loop.num_epochs or self.loop.stop_training
        if epoch <= self.start or not ((epoch - self.start) % self.every == 0 or last):
            return
        result = self.evaluate()
        self.results.append((epoch, result))
        metrics = {f"valid.{k}": float(v) for k, v in result.metrics.items()}
        if self.text_share is not None:
            was_training = self.model.training
            self.model.eval()
            try:
                share = decoded_text_share(
                    self.text_share.policy,
                    self.text_share.env,
                    self.triples,
                    self.text_share.beam_size,
                    self.text_share.batch_size,
                    self.text_share.mask_known_answers,
                )
            finally:
                self.model.train(was_training)
            metrics.update({f"valid.{k}": v for k, v in share.items()})
        self.loop.record_metrics(epoch, metrics)


# ---- results, run directory helpers --------------------------------------------------------------------------


@dataclass
class CPLResult:
    """What :func:`train_cpl` returns.

    ``dataset``: the (sub-sampled) dataset trained on; ``metrics``: the test :class:`EvaluationResult` (tail,
    filtered with the full training split, valid and test) or ``None``; ``test_text_share``: the decoded
    text-path share on test (CPL); ``best_epoch``: the selected (validation) epoch; ``two_step``: the threshold
    search (Two-Step); ``epoch_seconds``: wall time of every training epoch.
    """

    config: CPLConfig
    dataset: Dataset
    agents: CollaborativeAgents
    env: WalkEnvironment
    loop: CPLTrainingLoop
    losses: list[float]
    metrics: Any
    run_dir: Path | None
    train_seconds: float
    best_epoch: int | None
    extractor_pretrain_seconds: float = 0.0
    test_text_share: dict[str, float] = field(default_factory=dict)
    two_step: TwoStepSearch | None = None

    @property
    def history(self) -> TrainingHistory:
        return self.loop.history

    @property
    def epoch_seconds(self) -> list[float]:
        return list(self.loop.history.seconds)

    def scorer(self, beam_size: int | None = None) -> WalkerScorer:
        """A :class:`WalkerScorer` over the trained agents (text candidates on for CPL)."""
        return _reasoner_scorer(self.agents.policy, self.env, self.config.reasoner, beam_size)

    def test_summary(self) -> dict[str, float]:
        """``{"hits_at_5", "hits_at_10", "mrr"}`` of the test split (tail, filtered, realistic)."""
        if self.metrics is None:
            return {}
        m = self.metrics.metrics
        return {k: float(m[f"tail.realistic.{k}"]) for k in ("hits_at_5", "hits_at_10", "mrr")}


def _reasoner_env(
    graph: ActionGraph, rc: WalkerConfig, source: TextCandidateSource | None = None
) -> WalkEnvironment:
    """The reasoner's environment over ``graph`` (text candidates from ``source``), with ``rc``'s masks."""
    return WalkEnvironment(
        graph,
        rc.num_steps,
        candidate_source=source,
        mask_no_op_on_known_answers=rc.mask_no_op_on_known_answers,
    )


def _reasoner_scorer(
    policy: WalkerPolicy, env: WalkEnvironment, rc: WalkerConfig, beam_size: int | None = None
) -> WalkerScorer:
    """Beam-search scorer of the reasoner, decoding as ``rc`` says (beam, batch, last-step mask)."""
    return WalkerScorer(
        policy,
        env,
        beam_size or rc.beam_size,
        batch_size=rc.eval_batch_size,
        mask_known_answers=rc.mask_known_answers,
    )


def _load_dataset(dataset: str | os.PathLike[str] | Dataset, cfg: CPLConfig) -> Dataset:
    if isinstance(dataset, Dataset):
        return dataset
    from kgreason.data.registry import find_dataset, load_dataset

    name = os.fspath(dataset)
    with contextlib.suppress(Exception):
        if find_dataset(name, cfg.data_dir).source == "builtin":
            return load_dataset(name, data_dir=cfg.data_dir, with_corpus=cfg.uses_text)
    return load_dataset(name, data_dir=cfg.data_dir)


def _corpus(ds: Dataset, corpus_path: str | os.PathLike[str] | None) -> Sequence[CorpusSentence]:
    if corpus_path is not None:
        return read_corpus(corpus_path, entities=ds.entities).sentences
    if ds.metadata.get("corpus") is not None:
        return ds.metadata["corpus"]  # type: ignore[no-any-return]
    if ds.corpus_path is not None:
        return read_corpus(ds.corpus_path, entities=ds.entities).sentences
    raise ValueError(
        f"dataset {ds.name!r} has no text corpus: pass corpus_path (a JSON-lines corpus, docs/corpus-format.md) "
        "or use the variant 'minerva'"
    )


def _save_bags(bags: BagDataset, path: Path) -> None:
    state = {
        name: getattr(bags, name).cpu()
        for name in ("tokens", "pos_head", "pos_tail", "segments", "lengths", "bag_ptr", "bag_sentences",
                     "pairs", "labels")
    }  # fmt: skip
    state.update(
        num_relations=bags.num_relations,
        words=bags.words.words,
        texts=list(bags.texts),
        relation_labels=list(bags.relation_labels),
        max_len=bags.max_len,
        max_distance=bags.max_distance,
        num_skipped=bags.num_skipped,
    )
    atomic_torch_save(state, path)


def _load_bags(path: Path, device: torch.device) -> BagDataset:
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["words"] = WordVocabulary(state["words"])
    return BagDataset(**state).to(device)


def _make_policy(ds: Dataset, cfg: CPLConfig) -> WalkerPolicy:
    set_seed(cfg.seed)  # every variant starts from the same reasoner
    return build_policy(ds, cfg.reasoner)


def _pretrained_extractor(
    bags: BagDataset,
    cfg: CPLConfig,
    device: torch.device,
    run_dir: Path | None,
    resume: bool,
    extractor_init: str | os.PathLike[str] | None,
) -> tuple[PCNNAttention, float]:
    """The PCNN-ATT encoder after distant-supervision pre-training (or read back); returns it and the seconds spent."""
    set_seed(cfg.seed)
    encoder = PCNNAttention.from_bag_dataset(
        bags,
        word_dim=cfg.extractor_word_dim,
        position_dim=cfg.extractor_position_dim,
        num_filters=cfg.extractor_filters,
        dropout=cfg.extractor_dropout,
    )
    cached = run_dir / PRETRAINED_EXTRACTOR_FILE if run_dir is not None else None
    source = Path(extractor_init) if extractor_init is not None else None
    if source is None and cached is not None and resume and cached.exists():
        source = cached
    start = time.perf_counter()
    if source is not None:
        encoder.load_state_dict(torch.load(source, map_location="cpu", weights_only=True))
        encoder.to(device)
    else:
        pretrain_extractor(
            encoder,
            bags,
            epochs=cfg.extractor_pretrain_epochs,
            lr=cfg.extractor_pretrain_lr,
            seed=cfg.seed,
            device=device,
        )
    seconds = time.perf_counter() - start
    if cached is not None and source != cached:
        atomic_torch_save({k: v.cpu() for k, v in encoder.state_dict().items()}, cached)
    encoder.eval()
    return encoder.to(device), seconds


def _save_graph(run_dir: Path, graph: ActionGraph, known: LongTensor) -> None:
    save_graph(graph, run_dir / GRAPH_FILE, extractor_known=known.cpu())


# ---- training -------------------------------------------------------------------------------------------------


def _fit(
    agents: CollaborativeAgents,
    env: WalkEnvironment,
    queries: LongTensor,
    cfg: CPLConfig,
    source: TextCandidateSource | None,
    evaluator: Any,
    valid: LongTensor,
    device: torch.device,
    checkpoint_dir: Path | None,
    resume: bool,
    callbacks: Sequence[TrainingCallback] | None,
) -> tuple[CPLTrainingLoop, EarlyStoppingCallback, float]:
    """Run the training loop with the built-in callbacks; returns the loop (best weights restored), the early-
    stopping callback and the seconds spent."""
    rc = cfg.reasoner
    scorer = _reasoner_scorer(agents.policy, env, rc)
    builtin: list[TrainingCallback] = [RewardStatsCallback(), CPLStatsCallback()]
    if rc.grad_clip_norm is not None:
        builtin.append(GradientClippingCallback(rc.grad_clip_norm))
    start = cfg.pretrain_epochs if cfg.method == "cpl" else 0
    builtin.append(
        SelectionEvaluationCallback(
            evaluator,
            valid,
            scorer=scorer,
            start=start,
            every=cfg.eval_every,
            text_share=scorer if cfg.method == "cpl" else None,
        )
    )
    early = EarlyStoppingCallback(
        metric=SELECTION_METRIC,
        patience=cfg.patience if cfg.patience is not None else 10**9,
        best_path=best_weights_path(checkpoint_dir),
    )
    builtin.append(early)
    loop = CPLTrainingLoop(
        agents, env, queries, cfg, source=source, callbacks=[*builtin, *(callbacks or [])], device=device
    )
    _, seconds = timed_train(loop, cfg.epochs, checkpoint_dir, cfg.checkpoint_every, resume)
    loop.set_text(cfg.method == "cpl")  # the selected model reasons with text (the extractor's top-k)
    agents.eval()
    return loop, early, seconds


def train_cpl(
    dataset: str | os.PathLike[str] | Dataset,
    output_dir: str | os.PathLike[str] | None,
    config: CPLConfig | None = None,
    corpus_path: str | os.PathLike[str] | None = None,
    *,
    callbacks: Sequence[TrainingCallback] | None = None,
    resume: bool = True,
    evaluate: bool = True,
    extractor_init: str | os.PathLike[str] | None = None,
) -> CPLResult:
    """Train CPL (or a baseline / ablation, per ``config.method`` and flags) and evaluate it on the test split.

    Args:
        dataset: a :class:`Dataset`, a dataset name or a folder; a built-in generated dataset (``family``) is built
            with its corpus.
        output_dir: the run directory (see the module docstring); ``None`` keeps everything in memory.
        config: the :class:`CPLConfig` (default: ``CPLConfig()``, the full model).
        corpus_path: a corpus file (``docs/corpus-format.md``); default: the dataset's own (overrides
            ``config.corpus_path``).
        callbacks: extra training callbacks.
        resume: continue from ``output_dir/checkpoints`` when present (the config must match).
        evaluate: evaluate on the test split at the end (``metrics.json``).
        extractor_init: a state dict written by an earlier run (``extractor_pretrained.pt``, same data, subsample
            and extractor settings) to use instead of pre-training the extractor again.

    Returns:
        :class:`CPLResult` (test metrics are tail-only, filtered with the full training split, valid and test).
    """
    cfg = dataclasses.replace(config) if config is not None else CPLConfig()
    cfg.reasoner = dataclasses.replace(cfg.reasoner)
    cfg.dataset = dataset.name if isinstance(dataset, Dataset) else os.fspath(dataset)
    if corpus_path is not None:
        cfg.corpus_path = os.fspath(corpus_path)
    device = resolve_device(cfg.device)
    cfg.device = str(device)
    full = _load_dataset(dataset, cfg)
    if cfg.subsample < 1.0:
        from kgreason.data.family import subsample_train

        ds = subsample_train(full, cfg.subsample, seed=cfg.subsample_seed)
    else:
        ds = full

    run_dir = Path(output_dir) if output_dir is not None else None
    if run_dir is not None:
        if resume:
            check_run_dir(run_dir, cfg, ds, CPL_RESUMABLE_KEYS)
        write_run_config(run_dir, cfg, ds)

    rc = cfg.reasoner
    evaluation = torch.cat([ds.valid, ds.test])
    graph = ActionGraph.from_dataset(ds, max_actions=rc.max_actions, device=device)
    known = torch.cat(
        [graph.triples.cpu(), evaluation]
    )  # never suggested: graph edges and evaluation triples
    from kgreason.evaluation import RankBasedEvaluator

    evaluator = RankBasedEvaluator(
        full.all_triples(), num_entities=ds.num_entities, batch_size=rc.eval_batch_size, device=device
    )

    extractor: FactExtractor | None = None
    bags: BagDataset | None = None
    pretrain_seconds = 0.0
    if cfg.uses_text:
        corpus = _corpus(ds, cfg.corpus_path)
        bags = build_bag_dataset(corpus, ds, max_len=cfg.max_sentence_len, device=device)  # train labels only
        encoder, pretrain_seconds = _pretrained_extractor(bags, cfg, device, run_dir, resume, extractor_init)
        extractor = FactExtractor(encoder, bags, ds.num_entities, inverse=True, known_triples=known)
        if not cfg.trains_extractor:
            encoder.requires_grad_(False)
        if run_dir is not None:
            _save_bags(bags, run_dir / BAGS_FILE)

    two_step: TwoStepSearch | None = None
    ckpt = checkpoints_dir(run_dir)
    if cfg.method == "two_step":
        assert extractor is not None
        two_step = TwoStepSearch(threshold=cfg.two_step_thresholds[0], metric=SELECTION_METRIC)
        fits: dict[float, tuple[Any, ...]] = {}
        for th in cfg.two_step_thresholds:
            facts, _ = extracted_facts(extractor, th)
            g = augmented_graph(
                ds.train,
                facts,
                ds.num_entities,
                ds.num_relations,
                rc.max_actions,
                exclude=evaluation,
                device=device,
            )
            env = _reasoner_env(g, rc)
            agents = CollaborativeAgents(_make_policy(ds, cfg))
            sub = ckpt / f"threshold_{th:g}" if ckpt is not None else None
            queries = g.triples
            if not cfg.two_step_added_queries:  # the training graph's own triples only
                own = isin_rows(g.triples, ds.train.to(g.triples.device), ds.num_entities, ds.num_relations)
                queries = g.triples[own]
            loop, early, seconds = _fit(
                agents, env, queries, cfg, None, evaluator, ds.valid, device, sub, resume, callbacks
            )
            two_step.valid[th] = float(early.best_value) if early.best_value is not None else -math.inf
            two_step.added[th] = int(len(facts))
            fits[th] = (agents, env, loop, early, seconds, g)
        two_step.threshold = select_threshold(two_step.valid)
        agents, env, loop, early, seconds, graph = fits[two_step.threshold]
        seconds = sum(f[4] for f in fits.values())
        source = None
    else:
        memory = None
        source = None
        if cfg.method == "cpl":
            assert extractor is not None
            memory = (
                TextEdgeMemory(
                    ds.num_entities, ds.num_relations, cfg.kept_edges_per_entity, cfg.kept_edge_min_count
                )
                if cfg.keep_rewarded_edges
                else None
            )
            source = TextCandidateSource(
                extractor,
                cfg.suggestions,
                cfg.suggestion_threshold,
                memory,
                mask_query_pair=cfg.mask_query_pair_text,
                exclude_kept=cfg.kept_edges_in_graph,
            )
        env = _reasoner_env(graph, rc, source)
        agents = CollaborativeAgents(
            _make_policy(ds, cfg), extractor if cfg.method == "cpl" else None, memory
        )
        loop, early, seconds = _fit(
            agents, env, graph.triples, cfg, source, evaluator, ds.valid, device, ckpt, resume, callbacks
        )

    metrics = None
    test_share: dict[str, float] = {}
    scorer = _reasoner_scorer(agents.policy, env, rc)
    if evaluate:
        with torch.no_grad():
            metrics = evaluator.evaluate(scorer, ds.test, sides=("tail",))
        if cfg.method == "cpl":
            test_share = decoded_text_share(
                agents.policy, env, ds.test, rc.beam_size, rc.eval_batch_size, rc.mask_known_answers
            )
    if run_dir is not None:
        _write_run_dir(run_dir, cfg, agents, extractor, graph, known, loop, metrics, two_step, test_share)
    return CPLResult(
        config=cfg,
        dataset=ds,
        agents=agents,
        env=env,
        loop=loop,
        losses=list(loop.history.losses),
        metrics=metrics,
        run_dir=run_dir,
        train_seconds=seconds,
        best_epoch=early.best_epoch,
        extractor_pretrain_seconds=pretrain_seconds,
        test_text_share=test_share,
        two_step=two_step,
    )


_CSV_KEYS = (
    SELECTION_METRIC,
    "valid.tail.realistic.hits_at_10",
    "valid.text_path_share",
    "train.mean_reward",
    "train.hit_rate",
    "train.text_path_share",
    "train.reasoner_loss",
    "train.extractor_loss",
    "train.kept_edges",
    "train.replay_size",
    "train.adaptive_sampling",
    "train.adaptive_hit_rate",
)


def _write_run_dir(
    run_dir: Path,
    cfg: CPLConfig,
    agents: CollaborativeAgents,
    extractor: FactExtractor | None,
    graph: ActionGraph,
    known: LongTensor,
    loop: CPLTrainingLoop,
    metrics: Any,
    two_step: TwoStepSearch | None,
    test_share: dict[str, float],
) -> None:
    _save_graph(run_dir, graph, known)
    save_policy(agents.policy, run_dir)
    if extractor is not None:
        atomic_torch_save(
            {
                "config": dict(extractor.encoder.config),
                "state": {k: v.cpu() for k, v in extractor.encoder.state_dict().items()},
            },
            run_dir / EXTRACTOR_FILE,
        )
    if agents.memory is not None:
        atomic_torch_save(
            {k: v.cpu() for k, v in agents.memory.state_dict().items()}, run_dir / TEXT_EDGES_FILE
        )
    if two_step is not None:
        write_json(run_dir / TWO_STEP_FILE, two_step.to_dict())
    write_training_outputs(run_dir, loop.history, list(_CSV_KEYS), f"{cfg.variant} on {cfg.dataset}")
    if cfg.method == "cpl":
        with contextlib.suppress(ImportError):  # matplotlib is optional
            plot_text_share({cfg.variant: loop.history}, run_dir / TEXT_SHARE_PLOT, share_of=cfg.variant)
    if metrics is not None:
        metrics.save(run_dir)
        if test_share:
            write_json(run_dir / "text_share.json", {f"test.{k}": v for k, v in test_share.items()})


def plot_text_share(
    histories: dict[str, TrainingHistory],
    path: str | os.PathLike[str],
    share_of: str | None = None,
    metric: str = "valid.tail.realistic.hits_at_10",
    title: str | None = "Fig. 4: reasoning performance and text edges on positive paths",
) -> Path:
    """The Fig. 4 plot: ``metric`` over epochs for every run of ``histories`` (e.g. ``{"MINERVA": ..., "CPL":
    ...}``; left axis) and, for run ``share_of``, the share of positive paths that use a text edge (training walks
    and decoded validation paths; right axis). Needs matplotlib; written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from kgreason.io import atomic_open

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=100)
    try:
        for name, history in histories.items():
            points = history.metric(metric)
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, "o-", label=f"{name}: {metric.split('.')[-1]}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if share_of is not None and share_of in histories:
            ax2 = ax.twinx()
            for key, style, label in (
                ("train.text_path_share", "--", "text edges / positive training walks"),
                ("valid.text_path_share", ":", "text edges / positive decoded paths (valid)"),
            ):
                points = histories[share_of].metric(key)
                if points:
                    xs, ys = zip(*points)
                    ax2.plot(xs, ys, style, color="tab:red", label=f"{share_of}: {label}")
            ax2.set_ylabel("share of positive paths using a text edge", color="tab:red")
            ax2.set_ylim(0, 1)
            lines = ax.get_legend_handles_labels()
            lines2 = ax2.get_legend_handles_labels()
            ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="lower right")
        else:
            ax.legend(fontsize=7)
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
        with atomic_open(path, "wb") as fh:
            fig.savefig(fh, format="png")
    finally:
        plt.close(fig)
    return path


# ---- using a trained run ---------------------------------------------------------------------------------------


@dataclass
class LoadedCPL:
    """A trained CPL (or baseline) run read back from its run directory."""

    config: CPLConfig
    agents: CollaborativeAgents
    env: WalkEnvironment
    entities: Vocabulary
    relations: Vocabulary
    source: TextCandidateSource | None

    def walker(self) -> LoadedWalker:
        """The reasoner as a :class:`~kgreason.reasoning.trainer.LoadedWalker` (same environment, text included)."""
        return LoadedWalker(self.config.reasoner, self.agents.policy, self.env, self.entities, self.relations)


def load_cpl(run_dir: str | os.PathLike[str], device: str | torch.device | None = None) -> LoadedCPL:
    """Read a run directory written by :func:`train_cpl` (agents in eval mode; text candidates on for CPL)."""
    run_dir = Path(run_dir)
    cfg = config_from_dict(CPLConfig, load_config_dict(run_dir / CONFIG_FILE))
    dev, entities, relations, graph, saved, policy = read_walker_files(run_dir, device)
    extractor = None
    memory = None
    source = None
    if (run_dir / EXTRACTOR_FILE).exists() and (run_dir / BAGS_FILE).exists():
        bags = _load_bags(run_dir / BAGS_FILE, dev)
        ex_state = torch.load(run_dir / EXTRACTOR_FILE, map_location="cpu", weights_only=True)
        encoder = PCNNAttention(**ex_state["config"])
        encoder.load_state_dict(ex_state["state"])
        encoder.to(dev)
        extractor = FactExtractor(
            encoder, bags, len(entities), inverse=True, known_triples=saved["extractor_known"]
        )
    if cfg.method == "cpl" and extractor is not None:
        if (run_dir / TEXT_EDGES_FILE).exists():
            memory = TextEdgeMemory(
                len(entities), len(relations), cfg.kept_edges_per_entity, cfg.kept_edge_min_count
            )
            memory.load_state_dict(
                torch.load(run_dir / TEXT_EDGES_FILE, map_location="cpu", weights_only=True)
            )
            memory.to(dev)
        source = TextCandidateSource(
            extractor, cfg.suggestions, cfg.suggestion_threshold, memory, exclude_kept=cfg.kept_edges_in_graph
        )
    env = _reasoner_env(graph, cfg.reasoner, source)
    agents = CollaborativeAgents(policy, extractor, memory).to(dev).eval()
    return LoadedCPL(cfg, agents, env, entities, relations, source)


def cpl_run_dataset(
    run_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None
) -> Dataset:
    """The full dataset of the CPL run in ``run_dir`` (before sub-sampling), loaded from ``data_dir`` (default:
    the run's); its vocabularies must equal the run's."""
    cfg = config_from_dict(CPLConfig, load_config_dict(Path(run_dir) / CONFIG_FILE))
    if data_dir is not None:
        cfg.data_dir = os.fspath(data_dir)
    full = _load_dataset(cfg.dataset, cfg)
    full.check_vocabularies(run_dir)
    return full


def evaluate_cpl_run(
    run_dir: str | os.PathLike[str],
    split: str = "test",
    data_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    dataset: Dataset | None = None,
) -> EvaluationResult:
    """Re-evaluate the CPL (or baseline) run saved in ``run_dir`` on ``split`` as its training evaluated it: beam
    search over the saved graph (the sub-sampled training graph, plus Two-Step's added facts) with the
    extractor's suggestions and the kept text edges for CPL, tail queries, filtered with every split of the full
    dataset (``dataset``, default :func:`cpl_run_dataset`)."""
    from kgreason.evaluation import evaluate_dataset

    loaded = load_cpl(run_dir, device)
    full = dataset if dataset is not None else cpl_run_dataset(run_dir, data_dir)
    rc = loaded.config.reasoner
    scorer = _reasoner_scorer(loaded.agents.policy, loaded.env, rc)
    dev = next(loaded.agents.policy.parameters()).device
    with torch.no_grad():
        return evaluate_dataset(scorer, full, split, ("tail",), batch_size=rc.eval_batch_size, device=dev)


@dataclass
class TextEvidence:
    """A text edge of a path (step ``step``), as the fact ``head --relation--> tail`` the corpus states (an inverse
    edge is shown in its base direction), and the sentences supporting it (best first, with attention weights)."""

    step: int
    head: str
    relation: str
    tail: str
    sentences: list[SupportingSentence]

    def __str__(self) -> str:
        quoted = "; ".join(f'"{s.text}" ({s.weight:.2f})' for s in self.sentences) or "(no sentence)"
        return f"{self.head} --{self.relation}[text]--> {self.tail}: {quoted}"


@dataclass
class ExplainedAnswer(Answer):
    """An :class:`~kgreason.reasoning.paths.Answer` whose text edges carry their evidence: ``evidence[p]`` lists
    the :class:`TextEvidence` of every text edge of path ``p`` (empty for a path of graph edges only)."""

    evidence: list[list[TextEvidence]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.label or self.entity}  (p={self.probability:.4g})"]
        for i, path in enumerate(self.paths):
            lines.append(f"    {path.text}")
            shown: set[tuple[str, str, str]] = set()  # a fact walked twice (there and back) is quoted once
            for ev in self.evidence[i] if i < len(self.evidence) else []:
                if (ev.head, ev.relation, ev.tail) not in shown:
                    shown.add((ev.head, ev.relation, ev.tail))
                    lines.append(f"        {ev}")
        return "\n".join(lines)


def explain_cpl(
    run_dir: str | os.PathLike[str] | LoadedCPL,
    head: str,
    relation: str,
    top_k: int = 10,
    *,
    beam_size: int | None = None,
    paths_per_answer: int = 3,
    sentences_per_edge: int = 3,
    device: str | torch.device | None = None,
    include_known: bool = False,
) -> list[ExplainedAnswer]:
    """The ``top_k`` answers of ``(head, relation, ?)`` with their best paths; every edge taken from text is marked
    (``--mother_of[text]-->``) and carries its supporting sentences.

    The last step is decoded with the reasoner's ``mask_known_answers`` (off by default for CPL runs: every edge);
    ``include_known=True`` decodes over every edge whatever the run's setting.

    ``head``/``relation`` are labels (``relation + "_inv"`` asks the inverse question); unknown labels raise
    :class:`~kgreason.data.vocabulary.UnknownLabelError` with close matches. Inference is the training-time
    collaboration without rewards: the extractor suggests its top-``k`` edges (plus the kept ones) at every step
    and the reasoner decodes with beam search.
    """
    run = run_dir if isinstance(run_dir, LoadedCPL) else load_cpl(run_dir, device=device)
    walker = run.walker()
    h = run.entities.id(head)
    r = walker.relation_id(relation)
    dev = run.env.device
    run.agents.eval()
    result = beam_search(
        run.agents.policy,
        run.env,
        Queries(torch.tensor([h], device=dev), torch.tensor([r], device=dev)),
        beam_size or run.config.reasoner.beam_size,
        return_trace=True,
        mask_known_answers=run.config.reasoner.mask_known_answers and not include_known,
    )
    R = len(run.relations)
    answers = answers_from_beam(
        result,
        0,
        top_k,
        paths_per_answer,
        entity_label=run.entities.label,
        relation_label=run.relations.label,
        num_relations=R,
        origin_names=ORIGIN_NAMES,
    )
    out: list[ExplainedAnswer] = []
    extractor = run.agents.extractor
    for a in answers:
        evidence: list[list[TextEvidence]] = []
        for p in a.paths:
            p.text = format_path(p, run.entities.label, run.relations.label, R, ORIGIN_NAMES)
            found: list[TextEvidence] = []
            prev = p.source
            for i, s in enumerate(p.steps):
                if s.origin > 0 and extractor is not None:
                    sentences = extractor.explain(prev, s.relation, s.entity, sentences_per_edge)
                    # the fact as the corpus states it: (t, r, h) for an inverse edge (h, r + R, t)
                    h, t = (prev, s.entity) if s.relation < R else (s.entity, prev)
                    found.append(
                        TextEvidence(
                            i,
                            run.entities.label(h),
                            run.relations.label(s.relation % R),
                            run.entities.label(t),
                            sentences,
                        )
                    )
                prev = s.entity
            evidence.append(found)
        out.append(
            ExplainedAnswer(entity=a.entity, score=a.score, paths=a.paths, label=a.label, evidence=evidence)
        )
    return out
