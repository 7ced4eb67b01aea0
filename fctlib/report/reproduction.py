"""Does a user's run reproduce the committed results? Each case's metrics against the committed
seeds' mean, in units of their spread, with a verdict (`fct compare`).

A run on the same CPU type, kernels and packages repeats the committed seed bit for bit; on
another CPU (another BLAS path, AVX2 against AVX-512) the first epoch already differs in the
6th digit and training amplifies it, so such a run is judged against the spread over seeds: a
number reproduces when it lies in the 95% prediction interval of the committed seeds' mean
(Student's t, n - 1 degrees of freedom: with 3 committed seeds and one of yours, 4.97 stds).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from fctlib.experiment.records import load_records
from fctlib.report.common import METRICS, Records

LEVEL = 0.95  # a number outside this prediction interval is not reproduced
COLUMNS = ["step", "case", "metric", "yours", "seeds_yours", "committed", "std", "seeds",
           "diff", "z", "bound", "same_seed_diff"]


def case_values(records: Records) -> pd.DataFrame:
    """Every case's all-class metrics (percent, unrounded) of every seed: one row per seed, step,
    case and metric."""
    rows = [{"seed": seed, "step": step, "case": case, "metric": metric,
             "value": 100 * by_split["all"][metric]}
            for seed, steps in records.items() for step, record in steps.items()
            for case, by_split in (getattr(record, "cases", None) or {}).items()
            for metric in METRICS]
    return pd.DataFrame(rows, columns=["seed", "step", "case", "metric", "value"])


def t_quantile(p: float, dof: int) -> float:
    """Student's t quantile at probability p (> 0.5) for `dof` degrees of freedom, by bisection
    on the distribution function integrated numerically (no scipy on a bare machine)."""
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)

    def cdf(t: float) -> float:
        x = np.linspace(0.0, t, 20_001)
        density = np.exp(log_norm - (dof + 1) / 2 * np.log1p(x * x / dof))
        return 0.5 + float(np.sum((density[1:] + density[:-1]) / 2 * np.diff(x)))

    low, high = 0.0, 1.0
    while cdf(high) < p:
        low, high = high, 2 * high
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


def reproduction_table(yours: Records, committed: Records) -> pd.DataFrame:
    """Per step, case and metric: your mean, the committed seeds' mean and std, the difference
    in units of that std (`z`), the prediction bound in the same units, and the largest
    difference from the committed number of the same seed (where you ran committed seeds)."""
    mine, theirs = case_values(yours), case_values(committed)
    keys = ["step", "case", "metric"]
    ours = mine.groupby(keys, sort=False)["value"].agg(yours="mean", seeds_yours="count")
    ref = theirs.groupby(keys, sort=False)["value"].agg(committed="mean", std="std", seeds="count")
    table = ours.join(ref, how="inner").reset_index()
    table["diff"] = table["yours"] - table["committed"]
    table["z"] = table["diff"] / table["std"].where(table["std"] > 0)
    table["bound"] = [prediction_bound(n, m) for n, m in zip(table["seeds"],
                                                                 table["seeds_yours"],
                                                                 strict=True)]
    same = mine.merge(theirs, on=["seed", *keys], suffixes=("", "_committed"))
    same_diff = (same["value"] - same["value_committed"]).abs().groupby(
        [same[k] for k in keys], sort=False).max().rename("same_seed_diff")
    table = table.join(same_diff, on=keys)
    return table[COLUMNS]


def prediction_bound(seeds: int, seeds_yours: int) -> float:
    """How many committed stds a mean of `seeds_yours` new seeds may lie from the mean of
    `seeds` committed ones, at LEVEL (NaN with one committed seed: no spread to judge by)."""
    if seeds < 2:
        return float("nan")
    return t_quantile((1 + LEVEL) / 2, seeds - 1) * math.sqrt(1 / seeds_yours + 1 / seeds)


def reproduction_verdict(table: pd.DataFrame) -> str:
    """One line: identical to the committed seeds, reproduced within their spread, or not."""
    if table.empty:
        return ("nothing to compare: no case of your results is in the committed ones "
                "(run the same preset's notebooks)")
    count = len(table)
    if table["same_seed_diff"].notna().all() and (table["same_seed_diff"] == 0).all():
        return (f"identical: all {count} numbers equal the committed seeds' bit for bit "
                "(the same arithmetic: CPU kernels, BLAS and packages)")
    judged = table[table["bound"].notna() & table["z"].notna()]
    if judged.empty:
        return (f"cannot judge: the committed results have one seed, so no spread; largest "
                f"difference {table['diff'].abs().max():.2f} points")
    outside = judged[judged["z"].abs() > judged["bound"]]
    worst = judged.loc[judged["z"].abs().idxmax()]
    largest = (f"largest |z| {abs(worst['z']):.2f} ({worst['case']} {worst['metric']}, "
               f"bound {worst['bound']:.2f})")
    if outside.empty:
        return (f"reproduced: all {len(judged)} numbers lie in the {LEVEL:.0%} prediction "
                f"interval of the committed seeds' spread; {largest}")
    names = ", ".join(f"{r.case} {r.metric}" for r in outside.itertuples())
    return (f"NOT reproduced: {len(outside)} of {len(judged)} numbers outside the "
            f"{LEVEL:.0%} prediction interval of the committed seeds ({names}); {largest}")


def machines(records: Records) -> str:
    """The distinct `compute` provenances of the records, one per line ("not recorded" for
    records made before it was)."""
    seen = {", ".join(f"{k} {v}" for k, v in record.compute.items()) or "not recorded"
            for steps in records.values() for record in steps.values()}
    return "; ".join(sorted(seen))


def compare_results(yours: str | Path, committed: str | Path) -> tuple[str, bool]:
    """The comparison of two results folders as text (machines, the table, the verdict) and
    whether yours reproduces the committed ones."""
    mine, theirs = load_records(yours), load_records(committed)
    table = reproduction_table(mine, theirs)
    verdict = reproduction_verdict(table)
    shown = table.drop(columns=["step"]).round(
        {"yours": 2, "committed": 2, "std": 2, "diff": 2, "z": 2, "bound": 2,
         "same_seed_diff": 4})
    text = "\n".join([
        f"yours ({yours}, seeds {sorted(mine)}): {machines(mine)}",
        f"committed ({committed}, seeds {sorted(theirs)}): {machines(theirs)}",
        "all classes, percent; z = diff / std of the committed seeds; bound: the "
        f"{LEVEL:.0%} prediction interval in the same units",
        shown.to_string(index=False, na_rep="-"),
        verdict])
    return text, not verdict.startswith(("NOT", "nothing"))
