"""Dataclasses read from and written to JSON objects of the same shape, records inside records
included (the step records of `suite/records.py` are such dataclasses)."""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import ClassVar


class JsonData:
    """A dataclass read from and written to a JSON object: its field names are the keys (or a
    field's `json` metadata); fields typed as records, or lists or dicts of them, convert too.
    Fields named in OMITTED_WHEN_EMPTY are left out while empty, so that records written before
    they existed save back unchanged."""

    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict:
        """The record as plain JSON values (OMITTED_WHEN_EMPTY left out while empty)."""
        return {_key(f): _dump(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name not in self.OMITTED_WHEN_EMPTY or getattr(self, f.name)}

    @classmethod
    def from_json(cls, data: dict):
        """The record of a JSON object; unknown keys are an error (a format that drifted)."""
        fields = {_key(f): f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(fields)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
        types = _field_types(cls)
        return cls(**{f.name: _load(types[f.name], data[key]) for key, f in fields.items()
                      if key in data})


def _key(f: dataclasses.Field) -> str:
    return f.metadata.get("json", f.name)


@functools.cache
def _field_types(cls) -> dict:
    return typing.get_type_hints(cls)


def _load(kind, value):
    """Parsed JSON `value` as the type `kind`: records built, lists and dicts converted inside."""
    origin = typing.get_origin(kind)
    if origin is list:
        return [_load(typing.get_args(kind)[0], v) for v in value]
    if origin is dict:
        return {k: _load(typing.get_args(kind)[1], v) for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, JsonData):
        return kind.from_json(value)
    return value


def _dump(value):
    if isinstance(value, JsonData):
        return value.to_json()
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value
