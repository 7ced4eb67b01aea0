"""What one seed of tiny-imagenet-100-gpu trains, notebook by notebook, and a lower bound on its
training seconds on one H200 at the rates the compiled check measured there (2026-12-04-compiled).

The artifacts each notebook uses are its record's `artifacts` in a `--tiny` GPU check's output
(the same notebooks and names as the full preset's, on 4 training images per class and 1-2
epochs); each artifact's images per epoch are its tiny history's scaled to the full split (4 ->
450 training images per class: the class subsets scale alike), its epochs and batch those the
full preset declares. Rates (images/s, SimCLR: both views; h: items/s), from
../gpu/2026-12-04-compiled/check/figures.json: a ResNet-18 at batch 512 with cross-entropy as
`new` trained, with a BCT loss as openbct-g, at batch 128 as bt2, SimCLR as side:128, h as the
median epoch of h:0 and h:128. Not measured, assumed: batch 64 (OCA) at half of batch 128's rate
(the same per-step time: small steps wait for launches), ResNet-34 (cross:arch) at half of
ResNet-18's. Not counted: compilation (110 s of 00-05's 425 s on the H200), embedding,
evaluation, data, notebook start-up (the last column adds a first epoch's compilation per
network at the H200's mean, as the GPU check's prior does); so every figure is a lower bound.
The same again at issue 25's item 1 goals (`at_goals`): what a seed would take once they are met.

It also writes seed_work.json beside itself (`seed_work`): per step the artifacts its record names
and per trained artifact its items in the full preset, from which the GPU check estimates every
step, 07-11 included, before starting it (`gpu_check.SEED_WORK`, `gpu_check.seed_work`).

Usage: python estimate.py <out folder of `gpu_check.py --tiny`> <data root> [figures.json]
(the data are read for their fingerprint only; decoded images are looked for in fct-decoded/
beside the out folder, as `gpu_device.sh` leaves them)
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import fctlib.methods  # noqa: F401  (registers every method's artifacts)
from fctlib.experiment.config import load_preset
from fctlib.experiment.records import STEP_RECORDS
from fctlib.io import save_json
from fctlib.methods.registry import declare
from fctlib.suite.cost import SIMCLR, SMALL_BATCH, class_split_sizes
from fctlib.suite.run import Run

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
import gpu_check  # noqa: E402  (the GPU check's step estimates and prior rates)

HERE = Path(__file__).resolve().parent
MEASURED = gpu_check.H200_FIGURES
PRESET = "tiny-imagenet-100-gpu"
TINY_TRAIN_PER_CLASS, FULL_TRAIN_PER_CLASS = 4, 450  # after the tune split


def measured_rates(measured: Path = MEASURED) -> dict[str, float]:
    """The steady training rates by kind of step of a GPU check's figures.json (the H200's)."""
    figures = json.loads(measured.read_text())
    trained = figures["training_img_per_s"]
    h_median = [sorted(e["items_per_s"] for e in figures["histories"][n][1:])
                for n in ("h:0", "h:128")]
    return {"cross-entropy, batch 512": trained["new"],
            "BCT loss, batch 512": trained["bct:openbct-g:1.0"],
            "batch 128": trained["bct:bt2:10.0"],
            "batch 64 (assumed)": trained["bct:bt2:10.0"] / 2,
            "SimCLR (both views)": trained["side:128"],
            "h": sum(r[len(r) // 2] for r in h_median) / 2}


def at_goals(rates: dict[str, float]) -> dict[str, float]:
    """The rates once issue 25's item 1 goals are met (`gpu_check.GOALS`), each kind's measured
    rate where already above its goal: a ResNet-18 at batch 512 (every loss) 80k images/s,
    batch 128 0.7 of batch 512's rate (batch 64 still half of it, as assumed above), SimCLR
    (both views) 0.8 of it, h 500k items/s."""
    goals = gpu_check.GOALS
    full = max(rates["cross-entropy, batch 512"], goals["training_img_per_s"])
    small = max(rates["batch 128"], goals["bt2_share_of_training"] * full)
    return {"cross-entropy, batch 512": full,
            "BCT loss, batch 512": max(rates["BCT loss, batch 512"], goals["training_img_per_s"]),
            "batch 128": small, "batch 64 (assumed)": small / 2,
            "SimCLR (both views)": max(rates["SimCLR (both views)"],
                                       goals["simclr_share_of_training"] * full),
            "h": max(rates["h"], goals["h_items_per_s"])}


def train_configs(obj) -> list:
    """The training configs (epochs and batch size) inside an artifact's declared dependencies."""
    if dataclasses.is_dataclass(obj):
        if hasattr(obj, "epochs") and hasattr(obj, "batch_size"):
            return [obj]
        return [c for f in dataclasses.fields(obj) for c in train_configs(getattr(obj, f.name))]
    if isinstance(obj, (list, tuple)):
        return [c for v in obj for c in train_configs(v)]
    if isinstance(obj, dict):
        return [c for v in obj.values() for c in train_configs(v)]
    return []


