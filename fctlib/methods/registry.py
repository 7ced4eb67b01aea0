"""Where methods register themselves: the artifacts they declare (by kind: a plain name like
`old`, or a structured name like `BCTName("bt2", 10.0)`, written `bct:bt2:10.0`) and their rows in
the methods comparison (cases, compatibility criteria, price).

A method module calls `artifact_kind` for each kind of artifact it trains, `register_method`
for its comparison (with its place in the tables, `order`) and, in the multi-step experiment,
`multistep_chain` or `multistep_case`; `fctlib.methods` imports every module in its folder, so
the registry is complete once that package is imported. Adding a method is adding its module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fctlib.errors import UserError
from fctlib.experiment.names import ArtifactName, Name

if TYPE_CHECKING:
    from fctlib.experiment.context import Generations, RunContext
    from fctlib.experiment.store import Artifact

# kind -> its declaration: `(run) -> Artifact` for a plain kind, `(run, name) -> Artifact` for one
# with a structured name
ARTIFACT_KINDS: dict[str, Callable[..., Artifact]] = {}
NAME_TYPES: dict[str, type[ArtifactName]] = {}  # kind -> its structured name, if it has arguments
METHODS: dict[str, Method] = {}
# method -> its generation k in the multi-step experiment: (steps, k) -> Artifact
CHAINS: dict[str, Callable[[Generations, int], Artifact]] = {}
# method -> entry (i, j) of its multi-step matrix, for methods without models of their own:
# (steps, i, j) -> (query, gallery)
CASES: dict[str, Callable[[Generations, int, int], tuple[np.ndarray, np.ndarray]]] = {}
ORDER: dict[str, int] = {}  # method, chain or case -> its place in the tables (ascending)


class ArtifactNameError(UserError, ValueError):
    """A name that no artifact kind declares, or a kind's argument it refuses."""


def artifact_kind(kind: str | type[ArtifactName]):
    """Register the declaration of a kind of artifact: `(run) -> Artifact` for a plain kind (a
    string, e.g. `old`), `(run, name) -> Artifact` for a structured name's class."""
    key = kind if isinstance(kind, str) else kind.kind

    def register(declaration: Callable[..., Artifact]):
        if key in ARTIFACT_KINDS:
            raise ValueError(f"artifact kind {key!r} is registered twice")
        ARTIFACT_KINDS[key] = declaration
        if not isinstance(kind, str):
            NAME_TYPES[key] = kind
        return declaration

    return register


def name_forms() -> str:
    """How every artifact name is written, for messages (`old, new, side:<dim>[:<source>], ...`)."""
    return ", ".join(NAME_TYPES[k].form if k in NAME_TYPES else k for k in ARTIFACT_KINDS)


def parse_name(text: str) -> Name:
    """The name a string form writes (`side:128` -> SideInfoName(128)); a plain kind is its own
    string. Anything else is an ArtifactNameError naming the forms."""
    kind, sep, arg = text.partition(":")
    if kind in NAME_TYPES and sep:
        try:
            return NAME_TYPES[kind].parse(arg)
        except ArtifactNameError as err:  # a name inside this one (h's target)
            raise ArtifactNameError(f"artifact {text!r} needs {err}") from err
        except ValueError as err:
            raise ArtifactNameError(
                f"artifact {text!r}: {err}; artifact names are {name_forms()}") from err
    if kind in ARTIFACT_KINDS and not sep and kind not in NAME_TYPES:
        return kind
    raise ArtifactNameError(f"unknown artifact {text!r}; artifact names are {name_forms()}")


def declare(run: RunContext, name: Name) -> Artifact:
    """The artifact behind a name (a string form is parsed first): encoders and transformations.
    A name its kind refuses (a ValueError of its declaration) is an ArtifactNameError naming the
    forms."""
    name = parse_name(name) if isinstance(name, str) else name
    try:
        if isinstance(name, str):
            return ARTIFACT_KINDS[name](run)
        return ARTIFACT_KINDS[name.kind](run, name)
    except ArtifactNameError as err:  # an upstream artifact's name, made from this one
        raise ArtifactNameError(f"artifact {str(name)!r} needs {err}") from err
    except UserError:  # bad data or preset, named by its own message
        raise
    except ValueError as err:
        raise ArtifactNameError(
            f"artifact {str(name)!r}: {err}; artifact names are {name_forms()}") from err


