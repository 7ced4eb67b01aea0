"""Which seeds a table covers: a seed counts only when it has a record of every step the table
reads; the seeds left out and the steps they lack, the commits that measured the seeds counted,
the models a counted seed's steps used in trainings of different weights, and the one line that
stands for a section no seed ran."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fctlib.experiment.records import STEP_RECORDS
from fctlib.io import load_json_if_exists
from fctlib.report.common import Records, trained_apart, trained_apart_text

UNRECORDED = "unrecorded"  # a record written before records carried their commit
NOT_RUN_FILE = "not_run.json"  # {"steps": {notebook: why}, "methods": {method: why}}, by hand


@dataclass(frozen=True)
class Coverage:
    """The seeds and steps behind one table."""

    steps: tuple[str, ...]  # the steps it reads that some seed has
    absent: tuple[str, ...]  # the steps it reads that no seed has
    seeds: tuple[int, ...]  # the seeds that have every one of `steps`
    left_out: dict[int, tuple[str, ...]]  # seed -> the steps of `steps` it lacks
    commits: dict[int, tuple[str, ...]]  # counted seed -> the commits that measured its steps
    retrained: dict[int, tuple[str, ...]]  # counted seed -> models its steps used in different
    # weights (records name the weights they used: `Record.weights`); seeds with none left out

    def select(self, records: Records) -> Records:
        """The records of the seeds counted."""
        return {seed: records[seed] for seed in self.seeds}

    @property
    def ran(self) -> bool:
        """Whether any seed counts."""
        return bool(self.seeds)

    @property
    def mixed_commits(self) -> bool:
        """Whether the records counted were measured by more than one commit."""
        return len({c for commits in self.commits.values() for c in commits}) > 1

    @property
    def mixed_models(self) -> bool:
        """Whether a seed counted read one model in different trainings of it in different steps
        (steps run on separate machines, or runs of a machine that vary)."""
        return bool(self.retrained)

    def stamp(self, info: dict) -> dict:
        """`info` (a table's provenance) with the seeds, steps and commits this table covers (and
        the models trained apart, where a seed has any)."""
        gone = "; ".join(f"seed {seed} lacks {_steps(missing)}"
                         for seed, missing in self.left_out.items())
        apart = trained_apart_text(self.retrained)
        return {**info, "seeds": list(self.seeds), "steps": _steps(self.steps),
                "record_commits": "; ".join(f"seed {seed}: {', '.join(cs)}"
                                            for seed, cs in self.commits.items()),
                "left_out": gone or "none", **({"models_trained_apart": apart} if apart else {})}

    def note(self) -> str:
        """One line: seeds and steps covered, the commit; then a warning per seed left out and
        for records of different commits (which seed, which commit)."""
        commits = sorted({c for cs in self.commits.values() for c in cs})
        lines = [f"Seeds {_listing(self.seeds)} · steps {_steps(self.steps)} · commit "
                 f"{', '.join(commits)}."]
        if self.left_out:
            gone = "; ".join(f"seed {seed} lacks {_steps(missing)}"
                             for seed, missing in self.left_out.items())
            lines.append(f"⚠ Left out (partial seeds): {gone}.")
        if self.mixed_commits:
            by_seed = "; ".join(f"seed {seed}: {', '.join(cs)}"
                                for seed, cs in self.commits.items())
            lines.append(f"⚠ Measured by different commits, averaged together: {by_seed}.")
        if self.retrained:
            lines.append("⚠ One seed, models trained apart (its steps used different weights of "
                         f"one model, so its numbers are not of one set of models): "
                         f"{trained_apart_text(self.retrained)}.")
        return "  \n".join(lines)


def coverage(records: Records, steps: tuple[str, ...]) -> Coverage:
    """The coverage of a table reading `steps` (record step names) from `records`."""
    present = tuple(s for s in steps if any(s in by_step for by_step in records.values()))
    complete = tuple(seed for seed, by_step in records.items()
                     if present and all(s in by_step for s in present))
    left_out = {seed: tuple(s for s in present if s not in by_step)
                for seed, by_step in records.items() if seed not in complete and present}
    commits = {seed: tuple(sorted({records[seed][s].commit or UNRECORDED for s in present}))
               for seed in complete}
    retrained = {seed: trained_apart([records[seed][s] for s in present]) for seed in complete}
    return Coverage(present, tuple(s for s in steps if s not in present), complete, left_out,
                    commits, {seed: names for seed, names in retrained.items() if names})


def coverage_warnings(coverages: dict[str, Coverage]) -> list[str]:
    """At most three lines over the sections ({title: coverage}): the partial seeds left out and
    where, the sections averaging seeds of different commits, those whose seeds used models
    trained apart."""
    partial = [title for title, cov in coverages.items() if cov.left_out]
    mixed = [title for title, cov in coverages.items() if cov.mixed_commits]
    seeds = sorted({seed for cov in coverages.values() for seed in cov.left_out})
    out = []
    if partial:
        out.append(f"seed(s) {_listing(seeds)} left out as partial in {len(partial)} of "
                   f"{len(coverages)} sections ({', '.join(partial)})")
    if mixed:
        out.append(f"seeds of different commits averaged in {len(mixed)} of {len(coverages)} "
                   f"sections ({', '.join(mixed)})")
    apart = [title for title, cov in coverages.items() if cov.mixed_models]
    if apart:
        out.append(f"a seed's steps used models trained apart (different weights) in "
                   f"{len(apart)} of {len(coverages)} sections ({', '.join(apart)})")
    return out


def load_not_run(results_dir: str | Path) -> dict:
    """The stated reasons why a preset skipped steps or methods (results/<preset>/not_run.json)."""
    return load_json_if_exists(Path(results_dir) / NOT_RUN_FILE) or {"steps": {}, "methods": {}}


def not_run_line(cov: Coverage, preset: str, reasons: dict) -> str:
    """The one line standing for a section no seed ran: which notebooks, why, and how to add
    them."""
    notebooks = [STEP_RECORDS[s].NOTEBOOK for s in cov.absent]
    why = "; ".join(reasons.get("steps", {}).get(nb, "") for nb in notebooks).strip("; ")
    return (f"Not run for {preset}: no seed has metrics of {', '.join(notebooks)}"
            f"{f' ({why})' if why else ''}. `fct reproduce --preset {preset} --only "
            f"{' '.join(notebooks)} 99_report` adds it.")


def _steps(steps) -> str:
    return ", ".join(STEP_RECORDS[s].NOTEBOOK for s in steps)


def _listing(seeds) -> str:
    return ", ".join(str(s) for s in seeds) or "none"
