"""The methods comparison: every registered method's cases on the test split, under each distance,
beside that method's own new model on its own (what compatibility cost it); and the main cases
on any split, to explore a protocol on `tune` before anything is run on `test`."""

from __future__ import annotations

from fctlib.evaluation.distances import DISTANCES
from fctlib.methods.bct import BCTName
from fctlib.methods.fct import TransformationName, transformed_gallery
from fctlib.methods.registry import Method, methods
from fctlib.suite.run import Run


def method_rows(run: Run, chosen: list[Method] | None = None,
                distances: tuple[str, ...] = DISTANCES) -> list[dict]:
    """Rows of the methods table for one run (metrics as fractions, all test queries), ordered by
    method (registry order), then case, then distance; `in_protocol` False marks a distance its
    authors do not evaluate the method with."""
    rows, own_top1 = [], {}
    for method in chosen or methods():
        result = method.cases(run)
        for distance in distances:
            key = (result.own_encoder, distance)
            if key not in own_top1:
                own = run.embeddings(result.own_encoder, "test")
                own_top1[key] = run.evaluate(own, own, distance=distance)["all"]["top1"]
        for case, (query, gallery) in result.cases.items():
            for distance in distances:
                m = run.evaluate(query, gallery, distance=distance)["all"]
                rows.append({"method": method.name, "case": case, "distance": distance,
                             "top1": m["top1"], "top5": m["top5"], "mAP": m["mAP"],
                             "new_top1": own_top1[(result.own_encoder, distance)],
                             "in_protocol": method.in_protocol(distance)})
    return rows


def main_cases(run: Run, split: str = "tune") -> dict[str, dict]:
    """Every case of the main comparison on a split (BCT at each variant and weight swept)."""
    old, new = run.embeddings("old", split), run.embeddings("new", split)
    side_dim = run.preset.side_info.model.embedding_dim
    cases = {"old/old": run.evaluate(old, old, split),
             "new/new": run.evaluate(new, new, split)}
    for variant, w in run.preset.method("bct").models():
        bct = run.embeddings(BCTName(variant, w), split)
        cases[f"bct/old {variant} w={w}"] = run.evaluate(bct, old, split)
        cases[f"bct/bct {variant} w={w}"] = run.evaluate(bct, bct, split)
    for name, dim in (("fct/no-side", 0), ("fct/side", side_dim)):
        cases[name] = run.evaluate(new, transformed_gallery(run, TransformationName(dim), split),
                                   split)
    return cases

