"""Training the multi-hop walker, writing its run directory, and explaining its answers.

    cfg = WalkerConfig.preset("umls")
    result = train_walker("umls", reward_model_dir="runs/umls-conve", output_dir="runs/umls-walker", config=cfg)
    for answer in explain("runs/umls-walker", "mammal", "interacts_with", top_k=3):
        print(answer)

The loop is a :class:`~kgreason.training.loop.TrainingLoop` (epochs, checkpoints with every RNG state, resume,
callbacks); gradient clipping, periodic validation, early stopping and path counting are its callbacks. What it
shares with CPL's loop (:mod:`kgreason.open.trainer`) is :class:`RolloutTrainingLoop`; the run directory is
started and finished by :mod:`kgreason.training.run_dir`, as for the KGE pipeline.

Run directory::

    config.json                  the WalkerConfig
    entities.json relations.json vocabularies (position = id)
    graph.pt                     the training triples of the walk graph (to rebuild it for ``explain``)
    checkpoints/checkpoint.pt    training state (resumed automatically); checkpoints/best_weights.pt
    model.pt model.json          the policy (best validation MRR with early stopping)
    losses.csv losses.png        loss, mean reward, hit rate, unique paths and validation MRR per epoch
    metrics.json                 filtered test metrics (tail side by default), ``{side}.{rank_type}.{metric}``
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from kgreason.config import config_from_dict, load_config_dict
from kgreason.data.dataset import INVERSE_SUFFIX, Dataset
from kgreason.data.graph import ActionGraph
from kgreason.data.vocabulary import UnknownLabelError, Vocabulary
from kgreason.distributed.context import all_reduce, init_distributed
from kgreason.evaluation.evaluator import EvaluationResult
from kgreason.io import atomic_torch_save, read_json, write_json
from kgreason.reasoning.analysis import PathDiversityCallback
from kgreason.reasoning.beam_search import WalkerScorer
from kgreason.reasoning.config import RESUMABLE_KEYS, WalkerConfig
from kgreason.reasoning.environment import Queries, WalkEnvironment
from kgreason.reasoning.paths import Answer, answers_from_beam
from kgreason.reasoning.policy import WalkerPolicy, load_policy, save_policy
from kgreason.reasoning.reinforce import (
    MovingAverageBaseline,
    Rollout,
    leave_one_out_baseline,
    reinforce_loss,
    sample_rollouts,
)
from kgreason.reasoning.reward import RewardShaper, fit_platt_scaling, shaped_reward
from kgreason.registry import suggest
from kgreason.training.callbacks import (
    EarlyStoppingCallback,
    EvaluationCallback,
    GradientClippingCallback,
    TrainingCallback,
)
from kgreason.training.loop import TrainingLoop
from kgreason.training.run_dir import (
    CONFIG_FILE,
    best_weights_path,
    checkpoints_dir,
    finish_run_dir,
    prepare_run_dir,
    resolve_dataset,
    timed_train,
)
from kgreason.training.utils import resolve_device, set_seed
from kgreason.typing import FloatTensor, LongTensor

__all__ = [
    "GRAPH_FILE",
    "LoadedWalker",
    "REWARD_CALIBRATION_FILE",
    "RewardStatsCallback",
    "WalkerResult",
    "WalkerTrainingLoop",
    "build_environment",
    "evaluate_walker_run",
    "explain",
    "load_walker",
    "train_walker",
    "walker_scorer",
]

GRAPH_FILE = "graph.pt"
#: the fitted reward calibration of a run with ``reward_calibration="platt"``
REWARD_CALIBRATION_FILE = "reward_calibration.json"


def calibrate_reward(shaper: RewardShaper, ds: Dataset, run_dir: Path | None, device: torch.device) -> None:
    """Platt-scale ``shaper`` on the validation queries of ``ds`` (answers: train + valid) and record the fit in
    ``run_dir / REWARD_CALIBRATION_FILE``. The fit is deterministic, so a resumed run refits the same values."""
    valid = ds.split("valid").to(device)
    known = torch.cat([ds.train, ds.split("valid")]).to(device)
    scale, shift = fit_platt_scaling(shaper, valid, known, ds.num_entities)
    shaper.set_calibration(scale, shift)
    if run_dir is not None:
        write_json(run_dir / REWARD_CALIBRATION_FILE, {"method": "platt", "scale": scale, "shift": shift})


def load_reward_calibration(shaper: RewardShaper, run_dir: Path) -> None:
    """Apply the calibration a walker run recorded (nothing when the run has none)."""
    path = run_dir / REWARD_CALIBRATION_FILE
    if path.exists():
        fit = read_json(path)
        shaper.set_calibration(float(fit["scale"]), float(fit["shift"]))


class RolloutTrainingLoop(TrainingLoop):
    """What every REINFORCE loop over walks shares (the walker's, CPL's): shuffled batches of query triples, the
    moving-average baseline (kept in checkpoints) and, after each batch, ``last_rollout`` and ``last_rewards``
    (what was sampled, for callbacks such as :class:`RewardStatsCallback`). A subclass gives :meth:`batch_loss`.

    Args:
        model: the module trained (the policy; for CPL the reasoner and the extractor).
        env: the walk environment.
        triples: ``LongTensor[n, 3]`` training queries with answers.
        reasoner_config: the walker's settings (``batch_size``; ``baseline``, ``baseline_decay``).
        optimizer, lr, device, seed, callbacks, config, **loop_kwargs: as for
            :class:`~kgreason.training.loop.TrainingLoop` (e.g. ``lr_scheduler``).
    """

    def __init__(
        self,
        model: nn.Module,
        env: WalkEnvironment,
        triples: LongTensor,
        reasoner_config: WalkerConfig,
        *,
        optimizer: str | torch.optim.Optimizer,
        lr: float | None = None,
        device: str | torch.device | None,
        seed: int | None,
        callbacks: TrainingCallback | Sequence[TrainingCallback] | None,
        config: dict[str, Any] | Any,
        **loop_kwargs: Any,
    ) -> None:
        super().__init__(
            model,
            optimizer=optimizer,
            lr=lr,
            device=device,
            seed=seed,
            callbacks=callbacks,
            config=config,
            **loop_kwargs,
        )
        self.reasoner_config = reasoner_config
        self.env = env
        self.triples = triples.to(self.device)
        rc = reasoner_config
        self.baseline = MovingAverageBaseline(rc.baseline_decay) if rc.baseline == "moving_average" else None
        self.last_rollout: Rollout | None = None
        self.last_rewards: torch.Tensor | None = None

    def baseline_for(self, rewards: FloatTensor) -> float | FloatTensor:
        """The REINFORCE baseline of this batch's ``rewards: FloatTensor[B * N]`` (query-major): the moving
        average (a number, before this batch's update), the per-walker leave-one-out mean of the query's other
        rollouts (``FloatTensor[B * N]``), or 0."""
        rc = self.reasoner_config
        if rc.baseline == "rollout_mean":
            return leave_one_out_baseline(rewards, rc.num_rollouts)
        return self.baseline.value if self.baseline is not None else 0.0

    def batches(self, epoch: int) -> Iterator[LongTensor]:
        n, bs = self.triples.shape[0], self.reasoner_config.batch_size
        perm = torch.randperm(n, generator=self.generator, device=self.generator.device).to(self.device)
        for start in range(0, n, bs):
            yield self.triples[perm[start : start + bs]]

    def extra_state_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline.state_dict() if self.baseline is not None else None}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        if self.baseline is not None and state.get("baseline"):
            self.baseline.load_state_dict(state["baseline"])


class WalkerTrainingLoop(RolloutTrainingLoop):
    """REINFORCE training of a :class:`WalkerPolicy` on the queries of ``triples``.

    A batch is ``LongTensor[b, 3]`` of training triples ``(e_s, r_q, e_o)``; its loss is eq. 6 (with entropy
    bonus and optional baseline) over ``config.num_rollouts`` walks per query, sampled with action dropout.
    After each batch ``self.last_rollout`` and ``self.last_rewards`` hold what was sampled (for callbacks).

    Args:
        policy: the policy to train.
        env: the walk environment (graph built from the training triples only).
        triples: ``LongTensor[n, 3]`` training queries with answers.
        config: the run's :class:`WalkerConfig` (schedules, rollouts, batch size, optimiser settings).
        reward_shaper: frozen KGE for eq. 7; ``None``: binary reward.
        callbacks: training callbacks.
        device: overrides ``config.device``.
    """

    resumable_keys = RESUMABLE_KEYS

    def __init__(
        self,
        policy: WalkerPolicy,
        env: WalkEnvironment,
        triples: LongTensor,
        config: WalkerConfig,
        reward_shaper: RewardShaper | None = None,
        callbacks: TrainingCallback | Sequence[TrainingCallback] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__(
            policy,
            env,
            triples,
            config,
            optimizer="adam",
            lr=config.lr,
            device=device if device is not None else config.device,
            seed=config.seed,
            callbacks=callbacks,
            config=config,
            lr_scheduler=config.lr_scheduler,
            lr_scheduler_kwargs=config.lr_scheduler_kwargs,
            scheduler_metric=_eval_metric_key(config),
        )
        self.walker_config = config
        self.reward_shaper = reward_shaper.to(self.device) if reward_shaper is not None else None

    @property
    def policy(self) -> WalkerPolicy:
        return self.model  # type: ignore[return-value]

    def batch_loss(self, batch: LongTensor) -> torch.Tensor:
        cfg = self.walker_config
        epoch = self.epoch + 1
        episode = self.env.start(Queries.from_triples(batch), training=True)
        rollout = sample_rollouts(
            self.policy,
            episode,
            cfg.num_rollouts,
            action_dropout=cfg.action_dropout_at(epoch),
            epsilon=cfg.action_dropout_epsilon,
            generator=self.generator,
        )
        rewards = shaped_reward(episode.queries, rollout.final_entities, cfg.num_rollouts, self.reward_shaper)
        baseline = self.baseline_for(rewards)
        loss = reinforce_loss(
            rollout.log_probs,
            rollout.entropy,
            rewards,
            baseline=baseline,
            entropy_weight=cfg.entropy_weight_at(epoch),
            normalize_advantage=cfg.normalize_advantage,
        )
        if self.baseline is not None:
            # under torchrun every rank holds a shard of the batch: update with the global mean reward
            total = all_reduce([float(rewards.detach().sum()), float(rewards.numel())])
            self.baseline.update(total[0:1] / total[1].clamp_min(1.0))
        self.last_rollout = rollout
        self.last_rewards = rewards.detach()
        return loss

    #: flush denormal floats to zero on CPU while training (see :meth:`train`)
    flush_denormal: bool = True

    def train(self, num_epochs: int, *args: Any, **kwargs: Any) -> list[float]:
        """:meth:`TrainingLoop.train` with denormal floats flushed to zero (``flush_denormal``).

        Once the policy is peaked (e.g. without action dropout), softmax, LSTM-gate and MLP gradients underflow
        into denormals, which the CPU handles ~30x slower: a Kinship ``-ad`` batch took 37 s instead of 1.3 s.
        Values below 1.2e-38 do not matter to training. The setting is process-wide; it is switched off again
        afterwards (PyTorch's default) when this call switched it on.
        """
        flushed = self.flush_denormal and torch.set_flush_denormal(True)
        try:
            return super().train(num_epochs, *args, **kwargs)
        finally:
            if flushed:
                torch.set_flush_denormal(False)


class RewardStatsCallback(TrainingCallback):
    """Records ``train.mean_reward`` and ``train.hit_rate`` (walks ending at the training answer) per epoch."""

    def __init__(self) -> None:
        self._reward = 0.0
        self._hits = 0.0
        self._count = 0

    def post_batch(self, epoch: int, batch: Any, **kwargs: Any) -> None:
        loop = self.loop
        rollout, rewards = getattr(loop, "last_rollout", None), getattr(loop, "last_rewards", None)
        if rollout is None or rewards is None:
            return
        self._reward += float(rewards.sum())
        self._hits += float(rollout.hits().sum())
        self._count += int(rewards.numel())

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        reward, hits, count = all_reduce(
            [self._reward, self._hits, float(self._count)]
        ).tolist()  # over ranks
        n = max(count, 1.0)
        self.loop.record_metrics(epoch, {"train.mean_reward": reward / n, "train.hit_rate": hits / n})
        self._reward, self._hits, self._count = 0.0, 0.0, 0


@dataclass
class WalkerResult:
    """What :func:`train_walker` returns."""

    config: WalkerConfig
    dataset: Dataset
    policy: WalkerPolicy
    env: WalkEnvironment
    loop: WalkerTrainingLoop
    losses: list[float]
    metrics: Any  # EvaluationResult of the test split, or None
    run_dir: Path | None
    train_seconds: float
    best_epoch: int | None
    unique_paths: list[tuple[int, int]]
    reranker: RewardShaper | None = None

    def scorer(self, beam_size: int | None = None) -> WalkerScorer:
        """A :class:`WalkerScorer` over the trained policy (re-ranking as ``config.rerank_weight`` says)."""
        return walker_scorer(self.policy, self.env, self.config, self.reranker, beam_size=beam_size)


def walker_scorer(
    policy: WalkerPolicy,
    env: WalkEnvironment,
    config: WalkerConfig,
    reranker: RewardShaper | None = None,
    *,
    rerank_weight: float | None = None,
    beam_size: int | None = None,
    mask_known_answers: bool | None = None,
) -> WalkerScorer:
    """The :class:`WalkerScorer` of a walker run: ``config``'s beam, evaluation batch size and
    ``mask_known_answers`` (``beam_size`` and ``mask_known_answers`` override them); answers re-ranked by
    ``reranker`` with ``rerank_weight`` (default ``config.rerank_weight``), or not at all without a reranker."""
    if reranker is None:
        weight = 0.0
    else:
        weight = config.rerank_weight if rerank_weight is None else rerank_weight
    return WalkerScorer(
        policy,
        env,
        beam_size or config.beam_size,
        batch_size=config.eval_batch_size,
        reranker=reranker,
        rerank_weight=weight,
        mask_known_answers=config.mask_known_answers if mask_known_answers is None else mask_known_answers,
    )


def build_environment(dataset: Dataset, config: WalkerConfig, device: torch.device | str) -> WalkEnvironment:
    """The walk graph of ``dataset.train`` (valid/test links excluded, fan-out capped) and its environment."""
    graph = ActionGraph.from_dataset(dataset, max_actions=config.max_actions, device=device)
    return WalkEnvironment(
        graph, config.num_steps, mask_no_op_on_known_answers=config.mask_no_op_on_known_answers
    )


def build_policy(dataset: Dataset, config: WalkerConfig) -> WalkerPolicy:
    """A fresh :class:`WalkerPolicy` for the entities and relations of ``dataset``, sized by ``config``."""
    return WalkerPolicy(
        dataset.num_entities,
        dataset.num_relations,
        embedding_dim=config.embedding_dim,
        history_dim=config.history_dim,
        history_layers=config.history_layers,
        embedding_dropout=config.embedding_dropout,
        ff_dropout=config.ff_dropout,
        entity_scoring=config.entity_scoring,  # type: ignore[arg-type]
        embedding_dropout_mode=config.embedding_dropout_mode,  # type: ignore[arg-type]
    )


def save_graph(graph: ActionGraph, path: Path, **extra: torch.Tensor) -> None:
    """Write the walk graph's triples and sizes (and ``extra`` tensors) to ``path`` (``graph.pt``), atomically."""
    atomic_torch_save(
        {
            "triples": graph.triples.cpu(),
            "num_entities": graph.num_entities,
            "num_relations": graph.num_relations,
            "max_actions": graph.max_actions,
            **extra,
        },
        path,
    )


def _training_queries(graph: ActionGraph, config: WalkerConfig) -> LongTensor:
    triples = graph.triples
    if config.train_inverse_queries:
        R = graph.num_relations
        inv = torch.stack([triples[:, 2], triples[:, 1] + R, triples[:, 0]], dim=1)
        triples = torch.cat([triples, inv])
    return triples


def _eval_metric_key(config: WalkerConfig) -> str:
    side = "both" if len(set(config.eval_sides)) == 2 else config.eval_sides[0]
    return f"{config.eval_split}.{side}.realistic.mrr"


def train_walker(
    dataset: str | os.PathLike[str] | Dataset,
    reward_model_dir: str | os.PathLike[str] | None,
    output_dir: str | os.PathLike[str] | None,
    config: WalkerConfig | None = None,
    *,
    callbacks: Sequence[TrainingCallback] | None = None,
    resume: bool = True,
    evaluate: bool = True,
) -> WalkerResult:
    """Train the walker of Lin et al. (2018) and evaluate it on the test split.

    Args:
        dataset: a :class:`Dataset`, a dataset name or a folder.
        reward_model_dir: a kgreason KGE run directory (any registered model) for reward shaping; ignored
            (may be ``None``) when ``config.reward_shaping`` is off.
        output_dir: the run directory (see the module docstring); ``None`` keeps everything in memory.
        config: the :class:`WalkerConfig` (default: the dataset's preset when there is one, else defaults).
        callbacks: extra training callbacks.
        resume: continue from ``output_dir/checkpoints/checkpoint.pt`` when present (config must match).
        evaluate: evaluate on the test split at the end (``metrics.json``).

    Returns:
        :class:`WalkerResult`.
    """
    if config is None:
        from kgreason.reasoning.config import PRESETS

        name = dataset.name if isinstance(dataset, Dataset) else Path(str(dataset)).name
        config = WalkerConfig.preset(name) if name in PRESETS else WalkerConfig(dataset=name)
    cfg = dataclasses.replace(config)
    cfg.dataset = dataset.name if isinstance(dataset, Dataset) else str(dataset)
    cfg.reward_model_dir = str(reward_model_dir) if reward_model_dir is not None else None
    if cfg.reward_shaping and cfg.reward_model_dir is None:
        raise ValueError(
            "reward shaping needs reward_model_dir (a trained KGE run directory); "
            "pass one, or set reward_shaping=False (binary reward, e.g. ablation '-rs' or 'minerva')"
        )
    if cfg.rerank_weight > 0.0 and cfg.reward_model_dir is None:
        raise ValueError(
            f"rerank_weight={cfg.rerank_weight} re-ranks answers with the reward model: pass reward_model_dir"
        )
    ctx = init_distributed(
        cfg.device
    )  # joins a torchrun run (queries sharded, policy under DDP); else nothing
    device = ctx.resolve_device(cfg.device) if ctx.is_distributed else resolve_device(cfg.device)
    cfg.device = str(device)
    ds = resolve_dataset(dataset, cfg.data_dir)

    run_dir = Path(output_dir) if output_dir is not None else None
    if cfg.restarts > 1:  # best-of-K starts: seeds the run directory's checkpoints with the chosen candidate
        from kgreason.reasoning.restarts import select_start

        cfg = select_start(train_walker, ds, run_dir, cfg, _eval_metric_key(cfg), resume=resume)
        resume = True
    prepare_run_dir(run_dir, cfg, ds, RESUMABLE_KEYS, resume=resume, is_main=ctx.is_main)

    set_seed(cfg.seed)
    env = build_environment(ds, cfg, device)
    graph = env.graph
    if run_dir is not None and ctx.is_main:
        save_graph(graph, run_dir / GRAPH_FILE)
    shaper = None
    if cfg.reward_shaping or cfg.rerank_weight > 0.0:
        assert cfg.reward_model_dir is not None
        rm_dir = Path(cfg.reward_model_dir)
        if (rm_dir / "entities.json").exists():
            ds.check_vocabularies(rm_dir)
        shaper = RewardShaper.from_run_dir(rm_dir, num_relations=ds.num_relations, device=device)
        if cfg.reward_calibration == "platt":
            calibrate_reward(shaper, ds, run_dir if ctx.is_main else None, device)
    reranker = shaper if cfg.rerank_weight > 0.0 else None

    policy = build_policy(ds, cfg)

    def make_scorer() -> WalkerScorer:
        return walker_scorer(policy, env, cfg, reranker)

    builtin: list[TrainingCallback] = [RewardStatsCallback()]
    diversity = PathDiversityCallback() if cfg.track_paths else None
    if diversity is not None:
        builtin.append(diversity)
    if cfg.grad_clip_norm is not None:
        builtin.append(GradientClippingCallback(cfg.grad_clip_norm))
    early: EarlyStoppingCallback | None = None
    metric_key = _eval_metric_key(cfg)
    if cfg.eval_every:
        from kgreason.evaluation import RankBasedEvaluator

        evaluator = RankBasedEvaluator(
            ds.all_triples(), num_entities=ds.num_entities, batch_size=cfg.eval_batch_size, device=device
        )
        builtin.append(
            EvaluationCallback(
                evaluator,
                ds.split(cfg.eval_split),
                scorer=make_scorer,
                split=cfg.eval_split,
                every=cfg.eval_every,
                sides=tuple(cfg.eval_sides),
            )
        )
        if cfg.early_stopping:
            early = EarlyStoppingCallback(
                metric=metric_key,
                patience=cfg.patience,
                best_path=best_weights_path(checkpoints_dir(run_dir)),
            )
            builtin.append(early)

    loop = WalkerTrainingLoop(
        policy,
        env,
        _training_queries(graph, cfg),
        cfg,
        reward_shaper=shaper if cfg.reward_shaping else None,
        callbacks=[*builtin, *(callbacks or [])],
        device=device,
    )
    losses, seconds = timed_train(loop, cfg.epochs, checkpoints_dir(run_dir), cfg.checkpoint_every, resume)
    policy.eval()

    metrics = None
    if evaluate:
        from kgreason.evaluation import evaluate_dataset

        metrics = evaluate_dataset(
            make_scorer(), ds, "test", tuple(cfg.eval_sides), batch_size=cfg.eval_batch_size, device=device
        )
    finish_run_dir(
        run_dir,
        loop.history,
        save_model=lambda directory: save_policy(policy, directory),
        metric_keys=[metric_key, "train.mean_reward", "train.hit_rate", "train.unique_paths"],
        title=f"walker on {cfg.dataset}",
        metrics=metrics,
        is_main=ctx.is_main,
    )
    return WalkerResult(
        config=cfg,
        dataset=ds,
        policy=policy,
        env=env,
        loop=loop,
        losses=losses,
        metrics=metrics,
        run_dir=run_dir,
        train_seconds=seconds,
        best_epoch=early.best_epoch if early is not None else None,
        unique_paths=list(diversity.counts) if diversity is not None else [],
        reranker=reranker,
    )


# ---- using a trained walker --------------------------------------------------------------------------------


@dataclass
class LoadedWalker:
    """A trained walker read back from its run directory."""

    config: WalkerConfig
    policy: WalkerPolicy
    env: WalkEnvironment
    entities: Vocabulary
    relations: Vocabulary
    reranker: RewardShaper | None = None
    rerank_weight: float = 0.0

    def scorer(self, beam_size: int | None = None, mask_known_answers: bool | None = None) -> WalkerScorer:
        """A :class:`WalkerScorer` over the policy (re-ranking with ``reranker`` when ``rerank_weight > 0``;
        ``mask_known_answers`` default: the run's)."""
        return walker_scorer(
            self.policy,
            self.env,
            self.config,
            self.reranker,
            rerank_weight=self.rerank_weight,
            beam_size=beam_size,
            mask_known_answers=mask_known_answers,
        )

    def relation_id(self, label: str) -> int:
        """Id of a relation label; ``label_inv`` is the inverse relation. Unknown labels raise
        :class:`UnknownLabelError` suggesting close matches."""
        R = len(self.relations)
        if label not in self.relations and label.endswith(INVERSE_SUFFIX):
            base = label[: -len(INVERSE_SUFFIX)]
            if base in self.relations:
                return self.relations.id(base) + R
        try:
            return self.relations.id(label)
        except UnknownLabelError:
            choices = [*self.relations.labels, *(x + INVERSE_SUFFIX for x in self.relations.labels)]
            close = suggest(label, choices)
            hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownLabelError(f"Unknown relation {label!r}.{hint}") from None

    def relation_label(self, relation_id: int) -> str:
        R = len(self.relations)
        if relation_id == 2 * R:
            return "NO_OP"
        if relation_id >= R:
            return self.relations.label(relation_id - R) + INVERSE_SUFFIX
        return self.relations.label(relation_id)


class WalkerFiles(NamedTuple):
    """What :func:`read_walker_files` reads from a walker (or CPL) run directory."""

    device: torch.device
    entities: Vocabulary
    relations: Vocabulary
    graph: ActionGraph
    saved_graph: dict[str, Any]  # all of ``graph.pt``, with what :func:`save_graph` got as extras
    policy: WalkerPolicy


def read_walker_files(run_dir: Path, device: str | torch.device | None = None) -> WalkerFiles:
    """The vocabularies, the walk graph (``graph.pt``, see :func:`save_graph`) and the policy of a run directory,
    on ``device`` (default: CPU)."""
    dev = resolve_device(device if device is not None else "cpu")
    entities = Vocabulary.load(run_dir / "entities.json", kind="entity")
    relations = Vocabulary.load(run_dir / "relations.json", kind="relation")
    saved = torch.load(run_dir / GRAPH_FILE, map_location="cpu", weights_only=True)
    graph = ActionGraph.from_triples(
        saved["triples"],
        int(saved["num_entities"]),
        int(saved["num_relations"]),
        max_actions=saved["max_actions"],
        device=dev,
    )
    policy = load_policy(run_dir, map_location=dev)
    return WalkerFiles(dev, entities, relations, graph, saved, policy)


def load_walker(
    run_dir: str | os.PathLike[str],
    device: str | torch.device | None = None,
    *,
    rerank_weight: float | None = None,
    reward_model_dir: str | os.PathLike[str] | None = None,
) -> LoadedWalker:
    """Read the config, vocabularies, graph and policy of a walker run directory.

    ``rerank_weight`` (default: the run's ``config.rerank_weight``) > 0 also loads the reward model
    (``reward_model_dir``, default the run's) to re-rank answers (:func:`~kgreason.reasoning.beam_search.rerank`);
    the run's own reward model keeps the run's reward calibration (``reward_calibration.json``), another one is
    used uncalibrated.
    """
    run_dir = Path(run_dir)
    cfg = config_from_dict(WalkerConfig, load_config_dict(run_dir / CONFIG_FILE))
    files = read_walker_files(run_dir, device)
    env = WalkEnvironment(
        files.graph, cfg.num_steps, mask_no_op_on_known_answers=cfg.mask_no_op_on_known_answers
    )
    weight = cfg.rerank_weight if rerank_weight is None else float(rerank_weight)
    if not weight >= 0.0:
        raise ValueError(f"rerank_weight must be >= 0, got {weight}")
    reranker = None
    if weight > 0.0:
        rm_dir = reward_model_dir if reward_model_dir is not None else cfg.reward_model_dir
        if rm_dir is None:
            raise ValueError(
                f"{run_dir}: rerank_weight={weight} needs a reward model, and the run has none "
                "(pass reward_model_dir, a kgreason KGE run directory)"
            )
        reranker = RewardShaper.from_run_dir(rm_dir, num_relations=len(files.relations), device=files.device)
        if reward_model_dir is None:  # the run's own reward model: with the run's calibration, if any
            load_reward_calibration(reranker, run_dir)
    return LoadedWalker(cfg, files.policy, env, files.entities, files.relations, reranker, weight)


def evaluate_walker_run(
    run_dir: str | os.PathLike[str],
    split: str = "test",
    data_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    sides: Sequence[str] | None = None,
    dataset: Dataset | None = None,
) -> EvaluationResult:
    """Re-evaluate the walker saved in ``run_dir`` on ``split``, decoding as its training evaluated it (the run's
    beam, last-step mask and re-ranking), filtered with train + valid + test; ``sides`` default: the run's
    ``eval_sides``. The dataset is ``dataset``, else the run's, loaded from ``data_dir`` (default: the run's
    ``data_dir``, then ``$KGREASON_DATA_DIR``); its vocabularies must equal the run's."""
    from kgreason.evaluation import evaluate_dataset

    loaded = load_walker(run_dir, device)
    cfg = loaded.config
    ds = dataset or resolve_dataset(cfg.dataset, os.fspath(data_dir) if data_dir else cfg.data_dir)
    ds.check_vocabularies(run_dir)
    dev = next(loaded.policy.parameters()).device
    return evaluate_dataset(
        loaded.scorer(), ds, split, tuple(sides or cfg.eval_sides), batch_size=cfg.eval_batch_size, device=dev
    )


def explain(
    run_dir: str | os.PathLike[str] | LoadedWalker,
    head: str,
    relation: str,
    top_k: int = 10,
    *,
    beam_size: int | None = None,
    paths_per_answer: int = 3,
    device: str | torch.device | None = None,
    rerank_weight: float | None = None,
    include_known: bool = False,
) -> list[Answer]:
    """The ``top_k`` answers of ``(head, relation, ?)`` with their best reasoning paths, as readable text.

    ``head`` and ``relation`` are labels (``relation + "_inv"`` asks the inverse question); unknown labels raise
    :class:`~kgreason.data.vocabulary.UnknownLabelError` suggesting close matches. Each :class:`Answer` has its
    ``label``, ``score`` (log-probability of its best path) and ``paths`` with ``text`` such as
    ``Hawaii --located_in--> U.S.`` (inverse edges drawn ``<--r--``).

    ``rerank_weight`` (for a run directory; default the run's own) > 0 orders the answers by ``score`` = best-path
    log-probability + ``rerank_weight * log sigmoid f`` of the run's reward model (see
    :func:`~kgreason.reasoning.beam_search.rerank`); the paths are the same.

    With the run's ``mask_known_answers`` (the default since 2026-12-06) the last step is decoded as in training:
    no edge leads to an answer the training graph already states for ``(head, relation)`` (a walker standing on
    one may still stay with ``NO_OP``), so the answers are mostly those *missing* from the graph.
    ``include_known`` decodes over every action instead, so the graph's own answers rank by their paths too.
    """
    if isinstance(run_dir, LoadedWalker):
        if rerank_weight is not None:
            raise ValueError(
                "rerank_weight applies when loading a run directory; set it on load_walker instead"
            )
        walker = run_dir
    else:
        walker = load_walker(run_dir, device=device, rerank_weight=rerank_weight)
    h = walker.entities.id(head)
    r = walker.relation_id(relation)
    dev = walker.env.device
    scorer = walker.scorer(beam_size, mask_known_answers=False if include_known else None)
    result = scorer.decode(
        Queries(torch.tensor([h], device=dev), torch.tensor([r], device=dev)), return_trace=True
    )
    return answers_from_beam(
        result,
        0,
        top_k,
        paths_per_answer,
        entity_label=walker.entities.label,
        relation_label=walker.relations.label,
        num_relations=len(walker.relations),
    )