@dataclass
class MethodCases:
    """A method's cases on the test split ({case: (query, gallery)}) and its new model's encoder
    (`new`, `bct:<w>`): the model whose own retrieval (query = gallery) gives `new_top1`."""

    cases: dict[str, tuple[np.ndarray, np.ndarray]]
    own_encoder: Name


@dataclass(frozen=True)
class Method:
    """A model-update method in the comparison: its cases, its place in the tables, the
    compatibility criteria it must meet ((cross-model case, the retrieval it must beat), ...),
    whether the price of its new model against the independent one is meaningful (False: another
    model on purpose), and the distances of its authors' protocol (None: any; rows under others
    are outside it)."""

    name: str
    cases: Callable[[RunContext], MethodCases]
    order: int
    criteria: tuple[tuple[str, str], ...] = ()
    priced: bool = True
    protocol: tuple[str, ...] | None = None
    notation: tuple[str, str] | None = None

    def in_protocol(self, distance: str) -> bool:
        """Whether retrieval under `distance` is how the method's authors evaluate it."""
        return self.protocol is None or distance in self.protocol


def register_method(name: str, *, order: int, criteria: tuple[tuple[str, str], ...] = (),
                    priced: bool = True, protocol: tuple[str, ...] | None = None,
                    notation: tuple[str, str] | None = None):
    """Register a function `run -> MethodCases` as method `name`, at place `order` of the
    methods table; `protocol`: the only distances its authors evaluate it with; `notation`: its
    row in the case notation, written as literals (the torch-free report reads it from the
    source, `report.notation`)."""
    def register(cases: Callable[[RunContext], MethodCases]):
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        METHODS[name] = Method(name, cases, order, tuple(criteria), priced,
                               None if protocol is None else tuple(protocol),
                               None if notation is None else tuple(notation))
        return cases

    return register


def methods() -> list[Method]:
    """Every registered method in table order."""
    return sorted(METHODS.values(), key=lambda m: m.order)


def criteria() -> list[dict]:
    """Every registered criterion as {method, case, reference}, in table order."""
    return [{"method": m.name, "case": case, "reference": reference}
            for m in methods() for case, reference in m.criteria]


def unpriced_methods() -> list[str]:
    """The methods whose new model differs from the independent one on purpose."""
    return [m.name for m in methods() if not m.priced]


def multistep_chain(method: str):
    """Register `generation(steps, k) -> Artifact`: the registered method's model of generation k
    in the multi-step experiment (`suite.multistep`), trained on that generation's classes; its
    place among the chains is the method's in the tables."""
    def register(generation: Callable[[Generations, int], Artifact]):
        if method in CHAINS:
            raise ValueError(f"multi-step chain {method!r} is registered twice")
        if method not in METHODS:
            raise ValueError(f"multi-step chain {method!r}: register the method first "
                             "(register_method)")
        CHAINS[method], ORDER[method] = generation, METHODS[method].order
        return generation

    return register


def multistep_case(method: str, *, order: int):
    """Register `case(steps, i, j) -> (query, gallery)`: entry (i, j) of `method`'s multi-step
    matrix, for a method without models of its own per generation (FCT's upgraded galleries);
    `order`: its place among the cases."""
    def register(case: Callable[[Generations, int, int], tuple[np.ndarray, np.ndarray]]):
        if method in CASES or method in CHAINS:
            raise ValueError(f"multi-step method {method!r} is registered twice")
        CASES[method], ORDER[method] = case, order
        return case

    return register


def in_order(registered: dict[str, object]) -> tuple[str, ...]:
    """The names of CHAINS or CASES in their registered order."""
    return tuple(sorted(registered, key=ORDER.__getitem__))
