"""seed-walls.csv (each notebook's wall seconds per configuration, one `fct reproduce --only` call
each) as a Markdown table with the totals and the ratio to float32 channels-first."""
import csv
import sys

rows = list(csv.DictReader(open(sys.argv[1] if len(sys.argv) > 1 else "seed-walls.csv")))
configs = list(dict.fromkeys(r["config"] for r in rows))
steps = list(dict.fromkeys(r["step"] for r in rows))
wall = {(r["step"], r["config"]): float(r["wall_s"]) for r in rows}
print("| notebook | " + " | ".join(configs) + " |")
print("|---|" + "---:|" * len(configs))
for step in steps:
    print(f"| {step} | " + " | ".join(f"{wall[step, c]:.1f}" if (step, c) in wall else "-"
                                      for c in configs) + " |")
base = configs[0]
for label, chosen in (("00-05", [s for s in steps if s[:2] <= "05"]), ("all", steps)):
    totals = [sum(wall[s, c] for s in chosen) if all((s, c) in wall for s in chosen) else None
              for c in configs]
    print(f"| {label} | " + " | ".join(f"{t:,.1f}" if t else "-" for t in totals) + " |")
    print(f"| {label}, speed-up | " + " | ".join(f"{totals[0] / t:.2f}x" if t else "-"
                                                  for t in totals) + " |")
