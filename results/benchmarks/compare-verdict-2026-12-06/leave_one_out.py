"""Each committed seed of fashion-mnist and tiny-imagenet-100 judged as a new seed against the
other two (faithful by construction), for several caps on the variance prior's dof; with each
cap, the bound (points) of fashion-mnist's new/new l2 numbers when seed 0 is judged against all
three. From the project root (run.sh does):
  python results/benchmarks/compare-verdict-2026-12-06/leave_one_out.py"""

import math

import fctlib.report.reproduction as reproduction
from fctlib.experiment.records import load_records

records = {preset: load_records(f"results/{preset}")
           for preset in ("fashion-mnist", "tiny-imagenet-100")}
print("| prior dof cap | " + " | ".join(f"{preset} seed {seed}" for preset, by_seed in
                                          records.items() for seed in by_seed)
      + " | new/new l2 bound top-1 / top-5 / mAP |")
print("|---" * (2 + sum(len(by_seed) for by_seed in records.values())) + "|")
for cap in (2.0, 4.0, 6.0, 8.0, 16.0, math.inf):
    reproduction.PRIOR_MAX_DOF = cap
    cells = []
    for by_seed in records.values():
        for seed, steps in by_seed.items():
            others = {s: r for s, r in by_seed.items() if s != seed}
            table = reproduction.reproduction_table({seed + 10: steps}, others)
            failed = int((table["p_holm"] < 0.05).sum())
            cells.append(f"{failed} failed, smallest p {table['p'].min():.1e}")
    table = reproduction.reproduction_table({10: records["fashion-mnist"][0]},
                                            records["fashion-mnist"])
    bound = table[(table["step"] == "new") & (table["case"] == "new/new")
                  & (table["distance"] == "l2")].set_index("metric")["bound"]
    cells.append(" / ".join(f"{bound[m]:.2f}" for m in ("top1", "top5", "mAP")))
    print(f"| {cap:g} | " + " | ".join(cells) + " |")
