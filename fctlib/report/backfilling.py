"""Partial backfilling (FastFill, notebook 07): the backfilling curves over seeds, the area under
each, FastFill's claims, and the published areas."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fctlib.experiment.record_rows import BackfillCurve
from fctlib.report.common import HEADLINE_METRICS, METRICS, Records, judged, mean_std, over_seeds

AUC_RULES = ("mean", "trapezoid")
# Published area under the backfilling curve (mean of 22 points, %), FastFill paper's tables.
PUBLISHED_BACKFILLING = pd.DataFrame(
    [
        ("CIFAR-100", "none", "fct", "random", 49.1, 73.6, 29.1),
        ("CIFAR-100", "none", "fastfill", "uncertainty", 53.6, 75.3, 32.5),
        ("ImageNet-1k", "none", "fct", "random", 62.8, 81.1, 40.5),
        ("ImageNet-1k", "none", "fastfill", "uncertainty", 66.5, 83.6, 44.8),
        ("ImageNet-1k", "128-d", "fct", "random", 64.7, 82.4, 42.6),
        ("ImageNet-1k", "128-d", "fastfill", "uncertainty", 67.8, 84.2, 46.2),
    ],
    columns=["dataset", "side_info", "transformation", "order", "auc_top1", "auc_top5", "auc_mAP"],
)
PUBLISHED_BACKFILLING_SOURCE = ("FastFill (Jaeckle et al., ICLR 2023) with the FCT reference code; "
                                "area = mean of 22 points, single runs")
CURVE_KEYS = ["side_info_dim", "transformation", "order"]
CURVE_COLUMNS = ["seed", *CURVE_KEYS, "fraction", "backfilled", *METRICS]
AUC_COLUMNS = [f"auc_{m}" for m in METRICS]
# (claim, lower curve, higher curve, strict), on the area by the published (mean) rule
BACKFILL_CLAIMS = (
    ("fastfill uncertainty > fastfill random", ("fastfill", "random"),
     ("fastfill", "uncertainty"), True),
    ("fastfill uncertainty > fct random", ("fct", "random"), ("fastfill", "uncertainty"), True),
    ("fastfill oracle >= fastfill uncertainty", ("fastfill", "uncertainty"),
     ("fastfill", "oracle"), False),
    ("fastfill oracle >= fastfill random", ("fastfill", "random"), ("fastfill", "oracle"), False),
    ("fastfill oracle >= fct random", ("fct", "random"), ("fastfill", "oracle"), False),
)


def area_under_curve(fractions, values, rule: str = "mean") -> float:
    """Area under a backfilling curve on [0, 1]: the mean of its points (the published rule) or
    the trapezoid rule over the fractions."""
    x, y = np.asarray(fractions, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"need matching 1-D fractions and values (>= 2 points), got {x.shape} "
                         f"and {y.shape}")
    if rule == "mean":
        return float(y.mean())
    if rule == "trapezoid":
        return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum())
    raise ValueError(f"unknown rule {rule!r}; use one of {AUC_RULES}")


def curve_frame(curves: list[BackfillCurve], seed: int) -> pd.DataFrame:
    """One seed's backfilling curves, long: one row per side-info size, curve and fraction,
    metrics of all queries in percent."""
    rows = [{"seed": seed, "side_info_dim": curve.side_info_dim,
             "transformation": curve.transformation, "order": curve.order,
             "fraction": point.fraction, "backfilled": point.backfilled,
             **{m: 100 * point.metrics["all"][m] for m in METRICS}}
            for curve in curves for point in curve.points]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def backfilling_rows(records: Records) -> pd.DataFrame:
    """Every seed's backfilling curves, long (as curve_frame)."""
    return over_seeds(records, "fastfill", lambda r, seed: curve_frame(r.curves, seed),
                      CURVE_COLUMNS)


