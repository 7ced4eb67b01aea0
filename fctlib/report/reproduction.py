"""Does a user's run reproduce the committed results? Every number the records hold (each
case's metrics under each distance, the methods table, the side-info sizes, the areas under the
backfilling curves, the ablations and the multi-step AM) against the committed seeds' mean, with
one verdict for all of them (`fct compare`).

A run on the same CPU type, kernels and packages repeats the committed seed bit for bit; on
another CPU (another BLAS path, AVX2 against AVX-512) the first epoch already differs in the
6th digit and training amplifies it, so such a run is judged against the spread over seeds, as
a new seed would be. Each number gets a two-sided t test of your mean against the committed
mean; its variance is the committed seeds' variance moderated toward a prior fitted to all
numbers of the same metric and kind (`moderated_t`: a few seeds alone estimate a spread
too poorly); the verdict controls the family-wise error over all numbers by Holm's step-down: a
faithful run is called NOT reproduced with a probability near or below 5%, however many are
compared (simulated with 4 committed seeds: 4-7% when true spreads differ as a prior of 2-4 dof
makes them, at most 1.5% when they are closer; results/benchmarks/compare-four-seeds-2026-12-06/
simulate.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from fctlib.experiment.records import (
    AblationsRecord,
    CaseRecord,
    FastFillRecord,
    MethodsRecord,
    MultistepRecord,
    SideInfoSizeRecord,
    load_records,
)
from fctlib.report.backfilling import area_under_curve
from fctlib.report.common import HEADLINE_METRICS, METRICS, Records, data_sets, named
from fctlib.report.moderated_t import (
    VariancePrior,
    fit_variance_prior,
    moderated_variance,
    t_quantile,
    t_two_sided_p,
)

LEVEL = 0.95  # family-wise: all numbers of a faithful run pass together with this probability
KEYS = ["step", "case", "distance", "metric"]
# the prior weighs as at most 4 degrees of freedom: uncapped, it failed 4 of 6 faithful runs
# (results/benchmarks/compare-verdict-2026-12-06/leave_one_out.md)
PRIOR_MAX_DOF = 4.0
# steps whose numbers are means over many retrievals, each a kind with a spread of its own
STEP_KINDS = {"fastfill": "backfilling area", "multistep": "multi-step AM"}
COLUMNS = [*KEYS, "yours", "seeds_yours", "committed", "std", "seeds", "moderated_std", "diff",
           "bound", "t", "dof", "p", "p_holm", "repeat", "same_seed_diff"]


def _metric_rows(seed: int, step: str, case: str, distance: str, metrics: dict) -> list[dict]:
    """One row per metric of an all-class metrics dict, in percent."""
    return [{"seed": seed, "step": step, "case": case, "distance": distance, "metric": metric,
             "value": 100 * metrics[metric]} for metric in METRICS]


def _record_rows(seed: int, step: str, record) -> list[dict]:
    """Every all-class number of one step's record: cases under each distance (`cases` under
    the preset's, "" here, for records older than `by_distance`), the methods table's rows, FCT
    per side-info size (06), the area under each backfilling curve by the published rule (07),
    FCT per ablation (08) and each method's multi-step AM (10: its AC, a share of 3 pairs, is
    not a number a t test fits)."""
    rows = []
    if isinstance(record, CaseRecord):
        for distance, cases in (record.by_distance or {"": record.cases}).items():
            for case, by_split in cases.items():
                rows += _metric_rows(seed, step, case, distance, by_split["all"])
    elif isinstance(record, MethodsRecord):
        for row in record.rows:
            rows += _metric_rows(seed, step, row.case, row.distance,
                                 {metric: getattr(row, metric) for metric in METRICS})
    elif isinstance(record, SideInfoSizeRecord):
        for row in record.rows:
            rows += _metric_rows(seed, step, f"fct, side-info {row.side_info_dim}", "",
                                 row.metrics["all"])
    elif isinstance(record, AblationsRecord):
        ablations = ([(f"fct, side-info from {r.source}", r) for r in record.side_info_source]
                     + [(f"fct, h on {r.data_share:g} of the data", r) for r in record.data_share]
                     + [(f"fct, h {r.width_factor:g}x wide", r) for r in record.width])
        for case, row in ablations:
            rows += _metric_rows(seed, step, case, "", row.metrics["all"])
    elif isinstance(record, FastFillRecord):
        for curve in record.curves:
            side_info = (f"side-info {curve.side_info_dim}" if curve.side_info_dim
                         else "no side-info")
            areas = {metric: area_under_curve([p.fraction for p in curve.points],
                                              [p.metrics["all"][metric] for p in curve.points])
                     for metric in METRICS}
            rows += _metric_rows(seed, step, f"{curve.transformation} {curve.order} area, "
                                 f"{side_info}", "", areas)
    elif isinstance(record, MultistepRecord):
        for distance, by_method in record.distances.items():
            for method in record.methods:
                scores = by_method[method]
                rows += [{"seed": seed, "step": step, "case": f"{method} AM",
                          "distance": distance, "metric": metric,
                          "value": 100 * getattr(scores, f"AM_{metric}")}
                         for metric in HEADLINE_METRICS]
    return rows


def record_numbers(records: Records) -> pd.DataFrame:
    """Every compared number (percent, unrounded) of every seed: one row per seed, step, case,
    distance and metric, steps in notebook order."""
    rows = [row for seed, steps in records.items()
            for step, record in sorted(steps.items(), key=lambda item: item[1].NOTEBOOK)
            for row in _record_rows(seed, step, record)]
    return pd.DataFrame(rows, columns=["seed", *KEYS, "value"])


def holm_adjusted(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: the k-th smallest of N is multiplied by N - k + 1,
    made monotone, and capped at 1; rejecting where it is below alpha keeps the family-wise
    error at most alpha under any dependence between the tests."""
    p = np.asarray(p_values, float)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def number_kind(step: str, case: str) -> str:
    """"cross-model" where a case's queries and gallery come from two models with no
    transformation between them (bct/old, new/old, oca/oca-old): training noise moves such
    numbers several times more than a model's own retrieval ("same-model", which here also
    covers a transformed gallery, x/side and x/no-side, and the ablations' FCT); 07's areas and
    10's AM are kinds of their own (STEP_KINDS): a mean over a curve or over generations."""
    if step in STEP_KINDS:
        return STEP_KINDS[step]
    query, _, gallery = case.partition("/")
    cross = gallery and query != gallery and gallery not in ("side", "no-side")
    return "cross-model" if cross else "same-model"