def training_of(run: Run, name: str):
    """The training config an artifact trains with in the full preset: the one its declaration
    depends on; for the names notebooks 07, 09 and 10 declare themselves, the section they read."""
    preset = run.preset
    if name.startswith(("fastfill", "projection")):
        return preset.method(name.split(":")[0]).training
    if name.startswith("gen:h"):
        return preset.transformation.training
    if name.startswith("gen:side"):
        return preset.side_info.training
    if name.startswith("gen:dsimplex"):
        name = "dsimplex:new"
    elif name.startswith("gen:"):  # the independent and BCT generations train as `new` does
        return preset.new.training
    (cfg,) = train_configs(declare(run, name).depends)
    return cfg


def kind_of(name: str, batch: int) -> tuple[str, float]:
    """The rate an artifact is priced at, and a factor for a heavier network."""
    if name.startswith(("h:", "gen:h", "fastfill", "projection")):
        return "h", 1.0
    if name.startswith(("side:", "gen:side")) and not name.endswith(":supervised"):
        return "SimCLR (both views)", 1.0
    if batch <= 64:
        return "batch 64 (assumed)", 1.0
    if batch <= 128:
        return "batch 128", 1.0
    bct_loss = name.startswith(("bct:", "gen:bct"))
    slower = 2.0 if name == "cross:arch" else 1.0  # ResNet-34 (assumed half the rate)
    return ("BCT loss, batch 512" if bct_loss else "cross-entropy, batch 512"), slower


def histories_in(folder: Path) -> dict[str, list]:
    """The training histories of the artifacts in a runs folder, by artifact name."""
    found = {}
    for artifact in sorted(folder.glob("*/artifact.json")):
        history = artifact.parent / "history.json"
        if history.is_file():
            found[json.loads(artifact.read_text())["name"]] = json.loads(history.read_text())
    return found


def training_items(run: Run, name: str, history: list) -> tuple[str, float]:
    """An artifact's kind of step and its items in the full preset, weighted by its network's
    cost: its tiny epoch's items scaled to the full split, times the full preset's epochs (and
    SimCLR's two views), twice for ResNet-34."""
    cfg = training_of(run, name)
    tiny = history[0]
    per_epoch = tiny["items_per_s"] * tiny["seconds"] * FULL_TRAIN_PER_CLASS / TINY_TRAIN_PER_CLASS
    kind, slower = kind_of(name, cfg.batch_size)
    views = 2 if kind.startswith("SimCLR") else 1
    return kind, cfg.epochs * per_epoch * views * slower


def training_seconds(run: Run, name: str, history: list, rates: dict) -> float:
    """Lower bound on an artifact's training on the H200: its items at its kind's rate."""
    if not history:  # random side-info: drawn, not trained
        return 0.0
    kind, items = training_items(run, name, history)
    return items / rates[kind]


def preset_run(check_out: Path, data_root: Path) -> Run:
    """The full preset's run on the data the check read (its decoded images beside its folder),
    for the artifacts' declarations; nothing is trained in it."""
    dataset = {"root": str(data_root), "cache_dir": str(check_out.parent / "fct-decoded")}
    return Run(PRESET, 0, overrides={"data": {"dataset": dataset}}, runs_dir=check_out / "unused",
               results_dir=check_out / "unused")


def by_kind(check_out: Path, run: Run, rates: dict) -> dict[str, float]:
    """A whole seed's training seconds in sequence by kind of step (each artifact once; 11's
    run's BCT as openbct-g)."""
    runs = check_out / "runs" / PRESET / "seed0"
    totals: dict[str, float] = {}
    for folder, rename in ((runs, False), (runs / "cross-dataset", True)):
        for name, history in histories_in(folder).items():
            priced = "bct:openbct-g:1.0" if rename and name.startswith("bct:") else name
            kind, _ = kind_of(priced, training_of(run, priced).batch_size) if history else ("-", 1)
            totals[kind] = totals.get(kind, 0.0) + training_seconds(run, priced, history, rates)
    return totals


