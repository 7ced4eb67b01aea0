"""The Xeon's run of seed 3 (../compare-verdict-2026-12-06/seed3) against the committed EPYC seed 3
of fashion-mnist: how far the same seed moves on other arithmetic, beside the committed seeds'
std. From the project root (run.sh does):
  python results/benchmarks/compare-four-seeds-2026-12-06/same_seed.py"""

import fctlib.report.reproduction as reproduction
from fctlib.experiment.records import load_records

committed = load_records("results/fashion-mnist")
xeon = load_records("results/benchmarks/compare-verdict-2026-12-06/seed3")
table = reproduction.reproduction_table(xeon, committed)
table = table[~table["repeat"] & table["same_seed_diff"].notna()]
moved = table["same_seed_diff"].abs()
print("| metric | numbers | median \\|same-seed difference\\| (points) | median committed std | "
      "median ratio | share above the std |")
print("|---|---|---|---|---|---|")
for metric, rows in [*table.groupby("metric"), ("all", table)]:
    m = moved[rows.index]
    print(f"| {metric} | {len(rows)} | {m.median():.2f} | {rows['std'].median():.2f} | "
          f"{(m / rows['std']).median():.2f} | {(m > rows['std']).mean():.2f} |")
