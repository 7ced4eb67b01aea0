"""YAML layered into typed dataclasses: read a file, merge a layer on the defaults (an unknown key
refused), build a dataclass with every value coerced to its field's type (a wrong type refused);
each refusal a PresetError naming the key and where it came from."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import fields
from pathlib import Path

import yaml

from fctlib.errors import UserError


class PresetError(UserError, ValueError):
    """A preset file names an unknown key, a wrong type or an impossible value."""


def parse_overrides_text(text: str) -> dict:
    """Overrides written as YAML or JSON text (empty: none); anything but a mapping is refused."""
    example = """'{"old": {"training": {"epochs": 1}}}'"""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        raise PresetError(f"overrides {text!r} is not valid YAML or JSON; pass a mapping of "
                          f"preset keys, e.g. {example}") from None
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise PresetError(f"overrides {text!r} reads as a {type(parsed).__name__}, not a mapping "
                          f"of preset keys; pass e.g. {example}")
    return parsed


def read_yaml(path: Path) -> dict:
    """A YAML file's top-level mapping ({} when empty)."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise PresetError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise PresetError(f"{path}: expected a mapping of keys at the top level")
    return data


def merge_layer(base: dict, layer: dict, source: str, prefix: str = "",
                open_keys: tuple[str, ...] = ()) -> dict:
    """`layer` over `base`, nested mappings merged; a key `base` lacks is refused, except inside
    the mappings named in `open_keys` (whose owners check them when they are built)."""
    out = dict(base)
    parent = prefix.rstrip(".")
    is_open = any(parent == k or parent.startswith(f"{k}.") for k in open_keys)
    for key, value in layer.items():
        name = f"{prefix}{key}"
        if key not in base and not is_open:
            known = ", ".join(sorted(base))
            raise PresetError(f"{source}: unknown key '{name}' (known keys here: {known})")
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            out[key] = merge_layer(base[key], value, source, f"{name}.", open_keys)
        else:
            out[key] = value
    return out


def build_typed(cls, data, source: str, prefix: str = ""):
    """The dataclass `cls` from a mapping, every value coerced to its field's type; unknown keys,
    wrong types and values the class refuses are a PresetError naming the key and `source`."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    if not isinstance(data, dict):
        raise PresetError(f"{source}: '{prefix.rstrip('.')}' must be a mapping")
    unknown = sorted(set(data) - names)
    if unknown:
        raise PresetError(f"{source}: unknown key '{prefix}{unknown[0]}' (known: {sorted(names)})")
    kwargs = {k: coerce_value(hints[k], v, source, f"{prefix}{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        where = prefix.rstrip(".") or "top level"
        raise PresetError(f"{source}: impossible value in '{where}': {err}") from None


def coerce_value(hint, value, source: str, key: str):
    """`value` as the type `hint` (optionals, nested dataclasses, lists; an int as a float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        return coerce_value(options[0], value, source, key)
    if dataclasses.is_dataclass(hint):
        return build_typed(hint, value, source, f"{key}.")
    if hint is dict and not isinstance(value, dict):
        raise PresetError(f"{source}: '{key}' must be a mapping, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise PresetError(f"{source}: '{key}' must be a list, got {value!r}")
        item = args[0]
        return [coerce_value(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and type(value) is not hint:
        raise PresetError(
            f"{source}: '{key}' must be {hint.__name__}, got {type(value).__name__} {value!r}"
        )
    return value
