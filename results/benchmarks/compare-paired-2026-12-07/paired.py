"""Would `fct compare` gain power by testing differences within a seed (a number minus new/new
or old/old of the same seed, distance and metric) instead of each number alone? Over the
committed seeds of each preset: each number's std over seeds, the std of its within-seed
difference from each baseline, and how many numbers the pairing would make less noisy.
From the project root:  python results/benchmarks/compare-paired-2026-12-07/paired.py"""

import numpy as np
import pandas as pd

from fctlib.experiment.records import load_records
from fctlib.paths import results_root
from fctlib.report.markdown import markdown_table
from fctlib.report.reproduction import KEYS, record_numbers

PRESETS = ["fashion-mnist", "tiny-imagenet-100"]
BASELINES = ["new/new", "old/old"]


def spreads(numbers: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per number (not a baseline itself, all seeds present): its std over seeds, the std of its
    difference from the baseline of the same seed, distance and metric, their correlation."""
    base = (numbers[numbers["case"] == baseline]
            .drop_duplicates(["seed", "distance", "metric"])  # the same model in several steps
            .set_index(["seed", "distance", "metric"])["value"])
    rows = []
    for key, group in numbers[~numbers["case"].isin(BASELINES)].groupby(KEYS, sort=False):
        values = group.set_index("seed")["value"]
        paired = pd.Series([base.get((seed, key[2], key[3]), np.nan) for seed in values.index],
                           index=values.index)
        if paired.isna().any() or len(values) < 3:
            continue
        rows.append((*key, values.std(), (values - paired).std(),
                     np.corrcoef(values, paired)[0, 1]))
    return pd.DataFrame(rows, columns=[*KEYS, "std", "std_paired", "corr"])


def summary(table: pd.DataFrame) -> dict:
    """The pooled variance ratio (sum of the paired variances over the sum of the numbers'), the
    median std ratio, the share of numbers the pairing makes less noisy, the median correlation."""
    ratio = table["std_paired"] / table["std"]
    return {"numbers": len(table),
            "pooled variance ratio": (table["std_paired"] ** 2).sum() / (table["std"] ** 2).sum(),
            "median std ratio": ratio.median(),
            "share less noisy": (ratio < 1).mean(),
            "median corr": table["corr"].median()}


rows = []
for preset in PRESETS:
    records = load_records(results_root(preset))
    numbers = record_numbers(records)
    for baseline in BASELINES:
        table = spreads(numbers, baseline)
        rows.append({"preset": f"{preset} ({len(records)} seeds)", "baseline": baseline,
                     **summary(table)})
        by_step = (table["std_paired"] < table["std"]).groupby(table["step"]).agg(
            ["mean", "count"])
        print(f"{preset}, minus {baseline}: share less noisy by step: "
              + ", ".join(f"{step} {row['mean']:.2f} ({row['count']:.0f})"
                          for step, row in by_step.iterrows()))
print()
print(markdown_table(pd.DataFrame(rows).round(2), index=False))
