"""The config of a multi-hop walker run, with the paper's per-dataset presets and ablations.

Presets follow the released MultiHopKG configurations (Lin et al. 2018; see ``../shared/notes``)::

    cfg = WalkerConfig.preset("umls")                      # full model: reward shaping + action dropout
    cfg = WalkerConfig.preset("kinship", ablation="-ad")   # no action dropout
    cfg = WalkerConfig.preset("wn18rr", ablation="minerva")  # binary reward, no action dropout

Ablations (:data:`ABLATIONS`): ``"full"``, ``"-rs"`` (binary reward; action dropout of the reference's
no-reward-shaping configs), ``"-ad"`` (no action dropout), ``"minerva"`` (neither).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

from kgreason.registry import Registry, normalize_name

__all__ = ["ABLATIONS", "BASELINES", "PRESETS", "RESUMABLE_KEYS", "WalkerConfig"]

#: the REINFORCE baselines (``WalkerConfig.baseline``)
BASELINES = ("none", "moving_average", "rollout_mean")
#: how reward-model scores become rewards (``WalkerConfig.reward_calibration``)
REWARD_CALIBRATIONS = ("none", "platt")

#: fields that may change when a run is resumed (they do not change what is computed)
RESUMABLE_KEYS = frozenset(
    {
        "epochs",
        "device",
        "output_dir",
        "checkpoint_every",
        "data_dir",
        "eval_batch_size",
        "reward_model_dir",
        "rerank_weight",  # ranks the answers at evaluation; training is unchanged
        "mask_known_answers",  # decoding only
        "restarts",  # the main run of best-of-K starts continues its chosen candidate (see reasoning.restarts)
    }
)


@dataclass
class WalkerConfig:
    """Everything that defines a walker run (Lin et al. 2018, §4.3); saved as ``config.json``.

    Attributes:
        dataset: dataset name (:func:`kgreason.data.registry.load_dataset`) or folder.
        data_dir: where datasets live (default ``$KGREASON_DATA_DIR``).
        reward_model_dir: kgreason KGE run directory of the reward-shaping model (``model.pt`` + ``model.json``).
        num_steps: path length ``T``.
        num_rollouts: walks sampled per training query.
        max_actions: fan-out cap ``eta`` (out-edges kept per entity, highest target PageRank); ``None``: no cap.
        embedding_dim, history_dim, history_layers: policy sizes (200, 200, 3 in the paper).
        embedding_dropout, ff_dropout: dropout on the embeddings / after each feed-forward layer.
        embedding_dropout_mode: ``"table"`` (one mask on the tables per batch: every walker of a batch shares it)
            or ``"per_use"`` (every gathered embedding gets its own mask, as in the reference code; see
            :mod:`kgreason.reasoning.policy`).
        entity_scoring: ``"auto"``, ``"dense"`` or ``"gather"`` (see :mod:`kgreason.reasoning.policy`).
        action_dropout: ``alpha`` of eq. 9 at epoch 1; ``action_dropout_decay`` multiplies it every epoch, down
            to ``action_dropout_min``; ``action_dropout_epsilon``: the ``eps`` of eq. 8.
        entropy_weight: ``beta`` at epoch 1; ``entropy_decay`` multiplies it every epoch.
        reward_shaping: eq. 7 with the KGE of ``reward_model_dir``; ``False``: binary reward.
        reward_calibration: ``"none"`` (the paper: ``sigmoid f``) or ``"platt"``: ``sigmoid(a f + b)`` with ``a, b``
            fitted to the known answers of the validation queries before training
            (:func:`~kgreason.reasoning.reward.fit_platt_scaling`; saved as ``reward_calibration.json``). For
            reward models whose ``sigmoid f`` is no probability (1-N softmax cross-entropy training). Not in the
            paper.
        baseline: ``"none"`` (the reference), ``"moving_average"`` (decay ``baseline_decay``) or
            ``"rollout_mean"`` (per walker, the mean reward of the other rollouts of its query:
            :func:`~kgreason.reasoning.reinforce.leave_one_out_baseline`); ``normalize_advantage`` standardises
            advantages per batch.
        train_inverse_queries: also train on the inverse queries ``(t, r + R, h)`` (needed for head-side
            evaluation by inverse tail queries).
        batch_size, lr, grad_clip_norm: Adam on batches of training queries; clipping of the gradient norm.
        lr_scheduler, lr_scheduler_kwargs: any ``torch.optim.lr_scheduler`` by name, stepped every epoch
            (``None``: constant lr). ``"ReduceLROnPlateau"`` is stepped with the validation MRR at each evaluation
            (pass ``{"mode": "max", ...}``): e.g. ``{"mode": "max", "factor": 0.3, "patience": 3}`` cuts the lr
            when the validation MRR has not improved for 3 evaluations.
        epochs, eval_every, eval_split, eval_sides: training length and periodic evaluation (``eval_sides``
            ``["tail"]`` is the paper's protocol; add ``"head"`` for both sides).
        early_stopping, patience: stop when the validation MRR has not improved for ``patience`` evaluations.
        mask_no_op_on_known_answers: the last-step mask (training, and decoding with ``mask_known_answers``) also
            takes ``NO_OP`` from a walker standing on another known answer, as the reference code does: no walk
            ends on a known answer it did not aim for (with a shaped reward, one that stays there otherwise
            earns ``f`` of a true fact). ``NO_OP`` stays for a walker left without any other action. ``False``
            (the default, and every walker figure so far): ``NO_OP`` is always available.
        beam_size, eval_batch_size: decoding beam and queries decoded at once.
        mask_known_answers: decode with the last-step mask of training: no edge leads to an answer of
            ``(e_s, r_q)`` that is in the training graph (``NO_OP`` stays, as in training). The reference code
            decodes so, and the policy was trained under that mask: without it the last step's softmax also
            spreads over the known answers, which the policy never learned to avoid. Filtered evaluation
            ignores the known answers' own scores; the other answers' scores change.
            :func:`~kgreason.reasoning.trainer.explain` decodes so too unless told ``include_known``. ``False``:
            decode over every action (walker figures measured before 2026-12-06 were decoded so).
        rerank_weight: ``w >= 0``; with ``w > 0`` the beam's answers are ranked by ``log P(best path) +
            w * log sigmoid f(e_s, r_q, e)`` with the reward model of ``reward_model_dir`` (not in the paper; only
            evaluation and answers change, never training; :func:`~kgreason.reasoning.beam_search.rerank`).
            ``0``: the paper's ranking by path probability.
        seed, device, checkpoint_every, track_paths (count unique paths explored per epoch, §5.3.2).
        restarts, restart_epochs: best-of-``restarts`` starts: seeds ``seed .. seed + restarts - 1`` are trained
            for ``restart_epochs`` epochs and the run continues the one with the best validation metric
            (:mod:`kgreason.reasoning.restarts`; ``1``: a single start).
    """

    dataset: str = "umls"
    data_dir: str | None = None
    reward_model_dir: str | None = None
    num_steps: int = 3
    num_rollouts: int = 20
    max_actions: int | None = 400
    embedding_dim: int = 200
    history_dim: int = 200
    history_layers: int = 3
    embedding_dropout: float = 0.3
    ff_dropout: float = 0.1
    entity_scoring: str = "auto"
    embedding_dropout_mode: str = "table"
    action_dropout: float = 0.5
    action_dropout_decay: float = 1.0
    action_dropout_min: float = 0.0
    action_dropout_epsilon: float = 1e-10
    entropy_weight: float = 0.02
    entropy_decay: float = 1.0
    reward_shaping: bool = True
    reward_calibration: str = "none"
    baseline: str = "none"
    baseline_decay: float = 0.9
    normalize_advantage: bool = False
    train_inverse_queries: bool = False
    batch_size: int = 128
    lr: float = 1e-3
    lr_scheduler: str | None = None
    lr_scheduler_kwargs: dict[str, Any] = field(default_factory=dict)
    grad_clip_norm: float | None = None
    epochs: int = 40
    eval_every: int = 2
    eval_split: str = "valid"
    eval_sides: list[str] = field(default_factory=lambda: ["tail"])
    early_stopping: bool = True
    patience: int = 50
    beam_size: int = 128
    eval_batch_size: int = 32
    rerank_weight: float = 0.0
    mask_known_answers: bool = True
    mask_no_op_on_known_answers: bool = False
    seed: int = 42
    restarts: int = 1
    restart_epochs: int = 10
    device: str | None = None
    checkpoint_every: int = 1
    track_paths: bool = True

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if self.num_rollouts < 1:
            raise ValueError(f"num_rollouts must be >= 1, got {self.num_rollouts}")
        if not (0.0 <= self.rerank_weight < float("inf")):
            raise ValueError(f"rerank_weight must be a finite number >= 0, got {self.rerank_weight}")
        if not 0.0 <= self.action_dropout < 1.0:
            raise ValueError(f"action_dropout must be in [0, 1), got {self.action_dropout}")
        if self.restarts < 1 or self.restart_epochs < 1:
            raise ValueError(
                f"restarts and restart_epochs must be >= 1, got {self.restarts}, {self.restart_epochs}"
            )
        if self.embedding_dropout_mode not in ("table", "per_use"):
            raise ValueError(
                f"embedding_dropout_mode must be 'table' or 'per_use', got {self.embedding_dropout_mode!r}"
            )
        if self.reward_calibration not in REWARD_CALIBRATIONS:
            raise ValueError(
                f"reward_calibration must be one of {', '.join(REWARD_CALIBRATIONS)}, "
                f"got {self.reward_calibration!r}"
            )
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        if self.baseline != "none" and self.action_dropout > 0.0:
            warnings.warn(
                f"baseline={self.baseline!r} with action_dropout={self.action_dropout}: action dropout samples walks "
                "off-policy, and negative advantages then push log-probabilities of actions the policy gives ~0 "
                "towards -inf (the loss can diverge: docs/reasoning.md, 'Baselines and action dropout do not mix'). "
                "The reference uses no baseline with action dropout.",
                UserWarning,
                stacklevel=3,
            )
        bad = [s for s in self.eval_sides if s not in ("head", "tail")]
        if bad or not self.eval_sides:
            raise ValueError(
                f"eval_sides must be a non-empty subset of ['head', 'tail'], got {self.eval_sides}"
            )

    # ---- schedules ----------------------------------------------------------------------------------------

    def action_dropout_at(self, epoch: int) -> float:
        """``alpha`` in (1-based) ``epoch``."""
        return max(self.action_dropout_min, self.action_dropout * self.action_dropout_decay ** (epoch - 1))

    def entropy_weight_at(self, epoch: int) -> float:
        """``beta`` in (1-based) ``epoch``."""
        return self.entropy_weight * self.entropy_decay ** (epoch - 1)

    # ---- presets ------------------------------------------------------------------------------------------

    @classmethod
    def preset(cls, name: str, ablation: str = "full", **overrides: Any) -> WalkerConfig:
        """The paper's configuration of dataset ``name`` (see :data:`PRESETS`), with an ablation applied and
        ``overrides`` on top."""
        values = copy.deepcopy(PRESETS.get(name))
        values.update(ABLATIONS.get(ablation)(values, PRESETS.canonical(name)))
        values.update(overrides)
        return cls(**values)

    def with_ablation(self, ablation: str) -> WalkerConfig:
        """A copy with ``ablation`` applied (``"-rs"`` uses the preset's no-shaping action dropout when the
        dataset has a preset, else keeps the current rate)."""
        values = dataclasses.asdict(self)
        name = self.dataset if self.dataset in PRESETS else ""
        values.update(ABLATIONS.get(ablation)(values, PRESETS.canonical(name) if name else ""))
        return WalkerConfig(**values)


def _preset(
    dataset: str,
    steps: int,
    bandwidth: int,
    action_dropout: float,
    entropy: float,
    batch: int,
    lr: float,
    clip: float | None,
    emb_dropout: float,
    ff_dropout: float,
    epochs: int,
    wait: int,
    beam: int,
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "num_steps": steps,
        "num_rollouts": 20,
        "max_actions": bandwidth,
        "action_dropout": action_dropout,
        "entropy_weight": entropy,
        "batch_size": batch,
        "lr": lr,
        "grad_clip_norm": clip,
        "embedding_dropout": emb_dropout,
        "ff_dropout": ff_dropout,
        "epochs": epochs,
        "eval_every": 2,
        "patience": max(1, wait // 2),
        "beam_size": beam,
    }


#: dataset presets (MultiHopKG's released RS configurations; patience = early-stop wait in epochs / eval_every).
#: UMLS and Kinship train at the reference's constant lr 1e-3. Until 2026-12-07 UMLS used lr 3e-3 with a
#: ``ReduceLROnPlateau`` schedule (and Kinship did too for a while): shaped by ConvE trained with the reference's
#: recipe and run for 400 epochs, the constant rate scores UMLS test tail MRR / Hits@1 94.39 / 90.85 on average
#: over six seeds against 93.95 / 90.2 for the same seeds with the schedule, and Kinship 86.98 and 86.60 over two
#: seeds against 85.0-85.8 (docs/benchmarks.md, "UMLS: the reference's constant learning rate", "Kinship: the
#: reference's constant learning rate"). Kinship keeps action dropout 0.95 (the reference: 0.9): 0.9 started on
#: the bad trajectory with ComplEx reward models and levels off lower with ConvE ones (docs/benchmarks.md,
#: "Kinship: action dropout 0.95", "... 0.9 and this reward model").
PRESETS: Registry[dict[str, Any]] = Registry("walker preset")
PRESETS.add("umls", _preset("umls", 2, 400, 0.95, 0.05, 128, 1e-3, 5.0, 0.1, 0.0, 1000, 200, 128))
PRESETS.add("kinship", _preset("kinship", 2, 400, 0.95, 0.05, 128, 1e-3, 5.0, 0.3, 0.1, 1000, 400, 128))
PRESETS.add(
    "fb15k-237", _preset("fb15k-237", 3, 400, 0.5, 0.02, 128, 1e-3, None, 0.3, 0.1, 40, 100, 128), "fb15k237"
)
PRESETS.add("wn18rr", _preset("wn18rr", 3, 500, 0.1, 0.0, 512, 1e-3, None, 0.1, 0.1, 10, 10, 128))
PRESETS.add(
    "nell-995", _preset("nell-995", 3, 256, 0.1, 0.05, 128, 3e-3, 5.0, 0.1, 0.1, 30, 300, 512), "nell995"
)

#: action dropout of the reference's no-reward-shaping ("point") configurations
NO_SHAPING_ACTION_DROPOUT = {"umls": 0.9, "kinship": 0.9, "fb15k-237": 0.5, "wn18rr": 0.5, "nell-995": 0.3}

#: ablations: functions ``(config values, canonical preset name or "") -> changed values``
ABLATIONS: Registry[Any] = Registry("walker ablation")
ABLATIONS.add("full", lambda values, name: {})
ABLATIONS.add(
    "-rs",
    lambda values, name: {
        "reward_shaping": False,
        "action_dropout": NO_SHAPING_ACTION_DROPOUT.get(name, values["action_dropout"]),
    },
    "no_rs",
    "no-reward-shaping",
)
ABLATIONS.add("-ad", lambda values, name: {"action_dropout": 0.0}, "no_ad", "no-action-dropout")
ABLATIONS.add("minerva", lambda values, name: {"reward_shaping": False, "action_dropout": 0.0})


def ablation_names() -> list[str]:
    """The canonical ablation names: ``full``, ``-rs``, ``-ad``, ``minerva``."""
    return ["full", "-rs", "-ad", "minerva"]


def is_preset(name: str) -> bool:
    return normalize_name(name) in {normalize_name(n) for n in PRESETS.names()}
