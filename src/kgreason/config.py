"""Configs are plain dataclasses that serialise to JSON in the run directory."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, TypeVar

from kgreason.io import read_json, write_json
from kgreason.registry import suggest

C = TypeVar("C")


class UnknownConfigKeyError(TypeError, ValueError):
    """A config key that is not a field of the config class; the message suggests close matches. A
    ``TypeError`` (like an unknown keyword argument) and a ``ValueError`` (like any other bad config value)."""


def unknown_keys_error(kind: str, unknown: list[str], known: list[str]) -> UnknownConfigKeyError:
    """The error for ``unknown`` keys of a ``kind`` config, each with its close matches among ``known``."""
    parts = []
    for key in unknown:
        close = suggest(key, known)
        parts.append(f"{key} (did you mean {' or '.join(close)}?)" if close else key)
    return UnknownConfigKeyError(
        f"Unknown {kind} keys: {', '.join(parts)}. Known: {', '.join(sorted(known))}"
    )


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    """``values[a][b] = value`` for ``key = "a.b"`` (nested dicts made as needed; a non-dict in the way is an
    error naming the key)."""
    *parents, leaf = key.split(".")
    if not leaf or any(not p for p in parents):
        raise ValueError(f"bad config key {key!r}")
    node = values
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ValueError(
                f"cannot set {key!r}: {'.'.join(parents[: i + 1])!r} is {child!r}, not a mapping"
            )
        node = child
    node[leaf] = value


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) dataclass config."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build ``cls`` from ``data``; unknown keys raise a ``ValueError`` naming them."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise unknown_keys_error(cls.__name__, unknown, list(fields))
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


_MISSING = "<missing>"


def config_defaults(cls: type) -> dict[str, Any]:
    """The JSON-ready default of every field of dataclass ``cls`` that has one (nested dataclasses as dicts)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        out[f.name] = config_to_dict(value) if dataclasses.is_dataclass(value) else value
    return json.loads(json.dumps(out, default=str))


def config_diff(
    old: dict[str, Any], new: dict[str, Any], prefix: str = "", defaults: dict[str, Any] | None = None
) -> list[str]:
    """Keys (dotted for nested dicts) whose values differ, as ``key: old -> new`` lines.

    A key absent from ``old`` whose value in ``new`` equals its entry in ``defaults`` does not count: a
    config saved before a field was added to the library matches a config that leaves it at its default.
    """
    defaults = defaults or {}
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if a is _MISSING and key in defaults and defaults[key] == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            sub = defaults.get(key)
            out.extend(
                config_diff(a, b, prefix=f"{prefix}{key}.", defaults=sub if isinstance(sub, dict) else None)
            )
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def resume_diff(
    saved: dict[str, Any],
    current: dict[str, Any],
    resumable_keys: Any,
    defaults: dict[str, Any] | None = None,
) -> list[str]:
    """:func:`config_diff` lines for the keys whose top-level name is not in ``resumable_keys``: what forbids
    continuing a run saved with ``saved`` under ``current``."""
    diff = config_diff(saved, current, defaults=defaults)
    return [d for d in diff if d.split(":", 1)[0].split(".")[0] not in resumable_keys]
