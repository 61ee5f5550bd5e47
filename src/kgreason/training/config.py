"""The config of a KGE training run, and how unset fields get their values.

Every field left ``None`` is filled by :func:`resolve_config`, in this order:

1. the value given by the user (``pipeline(..., lr=0.01)`` or the CLI);
2. the model's ``default_training`` (e.g. ComplEx: LCWA, BCE with label smoothing 0.1, Adam 3e-3, batch 256)
   -- its loss-related entries (``loss``, ``loss_kwargs``, ``label_smoothing``, ``num_negatives``,
   ``negative_sampler``) only when the chosen loop is of the same kind (sLCWA vs LCWA) as the model's;
   a ``default_training[loop]`` sub-dict, if present, applies to that loop;
3. :data:`LOOP_DEFAULTS` of the loop, then :data:`COMMON_DEFAULTS`.

The resolved config (no ``None`` left where a value is needed) is what a run saves in ``config.json`` and in
its checkpoints, so a run is fully described by it and can be repeated or resumed.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kgreason.registry import normalize_name
from kgreason.training.loop import RESUMABLE_KEYS as LOOP_RESUMABLE_KEYS
from kgreason.training.loop import resolve_precision

__all__ = [
    "COMMON_DEFAULTS",
    "LOOPS",
    "LOOP_DEFAULTS",
    "RESUMABLE_KEYS",
    "KGEConfig",
    "loop_kind",
    "resolve_config",
]

#: loop names accepted in ``KGEConfig.loop``, by kind
LOOPS = {"slcwa": "slcwa", "lcwa": "lcwa", "symmetriclcwa": "lcwa"}

#: defaults per loop kind when neither the user nor the model says
LOOP_DEFAULTS: dict[str, dict[str, Any]] = {
    "slcwa": {
        "loss": "softplus",
        "loss_kwargs": {},
        "negative_sampler": "uniform",
        "negative_sampler_kwargs": {},
        "num_negatives": 32,
        "filter_negatives": False,
        "label_smoothing": 0.0,
    },
    "lcwa": {"loss": "bce", "loss_kwargs": {}, "label_smoothing": 0.1},
}
COMMON_DEFAULTS: dict[str, Any] = {
    "loop": "slcwa",
    "optimizer": "adam",
    "optimizer_kwargs": {},
    "lr": 1e-3,
    "scheduler_kwargs": {},
    "epochs": 100,
    "batch_size": 256,
}
_LOSS_KEYS = (
    "loss",
    "loss_kwargs",
    "label_smoothing",
    "num_negatives",
    "negative_sampler",
    "negative_sampler_kwargs",
)
_LABEL_SMOOTHING_LOSSES = {
    "bce",
    "bcewithlogits",
    "binarycrossentropy",
    "bceloss",
    "crossentropy",
    "ce",
    "softmax",
}

#: fields that may change when resuming a run (they do not change what is computed)
RESUMABLE_KEYS = frozenset({"data_dir", "trackers", "eval_batch_size"}) | LOOP_RESUMABLE_KEYS


@dataclass
class KGEConfig:
    """Everything that defines a KGE training run (``None``: filled by :func:`resolve_config`).

    Attributes:
        dataset: dataset name for :func:`kgreason.data.registry.load_dataset` (or the name of a given Dataset).
        data_dir: where datasets live (default ``$KGREASON_DATA_DIR``).
        model: model name in :data:`kgreason.models.MODELS`; ``model_kwargs``: its constructor arguments
            (``embedding_dim``, ``inverse_relations``, ...).
        loop: ``"slcwa"``, ``"lcwa"`` or ``"symmetric_lcwa"``; ``target``: LCWA target (head/relation/tail).
        loss, loss_kwargs: loss name and arguments; ``label_smoothing`` goes into ``loss_kwargs`` of losses that
            take it (bce, cross_entropy).
        negative_sampler, negative_sampler_kwargs, num_negatives, filter_negatives: sLCWA sampling.
        optimizer, optimizer_kwargs, lr: any ``torch.optim`` optimiser by name.
        scheduler, scheduler_kwargs, scheduler_step, scheduler_metric: any ``torch.optim.lr_scheduler`` by name,
            stepped per ``"epoch"`` or ``"batch"``; ``ReduceLROnPlateau`` gets ``scheduler_metric`` (a recorded
            metric key such as ``"valid.both.realistic.mrr"``, or ``None``/``"loss"`` for the training loss).
        epochs, batch_size, sub_batch_size: training length and batching (``sub_batch_size`` bounds memory).
        seed: seeds Python, NumPy, torch and the loop's generator. ``device``: ``None``/``"auto"``, ``"cpu"``, ...
        eval_every, eval_split, eval_batch_size: periodic filtered evaluation (``eval_every=None``: only when
            early stopping is on, then every 5 epochs).
        early_stopping, early_stopping_metric, patience, early_stopping_delta, early_stopping_relative: see
            docs/training.md; the metric key is prefixed with ``eval_split``.
        grad_clip_norm, grad_clip_value: gradient clipping before each optimiser step.
        precision: ``"fp32"`` or ``"bf16"`` (mixed bfloat16 training, see
            :class:`~kgreason.training.loop.TrainingLoop`).
        checkpoint_every: epochs between checkpoints of the run directory.
        trackers: ``"console"`` (progress bar), ``"csv"``, ``"jsonl"``, ``"tensorboard"``, ``"mlflow"``.
    """

    dataset: str = "umls"
    data_dir: str | None = None
    model: str = "distmult"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    loop: str | None = None
    target: str = "tail"
    loss: str | None = None
    loss_kwargs: dict[str, Any] | None = None
    label_smoothing: float | None = None
    negative_sampler: str | None = None
    negative_sampler_kwargs: dict[str, Any] | None = None
    num_negatives: int | None = None
    filter_negatives: bool | None = None
    optimizer: str | None = None
    optimizer_kwargs: dict[str, Any] | None = None
    lr: float | None = None
    scheduler: str | None = None
    scheduler_kwargs: dict[str, Any] | None = None
    scheduler_step: str = "epoch"
    scheduler_metric: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    sub_batch_size: int | None = None
    seed: int = 42
    device: str | None = None
    eval_every: int | None = None
    eval_split: str = "valid"
    eval_batch_size: int = 256
    early_stopping: bool = False
    early_stopping_metric: str = "both.realistic.mrr"
    patience: int = 5
    early_stopping_delta: float = 0.0
    early_stopping_relative: bool = True
    grad_clip_norm: float | None = None
    grad_clip_value: float | None = None
    precision: str = "fp32"
    checkpoint_every: int = 1
    trackers: list[str] = field(default_factory=lambda: ["console"])


def loop_kind(loop: str) -> str:
    """``"slcwa"`` or ``"lcwa"`` for a loop name (``"symmetric_lcwa"`` is of the LCWA kind)."""
    key = normalize_name(loop)
    if key not in LOOPS:
        raise ValueError(f"Unknown training loop {loop!r}; choose slcwa, lcwa or symmetric_lcwa")
    return LOOPS[key]


def resolve_config(config: KGEConfig, default_training: dict[str, Any] | None = None) -> KGEConfig:
    """A copy of ``config`` with every unset training field filled (see the module docstring).

    ``default_training`` is the model's dict (by default looked up from :data:`kgreason.models.MODELS`).
    Also moves ``label_smoothing`` into ``loss_kwargs`` of the losses that take it (a default smoothing is
    dropped for losses without one; a smoothing the user asked for raises ``ValueError`` there).
    """
    cfg = copy.deepcopy(config)
    if default_training is None:
        from kgreason.models import MODELS

        default_training = dict(getattr(MODELS.get(cfg.model), "default_training", {}) or {})
    model_defaults = copy.deepcopy(default_training)
    model_loop = model_defaults.get("loop")
    if cfg.loop is None:
        cfg.loop = model_loop or COMMON_DEFAULTS["loop"]
    kind = loop_kind(cfg.loop)
    per_loop = model_defaults.pop(normalize_name(cfg.loop), None)
    per_loop = per_loop if isinstance(per_loop, dict) else {}
    model_defaults.update(per_loop)
    same_kind = model_loop is None or loop_kind(model_loop) == kind
    user_loss_given = cfg.loss is not None
    user_smoothing = cfg.label_smoothing

    for f in dataclasses.fields(cfg):
        name = f.name
        if getattr(cfg, name) is not None or name == "loop":
            continue
        if name in model_defaults and (same_kind or name not in _LOSS_KEYS or name in per_loop):
            # the model's loss_kwargs belong to the model's loss; not to a loss the user chose instead
            if (
                name == "loss_kwargs"
                and user_loss_given
                and normalize_name(str(cfg.loss)) != normalize_name(str(model_defaults.get("loss", "")))
            ):
                continue
            setattr(cfg, name, copy.deepcopy(model_defaults[name]))
        elif name in LOOP_DEFAULTS[kind]:
            setattr(cfg, name, copy.deepcopy(LOOP_DEFAULTS[kind][name]))
        elif name in COMMON_DEFAULTS:
            setattr(cfg, name, copy.deepcopy(COMMON_DEFAULTS[name]))
    resolve_precision(cfg.precision)  # an unknown name fails here, before a run directory is written
    if cfg.loss_kwargs is None:
        cfg.loss_kwargs = {}
    if kind == "lcwa":  # sampling does not apply
        cfg.negative_sampler = cfg.negative_sampler_kwargs = cfg.num_negatives = cfg.filter_negatives = None
    if cfg.early_stopping and cfg.eval_every is None:
        cfg.eval_every = 5
    smoothing = float(cfg.label_smoothing or 0.0)
    if normalize_name(str(cfg.loss)) in _LABEL_SMOOTHING_LOSSES:
        cfg.loss_kwargs = {**cfg.loss_kwargs}
        cfg.loss_kwargs.setdefault("label_smoothing", smoothing)
        cfg.label_smoothing = float(cfg.loss_kwargs["label_smoothing"])
    elif user_smoothing:
        raise ValueError(f"loss {cfg.loss!r} takes no label smoothing (got label_smoothing={user_smoothing})")
    else:  # a default smoothing meant for another loss
        cfg.label_smoothing = 0.0
    return cfg