def variance_priors(table: pd.DataFrame) -> dict[tuple[str, str], VariancePrior]:
    """Per metric and kind of number, the prior fitted to the committed variances of its
    judgeable numbers (those with 2 or more committed seeds), its dof at most PRIOR_MAX_DOF; a
    group with fewer than 2 such spreads gets none, and its numbers are not judged."""
    judgeable = table[table["seeds"] >= 2]
    priors = {}
    kinds = pd.Series([number_kind(step, case) for step, case in
                       zip(judgeable["step"], judgeable["case"], strict=True)],
                      index=judgeable.index)
    for key, rows in judgeable.groupby([judgeable["metric"], kinds], sort=False):
        if (rows["std"] > 0).sum() >= 2:
            priors[key] = fit_variance_prior(rows["std"] ** 2, rows["seeds"] - 1,
                                             max_dof=PRIOR_MAX_DOF)
    return priors


def committed_priors(committed: pd.DataFrame) -> dict[tuple[str, str], VariancePrior]:
    """The variance priors of every committed number (record_numbers' rows), not only of those
    a user's run has: a run of two notebooks is judged with the spreads of all twelve. A number
    that two notebooks report alike on every seed counts once."""
    spreads = committed.groupby(KEYS, sort=False)["value"].agg(std="std", seeds="count",
                                                               values=tuple)
    return variance_priors(spreads.reset_index().drop_duplicates(["metric", "values"]))


