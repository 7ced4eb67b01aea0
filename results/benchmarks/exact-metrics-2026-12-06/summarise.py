"""Median seconds and peak memory per size and commit over run.sh's rounds, as a markdown table.
Usage: python3 summarise.py > summary.md (in this folder)."""

import glob
import json
import statistics

BEFORE, AFTER = "6c3b863", "0f191ae"


def rows(commit: str) -> dict:
    """{(size, classes, dim): [result of each round]} of one commit."""
    out = {}
    for path in sorted(glob.glob(f"{commit}-*.json")):
        for row in json.load(open(path))["results"]:
            out.setdefault((row["n"], row["classes"], row["dim"]), []).append(row)
    return out


before, after = rows(BEFORE), rows(AFTER)
print(f"| N = Q | classes | dim | rounds | {BEFORE} s | {AFTER} s | speed-up | "
      f"{BEFORE} peak MB | {AFTER} peak MB |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in sorted(before):
    b = statistics.median(r["seconds"] for r in before[key])
    a = statistics.median(r["seconds"] for r in after[key])
    bm = statistics.median(r["peak_rss_mb"] for r in before[key])
    am = statistics.median(r["peak_rss_mb"] for r in after[key])
    n, classes, dim = key
    print(f"| {n:,} | {classes} | {dim} | {len(before[key])} | {b:.2f} | {a:.2f} | {b / a:.2f}x | "
          f"{bm:,.0f} | {am:,.0f} |")