def backfilling_points_table(long: pd.DataFrame) -> pd.DataFrame:
    """Every curve point, mean and standard deviation over seeds (%), and the number of seeds."""
    table = mean_std(long.drop(columns="backfilled"), [*CURVE_KEYS, "fraction"])
    table["fraction"] = table["fraction"].round(4)
    return table


def _areas(long: pd.DataFrame) -> pd.DataFrame:
    """Area under each curve per seed, by each rule (%)."""
    rows = []
    for key, curve in long.groupby(["seed", *CURVE_KEYS], sort=False):
        curve = curve.sort_values("fraction")
        for rule in AUC_RULES:
            rows.append({**dict(zip(["seed", *CURVE_KEYS], key, strict=True)), "auc_rule": rule,
                         **{f"auc_{m}": area_under_curve(curve["fraction"], curve[m], rule)
                            for m in METRICS}})
    return pd.DataFrame(rows, columns=["seed", *CURVE_KEYS, "auc_rule", *AUC_COLUMNS])


def backfilling_table(long: pd.DataFrame, side_info_dim: int) -> pd.DataFrame:
    """transformation, order, auc_rule, auc_top1, auc_top5, auc_mAP (%, mean over seeds) and
    seeds, for the curves with side-info of size `side_info_dim` (0: none)."""
    areas = _areas(long[long["side_info_dim"] == side_info_dim])
    keys = ["transformation", "order", "auc_rule"]
    grouped = areas.groupby(keys, sort=False)
    table = grouped[AUC_COLUMNS].mean().round(2)
    table["seeds"] = grouped["seed"].nunique()
    return table.reset_index()[[*keys, *AUC_COLUMNS, "seeds"]]


def backfilling_claims(long: pd.DataFrame, metrics: tuple[str, ...] = HEADLINE_METRICS
                       ) -> pd.DataFrame:
    """FastFill's claims per side-info size and metric, on the area by the published rule:
    verdict over seeds (as claims_table), mean margin in points, seeds agreeing."""
    areas = _areas(long)
    areas = areas[areas["auc_rule"] == "mean"]
    rows = []
    for dim, by_dim in areas.groupby("side_info_dim", sort=False):
        per_seed = by_dim.pivot_table(index="seed", columns=["transformation", "order"],
                                      values=[f"auc_{m}" for m in metrics])
        for claim, lower, higher, strict in BACKFILL_CLAIMS:
            for metric in metrics:
                col = f"auc_{metric}"
                if (col, *lower) not in per_seed or (col, *higher) not in per_seed:
                    continue
                margins = per_seed[(col, *higher)] - per_seed[(col, *lower)]
                rows.append({"side_info_dim": dim, "claim": claim, "metric": metric,
                             **judged(margins, strict)})
    return pd.DataFrame(rows, columns=["side_info_dim", "claim", "metric", "verdict", "margin",
                                       "seeds_agreeing"])


def backfilling_sentence(claims: pd.DataFrame) -> str:
    """One sentence per side-info size: does FastFill's uncertainty order beat both random orders
    in area (top-1 and mAP) with the oracle above them all, and if not, which part fails."""
    sentences = []
    for dim, rows in claims.groupby("side_info_dim", sort=False):
        where = f"With side-info of size {dim}" if dim else "Without side-info"
        claim = ("FastFill's uncertainty order beats its random order and FCT's random order in "
                 "area under the backfilling curve (top-1 and mAP) and the oracle order bounds "
                 "them")
        broken = rows[rows["verdict"] != "holds"]
        if broken.empty:
            sentences.append(f"{where}, {claim}: **holds** on every seed.")
            continue
        items = "; ".join(f"{r.claim} ({r.metric}) {r.verdict}, margin {r.margin:+.2f}, "
                          f"{r.seeds_agreeing} seeds" for r in broken.itertuples())
        sentences.append(f"{where}, the claim that {claim} **does not hold**: {items}.")
    return " ".join(sentences) or "No backfilling curves to check."


