"""Evaluate FCT's and fct-loss's cases of tiny-imagenet-100 seed 2 from the probe's runs folder
(h's trained with FCT_CPU_FLUSH_DENORMAL=1) beside the committed seed-2 rows of methods.json
(same commit's code and models, h's trained without flushing on the same Intel CPU)."""
import json
from pathlib import Path

from fctlib.evaluation.retrieval import evaluate_case
from fctlib.methods import registry
from fctlib.suite.run import Run

run = Run("tiny-imagenet-100", 2, runs_dir="/work/dn/ti", results_dir="/work/dn/ti/results")
committed = Path("/work/main/results/tiny-imagenet-100/metrics/seed2/methods.json")
committed = json.loads(committed.read_text())
rows = {(r["case"], r["distance"]): r for r in committed["rows"]}
labels, old = run.splits.test.labels, run.splits.old_classes
methods = {m.name: m for m in registry.methods()}
print("case distance: top-1 flushed / committed, mAP flushed / committed "
      "(same: top-1, top-5 and mAP equal to the last digit)")
for name in ("fct", "fct-loss"):
    for case, (query, gallery) in methods[name].cases(run).cases.items():
        for distance in ("l2", "cosine"):
            got = evaluate_case(query, gallery, labels, old, distance=distance)["all"]
            ref = rows[(case, distance)]
            same = all(got[m] == ref[m] for m in ("top1", "top5", "mAP"))
            print(f"{case} {distance}: {100 * got['top1']:.2f} / {100 * ref['top1']:.2f}, "
                  f"{100 * got['mAP']:.2f} / {100 * ref['mAP']:.2f}"
                  f"{' (same)' if same else ''}", flush=True)
