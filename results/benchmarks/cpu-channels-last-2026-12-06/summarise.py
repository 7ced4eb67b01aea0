"""Seconds each artifact trained (the epoch seconds of its history.json), by artifact name, in the
runs folders of the measured configurations, as a Markdown table with each folder's total. Usage
(in the clone that ran them): python3 summarise.py runs-channels-last-0-bf16-0 ..."""
import json
import sys
from pathlib import Path

folders = [Path(arg) for arg in sys.argv[1:]]
seconds: dict[str, dict[str, float]] = {}
for folder in folders:
    for history in folder.glob("fashion-mnist/seed0/*/history.json"):
        name = json.loads((history.parent / "artifact.json").read_text())["name"]
        epochs = json.loads(history.read_text())
        label = f"`{name}` ({len(epochs)} epochs)"
        seconds.setdefault(label, {})[folder.name] = sum(e["seconds"] for e in epochs)
print("| artifact | " + " | ".join(f.name for f in folders) + " |")
print("|---|" + "---:|" * len(folders))
for label in sorted(seconds):
    print(f"| {label} | " + " | ".join(f"{seconds[label].get(f.name, float('nan')):.1f}"
                                        for f in folders) + " |")
shared = [s for s in seconds.values() if len(s) == len(folders)]
for label, chosen in (("all", list(seconds.values())), ("trained in every folder", shared)):
    totals = [sum(s.get(f.name, 0.0) for s in chosen) for f in folders]
    print(f"| {label} | " + " | ".join(f"{t:.1f}" for t in totals) + " |")
