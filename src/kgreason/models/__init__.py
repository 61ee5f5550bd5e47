"""KGE scoring models behind one interface (:class:`KGEModel`), chosen by name through :data:`MODELS`.

>>> model = MODELS.make("complex", num_entities=135, num_relations=46)
>>> scores = model.score_t(torch.tensor([[0, 3]]))        # FloatTensor[1, 135], logits
"""

from kgreason.models.base import MODELS, KGEModel, register_model
from kgreason.models.complex import ComplEx
from kgreason.models.conve import ConvE
from kgreason.models.distmult import DistMult
from kgreason.models.io import ModelFileError, load_model, model_from_config, save_model
from kgreason.models.regularizers import REGULARIZERS, LpRegularizer, N3Regularizer, Regularizer
from kgreason.models.rotate import RotatE
from kgreason.models.transe import TransE
from kgreason.models.tucker import TuckER

__all__ = [
    "MODELS",
    "REGULARIZERS",
    "ComplEx",
    "ConvE",
    "DistMult",
    "KGEModel",
    "LpRegularizer",
    "ModelFileError",
    "N3Regularizer",
    "Regularizer",
    "RotatE",
    "TransE",
    "TuckER",
    "load_model",
    "model_from_config",
    "register_model",
    "save_model",
]