def backfilling_paper_comparison(long: pd.DataFrame, ours_label: str) -> pd.DataFrame:
    """Area (mean rule) of FCT in random order and FastFill in uncertainty order, and FastFill's
    gain, ours beside the published runs, one row per data set and side-info setting."""
    areas = _areas(long)
    ours = areas[areas["auc_rule"] == "mean"].groupby(CURVE_KEYS, sort=False)[AUC_COLUMNS].mean()
    frames = [PUBLISHED_BACKFILLING.assign(source="published")]
    for dim in ours.index.get_level_values("side_info_dim").unique():
        part = ours.loc[dim].reset_index()
        frames.append(part.assign(dataset=ours_label, side_info=f"{dim}-d" if dim else "none",
                                  source="ours"))
    both = pd.concat(frames, ignore_index=True)
    rows = []
    for (source, dataset, side), group in both.groupby(["source", "dataset", "side_info"],
                                                       sort=False):
        curves = group.set_index(["transformation", "order"])
        if ("fct", "random") not in curves.index or ("fastfill", "uncertainty") not in curves.index:
            continue
        fct, fastfill = curves.loc[("fct", "random")], curves.loc[("fastfill", "uncertainty")]
        row = {"source": source, "dataset": dataset, "side_info": side}
        row.update({f"fct_random_{c}": round(fct[c], 2) for c in AUC_COLUMNS})
        row.update({f"fastfill_uncertainty_{c}": round(fastfill[c], 2) for c in AUC_COLUMNS})
        row.update({f"gain_{c}": round(fastfill[c] - fct[c], 2) for c in AUC_COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows)


DIAGNOSTIC_COLUMNS = ["seed", "gallery", "classifier_ce", "backfilled_top1_share_at_5pct",
                      "sigma_error_spearman", "fit_mse_train", "fit_mse_tune"]
# the step whose record holds each transformed gallery's h's fit error (FCT's: notebook 05's)
FIT_ERROR_STEP = {"fastfill": "fastfill", "fct": "transformation"}


def diagnostics_table(records: Records) -> pd.DataFrame:
    """Per test gallery (new/new; FastFill's and FCT's h, by side-info), the mean over seeds of
    the frozen new classifier's cross-entropy on it, of the share of new queries whose nearest
    item is a backfilled one at 5% random backfill (%), for FastFill's galleries of the rank
    correlation of its sigma with h's real error per item (the premise of its uncertainty order),
    of its h's mean squared error on train (fitted) and on tune (held out), and the seeds
    (records written before these diagnostics: empty; before the fit errors: NaN there)."""
    def fit_error(seed: int, gallery: str, split: str) -> float:
        kind, _, name = gallery.partition("/")
        record = records[seed].get(FIT_ERROR_STEP.get(kind, ""))
        return getattr(record, "fit_error", {}).get(name, {}).get(split, float("nan"))

    def frame(record, seed: int) -> pd.DataFrame:
        return pd.DataFrame([{"seed": seed, "gallery": gallery, **values,
                              "sigma_error_spearman": record.sigma_error_spearman.get(
                                  gallery.removeprefix("fastfill/"), float("nan"))
                              if gallery.startswith("fastfill/") else float("nan"),
                              **{f"fit_mse_{split}": fit_error(seed, gallery, split)
                                 for split in ("train", "tune")}}
                             for gallery, values in record.diagnostics.items()],
                            columns=DIAGNOSTIC_COLUMNS)

    long = over_seeds(records, "fastfill", frame, DIAGNOSTIC_COLUMNS)
    if long.empty:
        return pd.DataFrame(columns=DIAGNOSTIC_COLUMNS[1:] + ["seeds"])
    long["backfilled_top1_share_at_5pct"] *= 100
    grouped = long.groupby("gallery", sort=False)
    table = grouped[DIAGNOSTIC_COLUMNS[2:]].mean()
    table["seeds"] = grouped["seed"].nunique()
    return table.reset_index().round({c: 5 if c.startswith("fit_mse") else 3
                                      for c in DIAGNOSTIC_COLUMNS[2:]})
