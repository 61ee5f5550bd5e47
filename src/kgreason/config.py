"""Configs are plain dataclasses that serialise to JSON in the run directory."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, TypeVar

from kgreason.io import read_json, write_json

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) dataclass config."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build ``cls`` from ``data``; unknown keys raise a ``ValueError`` naming them."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"Unknown {cls.__name__} keys: {', '.join(unknown)}. Known: {', '.join(sorted(fields))}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        ftype = fields[name].type
        sub = _dataclass_type(ftype)
        kwargs[name] = config_from_dict(sub, value) if sub is not None and isinstance(value, dict) else value
    return cls(**kwargs)


def _dataclass_type(ftype: Any) -> type | None:
    if isinstance(ftype, type) and dataclasses.is_dataclass(ftype):
        return ftype
    return None


def save_config(config: Any, path: str | os.PathLike[str]) -> None:
    write_json(path, config_to_dict(config))


def load_config_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a JSON object, got {type(data).__name__}")
    return data


def config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys (dotted for nested dicts) whose values differ, as ``key: old -> new`` lines."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<missing>"), new.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(config_diff(a, b, prefix=f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out
