import sys
from pathlib import Path

import numpy as np
import pytest

import fctlib.methods
from fctlib.evaluation.retrieval import evaluate_case
from fctlib.methods.registry import (
    METHODS,
    Method,
    MethodCases,
    criteria,
    methods,
    unpriced_methods,
)
from fctlib.suite.comparison import method_rows

LABELS = np.repeat([0, 1, 2, 3], 25)


def _embeddings(seed, unit=False):
    """Class directions plus noise; rows scaled by very different norms unless `unit`."""
    rng = np.random.default_rng(seed)
    x = np.eye(8)[LABELS] * 2.0 + rng.normal(size=(len(LABELS), 8))
    if unit:
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return (x * rng.uniform(0.05, 20.0, size=(len(LABELS), 1))).astype(np.float32)


class FakeRun:
    """The two things method_rows asks of a run: cached test embeddings and evaluate."""

    def __init__(self, unit=False):
        self.store = {"old": _embeddings(0, unit), "new": _embeddings(1, unit),
                      "bct:3.0": _embeddings(2, unit)}

    def embeddings(self, name, split):
        assert split == "test"
        return self.store[name]

    def evaluate(self, query, gallery, split="test", distance=None):
        return evaluate_case(query, gallery, LABELS, [0, 1], distance=distance)


def _two_methods(run):
    old, new, bct = (run.store[k] for k in ("old", "new", "bct:3.0"))
    return [Method("first", lambda r: MethodCases({"new/old": (new, old),
                                                    "new/new": (new, new)}, "new"), order=1),
            Method("second", lambda r: MethodCases({"bct/old": (bct, old)}, "bct:3.0"),
                   order=2, protocol=("cosine",))]


def test_rows_in_method_case_distance_order_with_the_own_model_beside():
    run = FakeRun()
    rows = method_rows(run, _two_methods(run))
    assert [(r["method"], r["case"], r["distance"]) for r in rows] == [
        ("first", "new/old", "l2"), ("first", "new/old", "cosine"),
        ("first", "new/new", "l2"), ("first", "new/new", "cosine"),
        ("second", "bct/old", "l2"), ("second", "bct/old", "cosine")]
    by_key = {(r["case"], r["distance"]): r for r in rows}
    for distance in ("l2", "cosine"):
        new_new = by_key[("new/new", distance)]
        assert new_new["new_top1"] == new_new["top1"]
        bct = run.store["bct:3.0"]
        own = evaluate_case(bct, bct, LABELS, [0, 1], distance=distance)["all"]["top1"]
        assert by_key[("bct/old", distance)]["new_top1"] == own
    assert all(set(r) == {"method", "case", "distance", "top1", "top5", "mAP", "new_top1",
                          "in_protocol"} for r in rows)
    # a method evaluated by its authors under cosine only has its L2 rows outside its protocol
    assert {(r["method"], r["distance"]): r["in_protocol"] for r in rows} == {
        ("first", "l2"): True, ("first", "cosine"): True,
        ("second", "l2"): False, ("second", "cosine"): True}


def test_cosine_and_l2_differ_only_where_norms_differ():
    scaled = {(r["case"], r["distance"]): r for r in method_rows(FakeRun(), _two_methods(
        FakeRun()))}
    assert scaled[("new/new", "cosine")]["top1"] > scaled[("new/new", "l2")]["top1"] + 0.1
    unit_run = FakeRun(unit=True)
    unit = {(r["case"], r["distance"]): r for r in method_rows(unit_run, _two_methods(unit_run))}
    for case in ("new/old", "new/new", "bct/old"):
        for m in ("top1", "top5", "mAP"):
            assert unit[(case, "l2")][m] == pytest.approx(unit[(case, "cosine")][m], abs=1e-9)


def test_every_module_in_the_methods_folder_registers_and_states_its_place():
    # the folder is the list: each module found there is imported, and each method says its order
    folder = Path(fctlib.methods.__file__).parent
    found = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    assert found <= {name.rsplit(".", 1)[1] for name in sys.modules
                     if name.startswith("fctlib.methods.")}
    ordered = methods()
    assert [m.order for m in ordered] == sorted(m.order for m in METHODS.values())
    assert len({m.order for m in ordered}) == len(ordered)  # no two share a place
    assert ordered[0].name == "independent"  # the table starts from no compatibility
    found = [(c["method"], c["case"], c["reference"]) for c in criteria()]
    for criterion in [("independent", "new/old", "old/old"), ("bct", "bct/old", "old/old"),
                      ("dsimplex", "dsimplex/old", "dsimplex-old/dsimplex-old"),
                      ("dsimplex", "dsimplex/old", "old/old"),
                      ("oca", "oca/oca-old", "oca-old/oca-old"), ("oca", "oca/oca-old", "old/old")]:
        assert criterion in found
    names = [m.name for m in ordered]
    assert found == sorted(found, key=lambda c: names.index(c[0]))  # in table order
    unpriced = unpriced_methods()
    assert {"fct-arch", "fct-loss"} <= set(unpriced) and "bct" not in unpriced
    assert unpriced == [m.name for m in ordered if not m.priced]