def _moderated_tests(table: pd.DataFrame,
                     priors: dict[tuple[str, str], VariancePrior]) -> pd.DataFrame:
    """Each judgeable number's moderated std, dof, t and two-sided p (NaN where not judged)."""
    rows = []
    for row in table.itertuples():
        prior = priors.get((row.metric, number_kind(row.step, row.case)))
        if row.seeds < 2 or prior is None:
            rows.append((math.nan,) * 4)
            continue
        variance, dof = moderated_variance(row.std ** 2, row.seeds - 1, prior)
        scale = math.sqrt(variance * (1 / row.seeds + 1 / row.seeds_yours))
        t = row.diff / scale
        rows.append((math.sqrt(variance), dof, t, t_two_sided_p(t, dof)))
    return pd.DataFrame(rows, index=table.index, columns=["moderated_std", "dof", "t", "p"])


def reproduction_table(yours: Records, committed: Records) -> pd.DataFrame:
    """Per step, case, distance and metric: your mean, the committed seeds' mean, std and
    moderated std, the difference, its t statistic on the moderated dof, the two-sided p-value,
    Holm's adjusted p over the distinct judged numbers (a number that repeats another exactly on
    every seed of both sides, the same model and gallery reported by two notebooks, is one
    test; `repeat` marks the later copies), the bound: the |diff| beyond which a number fails
    whatever the others do (Holm's first step), and the largest difference from the committed
    number of the same seed (where you ran committed seeds)."""
    mine, theirs = record_numbers(yours), record_numbers(committed)
    ours = mine.groupby(KEYS, sort=False)["value"].agg(yours="mean", seeds_yours="count",
                                                        values_yours=tuple)
    ref = theirs.groupby(KEYS, sort=False)["value"].agg(committed="mean", std="std",
                                                         seeds="count", values=tuple)
    table = ours.join(ref, how="inner").reset_index()
    table["diff"] = table["yours"] - table["committed"]
    table = table.join(_moderated_tests(table, committed_priors(theirs)))
    judged = table[table["p"].notna()]
    repeat = judged.duplicated(["metric", "values", "values_yours"])
    table["repeat"] = repeat
    distinct = judged[~repeat]
    adjusted = pd.Series(holm_adjusted(distinct["p"]), index=distinct.index)
    first = judged.groupby(["metric", "values", "values_yours"], sort=False).ngroup()
    table["p_holm"] = pd.Series(adjusted.to_numpy()[first.to_numpy()], index=judged.index)
    quantiles = {dof: t_quantile(1 - (1 - LEVEL) / (2 * max(len(distinct), 1)), dof)
                 for dof in judged["dof"].unique()}
    table["bound"] = judged["dof"].map(quantiles) * judged["moderated_std"] * np.sqrt(
        1 / judged["seeds"] + 1 / judged["seeds_yours"])
    same = mine.merge(theirs, on=["seed", *KEYS], suffixes=("", "_committed"))
    same_diff = (same["value"] - same["value_committed"]).abs().groupby(
        [same[k] for k in KEYS], sort=False).max().rename("same_seed_diff")
    table = table.join(same_diff, on=KEYS)
    return table[COLUMNS]