def estimate(check_out: Path, run: Run, rates: dict, compile_s: float) -> list[dict]:
    """Per notebook, in order: its artifacts not trained by an earlier notebook, and the lower
    bound on their training seconds and on those of all its artifacts (from a fresh machine).
    Notebook 11 also trains a run of its own on the merged data (runs/.../cross-dataset/), priced
    by the main preset's configs, its BCT as openbct-g (the H200's choice on tune)."""
    runs = check_out / "runs" / PRESET / "seed0"
    histories = histories_in(runs)
    seconds = {n: training_seconds(run, n, h, rates) for n, h in histories.items()}
    cross = {f"{n} (11's run)": training_seconds(run, "bct:openbct-g:1.0" if n.startswith("bct:")
                                                 else n, h, rates)
             for n, h in histories_in(runs / "cross-dataset").items()}
    rows, before = [], set()
    for record in sorted((check_out / "results" / "metrics" / "seed0").glob("*.json"),
                         key=notebook_order):
        names = sorted(json.loads(record.read_text()).get("artifacts", {}))
        own = cross if record.stem == "cross_dataset" else {}
        new = [n for n in names if n not in before] + list(own)
        before |= set(names)
        trained = [n for n in names if seconds[n]] + [n for n, s in own.items() if s]
        fresh = sum(seconds[n] for n in names) + sum(own.values())
        rows.append({"notebook": record.stem, "artifacts": len(names) + len(own), "new": new,
                     "in_sequence_s": sum({**seconds, **own}[n] for n in new),
                     "fresh_machine_s": fresh,
                     "fresh_compiled_s": fresh + len(trained) * compile_s})
    return rows


# estimate's kinds of step as ComparisonWork counts them, and a weight for an assumed rate:
# a batch of 64 as twice the items of a batch of 128 (the others: supervised; h: fitted)
CHECK_KINDS = {"batch 128": (SMALL_BATCH, 1), "batch 64 (assumed)": (SMALL_BATCH, 2),
               "SimCLR (both views)": (SIMCLR, 1)}


def seed_work(check_out: Path, run: Run) -> dict:
    """What the GPU check estimates each step from (`gpu_check.SEED_WORK`): per step, the
    artifacts its record names (11: and its own run's, suffixed as in `estimate`); per trained
    artifact its items in the full preset (whose training split has `train_images`), as
    ComparisonWork counts them: an h's under `transformation`, a network's under `training`
    with its kind where not supervised."""
    runs = check_out / "runs" / PRESET / "seed0"
    trained = {n: (n, h) for n, h in histories_in(runs).items()}
    trained.update({f"{n} (11's run)": ("bct:openbct-g:1.0" if n.startswith("bct:") else n, h)
                    for n, h in histories_in(runs / "cross-dataset").items()})
    work: dict = {"training": {}, "transformation": {}, "kinds": {}}
    for listed, (priced, history) in trained.items():
        if not history:  # random side-info: drawn, not trained
            continue
        kind, items = training_items(run, priced, history)
        if kind == "h":
            work["transformation"][listed] = round(items)
            continue
        check_kind, weight = CHECK_KINDS.get(kind, (None, 1))
        work["training"][listed] = round(items * weight)
        if check_kind:
            work["kinds"][listed] = check_kind
    steps = {}
    for record in sorted((check_out / "results" / "metrics" / "seed0").glob("*.json"),
                         key=notebook_order):
        names = sorted(json.loads(record.read_text()).get("artifacts", {}))
        own = [n for n in trained if n.endswith("(11's run)")] if record.stem == "cross_dataset" \
            else []
        if names or own:
            steps[STEP_RECORDS[record.stem].NOTEBOOK] = names + own
    check = json.loads((check_out / "figures.json").read_text())["provenance"]
    return {"preset": PRESET, "made_from": f"a --tiny check at {check['git_commit']}: "
            f"{check['command']}; then estimate.py", "train_images": full_sizes().train,
            "steps": steps, **work}


NOTEBOOKS = ["old", "side_info", "new", "bct", "transformation", "side_info_size", "fastfill",
             "ablations", "methods", "multistep", "cross_dataset"]


def notebook_order(path: Path) -> int:
    return NOTEBOOKS.index(path.stem) if path.stem in NOTEBOOKS else -1


