"""What every report table shares: the metrics, long frames over seeds, mean and spread over
seeds, verdicts, and tables written with the provenance of what made them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from fctlib.experiment.provenance import git_commit, provenance, provenance_comment
from fctlib.experiment.record_rows import Cases
from fctlib.experiment.records import Record
from fctlib.experiment.run_log import earlier_runs_text, load_run_log, steps_text
from fctlib.io import atomic_write
from fctlib.paths import STEPS
from fctlib.report.markdown import markdown_table

METRICS = ("top1", "top5", "mAP")
HEADLINE_METRICS = ("top1", "mAP")

Records = dict[int, dict[str, Record]]  # {seed: {step: record}}, as load_records returns


def metrics_frame(cases: Cases) -> pd.DataFrame:
    """{case: {split: metrics}} as a table in percent, one row per case, columns split x metric."""
    rows = {case: {(split, m): round(100 * v[m], 2) for split, v in by_split.items()
                   for m in METRICS} for case, by_split in cases.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def stack(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The frames one under the other (the empty ones left out), or an empty frame of
    `columns`."""
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def over_seeds(records: Records, step: str, frame_of: Callable[[Record, int], pd.DataFrame],
               columns: list[str]) -> pd.DataFrame:
    """`frame_of(record, seed)` of every seed that has `step`, stacked (empty: `columns`)."""
    return stack([frame_of(steps[step], seed) for seed, steps in records.items()
                  if step in steps], columns)


def mean_std(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of `keys`: each metric's mean, its standard deviation over seeds (`_std`: only
    when a group has two seeds or more, empty for a group of one) and the number of seeds,
    rounded to 2 decimals."""
    grouped = df.groupby(keys, sort=False)
    table = grouped[list(METRICS)].mean()
    seeds = grouped["seed"].nunique()
    if seeds.max() > 1:
        table = table.join(grouped[list(METRICS)].std(ddof=1).add_suffix("_std"))
    table["seeds"] = seeds
    return table.reset_index().round(2)


def verdict(holds: pd.Series) -> str:
    """`holds` if every seed agrees, `fails` if no seed does, else `unresolved`."""
    return "holds" if holds.all() else "fails" if not holds.any() else "unresolved"


def judged(margins: pd.Series, strict: bool = True) -> dict:
    """A claim judged from its per-seed margins (higher minus lower, points): its `verdict` (it
    holds in a seed when the margin is > 0, >= 0 if not `strict`), the mean `margin` and the
    `seeds_agreeing` that it holds."""
    holds = margins > 0 if strict else margins >= 0
    return {"verdict": verdict(holds), "margin": round(float(margins.mean()), 2),
            "seeds_agreeing": f"{int(holds.sum())}/{len(holds)}"}


def artifact_commits(records: Records) -> str:
    """The distinct commits that trained the records' artifacts, or `unrecorded` if none says."""
    commits = {commit for steps in records.values() for record in steps.values()
               for commit in record.artifacts.values()}
    return ", ".join(sorted(commits)) or "unrecorded"


def load_last_run(results_dir: str | Path) -> dict:
    """The provenance of the last run that made records (`experiment.run_log`) with its steps and
    the earlier runs behind the records in words (`last_run_steps`, `earlier_runs`; a table's own
    `steps` are the ones it reads); {} if none ran."""
    info = load_run_log(results_dir, STEPS)
    steps = info.pop("steps", None)
    if steps:
        info["last_run_steps"] = steps_text(steps, STEPS)
    if info.get("earlier"):
        info["earlier_runs"] = earlier_runs_text(info, STEPS)
    info.pop("earlier", None)
    return info


def trained_apart(step_records: list[Record]) -> tuple[str, ...]:
    """The models that the records (one seed's steps) name with more than one weights digest
    (a record of a run of its own, `OWN_MODELS`, is not compared with the seed's)."""
    digests: dict[str, set[str]] = {}
    for record in step_records:
        if record.OWN_MODELS:
            continue
        for name, digest in record.weights.items():
            digests.setdefault(name, set()).add(digest)
    return tuple(sorted(name for name, found in digests.items() if len(found) > 1))


def trained_apart_text(apart: dict[int, tuple[str, ...]]) -> str:
    """`seed 0: new, old; seed 2: side:128` for {seed: models trained apart} ("" for none)."""
    return "; ".join(f"seed {seed}: {', '.join(names)}" for seed, names in apart.items() if names)


def models_trained_apart(records: Records) -> str:
    """Per seed, the models its steps' records name with different weights (trained apart, as
    on separate machines), or "" where every seed's steps used one training of each."""
    return trained_apart_text({seed: trained_apart(list(steps.values()))
                               for seed, steps in sorted(records.items())})


def data_sets(records: Records) -> set[tuple[str, str]]:
    """The (train, test) digests of the data sets the records were made from (`Record.data`;
    records made before it, and those of a run on data of its own such as notebook 11's, left
    out)."""
    return {(record.data["train"], record.data["test"]) for steps in records.values()
            for record in steps.values() if record.data and not record.OWN_MODELS}


def named(sets: set[tuple[str, str]]) -> str:
    """`train 1a2b3c4d5e6f, test ...` for each (train, test) digest pair, joined by `and`."""
    return " and ".join(f"train {train[:12]}, test {test[:12]}" for train, test in sorted(sets))


def run_provenance(results_dir: str | Path, preset: str, records: Records) -> dict:
    """The provenance of the runs that made the records (load_last_run), the commits that trained
    their artifacts (and the models a seed's steps used in different trainings, where any), the
    data they were made from (where the records name it) and the commit rendering this."""
    seeds = sorted(records)
    info = load_last_run(results_dir) or provenance(preset, seeds)
    apart = models_trained_apart(records)
    sets = data_sets(records)
    data = named(sets) + (": the records were made from different data" if len(sets) > 1 else "")
    return {**info, "seeds": seeds, "report_commit": git_commit(),
            "artifact_commits": artifact_commits(records),
            **({"models_trained_apart": apart} if apart else {}),
            **({"data": data} if data else {})}


def write_table(table: pd.DataFrame, folder: str | Path, name: str, info: dict) -> Path:
    """Write `name.csv` and `name.md` (both headed by the provenance `info` as comment lines),
    atomically."""
    folder = Path(folder)
    comment = provenance_comment(info)
    atomic_write(folder / f"{name}.csv",
                 lambda tmp: tmp.write_text(comment + table.to_csv(index=False)))
    markdown = markdown_table(table, index=False) if len(table) else "(empty)"
    md_comment = "".join(f"<!-- {line[2:]} -->\n" for line in comment.splitlines())
    atomic_write(folder / f"{name}.md", lambda tmp: tmp.write_text(md_comment + markdown + "\n"))
    return folder / f"{name}.csv"


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by `write_table` (skipping its provenance lines)."""
    return pd.read_csv(path, comment="#")
