"""h's training rate early and late in its 80 epochs, without flushing (the committed seed-2 h's,
/work/r23/runs) and with FCT_CPU_FLUSH_DENORMAL=1 (this probe, /work/dn/ti): items/s averaged
over epochs 1-10 and 71-80, and the seconds of all 80 epochs (history.json)."""
import json
from pathlib import Path
from statistics import mean

RUNS = {"exact": "/work/r23/runs/tiny-imagenet-100/seed2",
        "flushed": "/work/dn/ti/tiny-imagenet-100/seed2"}
KEYS = {"h:0": "05bb141bad", "h:32": "f99ef76010", "h:0,to=cross:loss": "10022452a6",
        "h:32,to=cross:loss": "79d2994949"}
print("| h | denormals | items/s, epochs 1-10 | items/s, epochs 71-80 | seconds, 80 epochs |")
print("|---|---|---:|---:|---:|")
for name, key in KEYS.items():
    for label, root in RUNS.items():
        history = json.loads(Path(root, f"transformation-{key}", "history.json").read_text())
        rates = [e["items_per_s"] for e in history]
        print(f"| `{name}` | {label} | {mean(rates[:10]):,.0f} | {mean(rates[70:]):,.0f} | "
              f"{sum(e['seconds'] for e in history):,.0f} |")