def main() -> None:
    check_out, data_root = Path(sys.argv[1]), Path(sys.argv[2])
    measured = Path(sys.argv[3]) if len(sys.argv) > 3 else MEASURED
    rates = measured_rates(measured)
    shown = measured.relative_to(HERE.parent) if measured.is_relative_to(HERE.parent) else measured
    print(f"Rates ({shown}):\n")
    for kind, rate in rates.items():
        print(f"- {kind}: {rate:,.0f}/s")
    _, check_rates = gpu_check.measured_rates(json.loads(measured.read_text()))
    print("\n| record (notebook) | artifacts used | trained first here | training s, in sequence "
          "| training s, from a fresh machine | the same with a first epoch's compilation "
          f"({check_rates['compile_s']:.0f} s a network) |\n|---|---:|---|---:|---:|---:|")
    run = preset_run(check_out, data_root)
    save_json(seed_work(check_out, run), gpu_check.SEED_WORK)
    rows = [r for r in estimate(check_out, run, rates, check_rates["compile_s"])
            if r["artifacts"]]
    for r in rows:
        print(f"| {r['notebook']} | {r['artifacts']} | {', '.join(r['new']) or '-'} | "
              f"{r['in_sequence_s']:.0f} | {r['fresh_machine_s']:.0f} | "
              f"{r['fresh_compiled_s']:.0f} |")
    total = sum(r["in_sequence_s"] for r in rows)
    print(f"\nA whole seed in sequence: at least {total:,.0f} s of training.")
    goals = at_goals(rates)
    kinds = {"measured": by_kind(check_out, run, rates), "goals": by_kind(check_out, run, goals)}
    print("\nA whole seed's training by kind of step, s: at the measured rates / at the goals\n")
    for kind in rates:
        print(f"- {kind}: {kinds['measured'].get(kind, 0):.0f} / {kinds['goals'].get(kind, 0):.0f}")
    print("\nAt issue 25's item 1 goals (`at_goals`; each kind's rate where already above):\n")
    for kind, rate in goals.items():
        print(f"- {kind}: {rate:,.0f}/s")
    print("\n| record (notebook) | training s, in sequence | from a fresh machine | the same with "
          "compilation |\n|---|---:|---:|---:|")
    at_goal = [r for r in estimate(check_out, run, goals, check_rates["compile_s"])
               if r["artifacts"]]
    for r in at_goal:
        print(f"| {r['notebook']} | {r['in_sequence_s']:.0f} | {r['fresh_machine_s']:.0f} | "
              f"{r['fresh_compiled_s']:.0f} |")
    total = sum(r["in_sequence_s"] for r in at_goal)
    through_10 = sum(r["in_sequence_s"] for r in at_goal if r["notebook"] != "cross_dataset")
    print(f"\nA whole seed in sequence at the goals: at least {total:,.0f} s of training "
          f"({through_10:,.0f} s for 00-10, item 2's notebooks).")
    gains = (1, 1.5, 2, 3, 4)
    estimates = check_estimates(run, check_rates, gains)
    print("\nThe GPU check's own estimates of each step (`gpu_check.step_seconds` of "
          "`gpu_check.seed_work`: the preset's split sizes, seed_work.json, its prior rates, "
          "the H200's, with a first epoch's compilation per network and h and, for 01-06's "
          "artifacts, their embedding), s: in sequence (after the steps before it) / from a "
          "fresh machine (the next table's G = 1)\n")
    for step, (in_sequence, at_gains) in estimates.items():
        print(f"- {step}: {in_sequence:.0f} / {at_gains[0]:.0f}")
    print("\nThe same from a fresh machine with each step's registered artifacts trained side by "
          "side (`--side-by-side K --side-by-side-gain G`: G for every kind of training; their "
          "training over G, but no less than its longest chain of an artifact after those it is "
          "trained against, each at its time alone; their embedding one at a time), s:\n\n"
          f"| step | {' | '.join(f'G = {g}' for g in gains)} |\n|---|{'---:|' * len(gains)}")
    for step, (_, at_gains) in estimates.items():
        print(f"| {step} | {' | '.join(f'{x:.0f}' for x in at_gains)} |")


def full_sizes():
    """The full preset's split sizes (500 training and 50 test images in each of 100 classes)."""
    return class_split_sizes(load_preset(PRESET), 500, 50, 100)


def check_estimates(run: Run, rates: dict, gains: tuple) -> dict[str, tuple]:
    """What the GPU check estimates each step at before it has measured anything
    (`gpu_check.seed_work`, this folder's seed_work.json): after the steps before it (what they
    used is held: `side_by_side.unfinished` leaves it out), and from a fresh machine (`run`
    holds nothing) at each side-by-side gain (`gpu_check.step_seconds`; G = 1: one at a time)."""
    seed = gpu_check.seed_work(run.preset, full_sizes())
    held: set[str] = set()
    estimates = {}
    for step, artifacts in seed.uses.items():
        in_sequence = gpu_check.step_estimate(
            seed.work, [n for n in artifacts if n not in held], rates)
        estimates[step] = (in_sequence, [
            gpu_check.step_seconds(seed, run, step, rates, dict.fromkeys(gpu_check.GAIN_CASES, g))
            for g in gains])
        held |= set(artifacts)
    return estimates


if __name__ == "__main__":
    main()
