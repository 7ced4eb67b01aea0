"""How far the Xeon moved notebook 07's areas and 10's AM from the same seed on the EPYC, beside
the committed seeds' std: its seed 3 (../compare-verdict-2026-12-06/seed3) and its 07 of seeds
0-2 and 10 of seed 0 (the fashion-mnist records as committed at 125cfd9, which run.sh unpacks),
each against the committed records of today. From the project root (run.sh does):
  python results/benchmarks/compare-curves-2026-12-07/moved.py <125cfd9's results/fashion-mnist>"""

import sys

import fctlib.report.reproduction as reproduction
from fctlib.experiment.records import load_records

committed = load_records("results/fashion-mnist")
before = load_records(sys.argv[1])
xeon = {
    "seed 3, every notebook (0dec883)": load_records(
        "results/benchmarks/compare-verdict-2026-12-06/seed3"),
    "07 of seeds 0-2, 10 of seed 0 (as committed at 125cfd9)": {
        seed: {step: record for step, record in before[seed].items()
               if "Xeon" in record.compute.get("cpu", "") and step in reproduction.STEP_KINDS}
        for seed in before},
}
print("| Xeon records | kind | metric | numbers | median / largest \\|same-seed difference\\| "
      "(points) | median committed std | median ratio | share above the std |")
print("|---|---|---|---|---|---|---|---|")
for name, records in xeon.items():
    table = reproduction.reproduction_table(records, committed)
    table = table[table["step"].isin(reproduction.STEP_KINDS) & ~table["repeat"]
                  & table["same_seed_diff"].notna()]
    for (step, metric), rows in table.groupby(["step", "metric"], sort=False):
        moved = rows["same_seed_diff"]
        print(f"| {name} | {reproduction.STEP_KINDS[step]} | {metric} | {len(rows)} | "
              f"{moved.median():.2f} / {moved.max():.2f} | {rows['std'].median():.2f} | "
              f"{(moved / rows['std']).median():.2f} | {(moved > rows['std']).mean():.2f} |")