def simulated_alarm(rng: np.random.Generator, numbers: int, true_prior_dof: float,
                    shift: float = 0.0, committed_seeds: int = 3) -> bool:
    """One simulated comparison, to measure the verdict: true variances from a scaled inverse
    chi-square with `true_prior_dof` (infinite: all equal), `committed_seeds` committed seeds and
    one of yours per number from the same normal laws, the first number moved by `shift` of its
    true std; whether Holm's step finds any number different at the verdict's level."""
    true_variance = (true_prior_dof / rng.chisquare(true_prior_dof, numbers)
                     if math.isfinite(true_prior_dof) else np.ones(numbers))
    committed = rng.normal(0.0, np.sqrt(true_variance)[:, None], (numbers, committed_seeds))
    yours = rng.normal(0.0, np.sqrt(true_variance))
    yours[0] += shift * math.sqrt(true_variance[0])
    table = pd.DataFrame({"step": "new", "metric": "top1", "case": "new/new",
                          "seeds": committed_seeds, "seeds_yours": 1,
                          "std": committed.std(axis=1, ddof=1),
                          "diff": yours - committed.mean(axis=1)})
    tests = _moderated_tests(table, variance_priors(table))
    return bool((holm_adjusted(tests["p"]) < 1 - LEVEL).any())


def _name(row) -> str:
    """A number's name in the verdict: step, case, distance (if any), metric."""
    return " ".join(str(v) for v in (row.step, row.case, row.distance, row.metric) if v)


def reproduction_verdict(table: pd.DataFrame) -> str:
    """One line: identical to the committed seeds, reproduced within their spread, or not."""
    if table.empty:
        return ("nothing to compare: no case of your results is in the committed ones "
                "(run the same preset's notebooks)")
    count = len(table)
    if table["same_seed_diff"].notna().all() and (table["same_seed_diff"] == 0).all():
        return (f"identical: all {count} numbers equal the committed seeds' bit for bit "
                "(the same arithmetic: CPU kernels, BLAS and packages)")
    judged = table[table["p_holm"].notna()]
    tests = int((~judged["repeat"].astype(bool)).sum())
    if judged.empty:
        return (f"cannot judge: the committed results have one seed, so no spread; largest "
                f"difference {table['diff'].abs().max():.2f} points")
    alpha = 1 - LEVEL
    outside = judged[judged["p_holm"] < alpha]
    worst = judged.loc[judged["p"].idxmin()]
    largest = (f"smallest p {worst['p']:.2g} ({_name(worst)}: {worst['diff']:+.2f} points, "
               f"t {worst['t']:.2f}), Holm-adjusted {worst['p_holm']:.2g}")
    if outside.empty:
        return (f"reproduced: none of {len(judged)} numbers ({tests} distinct) differs from the "
                f"committed seeds at a family-wise {alpha:.0%}; {largest}")
    names = ", ".join(_name(r) for r in outside.itertuples())
    return (f"NOT reproduced: {len(outside)} of {len(judged)} numbers ({tests} distinct) differ "
            f"from the committed seeds at a family-wise {alpha:.0%} ({names}); {largest}")


def screening(table: pd.DataFrame) -> str:
    """One line for a closer look than the verdict's: how many distinct numbers a test of their
    own would call different at 5%, beside the count a faithful run averages (5% of them)."""
    distinct = table[table["p"].notna() & ~table["repeat"].fillna(True).astype(bool)]
    alone = int((distinct["p"] < 1 - LEVEL).sum())
    return (f"screening: {alone} of {len(distinct)} distinct numbers have p < {1 - LEVEL:.2f} on "
            f"their own; a faithful run averages {(1 - LEVEL) * len(distinct):.1f}")


def machines(records: Records) -> str:
    """The distinct `compute` provenances of the records and of the models they loaded that
    other arithmetic trained (`trained_with`), "; "-separated ("not recorded" for records made
    before it was)."""
    seen = {", ".join(f"{k} {v}" for k, v in arithmetic.items()) or "not recorded"
            for steps in records.values() for record in steps.values()
            for arithmetic in (record.compute, *record.trained_with.values())}
    return "; ".join(sorted(seen))


def lacking(yours, committed) -> str:
    """Whose records lack what is compared: "the" (both sides'), "your" or "the committed"."""
    return "the" if not yours and not committed else "your" if not yours else "the committed"


