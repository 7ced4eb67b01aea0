"""Structured artifact names: each kind of trained artifact with arguments (`side:<dim>`,
`bct:<variant>:<weight>`, ...) is a frozen dataclass whose fields are those arguments. Code builds
and reads the fields; `str()` is the one string form (folders, records, `fct train-step --step`),
and `parse` reads it back once, where a person typed it (`methods.registry.parse_name`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar


class ArtifactName(ABC):
    """Base of a kind's name (subclass it as a frozen dataclass): `kind` is the string form's
    prefix, `form` how that form is written, `example` one name in it."""

    kind: ClassVar[str]
    form: ClassVar[str]
    example: ClassVar[str]

    @classmethod
    @abstractmethod
    def parse(cls, arg: str) -> ArtifactName:
        """The name whose string form is `<kind>:<arg>` (a ValueError saying what is wrong)."""

    @abstractmethod
    def __str__(self) -> str:
        """The string form: `<kind>:<arg>`, canonical (parse(str(name)) == name)."""


Name = str | ArtifactName  # a plain kind without arguments (`old`, `new`, `oca`) is its string


def integer(text: str, what: str) -> int:
    """`text` as an integer, or a ValueError naming `what` it should be."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{what} must be an integer, got {text!r}") from None


def number(text: str, what: str) -> float:
    """`text` as a float, or a ValueError naming `what` it should be."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {text!r}") from None
