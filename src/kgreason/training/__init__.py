"""Training: the generic loop, KGE loops (sLCWA, LCWA), samplers, losses, callbacks, checkpoints, pipeline.

See docs/training.md. The pieces most users touch::

    from kgreason.training import pipeline, SLCWATrainingLoop, LCWATrainingLoop, TrainingCallback
"""

from kgreason.training.callbacks import (
    BatchLossReportCallback,
    CheckpointCallback,
    EarlyStoppingCallback,
    EvaluationCallback,
    GradientClippingCallback,
    GradientValueClippingCallback,
    MultiTrainingCallback,
    TrackerCallback,
    TrainingCallback,
)
from kgreason.training.checkpoint import CheckpointError, load_checkpoint, resume_from, save_checkpoint
from kgreason.training.config import KGEConfig, resolve_config
from kgreason.training.kge import KGETrainingLoop
from kgreason.training.lcwa import LCWATrainingLoop, MultiLabelIndex, SymmetricLCWATrainingLoop
from kgreason.training.loop import CheckpointMismatchError, NonFiniteLossError, TrainingHistory, TrainingLoop
from kgreason.training.losses import (
    LOSSES,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    Loss,
    MarginRankingLoss,
    NSSALoss,
    SoftplusLoss,
    make_loss,
)
from kgreason.training.optim import LR_SCHEDULERS, OPTIMIZERS, make_lr_scheduler, make_optimizer
from kgreason.training.pipeline import PipelineResult, build_training_loop, evaluate_run, pipeline
from kgreason.training.samplers import (
    NEGATIVE_SAMPLERS,
    BernoulliNegativeSampler,
    NegativeSampler,
    PseudoTypedNegativeSampler,
    TripleSet,
    UniformNegativeSampler,
    make_negative_sampler,
)
from kgreason.training.slcwa import SLCWATrainingLoop
from kgreason.training.stoppers import EarlyStopper
from kgreason.training.trackers import (
    TRACKERS,
    ConsoleTracker,
    CSVTracker,
    JSONLTracker,
    MLflowTracker,
    ResultTracker,
    TensorBoardTracker,
)

__all__ = [
    "LOSSES",
    "LR_SCHEDULERS",
    "NEGATIVE_SAMPLERS",
    "OPTIMIZERS",
    "TRACKERS",
    "BCEWithLogitsLoss",
    "BatchLossReportCallback",
    "BernoulliNegativeSampler",
    "CSVTracker",
    "CheckpointCallback",
    "CheckpointError",
    "CheckpointMismatchError",
    "ConsoleTracker",
    "CrossEntropyLoss",
    "EarlyStopper",
    "EarlyStoppingCallback",
    "EvaluationCallback",
    "GradientClippingCallback",
    "GradientValueClippingCallback",
    "JSONLTracker",
    "KGEConfig",
    "KGETrainingLoop",
    "LCWATrainingLoop",
    "Loss",
    "MLflowTracker",
    "MarginRankingLoss",
    "MultiLabelIndex",
    "MultiTrainingCallback",
    "NSSALoss",
    "NegativeSampler",
    "NonFiniteLossError",
    "PipelineResult",
    "PseudoTypedNegativeSampler",
    "ResultTracker",
    "SLCWATrainingLoop",
    "SoftplusLoss",
    "SymmetricLCWATrainingLoop",
    "TensorBoardTracker",
    "TrackerCallback",
    "TrainingCallback",
    "TrainingHistory",
    "TrainingLoop",
    "TripleSet",
    "UniformNegativeSampler",
    "build_training_loop",
    "evaluate_run",
    "load_checkpoint",
    "make_loss",
    "make_lr_scheduler",
    "make_negative_sampler",
    "make_optimizer",
    "pipeline",
    "resolve_config",
    "resume_from",
    "save_checkpoint",
]