def same_data(mine: Records, theirs: Records) -> str:
    """One line: whether both sides' records were made from the same images and labels."""
    yours, committed = data_sets(mine), data_sets(theirs)
    if not yours or not committed:
        return (f"data: not known to be the same ({lacking(yours, committed)} records name no "
                "data: older code)")
    if yours == committed:
        return f"data: the same images and labels ({named(yours)})"
    return (f"data: NOT the same images or labels (yours: {named(yours)}; committed: "
            f"{named(committed)}): a difference below may be the data's")


def seed_models(records: Records) -> dict[tuple[int, str], set[str]]:
    """(seed, model) -> the weights digests the seed's records name for it; a model of a step that
    trains its own (`OWN_MODELS`, notebook 11's) is named `<step>/<model>`."""
    digests: dict[tuple[int, str], set[str]] = {}
    for seed, steps in records.items():
        for step, record in steps.items():
            for name, digest in record.weights.items():
                model = f"{step}/{name}" if record.OWN_MODELS else name
                digests.setdefault((seed, model), set()).add(digest)
    return digests


def same_models(mine: Records, theirs: Records) -> str:
    """One line: how many of the models both sides trained (the same seed and name) have the
    committed weights bit for bit, which only the same arithmetic gives; the others by seed."""
    yours, committed = seed_models(mine), seed_models(theirs)
    if not yours or not committed:
        return (f"models: not known to be the same ({lacking(yours, committed)} records name no "
                "weights: older code)")
    shared = sorted(yours.keys() & committed.keys())
    if not shared:
        return "models: none in common (no seed trained a model of the same name on both sides)"
    other: dict[int, list[str]] = {}
    for seed, model in shared:
        if yours[seed, model] != committed[seed, model]:
            other.setdefault(seed, []).append(model)
    same = len(shared) - sum(map(len, other.values()))
    line = (f"models: {same} of the {len(shared)} that both sides trained have the committed "
            f"weights bit for bit")
    if not other:
        return line + " (your arithmetic is ours)"
    return line + "; other weights (another arithmetic or training): " + "; ".join(
        f"seed {seed}: {', '.join(models)}" for seed, models in sorted(other.items()))


def compare_results(yours: str | Path, committed: str | Path) -> tuple[str, bool]:
    """The comparison of two results folders as text (machines, whether the data and the models
    are the same, the priors, the table, a screening line, the verdict) and whether yours
    reproduces the committed ones."""
    mine, theirs = load_records(yours), load_records(committed)
    table = reproduction_table(mine, theirs)
    verdict = reproduction_verdict(table)
    priors = "; ".join(f"{metric} {kind}: dof {prior.dof:.1f}, std {math.sqrt(prior.variance):.2f}"
                       for (metric, kind), prior in committed_priors(
                           record_numbers(theirs)).items())
    shown = table.round({"yours": 2, "committed": 2, "std": 2, "moderated_std": 2, "diff": 2,
                         "bound": 2, "t": 2, "dof": 1, "same_seed_diff": 4})
    for column in ("p", "p_holm"):
        shown[column] = shown[column].map("{:.2g}".format)
    text = "\n".join([
        f"yours ({yours}, seeds {sorted(mine)}): {machines(mine)}",
        f"committed ({committed}, seeds {sorted(theirs)}): {machines(theirs)}",
        same_data(mine, theirs),
        same_models(mine, theirs),
        f"variance priors: {priors or 'none (too few committed seeds)'}",
        "all classes, percent; std: the committed seeds'; moderated_std: shrunk toward the "
        "prior of its metric and kind; t = diff / (moderated_std * sqrt(1/seeds + "
        "1/seeds_yours)) on dof degrees of freedom; p: two-sided; p_holm: Holm-adjusted over "
        "the distinct judged numbers (repeat: a copy of an earlier number on every seed); "
        "bound: a |diff| beyond it fails the verdict",
        shown.to_string(index=False, na_rep="-"),
        screening(table) if table["p"].notna().any() else "",
        verdict])
    return text, not verdict.startswith(("NOT", "nothing"))
