"""Saving and loading trained models: ``model.pt`` (state dict) + ``model.json`` (class, name and kwargs)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from kgreason.io import atomic_torch_save, write_json
from kgreason.models.base import MODELS, KGEModel
from kgreason.registry import UnknownNameError

__all__ = [
    "MODEL_CONFIG_FILE",
    "MODEL_STATE_FILE",
    "ModelFileError",
    "load_model",
    "model_from_config",
    "save_model",
]

MODEL_STATE_FILE = "model.pt"
MODEL_CONFIG_FILE = "model.json"
FORMAT = "kgreason.model/1"


class ModelFileError(ValueError):
    """A saved model could not be read; the message names the file."""


def model_from_config(config: dict[str, Any]) -> KGEModel:
    """Build an untrained model from :attr:`KGEModel.config` (``{"name": ..., **kwargs}``)."""
    kwargs = dict(config)
    name = kwargs.pop("name", None)
    if not isinstance(name, str):
        raise ValueError(f"a model config needs a 'name' (one of {', '.join(MODELS.names())}), got {name!r}")
    return MODELS.make(name, kwargs)


def save_model(model: KGEModel, directory: str | os.PathLike[str]) -> Path:
    """Write ``model.pt`` (the state dict) and ``model.json`` (``class``, ``name``, ``kwargs``) into
    ``directory``, each atomically; returns the directory. Tensors are saved on their current device and
    :func:`load_model` can map them elsewhere."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    name = config.pop("name")
    atomic_torch_save(model.state_dict(), directory / MODEL_STATE_FILE)
    write_json(
        directory / MODEL_CONFIG_FILE,
        {"format": FORMAT, "class": type(model).__name__, "name": name, "kwargs": config},
    )
    return directory


def load_model(directory: str | os.PathLike[str], map_location: str | torch.device | None = None) -> KGEModel:
    """Rebuild the model saved by :func:`save_model` in ``directory`` (parameters on ``map_location``, default
    their saved device), in eval mode. Raises :class:`ModelFileError` naming the file when ``model.json`` or
    ``model.pt`` is missing or unreadable, the model name is unknown, or the weights do not fit the config."""
    directory = Path(directory)
    cfg_path, state_path = directory / MODEL_CONFIG_FILE, directory / MODEL_STATE_FILE
    for path in (cfg_path, state_path):
        if not path.is_file():
            raise ModelFileError(f"{path}: file not found (save with kgreason.models.save_model)")
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{cfg_path}: not a readable model description ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("kwargs"), dict):
        raise ModelFileError(f"{cfg_path}: expected a JSON object with 'name' and 'kwargs'")
    name = meta.get("name") or meta.get("class")
    if not isinstance(name, str):
        raise ModelFileError(f"{cfg_path}: no model name")
    try:
        model: KGEModel = MODELS.make(name, meta["kwargs"])
    except UnknownNameError as exc:
        raise ModelFileError(f"{cfg_path}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{cfg_path}: cannot build model {name!r} ({exc})") from None
    try:
        state = torch.load(state_path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise ModelFileError(
            f"{state_path}: cannot read the state dict ({type(exc).__name__}: {exc})"
        ) from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{state_path}: weights do not fit {cfg_path.name} ({exc})") from None
    tensors = [v for v in state.values() if isinstance(v, torch.Tensor)]
    if tensors:  # where map_location (or the saved device) put the weights
        model.to(tensors[0].device)
    return model.eval()
